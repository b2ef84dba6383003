// The query-log store: where events live for every time range that the memory ring (the live
// tail) does not cover. One interface, two implementations: SQLite (embedded, the default) and
// PostgreSQL (several resolvers, Grafana). Written by the process that owns the log (the
// standalone server, or the primary of several workers), in batches, off the hot path; read by the
// admin API, the dashboard, `sluice log` and `sluice report`.
//
// Contract for writers: `write` never blocks and never throws. A store that cannot keep up (or is
// down) keeps events in a bounded spill and refuses batches beyond it; the buffer counts those as
// dropped, and the owner reports drops with `noteDropped` so that `covers` can say so.
import type { QueryEvent } from '../event.js';
import type { LogReader } from '../log-reader.js';
import type { QueryLogSink } from '../buffer.js';

export { DAY_MS, periodStart, utcDay, type TrendOptions, type TrendPeriod, type TrendRow } from '../periods.js';

export { describeCovers, type Covers, type StoreKind } from '../covers.js';
import type { StoreKind } from '../covers.js';

export interface StoreHealth {
  kind: StoreKind;
  /** The last write succeeded (or nothing was written yet and the store opened). */
  ok: boolean;
  /** Events written to the store since start. */
  written: number;
  /** Failed write attempts since start (each failure is retried from the spill). */
  failures: number;
  lastError: string | null;
  /** Events waiting in the spill (memory, and for PostgreSQL the local spool). */
  pending: number;
  /** Batches refused because the spill was full, in events. */
  refused: number;
  /** The part of the spill kept as binary batches, outside the heap (the SQLite writer thread). */
  binarySpill?: { events: number; bytes: number };
}

export interface EraseResult {
  events: number;
  rollups: number;
}

export interface QueryLogStore extends QueryLogSink, LogReader {
  readonly kind: StoreKind;
  /** Take a batch; never blocks or throws. False when the spill is full (the batch is dropped). */
  write(batch: QueryEvent[]): boolean;
  /** Events this instance logged but could not hand to the store (buffer overflow), to be shown in `covers`. */
  noteDropped(count: number, time: number): void;
  /** Remove a data subject's events from raw events and rollups (GDPR art. 17). */
  erase(client: string, before?: number): Promise<EraseResult>;
  /** Delete what is past retention (raw events, and rollups past their own retention). */
  enforceRetention(now: number): Promise<void>;
  health(): StoreHealth;
  /** Resolves when every event handed to `write` so far is durable in the store (or refused). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Options every store takes, from `query_log.store` and the owner. */
export interface StoreOptions {
  /** Raw events are kept this many days. */
  retentionDays: number;
  /** The daily rollup is kept this many days. */
  rollupRetentionDays: number;
  /** Events held while the store is slow or down; batches beyond are refused (and counted). */
  spillEvents: number;
  now: () => number;
  /** Told once per interval about write failures (never per batch). */
  warn: (message: string, fields?: Record<string, unknown>) => void;
  /** Open for reading only (CLI): no writes, no migrations, no retention. */
  readOnly?: boolean;
}
