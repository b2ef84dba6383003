// The PostgreSQL query-log store: several resolvers write one database, Grafana and the reports
// read it. Schema and partitions: postgres-schema.ts; the connection URL: postgres-url.ts.
//
// Writing. `write` only appends the batch to an in-memory spill and wakes the writer loop, which
// sends what has accumulated (at most `batchEvents` events) in one transaction: the events with
// COPY, the daily rollup as one multi-row upsert aggregated here, the instance's first/last seen
// and pending drop counts. A transaction is all or nothing, so a batch is never half-written, and
// it also moves this writer session's row in `query_writers` to the batch's sequence number: a
// batch whose COMMIT reply was lost (the database went away mid-commit) is recognised as written
// when it is retried, so no event is stored twice.
//
// When the database is away the loop retries with backoff, counts failures and warns at most once
// per `warnIntervalMs`. Events wait in memory up to `spillEvents`; beyond that the oldest move to
// the local SQLite spool (when a spool path is given), and beyond the spool's bound batches are
// refused (the owner reports those with `noteDropped`, for `covers`). Replay order is the order
// of arrival: the batch being sent, then the spool, then memory. Past the first OBJECT_EVENTS,
// waiting batches are kept as binary batches (event-binary.ts, ~100 bytes an event instead of
// ~0.5 KB of objects) and decoded when the writer takes them: a full spill of objects was the
// largest part of the owner's memory during an outage.
//
// Reading. Every report is one or a few SQL aggregates over the matching events (grouped per
// name first, then per device); blocked and would-block events have a partial, covering index of
// their own, so the devices report reads those and not the whole range.
import { randomUUID } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { asTransport } from '../../pipeline/context.js';
import type { QueryEvent } from '../event.js';
import { binaryEventCount, decodeEventBinary, encodeEventBinary } from '../event-binary.js';
import type { QueryFilter } from '../filter.js';
import type { QueryPage } from '../memory-store.js';
import { BYPASS_LISTS, type BypassReportOptions, type BypassRow, type DeviceRow, type DevicesReportOptions } from '../reports.js';
import { bucketSeconds, busiestFirst, NO_NETWORK, summaryTotals, type NetworkSeries, type Summary, type SummaryOptions, type UpstreamLatency } from '../summary.js';
import { COPY_COLUMNS, encodeEvents, stripNul } from './copy-binary.js';
import { EventSpool } from './event-spool.js';
import { dropDayPartitionsBefore, ensureDayPartitions, listDayPartitions, migratePostgres, partitionName, schemaVersion, SCHEMA_VERSION } from './postgres-schema.js';
import { redactUrl } from './postgres-url.js';
import { DAY_MS, describeCovers, utcDay, type Covers, type EraseResult, type QueryLogStore, type StoreHealth, type StoreOptions, type TrendOptions, type TrendRow } from './store.js';

export interface PostgresStoreOptions extends StoreOptions {
  /** This resolver's name: drops and the writer session are recorded under it. */
  instance: string;
  /** The local SQLite spool for events beyond `spillEvents`; without it they are refused. */
  spoolPath?: string;
  /** Events in the spool at most (default 10 × spillEvents); beyond, batches are refused. */
  spoolEvents?: number;
  /**
   * Events per transaction at most (default 100,000). Big batches matter under load: the rollup
   * upsert costs per distinct (day, client, …) row, and a client's row is updated once per batch.
   */
  batchEvents?: number;
  /** Least time between two warnings about failed writes (default 60 s, on `now`). */
  warnIntervalMs?: number;
  /** Wait after a failed write: the first, and the longest as it doubles (default 250 ms, 5 s). */
  retryMs?: number;
  retryMaxMs?: number;
  /** A write transaction that takes longer fails, and is retried on a new connection (default 120 s). */
  writeTimeoutMs?: number;
  /** How often retention runs and the next days' partitions are created (default 1 h). */
  maintenanceMs?: number;
  /** Connections for reads (default 4). */
  poolSize?: number;
}

/** A batch as the writer sends it: formed once, then retried unchanged until it is written. */
interface Batch {
  writer: string;
  seq: number;
  events: QueryEvent[];
  /** The spool row it came from (deleted once the batch is written). */
  spoolId?: number;
  /** Formed by this session from events handed to `write` (counts towards `flush`). */
  own: boolean;
}

type Row = Record<string, unknown>;

const SELECT_EVENT =
  '(extract(epoch from time) * 1000)::float8 AS time, instance, client, network, profile, policy, list, rule, name, qtype, decision, would_block, exception, cache, upstream, rcode, answers, duration_ms, transport';
const ms = (column: string): string => `(extract(epoch from ${column}) * 1000)::float8`;

/** Waiting events kept as objects before later batches are kept binary (see the top of this file). */
const OBJECT_EVENTS = 10_000;

/** Year 1 to 9999: what both Date#toISOString and PostgreSQL's timestamp input take. */
const MIN_TIME = -62_135_596_800_000;
const MAX_TIME = 253_402_300_799_999;
const clampTime = (t: number): number => Math.min(Math.max(t, MIN_TIME), MAX_TIME);
const iso = (t: number): string => new Date(clampTime(t)).toISOString();

const DECISIONS = new Set(['allowed', 'blocked', 'refused', 'error', 'malformed']);

/** `YYYY-MM-DD` of the UTC day of a time, remembered: a batch's events fall on one or two days. */
let memoDay = Number.NaN;
let memoDayString = '';
function dayOf(time: number): string {
  const d = Math.floor(clampTime(time) / DAY_MS);
  if (d !== memoDay) {
    memoDay = d;
    memoDayString = utcDay(d * DAY_MS);
  }
  return memoDayString;
}

// ---------------------------------------------------------------------------------------------
// Rows back to values

function rowToEvent(r: Row): QueryEvent {
  return {
    time: r.time as number,
    instance: r.instance as string,
    client: r.client as string,
    network: r.network as string | null,
    profile: r.profile as string | null,
    policy: r.policy as string | null,
    list: r.list as string | null,
    rule: r.rule as string | null,
    name: r.name as string,
    type: r.qtype as string,
    decision: r.decision as QueryEvent['decision'],
    wouldBlock: r.would_block as boolean,
    exception: r.exception as boolean,
    cache: r.cache as boolean,
    upstream: r.upstream as string | null,
    rcode: r.rcode as number | null,
    answers: r.answers as number,
    durationMs: r.duration_ms as number,
    transport: asTransport(r.transport),
  };
}

