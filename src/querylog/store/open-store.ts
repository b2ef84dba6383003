// The store `query_log.store` names, opened for the process that owns the log (writing) or for a
// CLI command (reading only). The stores are loaded on demand: a config without a store, or with
// SQLite, never loads the PostgreSQL client, and the other way round.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../../config/schema.js';
import type { QueryLogStore } from './store.js';

export interface OpenStoreOptions {
  instance: string;
  now: () => number;
  /** Where problems are told: a writer's failures, once per interval. */
  warn: (message: string, fields?: Record<string, unknown>) => void;
  readOnly?: boolean;
  /** SQLite, writing: the writer in a low-priority thread of its own (the server; see sqlite-thread.ts). */
  writerThread?: boolean;
}

/** The SQLite file of a config (relative paths are inside state_dir). */
export function sqlitePath(config: Config, stateDir: string): string {
  return join(stateDir, config.query_log.store.path);
}

/**
 * The configured store, or undefined when `kind` is `none` (or, reading, when the SQLite file does
 * not exist yet: nothing was logged). Throws with a message on a store that cannot be opened.
 */
export async function openStore(config: Config, stateDir: string, o: OpenStoreOptions): Promise<QueryLogStore | undefined> {
  const s = config.query_log.store;
  const common = {
    retentionDays: s.retention_days,
    rollupRetentionDays: s.rollup_retention_days,
    spillEvents: s.spill_events,
    now: o.now,
    warn: o.warn,
    readOnly: o.readOnly ?? false,
    instance: o.instance,
  };
  if (s.kind === 'none') return undefined;
  if (s.kind === 'sqlite') {
    const path = sqlitePath(config, stateDir);
    if (o.readOnly && !existsSync(path)) return undefined;
    if (o.writerThread && !o.readOnly) {
      const { ThreadedSqliteStore } = await import('./sqlite-thread.js');
      return ThreadedSqliteStore.open(path, common);
    }
    const { SqliteStore } = await import('./sqlite-store.js');
    return new SqliteStore(path, common);
  }
  const [{ PostgresStore }, { postgresUrl }] = await Promise.all([import('./postgres-store.js'), import('./postgres-url.js')]);
  return PostgresStore.open(postgresUrl(s), { ...common, spoolPath: join(stateDir, s.spool) });
}
