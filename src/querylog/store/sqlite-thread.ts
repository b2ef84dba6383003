// The SQLite store as the server runs it: the writer in a thread of its own at a low CPU priority
// (sqlite-writer-worker.ts), the readers on a read-only connection in this thread.
//
// Why a thread: on the owner's event loop, a query that arrived while a slice was being written
// waited for it (p99 18 ms at 50k cached queries a second, against 0.7 ms with no log), and at
// saturation the writer's budget still took a fifth of the core. In a thread at nice WRITER_NICE
// the kernel preempts the writer whenever a query arrives, gives it the time the answers leave
// and, while both want the core, about a tenth of it; the events it cannot take at saturation
// wait in its bounded spill and are then dropped and counted, as before. Events cross as column
// batches (event-batch.ts): cheaper to copy than objects.
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { QueryEvent } from '../event.js';
import { encodeEventBinary } from '../event-binary.js';
import type { QueryFilter } from '../filter.js';
import type { QueryPage } from '../memory-store.js';
import type { BypassReportOptions, BypassRow, DeviceRow, DevicesReportOptions } from '../reports.js';
import type { Summary, SummaryOptions } from '../summary.js';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { Covers, EraseResult, QueryLogStore, StoreHealth, TrendOptions, TrendRow } from './store.js';

/**
 * The writer's nice value: the lowest. CFS weights nice 19 at 15 against 1,024 for the answers, so
 * on a core the answers fill the writer gets ~1.5 % of it and the events it cannot take are
 * dropped and counted; whenever the core has idle time, it gets all of it. At nice 10 (weight 110,
 * ~10 %) the writer took a tenth of a saturated core from the answers, most of the gap to the 0.8
 * target (store ÷ log level none, bench/querylog.sh, one core: blocked 0.72-0.79 at 10, 0.78-0.93
 * at 19; cached 0.79 at 10, 0.89-0.95 at 19). Below saturation the writer keeps up either way: at
 * 50k blocked or cached queries a second every event was stored at 19. Where the answers alone
 * nearly fill the core (the bench's realistic mix at 50k/s) it drops events at 10 as at 19.
 */
export const WRITER_NICE = 19;

/** What the writer thread is started with (functions cannot cross: the clock goes as an offset). */
export interface WriterData {
  path: string;
  options: Omit<SqliteStoreOptions, 'now' | 'warn' | 'readOnly'>;
  clockOffset: number;
  nice: number;
}

export type ToWriter =
  | { t: 'write'; batch: ArrayBuffer; clockOffset: number }
  | { t: 'dropped'; count: number; time: number }
  | { t: 'flush'; id: number }
  | { t: 'retention'; id: number; now: number }
  | { t: 'erase'; id: number; client: string; before: number | undefined; clockOffset: number }
  | { t: 'close'; id: number };

export type FromWriter =
  | { t: 'ready'; lowered: boolean }
  | { t: 'failed'; message: string }
  | { t: 'warn'; message: string; fields?: Record<string, unknown> }
  | { t: 'health'; health: StoreHealth; settled: number }
  | { t: 'done'; id: number; result?: unknown; error?: string };

// From the sources (tests run them through vitest), the thread runs the build in dist/: a worker
// thread is plain Node and cannot load TypeScript.
const WORKER_URL = import.meta.url.endsWith('.ts') ? new URL('../../../dist/querylog/store/sqlite-writer-worker.js', import.meta.url) : new URL('./sqlite-writer-worker.js', import.meta.url);

