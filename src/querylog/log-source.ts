// Where `sluice log` and `sluice report` read query events: the query-log store (SQLite or
// PostgreSQL), opened read-only by the command itself, so the answer is the same whether the
// server runs or not; without a store, the running server's admin API (its memory ring, the
// newest events only) or the daily JSONL files in state_dir. Every source applies the same
// filters (filter.ts) and says in `covers` what part of the asked range it holds.
import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LoadedConfig } from '../config/load.js';
import { adminTokenFile, stateDir } from '../config/paths.js';
import { readAdminToken } from '../config/secrets.js';
import type { QueryEvent } from './event.js';
import { logFiles } from './file-sink.js';
import { matches, type QueryFilter } from './filter.js';
import type { QueryPage } from './memory-store.js';
import { EventListReader, type LogReader } from './log-reader.js';
import type { TrendOptions, TrendRow } from './periods.js';
import { bypassReport, type BypassReportOptions, type BypassRow, type DeviceRow, type DevicesReportOptions } from './reports.js';
import { openStore, sqlitePath } from './store/open-store.js';
import { DAY_MS, describeCovers, type Covers, type QueryLogStore } from './store/store.js';
import type { Summary, SummaryOptions } from './summary.js';

export type SourceKind = 'store' | 'api' | 'files';

/** A problem the user can fix (server down, wrong token, no files): printed without a stack. */
export class LogSourceError extends Error {
  override name = 'LogSourceError';
}

export interface LogSource extends LogReader {
  readonly kind: SourceKind;
  /** For messages: "admin API at http://…", "log files in …", "SQLite store …". */
  readonly description: string;
  /** Every matching event, oldest first. */
  all(filter: QueryFilter): Promise<QueryEvent[]>;
  /**
   * For `--follow`: a function that returns the matching events logged since its previous call,
   * oldest first. `shown` are the newest events already printed (the tail); without them the
   * first call returns nothing and only marks the position.
   */
  follower(filter: QueryFilter, shown?: QueryEvent[]): () => Promise<QueryEvent[]>;
}

const API_PAGE = 1000; // the admin API's largest page

// ---------------------------------------------------------------------------------------------
// The admin API

/** http://address:port of the admin server; a wildcard bind address is reached on loopback. */
export function adminUrl(loaded: LoadedConfig): string {
  const { address, port } = loaded.config.admin;
  const host = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '::1' : address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function filterParams(f: QueryFilter): URLSearchParams {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(f) as [string, string | number | undefined][]) if (v !== undefined) p.set(k, String(v));
  return p;
}

function reason(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return 'no answer in time';
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}

