// What every reader of the query log asks: pages of events, the compliance reports, the dashboard
// summary and trends, and `covers` (what part of the asked range the answer holds). The stores
// (SQLite, PostgreSQL) answer with SQL; the memory ring (no store configured) with the pure
// functions over its events, and says in `covers` that it holds only the newest events.
import type { QueryEvent } from './event.js';
import { matches, type QueryFilter } from './filter.js';
import type { MemoryStore, QueryPage } from './memory-store.js';
import type { TrendOptions, TrendRow } from './periods.js';
import { bypassReport, devicesReport, trendReport, type BypassReportOptions, type BypassRow, type DeviceRow, type DevicesReportOptions } from './reports.js';
import { describeCovers, type Covers } from './covers.js';
import { summarize, type Summary, type SummaryOptions } from './summary.js';

export interface LogReader {
  readonly source: Covers['source'];
  /** For messages: "SQLite store /var/lib/sluice/querylog.db". */
  readonly description: string;
  /** Matching events newest first, `offset`/`limit` paging; `total` counts every match. */
  query(filter: QueryFilter, limit: number, offset?: number): Promise<QueryPage>;
  /** Every matching event, oldest first. */
  events(filter: QueryFilter): Promise<QueryEvent[]>;
  devices(o: DevicesReportOptions): Promise<DeviceRow[]>;
  bypass(o: BypassReportOptions): Promise<BypassRow[]>;
  summary(filter: QueryFilter, o: SummaryOptions): Promise<Summary>;
  trend(o: TrendOptions): Promise<TrendRow[]>;
  covers(filter: QueryFilter): Promise<Covers>;
}

/** A reader over events held as a list (the memory ring, the JSONL files, the admin API's pages). */
export abstract class EventListReader implements LogReader {
  abstract readonly source: Covers['source'];
  abstract readonly description: string;
  abstract events(filter: QueryFilter): Promise<QueryEvent[]>;
  abstract covers(filter: QueryFilter): Promise<Covers>;

  async query(filter: QueryFilter, limit: number, offset = 0): Promise<QueryPage> {
    const all = (await this.events(filter)).reverse();
    return { events: all.slice(offset, offset + limit), total: all.length };
  }

  async devices(o: DevicesReportOptions): Promise<DeviceRow[]> {
    return devicesReport(await this.events(windowFilter(o)), o);
  }

  async bypass(o: BypassReportOptions): Promise<BypassRow[]> {
    return bypassReport(await this.events(windowFilter(o)), o);
  }

  async summary(filter: QueryFilter, o: SummaryOptions): Promise<Summary> {
    return summarize(await this.events(filter), filter, o);
  }

  async trend(o: TrendOptions): Promise<TrendRow[]> {
    return trendReport(await this.events(windowFilter(o)), o);
  }
}

function windowFilter(o: { network?: string; since?: number; until?: number }): QueryFilter {
  const f: QueryFilter = {};
  if (o.network !== undefined) f.network = o.network;
  if (o.since !== undefined) f.since = o.since;
  if (o.until !== undefined) f.until = o.until;
  return f;
}

/** The memory ring as a reader: the live tail only, and `covers` says so. */
export class MemoryReader extends EventListReader {
  readonly source = 'memory';
  readonly description = "the server's memory (the newest events only)";

  constructor(
    private readonly ring: MemoryStore,
    private readonly instance: string,
    /** Events the log dropped since start (buffer overflow). */
    private readonly dropped: () => number,
  ) {
    super();
  }

  override query(filter: QueryFilter, limit: number, offset = 0): Promise<QueryPage> {
    return Promise.resolve(this.ring.query(filter, limit, offset));
  }

  events(filter: QueryFilter): Promise<QueryEvent[]> {
    const out: QueryEvent[] = [];
    for (const e of this.ring.all()) if (matches(e, filter)) out.push(e);
    return Promise.resolve(out);
  }

  covers(filter: QueryFilter): Promise<Covers> {
    const first = this.ring.all().next();
    const oldest = first.done ? null : first.value.time;
    const newest = this.ring.query({}, 1).events[0]?.time ?? null;
    const c = describeCovers('memory', filter, { oldest, newest }, oldest === null ? [] : [this.instance], this.dropped(), null, null);
    // The ring keeps the newest `memory_events` events: anything older is gone, whatever was asked.
    if (this.ring.size >= this.ring.capacity && (filter.since === undefined || (oldest !== null && filter.since < oldest))) {
      c.complete = false;
      c.notes.push(`only the newest ${this.ring.capacity} events are held in memory (from ${new Date(oldest!).toISOString()}); configure query_log.store for longer ranges`);
    }
    return Promise.resolve(c);
  }
}
