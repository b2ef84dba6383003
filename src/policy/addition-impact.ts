// What adding rules to a list would change, worked out before the edit: which lists already cover
// each rule, and which policy exceptions the addition would defeat. A profile's block lists come
// before policies (see policy-engine.ts), so a name added to a list that a profile blocks is
// blocked on every network of that profile, whatever exception a policy grants there.
//
// Pure: built from the config and the loaded domain sets, with the PolicyEngine the resolver
// decides with (no second implementation of matching or precedence); the time is passed in.
import type { Config } from '../config/schema.js';
import { BYPASS_LIST, bypassApplies } from '../config/bypass.js';
import { DomainSet } from '../match/domain-set.js';
import { PolicyEngine, type Decision } from './policy-engine.js';
import { boundaries, exceptionActive } from './policy.js';

export interface Coverage {
  /** The rule being added. */
  rule: string;
  /** The list that has it already, and the rule there: the same one, a parent `x`, or a `*.x`. */
  list: string;
  by: string;
  /** What blocks with that list ("policy app-ban", "profile staff"); empty when nothing does. */
  usedBy: string[];
}

export interface DefeatedException {
  policy: string;
  /** Index in the policy's `exceptions`. */
  index: number;
  /** "network comms" or "clients 10.0.0.1, 10.0.0.2". */
  scope: string;
  /** The lists it excepts; undefined: all of the policy's. */
  lists: string[] | undefined;
  reason: string;
  approvedBy: string;
  until: string | undefined;
  /** Networks on which the addition would block what the exception lets through. */
  networks: string[];
  /** The names (as rules) it would block there. */
  names: string[];
  /** When it starts to matter: `now`, or later (when the policy comes into force). */
  from: number;
}

/** A rule as a name to decide. `*.x` stands for any name below x: no rule has a `*` label. */
const probeName = (rule: string) => rule;

function addRule(set: DomainSet, rule: string): void {
  if (rule.startsWith('*.')) set.add(rule.slice(2), true);
  else set.add(rule);
}

/** What blocks with `list`: profiles (the bypass list also where it is implied) and policies. */
export function usersOf(config: Config, list: string): string[] {
  const profiles = Object.entries(config.profiles)
    .filter(([name, p]) => p.block.includes(list) || (list === BYPASS_LIST && bypassApplies(config, name)))
    .map(([name]) => `profile ${name}`);
  const policies = Object.entries(config.policies)
    .filter(([, p]) => p.block.includes(list))
    .map(([id]) => `policy ${id}`);
  return [...policies, ...profiles];
}

/** For each rule, every list that already covers it (apart from the same rule in `list` itself). */
export function coverage(config: Config, sets: ReadonlyMap<string, DomainSet>, list: string, rules: readonly string[]): Coverage[] {
  const out: Coverage[] = [];
  for (const rule of rules) {
    for (const [name, set] of sets) {
      const m = set.match(probeName(rule));
      if (!m) continue;
      const by = m.subdomainsOnly ? `*.${m.rule}` : m.rule;
      if (name === list && by === rule) continue; // "already listed": the edit says so itself
      out.push({ rule, list: name, by, usedBy: usersOf(config, name) });
    }
  }
  return out;
}

/** The config with every policy in its schedule at all times. */
function withoutSchedules(config: Config): Config {
  const policies: Config['policies'] = {};
  for (const [id, p] of Object.entries(config.policies)) {
    const { schedule: _schedule, ...rest } = p;
    policies[id] = rest;
  }
  return { ...config, policies };
}

/** Exceptions that `before` applies and `after` does not, for a name that `after` blocks. */
function lostExceptions(before: Decision, after: Decision, now: number): { policy: string; index: number }[] {
  if (after.kind !== 'blocked') return [];
  if (before.kind === 'allowed') return before.exception ? [{ policy: before.exception.policy, index: before.exception.index }] : [];
  // Blocked before too, but with client exceptions that let some clients through.
  return (before.clientExceptions ?? [])
    .filter((x) => exceptionActive(x.exception, now))
    .filter((x) => !after.clientExceptions?.some((y) => y.policy.id === x.policy.id && y.exception.index === x.exception.index))
    .map((x) => ({ policy: x.policy.id, index: x.exception.index }));
}

