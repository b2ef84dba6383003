// The embedded query-log store: one SQLite file in state_dir (better-sqlite3, WAL), used with no
// setup. Written by the process that owns the log; read by the same process (admin API) and, at
// the same time, by `sluice log` / `sluice report` through a read-only connection.
//
// Size: an event is one short row (≤ 64 bytes on disk with its index; the JSONL file took ~340).
// Repeated strings are normalised: clients into their own table, and every field of an event but
// its name, client, answer count and duration (instance, network, profile, policy, list, rule,
// type, decision, flags, upstream, rcode, transport) into a "shape": a city's traffic has a few
// thousand distinct shapes. Names stay in the row: a dictionary of names cost a random b-tree
// insert for every new name, and a city sees new names all the time (it cut the write rate 5×).
// The row id is the event time: (ms since 2020) × 1024 + a sequence, so a time range is a range of
// the table's own b-tree and needs no index. Blocked, would-block and exception events carry a
// `mark`, and a partial index over the marked rows makes the compliance reports cost what the
// matching events cost, not what all events cost. There is no index on name, for the same reason:
// a domain filter scans the time range.
//
// The per-minute and per-hour series (the dashboard) and the daily rollup (trends, beyond the raw
// retention) are summed in memory and written every AGGREGATE_MS with a watermark (the newest
// event id they include); at open, events past the watermark are summed again, and so are the
// late events written since (ids at or below the watermark: an older time than the newest summed),
// which their slice notes in `aggregate_late`; so a crash loses nothing. Upserting them with every
// slice cost more than the events themselves.
//
// Writes run in slices of at most SLICE_EVENTS events (one transaction each), one after the other,
// yielding to the event loop between them. The server runs the writer in a thread of its own at a
// low CPU priority (sqlite-thread.ts): there the kernel's scheduler gives it the time the answers
// leave, and a query never waits for a slice. At saturation the events it cannot take wait in the
// spill and are then dropped and counted (see `covers`).
import { Database, type SqliteDatabase, type SqliteStatement } from './sqlite-driver.js';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { asTransport, type Transport } from '../../pipeline/context.js';
import type { LoggedDecision, QueryEvent } from '../event.js';
import type { QueryFilter } from '../filter.js';
import type { QueryPage } from '../memory-store.js';
import { BYPASS_LISTS, type BypassReportOptions, type BypassRow, type DeviceRow, type DevicesReportOptions } from '../reports.js';
import { bucketSeconds, busiestFirst, NO_NETWORK, percentile, summaryTotals, type NetworkSeries, type Summary, type SummaryOptions } from '../summary.js';
import { DAY_MS, describeCovers, periodStart, utcDay, type Covers, type EraseResult, type QueryLogStore, type StoreHealth, type StoreOptions, type TrendOptions, type TrendRow } from './store.js';

const SCHEMA_VERSION = 5;
/** Row ids count milliseconds from here, so that they stay 7-byte varints until 2089. */
const EPOCH = Date.UTC(2020, 0, 1);
const SEQ = 1024;
const SLICE_EVENTS = 1024;
/** Events per INSERT statement on the in-order path: one call into SQLite per row cost more than the row. */
const INSERT_ROWS = 64;
const EVENT_COLUMNS = 8;
const AGGREGATE_MS = 5000;
const AGGREGATE_KEYS = 50_000;
const MINUTE = 60_000;
const HOUR = 3_600_000;
/** Upstream latency percentiles are taken over at most this many of the newest forwarded queries of a range. */
const LATENCY_SAMPLE = 100_000;

const MARK_BLOCKED = 1;
const MARK_WOULD_BLOCK = 2;
const MARK_EXCEPTION = 3;

const DECISIONS: LoggedDecision[] = ['allowed', 'blocked', 'refused', 'error', 'malformed'];