export class ApiLogSource implements LogSource {
  readonly kind = 'api';
  readonly source = 'api';
  readonly description: string;

  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly timeoutMs = 5000,
  ) {
    this.description = `admin API at ${url}`;
  }

  events(filter: QueryFilter): Promise<QueryEvent[]> {
    return this.all(filter);
  }

  private async report<T>(path: string, params: Record<string, string | number | undefined>): Promise<T> {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) p.set(k, String(v));
    return ((await this.get(path, p)) as { rows: T }).rows;
  }

  devices(o: DevicesReportOptions): Promise<DeviceRow[]> {
    return this.report('/api/report/devices', { since: o.since, until: o.until, network: o.network, policy: o.policy });
  }

  async bypass(o: BypassReportOptions): Promise<BypassRow[]> {
    // The server's store has no catalog to classify names with: classify here, over its events.
    return bypassReport(
      await this.all({ ...(o.network !== undefined ? { network: o.network } : {}), ...(o.since !== undefined ? { since: o.since } : {}), ...(o.until !== undefined ? { until: o.until } : {}) }),
      o,
    );
  }

  async summary(filter: QueryFilter): Promise<Summary> {
    return (await this.get('/api/summary', filterParams(filter))) as Summary;
  }

  trend(o: TrendOptions): Promise<TrendRow[]> {
    return this.report('/api/report/trend', { by: o.by, since: o.since, until: o.until, network: o.network, policy: o.policy, list: o.list });
  }

  async covers(filter: QueryFilter): Promise<Covers> {
    const params = filterParams(filter);
    params.set('limit', '1');
    return ((await this.get('/api/log', params)) as { covers: Covers }).covers;
  }

  private async get(path: string, params: URLSearchParams): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}?${params}`, {
        headers: { authorization: `Bearer ${this.token}` },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new LogSourceError(`the ${this.description} is not reachable (${reason(err)})`);
    }
    const text = await res.text();
    if (res.status === 401) {
      throw new LogSourceError(`the ${this.description} refused the token (HTTP 401): set admin.token, the admin.token_env variable, or state_dir/admin-token to the server's token`);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new LogSourceError(`the ${this.description} answered HTTP ${res.status} with something other than JSON`);
    }
    if (!res.ok) throw new LogSourceError(`the ${this.description} answered HTTP ${res.status}: ${(body as { error?: string }).error ?? text}`);
    return body;
  }

  async query(filter: QueryFilter, limit: number, offset = 0): Promise<QueryPage> {
    const events: QueryEvent[] = [];
    let total = 0;
    // The API pages at most 1000 at a time; after the first page, `until` is pinned to the newest
    // event seen so that events logged meanwhile do not shift the offsets of later pages.
    let f = filter;
    while (events.length < limit) {
      const n = Math.min(API_PAGE, limit - events.length);
      const params = filterParams(f);
      params.set('limit', String(n));
      params.set('offset', String(offset + events.length));
      const page = (await this.get('/api/log', params)) as QueryPage;
      if (events.length === 0) total = page.total;
      events.push(...page.events);
      if (page.events.length < n) break;
      if (f.until === undefined && events[0]) f = { ...f, until: events[0].time + 1 };
    }
    return { events, total };
  }

  async all(filter: QueryFilter): Promise<QueryEvent[]> {
    const { events } = await this.query(filter, Number.MAX_SAFE_INTEGER);
    return events.reverse();
  }

  follower(filter: QueryFilter, shown: QueryEvent[] = []): () => Promise<QueryEvent[]> {
    return pollFollower(this, filter, shown);
  }
}

/**
 * For `--follow` over a source that pages: poll with `since` = the newest time seen; events of that
 * same millisecond are told apart by their content, since the log has no ids.
 */
function pollFollower(source: Pick<LogSource, 'query' | 'all'>, filter: QueryFilter, shown: QueryEvent[]): () => Promise<QueryEvent[]> {
  let last: number | undefined;
  let atLast = new Set<string>();
  if (shown.length > 0) {
    last = Math.max(...shown.map((e) => e.time));
    atLast = new Set(shown.filter((e) => e.time === last).map((e) => JSON.stringify(e)));
  }
  return async () => {
    if (last === undefined) {
      const newest = (await source.query(filter, 1)).events[0];
      last = newest?.time ?? 0;
      atLast = new Set(newest ? (await source.all({ ...filter, since: last })).map((e) => JSON.stringify(e)) : []);
      return [];
    }
    const fresh = (await source.all({ ...filter, since: last })).filter((e) => !atLast.has(JSON.stringify(e)));
    for (const e of fresh) {
      if (e.time > last) {
        last = e.time;
        atLast = new Set();
      }
      if (e.time === last) atLast.add(JSON.stringify(e));
    }
    return fresh;
  };
}

// ---------------------------------------------------------------------------------------------
// The JSONL files

/** `queries-2026-11-25.jsonl` → the epoch ms of that UTC day's start. */
function fileDay(file: string): number {
  return Date.parse(`${basename(file).slice(8, 18)}T00:00:00Z`);
}

function parseLine(line: string): QueryEvent | undefined {
  if (line === '') return undefined;
  try {
    return JSON.parse(line) as QueryEvent;
  } catch {
    return undefined; // the last line of a file being written may be incomplete
  }
}

