// Where `sluice log` and `sluice report` read query events: the running server's admin API (its
// in-memory ring, the freshest view) or, when the server is not running, the daily JSONL files in
// state_dir. Both apply the same filters (filter.ts), so a command gives the same answer from
// either source for the events both hold.
import { closeSync, createReadStream, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LoadedConfig } from '../config/load.js';
import { stateDir } from '../lists/catalog.js';
import type { QueryEvent } from './event.js';
import { logFiles } from './file-sink.js';
import { matches, type QueryFilter } from './filter.js';
import type { QueryPage } from './memory-store.js';

export type SourceKind = 'api' | 'files';

/** A problem the user can fix (server down, wrong token, no files): printed without a stack. */
export class LogSourceError extends Error {
  override name = 'LogSourceError';
}

export interface LogSource {
  readonly kind: SourceKind;
  /** For messages: "admin API at http://…" or "log files in …". */
  readonly description: string;
  /** Matching events newest first, `offset`/`limit` paging; `total` counts every match. */
  query(filter: QueryFilter, limit: number, offset?: number): Promise<QueryPage>;
  /** Every matching event, oldest first. */
  all(filter: QueryFilter): Promise<QueryEvent[]>;
  /**
   * For `--follow`: a function that returns the matching events logged since its previous call,
   * oldest first. `shown` are the newest events already printed (the tail); without them the
   * first call returns nothing and only marks the position.
   */
  follower(filter: QueryFilter, shown?: QueryEvent[]): () => Promise<QueryEvent[]>;
}

const DAY_MS = 86_400_000;
const API_PAGE = 1000; // the admin API's largest page

// ---------------------------------------------------------------------------------------------
// The admin API

/** The admin token as the server finds it, but never generated: a CLI only reads. */
export function readAdminToken(loaded: LoadedConfig): string | undefined {
  const a = loaded.config.admin;
  if (a.token) return a.token;
  const env = process.env[a.token_env];
  if (env) return env;
  const file = join(stateDir(loaded.config, loaded.baseDir), 'admin-token');
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8').trim() || undefined;
}

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
  readonly description: string;

  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly timeoutMs = 5000,
  ) {
    this.description = `admin API at ${url}`;
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
    // Poll with `since` = the newest time seen; events of that same millisecond are told apart
    // by their content, since the log has no ids.
    let last: number | undefined;
    let atLast = new Set<string>();
    if (shown.length > 0) {
      last = Math.max(...shown.map((e) => e.time));
      atLast = new Set(shown.filter((e) => e.time === last).map((e) => JSON.stringify(e)));
    }
    return async () => {
      if (last === undefined) {
        const newest = (await this.query(filter, 1)).events[0];
        last = newest?.time ?? 0;
        atLast = new Set(newest ? (await this.all({ ...filter, since: last })).map((e) => JSON.stringify(e)) : []);
        return [];
      }
      const fresh = (await this.all({ ...filter, since: last })).filter((e) => !atLast.has(JSON.stringify(e)));
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

export class FileLogSource implements LogSource {
  readonly kind = 'files';
  readonly description: string;

  constructor(readonly dir: string) {
    this.description = `log files in ${dir}`;
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

  async query(filter: QueryFilter, limit: number, offset = 0): Promise<QueryPage> {
    const all = await this.all(filter);
    all.reverse();
    return { events: all.slice(offset, offset + limit), total: all.length };
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
  const token = readAdminToken(loaded);
  const noFiles = `query_log.file is not set in ${loaded.file}, so the log is only in the server's memory`;
  const apiProblem = (): string | undefined =>
    !admin.enabled
      ? `admin.enabled is false in ${loaded.file}`
      : token === undefined
        ? `no admin token (admin.token, $${admin.token_env} or ${join(stateDir(loaded.config, loaded.baseDir), 'admin-token')})`
        : undefined;

  if (opts.source === 'files') {
    if (dir === undefined) throw new LogSourceError(noFiles);
    return new FileLogSource(dir);
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
