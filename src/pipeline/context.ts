// The request context that flows through the pipeline: listener → classify → decide → local answer
// or cache or upstream → response → query log.
import type { Query } from '../dns/wire.js';
import type { Decision, Network } from '../policy/policy-engine.js';

/** How a query reached sluice: plain UDP or TCP, DNS over TLS (RFC 7858) or over HTTPS (RFC 8484). */
export type Transport = 'udp' | 'tcp' | 'dot' | 'doh';

export const TRANSPORTS: readonly Transport[] = ['udp', 'tcp', 'dot', 'doh'];

/** A stored transport name back to the type; anything unknown reads as udp, as before DoT/DoH existed. */
export function asTransport(s: unknown): Transport {
  return s === 'tcp' || s === 'dot' || s === 'doh' ? s : 'udp';
}

export interface ClientInfo {
  address: string;
  port: number;
  transport: Transport;
  /** `address:port` of the listener the query arrived on. */
  listener: string;
  /** Network pinned by the listener's config, if any. */
  listenerNetwork: string | undefined;
  /**
   * DoH only: the network of the request path's client ID (`doh.client_ids`). It replaces the
   * network of the listener or address, and never admits a client that has none.
   */
  pathNetwork?: string;
}

/**
 * The name `sluice health` asks (RFC 6761 reserves .invalid, so it can never be a real lookup): it
 * is answered by sluice itself, before any network or policy, and never forwarded or logged, so the
 * probe tells whether this server answers, whatever its upstreams do and whoever asks.
 */
export const HEALTH_PROBE_NAME = 'health.sluice.invalid';

export type Outcome = 'allowed' | 'blocked' | 'refused' | 'error' | 'malformed';

export interface RequestContext {
  readonly msg: Buffer;
  readonly query: Query;
  readonly client: ClientInfo;
  /** Epoch ms from the (injectable) clock: policies and the log's timestamps. */
  readonly startedAt: number;
  /** performance.now() at arrival: durations. */
  readonly startedHr: number;
  network?: Network;
  decision?: Decision;
  outcome?: Outcome;
  cacheHit?: boolean;
  upstream?: string;
  /** Answered from an expired cache entry because no upstream answered (RFC 8767). */
  stale?: boolean;
  rateLimited?: boolean;
  rcode?: number;
  /** The bytes to send; undefined when the message is dropped. */
  response?: Buffer;
  /** The health probe (HEALTH_PROBE_NAME): answered here, not counted in the metrics nor logged. */
  probe?: boolean;
}

/** A stage answers (bytes) or returns undefined to let the next stage try. Only forwarding awaits. */
export type Answer = Buffer | undefined;
