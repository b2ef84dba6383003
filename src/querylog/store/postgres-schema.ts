// The PostgreSQL query-log schema: versioned migrations and the daily partitions of raw events.
// Grafana dashboards are written against these table and column names: rename nothing, only add.
//
// Tables (all in the connection's current schema):
//   query_events          raw events, PARTITION BY RANGE (time), one partition per UTC day
//                         (query_events_YYYYMMDD); retention drops whole partitions, never rows
//   query_rollup_daily    counts per day, instance, network, client, policy, list and decision
//                         ('' for an absent network/policy/list; decision 'would-block' for allowed
//                         events a dry-run policy would have blocked), kept longer than raw events
//   query_drops           events logged but never stored (overload, store away), per day and instance
//   query_instances       every resolver that wrote, first and last seen
//   query_retention       per kind ('raw', 'rollup') the time before which data was deleted
//   query_erasures        audit of erasures (GDPR art. 17): when, whose, before when, how many
//   query_writers         per writer session the last committed batch, so a batch whose COMMIT
//                         reply was lost is not written twice when it is retried
//   query_log             a view of query_events for people and Grafana
//
// Migrations and partition changes each run under their own transaction-scoped advisory lock, so
// several resolvers starting at once (or creating tomorrow's partition at midnight) serialise
// instead of failing on "relation already exists".
import type pg from 'pg';

/** Advisory lock keys: (class, id). The class is "slu" in ASCII. */
const LOCK_CLASS = 0x736c75;
const LOCK_MIGRATE = 1;
const LOCK_PARTITIONS = 2;

interface Migration {
  version: number;
  sql: string[];
}

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: [
      `CREATE TABLE IF NOT EXISTS query_events (
        time timestamptz NOT NULL,
        instance text NOT NULL,
        client text NOT NULL,
        network text,
        profile text,
        policy text,
        list text,
        rule text,
        name text NOT NULL,
        qtype text NOT NULL,
        decision text NOT NULL,
        would_block boolean NOT NULL,
        exception boolean NOT NULL,
        cache boolean NOT NULL,
        upstream text,
        rcode smallint,
        answers smallint NOT NULL,
        duration_ms real NOT NULL,
        transport text NOT NULL
      ) PARTITION BY RANGE (time)`,
      // Indexes on the partitioned table: every partition gets its own copy when it is created.
      // (time): ranges, newest-first paging, and min/max(time) for `covers` without a scan.
      `CREATE INDEX IF NOT EXISTS query_events_time ON query_events (time)`,
      // Blocked and would-block events are a small share of all: the devices report, the
      // dashboard's top lists and `--blocked` read this index instead of the whole range, and with
      // the columns they group by included they never visit the table (an index-only scan, once
      // autovacuum has marked a partition's pages all-visible): 200k blocked events of 2M in
      // 0.25 s instead of 1 s.
      `CREATE INDEX IF NOT EXISTS query_events_flagged ON query_events (time) INCLUDE (decision, would_block, network, client, policy, list, name)
         WHERE decision = 'blocked' OR would_block`,
      // No index on names: one costs two thirds more server CPU per stored event (measured: 540 ms per
      // 100k events with the two above, 900 ms with `reverse(name) text_pattern_ops`), and the
      // reports and the dashboard do not need it. `--domain` filters the time range it is given;
      // docs/querylog.md shows the index to add where long-range domain searches are common (the
      // store's domain condition is written so that PostgreSQL uses it).
      // Every batch updates the rows of its clients: with half of each page free the updates are
      // HOT (no new index entries), measured twice as fast as with full pages.
      `CREATE TABLE IF NOT EXISTS query_rollup_daily (
        day date NOT NULL,
        instance text NOT NULL,
        network text NOT NULL DEFAULT '',
        client text NOT NULL,
        policy text NOT NULL DEFAULT '',
        list text NOT NULL DEFAULT '',
        decision text NOT NULL,
        count bigint NOT NULL,
        first_seen timestamptz NOT NULL,
        last_seen timestamptz NOT NULL,
        CONSTRAINT query_rollup_daily_key UNIQUE (day, instance, network, client, policy, list, decision)
      ) WITH (fillfactor = 50)`,
      // Erasure finds a client's rows.
      `CREATE INDEX IF NOT EXISTS query_rollup_daily_client ON query_rollup_daily (client)`,
      // `covers`: which instances wrote on the days of a range.
      `CREATE INDEX IF NOT EXISTS query_rollup_daily_instance ON query_rollup_daily (instance, day)`,
      `CREATE TABLE IF NOT EXISTS query_drops (
        day date NOT NULL,
        instance text NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (day, instance)
      )`,
      `CREATE TABLE IF NOT EXISTS query_instances (
        instance text PRIMARY KEY,
        first_seen timestamptz NOT NULL,
        last_seen timestamptz NOT NULL
      )`,
      `CREATE TABLE IF NOT EXISTS query_retention (
        kind text PRIMARY KEY CHECK (kind IN ('raw', 'rollup')),
        cut timestamptz NOT NULL
      )`,
      `CREATE TABLE IF NOT EXISTS query_erasures (
        time timestamptz NOT NULL,
        client text NOT NULL,
        before timestamptz,
        events bigint NOT NULL,
        rollups bigint NOT NULL
      )`,
      `CREATE TABLE IF NOT EXISTS query_writers (
        writer uuid PRIMARY KEY,
        instance text NOT NULL,
        last_seq bigint NOT NULL,
        updated timestamptz NOT NULL
      )`,
      `CREATE OR REPLACE VIEW query_log AS SELECT * FROM query_events`,
    ],
  },
];