/** Code points reversed, as PostgreSQL's reverse() does. */
const reversed = (s: string): string => [...s].reverse().join('');
const likeEscape = (s: string): string => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** The SQL condition of a filter (see filter.ts `matches`), with its parameters appended to `params`. */
export function filterSql(f: QueryFilter, params: unknown[], alias = ''): string[] {
  const c: string[] = [];
  const col = (name: string) => `${alias}${name}`;
  const param = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  if (f.since !== undefined) c.push(`${col('time')} >= ${param(iso(f.since))}::timestamptz`);
  if (f.until !== undefined) c.push(`${col('time')} < ${param(iso(f.until))}::timestamptz`);
  for (const k of ['network', 'client', 'policy', 'list', 'instance'] as const) {
    const v = f[k];
    if (v !== undefined) c.push(`${col(k)} = ${param(v)}`);
  }
  if (f.decision === 'would-block') c.push(col('would_block'));
  else if (f.decision !== undefined) c.push(`${col('decision')} = ${param(f.decision)}`);
  if (f.domain !== undefined) {
    // The name itself, or a name ending in "." + domain: both a prefix of the reversed name, which
    // query_events_rname indexes.
    const r = reversed(f.domain.toLowerCase().replace(/\.$/, ''));
    c.push(`(reverse(${col('name')}) = ${param(r)} OR reverse(${col('name')}) LIKE ${param(`${likeEscape(r)}.%`)})`);
  }
  return c;
}

const whereOf = (c: string[]): string => (c.length === 0 ? '' : `WHERE ${c.join(' AND ')}`);

/** The order of reports.ts: network, client, policy, list. */
const byNetworkClientPolicyList = (a: { network: string; client: string; policy?: string; list: string }, b: typeof a): number =>
  a.network.localeCompare(b.network) || a.client.localeCompare(b.client) || (a.policy ?? '').localeCompare(b.policy ?? '') || a.list.localeCompare(b.list);

const round = (v: number, digits = 3): number => Math.round(v * 10 ** digits) / 10 ** digits;

/** summary.ts's top-N order: count descending, then the key. */
function topEntries<K>(m: Map<K, number>, n: number, key: (k: K) => string): [K, number][] {
  return [...m].sort((a, b) => b[1] - a[1] || key(a[0]).localeCompare(key(b[0]))).slice(0, n);
}

const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const sqlState = (err: unknown): string | undefined => (err as { code?: unknown }).code as string | undefined;

// ---------------------------------------------------------------------------------------------

export class PostgresStore implements QueryLogStore {
  readonly kind = 'postgres';
  readonly source = 'postgres';
  readonly name = 'postgres';
  readonly description: string;

  private readonly pool: pg.Pool;
  private readonly readOnly: boolean;
  private readonly batchEvents: number;
  private readonly spoolEvents: number;
  private readonly writerId = randomUUID();
  private seq = 0;
  private spool: EventSpool | undefined;

  /** Waiting batches, oldest first: objects while few wait, binary batches beyond OBJECT_EVENTS. */
  private memory: (QueryEvent[] | ArrayBuffer)[] = [];
  private memEvents = 0;
  private inflight: Batch | undefined;
  /** Events handed in by `write` and accepted, and of those the ones written (or given up). */
  private accepted = 0;
  private done = 0;
  private flushWaiters: { target: number; resolve: () => void }[] = [];
  /** Drops not yet in query_drops: `day\0instance` → count. */
  private drops = new Map<string, number>();

  private writer: pg.Client | undefined;
  private ready = false;
  private knownDays = new Set<string>();
  /** Complete days whose partition this process has vacuumed. */
  private vacuumed = new Set<string>();
  private loopDone: Promise<void> = Promise.resolve();
  private wakeLoop: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryResolve: (() => void) | undefined;
  private spoolTimer: NodeJS.Immediate | undefined;
  private maintenanceTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private closed = false;

  private stats = { ok: true, written: 0, failures: 0, lastError: null as string | null, refused: 0 };
  private lastFailed = false;
  private lastWarnAt: number | undefined;
  private failuresSinceWarn = 0;

