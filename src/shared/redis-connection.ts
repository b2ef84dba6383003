// Connections to Redis from config: a URL, Sentinel or Cluster (ioredis handles all three). Commands
// fail at once while disconnected (no offline queue): callers treat Redis as optional, and no DNS
// query ever waits on it. ioredis reconnects with a capped backoff.
import { readFileSync as readFile } from 'node:fs';
import { resolve } from 'node:path';
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
    editsLog: `${prefix}edits:log`,
    editsVersion: `${prefix}edits:version`,
    editsEpoch: `${prefix}edits:epoch`,
    channel: `${prefix}events`,
    audit: `${prefix}audit`,
    queryLog: `${prefix}querylog`,
    instances: `${prefix}instances`,
    cache: `${prefix}cache:`,
  };
}

/** Connection options from config: the password from the environment wins over the URL's, TLS files are read here. */
export function connectionOptions(cfg: RedisConfig, baseDir = process.cwd()): Record<string, unknown> {
  const password = process.env[cfg.password_env] || undefined;
  const out: Record<string, unknown> = {};
  if (cfg.url) {
    // Parsed here rather than by ioredis: given a URL with an ACL user and no password
    // ("redis://sluice@host"), ioredis lets the URL's empty password override the one we pass.
    const u = new URL(cfg.url);
    out.host = u.hostname.replace(/^\[|\]$/g, '');
    out.port = u.port ? Number(u.port) : 6379;
    const db = u.pathname.replace(/^\//, '');
    if (db) out.db = Number(db);
    if (u.username) out.username = decodeURIComponent(u.username);
    if (u.password) out.password = decodeURIComponent(u.password);
  }
  if (cfg.username) out.username = cfg.username;
  if (password) out.password = password;
  const tls = typeof cfg.tls === 'object' ? cfg.tls : cfg.tls || cfg.url?.startsWith('rediss://') ? {} : undefined;
  if (tls) {
    // Relative paths are the config file's, as for list files.
    const readFileSync = (f: string) => readFile(resolve(baseDir, f));
    out.tls = {
      ...(tls.ca_file ? { ca: readFileSync(tls.ca_file) } : {}),
      ...(tls.cert_file ? { cert: readFileSync(tls.cert_file) } : {}),
      ...(tls.key_file ? { key: readFileSync(tls.key_file) } : {}),
      ...(tls.server_name ? { servername: tls.server_name } : {}),
    };
  }
  return out;
}

export function createRedis(cfg: RedisConfig, opts: { lazy?: boolean; offlineQueue?: boolean; baseDir?: string } = {}): RedisClient {
  const common = {
    lazyConnect: opts.lazy ?? false,
    enableOfflineQueue: opts.offlineQueue ?? false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5000),
    ...connectionOptions(cfg, opts.baseDir),
  };
  const { Cluster, Redis } = load();
  const client = cfg.cluster
    ? new Cluster(cfg.cluster.nodes, { redisOptions: common, enableOfflineQueue: common.enableOfflineQueue, clusterRetryStrategy: common.retryStrategy })
    : cfg.sentinel
      ? new Redis({ ...common, sentinels: cfg.sentinel.sentinels, name: cfg.sentinel.name })
      : new Redis(common);
  client.on('error', (err: Error) => lastErrors.set(client, err));
  return client;
}

// The connection error behind a failed command ("max retries reached" says nothing by itself).
const lastErrors = new WeakMap<RedisClient, Error>();

export interface RedisProblem {
  kind: 'auth' | 'tls' | 'connection';
  message: string;
}

/** Pure: what a client error means for an admin — credentials, TLS, or the server simply not there. */
export function classifyRedisError(err: Error & { code?: string }): RedisProblem {
  const m = err.message ?? String(err);
  if (/WRONGPASS|NOAUTH|NOPERM|invalid username-password|invalid password|AUTH.*without any password/i.test(m)) return { kind: 'auth', message: m.replace(/^ReplyError: /, '') };
  if (/^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_|ERR_OSSL)/.test(err.code ?? '') || /certificate|SSL routines|TLS|wrong version number|altnames/i.test(m))
    return { kind: 'tls', message: m };
  return { kind: 'connection', message: m };
}

/** An error of a CLI call, said for an admin: what failed and where, not a client stack. */
export function describeRedisError(err: unknown, cfg: RedisConfig, client?: RedisClient): string {
  const where = cfg.url ? cfg.url.replace(/\/\/[^@/]*@/, '//') : cfg.sentinel ? `sentinel group ${cfg.sentinel.name}` : 'the redis cluster';
  const cause = client && /max retries|did not answer within|Stream isn't writeable/.test((err as Error).message) ? lastErrors.get(client) : undefined;
  const p = classifyRedisError(cause ?? (err as Error));
  if (p.kind === 'auth') return `redis at ${where} refused the credentials (${p.message}); check redis.password_env / the user in redis.url`;
  if (p.kind === 'tls') return `TLS to redis at ${where} failed: ${p.message}`;
  if (/ECONNREFUSED/.test(p.message)) return `redis at ${where} refused the connection (is it running?)`;
  if (/did not answer within/.test(p.message)) return `redis at ${where} ${p.message.replace(/^redis /, '')}`;
  return `redis at ${where}: ${p.message}`;
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
