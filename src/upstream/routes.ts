// Which upstream group a name goes to: conditional zones first (the longest zone wins), else the
// default group. Compiled once per config, asked once per forwarded query.
import type { UpstreamAddress } from '../config/schema.js';
import { DomainSet } from '../match/domain-set.js';

export interface UpstreamRoutes {
  default: UpstreamAddress[];
  zones: DomainSet;
  zoneServers: Map<string, UpstreamAddress[]>;
}

export function buildRoutes(defaults: UpstreamAddress[], conditional: { zone: string; servers: UpstreamAddress[] }[]): UpstreamRoutes {
  const zones = new DomainSet();
  const zoneServers = new Map<string, UpstreamAddress[]>();
  for (const c of conditional) {
    const zone = c.zone.toLowerCase().replace(/\.$/, '');
    zones.add(zone);
    zoneServers.set(zone, c.servers);
  }
  return { default: defaults, zones, zoneServers };
}

export function routeFor(routes: UpstreamRoutes, name: string): UpstreamAddress[] {
  if (routes.zoneServers.size === 0) return routes.default;
  const m = routes.zones.match(name);
  return (m && routes.zoneServers.get(m.rule)) || routes.default;
}