  private constructor(
    private readonly url: string,
    private readonly opts: PostgresStoreOptions,
  ) {
    this.readOnly = opts.readOnly === true;
    this.batchEvents = Math.max(1, opts.batchEvents ?? 100_000);
    this.spoolEvents = opts.spoolEvents ?? opts.spillEvents * 10;
    this.description = `PostgreSQL store ${redactUrl(url)}`;
    this.pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 4, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000, application_name: 'sluice' });
    // An idle connection that the server closes (restart, failover) is reported here; without a
    // listener it would be an uncaught error. The next query gets a new connection.
    this.pool.on('error', () => undefined);
  }

  /**
   * Open the store. A writer migrates the schema and creates today's and tomorrow's partitions,
   * but a database that is away does not stop it from opening: events wait in the spill and the
   * spool until it is back (`health()` says so). Read-only opens fail when the database cannot be
   * reached or has no schema.
   */
  static async open(url: string, opts: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(url, opts);
    if (store.readOnly) {
      try {
        const version = await schemaVersion(store.pool);
        if (version === 0) throw new Error(`${store.description} has no sluice schema yet: run \`sluice log migrate\` or start a resolver with this store`);
      } catch (err) {
        await store.pool.end().catch(() => undefined);
        throw err;
      }
      return store;
    }
    if (opts.spoolPath !== undefined) {
      try {
        store.spool = new EventSpool(opts.spoolPath);
        for (const [k, n] of store.spool.takeDrops()) store.drops.set(k, (store.drops.get(k) ?? 0) + n);
      } catch (err) {
        opts.warn('query-log store: no local spool; events beyond the spill are dropped while PostgreSQL is away', { error: errorMessage(err) });
      }
    }
    try {
      await store.prepare();
    } catch (err) {
      store.noteFailure(err);
    }
    store.loopDone = store.loop();
    const every = opts.maintenanceMs ?? 3_600_000;
    store.maintenanceTimer = setInterval(() => {
      store
        .enforceRetention(opts.now())
        .catch((err: unknown) => store.warnLimited('query-log store: retention and partition upkeep in PostgreSQL failed; retried within the hour', { error: errorMessage(err) }));
    }, every);
    store.maintenanceTimer.unref();
    return store;
  }

  /** Migrations, the partitions of today and tomorrow, and retention: once the database answers. */
  private async prepare(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await migratePostgres(client);
    } finally {
      client.release();
    }
    this.ready = true;
    await this.enforceRetention(this.opts.now());
  }

  // -------------------------------------------------------------------------------------------
  // Writing

  write(batch: QueryEvent[]): boolean {
    if (this.readOnly || this.stopping) return false;
    if (batch.length === 0) return true;
    const n = batch.length;
    const spill = this.opts.spillEvents;
    const fits = this.memEvents + n <= spill;
    // Beyond the spill, memory holds at most another spill's worth while the spool takes the oldest.
    const spoolable = this.spool !== undefined && this.spool.events + this.memEvents - spill + n <= this.spoolEvents && this.memEvents + n <= 2 * spill;
    if (!fits && !spoolable) {
      // Counted here for health(); the owner counts them too and reports them with noteDropped.
      this.stats.refused += n;
      return false;
    }
    // While the writer keeps up the next COPY takes these soon, as they are; behind it, they wait compactly.
    this.memory.push(this.memEvents >= OBJECT_EVENTS ? encodeEventBinary(batch) : batch);
    this.memEvents += n;
    this.accepted += n;
    if (this.memEvents > spill) this.spoolTimer ??= setImmediate(() => this.spoolOverflow());
    this.wake();
    return true;
  }

  noteDropped(count: number, time: number): void {
    if (this.readOnly || count <= 0) return;
    this.addDrop(this.opts.instance, time, count);
    this.wake();
  }

  private addDrop(instance: string, time: number, count: number): void {
    const key = `${dayOf(Number.isFinite(time) ? time : this.opts.now())}\0${stripNul(instance)}`;
    this.drops.set(key, (this.drops.get(key) ?? 0) + count);
  }

  flush(): Promise<void> {
    if (this.readOnly || this.closed || this.done >= this.accepted) return Promise.resolve();
    const target = this.accepted;
    return new Promise((resolve) => {
      this.flushWaiters.push({ target, resolve });
      this.wake();
      // A waiting flush keeps the process alive through a retry wait.
      this.retryTimer?.ref();
    });
  }

  private settleFlushes(all = false): void {
    if (this.flushWaiters.length === 0) return;
    const still: typeof this.flushWaiters = [];
    for (const w of this.flushWaiters) {
      if (all || this.done >= w.target) w.resolve();
      else still.push(w);
    }
    this.flushWaiters = still;
  }

  private wake(): void {
    const w = this.wakeLoop;
    this.wakeLoop = undefined;
    w?.();
  }

  private hasWork(): boolean {
    return this.inflight !== undefined || this.memEvents > 0 || (this.spool?.batches ?? 0) > 0 || this.drops.size > 0;
  }

  private takeMemory(max: number): QueryEvent[] {
    const out: QueryEvent[] = [];
    let k = 0;
    while (k < this.memory.length && out.length < max) {
      const entry = this.memory[k]!;
      let b: QueryEvent[];
      if (entry instanceof ArrayBuffer) {
        // Encoded here, so it decodes; were it ever not to, its events are counted as refused, not lost silently.
        const decoded = decodeEventBinary(entry);
        if (!decoded) {
          const n = binaryEventCount(entry);
          this.memEvents -= n;
          this.stats.refused += n;
          this.memory.splice(k, 1);
          continue;
        }
        b = this.memory[k] = decoded;
      } else b = entry;
      const room = max - out.length;
      if (b.length <= room) {
        for (const e of b) out.push(e);
        k++;
      } else {
        for (let i = 0; i < room; i++) out.push(b[i]!);
        this.memory[k] = b.slice(room);
      }
    }
    this.memory.splice(0, k);
    this.memEvents -= out.length;
    return out;
  }

  /** The oldest events beyond the spill go to the spool, one batch per turn of the event loop. */
  private spoolOverflow(): void {
    this.spoolTimer = undefined;
    const spool = this.spool;
    if (!spool || this.memEvents <= this.opts.spillEvents) return;
    const events = this.takeMemory(Math.min(this.batchEvents, this.memEvents - this.opts.spillEvents));
    const seq = ++this.seq;
    try {
      spool.append(this.writerId, seq, events);
    } catch (err) {
      // The spool cannot take them (disk full): they stay in memory, first in line.
      this.memory.unshift(events);
      this.memEvents += events.length;
      this.noteFailure(new Error(`the spool ${spool.path} failed: ${errorMessage(err)}`));
      return;
    }
    if (this.memEvents > this.opts.spillEvents) this.spoolTimer = setImmediate(() => this.spoolOverflow());
    this.wake();
  }

  /** The next batch: the one being retried, else the spool's oldest, else memory. */
  private nextBatch(): Batch | undefined {
    if (this.inflight) return this.inflight;
    const spooled = this.spool && this.spool.batches > 0 ? this.spool.oldest() : undefined;
    if (spooled) {
      this.inflight = { writer: spooled.writer, seq: spooled.seq, events: spooled.events, spoolId: spooled.id, own: spooled.writer === this.writerId };
    } else if (this.memEvents > 0) {
      this.inflight = { writer: this.writerId, seq: ++this.seq, events: this.takeMemory(this.batchEvents), own: true };
    }
    return this.inflight;
  }

  private async loop(): Promise<void> {
    let delay = this.opts.retryMs ?? 250;
    for (;;) {
      if (this.stopping && (this.lastFailed || !this.hasWork())) return;
      if (!this.hasWork()) {
        await new Promise<void>((resolve) => (this.wakeLoop = resolve));
        continue;
      }
      try {
        if (!this.ready) await this.prepare();
        const batch = this.nextBatch();
        await this.send(batch);
        this.written(batch);
        delay = this.opts.retryMs ?? 250;
      } catch (err) {
        if (this.givenUp(err)) continue;
        this.noteFailure(err);
        if (this.stopping) return;
        await new Promise<void>((resolve) => {
          this.retryResolve = resolve;
          this.retryTimer = setTimeout(resolve, delay);
          // A waiting flush keeps the process alive through the wait; nothing else does.
          if (this.flushWaiters.length === 0) this.retryTimer.unref();
        });
        this.retryResolve = undefined;
        delay = Math.min(delay * 2, this.opts.retryMaxMs ?? 5000);
      }
    }
  }

  private async writerClient(): Promise<pg.Client> {
    if (this.writer) return this.writer;
    // Keepalive probes after 10 s of silence: a database host that vanished (no RST) is noticed.
    const c = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 10_000, keepAlive: true, keepAliveInitialDelayMillis: 10_000, application_name: 'sluice-writer' });
    c.on('error', () => {
      if (this.writer === c) this.writer = undefined;
    });
    await c.connect();
    this.writer = c;
    return c;
  }

  private dropWriter(): void {
    const c = this.writer;
    this.writer = undefined;
    c?.end().catch(() => undefined);
  }

  /** One transaction: the batch's events, its rollup, instances and pending drops. */
  private async send(batch: Batch | undefined): Promise<void> {
    const client = await this.writerClient();
    const timeoutMs = this.opts.writeTimeoutMs ?? 120_000;
    // Events before the first day retention keeps (a spool replayed long after) would be deleted
    // at once: they are not written, nor is a partition created again for them.
    const firstKept = utcDay(this.opts.now() - (this.opts.retentionDays - 1) * DAY_MS);
    const events: QueryEvent[] = [];
    const days = new Set<string>();
    for (const e of batch?.events ?? []) {
      // A time PostgreSQL or a partition name cannot hold (a broken clock) would fail the batch for ever.
      if (!Number.isFinite(e.time) || e.time < MIN_TIME || e.time > MAX_TIME) continue;
      const day = dayOf(e.time);
      if (day < firstKept) continue;
      events.push(e);
      days.add(day);
    }
    const missing = [...days].filter((d) => !this.knownDays.has(d));
    if (missing.length > 0) {
      await ensureDayPartitions(client, missing);
      for (const d of missing) this.knownDays.add(d);
    }
    const drops = [...this.drops];
    // A transaction that hangs (a network that swallows packets) would hold up every batch after
    // it: past the timeout the connection is cut, the transaction fails and is retried.
    const watchdog = setTimeout(() => client.connection.stream.destroy(new Error(`no answer from PostgreSQL in ${timeoutMs} ms`)), timeoutMs);
    watchdog.unref();
    await client.query('BEGIN');
    try {
      if (batch) {
        const r = await client.query(
          `INSERT INTO query_writers (writer, instance, last_seq, updated) VALUES ($1, $2, $3, now())
           ON CONFLICT (writer) DO UPDATE SET last_seq = excluded.last_seq, updated = excluded.updated WHERE query_writers.last_seq < excluded.last_seq`,
          [batch.writer, this.opts.instance, batch.seq],
        );
        if (r.rowCount === 0) {
          // Written before: its COMMIT succeeded but the reply was lost.
          await client.query('ROLLBACK');
          return;
        }
      }
      if (events.length > 0) {
        await pipeline(Readable.from(encodeEvents(events)), client.query(copyFrom(`COPY query_events (${COPY_COLUMNS}) FROM STDIN (FORMAT binary)`)));
        await this.upsertRollup(client, events);
        await this.upsertInstances(client, events);
      }
      if (drops.length > 0) {
        await client.query(
          `INSERT INTO query_drops (day, instance, count) SELECT * FROM unnest($1::date[], $2::text[], $3::bigint[])
           ON CONFLICT (day, instance) DO UPDATE SET count = query_drops.count + excluded.count`,
          [drops.map(([k]) => k.split('\0')[0]), drops.map(([k]) => k.split('\0')[1]), drops.map(([, n]) => n)],
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      clearTimeout(watchdog);
    }
    for (const [k, n] of drops) {
      const left = (this.drops.get(k) ?? 0) - n;
      if (left > 0) this.drops.set(k, left);
      else this.drops.delete(k);
    }
    this.stats.written += events.length;
  }

  private async upsertRollup(client: pg.Client, events: QueryEvent[]): Promise<void> {
    const groups = new Map<string, { parts: string[]; count: number; first: number; last: number }>();
    for (const e of events) {
      const decision = e.decision === 'allowed' && e.wouldBlock ? 'would-block' : DECISIONS.has(e.decision) ? e.decision : 'error';
      // NUL cannot be stored, so it cannot be in a key either: the parts are split back out of it.
      const key = `${dayOf(e.time)}\0${stripNul(e.instance)}\0${stripNul(e.network ?? '')}\0${stripNul(e.client)}\0${stripNul(e.policy ?? '')}\0${stripNul(e.list ?? '')}\0${decision}`;
      const g = groups.get(key);
      if (!g) groups.set(key, { parts: key.split('\0'), count: 1, first: e.time, last: e.time });
      else {
        g.count++;
        if (e.time < g.first) g.first = e.time;
        if (e.time > g.last) g.last = e.time;
      }
    }
    // Rows in key order, so that two writers upserting the same keys lock them in the same order.
    const rows = [...groups.keys()].sort().map((k) => groups.get(k)!);
    const columns = [0, 1, 2, 3, 4, 5, 6].map((i) => rows.map((g) => g.parts[i]!));
    await client.query(
      `INSERT INTO query_rollup_daily AS r (day, instance, network, client, policy, list, decision, count, first_seen, last_seen)
       SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::timestamptz[], $10::timestamptz[])
       ON CONFLICT ON CONSTRAINT query_rollup_daily_key DO UPDATE SET count = r.count + excluded.count,
         first_seen = least(r.first_seen, excluded.first_seen), last_seen = greatest(r.last_seen, excluded.last_seen)`,
      [...columns, rows.map((g) => g.count), rows.map((g) => iso(g.first)), rows.map((g) => iso(g.last))],
    );
  }

  private async upsertInstances(client: pg.Client, events: QueryEvent[]): Promise<void> {
    const seen = new Map<string, { first: number; last: number }>();
    for (const e of events) {
      const s = seen.get(e.instance);
      if (!s) seen.set(e.instance, { first: e.time, last: e.time });
      else {
        if (e.time < s.first) s.first = e.time;
        if (e.time > s.last) s.last = e.time;
      }
    }
    const names = [...seen.keys()].sort();
    await client.query(
      `INSERT INTO query_instances AS i (instance, first_seen, last_seen) SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[])
       ON CONFLICT (instance) DO UPDATE SET first_seen = least(i.first_seen, excluded.first_seen), last_seen = greatest(i.last_seen, excluded.last_seen)`,
      [names.map(stripNul), names.map((n) => iso(seen.get(n)!.first)), names.map((n) => iso(seen.get(n)!.last))],
    );
  }

  /** After a successful transaction. */
  private written(batch: Batch | undefined): void {
    if (batch) {
      if (batch.spoolId !== undefined) this.spool?.remove(batch.spoolId, batch.events.length);
      if (batch.own) this.done += batch.events.length;
      this.inflight = undefined;
    }
    if (!this.stats.ok && this.stats.failures > 0) {
      this.opts.warn('query-log store: writing to PostgreSQL works again', { failures: this.stats.failures, pending: this.pending() });
    }
    this.stats.ok = true;
    this.lastFailed = false;
    this.lastWarnAt = undefined;
    this.failuresSinceWarn = 0;
    this.settleFlushes();
  }

  /**
   * A batch the database rejects for its data (not for being away) would be retried for ever and
   * hold up every batch after it: it is dropped, counted as refused and recorded as drops.
   */
  private givenUp(err: unknown): boolean {
    const code = sqlState(err);
    if (code === '23514' || code === '42P01') {
      // No partition for a row (dropped by retention elsewhere since we created it): look again.
      this.knownDays.clear();
      return false;
    }
    if (!code?.startsWith('22') || !this.inflight) return false;
    const batch = this.inflight;
    this.inflight = undefined;
    if (batch.spoolId !== undefined) this.spool?.remove(batch.spoolId, batch.events.length);
    if (batch.own) this.done += batch.events.length;
    this.stats.refused += batch.events.length;
    for (const e of batch.events) this.addDrop(e.instance, e.time, 1);
    this.opts.warn('query-log store: PostgreSQL rejected a batch of events; it is dropped', { error: errorMessage(err), events: batch.events.length });
    this.settleFlushes();
    return true;
  }

  private noteFailure(err: unknown): void {
    this.stats.ok = false;
    this.stats.failures++;
    this.stats.lastError = errorMessage(err);
    this.lastFailed = true;
    this.failuresSinceWarn++;
    this.dropWriter();
    this.warnLimited('query-log store: writing to PostgreSQL failed; events wait in the spill and are written when it is back', {
      error: this.stats.lastError,
      failures: this.failuresSinceWarn,
      pending: this.pending(),
    });
  }

  /** At most one warning per `warnIntervalMs` (on the injected clock), however often things fail. */
  private warnLimited(message: string, fields: Record<string, unknown>): void {
    const now = this.opts.now();
    if (this.lastWarnAt !== undefined && now - this.lastWarnAt < (this.opts.warnIntervalMs ?? 60_000)) return;
    this.opts.warn(message, fields);
    this.lastWarnAt = now;
    this.failuresSinceWarn = 0;
  }

  private pending(): number {
    const inflight = this.inflight && this.inflight.spoolId === undefined ? this.inflight.events.length : 0;
    return this.memEvents + inflight + (this.spool?.events ?? 0);
  }

  /** Events in the local spool (part of `health().pending`). */
  spooled(): number {
    return this.spool?.events ?? 0;
  }

  health(): StoreHealth {
    return {
      kind: 'postgres',
      ok: this.stats.ok,
      written: this.stats.written,
      failures: this.stats.failures,
      lastError: this.stats.lastError,
      pending: this.pending(),
      refused: this.stats.refused,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopping = true;
    clearInterval(this.maintenanceTimer);
    clearTimeout(this.retryTimer);
    this.retryResolve?.();
    this.wake();
    await this.loopDone;
    if (this.spoolTimer) clearImmediate(this.spoolTimer);
    this.closed = true;
    // What could not be written waits in the spool for the next start, in order.
    const spool = this.spool;
    const left = this.pending();
    if (spool) {
      try {
        if (this.inflight && this.inflight.spoolId === undefined) spool.prepend(this.inflight.writer, this.inflight.seq, this.inflight.events);
        while (this.memEvents > 0) spool.append(this.writerId, ++this.seq, this.takeMemory(this.batchEvents));
        if (this.drops.size > 0) spool.saveDrops(this.drops);
      } catch (err) {
        this.opts.warn('query-log store: the spool failed at close; unwritten events are lost', { error: errorMessage(err), events: this.pending() });
      }
      spool.close();
    } else if (left > 0) {
      this.opts.warn('query-log store: closed with events not written to PostgreSQL (no spool); they are lost', { events: left });
    }
    this.inflight = undefined;
    this.memory = [];
    this.memEvents = 0;
    this.settleFlushes(true);
    this.dropWriter();
    await this.pool.end().catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------
  // Maintenance

  async enforceRetention(now: number): Promise<void> {
    if (this.readOnly || this.closed) return;
    const client = await this.pool.connect();
    try {
      if (!this.ready) {
        await migratePostgres(client);
        this.ready = true;
      }
      await ensureDayPartitions(client, [utcDay(now), utcDay(now + DAY_MS)]);
      // Today and the retention_days - 1 days before it, as the JSONL files are kept.
      const firstKept = utcDay(now - (this.opts.retentionDays - 1) * DAY_MS);
      const dropped = await dropDayPartitionsBefore(client, firstKept);
      if (dropped.length > 0) {
        for (const d of dropped) this.knownDays.delete(d);
        await this.recordCut(client, 'raw', firstKept);
      }
      const rollupFirstKept = utcDay(now - (this.opts.rollupRetentionDays - 1) * DAY_MS);
      const r = await client.query('DELETE FROM query_rollup_daily WHERE day < $1::date', [rollupFirstKept]);
      if ((r.rowCount ?? 0) > 0) await this.recordCut(client, 'rollup', rollupFirstKept);
      await client.query('DELETE FROM query_drops WHERE day < $1::date', [rollupFirstKept < firstKept ? rollupFirstKept : firstKept]);
      // Writer sessions idle for a week have nothing left to retry.
      await client.query('DELETE FROM query_writers WHERE updated < $1::timestamptz', [iso(now - 7 * DAY_MS)]);
      // Yesterday's partition is complete: VACUUM marks its pages all-visible, so the devices
      // report reads the blocked events from the index alone (200k blocked of 20M: 0.2 s instead
      // of 1.3 s), and ANALYZE gives the planner its statistics. Autovacuum gets there too, later
      // (PostgreSQL 12 never, for a table that is only appended to). In the background: it reads
      // the whole partition.
      const yesterday = utcDay(now - DAY_MS);
      if (!this.vacuumed.has(yesterday) && (await listDayPartitions(client)).includes(yesterday)) {
        this.vacuumed.add(yesterday);
        this.pool
          .query(`VACUUM (ANALYZE) ${partitionName(yesterday)}`)
          .catch((err: unknown) => this.warnLimited(`query-log store: VACUUM of ${partitionName(yesterday)} failed`, { error: errorMessage(err) }));
      }
    } finally {
      client.release();
    }
  }

  private async recordCut(client: pg.PoolClient, kind: 'raw' | 'rollup', firstKept: string): Promise<void> {
    await client.query(`INSERT INTO query_retention AS r (kind, cut) VALUES ($1, $2::timestamptz) ON CONFLICT (kind) DO UPDATE SET cut = greatest(r.cut, excluded.cut)`, [
      kind,
      `${firstKept}T00:00:00Z`,
    ]);
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  async query(filter: QueryFilter, limit: number, offset = 0): Promise<QueryPage> {
    const params: unknown[] = [];
    const where = whereOf(filterSql(filter, params));
    const [page, count] = await Promise.all([
      this.pool.query<Row>(
        `SELECT ${SELECT_EVENT} FROM query_events ${where} ORDER BY query_events.time DESC, ctid DESC LIMIT ${Math.max(0, Math.trunc(limit))} OFFSET ${Math.max(0, Math.trunc(offset))}`,
        params,
      ),
      this.pool.query<{ total: number }>(`SELECT count(*)::float8 AS total FROM query_events ${where}`, params),
    ]);
    return { events: page.rows.map(rowToEvent), total: count.rows[0]?.total ?? 0 };
  }

  async events(filter: QueryFilter): Promise<QueryEvent[]> {
    const params: unknown[] = [];
    const r = await this.pool.query<Row>(`SELECT ${SELECT_EVENT} FROM query_events ${whereOf(filterSql(filter, params))} ORDER BY query_events.time, ctid`, params);
    return r.rows.map(rowToEvent);
  }

  async devices(o: DevicesReportOptions): Promise<DeviceRow[]> {
    const params: unknown[] = [];
    const c = filterSql({ since: o.since, until: o.until, network: o.network, policy: o.policy }, params);
    c.push(`decision = 'blocked'`);
    // Grouped per name first (a hash aggregate, no sort of every event), then per device and app.
    // MATERIALIZED keeps `policy IS NOT NULL AND list IS NOT NULL` out of the scan: the planner
    // takes those as independent of `decision` and expects a hundredth of the rows, then sorts
    // them all on disk instead of hashing (measured: 1 s instead of 0.25 s for 200k events).
    const r = await this.pool.query<Row>(
      `WITH g AS MATERIALIZED (
         SELECT coalesce(network, '-') AS network, client, policy, list, name, count(*) AS n, min(time) AS first, max(time) AS last
         FROM query_events ${whereOf(c)} GROUP BY 1, 2, 3, 4, 5)
       SELECT network, client, policy, list, sum(n)::float8 AS count, ${ms('min(first)')} AS first_seen, ${ms('max(last)')} AS last_seen, array_agg(name) AS names
       FROM g WHERE policy IS NOT NULL AND list IS NOT NULL GROUP BY 1, 2, 3, 4`,
      params,
    );
    return r.rows
      .map((x) => ({
        network: x.network as string,
        client: x.client as string,
        policy: x.policy as string,
        list: x.list as string,
        count: x.count as number,
        firstSeen: x.first_seen as number,
        lastSeen: x.last_seen as number,
        names: (x.names as string[]).sort(),
      }))
      .sort(byNetworkClientPolicyList);
  }

  async bypass(o: BypassReportOptions): Promise<BypassRow[]> {
    const lists = [...new Set<string>(o.lists ?? BYPASS_LISTS)];
    if (lists.length === 0) return [];
    const window = (params: unknown[]) => filterSql({ since: o.since, until: o.until, network: o.network }, params, 'e.');
    // Names that carry no bypass list but that `classify` puts on one (an open network that
    // blocks neither list logs them as allowed without a list). This reads every event of the
    // range once; without `classify` only the events with a bypass list are read.
    const classified: [string, string][] = [];
    if (o.classify) {
      const params: unknown[] = [];
      const c = window(params);
      params.push(lists);
      c.push(`(e.list IS NULL OR NOT e.list = ANY($${params.length}::text[]))`);
      const names = await this.pool.query<{ name: string }>(`SELECT DISTINCT e.name FROM query_events e ${whereOf(c)}`, params);
      const wanted = new Set(lists);
      for (const { name } of names.rows) {
        const l = o.classify(name);
        if (l !== undefined && wanted.has(l)) classified.push([name, l]);
      }
    }
    const params: unknown[] = [classified.map(([n]) => n), classified.map(([, l]) => l), lists];
    const c = window(params);
    c.push('(e.list = ANY($3::text[]) OR m.list IS NOT NULL)');
    const r = await this.pool.query<Row>(
      `WITH m (name, list) AS (SELECT * FROM unnest($1::text[], $2::text[])),
       g AS MATERIALIZED (
         SELECT coalesce(e.network, '-') AS network, e.client, CASE WHEN e.list = ANY($3::text[]) THEN e.list ELSE m.list END AS list, e.name,
           count(*) AS n, count(*) FILTER (WHERE e.decision = 'blocked') AS blocked, min(e.time) AS first, max(e.time) AS last
         FROM query_events e LEFT JOIN m ON m.name = e.name ${whereOf(c)} GROUP BY 1, 2, 3, 4)
       SELECT network, client, list, sum(n)::float8 AS count, sum(blocked)::float8 AS blocked,
         ${ms('min(first)')} AS first_seen, ${ms('max(last)')} AS last_seen, array_agg(name) AS names
       FROM g GROUP BY 1, 2, 3`,
      params,
    );
    return r.rows
      .map((x) => ({
        network: x.network as string,
        client: x.client as string,
        list: x.list as string,
        count: x.count as number,
        blocked: x.blocked as number,
        firstSeen: x.first_seen as number,
        lastSeen: x.last_seen as number,
        endpoints: (x.names as string[]).sort(),
      }))
      .sort(byNetworkClientPolicyList);
  }

  /** summary.ts `summarize`, as SQL aggregates over the matching events. */
  async summary(filter: QueryFilter, o: SummaryOptions): Promise<Summary> {
    const top = o.top ?? 10;
    const until = filter.until ?? o.now;
    let since = filter.since;
    if (since === undefined) {
      const params: unknown[] = [];
      const r = await this.pool.query<{ earliest: number | null }>(`SELECT ${ms('min(time)')} AS earliest FROM query_events ${whereOf(filterSql(filter, params))}`, params);
      since = r.rows[0]?.earliest ?? until - 15 * 60_000;
    }
    const step = bucketSeconds(Math.max(until - since, 1000));
    const stepMs = step * 1000;
    const start = Math.floor(since / stepMs) * stepMs;
    const buckets = Math.max(1, Math.ceil((until - start) / stepMs));
    const bucketOf = (p: unknown[]) => {
      p.push(start, stepMs);
      return `floor((extract(epoch from time) * 1000 - $${p.length - 1}::float8) / $${p.length}::float8)::int`;
    };
    const where = (p: unknown[], ...extra: string[]) => whereOf([...filterSql(filter, p), ...extra]);

    const pNet: unknown[] = [];
    const bNet = bucketOf(pNet);
    const pLat: unknown[] = [];
    const bLat = bucketOf(pLat);
    const pBlocked: unknown[] = [];
    const pDomains: unknown[] = [];
    const pDry: unknown[] = [];
    const [net, lat, blocked, domains, dry] = await Promise.all([
      this.pool.query<Row>(
        `SELECT coalesce(network, $${pNet.push(NO_NETWORK)}) AS network, ${bNet} AS b, count(*)::float8 AS queries,
           (count(*) FILTER (WHERE decision = 'blocked'))::float8 AS blocked, (count(*) FILTER (WHERE decision = 'refused'))::float8 AS refused,
           (count(*) FILTER (WHERE decision IN ('error', 'malformed')))::float8 AS errors, (count(*) FILTER (WHERE decision = 'allowed'))::float8 AS allowed,
           (count(*) FILTER (WHERE decision = 'allowed' AND cache))::float8 AS cache_hits, (count(*) FILTER (WHERE would_block))::float8 AS would_block
         FROM query_events ${where(pNet)} GROUP BY 1, 2`,
        pNet,
      ),
      this.pool.query<Row>(
        `SELECT grouping(upstream) AS by_bucket, upstream, ${bLat} AS b, count(*)::float8 AS queries, avg(duration_ms::numeric)::float8 AS avg_ms,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50, percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95
         FROM query_events ${where(pLat, `decision = 'allowed'`, 'NOT cache', 'upstream IS NOT NULL')} GROUP BY GROUPING SETS ((upstream), (${bLat}))`,
        pLat,
      ),
      this.pool.query<Row>(
        `SELECT client, coalesce(network, $${pBlocked.push(NO_NETWORK)}) AS network, coalesce(list, '(unknown)') AS list, count(*)::float8 AS count
         FROM query_events ${where(pBlocked, `decision = 'blocked'`)} GROUP BY 1, 2, 3`,
        pBlocked,
      ),
      // Every name tied with the top-th count comes back, so that ties are broken as summary.ts does.
      this.pool.query<Row>(
        `WITH g AS (SELECT name, count(*) AS c, (array_agg(list ORDER BY time))[1] AS list FROM query_events ${where(pDomains, `decision = 'blocked'`)} GROUP BY name)
         SELECT name, list, c::float8 AS count FROM g WHERE c >= coalesce((SELECT c FROM g ORDER BY c DESC OFFSET $${pDomains.push(Math.max(top - 1, 0))} LIMIT 1), 0)`,
        pDomains,
      ),
      this.pool.query<Row>(
        `SELECT coalesce(policy, '(unknown)') AS policy, count(*)::float8 AS would_block, count(DISTINCT client)::float8 AS clients
         FROM query_events ${where(pDry, 'would_block')} GROUP BY 1`,
        pDry,
      ),
    ]);

    const t = { queries: 0, blocked: 0, refused: 0, errors: 0, cacheHits: 0, allowed: 0, wouldBlock: 0 };
    const perNetwork = new Map<string, NetworkSeries>();
    for (const x of net.rows) {
      t.queries += x.queries as number;
      t.blocked += x.blocked as number;
      t.refused += x.refused as number;
      t.errors += x.errors as number;
      t.allowed += x.allowed as number;
      t.cacheHits += x.cache_hits as number;
      t.wouldBlock += x.would_block as number;
      const network = x.network as string;
      let s = perNetwork.get(network);
      if (!s) perNetwork.set(network, (s = { network, queries: new Array<number>(buckets).fill(0), blocked: new Array<number>(buckets).fill(0) }));
      const b = x.b as number;
      if (b >= 0 && b < buckets) {
        s.queries[b] = x.queries as number;
        s.blocked[b] = x.blocked as number;
      }
    }
    const p95 = new Array<number | null>(buckets).fill(null);
    const upstreams: UpstreamLatency[] = [];
    for (const x of lat.rows) {
      if (Number(x.by_bucket) === 1) {
        const b = x.b as number;
        if (b >= 0 && b < buckets) p95[b] = round(x.p95 as number);
      } else {
        upstreams.push({ upstream: x.upstream as string, queries: x.queries as number, avgMs: round(x.avg_ms as number), p50Ms: round(x.p50 as number), p95Ms: round(x.p95 as number) });
      }
    }
    const apps = new Map<string, number>();
    const appClients = new Map<string, Set<string>>();
    const clients = new Map<string, number>();
    const clientLists = new Map<string, Map<string, number>>();
    for (const x of blocked.rows) {
      const [client, network, list, count] = [x.client as string, x.network as string, x.list as string, x.count as number];
      apps.set(list, (apps.get(list) ?? 0) + count);
      let ac = appClients.get(list);
      if (!ac) appClients.set(list, (ac = new Set()));
      ac.add(client);
      const key = `${client}\u0000${network}`;
      clients.set(key, (clients.get(key) ?? 0) + count);
      let cl = clientLists.get(key);
      if (!cl) clientLists.set(key, (cl = new Map()));
      cl.set(list, (cl.get(list) ?? 0) + count);
    }
    const blockedDomains = new Map<string, number>();
    const domainList = new Map<string, string | null>();
    for (const x of domains.rows) {
      blockedDomains.set(x.name as string, x.count as number);
      domainList.set(x.name as string, x.list as string | null);
    }
    return {
      total: t.queries,
      blocked: t.blocked,
      range: { since, until },
      totals: summaryTotals(t),
      series: {
        start,
        bucketSeconds: step,
        networks: busiestFirst(perNetwork.values()),
        upstreamP95Ms: p95,
      },
      topBlockedDomains: topEntries(blockedDomains, top, (k) => k).map(([name, count]) => ({ name, list: domainList.get(name) ?? null, count })),
      topApps: topEntries(apps, top, (k) => k).map(([list, count]) => ({ list, count, clients: appClients.get(list)?.size ?? 0 })),
      topBlockedClients: topEntries(clients, top, (k) => k).map(([key, count]) => {
        const [client, network] = key.split('\u0000') as [string, string];
        const lists = topEntries(clientLists.get(key) ?? new Map<string, number>(), 3, (k) => k).map(([l]) => l);
        return { client, network, count, lists };
      }),
      upstreams: upstreams.sort((a, b) => b.queries - a.queries || a.upstream.localeCompare(b.upstream)),
      dryRun: dry.rows
        .map((x) => ({ policy: x.policy as string, wouldBlock: x.would_block as number, clients: x.clients as number }))
        .sort((a, b) => b.wouldBlock - a.wouldBlock || a.policy.localeCompare(b.policy)),
    };
  }

  /**
   * Blocked queries per period from the daily rollup (kept longer than raw events). The rollup
   * counts whole UTC days: a `since` or `until` inside a day counts that whole day.
   */
  async trend(o: TrendOptions): Promise<TrendRow[]> {
    const params: unknown[] = [o.by];
    const c = [`decision = 'blocked'`];
    const param = (v: unknown) => `$${params.push(v)}`;
    if (o.policy !== undefined) c.push(`policy = ${param(o.policy)}`);
    if (o.network !== undefined) c.push(`network = ${param(o.network)}`);
    if (o.list !== undefined) c.push(`list = ${param(o.list)}`);
    // Days that overlap [since, until).
    if (o.since !== undefined) c.push(`day >= ${param(utcDay(Math.max(o.since, MIN_TIME)))}::date`);
    if (o.until !== undefined) c.push(`day <= ${param(utcDay(Math.min(o.until - 1, MAX_TIME)))}::date`);
    const r = await this.pool.query<Row>(
      `SELECT to_char(date_trunc($1, day::timestamp), 'YYYY-MM-DD') AS period, network, policy, list,
         sum(count)::float8 AS blocked, count(DISTINCT client)::float8 AS clients
       FROM query_rollup_daily ${whereOf(c)} GROUP BY 1, 2, 3, 4`,
      params,
    );
    return (
      r.rows
        // '' in the rollup is no network; reports.ts `trendReport` names it '-'.
        .map((x) => ({
          period: x.period as string,
          network: (x.network as string) || '-',
          policy: x.policy as string,
          list: x.list as string,
          blocked: x.blocked as number,
          clients: x.clients as number,
        }))
        .sort((a, b) => (a.period < b.period ? -1 : a.period > b.period ? 1 : 0) || a.network.localeCompare(b.network) || a.policy.localeCompare(b.policy) || a.list.localeCompare(b.list))
    );
  }

  async covers(filter: QueryFilter): Promise<Covers> {
    const sinceDay = filter.since !== undefined ? utcDay(Math.max(filter.since, MIN_TIME)) : null;
    const lastDay = filter.until !== undefined ? utcDay(Math.min(filter.until - 1, MAX_TIME)) : null;
    const pDrops: unknown[] = [];
    const dropsWhere: string[] = [];
    if (sinceDay !== null) dropsWhere.push(`day >= $${pDrops.push(sinceDay)}::date`);
    if (lastDay !== null) dropsWhere.push(`day <= $${pDrops.push(lastDay)}::date`);
    if (filter.instance !== undefined) dropsWhere.push(`instance = $${pDrops.push(filter.instance)}`);
    // Instances with events in the range: by day from the rollup, which has a row for every day
    // and instance that wrote (query_rollup_daily_instance); for days the rollup no longer holds,
    // by the instance's first and last seen.
    const pInst: unknown[] = [];
    const only = filter.instance !== undefined ? `i.instance = $${pInst.push(filter.instance)} AND ` : '';
    const rollupDays: string[] = [];
    const seen: string[] = [];
    if (sinceDay !== null) {
      rollupDays.push(`AND r.day >= $${pInst.push(sinceDay)}::date`);
      seen.push(`AND i.last_seen >= $${pInst.push(iso(filter.since!))}::timestamptz`);
    }
    if (lastDay !== null) {
      rollupDays.push(`AND r.day <= $${pInst.push(lastDay)}::date`);
      seen.push(`AND i.first_seen < $${pInst.push(iso(filter.until!))}::timestamptz`);
    }
    const [held, retention, drops, instances] = await Promise.all([
      // min/max over the time index: the first entry of the oldest and newest partitions.
      this.pool.query<{ oldest: number | null; newest: number | null }>(`SELECT ${ms('min(time)')} AS oldest, ${ms('max(time)')} AS newest FROM query_events`),
      this.pool.query<{ kind: string; cut: number }>(`SELECT kind, ${ms('cut')} AS cut FROM query_retention`),
      this.pool.query<{ dropped: number }>(`SELECT coalesce(sum(count), 0)::float8 AS dropped FROM query_drops ${whereOf(dropsWhere)}`, pDrops),
      this.pool.query<{ instance: string }>(
        `SELECT i.instance FROM query_instances i
         WHERE ${only}(EXISTS (SELECT 1 FROM query_rollup_daily r WHERE r.instance = i.instance ${rollupDays.join(' ')})
           OR (i.first_seen < (SELECT cut FROM query_retention WHERE kind = 'rollup') ${seen.join(' ')}))`,
        pInst,
      ),
    ]);
    let dropped = drops.rows[0]?.dropped ?? 0;
    // This instance's drops not written yet count too.
    for (const [k, n] of this.drops) {
      const [day, instance] = k.split('\0') as [string, string];
      if ((sinceDay === null || day >= sinceDay) && (lastDay === null || day <= lastDay) && (filter.instance === undefined || filter.instance === instance)) dropped += n;
    }
    const raw = retention.rows.find((r) => r.kind === 'raw');
    const h = held.rows[0];
    return describeCovers(
      'postgres',
      filter,
      { oldest: h?.oldest ?? null, newest: h?.newest ?? null },
      instances.rows.map((r) => r.instance).sort(),
      dropped,
      raw ? raw.cut : null,
      this.opts.retentionDays,
    );
  }

  async erase(client: string, before?: number): Promise<EraseResult> {
    if (!this.readOnly && this.pending() > 0) {
      // Events of this client still on their way in are written first, so that they are erased too.
      if (!this.stats.ok) throw new Error(`${this.description}: events are waiting for the database (${this.stats.lastError ?? 'not reachable'}); erase once it is back`);
      await this.flush();
    }
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      let events: pg.QueryResult;
      let removed: number;
      if (before === undefined) {
        events = await c.query('DELETE FROM query_events WHERE client = $1', [client]);
        removed = (await c.query('DELETE FROM query_rollup_daily WHERE client = $1', [client])).rowCount ?? 0;
      } else {
        events = await c.query('DELETE FROM query_events WHERE client = $1 AND time < $2::timestamptz', [client, iso(before)]);
        // Rollup rows are per day: the days wholly before `before` go; the day it falls in is
        // counted again from the raw events of that day that remain.
        const day = utcDay(clampTime(before));
        const midnight = `${day}T00:00:00.000Z` === iso(before);
        removed = (await c.query(`DELETE FROM query_rollup_daily WHERE client = $1 AND day ${midnight ? '<' : '<='} $2::date`, [client, day])).rowCount ?? 0;
        if (!midnight) {
          const again = await c.query(
            `INSERT INTO query_rollup_daily AS r (day, instance, network, client, policy, list, decision, count, first_seen, last_seen)
             SELECT $2::date, instance, coalesce(network, ''), client, coalesce(policy, ''), coalesce(list, ''),
               CASE WHEN decision = 'allowed' AND would_block THEN 'would-block' ELSE decision END, count(*), min(time), max(time)
             FROM query_events WHERE client = $1 AND time >= $3::timestamptz AND time < $4::timestamptz GROUP BY 1, 2, 3, 4, 5, 6, 7
             ON CONFLICT ON CONSTRAINT query_rollup_daily_key DO UPDATE SET count = r.count + excluded.count,
               first_seen = least(r.first_seen, excluded.first_seen), last_seen = greatest(r.last_seen, excluded.last_seen)`,
            [client, day, `${day}T00:00:00Z`, iso(Date.parse(`${day}T00:00:00Z`) + DAY_MS)],
          );
          removed = Math.max(0, removed - (again.rowCount ?? 0));
        }
      }
      const erased = { events: events.rowCount ?? 0, rollups: removed };
      await c.query('INSERT INTO query_erasures (time, client, before, events, rollups) VALUES ($1::timestamptz, $2, $3::timestamptz, $4, $5)', [
        iso(this.opts.now()),
        client,
        before === undefined ? null : iso(before),
        erased.events,
        erased.rollups,
      ]);
      await c.query('COMMIT');
      return erased;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  /** The schema version this build writes (for `sluice log migrate`). */
  static readonly schemaVersion = SCHEMA_VERSION;
}