/** The schema version this sluice writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Bring the schema up to SCHEMA_VERSION; idempotent, safe to run from several processes at once.
 * Returns the version the database is at (higher than SCHEMA_VERSION when a newer sluice migrated
 * it: migrations only add, so this one still works with it).
 */
export async function migratePostgres(client: pg.ClientBase): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK_MIGRATE]);
    await client.query('CREATE TABLE IF NOT EXISTS sluice_schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const current = await schemaVersion(client);
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      for (const sql of m.sql) await client.query(sql);
      await client.query('INSERT INTO sluice_schema_migrations (version, applied_at) VALUES ($1, now())', [m.version]);
    }
    await client.query('COMMIT');
    return Math.max(current, SCHEMA_VERSION);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The version the database is at; 0 when it has no sluice schema. */
export async function schemaVersion(client: pg.ClientBase | pg.Pool): Promise<number> {
  const { rows } = await client.query<{ v: number | null }>(`SELECT CASE WHEN to_regclass('sluice_schema_migrations') IS NULL THEN NULL ELSE 0 END AS v`);
  if (rows[0]?.v === null) return 0;
  const r = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM sluice_schema_migrations');
  return r.rows[0]?.v ?? 0;
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** `query_events_20261125` for `2026-11-25`. */
export function partitionName(day: string): string {
  const m = DAY.exec(day);
  if (!m) throw new Error(`not a day (YYYY-MM-DD): ${day}`);
  return `query_events_${m[1]}${m[2]}${m[3]}`;
}

/** `2026-11-25` for `query_events_20261125`; undefined for any other name. */
export function partitionDay(name: string): string | undefined {
  const m = /^query_events_(\d{4})(\d{2})(\d{2})$/.exec(name);
  return m ? `${m[1]}-${m[2]}-${m[3]}` : undefined;
}

function nextDay(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

/**
 * Create the partitions of these UTC days (`YYYY-MM-DD`) that do not exist yet. Runs its own
 * transaction: call it outside one, and not inside the transaction that writes the events, as
 * creating a partition locks the parent table until commit.
 */
export async function ensureDayPartitions(client: pg.ClientBase, days: string[]): Promise<void> {
  const wanted = [...new Set(days)].sort();
  const names = wanted.map(partitionName);
  const missing = async (): Promise<string[]> => {
    const { rows } = await client.query<{ name: string }>('SELECT n AS name FROM unnest($1::text[]) AS n WHERE to_regclass(n) IS NULL', [names]);
    const absent = new Set(rows.map((r) => r.name));
    return wanted.filter((d) => absent.has(partitionName(d)));
  };
  if ((await missing()).length === 0) return;
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK_PARTITIONS]);
    for (const day of await missing()) {
      // Bounds with an explicit UTC offset: the session's TimeZone must not move a day.
      await client.query(`CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF query_events FOR VALUES FROM ('${day} 00:00:00+00') TO ('${nextDay(day)} 00:00:00+00')`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The days (`YYYY-MM-DD`) that have a partition, oldest first. */
export async function listDayPartitions(client: pg.ClientBase | pg.Pool): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('query_events')`);
  return rows
    .map((r) => partitionDay(r.name))
    .filter((d): d is string => d !== undefined)
    .sort();
}

/**
 * Drop the partitions of days before `firstKept` (`YYYY-MM-DD`), under the partition lock.
 * Returns the days dropped.
 */
export async function dropDayPartitionsBefore(client: pg.ClientBase, firstKept: string): Promise<string[]> {
  const old = (await listDayPartitions(client)).filter((d) => d < firstKept);
  if (old.length === 0) return [];
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK_PARTITIONS]);
    for (const day of old) await client.query(`DROP TABLE IF EXISTS ${partitionName(day)}`);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return old;
}
