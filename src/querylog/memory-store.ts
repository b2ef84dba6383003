// The in-memory ring of recent events: the default sink, behind the dashboard, `sluice log` and the
// reports on a standalone server. Fixed capacity; the oldest events fall off.
import type { QueryLogSink } from './buffer.js';
import type { QueryEvent } from './event.js';
import { matches, type QueryFilter } from './filter.js';

export interface QueryPage {
  events: QueryEvent[];
  /** Matching events in the store (all pages). */
  total: number;
}

export class MemoryStore implements QueryLogSink {
  readonly name = 'memory';
  private ring: (QueryEvent | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.ring = new Array<QueryEvent | undefined>(capacity);
  }

  write(batch: QueryEvent[]): boolean {
    if (this.capacity === 0) return true;
    for (const e of batch) {
      this.ring[this.next] = e;
      this.next = (this.next + 1) % this.capacity;
      if (this.count < this.capacity) this.count++;
    }
    return true;
  }

  get size(): number {
    return this.count;
  }

  /** Oldest first. */
  *all(): IterableIterator<QueryEvent> {
    const start = (this.next - this.count + this.capacity) % Math.max(1, this.capacity);
    for (let i = 0; i < this.count; i++) yield this.ring[(start + i) % this.capacity]!;
  }

  /** Newest first, `offset`/`limit` paging over the matching events. */
  query(filter: QueryFilter, limit = 100, offset = 0): QueryPage {
    const events: QueryEvent[] = [];
    let total = 0;
    for (let i = 0; i < this.count; i++) {
      const e = this.ring[(this.next - 1 - i + this.capacity * 2) % this.capacity]!;
      if (!matches(e, filter)) continue;
      if (total >= offset && events.length < limit) events.push(e);
      total++;
    }
    return { events, total };
  }
}
