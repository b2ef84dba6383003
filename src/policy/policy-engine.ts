// Decides, for a network and a query name, whether the name is blocked and by what. Pure: built
// from config values and loaded domain sets, no I/O and no clock.
import type { BlockResponseConfig, Config } from '../config/schema.js';
import { DomainSet } from './domain-set.js';
import { parseRule } from '../lists/formats.js';

export type Decision =
  | { kind: 'allowed'; profile: string; allowRule?: string; overriddenList?: string }
  | {
      kind: 'blocked';
      profile: string;
      list: string;
      rule: string;
      /** Labels in `rule`, so the answer's SOA can name the blocked zone. */
      ruleLabels: number;
      /** Extended DNS Error text (RFC 8914) that tells `dig` users why. */
      reason: string;
      response: BlockResponseConfig;
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
}

// Names whose only useful answer is NXDOMAIN, whatever the profile's block mode: a positive answer
// (such as 0.0.0.0) to Firefox's canary tells it DNS-over-HTTPS is allowed, and Apple devices only
// fall back from iCloud Private Relay to the network's resolver on NXDOMAIN.
export const NXDOMAIN_SIGNALS: ReadonlySet<string> = new Set(['use-application-dns.net', 'mask.icloud.com', 'mask-h2.icloud.com']);

// Decisions are memoised per profile and name: the same names are asked over and over, and a
// memo hit is one Map lookup instead of a suffix walk per list.
const MEMO_MAX = 100_000;

export class PolicyEngine {
  readonly networks = new Map<string, Network>();
  readonly profiles = new Map<string, CompiledProfile>();
  private readonly memo = new Map<CompiledProfile, Map<string, Decision>>();

  constructor(config: Config, lists: ReadonlyMap<string, DomainSet>) {
    for (const [name, p] of Object.entries(config.profiles)) {
      const allow = new DomainSet();
      for (const a of p.allow) {
        const r = parseRule(a, 'plain');
        if (r && 'entries' in r) for (const e of r.entries) allow.add(e.domain, e.subdomainsOnly);
      }
      const profile: CompiledProfile = {
        name,
        blockLists: p.block.map((l) => ({ name: l, set: lists.get(l) ?? new DomainSet() })),
        allow,
        response: p.block_response,
      };
      this.profiles.set(name, profile);
      this.memo.set(profile, new Map());
    }
    for (const [name, n] of Object.entries(config.networks)) {
      const profile = this.profiles.get(n.profile);
      if (profile) this.networks.set(name, { name, profile });
    }
  }

  decide(network: Network, name: string): Decision {
    const memo = this.memo.get(network.profile)!;
    const hit = memo.get(name);
    if (hit) return hit;
    const d = evaluate(network.profile, name);
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(name, d);
    return d;
  }
}

/** The rules of one profile applied to one name: allow entries win over every block list. */
export function evaluate(profile: CompiledProfile, name: string): Decision {
  for (const list of profile.blockLists) {
    const m = list.set.match(name);
    if (!m) continue;
    const allowed = profile.allow.match(name);
    if (allowed) return { kind: 'allowed', profile: profile.name, allowRule: ruleText(allowed), overriddenList: list.name };
    const rule = ruleText(m);
    return {
      kind: 'blocked',
      profile: profile.name,
      list: list.name,
      rule,
      ruleLabels: m.rule === '' ? 0 : m.rule.split('.').length,
      reason: `sluice: blocked by list ${list.name} (rule ${rule}, profile ${profile.name})`,
      response: NXDOMAIN_SIGNALS.has(m.rule) && profile.response.mode !== 'nxdomain' ? { ...profile.response, mode: 'nxdomain' } : profile.response,
    };
  }
  return { kind: 'allowed', profile: profile.name };
}

function ruleText(m: { rule: string; subdomainsOnly: boolean }): string {
  return m.subdomainsOnly ? `*.${m.rule}` : m.rule;
}