/**
 * The policy exceptions, active now or later, that adding `rules` to `list` would defeat: names
 * that an exception lets through on some network (or for some clients) and that the grown list
 * would block there. Decided at `now` and at every later instant a policy or exception starts or
 * ends; schedules are left out, since an exception matters in every window of its policy.
 */
export function defeatedExceptions(config: Config, sets: ReadonlyMap<string, DomainSet>, list: string, rules: readonly string[], now: number): DefeatedException[] {
  if (rules.length === 0) return [];
  const cfg = withoutSchedules(config);
  const grown = new DomainSet();
  for (const r of sets.get(list)?.rules() ?? []) addRule(grown, r);
  for (const r of rules) addRule(grown, r);
  const before = new PolicyEngine(cfg, sets);
  const after = new PolicyEngine(cfg, new Map([...sets, [list, grown]]));

  // Names to decide: each added rule, and each rule of an excepted list that an added rule
  // covers (adding bytedance.com defeats an exception for sf16-website.bytedance.com).
  const added = new DomainSet();
  for (const r of rules) addRule(added, r);
  const names = new Set(rules.map(probeName));
  for (const p of before.policies) {
    for (const e of p.exceptions) {
      if (!exceptionActive(e, now)) continue;
      for (const l of e.lists ?? p.lists) for (const r of sets.get(l)?.rules() ?? []) if (added.match(probeName(r))) names.add(probeName(r));
    }
  }
  const instants = [...new Set([now, ...before.policies.flatMap(boundaries).filter((t) => t > now)])].sort((a, b) => a - b);

  const found = new Map<string, DefeatedException>();
  for (const t of instants) {
    for (const network of before.networks.values()) {
      const grownNetwork = after.networks.get(network.name)!;
      for (const name of names) {
        for (const lost of lostExceptions(before.decide(network, name, t), after.decide(grownNetwork, name, t), t)) {
          const key = `${lost.policy}#${lost.index}`;
          let d = found.get(key);
          if (!d) {
            const e = config.policies[lost.policy]!.exceptions[lost.index]!;
            d = {
              policy: lost.policy,
              index: lost.index,
              scope: e.network !== undefined ? `network ${e.network}` : `clients ${e.clients!.join(', ')}`,
              lists: e.lists,
              reason: e.reason,
              approvedBy: e.approved_by,
              until: e.until,
              networks: [],
              names: [],
              from: t,
            };
            found.set(key, d);
          }
          if (!d.networks.includes(network.name)) d.networks.push(network.name);
          if (!d.names.includes(name)) d.names.push(name);
        }
      }
    }
  }
  return [...found.values()].sort((a, b) => a.policy.localeCompare(b.policy) || a.index - b.index);
}

/** One line per rule: where it is covered already. */
export function describeCoverage(c: Coverage): string {
  return c.usedBy.length > 0
    ? `${c.rule} is already blocked by list ${c.list} (rule ${c.by}; ${c.usedBy.join(', ')})`
    : `${c.rule} is already in list ${c.list} (rule ${c.by}), which no profile or policy uses`;
}

/** The exception, named so that whoever approved it can be asked: policy, scope, lists, end, reason. */
export function describeException(d: DefeatedException): string {
  const lists = d.lists ? `lists ${d.lists.join(', ')}` : 'all its lists';
  return `policy ${d.policy}'s exception for ${d.scope} (${lists}; ${d.until ? `until ${d.until}` : 'no end date'}): "${d.reason}", approved by ${d.approvedBy}`;
}

/** Why an addition is refused, and how to make it anyway. */
export function describeDefeats(list: string, defeats: readonly DefeatedException[], now: number): string {
  const lines = defeats.map((d) => {
    const when = d.from > now ? ` from ${new Date(d.from).toISOString().slice(0, 10)}` : '';
    // An import can bring thousands: name a few.
    const names = d.names.length > 5 ? `${d.names.slice(0, 5).join(', ')} and ${d.names.length - 5} more` : d.names.join(', ');
    return `  ${names} on ${d.networks.length === 1 ? 'network' : 'networks'} ${d.networks.join(', ')}${when}: ${describeException(d)}`;
  });
  return [
    `adding to list ${list} would block what a policy exception lets through (a profile's list is not subject to a policy's exceptions):`,
    ...lines,
    '  to add it anyway, give --override-exception (the audit log records the exception overridden)',
  ].join('\n');
}
