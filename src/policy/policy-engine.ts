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
//   4. runtime overrides (overrides.ts): a disable in force turns a block into "allowed, would
//      block"; then an allow entry for the network or client lets a blocked name through, and a
//      deny entry blocks an allowed one (a client's entry before a network's).
import type { BlockResponseConfig, Config } from '../config/schema.js';
import { parseRule } from '../lists/formats.js';
import { BYPASS_LIST, bypassApplies } from '../config/bypass.js';
import { DomainSet } from '../match/domain-set.js';
import { NameSuffixes } from '../match/name-suffixes.js';
import { allowRef, denyText, DENY_LIST, NO_OVERRIDES, type AllowRef, type CompiledOverrides, type DisabledNote, type DisableRef } from './overrides.js';
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
      /** A runtime disable (`sluice disable`) let through what this would have blocked. */
      disabled?: DisabledNote & { policy?: PolicyRef };
      /** A runtime allow entry (`sluice allow`) let through what this would have blocked. */
      allowEntry?: { by: AllowRef; list: string; rule: string; policy?: PolicyRef };
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

/** A policy as one network applies it: its lists resolved, and the decisions built so far. */
interface NetworkPolicy {
  policy: CompiledPolicy;
  /** Index in PolicyEngine.policies (for the per-instant state). */
  index: number;
  lists: { name: string; set: DomainSet; decisions: Map<number, Decision> }[];
  /** A runtime disable of this policy on this network, at the current instant. */
  disabled: DisableRef | undefined;
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

// Evaluating a name costs one hash per label (NameSuffixes) and one probe per label and list; the
// decision objects are built once per rule and shared by every name under it, so the hot path
// allocates nothing. They are dropped at the next instant a policy, exception or schedule changes
// state, and so is the state of each policy at that instant (in force, in schedule).
const RULE_DECISIONS_MAX = 100_000;
const MINUTE = 60_000;

export class PolicyEngine {
  readonly networks = new Map<string, Network>();
  readonly profiles = new Map<string, CompiledProfile>();
  readonly policies: CompiledPolicy[] = [];
  private validUntil = -Infinity;
  private validFrom = Infinity;
  /** Per network: its policies with their lists, and the decisions of its profile's block lists. */
  private readonly applied = new Map<
    Network,
    { policies: NetworkPolicy[]; profileDecisions: Map<number, Decision>[]; exceptions: Map<string, ExceptionRef | null>; disabled: DisableRef | undefined }
  >();
  /** Deny entries' block decisions, per entry and profile (built once, like a rule's). */
  private readonly denied = new Map<string, Decision>();
  private readonly allowedFor = new Map<Network, Decision>();
  /** Per policy, at the current instant: in force, and inside its schedule. */
  private inForce: boolean[] = [];
  private scheduled: boolean[] = [];
  private ruleDecisions = 0;
  private readonly suffixes = new NameSuffixes();
  private readonly edges: number[];
  private readonly hasSchedules: boolean;

  constructor(
    config: Config,
    private readonly lists: ReadonlyMap<string, DomainSet>,
    readonly overrides: CompiledOverrides = NO_OVERRIDES,
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
      this.applied.set(network, {
        policies: policies.map((p) => ({
          policy: p,
          index: this.policies.indexOf(p),
          lists: p.lists.map((l) => ({ name: l, set: lists.get(l) ?? new DomainSet(), decisions: new Map<number, Decision>() })),
          disabled: undefined,
        })),
        profileDecisions: profile.blockLists.map(() => new Map<number, Decision>()),
        exceptions: new Map(),
        disabled: undefined,
      });
    }
    this.edges = [...this.policies.flatMap(boundaries), ...overrides.edges()].sort((a, b) => a - b);
    this.hasSchedules = this.policies.some((p) => p.schedule !== undefined);
  }

  decide(network: Network, name: string, now: number, client?: string): Decision {
    let d = this.evaluate(network, name, now);
    if (d.kind === 'blocked' && d.clientExceptions && client !== undefined) d = applyClientExceptions(d, client, now);
    // evaluate() left the name's suffixes in this.suffixes: one more lookup, only while entries exist.
    if (this.overrides.hasNames) d = this.applyNameEntry(network, d, client, now);
    return d;
  }

  /** An allow entry lets a blocked name through; a deny entry blocks an allowed one. */
  private applyNameEntry(network: Network, d: Decision, client: string | undefined, now: number): Decision {
    const s = this.suffixes;
    const e = this.overrides.nameEntry(s, network.name, client, now);
    if (!e) return d;
    if (e.kind === 'allow') {
      if (d.kind !== 'blocked') return d;
      return { kind: 'allowed', profile: d.profile, allowEntry: { by: allowRef(e), list: d.list, rule: d.rule, ...(d.policy ? { policy: d.policy } : {}) } };
    }
    if (d.kind === 'blocked') return d;
    const key = `${e.id}|${network.profile.name}`;
    let denied = this.denied.get(key);
    if (!denied) {
      const labels = e.domain.split('.').length;
      denied = { kind: 'blocked', profile: network.profile.name, list: DENY_LIST, rule: e.domain, ruleLabels: labels, reason: denyText(e), response: network.profile.response };
      this.denied.set(key, denied);
    }
    return denied;
  }

  private plainAllowed(network: Network): Decision {
    let d = this.allowedFor.get(network);
    if (!d) {
      d = { kind: 'allowed', profile: network.profile.name };
      this.allowedFor.set(network, d);
    }
    return d;
  }

