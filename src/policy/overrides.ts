// Runtime overrides: what an admin switches on the command line, on top of the config, for a while.
//   - disable: a policy, a network, or all blocking, stops blocking until a time (Pi-hole's
//     `pihole disable 5m`, Blocky's `blocking disable --duration`);
//   - allow / deny: a name (and its subdomains) let through or blocked for one network or one
//     client, optionally until a date: an exception or a site-list entry without a config edit.
// They live in `state_dir/overrides/overrides.json` (standalone) or in the shared edit log (Redis), are
// audited before they apply, and end by themselves. Pure: entries in, compiled lookups out.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { normaliseDomain } from '../lists/formats.js';
import { suffixRefusals } from '../lists/public-suffix.js';
import { DomainSet } from '../match/domain-set.js';
import { parsePolicyDate } from './calendar.js';
import { NetworkTable } from '../match/network-table.js';
import { NameSuffixes } from '../match/name-suffixes.js';

/** The pseudo-list a deny entry blocks with: in the query log, reports and `sluice_blocked_total`. */
export const DENY_LIST = 'sluice-deny';

const common = {
  /** Unique: `enable` and `overrides remove` name entries by it. */
  id: z.string().min(1),
  reason: z.string().min(1),
  /** Who ran the command. */
  by: z.string(),
  /** When (ms since the epoch). */
  created: z.number(),
};

const disableEntry = z.strictObject({
  ...common,
  kind: z.literal('disable'),
  policy: z.string().min(1).optional(),
  network: z.string().min(1).optional(),
  until: z.number(),
});

const nameEntry = z.strictObject({
  ...common,
  kind: z.enum(['allow', 'deny']),
  domain: z.string().min(1),
  network: z.string().min(1).optional(),
  /** An address or a CIDR range. */
  client: z.string().min(1).optional(),
  until: z.number().optional(),
  approvedBy: z.string().optional(),
});

export const overrideEntrySchema = z.discriminatedUnion('kind', [disableEntry, nameEntry]);
export type OverrideEntry = z.infer<typeof overrideEntrySchema>;
export type DisableEntry = z.infer<typeof disableEntry>;
export type NameEntry = z.infer<typeof nameEntry>;

const overridesFileSchema = z.strictObject({ overrides: z.array(overrideEntrySchema) });

