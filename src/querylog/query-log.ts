// The query log stage at the end of the pipeline: applies each network's privacy settings (log all,
// only blocked, or nothing; pseudonymise the client) and hands events to the buffer. Called once
// per answered query; never blocks it.
import { hostname } from 'node:os';
import type { Config } from '../config/schema.js';
import type { RequestContext } from '../pipeline/context.js';
import { QueryLogBuffer, type QueryLogSink } from './buffer.js';
import { eventFromContext } from './event.js';
import { Pseudonymizer } from './pseudonymizer.js';

interface NetworkLogPolicy {
  level: 'all' | 'blocked' | 'none';
  pseudonymize: boolean;
}

// Clients in no network (refused) are logged: they show misconfigured or probing devices.
const OUTSIDE: NetworkLogPolicy = { level: 'all', pseudonymize: false };

export class QueryLog {
  readonly buffer: QueryLogBuffer;
  private networks = new Map<string, NetworkLogPolicy>();
  readonly instance: string;

  constructor(
    config: Config,
    sinks: QueryLogSink[],
    private readonly pseudonymizer: Pseudonymizer,
  ) {
    this.instance = instanceName(config);
    this.buffer = new QueryLogBuffer(config.query_log.buffer_events, sinks);
    this.configure(config);
  }

  configure(config: Config): void {
    this.networks = new Map(Object.entries(config.networks).map(([n, c]) => [n, c.log]));
  }

  record(ctx: RequestContext, durationMs: number): void {
    const policy = ctx.network ? (this.networks.get(ctx.network.name) ?? OUTSIDE) : OUTSIDE;
    if (policy.level === 'none') return;
    if (policy.level === 'blocked' && ctx.outcome !== 'blocked' && !(ctx.decision?.kind === 'allowed' && (ctx.decision.wouldBlock || ctx.decision.disabled))) return;
    const client = policy.pseudonymize ? this.pseudonymizer.token(ctx.client.address) : ctx.client.address;
    this.buffer.push(eventFromContext(ctx, this.instance, client, durationMs));
  }
}

/** This resolver's name in the log: `query_log.instance`, else the host name. */
export function instanceName(config: Config): string {
  return config.query_log.instance ?? hostname();
}