const MIGRATIONS: string[] = [
  // 1
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
   CREATE TABLE IF NOT EXISTS clients (id INTEGER PRIMARY KEY, client TEXT NOT NULL UNIQUE);
   CREATE TABLE IF NOT EXISTS shapes (
     id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
     instance TEXT NOT NULL, network TEXT, profile TEXT, policy TEXT, list TEXT, rule TEXT, qtype TEXT NOT NULL,
     decision TEXT NOT NULL, would_block INTEGER NOT NULL, exception INTEGER NOT NULL, cache INTEGER NOT NULL,
     upstream TEXT, rcode INTEGER, transport TEXT NOT NULL);
   CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, client INTEGER NOT NULL, name TEXT NOT NULL, shape INTEGER NOT NULL, answers INTEGER NOT NULL, duration INTEGER NOT NULL, mark INTEGER);
   CREATE INDEX IF NOT EXISTS events_marked ON events(mark) WHERE mark IS NOT NULL;
   CREATE TABLE IF NOT EXISTS series_minute (minute INTEGER NOT NULL, shape INTEGER NOT NULL, count INTEGER NOT NULL, duration INTEGER NOT NULL, PRIMARY KEY (minute, shape)) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS series_hour (hour INTEGER NOT NULL, shape INTEGER NOT NULL, count INTEGER NOT NULL, duration INTEGER NOT NULL, PRIMARY KEY (hour, shape)) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS rollup_daily (
     day TEXT NOT NULL, instance TEXT NOT NULL, network TEXT NOT NULL, client TEXT NOT NULL, policy TEXT NOT NULL, list TEXT NOT NULL, decision TEXT NOT NULL,
     count INTEGER NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
     PRIMARY KEY (day, instance, network, client, policy, list, decision)) WITHOUT ROWID;
   CREATE INDEX IF NOT EXISTS rollup_client ON rollup_daily(client);
   CREATE TABLE IF NOT EXISTS drops (day TEXT NOT NULL, instance TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (day, instance)) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS retention (kind TEXT PRIMARY KEY, cut INTEGER NOT NULL);
   CREATE TABLE IF NOT EXISTS erasures (time INTEGER NOT NULL, client TEXT NOT NULL, before INTEGER, events INTEGER NOT NULL, rollups INTEGER NOT NULL);`,
  // 2: events written at or below the aggregates' watermark (late ones), not yet in the aggregates
  `CREATE TABLE IF NOT EXISTS aggregate_late (id INTEGER PRIMARY KEY);`,
  // 3: the marked index covers what the reports read of a marked event, so `report devices` over
  // 200k blocked events reads the index only, not 200k rows of the table. Ordered by (mark, id),
  // as the events arrive, so that a blocked event is an append to it, not a random insert: with
  // (mark, shape, client, name) a blocked flood made the writer wait on the disk.
  `DROP INDEX IF EXISTS events_marked;
   CREATE INDEX events_marked ON events(mark, id, shape, client, name) WHERE mark IS NOT NULL;`,
  // 4: blocked events by device, for `report devices`: in this order SQLite groups by client and
  // shape as it reads, where over events_marked it sorted every blocked event of the range first
  // (0.3 s of the 0.35 s at 200k blocked events). Blocked events are ~1 % of a city's queries,
  // so the second index costs little on disk, and the writer (a thread of its own) absorbs its
  // random inserts. Building it reads the table once, at the first start of this version.
  `CREATE INDEX IF NOT EXISTS events_blocked_by_client ON events(client, shape, id, name) WHERE mark = 1;`,
  // 5: the device index by the shape's *level* (`grp`: the first shape with the same fields but
  // the rule; set on blocked events only), not by the shape: a shape is per rule, so blocked
  // events on many rules went to random places of the index, and those inserts were ~45 % of the
  // writer's time for a flood of 88,000 rules (240k events/s, 420k without the index). In level
  // order a blocked event is an append to its client's and level's run. `report devices` reads
  // the same rows (a level has one network, policy and list).
  `ALTER TABLE events ADD COLUMN grp INTEGER;
   CREATE TEMP TABLE shape_grp (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL);
   INSERT INTO shape_grp SELECT id, min(id) OVER (PARTITION BY instance, network, profile, policy, list, qtype, decision,
     would_block, exception, cache, upstream, rcode, transport) FROM shapes;
   UPDATE events SET grp = (SELECT grp FROM shape_grp WHERE shape_grp.id = events.shape) WHERE mark = 1;
   DROP TABLE shape_grp;
   DROP INDEX events_blocked_by_client;
   CREATE INDEX events_blocked_by_client ON events(client, grp, id, name) WHERE mark = 1;`,
];

interface Shape {
  instance: string;
  network: string | null;
  profile: string | null;
  policy: string | null;
  list: string | null;
  rule: string | null;
  type: string;
  decision: LoggedDecision;
  wouldBlock: boolean;
  exception: boolean;
  cache: boolean;
  upstream: string | null;
  rcode: number | null;
  transport: Transport;
}

interface ShapeRow {
  id: number;
  instance: string;
  network: string | null;
  profile: string | null;
  policy: string | null;
  list: string | null;
  rule: string | null;
  qtype: string;
  decision: string;
  would_block: number;
  exception: number;
  cache: number;
  upstream: string | null;
  rcode: number | null;
  transport: string;
}

/**
 * A nullable field in a shape key. `${null}` is the text "null", which a rule (a list line "null"),
 * a list or a policy can also be: the two events then shared one shape, and the second came back
 * with the first one's value. Absent is now empty and a value is prefixed, so they differ.
 */
const nk = (v: string | null): string => (v === null ? '' : `=${v}`);

const shapeKey = (e: QueryEvent): string =>
  `${e.instance}\0${nk(e.network)}\0${nk(e.profile)}\0${nk(e.policy)}\0${nk(e.list)}\0${nk(e.rule)}\0${e.type}\0${e.decision}\0${+e.wouldBlock}${+e.exception}${+e.cache}\0${nk(e.upstream)}\0${e.rcode}\0${e.transport}`;

/**
 * Shape ids by the fields of the shape, one Map level per field: the low-cardinality fields first,
 * then the flags, and the rule (as many as a list has) last, so a shape adds an entry, not a
 * chain of Maps. An event's fields are strings shared with the config and the lists, whose hashes
 * V8 keeps, so a lookup is a dozen cheap probes; building and hashing shapeKey() for every event
 * cost ~1 µs, a sixth of the writer's time. shapeKey() is still the shape row's unique key.
 */
type ShapeTree = Map<unknown, unknown>;

function subtree(m: ShapeTree, k: unknown): ShapeTree {
  let n = m.get(k) as ShapeTree | undefined;
  if (n === undefined) m.set(k, (n = new Map()));
  return n;
}

/**
 * The shapes that differ only by their rule (as many as a list has rules), and what the writer
 * counts them under: kept once here rather than in a map per shape id, since a list of 100,000
 * rules makes 100,000 shapes.
 */
interface RuleLevel {
  /** Rule → shape id. */
  readonly ids: Map<string | null, number>;
  /** The first shape id of the level (ids are loaded in order: the lowest): the one its series count under (see shapeId). */
  series: number;
  /** The rollup class of the level's events (Aggregates), once known. */
  cls: RollupClassId | undefined;
}

/** The innermost level of the tree for these fields. */
function ruleLevel(tree: ShapeTree, s: Shape | QueryEvent): RuleLevel {
  const flags = (s.wouldBlock ? 1 : 0) | (s.exception ? 2 : 0) | (s.cache ? 4 : 0);
  let m = subtree(subtree(subtree(subtree(subtree(tree, s.instance), s.network), s.profile), s.decision), s.policy);
  m = subtree(subtree(subtree(subtree(subtree(m, s.list), s.type), s.rcode), s.upstream), s.transport);
  let level = m.get(flags) as RuleLevel | undefined;
  if (level === undefined) m.set(flags, (level = { ids: new Map(), series: -1, cls: undefined }));
  return level;
}

/** Add a shape id to its level; the first one added (ids are loaded in order) is the series'. */
function addToLevel(level: RuleLevel, rule: string | null, id: number): void {
  level.ids.set(rule, id);
  if (level.series < 0) level.series = id;
}

const markOf = (e: QueryEvent): number | null => (e.decision === 'blocked' ? MARK_BLOCKED : e.wouldBlock ? MARK_WOULD_BLOCK : e.exception ? MARK_EXCEPTION : null);

const idFloor = (time: number): number => Math.max(0, Math.floor(time) - EPOCH) * SEQ;
const timeOf = (id: number): number => Math.floor(id / SEQ) + EPOCH;

/** The row id range [from, to) of a filter's time range. */
function idRange(f: { since?: number; until?: number }): [number, number] {
  return [f.since === undefined ? 0 : idFloor(f.since), f.until === undefined ? Number.MAX_SAFE_INTEGER : idFloor(f.until)];
}

/** Create or upgrade the schema of a SQLite query-log file; returns the schema version. */
export function migrateSqlite(path: string): number {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  try {
    return migrate(db);
  } finally {
    db.close();
  }
}

function migrate(db: SqliteDatabase): number {
  db.pragma('journal_mode = WAL');
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
  return Math.max(current, SCHEMA_VERSION);
}

export interface SqliteStoreOptions extends StoreOptions {
  /** This resolver's name, for the drops it notes. */
  instance: string;
}

/** Names and clients whose ids the writer keeps in memory (see dictId). */
const DICT_CACHE_MAX = 50_000;

export class SqliteStore implements QueryLogStore {
  readonly kind = 'sqlite';
  readonly source = 'sqlite';
  readonly name = 'store';
  readonly description: string;
  private readonly db: SqliteDatabase;
  private readonly shapesById = new Map<number, Shape>();
  private readonly shapeIds: ShapeTree = new Map();
  private readonly aggregates = new Aggregates();
  private aggregateTimer: NodeJS.Timeout | undefined;
  private readonly clientIds = new Map<string, number>();
  private spill: QueryEvent[][] = [];
  private spillHead = 0;
  private pendingEvents = 0;
  private lastId = 0;
  /** The watermark of the aggregates as written to the file (-1: none yet). */
  private watermark = -1;
  private writing: NodeJS.Immediate | NodeJS.Timeout | undefined;
  private flushWaiters: (() => void)[] = [];
  private retentionTimer: NodeJS.Timeout | undefined;
  private lastWarning = 0;
  private closed = false;
  private readonly stats = { written: 0, failures: 0, refused: 0, lastError: null as string | null, ok: true };
  private readonly st: ReturnType<SqliteStore['prepare']> | undefined;
  /** The columns of the rows waiting for a multi-row INSERT (see writeSlice). */
  private readonly rowArgs: unknown[] = new Array<unknown>(INSERT_ROWS * EVENT_COLUMNS).fill(null);
  /** The rule level of each event of the slice being written, for the aggregates after commit. */
  private readonly levelArgs: RuleLevel[] = [];
  /** shape(): one shape by id, prepared on its first miss. */
  private findShapeById: SqliteStatement | undefined;

  constructor(
    readonly path: string,
    private readonly opts: SqliteStoreOptions,
  ) {
    this.description = `SQLite store ${path}`;
    if (opts.readOnly) {
      this.db = new Database(path, { readonly: true, fileMustExist: true });
    } else {
      mkdirSync(dirname(path), { recursive: true });
      this.db = new Database(path);
      migrate(this.db);
      this.db.pragma('synchronous = NORMAL');
    }
    // Page cache (KiB): the writer appends to the ends of its b-trees and needs few pages; 32 MB
    // there was resident memory the writer thread kept after every saturation run, at no measured
    // gain in ingest, and 2 MB ingests as fast as 8 MB (600k events direct, blocked on 88k rules
    // or cached: within noise; what misses is in the kernel's page cache). Readers scan ranges,
    // and keep the larger cache.
    this.db.pragma(opts.readOnly ? 'cache_size = -32768' : 'cache_size = -2048');
    if (!opts.readOnly) {
      // A reader loads a shape when a query first needs it (shape(): that row; shapesWhere(): all
      // of them): a server that never runs a report does not hold one object per rule of its lists.
      this.loadShapes();
      this.st = this.prepare();
      this.lastId = (this.db.prepare('SELECT max(id) AS id FROM events').get() as { id: number | null }).id ?? 0;
      this.recoverAggregates();
      this.aggregateTimer = setInterval(() => this.safeWriteAggregates(), AGGREGATE_MS);
      this.aggregateTimer.unref();
      this.safeRetention();
      this.retentionTimer = setInterval(() => this.safeRetention(), HOUR);
      this.retentionTimer.unref();
    }
  }

  private prepare() {
    const db = this.db;
    return {
      insertEvent: db.prepare('INSERT OR IGNORE INTO events (id, client, name, shape, answers, duration, mark, grp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      insertEvents: db.prepare(`INSERT INTO events (id, client, name, shape, answers, duration, mark, grp) VALUES ${Array<string>(INSERT_ROWS).fill('(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`),
      maxId: db.prepare('SELECT max(id) FROM events').pluck(),
      findClient: db.prepare('SELECT id FROM clients WHERE client = ?').pluck(),
      insertClient: db.prepare('INSERT INTO clients (client) VALUES (?)'),
      // Positional, and no upsert: the in-memory tree knows every shape of the file (it is
      // reloaded after a rollback), so a new one is a plain INSERT; findShape is for the rare
      // conflict. The named upsert with RETURNING cost ~9 µs a new shape.
      insertShape: db.prepare(
        `INSERT OR IGNORE INTO shapes (key, instance, network, profile, policy, list, rule, qtype, decision, would_block, exception, cache, upstream, rcode, transport)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      findShape: db.prepare('SELECT id FROM shapes WHERE key = ?').pluck(),
      minute: db.prepare(
        'INSERT INTO series_minute (minute, shape, count, duration) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count, duration = duration + excluded.duration',
      ),
      hour: db.prepare('INSERT INTO series_hour (hour, shape, count, duration) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count, duration = duration + excluded.duration'),
      rollup: db.prepare(
        `INSERT INTO rollup_daily (day, instance, network, client, policy, list, decision, count, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT DO UPDATE SET count = count + excluded.count, first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)`,
      ),
      watermark: db.prepare("INSERT INTO meta (key, value) VALUES ('aggregated', ?) ON CONFLICT DO UPDATE SET value = max(value, excluded.value)"),
      late: db.prepare('INSERT OR IGNORE INTO aggregate_late (id) VALUES (?)'),
      clearLate: db.prepare('DELETE FROM aggregate_late'),
      drop: db.prepare('INSERT INTO drops (day, instance, count) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET count = count + excluded.count'),
    };
  }

  private loadShapes(): void {
    for (const r of this.db.prepare('SELECT * FROM shapes').all() as (ShapeRow & { key: string })[]) {
      const shape = rowShape(r);
      this.shapesById.set(r.id, shape);
      // The tree gives a writer the ids of the shapes it writes; a reader never looks one up.
      if (!this.opts.readOnly) addToLevel(ruleLevel(this.shapeIds, shape), shape.rule, r.id);
    }
  }

  private shape(id: number): Shape {
    let s = this.shapesById.get(id);
    if (!s) {
      // Not loaded yet, or added by another connection (the writing server) since: that one row.
      this.findShapeById ??= this.db.prepare('SELECT * FROM shapes WHERE id = ?');
      const r = this.findShapeById.get(id) as ShapeRow | undefined;
      if (r) this.shapesById.set(id, (s = rowShape(r)));
    }
    return s!;
  }

  // ---------------------------------------------------------------------------------------------
  // Writing

  write(batch: QueryEvent[]): boolean {
    if (this.opts.readOnly || this.closed) return false;
    if (this.pendingEvents + batch.length > this.opts.spillEvents) {
      this.stats.refused += batch.length;
      return false;
    }
    this.spill.push(batch);
    this.pendingEvents += batch.length;
    this.schedule(0);
    return true;
  }

  private schedule(delayMs: number): void {
    if (this.writing !== undefined || this.closed) return;
    this.writing = delayMs > 0 ? setTimeout(() => this.drain(), delayMs) : setImmediate(() => this.drain());
  }

  /** One slice of writing, then yield. */
  private drain(): void {
    this.writing = undefined;
    if (!this.writeNext()) this.schedule(1000);
    else if (this.pendingEvents > 0) this.schedule(0);
    else this.resolveFlush();
  }

  /**
   * Write the next slice of the spill. False when the write failed (disk full, read-only file,
   * locked): the transaction rolled back, so nothing is half written, and the slice goes back to
   * the front of the spill to be tried again later.
   */
  private writeNext(): boolean {
    const slice = this.takeSlice();
    if (slice.length === 0) return true;
    try {
      this.writeSlice(slice);
    } catch (err) {
      this.spill.splice(this.spillHead, 0, slice);
      this.stats.failures++;
      this.stats.ok = false;
      this.stats.lastError = (err as Error).message;
      this.warnOnce(err as Error);
      return false;
    }
    this.stats.written += slice.length;
    this.stats.ok = true;
    this.pendingEvents -= slice.length;
    return true;
  }

  private takeSlice(): QueryEvent[] {
    let out: QueryEvent[] = [];
    while (this.spillHead < this.spill.length && out.length < SLICE_EVENTS) {
      const b = this.spill[this.spillHead]!;
      const room = SLICE_EVENTS - out.length;
      if (b.length <= room) {
        out = out.length === 0 ? b : out.concat(b);
        this.spillHead++;
      } else {
        out = out.concat(b.slice(0, room));
        this.spill[this.spillHead] = b.slice(room);
      }
    }
    if (this.spillHead > 64 && this.spillHead * 2 > this.spill.length) {
      this.spill = this.spill.slice(this.spillHead);
      this.spillHead = 0;
    }
    return out;
  }

  private warnOnce(err: Error): void {
    const now = this.opts.now();
    if (now - this.lastWarning < 60_000) return;
    this.lastWarning = now;
    this.opts.warn(`the query-log store cannot write (${err.message}); events wait in memory (up to ${this.opts.spillEvents}) and are written when it can`, {
      store: this.path,
      pending: this.pendingEvents,
    });
  }

  private idFor(time: number): number {
    // Usually later than every id so far: the next free id of that millisecond.
    const base = idFloor(time);
    if (this.lastId < base) return (this.lastId = base);
    if (this.lastId < base + SEQ - 1) return ++this.lastId;
    return -1; // an out-of-order or crowded millisecond: found by probing in writeSlice
  }

  private writeSlice(events: QueryEvent[]): void {
    const st = this.st!;
    const savedLastId = this.lastId;
    const shapes = new Int32Array(events.length);
    const levels = this.levelArgs;
    levels.length = events.length;
    const clients = new Int32Array(events.length);
    // Rows with the next free id (the usual, in-order case) go INSERT_ROWS to a statement; `rows`
    // holds their columns until then. Those ids are past every id in the file (max(id) is read
    // inside the transaction's write lock), so they cannot collide and need no OR IGNORE probe.
    const rows = this.rowArgs;
    let pending = 0;
    const insertPending = (): void => {
      for (let r = 0; r < pending; r++) {
        const o = r * EVENT_COLUMNS;
        st.insertEvent.run(rows[o], rows[o + 1], rows[o + 2], rows[o + 3], rows[o + 4], rows[o + 5], rows[o + 6], rows[o + 7]);
      }
      pending = 0;
    };
    const tx = this.db.transaction(() => {
      const max = st.maxId.get() as number | null;
      if (max !== null && max > this.lastId) this.lastId = max;
      for (let i = 0; i < events.length; i++) {
        const e = events[i]!;
        const level = (levels[i] = ruleLevel(this.shapeIds, e));
        const shape = (shapes[i] = this.shapeId(level, e));
        const client = (clients[i] = this.dictId(this.clientIds, st.findClient, st.insertClient, e.client));
        const duration = Math.max(0, Math.round(e.durationMs * 1000));
        const mark = markOf(e);
        const grp = mark === MARK_BLOCKED ? level.series : null;
        let id = this.idFor(e.time);
        if (id >= 0) {
          const o = pending * EVENT_COLUMNS;
          rows[o] = id;
          rows[o + 1] = client;
          rows[o + 2] = e.name;
          rows[o + 3] = shape;
          rows[o + 4] = e.answers;
          rows[o + 5] = duration;
          rows[o + 6] = mark;
          rows[o + 7] = grp;
          if (++pending === INSERT_ROWS) {
            st.insertEvents.run(rows);
            pending = 0;
          }
          if (id <= this.watermark) st.late.run(id); // after an erase or retention removed the newest ids
          continue;
        }
        // A probe must see the rows still waiting for their statement.
        insertPending();
        // An out-of-order or crowded millisecond: probe its sequence for a free id; the last resort
        // is a later millisecond.
        let inserted = false;
        const base = idFloor(e.time);
        for (let k = 0; k < SEQ * 4 && !inserted; k++) {
          id = base + k;
          inserted = st.insertEvent.run(id, client, e.name, shape, e.answers, duration, mark, grp).changes === 1;
        }
        if (id > this.lastId) this.lastId = id;
        // An id at or below the written watermark (a late event: a worker's batch after another's,
        // the spill after an outage) is not "past the watermark", so recovery would not find it
        // and a kill before the next aggregates lost it from the series and rollup. Noted in the
        // same transaction, and found by recoverAggregates.
        if (inserted && id <= this.watermark) st.late.run(id);
      }
      insertPending();
    });
    try {
      tx.immediate();
    } catch (err) {
      // The dictionaries may hold ids of rows the rollback removed.
      this.shapeIds.clear();
      this.shapesById.clear();
      this.clientIds.clear();
      this.lastId = savedLastId;
      this.loadShapes();
      throw err;
    }
    // Only what committed is summed, so a slice that failed and is written again counts once.
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      this.aggregates.add(e.time, levels[i]!, e, Math.max(0, Math.round(e.durationMs * 1000)), clients[i]!, e.client);
    }
    if (this.aggregates.size > AGGREGATE_KEYS) this.safeWriteAggregates();
  }

  /** Write the summed series and rollup, with the watermark, in one transaction. */
  private writeAggregates(): void {
    if (this.aggregates.size === 0) return;
    const st = this.st!;
    const a = this.aggregates;
    const watermark = this.lastId;
    this.db
      .transaction(() => {
        for (const m of a.minutes.values()) st.minute.run(m.unit, m.shape, m.count, m.duration);
        for (const h of a.hours.values()) st.hour.run(h.unit, h.shape, h.count, h.duration);
        for (const byClient of a.rollups.values()) {
          for (const r of byClient.values()) {
            const c = r.cls;
            st.rollup.run(utcDay(r.day * DAY_MS), c.instance, c.network, r.client, c.policy, c.list, c.decision, r.count, r.first, r.last);
          }
        }
        st.watermark.run(watermark);
        st.clearLate.run();
      })
      .immediate();
    a.clear();
    if (watermark > this.watermark) this.watermark = watermark;
  }

  private safeWriteAggregates(): void {
    try {
      this.writeAggregates();
    } catch (err) {
      // kept in memory and tried again at the next interval
      this.stats.failures++;
      this.stats.lastError = (err as Error).message;
      this.warnOnce(err as Error);
    }
  }

  /**
   * Sum again the events written after the last aggregates (a crash or kill before they were
   * written): those past the watermark, and the late ones below it noted in aggregate_late.
   */
  private recoverAggregates(): void {
    const mark = this.db.prepare("SELECT value FROM meta WHERE key = 'aggregated'").pluck().get() as number | undefined;
    this.watermark = mark ?? -1;
    const select = 'SELECT e.id, e.shape, e.duration, e.client AS clientId, c.client FROM events e JOIN clients c ON c.id = e.client WHERE';
    type Row = { id: number; shape: number; duration: number; clientId: number; client: string };
    const past = this.db.prepare(`${select} e.id > ?`).iterate(this.watermark) as IterableIterator<Row>;
    const late = this.db.prepare(`${select} e.id IN (SELECT id FROM aggregate_late) AND e.id <= ?`).iterate(this.watermark) as IterableIterator<Row>;
    for (const rows of [past, late]) {
      for (const r of rows) {
        const shape = this.shape(r.shape);
        this.aggregates.add(timeOf(r.id), ruleLevel(this.shapeIds, shape), shape, r.duration, r.clientId, r.client);
      }
    }
    this.writeAggregates();
  }

  /**
   * The shape id of an event, in its level. A level's series shape (RuleLevel.series) is the one
   * its events count under in the per-minute and per-hour series: the series feed the dashboard,
   * which never looks at rules, and a series row per rule made a list of 100,000 rules cost
   * 100,000 series rows a minute: upserting them took more than half of the writer's time.
   * A new shape is not kept in shapesById: readers load the shapes when they meet an id they
   * do not know, and the writer needs only the level (a Shape per rule was ~130 bytes of heap each).
   */
  private shapeId(level: RuleLevel, e: QueryEvent): number {
    let id = level.ids.get(e.rule);
    if (id === undefined) {
      const st = this.st!;
      const key = shapeKey(e);
      const r = st.insertShape.run(key, e.instance, e.network, e.profile, e.policy, e.list, e.rule, e.type, e.decision, +e.wouldBlock, +e.exception, +e.cache, e.upstream, e.rcode, e.transport);
      id = r.changes === 1 ? Number(r.lastInsertRowid) : (st.findShape.get(key) as number);
      addToLevel(level, e.rule, id);
    }
    return id;
  }

  private dictId(cache: Map<string, number>, find: SqliteStatement, insert: SqliteStatement, value: string): number {
    let id = cache.get(value);
    if (id === undefined) {
      // Look up before inserting: an upsert would rewrite the row, and its page, every time.
      id = (find.get(value) as number | undefined) ?? Number(insert.run(value).lastInsertRowid);
      // Bounded: a city's distinct names outnumber what is worth keeping in memory. At 200,000
      // the writer thread's heap held ~20 MB of them at saturation (bench/querylog.sh, miss
      // queries); the names that repeat are few, and a miss costs one indexed read.
      if (cache.size >= DICT_CACHE_MAX) cache.clear();
      cache.set(value, id);
    }
    return id;
  }

  noteDropped(count: number, time: number): void {
    if (count <= 0 || this.opts.readOnly || this.closed) return;
    try {
      this.st!.drop.run(utcDay(time), this.opts.instance, count);
    } catch {
      // the store is failing: its own failures are counted already
    }
  }

  flush(): Promise<void> {
    if (this.opts.readOnly) return Promise.resolve();
    if (this.pendingEvents === 0) {
      this.safeWriteAggregates();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.flushWaiters.push(resolve);
      // flush() is for shutdown and tests: write it all now, without yielding.
      clearTimeout(this.writing as NodeJS.Timeout);
      clearImmediate(this.writing as NodeJS.Immediate);
      this.writing = undefined;
      this.drainAll();
    });
  }

  private drainAll(): void {
    while (this.pendingEvents > 0 && this.spillHead < this.spill.length) {
      if (!this.writeNext()) {
        this.resolveFlush();
        this.schedule(1000);
        return;
      }
    }
    this.resolveFlush();
  }

  private resolveFlush(): void {
    if (this.flushWaiters.length > 0) this.safeWriteAggregates();
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }

  health(): StoreHealth {
    return { kind: 'sqlite', ok: this.stats.ok, written: this.stats.written, failures: this.stats.failures, lastError: this.stats.lastError, pending: this.pendingEvents, refused: this.stats.refused };
  }

  private safeRetention(): void {
    try {
      this.retainSync(this.opts.now());
    } catch (err) {
      this.warnOnce(err as Error);
    }
  }

  enforceRetention(now: number): Promise<void> {
    this.retainSync(now);
    return Promise.resolve();
  }

  /**
   * Raw events before the first kept day go in bounded deletes (10,000 rows a statement) so that
   * ingestion is never stalled for long; the rollup and series before their own cut likewise.
   */
  private retainSync(now: number): void {
    const today = Date.parse(`${utcDay(now)}T00:00:00Z`);
    const rawCut = today - (this.opts.retentionDays - 1) * DAY_MS;
    const rollupCut = today - (this.opts.rollupRetentionDays - 1) * DAY_MS;
    const db = this.db;
    const hasOld = db.prepare('SELECT 1 FROM events WHERE id < ? LIMIT 1').get(idFloor(rawCut)) !== undefined;
    if (hasOld) {
      const del = db.prepare('DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id < ? LIMIT 10000)');
      while (del.run(idFloor(rawCut)).changes > 0) {
        // bounded statements; the writer's slices interleave between them only when async, which
        // the hourly timer does not need: each statement is a few milliseconds
      }
      db.prepare('DELETE FROM series_minute WHERE minute < ?').run(Math.floor(rawCut / MINUTE));
      db.prepare("INSERT INTO retention (kind, cut) VALUES ('raw', ?) ON CONFLICT DO UPDATE SET cut = max(cut, excluded.cut)").run(rawCut);
    }
    const oldRollup = db.prepare('SELECT 1 FROM rollup_daily WHERE day < ? LIMIT 1').get(utcDay(rollupCut)) !== undefined;
    if (oldRollup) {
      db.prepare('DELETE FROM rollup_daily WHERE day < ?').run(utcDay(rollupCut));
      db.prepare('DELETE FROM series_hour WHERE hour < ?').run(Math.floor(rollupCut / HOUR));
      db.prepare('DELETE FROM drops WHERE day < ?').run(utcDay(rollupCut));
      db.prepare("INSERT INTO retention (kind, cut) VALUES ('rollup', ?) ON CONFLICT DO UPDATE SET cut = max(cut, excluded.cut)").run(rollupCut);
    }
  }

  async erase(client: string, before?: number): Promise<EraseResult> {
    if (this.opts.readOnly) throw new Error('the store is open read-only');
    await this.flush();
    const db = this.db;
    return db
      .transaction((): EraseResult => {
        const row = db.prepare('SELECT id FROM clients WHERE client = ?').get(client) as { id: number } | undefined;
        let events = 0;
        if (row) {
          const [, to] = idRange(before === undefined ? {} : { until: before });
          events = db.prepare('DELETE FROM events WHERE client = ? AND id < ?').run(row.id, to).changes;
        }
        const rollups =
          before === undefined
            ? db.prepare('DELETE FROM rollup_daily WHERE client = ?').run(client).changes
            : db.prepare('DELETE FROM rollup_daily WHERE client = ? AND last_seen < ?').run(client, before).changes;
        db.prepare('INSERT INTO erasures (time, client, before, events, rollups) VALUES (?, ?, ?, ?, ?)').run(this.opts.now(), client, before ?? null, events, rollups);
        return { events, rollups };
      })
      .immediate();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    clearInterval(this.retentionTimer);
    clearInterval(this.aggregateTimer);
    clearTimeout(this.writing as NodeJS.Timeout);
    clearImmediate(this.writing as NodeJS.Immediate);
    this.db.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Reading

  /** SQL conditions and parameters for a filter over `events e`. */
  private where(f: QueryFilter): { sql: string; params: unknown[]; shapes: number[] | undefined } {
    const [from, to] = idRange(f);
    const conds = ['e.id >= ?', 'e.id < ?'];
    const params: unknown[] = [from, to];
    let shapes: number[] | undefined;
    const shapeFilter = f.network !== undefined || f.policy !== undefined || f.list !== undefined || f.instance !== undefined || f.decision !== undefined;
    if (shapeFilter) {
      this.loadShapes();
      shapes = [];
      for (const [id, s] of this.shapesById) {
        if (f.network !== undefined && s.network !== f.network) continue;
        if (f.policy !== undefined && s.policy !== f.policy) continue;
        if (f.list !== undefined && s.list !== f.list) continue;
        if (f.instance !== undefined && s.instance !== f.instance) continue;
        if (f.decision !== undefined && (f.decision === 'would-block' ? !s.wouldBlock : s.decision !== f.decision)) continue;
        shapes.push(id);
      }
      conds.push(`e.shape IN (${shapes.length ? shapes.join(',') : '-1'})`);
    }
    if (f.decision === 'blocked') conds.push(`e.mark = ${MARK_BLOCKED}`);
    else if (f.decision === 'would-block') conds.push(`e.mark = ${MARK_WOULD_BLOCK}`);
    if (f.client !== undefined) {
      conds.push('e.client = (SELECT id FROM clients WHERE client = ?)');
      params.push(f.client);
    }
    if (f.domain !== undefined) {
      const d = f.domain.toLowerCase().replace(/\.$/, '');
      // Names are stored lower-case, as sluice logs them.
      conds.push(`(e.name = ? OR e.name LIKE ? ESCAPE '\\')`);
      params.push(d, `%.${d.replace(/[\\%_]/g, (c) => `\\${c}`)}`);
    }
    return { sql: conds.join(' AND '), params, shapes };
  }

  private toEvent(r: { id: number; name: string; client: string; shape: number; answers: number; duration: number }): QueryEvent {
    const s = this.shape(r.shape);
    return {
      time: timeOf(r.id),
      instance: s.instance,
      client: r.client,
      network: s.network,
      profile: s.profile,
      policy: s.policy,
      list: s.list,
      rule: s.rule,
      name: r.name,
      type: s.type,
      decision: s.decision,
      wouldBlock: s.wouldBlock,
      exception: s.exception,
      cache: s.cache,
      upstream: s.upstream,
      rcode: s.rcode,
      answers: r.answers,
      durationMs: r.duration / 1000,
      transport: s.transport,
    };
  }

  private select(f: QueryFilter, tail: string, extra: unknown[] = []): QueryEvent[] {
    const w = this.where(f);
    const rows = this.db.prepare(`SELECT e.id, e.name, c.client, e.shape, e.answers, e.duration FROM events e JOIN clients c ON c.id = e.client WHERE ${w.sql} ${tail}`).all(...w.params, ...extra) as {
      id: number;
      name: string;
      client: string;
      shape: number;
      answers: number;
      duration: number;
    }[];
    return rows.map((r) => this.toEvent(r));
  }

  query(filter: QueryFilter, limit: number, offset = 0): Promise<QueryPage> {
    const w = this.where(filter);
    const total = (this.db.prepare(`SELECT count(*) AS n FROM events e WHERE ${w.sql}`).get(...w.params) as { n: number }).n;
    const events = this.select(filter, 'ORDER BY e.id DESC LIMIT ? OFFSET ?', [limit, offset]);
    return Promise.resolve({ events, total });
  }

  events(filter: QueryFilter): Promise<QueryEvent[]> {
    return Promise.resolve(this.select(filter, 'ORDER BY e.id'));
  }

  /** Marked-event shapes (blocked by a policy and list) matching the options. */
  private shapesWhere(test: (s: Shape) => boolean): number[] {
    this.loadShapes();
    const out: number[] = [];
    for (const [id, s] of this.shapesById) if (test(s)) out.push(id);
    return out;
  }

  devices(o: DevicesReportOptions): Promise<DeviceRow[]> {
    // The shapes are chosen in SQL and only the rows' own are loaded: a store that has seen many
    // rules holds a shape per rule (88,000 after the bench's blocked flood: loading them all was
    // half of a report's 1.25 s).
    const [from, to] = idRange(o);
    // Grouped by client and shape in SQL as the device index is read (the cost follows the
    // blocked events), then by network, policy and list here, since several shapes (rules,
    // types) make one row.
    const rows = this.db
      .prepare(
        `SELECT e.grp AS shape, c.client, count(*) AS n, min(e.id) AS first, max(e.id) AS last, json_group_array(DISTINCT e.name) AS names
         FROM events e INDEXED BY events_blocked_by_client JOIN clients c ON c.id = e.client
         WHERE e.mark = ${MARK_BLOCKED} AND e.id >= @from AND e.id < @to AND e.grp IN (
           SELECT id FROM shapes WHERE decision = 'blocked' AND policy IS NOT NULL AND list IS NOT NULL
             AND (@policy IS NULL OR policy = @policy) AND (@network IS NULL OR network = @network))
         GROUP BY e.client, e.grp`,
      )
      .all({ from, to, policy: o.policy ?? null, network: o.network ?? null }) as { shape: number; client: string; n: number; first: number; last: number; names: string }[];
    const groups = new Map<string, DeviceRow & { nameSet: Set<string> }>();
    for (const r of rows) {
      const s = this.shape(r.shape);
      const network = s.network ?? '-';
      const key = `${network}\0${r.client}\0${s.policy}\0${s.list}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { network, client: r.client, policy: s.policy!, list: s.list!, count: 0, firstSeen: Infinity, lastSeen: 0, names: [], nameSet: new Set() }));
      g.count += r.n;
      g.firstSeen = Math.min(g.firstSeen, timeOf(r.first));
      g.lastSeen = Math.max(g.lastSeen, timeOf(r.last));
      for (const n of splitNames(r.names)) g.nameSet.add(n);
    }
    return Promise.resolve(
      [...groups.values()]
        .map(({ nameSet, ...g }) => ({ ...g, names: [...nameSet].sort() }))
        .sort((a, b) => a.network.localeCompare(b.network) || a.client.localeCompare(b.client) || a.policy.localeCompare(b.policy) || a.list.localeCompare(b.list)),
    );
  }

  bypass(o: BypassReportOptions): Promise<BypassRow[]> {
    const lists = new Set<string>(o.lists ?? BYPASS_LISTS);
    const [from, to] = idRange(o);
    const byList = this.shapesWhere((s) => s.list !== null && lists.has(s.list) && (o.network === undefined || s.network === o.network));
    // Names nothing blocked (an open network): the distinct names of the range are classified, then
    // the events with one of them are counted, in two scans of the range (events have no name index).
    const classified = new Map<string, string>();
    if (o.classify) {
      for (const name of this.db.prepare('SELECT DISTINCT name FROM events WHERE id >= ? AND id < ?').pluck().iterate(from, to) as IterableIterator<string>) {
        const l = o.classify(name);
        if (l !== undefined && lists.has(l)) classified.set(name, l);
      }
    }
    const rows: { shape: number; name: string; client: string; n: number; first: number; last: number }[] = [];
    const q = (cond: string) =>
      this.db
        .prepare(
          `SELECT e.shape, e.name, c.client, count(*) AS n, min(e.id) AS first, max(e.id) AS last FROM events e
           JOIN clients c ON c.id = e.client WHERE e.id >= ? AND e.id < ? AND ${cond} GROUP BY e.shape, e.name, e.client`,
        )
        .all(from, to) as typeof rows;
    if (byList.length > 0) rows.push(...q(`e.shape IN (${byList.join(',')})`));
    if (classified.size > 0) {
      this.db.exec('CREATE TEMP TABLE IF NOT EXISTS bypass_names (name TEXT PRIMARY KEY); DELETE FROM temp.bypass_names');
      const add = this.db.prepare('INSERT INTO temp.bypass_names (name) VALUES (?)');
      this.db.transaction(() => {
        for (const name of classified.keys()) add.run(name);
      })();
      const listed = new Set(byList);
      for (const r of q('e.name IN (SELECT name FROM temp.bypass_names)')) if (!listed.has(r.shape)) rows.push(r);
    }
    const groups = new Map<string, BypassRow & { names: Set<string> }>();
    for (const r of rows) {
      const s = this.shape(r.shape);
      if (o.network !== undefined && s.network !== o.network) continue;
      const list = s.list !== null && lists.has(s.list) ? s.list : classified.get(r.name);
      if (list === undefined) continue;
      const network = s.network ?? '-';
      const key = `${network}\0${r.client}\0${list}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { network, client: r.client, list, count: 0, blocked: 0, firstSeen: Infinity, lastSeen: 0, endpoints: [], names: new Set() }));
      g.count += r.n;
      if (s.decision === 'blocked') g.blocked += r.n;
      g.firstSeen = Math.min(g.firstSeen, timeOf(r.first));
      g.lastSeen = Math.max(g.lastSeen, timeOf(r.last));
      g.names.add(r.name);
    }
    return Promise.resolve(
      [...groups.values()]
        .map(({ names, ...g }) => ({ ...g, endpoints: [...names].sort() }))
        .sort((a, b) => a.network.localeCompare(b.network) || a.client.localeCompare(b.client) || a.list.localeCompare(b.list)),
    );
  }

  summary(filter: QueryFilter, o: SummaryOptions): Promise<Summary> {
    return Promise.resolve(this.summarySync(filter, o));
  }

  private summarySync(filter: QueryFilter, o: SummaryOptions): Summary {
    const top = o.top ?? 10;
    const until = filter.until ?? o.now;
    // Without `since` the range starts at the first event that matches the filter, as in
    // summarize(): the store's oldest event (which may be another network's or client's) gave
    // another range, bucket size and series start than the pure function for the same events.
    const since = filter.since ?? this.earliest(filter) ?? until - 15 * 60_000;
    const step = bucketSeconds(Math.max(until - since, 1000));
    const stepMs = step * 1000;
    const start = Math.floor(since / stepMs) * stepMs;
    const buckets = Math.max(1, Math.ceil((until - start) / stepMs));
    // Counts come from the per-minute (or, for buckets of an hour and more, per-hour) series, so
    // the cost follows the length of the range, not the number of queries in it. Their edges are
    // whole minutes (hours): a range that starts mid-minute counts that whole minute.
    const hourly = stepMs >= HOUR;
    const unit = hourly ? HOUR : MINUTE;
    const table = hourly ? 'series_hour' : 'series_minute';
    const col = hourly ? 'hour' : 'minute';
    const shapeOk = (s: Shape): boolean =>
      (filter.network === undefined || s.network === filter.network) &&
      (filter.policy === undefined || s.policy === filter.policy) &&
      (filter.list === undefined || s.list === filter.list) &&
      (filter.instance === undefined || s.instance === filter.instance) &&
      (filter.decision === undefined || (filter.decision === 'would-block' ? s.wouldBlock : s.decision === filter.decision));
    const seriesRows =
      filter.client !== undefined || filter.domain !== undefined
        ? undefined
        : (this.db.prepare(`SELECT ${col} AS u, shape, count, duration FROM ${table} WHERE ${col} >= ? AND ${col} < ?`).all(Math.floor(since / unit), Math.ceil(until / unit)) as {
            u: number;
            shape: number;
            count: number;
            duration: number;
          }[]);
    const t = { queries: 0, blocked: 0, refused: 0, errors: 0, cacheHits: 0, allowed: 0, wouldBlock: 0 };
    const perNetwork = new Map<string, NetworkSeries>();
    const upstreamTotals = new Map<string, { n: number; sum: number }>();
    const count = (s: Shape, time: number, n: number, durationUs: number): void => {
      t.queries += n;
      const network = s.network ?? NO_NETWORK;
      let ns = perNetwork.get(network);
      if (!ns) perNetwork.set(network, (ns = { network, queries: new Array<number>(buckets).fill(0), blocked: new Array<number>(buckets).fill(0) }));
      const b = Math.floor((time - start) / stepMs);
      const inRange = b >= 0 && b < buckets;
      if (inRange) ns.queries[b]! += n;
      if (s.decision === 'blocked') {
        t.blocked += n;
        if (inRange) ns.blocked[b]! += n;
      } else if (s.decision === 'refused') t.refused += n;
      else if (s.decision === 'error' || s.decision === 'malformed') t.errors += n;
      else {
        t.allowed += n;
        if (s.cache) t.cacheHits += n;
        else if (s.upstream !== null) {
          const u = upstreamTotals.get(s.upstream) ?? { n: 0, sum: 0 };
          u.n += n;
          u.sum += durationUs;
          upstreamTotals.set(s.upstream, u);
        }
      }
      if (s.wouldBlock) t.wouldBlock += n;
    };
    if (seriesRows) {
      for (const r of seriesRows) {
        const s = this.shape(r.shape);
        // The minute (hour) that holds `since` starts before it, and with buckets shorter than a
        // minute before the first bucket too: its count went into the totals but into no bucket.
        if (shapeOk(s)) count(s, Math.max(r.u * unit, since), r.count, r.duration);
      }
    } else {
      const w = this.where(filter);
      for (const r of this.db.prepare(`SELECT e.id, e.shape, e.duration FROM events e WHERE ${w.sql}`).iterate(...w.params) as IterableIterator<{ id: number; shape: number; duration: number }>) {
        count(this.shape(r.shape), timeOf(r.id), 1, r.duration);
      }
    }
    // Top tables from the marked events: the cost follows the blocked queries.
    const [from, to] = idRange({ since, until });
    const blockedShapes = this.shapesWhere((s) => s.decision === 'blocked' && shapeOk(s));
    const extra: string[] = [];
    const extraParams: unknown[] = [];
    if (filter.client !== undefined) {
      extra.push('AND e.client = (SELECT id FROM clients WHERE client = ?)');
      extraParams.push(filter.client);
    }
    if (filter.domain !== undefined) {
      const d = filter.domain.toLowerCase().replace(/\.$/, '');
      extra.push(`AND (e.name = ? OR e.name LIKE ? ESCAPE '\\')`);
      extraParams.push(d, `%.${d.replace(/[\\%_]/g, (c) => `\\${c}`)}`);
    }
    const marked = (mark: number, shapes: number[], select: string, group: string) =>
      shapes.length === 0
        ? []
        : this.db
            .prepare(
              `SELECT ${select} FROM events e INDEXED BY events_marked WHERE e.mark = ${mark} AND e.id >= ? AND e.id < ? AND e.shape IN (${shapes.join(',')}) ${extra.join(' ')} GROUP BY ${group}`,
            )
            .all(from, to, ...extraParams);
    const byNameShape = marked(MARK_BLOCKED, blockedShapes, 'e.name, e.shape, count(*) AS n', 'e.name, e.shape') as { name: string; shape: number; n: number }[];
    const byClientShape = marked(MARK_BLOCKED, blockedShapes, 'e.client, e.shape, count(*) AS n', 'e.client, e.shape') as { client: number; shape: number; n: number }[];
    const domains = new Map<string, { n: number; list: string | null }>();
    for (const r of byNameShape) {
      const d = domains.get(r.name);
      if (d) d.n += r.n;
      else domains.set(r.name, { n: r.n, list: this.shape(r.shape).list });
    }
    const apps = new Map<string, { n: number; clients: Set<number> }>();
    const clients = new Map<string, { client: number; network: string; n: number; lists: Map<string, number> }>();
    for (const r of byClientShape) {
      const s = this.shape(r.shape);
      const list = s.list ?? '(unknown)';
      const a = apps.get(list) ?? { n: 0, clients: new Set<number>() };
      a.n += r.n;
      a.clients.add(r.client);
      apps.set(list, a);
      const network = s.network ?? NO_NETWORK;
      const ck = `${r.client}\0${network}`;
      const c = clients.get(ck) ?? { client: r.client, network, n: 0, lists: new Map<string, number>() };
      c.n += r.n;
      c.lists.set(list, (c.lists.get(list) ?? 0) + r.n);
      clients.set(ck, c);
    }
    const topDomains = [...domains].sort((a, b) => b[1].n - a[1].n || a[0].localeCompare(b[0])).slice(0, top);
    // Ties broken by address and network, as summarize() does; by client id (the order clients were
    // first seen) they picked other clients for the top rows than the pure function.
    const clientText = this.texts('clients', 'client', [...new Set([...clients.values()].map((c) => c.client))]);
    const clientKey = (c: { client: number; network: string }): string => `${clientText.get(c.client) ?? '?'}\u0000${c.network}`;
    const topClients = [...clients.values()].sort((a, b) => b.n - a.n || clientKey(a).localeCompare(clientKey(b))).slice(0, top);
    const dryShapes = this.shapesWhere((s) => s.wouldBlock && shapeOk(s));
    const dry = new Map<string, { n: number; clients: Set<number> }>();
    for (const r of marked(MARK_WOULD_BLOCK, dryShapes, 'e.client, e.shape, count(*) AS n', 'e.client, e.shape') as { client: number; shape: number; n: number }[]) {
      const policy = this.shape(r.shape).policy ?? '(unknown)';
      const d = dry.get(policy) ?? { n: 0, clients: new Set<number>() };
      d.n += r.n;
      d.clients.add(r.client);
      dry.set(policy, d);
    }
    const latency = this.latency(shapeOk, extra, extraParams, since, until, start, stepMs, buckets);
    const round = (v: number, digits = 3): number => Math.round(v * 10 ** digits) / 10 ** digits;
    return {
      total: t.queries,
      blocked: t.blocked,
      range: { since, until },
      totals: summaryTotals(t),
      series: {
        start,
        bucketSeconds: step,
        networks: busiestFirst(perNetwork.values()),
        upstreamP95Ms: latency.perBucket,
      },
      topBlockedDomains: topDomains.map(([name, d]) => ({ name, list: d.list, count: d.n })),
      topApps: [...apps]
        .sort((a, b) => b[1].n - a[1].n || a[0].localeCompare(b[0]))
        .slice(0, top)
        .map(([list, a]) => ({ list, count: a.n, clients: a.clients.size })),
      topBlockedClients: topClients.map((c) => ({
        client: clientText.get(c.client) ?? '?',
        network: c.network,
        count: c.n,
        lists: [...c.lists]
          .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
          .slice(0, 3)
          .map(([l]) => l),
      })),
      upstreams: [...upstreamTotals]
        .map(([upstream, u]) => {
          const sample = latency.perUpstream.get(upstream) ?? [];
          return { upstream, queries: u.n, avgMs: round(u.sum / u.n / 1000), p50Ms: round(percentile(sample, 50)), p95Ms: round(percentile(sample, 95)) };
        })
        .sort((a, b) => b.queries - a.queries || a.upstream.localeCompare(b.upstream)),
      dryRun: [...dry].map(([policy, d]) => ({ policy, wouldBlock: d.n, clients: d.clients.size })).sort((a, b) => b.wouldBlock - a.wouldBlock || a.policy.localeCompare(b.policy)),
    };
  }

  /**
   * Upstream latency percentiles over the newest LATENCY_SAMPLE forwarded queries of the range
   * that match the whole filter (`shapeOk` and the client and domain conditions). It took only the
   * network and instance: with a client, domain, policy, list or decision filter the percentiles
   * and the per-bucket p95 were those of every forwarded query, not of the ones summed.
   */
  private latency(shapeOk: (s: Shape) => boolean, extra: string[], extraParams: unknown[], since: number, until: number, start: number, stepMs: number, buckets: number) {
    const shapes = this.shapesWhere((s) => s.decision === 'allowed' && !s.cache && s.upstream !== null && shapeOk(s));
    const perUpstream = new Map<string, number[]>();
    const perBucket: number[][] = Array.from({ length: buckets }, () => []);
    if (shapes.length > 0) {
      const [from, to] = idRange({ since, until });
      const rows = this.db
        .prepare(`SELECT e.id, e.shape, e.duration FROM events e WHERE e.id >= ? AND e.id < ? AND e.shape IN (${shapes.join(',')}) ${extra.join(' ')} ORDER BY e.id DESC LIMIT ${LATENCY_SAMPLE}`)
        .all(from, to, ...extraParams) as { id: number; shape: number; duration: number }[];
      for (const r of rows) {
        const ms = r.duration / 1000;
        const u = this.shape(r.shape).upstream!;
        let l = perUpstream.get(u);
        if (!l) perUpstream.set(u, (l = []));
        l.push(ms);
        const b = Math.floor((timeOf(r.id) - start) / stepMs);
        if (b >= 0 && b < buckets) perBucket[b]!.push(ms);
      }
    }
    for (const l of perUpstream.values()) l.sort((a, b) => a - b);
    return {
      perUpstream,
      perBucket: perBucket.map((l) =>
        l.length === 0
          ? null
          : Math.round(
              percentile(
                l.sort((a, b) => a - b),
                95,
              ) * 1000,
            ) / 1000,
      ),
    };
  }

  private texts(table: 'clients', col: string, ids: number[]): Map<number, string> {
    if (ids.length === 0) return new Map();
    const rows = this.db.prepare(`SELECT id, ${col} AS v FROM ${table} WHERE id IN (${ids.join(',')})`).all() as { id: number; v: string }[];
    return new Map(rows.map((r) => [r.id, r.v]));
  }

  trend(o: TrendOptions): Promise<TrendRow[]> {
    const conds = ["decision = 'blocked'"];
    const params: unknown[] = [];
    const where = (cond: string, value: unknown): void => {
      conds.push(cond);
      params.push(value);
    };
    if (o.policy !== undefined) where('policy = ?', o.policy);
    if (o.network !== undefined) where('network = ?', o.network);
    if (o.list !== undefined) where('list = ?', o.list);
    if (o.since !== undefined) where('day >= ?', utcDay(o.since));
    if (o.until !== undefined) where('day <= ?', utcDay(o.until - 1));
    const rows = this.db
      .prepare(`SELECT day, network, policy, list, client, sum(count) AS n FROM rollup_daily WHERE ${conds.join(' AND ')} GROUP BY day, network, policy, list, client`)
      .all(...params) as { day: string; network: string; policy: string; list: string; client: string; n: number }[];
    const groups = new Map<string, TrendRow & { clientSet: Set<string> }>();
    for (const r of rows) {
      const period = periodStart(r.day, o.by);
      const key = `${period}\0${r.network}\0${r.policy}\0${r.list}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { period, network: r.network || '-', policy: r.policy, list: r.list, blocked: 0, clients: 0, clientSet: new Set() }));
      g.blocked += r.n;
      g.clientSet.add(r.client);
    }
    return Promise.resolve(
      [...groups.values()]
        .map(({ clientSet, ...g }) => ({ ...g, clients: clientSet.size }))
        .sort((a, b) => a.period.localeCompare(b.period) || a.network.localeCompare(b.network) || a.policy.localeCompare(b.policy) || a.list.localeCompare(b.list)),
    );
  }

  /** The time of the first event that matches a filter (a scan in id order that stops at it). */
  private earliest(filter: QueryFilter): number | null {
    const w = this.where(filter);
    const id = this.db
      .prepare(`SELECT e.id FROM events e WHERE ${w.sql} ORDER BY e.id LIMIT 1`)
      .pluck()
      .get(...w.params) as number | undefined;
    return id === undefined ? null : timeOf(id);
  }

  covers(filter: QueryFilter): Promise<Covers> {
    // Two subqueries: SQLite reads min() or max() of the row id from the end of the b-tree only
    // when it is the query's one aggregate; `SELECT min(id), max(id)` scans the whole table
    // (0.3 s at 2M events, seconds at 20M, on every report).
    const r = this.db.prepare('SELECT (SELECT min(id) FROM events) AS lo, (SELECT max(id) FROM events) AS hi').get() as { lo: number | null; hi: number | null };
    const held = { oldest: r.lo === null ? null : timeOf(r.lo), newest: r.hi === null ? null : timeOf(r.hi) };
    const since = filter.since;
    const until = filter.until;
    // The instances that wrote to this file (its shapes name them), when it holds events of the
    // range: the rollup would lag by up to AGGREGATE_MS, and scanning the range costs too much.
    const overlaps = held.oldest !== null && (until === undefined || held.oldest < until) && (since === undefined || held.newest! >= since);
    const instances = overlaps ? (this.db.prepare('SELECT DISTINCT instance FROM shapes').pluck().all() as string[]) : [];
    const dropped =
      (
        this.db.prepare('SELECT sum(count) AS n FROM drops WHERE day >= ? AND day <= ?').get(since === undefined ? '' : utcDay(since), until === undefined ? '9999' : utcDay(until)) as {
          n: number | null;
        }
      ).n ?? 0;
    const cut = this.db.prepare("SELECT cut FROM retention WHERE kind = 'raw'").get() as { cut: number } | undefined;
    return Promise.resolve(describeCovers('sqlite', filter, held, instances.sort(), dropped, cut?.cut ?? null, this.opts.retentionDays));
  }
}

