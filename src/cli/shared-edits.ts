// The shared edits a CLI command decides under: read from Redis, or — when Redis cannot be reached
// — from the newest snapshot a local instance keeps (what it enforces while Redis is away).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { stateDir } from '../config/paths.js';
import type { LoadedRules } from '../rules/load.js';
import { findEdit, readEdits, type WrittenEdit } from '../shared/edit-store.js';
import { editsBehind, memberName, parseHeartbeats } from '../shared/instance-health.js';
import { createRedis, describeRedisError, redisKeys, withDeadline, type RedisClient } from '../shared/redis-connection.js';
import { NO_EDITS, parseSnapshot, type RuntimeEdits } from '../rules/edits.js';

export interface CliEdits {
  edits: RuntimeEdits;
  from: 'none' | 'redis' | 'snapshot';
  /** Said to the admin when the edits may not be Redis's current ones. */
  note?: string;
}

export async function sharedEditsForCli(r: LoadedRules): Promise<CliEdits> {
  const cfg = r.loaded.config.redis;
  if (!cfg) return { edits: NO_EDITS, from: 'none' };
  const redis = cliRedis(r);
  try {
    return { edits: await withDeadline(readEdits(redis, cfg.key_prefix), 3000), from: 'redis' };
  } catch (err) {
    const why = describeRedisError(err, cfg, redis);
    const snap = newestSnapshot(stateDir(r.loaded.config, r.loaded.baseDir));
    if (!snap) return { edits: NO_EDITS, from: 'none', note: `${why}; no local snapshot either: shared edits are not included` };
    return { edits: snap.edits, from: 'snapshot', note: `${why}; using the shared edits of the local snapshot of ${snap.time.toISOString()}` };
  } finally {
    redis.disconnect();
  }
}

export function cliRedis(r: LoadedRules): RedisClient {
  const redis = createRedis(r.loaded.config.redis!, { offlineQueue: true, baseDir: r.loaded.baseDir });
  redis.on('error', () => {}); // each call reports its own failure
  return redis;
}

function newestSnapshot(dir: string): { edits: RuntimeEdits; time: Date } | undefined {
  let best: { file: string; time: Date } | undefined;
  try {
    for (const f of readdirSync(dir)) {
      if (!/^redis-snapshot(\.\d+)?\.json$/.test(f)) continue;
      const time = statSync(join(dir, f)).mtime;
      if (!best || time > best.time) best = { file: join(dir, f), time };
    }
    return best && { edits: parseSnapshot(readFileSync(best.file, 'utf8')), time: best.time };
  } catch {
    return undefined;
  }
}

export interface Confirmation {
  /** Instances (with a fresh heartbeat) that enforce the edit. */
  applied: string[];
  /** Instances that did not confirm it in time. */
  waiting: string[];
}

/** Wait (bounded) until every live instance reports it enforces the edit. */
export async function confirmEdit(redis: RedisClient, prefix: string, heartbeatMs: number, edit: WrittenEdit, waitMs = 2 * heartbeatMs + 1000): Promise<Confirmation> {
  const k = redisKeys(prefix);
  const deadline = Date.now() + waitMs;
  let at = { epoch: edit.epoch, version: edit.version };
  for (;;) {
    const beats = parseHeartbeats(await redis.hgetall(k.instances)).filter((b) => Date.now() - b.time < heartbeatMs * 5);
    const applied = beats.filter((b) => editsBehind(b, at) === 0).map(memberName);
    const waiting = beats.filter((b) => editsBehind(b, at) > 0).map(memberName);
    if (waiting.length === 0 || Date.now() >= deadline) return { applied: applied.sort(), waiting: waiting.sort() };
    await new Promise((r) => setTimeout(r, 100));
    // A merge (Redis lost its log meanwhile) renumbers the edit: follow it to where it is now.
    if (beats.some((b) => b.epoch !== at.epoch)) at = (await findEdit(redis, prefix, edit.id)) ?? at;
  }
}
