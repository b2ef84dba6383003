// The bounded asynchronous buffer between the hot path and the sinks. `push` is O(1) and never
// waits: when the buffer is full the event is dropped and counted, so logging can never slow or
// lose a query. A timer hands batches to the sinks, and so does the end of the current I/O round once
// a batch is full: an event that waits long enough to live through a young-generation collection
// gets copied by it, and under load that copying was the largest cost of logging.
import type { QueryEvent } from './event.js';

export interface QueryLogSink {
  readonly name: string;
  /** Take a batch; return false when the sink could not keep up and dropped it. */
  write(batch: QueryEvent[]): boolean;
  close?(): Promise<void> | void;
}

export class QueryLogBuffer {
  private queue: QueryEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** Events dropped because the buffer was full, and batches a sink refused, per sink. */
  dropped = 0;
  readonly sinkDropped = new Map<string, number>();
  accepted = 0;

  constructor(
    private readonly capacity: number,
    private sinks: QueryLogSink[],
    private readonly flushMs = 100,
    private readonly batchEvents = 256,
  ) {}

  push(e: QueryEvent): void {
    if (this.queue.length >= this.capacity) {
      this.dropped++;
      return;
    }
    this.queue.push(e);
    this.accepted++;
    if (this.queue.length >= this.batchEvents) {
      this.immediate ??= setImmediate(() => this.flush());
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  get pending(): number {
    return this.queue.length;
  }

  setSinks(sinks: QueryLogSink[]): void {
    this.sinks = sinks;
  }

  flush(): void {
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    for (const s of this.sinks) {
      let ok = false;
      try {
        ok = s.write(batch);
      } catch {
        ok = false;
      }
      if (!ok) this.sinkDropped.set(s.name, (this.sinkDropped.get(s.name) ?? 0) + batch.length);
    }
  }

  async close(): Promise<void> {
    this.flush();
    for (const s of this.sinks) await s.close?.();
  }
}
