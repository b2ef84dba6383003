// Decides, for a network, a client and a query name, whether the name is blocked, by what, and why
// not when it is not. Pure: built from config values and loaded domain sets; the time is passed in.
//
// Order of precedence:
//   1. a profile's allow entries beat every block;
//   2. a profile's block lists (always on, no lifecycle);
//   3. policies in force for the network (enforce before dry-run): outside its schedule, or for a
//      client or network that an exception covers, a policy does not block. Exceptions are about
//      the client and the app, so an unexpired exception of any policy blocking the same list lets
//      the query through: an allow exception beats a block.
import type { BlockResponseConfig, Config } from '../config/schema.js';
import { parseRule } from '../lists/formats.js';
import { BYPASS_LIST, bypassApplies } from './bypass.js';
import { DomainSet, type DomainMatch } from './domain-set.js';
import { boundaries, compilePolicy, exceptionActive, inSchedule, isInForce, type CompiledException, type CompiledPolicy } from './policy.js';

export interface PolicyRef {
  id: string;
  title: string;
  reference: string;
}

export interface ExceptionRef {
  policy: string;
  index: number;
  reason: string;
  approvedBy: string;
  until?: string;
  scope: string;
}

export interface WouldBlock {
  policy: PolicyRef;
  list: string;
  rule: string;
}

export type Decision =
  | {
      kind: 'allowed';
      profile: string;
      /** A profile allow entry that overrode `overriddenList`. */
      allowRule?: string;
      overriddenList?: string;
      /** An exception that let the query through a policy. */
      exception?: ExceptionRef;
      /** A policy that would block but is outside its schedule now. */
      outsideSchedule?: PolicyRef;
      /** A dry-run policy that would have blocked. */
      wouldBlock?: WouldBlock;
    }
  | {
      kind: 'blocked';
      profile: string;
      policy?: PolicyRef;
      list: string;
      rule: string;
      /** Labels in `rule`, so the answer's SOA can name the blocked zone. */
      ruleLabels: number;
      /** Extended DNS Error text (RFC 8914) that tells `dig` users why. */
      reason: string;
      response: BlockResponseConfig;
      /** Client exceptions that could still let this query through (checked per client). */
      clientExceptions?: { policy: CompiledPolicy; exception: CompiledException }[];
    };

export interface CompiledProfile {
  name: string;
  blockLists: { name: string; set: DomainSet }[];
  allow: DomainSet;
  response: BlockResponseConfig;
}

export interface Network {
  name: string;
  profile: CompiledProfile;
  policies: CompiledPolicy[];
  /** "network|profile", built once for the metrics. */
  metricsKey: string;
  /** Per-client UDP rate limit, when the network has one (rate > 0). */
  rateLimit: { rate: number; burst: number; slip: number } | undefined;
}

// Names whose only useful answer is NXDOMAIN, whatever the profile's block mode: a positive answer
// (such as 0.0.0.0) to Firefox's canary tells it DNS-over-HTTPS is allowed, and Apple devices only
// fall back from iCloud Private Relay to the network's resolver on NXDOMAIN.
export const NXDOMAIN_SIGNALS: ReadonlySet<string> = new Set(['use-application-dns.net', 'mask.icloud.com', 'mask-h2.icloud.com']);

// Decisions are memoised per network and name: the same names are asked over and over, and a memo
// hit is one Map lookup instead of a suffix walk per list. The memo is dropped at the next instant
// a policy, exception or schedule changes state.
const MEMO_MAX = 100_000;
const MINUTE = 60_000;

export class PolicyEngine {
  readonly networks = new Map<string, Network>();
  readonly profiles = new Map<string, CompiledProfile>();
  readonly policies: CompiledPolicy[] = [];
  private readonly memo = new Map<Network, Map<string, Decision>>();
  private memoValidUntil = -Infinity;
  private memoValidFrom = Infinity;
  private readonly blockedByRule = new Map<string, Extract<Decision, { kind: 'blocked' }>>();
  private readonly allowedFor = new Map<Network, Decision>();
  private readonly edges: number[];
  private readonly hasSchedules: boolean;

