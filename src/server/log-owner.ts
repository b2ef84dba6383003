// The process that owns the query log: the standalone server, or the primary of several workers.
// It holds the store (every range the API, the dashboard and the CLI read) or, with no store, the
// memory ring (the newest events only), and the optional JSONL files and dnstap stream; it is the
// one place that composes them, for both kinds of owner.
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { stateDir } from '../config/paths.js';
import type { Logger } from '../logging/logger.js';
import type { QueryLogSink } from '../querylog/buffer.js';
import { dnstapSinkFromConfig } from '../querylog/dnstap-sink.js';
import type { QueryEvent } from '../querylog/event.js';
import { JsonlFileSink } from '../querylog/file-sink.js';
import { MemoryReader, type LogReader } from '../querylog/log-reader.js';
import { MemoryStore } from '../querylog/memory-store.js';
import { openStore } from '../querylog/store/open-store.js';
import type { QueryLogStore } from '../querylog/store/store.js';

/** How often drops are written down in the store, for `covers`. */
const DROP_NOTE_MS = 10_000;

export class LogOwner implements QueryLogSink {
  readonly name = 'owner';
  /**
   * The newest events, when there is no store. With a store every reader reads the store, so the
   * ring would be written for nobody: it cost ~7 % of the answering thread at saturation.
   */
  readonly memory: MemoryStore | undefined;
  /** Where every time range is read: the store, else the memory ring. */
  readonly reader: LogReader;
  readonly sinks: QueryLogSink[];
  private readonly extraSinks: QueryLogSink[];
  private dropTimer: NodeJS.Timeout | undefined;
  private notedDrops = 0;
  /** Events that reached the owner (from the hot path or from workers). */
  accepted = 0;
  private refused = 0;
  /** Batches each sink refused, in events (for `sluice_querylog_dropped_events_total`). */
  readonly sinkDropped = new Map<string, number>();
  private reported = 0;
  /** The standalone server's buffer: events it dropped when full. */
  bufferDrops: () => number = () => 0;

  private constructor(
    readonly instance: string,
    config: Config,
    dir: string,
    readonly store: QueryLogStore | undefined,
    private readonly now: () => number,
    log: Logger,
  ) {
    const q = config.query_log;
    this.memory = store ? undefined : new MemoryStore(q.memory_events);
    const file = q.file ? new JsonlFileSink(join(dir, q.file.dir), q.file.retention_days, now) : undefined;
    const dnstap = dnstapSinkFromConfig(config, instance, log);
    this.extraSinks = [file, dnstap].filter((s): s is NonNullable<typeof s> => s !== undefined);
    this.sinks = [this.memory ?? store!, ...this.extraSinks];
    this.reader = store ?? new MemoryReader(this.memory!, instance, () => this.dropped);
    if (store) {
      this.dropTimer = setInterval(() => this.noteDrops(), DROP_NOTE_MS);
      this.dropTimer.unref();
    }
  }

  /** Open the configured store (a store that cannot be opened is a start-up error). */
  static async open(config: Config, baseDir: string, instance: string, now: () => number, log: Logger): Promise<LogOwner> {
    const dir = stateDir(config, baseDir);
    const store = await openStore(config, dir, {
      instance,
      now,
      writerThread: true,
      warn: (message, fields) => log.warn({ ...fields, store: config.query_log.store.kind }, message),
    });
    if (store) log.info({ store: store.description, retentionDays: config.query_log.store.retention_days }, 'query log store open');
    return new LogOwner(instance, config, dir, store, now, log);
  }

  /** Events lost before the store: refused by its spill, dropped by a full buffer here or in a worker. */
  get dropped(): number {
    return this.refused + this.reported + this.bufferDrops();
  }

  /** A batch of events (from this process's buffer, or from a worker): every sink. Never refuses. */
  write(batch: QueryEvent[]): boolean {
    this.accepted += batch.length;
    for (const s of this.sinks) {
      let ok = false;
      try {
        ok = s.write(batch);
      } catch {
        ok = false;
      }
      if (ok) continue;
      this.sinkDropped.set(s.name, (this.sinkDropped.get(s.name) ?? 0) + batch.length);
      if (s === this.store) this.refused += batch.length;
    }
    return true;
  }

  /**
   * Other instances' events (shared mode, through Redis): the memory ring, or a local SQLite store,
   * so that each instance's file covers them all. Not PostgreSQL: every instance writes its own
   * events to that one database already.
   */
  writeRemote(batch: QueryEvent[]): void {
    this.memory?.write(batch);
    if (this.store?.kind === 'sqlite' && !this.store.write(batch)) this.refused += batch.length;
  }

  /** Events a buffer (here or in a worker) dropped before they reached the owner. */
  lost(count: number): void {
    this.reported += count;
  }

  /** Tell the store how many events of this interval never reached it, so that `covers` can say so. */
  private noteDrops(): void {
    const n = this.dropped - this.notedDrops;
    if (n <= 0) return;
    this.notedDrops = this.dropped;
    this.store?.noteDropped(n, this.now());
  }

  private closing: Promise<void> | undefined;

  close(): Promise<void> {
    return (this.closing ??= this.closeOnce());
  }

  private async closeOnce(): Promise<void> {
    clearInterval(this.dropTimer);
    this.noteDrops();
    for (const s of this.extraSinks) await s.close?.();
    await this.store?.close();
  }
}