  /** Forget what depends on the time, and work out the policies' state until the next change. */
  private newInstant(now: number): void {
    this.forgetDecisions();
    let until = Infinity;
    let from = -Infinity;
    for (const e of this.edges) {
      if (e > now) {
        until = e;
        break;
      }
      from = e;
    }
    this.validFrom = this.hasSchedules ? Math.floor(now / MINUTE) * MINUTE : from;
    if (this.hasSchedules) until = Math.min(until, (Math.floor(now / MINUTE) + 1) * MINUTE);
    this.validUntil = until;
    this.inForce = this.policies.map((p) => isInForce(p, now));
    this.scheduled = this.policies.map((p) => inSchedule(p, now));
    if (this.overrides.disables.length > 0) {
      for (const [network, a] of this.applied) {
        a.disabled = this.overrides.disabled(network.name, undefined, now);
        for (const np of a.policies) np.disabled = this.overrides.disabled(network.name, np.policy.id, now);
      }
    }
  }

  /** Keep a decision built for a rule, for the rest of the instant. */
  private remember(cache: Map<number, Decision>, rule: number, d: Decision): Decision {
    // Bounded: a scan across a huge list must not keep a decision for every rule it touched.
    if (++this.ruleDecisions > RULE_DECISIONS_MAX) this.forgetDecisions();
    cache.set(rule, d);
    return d;
  }

  private forgetDecisions(): void {
    for (const a of this.applied.values()) {
      for (const m of a.profileDecisions) m.clear();
      for (const p of a.policies) for (const l of p.lists) l.decisions.clear();
      a.exceptions.clear();
    }
    this.ruleDecisions = 0;
  }

  /** The decision for a network at `now`, before client exceptions. */
  evaluate(network: Network, name: string, now: number): Decision {
    // A clock that goes back (tests, or an NTP step) also starts a new instant.
    if (now >= this.validUntil || now < this.validFrom) this.newInstant(now);
    const profile = network.profile;
    const applied = this.applied.get(network)!;
    const s = this.suffixes.set(name);
    let allowRule: string | undefined;
    if (profile.allow.size > 0 && profile.allow.lookup(s) >= 0) allowRule = ruleText(s);
    for (let i = 0; i < profile.blockLists.length; i++) {
      const list = profile.blockLists[i]!;
      const rule = list.set.lookup(s);
      if (rule < 0) continue;
      if (allowRule !== undefined) return { kind: 'allowed', profile: profile.name, allowRule, overriddenList: list.name };
      const cache = applied.profileDecisions[i]!;
      // A disable lasts until an edge, which drops these decisions: kept per rule like a block.
      const d = cache.get(rule);
      if (d) return d;
      const made = applied.disabled
        ? { kind: 'allowed' as const, profile: profile.name, disabled: { by: applied.disabled, list: list.name, rule: ruleText(s) } }
        : blocked(profile, undefined, list.name, s);
      return this.remember(cache, rule, made);
    }
    let note: Partial<Extract<Decision, { kind: 'allowed' }>> | undefined;
    for (const np of applied.policies) {
      if (!this.inForce[np.index]) continue;
      const p = np.policy;
      for (const list of np.lists) {
        const rule = list.set.lookup(s);
        if (rule < 0) continue;
        if (allowRule !== undefined) return { kind: 'allowed', profile: profile.name, allowRule, overriddenList: list.name };
        if (!this.scheduled[np.index]) {
          note = { outsideSchedule: policyRef(p), ...note };
          continue;
        }
        if (np.disabled) {
          note = { disabled: { by: np.disabled, list: list.name, rule: ruleText(s), policy: policyRef(p) }, ...note };
          continue;
        }
        const networkException = this.networkException(network, applied.exceptions, list.name, now);
        if (networkException) {
          note = { exception: networkException, ...note };
          continue;
        }
        if (p.mode === 'dry-run') {
          note = { wouldBlock: { policy: policyRef(p), list: list.name, rule: ruleText(s) }, ...note };
          continue;
        }
        // Every name under one rule gets the same decision: build it once per rule, not per name.
        const known = list.decisions.get(rule);
        if (known) return known;
        const d = blocked(profile, p, list.name, s);
        const clientExceptions = this.clientExceptions(network, list.name, now);
        if (clientExceptions.length > 0) d.clientExceptions = clientExceptions;
        return this.remember(list.decisions, rule, d);
      }
    }
    // Most names are allowed with nothing to say: share one decision object per network.
    if (note === undefined) return this.plainAllowed(network);
    return { kind: 'allowed', profile: profile.name, ...note };
  }

  /** The network exception that lets `list` through on `network` now, if any (kept per instant). */
  private networkException(network: Network, cache: Map<string, ExceptionRef | null>, list: string, now: number): ExceptionRef | undefined {
    let e = cache.get(list);
    if (e === undefined) {
      e = this.findException(network, list, now, (x) => x.network === network.name) ?? null;
      cache.set(list, e);
    }
    return e ?? undefined;
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

/** The block decision for the rule that `s` last matched. */
function blocked(profile: CompiledProfile, p: CompiledPolicy | undefined, list: string, s: NameSuffixes): Extract<Decision, { kind: 'blocked' }> {
  const rule = s.text(s.suffix);
  const response = NXDOMAIN_SIGNALS.has(rule) && profile.response.mode !== 'nxdomain' ? { ...profile.response, mode: 'nxdomain' as const } : profile.response;
  return new BlockedDecision(profile.name, p, list, ruleText(s), rule === '' ? 0 : s.count - s.suffix, response, p?.reference);
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

/** The rule that `s` last matched, as written in a list (`*.` for subdomain-only rules). */
function ruleText(s: NameSuffixes): string {
  const rule = s.text(s.suffix);
  return s.below ? `*.${rule}` : rule;
}