function splitNames(s: string | null): string[] {
  return s ? (JSON.parse(s) as string[]) : [];
}

function rowShape(r: ShapeRow): Shape {
  return {
    instance: r.instance,
    network: r.network,
    profile: r.profile,
    policy: r.policy,
    list: r.list,
    rule: r.rule,
    type: r.qtype,
    decision: (DECISIONS.includes(r.decision as LoggedDecision) ? r.decision : 'error') as LoggedDecision,
    wouldBlock: r.would_block === 1,
    exception: r.exception === 1,
    cache: r.cache === 1,
    upstream: r.upstream,
    rcode: r.rcode,
    transport: asTransport(r.transport),
  };
}

interface SeriesCell {
  unit: number;
  shape: number;
  count: number;
  duration: number;
}

/** What the daily rollup keeps of a shape. */
interface RollupClass {
  instance: string;
  network: string;
  policy: string;
  list: string;
  decision: string;
}
/** A rollup class with its number (the rollup cells' key). */
type RollupClassId = RollupClass & { id: number };

interface RollupCell {
  day: number;
  cls: RollupClass;
  client: string;
  count: number;
  first: number;
  last: number;
}

/**
 * Sums of the per-minute and per-hour series and of the daily rollup, not yet written. Keys are
 * numbers or short strings of numbers: this runs for every stored event.
 */
