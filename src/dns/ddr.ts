// Discovery of Designated Resolvers (RFC 9462): the locally served zone resolver.arpa, whose
// `_dns.resolver.arpa` SVCB records name this resolver's DoT and DoH endpoints, and the same
// records at `_dns.<resolver name>` (RFC 9461 §2) for clients that know the name. Pure: built from
// the config and the certificate's name (read by the loader); every answer's records are encoded
// here once, so a DDR query costs a copy, and any other query two string comparisons.
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { listenerPort, type Config } from '../config/schema.js';
import { RCODE, TYPE } from './codes.js';
import { encodeSvcbRecords, type SvcbRecord } from './svcb.js';
import { encodeAnswer, encodeName, encodeRecord, type Query } from './wire.js';

const ZONE = 'resolver.arpa';
const DESIGNATION = '_dns.resolver.arpa';
const SUBDOMAIN = '.resolver.arpa';
/** TTL of the SVCB records and of the zone's SOA (so also of its negative answers, RFC 2308 §5). */
export const DDR_TTL = 300;

// A locally served zone's SOA as RFC 6303 §3 has it: the zone as MNAME, nobody.invalid as RNAME.
const SOA_RDATA = Buffer.concat([encodeName(ZONE), encodeName('nobody.invalid'), Buffer.from([0, 0, 0, 1, 0, 9, 0x3a, 0x80, 0, 1, 0x51, 0x80, 0, 0x24, 0xea, 0, 0, 0, 0, 0])]);
SOA_RDATA.writeUInt32BE(DDR_TTL, SOA_RDATA.length - 4);

/** One encrypted endpoint of this resolver: a protocol on a port, and the addresses it is reached at. */
export interface DdrEndpoint {
  protocol: 'dot' | 'doh';
  port: number;
  ipv4: string[];
  ipv6: string[];
}

/**
 * The encrypted endpoints the listeners serve, in the order they are configured (that order is the
 * SVCB priority): one per protocol and port, with the listeners' own addresses (not a wildcard) as
 * hints unless `ddr.ipv4hint` / `ddr.ipv6hint` name them.
 */
export function ddrEndpoints(config: Config): DdrEndpoint[] {
  const found = new Map<string, DdrEndpoint>();
  for (const l of config.listeners) {
    for (const protocol of l.protocols) {
      if (protocol !== 'dot' && protocol !== 'doh') continue;
      const port = listenerPort(l, protocol);
      const key = `${protocol}:${port}`;
      let e = found.get(key);
      if (!e) found.set(key, (e = { protocol, port, ipv4: [], ipv6: [] }));
      const address = ipaddr.parse(l.address);
      if (address.range() === 'unspecified') continue; // 0.0.0.0 or ::: says nothing a client can use
      const text = address.toString();
      const list = address.kind() === 'ipv4' ? e.ipv4 : e.ipv6;
      if (!list.includes(text)) list.push(text);
    }
  }
  const d = config.ddr;
  return [...found.values()].map((e) => ({
    ...e,
    ipv4: d.ipv4hint ? d.ipv4hint.filter((a) => isIPv4(a)) : e.ipv4,
    ipv6: d.ipv6hint ? d.ipv6hint.filter((a) => isIPv6(a)) : e.ipv6,
  }));
}

/** The certificate of the first `dot`/`doh` listener, whose DNS name is the default resolver name. */
export function ddrCertificateListener(config: Config): Config['listeners'][number] | undefined {
  return config.listeners.find((l) => l.tls && (l.protocols.includes('dot') || l.protocols.includes('doh')));
}

/** The first DNS subjectAltName of a certificate (node:crypto's `subjectAltName` text) that can be a TargetName: not a wildcard. */
export function firstDnsName(subjectAltName: string | undefined): string | undefined {
  for (const entry of (subjectAltName ?? '').split(', ')) {
    if (!entry.startsWith('DNS:')) continue;
    const name = entry.slice(4).toLowerCase().replace(/\.$/, '');
    if (!name.includes('*') && isHostName(name)) return name;
  }
  return undefined;
}

/** The SVCB records of the designation: one per endpoint, priorities 1, 2 … (RFC 9461 §3, §5). */
export function ddrRecords(config: Config, target: string): SvcbRecord[] {
  return ddrEndpoints(config).map((e, i) => ({
    priority: i + 1,
    target,
    alpn: e.protocol === 'dot' ? ['dot'] : ['h2', 'http/1.1'],
    port: e.port,
    ipv4hint: e.ipv4,
    ipv6hint: e.ipv6,
    ...(e.protocol === 'doh' ? { dohpath: `${config.doh.path}{?dns}` } : {}),
  }));
}

