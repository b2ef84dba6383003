// The rules an instance enforces: its config and list files with the shared edits on top. The
// server swaps these in; `sluice check` and `sluice lists show` compute them the same way, so the
// CLI explains what the server does.
import { RuleSet } from './rule-set.js';
import type { DomainSet } from '../match/domain-set.js';
import { editsHash, overlay, OVERRIDES_LIST, type RuntimeEdits } from './edits.js';
import { parseOverrideRule, type OverrideEntry } from '../policy/overrides.js';
import { policyVersion, type LoadedRules } from './load.js';

export interface EffectiveRules {
  rules: RuleSet;
  /** Each list's set as enforced (files, plus and minus the shared edits). */
  sets: ReadonlyMap<string, DomainSet>;
  /** The policy version: equal versions decide every query the same way. */
  version: string;
}

export function effectiveRules(loaded: LoadedRules, edits: RuntimeEdits | undefined): EffectiveRules {
  if (!edits || edits.version === 0) return { rules: loaded.rules, sets: loaded.sets, version: loaded.version };
  const sets = overlay(loaded.sets, edits);
  const overrides = [...loaded.overrides, ...sharedOverrides(edits)];
  return { rules: new RuleSet(loaded.loaded.config, sets, loaded.system, loaded.loaded.baseDir, loaded.certName, overrides), sets, version: policyVersion(loaded, editsHash(edits)) };
}

/** The runtime overrides in the shared edit log (an entry that does not parse is left out). */
export function sharedOverrides(edits: RuntimeEdits): OverrideEntry[] {
  return (edits.lists[OVERRIDES_LIST]?.add ?? []).flatMap((rule) => parseOverrideRule(rule) ?? []);
}
