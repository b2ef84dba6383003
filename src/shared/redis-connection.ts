// Connections to Redis from config: a URL, Sentinel or Cluster (ioredis handles all three). Commands
// fail at once while disconnected (no offline queue): callers treat Redis as optional, and no DNS
// query ever waits on it. ioredis reconnects with a capped backoff.
import { createRequire } from 'node:module';
import type { Cluster, Redis } from 'ioredis';
import type { RedisConfig } from '../config/schema.js';

// ioredis is loaded on first use: most deployments run standalone, and loading it took ~35 ms of
// every start (and of every CLI command).
let ioredis: typeof import('ioredis') | undefined;
const load = () => (ioredis ??= createRequire(import.meta.url)('ioredis') as typeof import('ioredis'));

export type RedisClient = Redis | Cluster;

export function redisKeys(prefix: string) {
  return {
    edits: `${prefix}edits`,
    editsVersion: `${prefix}edits:version`,
    channel: `${prefix}events`,
    audit: `${prefix}audit`,
    queryLog: `${prefix}querylog`,
    instances: `${prefix}instances`,
    cache: `${prefix}cache:`,
  };
}

export function createRedis(cfg: RedisConfig, opts: { lazy?: boolean; offlineQueue?: boolean } = {}): RedisClient {
  const password = process.env[cfg.password_env] || undefined;
  const common = {
    lazyConnect: opts.lazy ?? false,
    enableOfflineQueue: opts.offlineQueue ?? false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5000),
    ...(password ? { password } : {}),
    ...(cfg.tls ? { tls: {} } : {}),
  };
  const { Cluster, Redis } = load();
  if (cfg.cluster) return new Cluster(cfg.cluster.nodes, { redisOptions: common, enableOfflineQueue: common.enableOfflineQueue, clusterRetryStrategy: common.retryStrategy });
  if (cfg.sentinel) return new Redis({ ...common, sentinels: cfg.sentinel.sentinels, name: cfg.sentinel.name });
  return new Redis(cfg.url!, common);
}

/** `p`, or a rejection after `ms` — for CLI calls, which must not hang on an unreachable Redis. */
export async function withDeadline<T>(p: Promise<T>, ms: number, what = 'redis'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what} did not answer within ${ms / 1000} s`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