/** resolver.arpa as this resolver serves it. Build with `buildDdrZone`. */
export class DdrZone {
  /** `_dns.<resolver name>`, answered with the same records; undefined without records. */
  private readonly namedDesignation: string | undefined;
  /** The answer section of a `_dns.resolver.arpa` SVCB answer (owner: the question name). */
  private readonly svcbTail: Buffer | undefined;

  constructor(
    /** The designation's records; empty: resolver.arpa is served (never forwarded, RFC 9462 §6.5) but names no endpoint. */
    readonly records: readonly SvcbRecord[],
    /** Why there are no records, for the loader's warning. */
    readonly problem: string | undefined,
  ) {
    const target = records[0]?.target;
    this.namedDesignation = target !== undefined ? `_dns.${target}` : undefined;
    this.svcbTail = records.length > 0 ? encodeSvcbRecords(12, DDR_TTL, records) : undefined;
  }

  /**
   * The local answer for `query`, or undefined when the name is not DDR's (the query goes on).
   * `_dns.resolver.arpa` SVCB: the records; other types there and at resolver.arpa: NODATA; any
   * other name under resolver.arpa: NXDOMAIN; `_dns.<resolver name>` SVCB: the records (other
   * types of that name belong to the organisation's zone and are resolved as usual).
   */
  answer(msg: Buffer, query: Query): Buffer | undefined {
    const name = query.name;
    if (name === this.namedDesignation) return query.type === TYPE.SVCB ? this.designationAnswer(msg, query) : undefined;
    if (!name.endsWith(ZONE)) return undefined;
    if (name === DESIGNATION) return query.type === TYPE.SVCB && this.svcbTail ? this.designationAnswer(msg, query) : this.negative(msg, query, RCODE.NOERROR);
    if (name === ZONE) {
      if (query.type !== TYPE.SOA) return this.negative(msg, query, RCODE.NOERROR);
      return authoritative(encodeAnswer(msg, query, RCODE.NOERROR, { an: 1, ns: 0 }, encodeRecord(12, TYPE.SOA, DDR_TTL, SOA_RDATA)));
    }
    return name.endsWith(SUBDOMAIN) ? this.negative(msg, query, RCODE.NXDOMAIN) : undefined;
  }

  private designationAnswer(msg: Buffer, query: Query): Buffer {
    const bytes = encodeAnswer(msg, query, RCODE.NOERROR, { an: this.records.length, ns: 0 }, this.svcbTail);
    return query.name === DESIGNATION ? authoritative(bytes) : bytes;
  }

  /** NODATA or NXDOMAIN with the zone's SOA, so that clients cache it (RFC 2308). */
  private negative(msg: Buffer, query: Query, rcode: number): Buffer {
    // The SOA's owner points at "resolver.arpa" within the question name.
    const owner = query.labelOffsets[query.labelOffsets.length - 2] ?? 12;
    return authoritative(encodeAnswer(msg, query, rcode, { an: 0, ns: 1 }, encodeRecord(owner, TYPE.SOA, DDR_TTL, SOA_RDATA)));
  }
}

/**
 * resolver.arpa for `config`: undefined when `ddr.enabled` is off (the names are then resolved as
 * any other). `certName` is the first DNS name of the first DoT/DoH listener's certificate (the
 * loader reads it); `ddr.name` comes first.
 */
export function buildDdrZone(config: Config, certName: string | undefined): DdrZone | undefined {
  if (!config.ddr.enabled) return undefined;
  if (ddrEndpoints(config).length === 0) return new DdrZone([], undefined);
  const configured = config.ddr.name?.toLowerCase().replace(/\.$/, '');
  if (configured !== undefined && !isHostName(configured)) return new DdrZone([], `ddr.name "${config.ddr.name}" is not a host name`);
  const target = configured ?? certName;
  if (target === undefined) return new DdrZone([], 'neither ddr.name nor a DNS name in the DoT/DoH certificate names the encrypted resolver');
  return new DdrZone(ddrRecords(config, target), undefined);
}

/** AA: sluice is the authority for the locally served resolver.arpa. */
function authoritative(bytes: Buffer): Buffer {
  bytes[2] = bytes[2]! | 0x04;
  return bytes;
}

function isHostName(name: string): boolean {
  return name.length <= 253 && /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(name);
}