  constructor(
    config: Config,
    private readonly lists: ReadonlyMap<string, DomainSet>,
  ) {
    for (const [name, p] of Object.entries(config.profiles)) {
      const allow = new DomainSet();
      for (const a of p.allow) {
        const r = parseRule(a, 'plain');
        if (r && 'entries' in r) for (const e of r.entries) allow.add(e.domain, e.subdomainsOnly);
      }
      const block = [...p.block];
      const bypass = lists.get(BYPASS_LIST);
      if (bypass && !block.includes(BYPASS_LIST) && bypassApplies(config, name)) block.push(BYPASS_LIST);
      this.profiles.set(name, { name, blockLists: block.map((l) => ({ name: l, set: lists.get(l) ?? new DomainSet() })), allow, response: p.block_response });
    }
    for (const [id, p] of Object.entries(config.policies)) this.policies.push(compilePolicy(id, p));
    for (const [name, n] of Object.entries(config.networks)) {
      const profile = this.profiles.get(n.profile);
      if (!profile) continue;
      const policies = this.policies.filter((p) => p.networks.has(name) || p.profiles.has(n.profile));
      // enforce before dry-run, so a dry-run policy never hides a real block
      policies.sort((a, b) => (a.mode === b.mode ? 0 : a.mode === 'enforce' ? -1 : 1));
      const network: Network = { name, profile, policies, metricsKey: `${name}|${profile.name}`, rateLimit: n.rate_limit.rate > 0 ? n.rate_limit : undefined };
      this.networks.set(name, network);
      this.memo.set(network, new Map());
    }
    this.edges = this.policies.flatMap(boundaries).sort((a, b) => a - b);
    this.hasSchedules = this.policies.some((p) => p.schedule !== undefined);
  }

  decide(network: Network, name: string, now: number, client?: string): Decision {
    // A clock that goes back (tests, or an NTP step) also invalidates the memo.
    if (now >= this.memoValidUntil || now < this.memoValidFrom) this.resetMemo(now);
    const memo = this.memo.get(network)!;
    let d = memo.get(name);
    if (!d) {
      d = this.evaluate(network, name, now);
      if (memo.size >= MEMO_MAX) memo.clear();
      memo.set(name, d);
    }
    if (d.kind === 'blocked' && d.clientExceptions && client !== undefined) return applyClientExceptions(d, client, now);
    return d;
  }

  private plainAllowed(network: Network): Decision {
    let d = this.allowedFor.get(network);
    if (!d) {
      d = { kind: 'allowed', profile: network.profile.name };
      this.allowedFor.set(network, d);
    }
    return d;
  }

  private resetMemo(now: number): void {
    for (const m of this.memo.values()) m.clear();
    // Client exceptions and policy references in them depend on the time too.
    this.blockedByRule.clear();
    let until = Infinity;
    let from = -Infinity;
    for (const e of this.edges) {
      if (e > now) {
        until = e;
        break;
      }
      from = e;
    }
    this.memoValidFrom = this.hasSchedules ? Math.floor(now / MINUTE) * MINUTE : from;
    if (this.hasSchedules) until = Math.min(until, (Math.floor(now / MINUTE) + 1) * MINUTE);
    this.memoValidUntil = until;
  }

  /** The decision for a network at `now`, before client exceptions. */
  evaluate(network: Network, name: string, now: number): Decision {
    const profile = network.profile;
    const allowed = profile.allow.size > 0 ? profile.allow.match(name) : undefined;
    for (const list of profile.blockLists) {
      const m = list.set.match(name);
      if (!m) continue;
      if (allowed) return { kind: 'allowed', profile: profile.name, allowRule: ruleText(allowed), overriddenList: list.name };
      const key = `${network.name}||${list.name}|${m.subdomainsOnly ? '*.' : ''}${m.rule}`;
      let d = this.blockedByRule.get(key);
      if (!d) {
        d = blocked(profile, undefined, list.name, m);
        if (this.blockedByRule.size >= MEMO_MAX) this.blockedByRule.clear();
        this.blockedByRule.set(key, d);
      }
      return d;
    }
    let note: Partial<Extract<Decision, { kind: 'allowed' }>> = {};
    for (const p of network.policies) {
      if (!isInForce(p, now)) continue;
      for (const listName of p.lists) {
        const set = this.lists.get(listName);
        const m = set?.match(name);
        if (!m) continue;
        if (allowed) return { kind: 'allowed', profile: profile.name, allowRule: ruleText(allowed), overriddenList: listName };
        if (!inSchedule(p, now)) {
          note = { outsideSchedule: policyRef(p), ...note };
          continue;
        }
        const networkException = this.findException(network, listName, now, (e) => e.network === network.name);
        if (networkException) {
          note = { exception: networkException, ...note };
          continue;
        }
        if (p.mode === 'dry-run') {
          note = { wouldBlock: { policy: policyRef(p), list: listName, rule: ruleText(m) }, ...note };
          continue;
        }
        // Every name under one rule gets the same decision: build it once per rule, not per name.
        const key = `${network.name}|${p.id}|${listName}|${m.subdomainsOnly ? '*.' : ''}${m.rule}`;
        let d = this.blockedByRule.get(key);
        if (!d) {
          d = blocked(profile, p, listName, m);
          const clientExceptions = this.clientExceptions(network, listName, now);
          if (clientExceptions.length > 0) d.clientExceptions = clientExceptions;
          if (this.blockedByRule.size >= MEMO_MAX) this.blockedByRule.clear();
          this.blockedByRule.set(key, d);
        }
        return d;
      }
    }
    // Most names are allowed with nothing to say: share one decision object per network.
    if (note.outsideSchedule === undefined && note.exception === undefined && note.wouldBlock === undefined) return this.plainAllowed(network);
    return { kind: 'allowed', profile: profile.name, ...note };
  }

