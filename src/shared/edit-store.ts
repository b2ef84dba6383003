// The shared edit log in Redis: a sorted set of edits scored by version, the version counter and
// the epoch (which log this is). An edit is appended atomically with its audit record, then
// announced on the channel; instances also read the log's head on every heartbeat, so a lost
// announcement is repaired within one. When Redis lost the log, an instance merges what it holds
// with whatever Redis has gained since, under a new epoch.
import { randomUUID } from 'node:crypto';
import type { AuditRecord } from '../lists/list-editor.js';
import type { RedisClient } from './redis-connection.js';
import { redisKeys } from './redis-connection.js';
import { foldLog, type EditEntry, type RuntimeEdits } from '../rules/edits.js';

export interface LogHead {
  epoch: string;
  version: number;
}

/** A log entry as Redis stores it: the version is the member's score, so a merge renumbers without rewriting it. */
type StoredEntry = Omit<EditEntry, 'version'>;

function parseEntries(withScores: string[]): EditEntry[] {
  const out: EditEntry[] = [];
  for (let i = 0; i + 1 < withScores.length; i += 2) {
    try {
      const e = JSON.parse(withScores[i]!) as StoredEntry;
      if (typeof e.id === 'string' && typeof e.list === 'string' && Array.isArray(e.rules)) out.push({ ...e, version: Number(withScores[i + 1]) });
    } catch {
      // a hand-written garbage member: ignore it rather than stop applying the rest
    }
  }
  return out;
}

const member = (e: EditEntry): string => JSON.stringify({ id: e.id, list: e.list, op: e.op, rules: e.rules, time: e.time, ...(e.user ? { user: e.user } : {}) } satisfies StoredEntry);

/** The head of the log and its entries after version `after` (all of them for 0), read atomically. */
export async function readLog(redis: RedisClient, prefix: string, after = 0): Promise<LogHead & { entries: EditEntry[] }> {
  const k = redisKeys(prefix);
  const res = await redis.multi().get(k.editsEpoch).get(k.editsVersion).zrangebyscore(k.editsLog, `(${after}`, '+inf', 'WITHSCORES').exec();
  if (!res) throw new Error('redis aborted the read of the edit log');
  for (const [err] of res) if (err) throw err;
  return { epoch: (res[0]![1] as string | null) ?? '', version: Number(res[1]![1] ?? 0), entries: parseEntries(res[2]![1] as string[]) };
}

/** The whole log, folded: the state `sluice check` and a starting instance decide under. */
export async function readEdits(redis: RedisClient, prefix: string): Promise<RuntimeEdits> {
  const log = await readLog(redis, prefix);
  return foldLog(log.epoch, log.entries);
}

export interface WrittenEdit extends LogHead {
  id: string;
}

// Edits and merges run as Lua scripts: atomic in Redis, with no WATCH to lose when the client
// reconnects between reading and writing (the restart an edit must survive is exactly that case).
const APPEND = `
local epoch = redis.call('GET', KEYS[1])
if not epoch then epoch = ARGV[1]; redis.call('SET', KEYS[1], epoch) end
local v = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[3], v, ARGV[2])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'record', ARGV[3], 'epoch', epoch, 'version', v)
return {epoch, v}`;

// The union by edit id of Redis's log and the entries in ARGV, in the order the edits were made
// (CLI time, then id), renumbered 1…n under the new epoch ARGV[1]; nothing written when Redis
// already holds them all.
const MERGE = `
local seen, all = {}, {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local e = cjson.decode(m)
  seen[e.id] = true
  table.insert(all, {t = e.time, id = e.id, m = m})
end
local missing = 0
for i = 2, #ARGV do
  local e = cjson.decode(ARGV[i])
  if not seen[e.id] then
    seen[e.id] = true
    missing = missing + 1
    table.insert(all, {t = e.time, id = e.id, m = ARGV[i]})
  end
end
if missing == 0 then return 0 end
table.sort(all, function(a, b) if a.t ~= b.t then return a.t < b.t end return a.id < b.id end)
redis.call('DEL', KEYS[3])
for i, x in ipairs(all) do redis.call('ZADD', KEYS[3], i, x.m) end
redis.call('SET', KEYS[2], #all)
redis.call('SET', KEYS[1], ARGV[1])
return missing`;

export async function writeEdit(redis: RedisClient, prefix: string, list: string, op: 'add' | 'remove', rules: string[], audit: AuditRecord, now = Date.now()): Promise<WrittenEdit> {
  const k = redisKeys(prefix);
  const id = randomUUID();
  const entry = member({ id, version: 0, list, op, rules, time: now, user: audit.user });
  const [epoch, version] = (await redis.eval(APPEND, 4, k.editsEpoch, k.editsVersion, k.editsLog, k.audit, randomUUID(), entry, JSON.stringify({ ...audit, edit: id }))) as [string, number];
  // Committed: the announcement only speeds it up (instances also read the log every heartbeat).
  await redis.publish(k.channel, JSON.stringify({ type: 'edit', epoch, version, list })).catch(() => {});
  return { id, epoch, version: Number(version) };
}

/** Where edit `id` sits in the log now (a merge renumbers it), or undefined when the log lacks it. */
export async function findEdit(redis: RedisClient, prefix: string, id: string): Promise<LogHead | undefined> {
  const log = await readLog(redis, prefix);
  const e = log.entries.find((x) => x.id === id);
  return e ? { epoch: log.epoch, version: e.version } : undefined;
}

/**
 * Make Redis hold every edit of `held`: when it lacks some (it restarted empty, or failed over to
 * a replica that lagged), the union of both logs is written under a new epoch. Returns the state
 * to enforce: Redis's log after the merge.
 */
export async function mergeInto(redis: RedisClient, prefix: string, held: RuntimeEdits): Promise<{ edits: RuntimeEdits; wrote: boolean }> {
  const k = redisKeys(prefix);
  const added = Number(await redis.eval(MERGE, 3, k.editsEpoch, k.editsVersion, k.editsLog, randomUUID(), ...held.log.map(member)));
  if (added > 0) await redis.publish(k.channel, JSON.stringify({ type: 'edit' })).catch(() => {});
  const log = await readLog(redis, prefix);
  return { edits: foldLog(log.epoch, log.entries), wrote: added > 0 };
}