export class FileLogSource extends EventListReader implements LogSource {
  readonly kind = 'files';
  readonly source = 'files';
  readonly description: string;

  constructor(readonly dir: string) {
    super();
    this.description = `log files in ${dir}`;
  }

  events(filter: QueryFilter): Promise<QueryEvent[]> {
    return this.all(filter);
  }

  async covers(filter: QueryFilter): Promise<Covers> {
    const files = logFiles(this.dir);
    const oldest = files.length > 0 ? fileDay(files[0]!) : null;
    const newest = files.length > 0 ? fileDay(files.at(-1)!) + DAY_MS : null;
    return describeCovers('files', filter, { oldest, newest }, [], 0, null, null);
  }

  /** Files that can hold events of the filter's time range, oldest first. */
  private files(f: QueryFilter): string[] {
    // A file holds the events written that UTC day; an event is written up to a flush interval
    // after it happened, so the file of day d may begin with the last events of day d-1.
    return logFiles(this.dir).filter((file) => {
      const day = fileDay(file);
      if (f.since !== undefined && day + DAY_MS <= f.since) return false;
      if (f.until !== undefined && day - DAY_MS >= f.until) return false;
      return true;
    });
  }

  private async read(file: string, filter: QueryFilter, into: QueryEvent[]): Promise<void> {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      const e = parseLine(line);
      if (e && matches(e, filter)) into.push(e);
    }
  }

  async all(filter: QueryFilter): Promise<QueryEvent[]> {
    const out: QueryEvent[] = [];
    for (const file of this.files(filter)) await this.read(file, filter, out);
    return out;
  }

  follower(filter: QueryFilter): () => Promise<QueryEvent[]> {
    // The files only grow while a server runs without its admin API; remember the newest file and how far into it we have read; read only what was appended.
    let file: string | undefined;
    let pos = 0;
    let partial = '';
    const readFrom = (f: string, from: number): { text: string; end: number } => {
      const fd = openSync(f, 'r');
      try {
        const size = fstatSync(fd).size;
        if (size <= from) return { text: '', end: from };
        const buf = Buffer.alloc(size - from);
        const n = readSync(fd, buf, 0, buf.length, from);
        return { text: buf.subarray(0, n).toString('utf8'), end: from + n };
      } finally {
        closeSync(fd);
      }
    };
    let started = false;
    return () => {
      const files = logFiles(this.dir);
      if (!started) {
        started = true;
        file = files.at(-1);
        if (file) {
          // start after the last complete line: an incomplete one is still being written
          const { text } = readFrom(file, 0);
          pos = Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1));
        }
        return Promise.resolve([]);
      }
      const out: QueryEvent[] = [];
      const todo = file === undefined ? files : files.filter((f) => f >= file!);
      for (const f of todo) {
        if (f !== file) {
          file = f;
          pos = 0;
          partial = '';
        }
        const { text, end } = readFrom(f, pos);
        pos = end;
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const e = parseLine(line);
          if (e && matches(e, filter)) out.push(e);
        }
      }
      return Promise.resolve(out);
    };
  }
}

// ---------------------------------------------------------------------------------------------
// The store

/** The query-log store opened read-only, as a source; `close()` when done. */
export class StoreLogSource implements LogSource {
  readonly kind = 'store';
  readonly source: Covers['source'];
  readonly description: string;

  constructor(private readonly store: QueryLogStore) {
    this.source = store.source;
    this.description = store.description;
  }

