// What one network enforces at one instant, as RPZ rules: its profile's block lists, the lists of
// the enforce policies in force and inside their schedule; dry-run policies left out. A profile's
// allow entries and the network's active policy exceptions become passthru rules. Pure.
//
// Client exceptions (exceptions with `clients:`) are about single addresses behind the resolver
// that receives the zone; RPZ names cannot say "for this client only", so they are not in the zone.
import type { DomainSet } from '../match/domain-set.js';
import { exceptionActive, inSchedule, isInForce } from '../policy/policy.js';
import type { PolicyEngine } from '../policy/policy-engine.js';

export interface NetworkRules {
  block: string[];
  passthru: string[];
}

/** Whether `set` covers every name `rule` (`d` or `*.d`) covers. */
function covers(set: DomainSet, rule: string): boolean {
  if (set.size === 0) return false;
  if (rule.startsWith('*.')) {
    const d = rule.slice(2);
    // `*` cannot be in a rule: only a rule for d, an ancestor, or `*.d`/`*.ancestor` matches it
    return set.match(`*.${d}`) !== undefined;
  }
  return set.match(rule) !== undefined;
}

export function networkRules(engine: PolicyEngine, sets: ReadonlyMap<string, DomainSet>, networkName: string, now: number): NetworkRules | undefined {
  const network = engine.networks.get(networkName);
  if (!network) return undefined;
  const { profile } = network;
  const allow = profile.allow;
  const inForce = network.policies.filter((p) => isInForce(p, now));
  // As the engine decides: a network exception of any in-force policy blocking a list lets it through.
  const excepted = (list: string) => inForce.some((q) => q.lists.includes(list) && q.exceptions.some((e) => e.network === networkName && exceptionActive(e, now) && (!e.lists || e.lists.has(list))));
  const blocking: DomainSet[] = profile.blockLists.map((l) => l.set);
  const exceptedSets: DomainSet[] = [];
  for (const p of inForce) {
    if (p.mode !== 'enforce' || !inSchedule(p, now)) continue;
    for (const list of p.lists) {
      const set = sets.get(list);
      if (set) (excepted(list) ? exceptedSets : blocking).push(set);
    }
  }
  const block = new Set<string>();
  for (const set of blocking) for (const r of set.rules()) if (!covers(allow, r)) block.add(r);
  const passthru = new Set<string>(allow.rules());
  // an excepted list's rule stays blocked where a list that blocks covers it
  for (const set of exceptedSets) for (const r of set.rules()) if (!covers(allow, r) && !blocking.some((b) => covers(b, r))) passthru.add(r);
  return { block: [...block], passthru: [...passthru] };
}