/** `overrides.json`'s content; throws an Error naming the file and the entry's field. */
export function parseOverridesFile(text: string, file: string): OverrideEntry[] {
  if (text.trim() === '') return [];
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not JSON: ${(err as Error).message}`);
  }
  const r = overridesFileSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`${file}: ${i.path.length > 0 ? i.path.join('.') : 'top level'}: ${i.message}`);
  }
  return r.data.overrides;
}

export function overridesFileText(entries: readonly OverrideEntry[]): string {
  return JSON.stringify({ overrides: entries }, null, 2) + '\n';
}

/** An entry of the shared edit log (one JSON text per rule); undefined if it does not parse. */
export function parseOverrideRule(rule: string): OverrideEntry | undefined {
  try {
    const r = overrideEntrySchema.safeParse(JSON.parse(rule));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

export function isActive(e: OverrideEntry, now: number): boolean {
  return e.until === undefined || now < e.until;
}

/** Entries that ended more than this long ago are dropped the next time the file is written. */
export const KEEP_ENDED_MS = 7 * 86_400_000;

/** `30s`, `5m`, `2h`, `1d`, `1h30m` → milliseconds; undefined if it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text.trim());
  if (!m || text.trim() === '') return undefined;
  const [d, h, min, s] = m.slice(1).map((x) => Number(x ?? 0)) as [number, number, number, number];
  const ms = (((d * 24 + h) * 60 + min) * 60 + s) * 1000;
  return ms > 0 ? ms : undefined;
}

/** Whether `client` is an address or a CIDR range. */
export function isClientSpec(client: string): boolean {
  if (isIP(client) !== 0) return true;
  try {
    ipaddr.parseCIDR(client);
    return true;
  } catch {
    return false;
  }
}

/** What an override applies to, in words (EDE text, `policy status`, the log). */
export function overrideScope(e: OverrideEntry): string {
  if (e.kind === 'disable') {
    if (e.policy !== undefined && e.network !== undefined) return `policy ${e.policy} on network ${e.network}`;
    if (e.policy !== undefined) return `policy ${e.policy}`;
    if (e.network !== undefined) return `network ${e.network}`;
    return 'all blocking';
  }
  return e.client !== undefined ? `client ${e.client}` : `network ${e.network ?? '?'}`;
}

/** A disable in force, as a decision carries it. */
export interface DisableRef {
  id: string;
  scope: string;
  reason: string;
  by: string;
  until: number;
}

/** An allow entry that let a query through a block. */
export interface AllowRef {
  id: string;
  domain: string;
  scope: string;
  reason: string;
  approvedBy?: string;
  until?: number;
}

interface NameRule {
  entry: NameEntry;
  clients?: NetworkTable<true>;
}

/**
 * Overrides compiled for the policy engine. A disable is looked up once per instant (the engine
 * keeps the result until the next edge); name entries cost one lookup per query while any exists.
 */
export class CompiledOverrides {
  readonly entries: readonly OverrideEntry[];
  readonly disables: readonly DisableEntry[];
  /** Every allow/deny domain; the rule index leads to `rules`. */
  readonly names = new DomainSet();
  /** Whether there are allow/deny entries at all: the engine looks names up only then. */
  readonly hasNames: boolean;
  private readonly rules = new Map<number, NameRule[]>();

  constructor(entries: readonly OverrideEntry[]) {
    this.entries = entries;
    this.disables = entries.filter((e): e is DisableEntry => e.kind === 'disable');
    const byDomain = new Map<string, NameRule[]>();
    for (const e of entries) {
      if (e.kind === 'disable') continue;
      const rule: NameRule = { entry: e, ...(e.client !== undefined ? { clients: new NetworkTable([{ cidr: e.client, network: true as const }]) } : {}) };
      const list = byDomain.get(e.domain);
      if (list) list.push(rule);
      else byDomain.set(e.domain, [rule]);
    }
    this.hasNames = byDomain.size > 0;
    for (const domain of byDomain.keys()) this.names.add(domain);
    // A rule's number is what a lookup of the domain itself finds (the most specific rule).
    const s = new NameSuffixes();
    for (const [domain, rules] of byDomain) this.rules.set(this.names.lookup(s.set(domain)), rules);
  }

  /** Instants at which an override ends (for the engine's memo invalidation). */
  edges(): number[] {
    return this.entries.flatMap((e) => (e.until !== undefined ? [e.until] : []));
  }

  /** The disable in force for this policy (undefined: a profile list) on this network, if any. */
  disabled(network: string, policy: string | undefined, now: number): DisableRef | undefined {
    let best: DisableEntry | undefined;
    for (const d of this.disables) {
      if (now >= d.until) continue;
      if (d.network !== undefined && d.network !== network) continue;
      // A policy's disable does not switch off the profile's own lists.
      if (d.policy !== undefined && d.policy !== policy) continue;
      if (!best || d.until > best.until) best = d;
    }
    return best && { id: best.id, scope: overrideScope(best), reason: best.reason, by: best.by, until: best.until };
  }

  /**
   * The allow or deny entry that decides `s` (a NameSuffixes of the query name) for this network
   * and client now: a client's entry before a network's; at the same level the entry for the more
   * specific name, then the newer. Every entry covering the name is weighed, the query name's
   * suffixes from the longest down (DomainSet.lookup's `resume`).
   */
  nameEntry(s: NameSuffixes, network: string, client: string | undefined, now: number): NameEntry | undefined {
    let best: NameEntry | undefined;
    let bestRank = -1;
    for (let index = this.names.lookup(s); index >= 0; index = this.names.lookup(s, 2 * s.suffix + 1)) {
      // Longer suffixes come first: of two at one level, the first found is the more specific.
      const specificity = s.count - s.suffix;
      for (const r of this.rules.get(index)!) {
        const e = r.entry;
        if (!isActive(e, now)) continue;
        if (e.network !== undefined && e.network !== network) continue;
        if (r.clients && (client === undefined || !r.clients.lookup(client))) continue;
        const rank = (r.clients ? 1000 : 0) + specificity;
        if (rank > bestRank || (rank === bestRank && e.created >= best!.created)) {
          best = e;
          bestRank = rank;
        }
      }
    }
    return best;
  }
}

export const NO_OVERRIDES = new CompiledOverrides([]);

export function allowRef(e: NameEntry): AllowRef {
  return {
    id: e.id,
    domain: e.domain,
    scope: overrideScope(e),
    reason: e.reason,
    ...(e.approvedBy !== undefined ? { approvedBy: e.approvedBy } : {}),
    ...(e.until !== undefined ? { until: e.until } : {}),
  };
}

/** What a disable let through: the disable, and the list, rule and policy that would have blocked. */
export interface DisabledNote {
  by: DisableRef;
  list: string;
  rule: string;
  policy?: { id: string };
  /** The EDE text, once built (disabledText). */
  text?: string;
}

/**
 * The EDE text of an answer that a disable let through (RFC 8914 allows one on any answer), built
 * once per note: a note the engine keeps per rule serves every answer under that rule.
 */
export function disabledText(n: DisabledNote): string {
  return (n.text ??= `sluice: blocking disabled (${n.by.scope}) until ${new Date(n.by.until).toISOString()}: ${n.by.reason}; would block: ${n.policy ? `policy ${n.policy.id}, ` : ''}list ${n.list}, rule ${n.rule}`);
}

/** The EDE text of a deny entry's block. */
export function denyText(e: NameEntry): string {
  const until = e.until !== undefined ? ` until ${new Date(e.until).toISOString()}` : '';
  return `sluice: blocked by a deny entry for ${overrideScope(e)}${until}: ${e.reason}`;
}

/** Why a --policy or --network names nothing in the config; undefined when both are known (or absent). */
export function unknownScope(scope: { policy?: string | undefined; network?: string | undefined }, config: Config): string | undefined {
  if (scope.policy !== undefined && !(scope.policy in config.policies)) return `--policy: no policy "${scope.policy}" in the config (known: ${Object.keys(config.policies).join(', ') || 'none'})`;
  if (scope.network !== undefined && !(scope.network in config.networks)) return `--network: no network "${scope.network}" in the config (known: ${Object.keys(config.networks).join(', ')})`;
  return undefined;
}

/** What `sluice disable|allow|deny` and POST /api/admin/overrides ask for. */
export interface OverrideRequest {
  kind: OverrideEntry['kind'];
  policy?: string | undefined;
  network?: string | undefined;
  domain?: string | undefined;
  client?: string | undefined;
  /** A duration (`30m`), or `until` (a date: the end of that day in `tz`; or an instant). */
  for?: string | undefined;
  until?: string | undefined;
  reason?: string | undefined;
  approvedBy?: string | undefined;
}

export type BuiltOverride = { entry: OverrideEntry } | { error: string; usage: boolean };

/**
 * The entry a request makes, checked against the config: or why not (`usage`: the request was
 * malformed, else it was refused, such as a deny of a public suffix). Pure: id, user and time in.
 */
export function buildOverride(req: OverrideRequest, config: Config, at: { now: number; id: string; by: string; tz: string }): BuiltOverride {
  const usage = (error: string): BuiltOverride => ({ error, usage: true });
  if (!req.reason || req.reason.trim() === '') return usage('--reason is required: it is kept in the audit log');
  const unknown = unknownScope(req, config);
  if (unknown) return usage(unknown);
  if (req.for !== undefined && req.until !== undefined) return usage('give --for or --until, not both');
  let until: number | undefined;
  if (req.for !== undefined) {
    const ms = parseDuration(req.for);
    if (ms === undefined) return usage(`--for: "${req.for}" is not a duration (such as 30s, 15m, 2h, 1d, 1h30m)`);
    until = at.now + ms;
  } else if (req.until !== undefined) {
    until = parsePolicyDate(req.until, at.tz, true);
    if (Number.isNaN(until)) return usage(`--until: "${req.until}" is not a date (2027-01-31, or 2027-01-31T17:00:00Z)`);
    if (until <= at.now) return usage(`--until: ${req.until} is in the past`);
  }
  const common = { id: at.id, reason: req.reason, by: at.by, created: at.now };
  if (req.kind === 'disable') {
    if (until === undefined) return usage('give --for DURATION or --until DATE: a disable always ends by itself');
    return { entry: { ...common, kind: 'disable', ...(req.policy !== undefined ? { policy: req.policy } : {}), ...(req.network !== undefined ? { network: req.network } : {}), until } };
  }
  if (req.policy !== undefined) return usage(`--policy does not apply to ${req.kind}: an entry is for a network or a client`);
  if (req.network === undefined && req.client === undefined) return usage('give --network NAME or --client ADDRESS: an entry never applies everywhere');
  if (req.client !== undefined && !isClientSpec(req.client)) return usage(`--client: "${req.client}" is not an address or a CIDR range`);
  if (req.domain === undefined) return usage('the domain is required');
  const n = normaliseDomain(req.domain);
  if ('error' in n) return usage(`"${req.domain}": ${n.error}`);
  if (n.domain.startsWith('*.')) return usage('give the name itself: its subdomains are covered too');
  if (req.kind === 'deny') {
    const refused = suffixRefusals([n.domain]);
    if (refused.length > 0) return { error: refused.join('; '), usage: false };
  }
  return {
    entry: {
      ...common,
      kind: req.kind,
      domain: n.domain,
      ...(req.network !== undefined ? { network: req.network } : {}),
      ...(req.client !== undefined ? { client: req.client } : {}),
      ...(until !== undefined ? { until } : {}),
      ...(req.approvedBy !== undefined ? { approvedBy: req.approvedBy } : {}),
    },
  };
}

/** An override's end as people read it: `2027-01-31T23:00:00Z`, or `no end`. */
export function isoSeconds(t: number | undefined): string {
  return t === undefined ? 'no end' : new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** One line for the audit log and the command's answer: `disable network staff until … (id)`. */
export function overrideSummary(e: OverrideEntry): string {
  const what = e.kind === 'disable' ? `disable ${overrideScope(e)}` : `${e.kind} ${e.domain} for ${overrideScope(e)}`;
  return `${what} until ${isoSeconds(e.until)} (${e.id})`;
}
