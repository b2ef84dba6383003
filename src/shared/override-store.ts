// Where runtime overrides (policy/overrides.ts) are written and read: `state_dir/overrides/
// overrides.json` for a standalone server (which watches it), or the shared edit log in Redis
// (every instance applies it within a heartbeat). Either way the audit record is written first
// (list-editor.ts: ahead of the file; in Redis, in the edit's own transaction), and the call
// returns only once the change is durable.
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { auditLogFile, overridesFile } from '../config/paths.js';
import { mkdirOwnedLikeParent } from '../files/atomic-write.js';
import { appendAudit, currentUser, editFile, type AuditRecord } from '../lists/list-editor.js';
import { KEEP_ENDED_MS, overridesFileText, parseOverrideRule, parseOverridesFile, type OverrideEntry } from '../policy/overrides.js';
import { OVERRIDES_LIST } from '../rules/edits.js';
import { sharedOverrides } from '../rules/effective.js';
import type { LoadedRules } from '../rules/load.js';
import { readEdits, writeEdit, type WrittenEdit } from './edit-store.js';
import { createRedis, describeRedisError, withDeadline, type RedisClient } from './redis-connection.js';

export function newOverrideId(kind: OverrideEntry['kind']): string {
  return `${kind}-${randomBytes(4).toString('hex')}`;
}

export interface OverrideChange {
  where: 'file' | 'redis';
  /** The overrides file (standalone). */
  file?: string;
  /** The shared edit that carries the change (shared mode). */
  edit?: WrittenEdit;
}

/** The config's Redis, for one command: each call reports its own failure. */
export function overrideRedis(r: LoadedRules): RedisClient {
  const redis = createRedis(r.loaded.config.redis!, { offlineQueue: true, baseDir: r.loaded.baseDir });
  redis.on('error', () => {});
  return redis;
}

/** The overrides the instances of this config enforce (or will, for ones that start later). */
export async function readOverrides(r: LoadedRules, redis?: RedisClient): Promise<OverrideEntry[]> {
  const cfg = r.loaded.config.redis;
  if (!cfg) return r.overrides;
  const own = redis ?? overrideRedis(r);
  try {
    return [...r.overrides, ...sharedOverrides(await withDeadline(readEdits(own, cfg.key_prefix), 3000))];
  } catch (err) {
    throw new Error(`cannot read the shared overrides: ${describeRedisError(err, cfg, own)}`);
  } finally {
    if (!redis) own.disconnect();
  }
}

type Audit = Omit<AuditRecord, 'time' | 'user' | 'list'>;

/**
 * Add `add` and remove the entries with the ids in `remove`, audited as `audit`. Standalone: one
 * locked, atomic rewrite of the file (entries that ended more than a week ago are dropped).
 */
export async function changeOverrides(
  r: LoadedRules,
  change: { add?: OverrideEntry; remove?: readonly OverrideEntry[] },
  audit: Audit,
  redis?: RedisClient,
  now = Date.now(),
): Promise<OverrideChange> {
  const cfg = r.loaded.config.redis;
  const { command, ...rest } = audit;
  const record = { command, list: OVERRIDES_LIST, ...rest };
  if (!cfg) {
    const file = overridesFile(r.loaded.config, r.loaded.baseDir);
    mkdirOwnedLikeParent(dirname(file));
    const ids = new Set((change.remove ?? []).map((e) => e.id));
    await editFile(
      file,
      (text) => {
        const kept = parseOverridesFile(text, file).filter((e) => !ids.has(e.id) && (e.until === undefined || e.until > now - KEEP_ENDED_MS));
        return { text: overridesFileText(change.add ? [...kept, change.add] : kept), changed: true, result: undefined };
      },
      { file: auditLogFile(r.loaded.config, r.loaded.baseDir), record: () => record },
    );
    return { where: 'file', file };
  }
  const own = redis ?? overrideRedis(r);
  try {
    const full = { time: new Date(now).toISOString(), user: currentUser(), ...record };
    let edit: WrittenEdit | undefined;
    if (change.remove && change.remove.length > 0) {
      // The log holds each entry as the JSON text it was added with: remove exactly that text.
      const held = (await withDeadline(readEdits(own, cfg.key_prefix), 3000)).lists[OVERRIDES_LIST]?.add ?? [];
      const ids = new Set(change.remove.map((e) => e.id));
      const texts = held.filter((t) => ids.has(parseOverrideRule(t)?.id ?? ''));
      if (texts.length > 0) edit = await withDeadline(writeEdit(own, cfg.key_prefix, OVERRIDES_LIST, 'remove', texts, full, now), 5000);
    }
    if (change.add) edit = await withDeadline(writeEdit(own, cfg.key_prefix, OVERRIDES_LIST, 'add', [JSON.stringify(change.add)], full, now), 5000);
    // Redis has the audit record with the edit; the local log keeps one too, as for list edits.
    try {
      appendAudit(auditLogFile(r.loaded.config, r.loaded.baseDir), { ...record, ...(edit ? { result: `redis, version ${edit.version}` } : {}) });
    } catch {
      // the edit and its audit record are in Redis: a local log that cannot be written loses nothing
    }
    return { where: 'redis', ...(edit ? { edit } : {}) };
  } catch (err) {
    throw new Error(describeRedisError(err, cfg, own));
  } finally {
    if (!redis) own.disconnect();
  }
}
