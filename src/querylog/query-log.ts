// The query log stage at the end of the pipeline: applies each network's privacy settings (log all,
// only blocked, or nothing; pseudonymise the client) and hands events to the buffer. Called once
// per answered query; never blocks it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
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
    if (policy.level === 'blocked' && ctx.outcome !== 'blocked' && !(ctx.decision?.kind === 'allowed' && ctx.decision.wouldBlock)) return;
    const client = policy.pseudonymize ? this.pseudonymizer.token(ctx.client.address) : ctx.client.address;
    this.buffer.push(eventFromContext(ctx, this.instance, client, durationMs));
  }
}

/** This resolver's name in the log: `query_log.instance`, else the host name. */
export function instanceName(config: Config): string {
  return config.query_log.instance ?? hostname();
}

/** The pseudonymisation key: from the environment, else a key generated once and kept in `file` (mode 600). */
export function pseudonymKey(envVar: string, file: string): Buffer {
  const fromEnv = process.env[envVar];
  if (fromEnv) return Buffer.from(fromEnv, 'utf8');
  const read = () => Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  if (existsSync(file)) {
    const k = read();
    if (k.length === 32) return k;
  }
  const key = randomBytes(32);
  mkdirSync(dirname(file), { recursive: true });
  try {
    writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    return key;
  } catch {
    // Another worker created it first; it writes the whole key in one call, so wait until it is there.
    for (let i = 0; i < 50; i++) {
      const k = read();
      if (k.length === 32) return k;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
    throw new Error(`${file}: unreadable pseudonymisation key`);
  }
}