class Aggregates {
  readonly minutes = new Map<number, SeriesCell>();
  readonly hours = new Map<number, SeriesCell>();
  /** Rollup cells by class and day (class id × 2^17 + day), then by client id: number keys, no key string per event. */
  readonly rollups = new Map<number, Map<number, RollupCell>>();
  private rollupCells = 0;
  private readonly classes = new Map<string, RollupClassId>();

  get size(): number {
    return this.rollupCells + this.minutes.size;
  }

  /** `level` is the event's rule level, `shape` its fields (the event or its shape row), `client` its client id and text. */
  add(time: number, level: RuleLevel, shape: Shape | QueryEvent, duration: number, clientId: number, client: string): void {
    addSeries(this.minutes, Math.floor(time / MINUTE), level.series, duration);
    addSeries(this.hours, Math.floor(time / HOUR), level.series, duration);
    const cls = (level.cls ??= this.classOf(shape));
    const day = Math.floor(time / DAY_MS);
    const key = cls.id * 131_072 + day;
    let byClient = this.rollups.get(key);
    if (byClient === undefined) this.rollups.set(key, (byClient = new Map()));
    const r = byClient.get(clientId);
    if (r) {
      r.count++;
      if (time < r.first) r.first = time;
      if (time > r.last) r.last = time;
    } else {
      byClient.set(clientId, { day, cls, client, count: 1, first: time, last: time });
      this.rollupCells++;
    }
  }

  /** The rollup class of a level's fields: one object per class, whichever levels share it. */
  private classOf(s: Shape | QueryEvent): RollupClassId {
    const decision = s.decision === 'allowed' && s.wouldBlock ? 'would-block' : s.decision;
    const key = `${s.instance}\0${s.network}\0${s.policy}\0${s.list}\0${decision}`;
    let c = this.classes.get(key);
    if (!c) this.classes.set(key, (c = { id: this.classes.size, instance: s.instance, network: s.network ?? '', policy: s.policy ?? '', list: s.list ?? '', decision }));
    return c;
  }

  clear(): void {
    this.minutes.clear();
    this.hours.clear();
    this.rollups.clear();
    this.rollupCells = 0;
  }
}

/** Series key: unit × 2^20 + shape (shapes stay far below a million; units are minutes or hours since 1970). */
function addSeries(m: Map<number, SeriesCell>, unit: number, shape: number, duration: number): void {
  const key = unit * 1_048_576 + shape;
  const c = m.get(key);
  if (c) {
    c.count++;
    c.duration += duration;
  } else m.set(key, { unit, shape, count: 1, duration });
}
