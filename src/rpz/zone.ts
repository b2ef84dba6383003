// Response Policy Zones (draft-vixie-dnsop-dns-rpz): sluice's rules as a zone that BIND, Unbound,
// PowerDNS or Knot load as their blocking policy. Pure: rules in, records and zone-file text out.
//
//  - a rule `d` (d and everything below) is `d CNAME .` and `*.d CNAME .` (NXDOMAIN for both);
//  - a rule `*.d` (subdomains only) is `*.d CNAME .` alone;
//  - a passthru rule (a profile's allow entry, a network's policy exception) is the same pair with
//    `CNAME rpz-passthru.`: the resolver answers normally and stops looking at later RPZ zones.
// RPZ prefers an exact name over a wildcard and a longer wildcard over a shorter one, so a
// passthru below a block wins, as an allow entry does in sluice.
import { encodeName } from '../dns/wire.js';
import { CLASS_IN, TYPE } from '../dns/codes.js';

export interface ZoneRules {
  /** Rules that block: `d` or `*.d`. */
  block: Iterable<string>;
  /** Rules that let the name through (rpz-passthru.). */
  passthru?: Iterable<string>;
}

export interface ZoneOptions {
  /** The zone's name, e.g. "rpz.sluice" (trailing dot optional). */
  origin: string;
  serial: number;
  /** $TTL and the TTL of every record, seconds. */
  ttl?: number;
}

export interface ZoneRecord {
  /** Absolute owner name without the trailing dot. */
  name: string;
  type: number;
  ttl: number;
  rdata: Buffer;
  /** The record as zone-file text, relative to the origin. */
  text: string;
}

export const DEFAULT_TTL = 300;
const SOA_TIMERS = { refresh: 3600, retry: 600, expire: 604800 };

export function normaliseOrigin(origin: string): string {
  return origin.toLowerCase().replace(/\.$/, '');
}

/** A serial for RFC 1982 arithmetic: seconds since the epoch, kept ahead of `previous`. */
export function nextSerial(nowMs: number, previous?: number): number {
  const t = Math.floor(nowMs / 1000) >>> 0;
  if (previous === undefined) return t;
  // strictly greater than previous in serial-number arithmetic
  const diff = (t - previous) >>> 0;
  return diff > 0 && diff < 0x80000000 ? t : (previous + 1) >>> 0;
}

function soaRdata(origin: string, serial: number, minimum: number): Buffer {
  const tail = Buffer.alloc(20);
  tail.writeUInt32BE(serial >>> 0, 0);
  tail.writeUInt32BE(SOA_TIMERS.refresh, 4);
  tail.writeUInt32BE(SOA_TIMERS.retry, 8);
  tail.writeUInt32BE(SOA_TIMERS.expire, 12);
  tail.writeUInt32BE(minimum, 16);
  return Buffer.concat([encodeName('localhost'), encodeName(`hostmaster.${origin}`), tail]);
}

/** The SOA record of the zone (first and last record of a transfer). */
export function soaRecord(opts: ZoneOptions): ZoneRecord {
  const origin = normaliseOrigin(opts.origin);
  const ttl = opts.ttl ?? DEFAULT_TTL;
  return {
    name: origin,
    type: TYPE.SOA,
    ttl,
    rdata: soaRdata(origin, opts.serial, ttl),
    text: `@ SOA localhost. hostmaster (${opts.serial >>> 0} ${SOA_TIMERS.refresh} ${SOA_TIMERS.retry} ${SOA_TIMERS.expire} ${ttl})`,
  };
}

const ROOT = encodeName('');
const PASSTHRU = encodeName('rpz-passthru');

/**
 * The owner names (relative to the zone) of rules, with the action, sorted and without duplicates.
 * A block and a passthru of the same name: the passthru wins (as an allow beats a block).
 */
export function policyNames(rules: ZoneRules): Map<string, 'block' | 'passthru'> {
  const out = new Map<string, 'block' | 'passthru'>();
  const put = (rule: string, action: 'block' | 'passthru') => {
    const names = rule.startsWith('*.') ? [rule] : [rule, `*.${rule}`];
    for (const n of names) if (action === 'passthru' || out.get(n) !== 'passthru') out.set(n, action);
  };
  for (const r of rules.block) put(r, 'block');
  for (const r of rules.passthru ?? []) put(r, 'passthru');
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Every record of the zone: SOA, NS, then one CNAME per policy name (not the closing SOA). */
export function zoneRecords(rules: ZoneRules, opts: ZoneOptions): ZoneRecord[] {
  const origin = normaliseOrigin(opts.origin);
  const ttl = opts.ttl ?? DEFAULT_TTL;
  const records: ZoneRecord[] = [soaRecord(opts), { name: origin, type: TYPE.NS, ttl, rdata: encodeName('localhost'), text: '@ NS localhost.' }];
  for (const [name, action] of policyNames(rules)) {
    // A name that would pass 253 characters below the zone cannot be in it (a long rule and a long
    // zone name); one such record would make the secondaries reject the whole zone.
    if (name.length + 1 + origin.length > 253) continue;
    records.push({
      name: `${name}.${origin}`,
      type: TYPE.CNAME,
      ttl,
      rdata: action === 'block' ? ROOT : PASSTHRU,
      text: `${name} CNAME ${action === 'block' ? '.' : 'rpz-passthru.'}`,
    });
  }
  return records;
}

/** The zone as a master file (RFC 1035 §5), with `header` lines as comments. */
export function zoneText(rules: ZoneRules, opts: ZoneOptions, header: string[] = []): string {
  const origin = normaliseOrigin(opts.origin);
  const lines = [...header.map((h) => `; ${h}`), `$ORIGIN ${origin}.`, `$TTL ${opts.ttl ?? DEFAULT_TTL}`];
  for (const r of zoneRecords(rules, opts)) lines.push(r.text);
  return lines.join('\n') + '\n';
}

/** A resource record in wire format, names uncompressed. */
export function encodeResourceRecord(r: Pick<ZoneRecord, 'name' | 'type' | 'ttl' | 'rdata'>): Buffer {
  const owner = encodeName(r.name);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(CLASS_IN, 2);
  fixed.writeUInt32BE(r.ttl >>> 0, 4);
  fixed.writeUInt16BE(r.rdata.length, 8);
  return Buffer.concat([owner, fixed, r.rdata]);
}

/** A content hash of the zone's policy names: equal hashes, equal zones (serial aside). */
export function zoneDigestInput(rules: ZoneRules): string {
  return [...policyNames(rules)].map(([n, a]) => `${n} ${a}`).join('\n');
}