  /** Exceptions of any in-force policy of this network that blocks `list`. */
  private *exceptionsFor(network: Network, list: string, now: number) {
    for (const p of network.policies) {
      if (!isInForce(p, now) || !p.lists.includes(list)) continue;
      for (const e of p.exceptions) {
        if (!exceptionActive(e, now)) continue;
        if (e.lists && !e.lists.has(list)) continue;
        yield { policy: p, exception: e };
      }
    }
  }

  private findException(network: Network, list: string, now: number, pred: (e: CompiledException) => boolean): ExceptionRef | undefined {
    for (const x of this.exceptionsFor(network, list, now)) if (pred(x.exception)) return exceptionRef(x.policy, x.exception);
    return undefined;
  }

  private clientExceptions(network: Network, list: string, now: number) {
    return [...this.exceptionsFor(network, list, now)].filter((x) => x.exception.clientTable !== undefined);
  }
}

function applyClientExceptions(d: Extract<Decision, { kind: 'blocked' }>, client: string, now: number): Decision {
  for (const { policy, exception } of d.clientExceptions!) {
    if (exceptionActive(exception, now) && exception.clientTable!.lookup(client)) {
      return { kind: 'allowed', profile: d.profile, exception: exceptionRef(policy, exception) };
    }
  }
  return d;
}

/**
 * A block decision. Its EDE text is built on first use: it is only sent to clients that use EDNS,
 * and a scan across many rules would otherwise keep one long string per rule alive.
 */
class BlockedDecision {
  readonly kind = 'blocked' as const;
  private text: string | undefined;
  policy?: PolicyRef;
  clientExceptions?: { policy: CompiledPolicy; exception: CompiledException }[];

  constructor(
    readonly profile: string,
    p: CompiledPolicy | undefined,
    readonly list: string,
    readonly rule: string,
    readonly ruleLabels: number,
    readonly response: BlockResponseConfig,
    private readonly reference: string | undefined,
  ) {
    if (p) this.policy = policyRef(p);
  }

  get reason(): string {
    if (this.text === undefined) {
      // The reference can be long; an EDE is read in `dig` output, so keep it to one line's worth.
      const ref = this.reference !== undefined && this.reference.length > 100 ? `${this.reference.slice(0, 97)}...` : this.reference;
      const by = this.policy ? `policy ${this.policy.id} (${ref})` : `profile ${this.profile}`;
      this.text = `sluice: blocked by ${by}: list ${this.list}, rule ${this.rule}`;
    }
    return this.text;
  }
}

function blocked(profile: CompiledProfile, p: CompiledPolicy | undefined, list: string, m: DomainMatch): Extract<Decision, { kind: 'blocked' }> {
  const response = NXDOMAIN_SIGNALS.has(m.rule) && profile.response.mode !== 'nxdomain' ? { ...profile.response, mode: 'nxdomain' as const } : profile.response;
  return new BlockedDecision(profile.name, p, list, ruleText(m), m.rule === '' ? 0 : m.rule.split('.').length, response, p?.reference);
}

function policyRef(p: CompiledPolicy): PolicyRef {
  return { id: p.id, title: p.title, reference: p.reference };
}

function exceptionRef(p: CompiledPolicy, e: CompiledException): ExceptionRef {
  return {
    policy: p.id,
    index: e.index,
    reason: e.reason,
    approvedBy: e.approvedBy,
    ...(e.untilText !== undefined ? { until: e.untilText } : {}),
    scope: e.network !== undefined ? `network ${e.network}` : `clients ${e.clients!.join(', ')}`,
  };
}

function ruleText(m: DomainMatch): string {
  return m.subdomainsOnly ? `*.${m.rule}` : m.rule;
}
