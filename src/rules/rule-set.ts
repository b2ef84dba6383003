// Everything a config decides, compiled for the hot path: the policy engine, the network table,
// the pre-encoded blocked answers per profile, the upstream routes. Built off the hot path by a
// load or reload (or a shared edit) and swapped in whole; never changed after.
import type { Config, UpstreamAddress } from '../config/schema.js';
import { BlockedAnswers } from '../dns/blocked-answers.js';
import { buildDdrZone, type DdrZone } from '../dns/ddr.js';
import { DomainSet } from '../match/domain-set.js';
import { NetworkTable } from '../match/network-table.js';
import { PolicyEngine, type Network } from '../policy/policy-engine.js';
import { CompiledOverrides, type OverrideEntry } from '../policy/overrides.js';
import { buildRoutes, expandUpstreams, type UpstreamRoutes } from '../upstream/routes.js';

/** Everything a config decides, compiled for the hot path. */
export class RuleSet {
  readonly engine: PolicyEngine;
  readonly table: NetworkTable<Network>;
  readonly blocked = new Map<string, BlockedAnswers>();
  readonly routes: UpstreamRoutes;
  readonly rebindingAllow = new DomainSet();
  /** For names that get NXDOMAIN whatever the profile says (see NXDOMAIN_SIGNALS). */
  readonly nxdomain = new Map<string, BlockedAnswers>();
  /** resolver.arpa and this resolver's DDR designation (RFC 9462); undefined when `ddr.enabled` is off. */
  readonly ddr: DdrZone | undefined;

  /**
   * Pure: `system` is what the loader read from /etc/resolv.conf for `system` upstreams (read once
   * per load, not again for every shared edit that recompiles the rules). `baseDir` is the config
   * file's directory, against which an upstream's `ca_file` resolves. `certName` is the first DNS
   * name of the DoT/DoH certificate (read by the loader), DDR's default resolver name.
   * `overrides` are the runtime overrides in force or still to end (file and shared edits).
   */
  constructor(
    readonly config: Config,
    lists: ReadonlyMap<string, DomainSet>,
    system: readonly UpstreamAddress[] = [],
    baseDir = '.',
    certName?: string,
    overrides: readonly OverrideEntry[] = [],
  ) {
    this.engine = new PolicyEngine(config, lists, overrides.length > 0 ? new CompiledOverrides(overrides) : undefined);
    const ranges = [];
    for (const [name, n] of Object.entries(config.networks)) {
      const network = this.engine.networks.get(name);
      if (network) for (const cidr of n.cidrs) ranges.push({ cidr, network });
    }
    this.table = new NetworkTable(ranges);
    for (const [name, p] of this.engine.profiles) {
      this.blocked.set(name, new BlockedAnswers(p.response));
      this.nxdomain.set(name, new BlockedAnswers({ ...p.response, mode: 'nxdomain' }));
    }
    const trustAd = config.upstreams.trust_ad;
    const expand = (list: Config['upstreams']['default']): UpstreamAddress[] => expandUpstreams(list, system, trustAd, baseDir);
    for (const z of config.hardening.rebinding_allow) this.rebindingAllow.add(z.toLowerCase().replace(/\.$/, ''));
    this.ddr = buildDdrZone(config, certName);
    this.routes = buildRoutes(
      expand(config.upstreams.default),
      config.upstreams.conditional.map((c) => ({ zone: c.zone, servers: expand(c.servers) })),
    );
  }
}