export class ThreadedSqliteStore implements QueryLogStore {
  readonly kind = 'sqlite';
  readonly source = 'sqlite';
  readonly name = 'store';
  readonly description: string;
  /** The writer thread runs at WRITER_NICE, below the answers (false where the OS would not allow it). */
  lowered = false;
  private posted = 0;
  private settled = 0;
  /** Batches refused here because the writer's spill would overflow (or it is gone), in events. */
  private refusedHere = 0;
  private last: StoreHealth = { kind: 'sqlite', ok: true, written: 0, failures: 0, lastError: null, pending: 0, refused: 0 };
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private gone: string | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private readonly opts: SqliteStoreOptions,
    private readonly worker: Worker,
    private readonly reader: SqliteStore,
  ) {
    this.description = `SQLite store ${path}`;
    worker.on('message', (m: FromWriter) => this.onMessage(m));
    worker.on('error', (err) => this.lost(`the query-log writer thread failed: ${err.message}`));
    worker.on('exit', (code) => this.lost(`the query-log writer thread exited (${code})`));
    worker.unref();
  }

  /** Start the writer thread (it creates and migrates the file), then open the reading connection. */
  static async open(path: string, opts: SqliteStoreOptions): Promise<ThreadedSqliteStore> {
    const { now: _now, warn: _warn, readOnly: _readOnly, ...options } = opts;
    const data: WriterData = { path, options, clockOffset: opts.now() - Date.now(), nice: WRITER_NICE };
    const worker = new Worker(fileURLToPath(WORKER_URL), { workerData: data, name: 'sluice-querylog-writer' });
    // Only our own listeners come off afterwards: Worker keeps internal ones of its own.
    let onMessage: (m: FromWriter) => void = () => undefined;
    let onExit: (code: number) => void = () => undefined;
    let onError: (err: Error) => void = () => undefined;
    const lowered = await new Promise<boolean>((resolve, reject) => {
      onMessage = (m) => {
        if (m.t === 'ready') resolve(m.lowered);
        else if (m.t === 'failed') reject(new Error(m.message));
      };
      onError = reject;
      onExit = (code) => reject(new Error(`the query-log writer thread exited (${code})`));
      worker.on('message', onMessage).on('error', onError).on('exit', onExit);
    }).finally(() => worker.off('message', onMessage).off('error', onError).off('exit', onExit));
    let reader: SqliteStore;
    try {
      reader = new SqliteStore(path, { ...opts, readOnly: true });
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    const store = new ThreadedSqliteStore(path, opts, worker, reader);
    store.lowered = lowered;
    return store;
  }

  private onMessage(m: FromWriter): void {
    switch (m.t) {
      case 'health':
        this.last = m.health;
        this.settled = m.settled;
        return;
      case 'warn':
        this.opts.warn(m.message, m.fields);
        return;
      case 'done': {
        const w = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (this.waiting.size === 0) this.worker.unref();
        if (m.error !== undefined) w?.reject(new Error(m.error));
        else w?.resolve(m.result);
        return;
      }
      default:
        return;
    }
  }

  /** The thread is gone (a crash, or the end of close): what it held is lost, and counted. */
  private lost(why: string): void {
    if (this.gone !== undefined) return;
    this.gone = why;
    if (this.closing === undefined) {
      this.refusedHere += this.posted - this.settled;
      this.settled = this.posted;
      this.last = { ...this.last, ok: false, lastError: why };
      this.opts.warn(`${why}; query-log events are dropped and counted until the server restarts`, { store: this.path });
    }
    for (const w of this.waiting.values()) w.reject(new Error(why));
    this.waiting.clear();
  }

  private request<T>(m: ToWriter & { id: number }): Promise<T> {
    if (this.gone !== undefined) return Promise.reject(new Error(this.gone));
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(m.id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.ref(); // a caller waits for the answer: keep the process alive for it
      this.worker.postMessage(m);
    });
  }

  // Writing ---------------------------------------------------------------------------------

  write(batch: QueryEvent[]): boolean {
    if (this.gone !== undefined || this.closing !== undefined || this.posted - this.settled + batch.length > this.opts.spillEvents) {
      this.refusedHere += batch.length;
      return false;
    }
    this.posted += batch.length;
    const data = encodeEventBinary(batch);
    this.worker.postMessage({ t: 'write', batch: data, clockOffset: this.opts.now() - Date.now() } satisfies ToWriter, [data]);
    return true;
  }

  noteDropped(count: number, time: number): void {
    if (count > 0 && this.gone === undefined) this.worker.postMessage({ t: 'dropped', count, time } satisfies ToWriter);
  }

  health(): StoreHealth {
    return { ...this.last, pending: this.posted - this.settled, refused: this.last.refused + this.refusedHere };
  }

  flush(): Promise<void> {
    if (this.gone !== undefined) return Promise.resolve();
    return this.request({ t: 'flush', id: this.nextId++ });
  }

  enforceRetention(now: number): Promise<void> {
    return this.request({ t: 'retention', id: this.nextId++, now });
  }

  erase(client: string, before?: number): Promise<EraseResult> {
    return this.request({ t: 'erase', id: this.nextId++, client, before, clockOffset: this.opts.now() - Date.now() });
  }

  close(): Promise<void> {
    return (this.closing ??= this.closeOnce());
  }

  private async closeOnce(): Promise<void> {
    try {
      if (this.gone === undefined) await this.request({ t: 'close', id: this.nextId++ });
    } finally {
      await this.reader.close();
      await this.worker.terminate();
    }
  }

  // Reading: the read-only connection (WAL: it sees every committed slice, never a half one) ---

  query(filter: QueryFilter, limit: number, offset?: number): Promise<QueryPage> {
    return this.reader.query(filter, limit, offset);
  }
  events(filter: QueryFilter): Promise<QueryEvent[]> {
    return this.reader.events(filter);
  }
  devices(o: DevicesReportOptions): Promise<DeviceRow[]> {
    return this.reader.devices(o);
  }
  bypass(o: BypassReportOptions): Promise<BypassRow[]> {
    return this.reader.bypass(o);
  }
  summary(filter: QueryFilter, o: SummaryOptions): Promise<Summary> {
    return this.reader.summary(filter, o);
  }
  trend(o: TrendOptions): Promise<TrendRow[]> {
    return this.reader.trend(o);
  }
  covers(filter: QueryFilter): Promise<Covers> {
    return this.reader.covers(filter);
  }
}
