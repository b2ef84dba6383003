// Which profiles get the resolver-bypass list (public DoH/DoT endpoints, the Firefox canary,
// iCloud Private Relay) without naming it: every profile that blocks anything, unless it opts out.
// A network that blocks apps but lets devices resolve around sluice would not block them at all.
import type { Config } from './schema.js';

/** The list that `block_bypass` adds (see the profile schema). */
export const BYPASS_LIST = 'doh-bypass';

/** Whether a profile gets the bypass list: it opts in (the default) and blocks something. */
export function bypassApplies(config: Config, profile: string): boolean {
  const p = config.profiles[profile];
  if (!p || !p.block_bypass) return false;
  if (p.block.length > 0) return true;
  const networks = Object.entries(config.networks)
    .filter(([, n]) => n.profile === profile)
    .map(([n]) => n);
  return Object.values(config.policies).some((pol) => pol.profiles.includes(profile) || pol.networks.some((n) => networks.includes(n)));
}