  query(filter: QueryFilter, limit: number, offset?: number): Promise<QueryPage> {
    return this.store.query(filter, limit, offset);
  }
  all(filter: QueryFilter): Promise<QueryEvent[]> {
    return this.store.events(filter);
  }
  events(filter: QueryFilter): Promise<QueryEvent[]> {
    return this.store.events(filter);
  }
  devices(o: DevicesReportOptions): Promise<DeviceRow[]> {
    return this.store.devices(o);
  }
  bypass(o: BypassReportOptions): Promise<BypassRow[]> {
    return this.store.bypass(o);
  }
  summary(filter: QueryFilter, o: SummaryOptions): Promise<Summary> {
    return this.store.summary(filter, o);
  }
  trend(o: TrendOptions): Promise<TrendRow[]> {
    return this.store.trend(o);
  }
  covers(filter: QueryFilter): Promise<Covers> {
    return this.store.covers(filter);
  }
  follower(filter: QueryFilter, shown: QueryEvent[] = []): () => Promise<QueryEvent[]> {
    return pollFollower(this, filter, shown);
  }
  close(): Promise<void> {
    return this.store.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Choosing

export interface OpenOptions {
  /** Force one source; by default the API when the server answers, else the files. */
  source?: SourceKind;
  /** Told when the API was wanted but is not reachable and the files are read instead. */
  warn?: (message: string) => void;
  probeTimeoutMs?: number;
}

export function logFileDir(loaded: LoadedConfig): string | undefined {
  const f = loaded.config.query_log.file;
  return f ? join(stateDir(loaded.config, loaded.baseDir), f.dir) : undefined;
}

async function probe(url: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.text();
    return res.ok ? undefined : `HTTP ${res.status}`;
  } catch (err) {
    return reason(err);
  }
}

/** The source to read from, or a LogSourceError saying why there is none. */
export async function openLogSource(loaded: LoadedConfig, opts: OpenOptions = {}): Promise<LogSource> {
  const dir = logFileDir(loaded);
  const { admin } = loaded.config;
  const url = adminUrl(loaded);
  const token = readAdminToken(loaded.config, loaded.baseDir);
  const noFiles = `query_log.file is not set in ${loaded.file}, so the log is only in the server's memory`;
  const apiProblem = (): string | undefined =>
    !admin.enabled
      ? `admin.enabled is false in ${loaded.file}`
      : token === undefined
        ? `no admin token (admin.token, $${admin.token_env} or ${adminTokenFile(loaded.config, loaded.baseDir)})`
        : undefined;

  if (opts.source === 'files') {
    if (dir === undefined) throw new LogSourceError(noFiles);
    return new FileLogSource(dir);
  }
  const storeKind = loaded.config.query_log.store.kind;
  if (opts.source === 'store' || (opts.source === undefined && storeKind !== 'none')) {
    if (storeKind === 'none') throw new LogSourceError(`query_log.store.kind is none in ${loaded.file}`);
    let store: QueryLogStore | undefined;
    try {
      store = await openStore(loaded.config, stateDir(loaded.config, loaded.baseDir), { instance: 'cli', now: Date.now, warn: () => undefined, readOnly: true });
    } catch (err) {
      throw new LogSourceError(`cannot open the query-log store: ${(err as Error).message}`);
    }
    if (store) return new StoreLogSource(store);
    if (opts.source === 'store') throw new LogSourceError(`the query-log store ${sqlitePath(loaded.config, stateDir(loaded.config, loaded.baseDir))} does not exist yet: nothing was logged`);
    // SQLite, and no file yet: the server has not logged anything; fall through to the API.
  }
  const problem = apiProblem();
  if (opts.source === 'api') {
    if (problem !== undefined) throw new LogSourceError(`cannot use the admin API: ${problem}`);
    return new ApiLogSource(url, token!);
  }
  if (problem === undefined) {
    const down = await probe(url, opts.probeTimeoutMs ?? 1500);
    if (down === undefined) return new ApiLogSource(url, token!);
    if (dir === undefined) throw new LogSourceError(`the admin API at ${url} is not reachable (${down}) and ${noFiles}`);
    opts.warn?.(`the admin API at ${url} is not reachable (${down}); reading the log files in ${dir}`);
    return new FileLogSource(dir);
  }
  if (dir === undefined) throw new LogSourceError(`cannot read the query log: ${problem}, and ${noFiles}`);
  return new FileLogSource(dir);
}
