// The forwarding stage: pick the upstream group (conditional zones first, longest zone wins), ask
// it through the pool, keep the answer in the cache and render it for the client. Identical
// queries already in flight share one upstream exchange.
import type { UpstreamAddress } from '../config/schema.js';
import { scanAnswer, type AnswerBytes, type TtlClamp } from '../dns/answer-bytes.js';
import type { Query } from '../dns/wire.js';
import { DomainSet } from '../policy/domain-set.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { AnswerCache } from './answer-cache.js';

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

export interface ForwardResult {
  answer: AnswerBytes | undefined;
  upstream: string | undefined;
}

export class Forwarder {
  private readonly inFlight = new Map<string, Promise<ForwardResult>>();

  constructor(
    private readonly pool: UpstreamPool,
    private readonly cache: AnswerCache,
    private readonly clamp: () => TtlClamp,
  ) {}

  // Promise chains rather than async functions: this runs once per forwarded query, and an async
  // function keeps its whole frame on the heap while it waits.
  forward(servers: UpstreamAddress[], msg: Buffer, query: Query, cacheKey: string): Promise<ForwardResult> {
    let flight = this.inFlight.get(cacheKey);
    if (!flight) {
      const f = this.exchange(servers, msg, query, cacheKey);
      flight = f;
      this.inFlight.set(cacheKey, f);
      const done = () => {
        if (this.inFlight.get(cacheKey) === f) this.inFlight.delete(cacheKey);
      };
      void f.then(done, done);
    }
    return flight;
  }

  private exchange(servers: UpstreamAddress[], msg: Buffer, query: Query, cacheKey: string): Promise<ForwardResult> {
    return this.pool.resolve(servers, msg, query).then((result) => {
      if (!result.ok) return { answer: undefined, upstream: result.server };
      const answer = scanAnswer(result.reply, query.questionEnd, this.clamp());
      if (answer) this.cache.store(cacheKey, answer);
      return { answer, upstream: result.server };
    });
  }
}
