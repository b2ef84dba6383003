// Runtime list edits in Redis: read them all, or apply one atomically (WATCH/MULTI on the version)
// with its audit record, then announce it on the channel so every instance applies it at once.
import type { RedisClient } from './redis-connection.js';
import { redisKeys } from './redis-connection.js';
import { applyEdit, type ListEdits, type RuntimeEdits } from './runtime-edits.js';
import type { AuditRecord } from '../lists/list-editor.js';

export async function readEdits(redis: RedisClient, prefix: string): Promise<RuntimeEdits> {
  const k = redisKeys(prefix);
  const [version, all] = await Promise.all([redis.get(k.editsVersion), redis.hgetall(k.edits)]);
  const lists: Record<string, ListEdits> = {};
  for (const [name, json] of Object.entries(all)) {
    try {
      lists[name] = JSON.parse(json) as ListEdits;
    } catch {
      // a hand-written garbage value: ignore it rather than stop applying the rest
    }
  }
  return { version: Number(version ?? 0), lists };
}

export async function writeEdit(
  redis: RedisClient,
  prefix: string,
  list: string,
  op: 'add' | 'remove',
  rules: string[],
  audit: AuditRecord,
): Promise<{ version: number }> {
  const k = redisKeys(prefix);
  for (let attempt = 0; attempt < 20; attempt++) {
    await redis.watch(k.editsVersion);
    const current = await redis.hget(k.edits, list);
    const next = applyEdit(current ? (JSON.parse(current) as ListEdits) : undefined, op, rules);
    const res = await redis
      .multi()
      .hset(k.edits, list, JSON.stringify(next))
      .incr(k.editsVersion)
      .xadd(k.audit, 'MAXLEN', '~', '100000', '*', 'record', JSON.stringify(audit))
      .exec();
    if (res === null) continue; // someone else edited meanwhile: read again
    const version = Number(res[1]![1]);
    await redis.publish(k.channel, JSON.stringify({ type: 'edit', version, list }));
    return { version };
  }
  throw new Error('too many concurrent edits; try again');
}

/** Write a whole edit state back (after Redis lost it), keeping the higher version if one appeared meanwhile. */
export async function reseed(redis: RedisClient, prefix: string, edits: RuntimeEdits): Promise<void> {
  const k = redisKeys(prefix);
  await redis.watch(k.editsVersion);
  const now = Number((await redis.get(k.editsVersion)) ?? 0);
  if (now >= edits.version) {
    await redis.unwatch();
    return;
  }
  const m = redis.multi().del(k.edits);
  for (const [name, e] of Object.entries(edits.lists)) m.hset(k.edits, name, JSON.stringify(e));
  m.set(k.editsVersion, String(edits.version));
  if ((await m.exec()) !== null) await redis.publish(k.channel, JSON.stringify({ type: 'edit', version: edits.version }));
}
