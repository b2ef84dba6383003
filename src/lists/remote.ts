// Remote block lists: download over http(s) into a cache directory and keep the last good copy.
// A refresh may only replace that copy with something at least as trustworthy: a failed, truncated,
// oversized or garbage download, or one that silently loses most of the list, leaves it untouched,
// so a broken mirror or a captive portal can never quietly unblock everything.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWrite } from '../files/atomic-write.js';
import { parseList, type ListEntry, type ListProblem } from './formats.js';

export interface RemoteListSource {
  name: string;
  url: string;
  cacheDir: string;
  timeoutMs: number;
  maxBytes: number;
}

export interface RemoteListMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  /** When the current copy's content was downloaded (ISO). */
  fetchedAt: string;
  /** When the source was last asked, whatever the answer (ISO). */
  checkedAt: string;
  entries: number;
  sha256: string;
}

export type RemoteFetchStatus = 'updated' | 'not-modified' | 'rejected' | 'failed';

export interface RemoteFetchResult {
  status: RemoteFetchStatus;
  name: string;
  /** Path of the last good copy on disk (exists unless there never was a good download). */
  file: string;
  /** Present when a last good copy exists. */
  meta?: RemoteListMeta;
  /** Rules in the new copy and not in the old (for 'updated', and for dry runs). */
  added: string[];
  removed: string[];
  /** Parse problems of the downloaded text. */
  problems: ListProblem[];
  /** One human sentence: why rejected/failed, or what changed. */
  message: string;
}

export interface RemoteFetchOptions {
  /** Accept a copy that loses more than half of the entries. */
  force?: boolean;
  /** Compute the outcome without writing anything. */
  dryRun?: boolean;
  now?: () => Date;
  fetchImpl?: typeof fetch;
}

// Downloads that failed or were rejected in this process, by list (sluice_list_download_failures_total).
// Dry runs are not counted: they are `sluice lists update --dry-run`, not the server's refresh.
const downloadFailures = new Map<string, number>();

/** Failed or rejected downloads of each list since the process started. */
export function remoteListFailures(): ReadonlyMap<string, number> {
  return downloadFailures;
}

export function cachedCopyPath(cacheDir: string, name: string): string {
  return join(cacheDir, `${name}.txt`);
}

function metaPath(cacheDir: string, name: string): string {
  return join(cacheDir, `${name}.meta.json`);
}

/** The stored meta, or undefined when it is missing or unreadable (the copy is then refetched in full). */
export function readCachedMeta(cacheDir: string, name: string): RemoteListMeta | undefined {
  try {
    const m = JSON.parse(readFileSync(metaPath(cacheDir, name), 'utf8')) as Partial<RemoteListMeta> | null;
    if (!m || typeof m.url !== 'string' || typeof m.sha256 !== 'string' || typeof m.fetchedAt !== 'string') return undefined;
    if (typeof m.checkedAt !== 'string' || typeof m.entries !== 'number') return undefined;
    return m as RemoteListMeta;
  } catch {
    return undefined;
  }
}

export async function fetchRemoteList(src: RemoteListSource, opts: RemoteFetchOptions = {}): Promise<RemoteFetchResult> {
  const now = opts.now ?? (() => new Date());
  const doFetch = opts.fetchImpl ?? fetch;
  const file = cachedCopyPath(src.cacheDir, src.name);
  const current = await readCurrentCopy(src);
  const checkedAt = now().toISOString();
  const result = (status: RemoteFetchStatus, message: string, extra: Partial<RemoteFetchResult> = {}): RemoteFetchResult => {
    if ((status === 'failed' || status === 'rejected') && !opts.dryRun) downloadFailures.set(src.name, (downloadFailures.get(src.name) ?? 0) + 1);
    return {
      status,
      name: src.name,
      file,
      meta: current?.meta,
      added: [],
      removed: [],
      problems: [],
      message: `${src.name}: ${message}`,
      ...extra,
    };
  };
  const keeping = current ? 'keeping the cached copy' : 'no cached copy to fall back on';

  if (!/^https?:\/\//i.test(src.url)) return result('failed', `${src.url} is not an http(s) URL`);

  const signal = AbortSignal.timeout(src.timeoutMs);
  let res: Response;
  try {
    res = await doFetch(src.url, { headers: conditionalHeaders(current?.validMeta), signal });
  } catch (err) {
    return result('failed', `download failed (${describeError(err, src.timeoutMs)}), ${keeping}`);
  }

  if (res.status === 304 && current?.validMeta) {
    const meta = { ...current.validMeta, checkedAt };
    if (!opts.dryRun) await atomicWrite(metaPath(src.cacheDir, src.name), metaJson(meta));
    return result('not-modified', `not modified since ${meta.fetchedAt}`, { meta: opts.dryRun ? current.meta : meta });
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    return result('failed', `HTTP ${res.status} ${res.statusText}`.trimEnd() + `, ${keeping}`);
  }

  const body = await readBody(res, src, signal);
  if ('reason' in body) return result(body.status, `${body.reason}, ${keeping}`);

  const sha256 = createHash('sha256').update(body.bytes).digest('hex');
  const validators = { etag: res.headers.get('etag') ?? undefined, lastModified: res.headers.get('last-modified') ?? undefined };
  if (current?.validMeta && current.sha256 === sha256) {
    const meta = { ...current.validMeta, ...validators, checkedAt };
    if (!opts.dryRun) await atomicWrite(metaPath(src.cacheDir, src.name), metaJson(meta));
    return result('not-modified', 'content unchanged', { meta: opts.dryRun ? current.meta : meta });
  }

  const parsed = parseList(new TextDecoder().decode(body.bytes), 'auto');
  const { problems } = parsed;
  const problemNote = problems.length > 0 ? ` (${count(problems.length, 'problem line')})` : '';
  if (parsed.entries.length === 0) return result('rejected', `download has no entries${problemNote}, ${keeping}`, { problems });
  if (problems.length > parsed.entries.length) {
    return result('rejected', `download looks like garbage: ${count(problems.length, 'problem line')} against ${count(parsed.entries.length, 'entry')}, ${keeping}`, { problems });
  }

  const old = current ? parseList(current.text, 'auto') : undefined;
  const { added, removed } = diffRules(old?.entries ?? [], parsed.entries);
  const diff = opts.dryRun ? { added, removed } : {};
  const oldCount = old?.entries.length ?? 0;
  if (parsed.entries.length < oldCount / 2 && !opts.force) {
    return result('rejected', `new copy has ${count(parsed.entries.length, 'entry')} against ${oldCount} now, more than half would be lost; refresh with force to accept it`, { problems, ...diff });
  }

  const meta: RemoteListMeta = { url: src.url, ...validators, fetchedAt: checkedAt, checkedAt, entries: parsed.entries.length, sha256 };
  if (!opts.dryRun) {
    await mkdir(src.cacheDir, { recursive: true });
    // Copy before meta: a crash in between leaves meta whose sha256 no longer matches, which
    // readCurrentCopy treats as "no validators", so the next refresh downloads in full.
    await atomicWrite(file, body.bytes);
    await atomicWrite(metaPath(src.cacheDir, src.name), metaJson(meta));
  }
  const what = `${opts.dryRun ? 'would update' : 'updated'} to ${count(parsed.entries.length, 'entry')} (+${added.length} -${removed.length})`;
  return result('updated', what + problemNote, { meta: opts.dryRun ? current?.meta : meta, added, removed, problems });
}

interface CurrentCopy {
  text: string;
  sha256: string;
  meta?: RemoteListMeta;
  /** The meta only when it describes the bytes on disk, so that its validators may be sent. */
  validMeta?: RemoteListMeta;
}

async function readCurrentCopy(src: RemoteListSource): Promise<CurrentCopy | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(cachedCopyPath(src.cacheDir, src.name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const meta = readCachedMeta(src.cacheDir, src.name);
  // A changed URL means the old validators belong to another resource.
  const validMeta = meta && meta.sha256 === sha256 && meta.url === src.url ? meta : undefined;
  return { text: new TextDecoder().decode(bytes), sha256, meta, validMeta };
}

function conditionalHeaders(meta: RemoteListMeta | undefined): Record<string, string> {
  const h: Record<string, string> = {};
  if (meta?.etag) h['if-none-match'] = meta.etag;
  if (meta?.lastModified) h['if-modified-since'] = meta.lastModified;
  return h;
}

type Body = { bytes: Buffer } | { status: 'rejected' | 'failed'; reason: string };

async function readBody(res: Response, src: RemoteListSource, signal: AbortSignal): Promise<Body> {
  // With a content-encoding, Content-Length counts compressed bytes while we see decoded ones.
  const encoded = (res.headers.get('content-encoding') ?? 'identity').toLowerCase() !== 'identity';
  const declaredHeader = res.headers.get('content-length');
  const declared = declaredHeader !== null && !encoded ? Number(declaredHeader) : undefined;
  const tooLarge = { status: 'rejected', reason: `download is larger than the ${src.maxBytes}-byte limit` } as const;
  if (declared !== undefined && declared > src.maxBytes) {
    await res.body?.cancel().catch(() => undefined);
    return tooLarge;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body) {
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.byteLength;
        // Counting decoded bytes also caps a small compressed body that inflates without bound.
        if (size > src.maxBytes) {
          await reader.cancel().catch(() => undefined);
          return tooLarge;
        }
        chunks.push(value);
      }
    } catch (err) {
      if (signal.aborted) return { status: 'failed', reason: `download timed out after ${src.timeoutMs} ms` };
      return { status: 'rejected', reason: `download broke off after ${size} bytes (${describeError(err, src.timeoutMs)})` };
    }
  }
  if (declared !== undefined && size < declared) {
    return { status: 'rejected', reason: `download truncated: ${size} of ${declared} bytes` };
  }
  return { bytes: Buffer.concat(chunks) };
}

function diffRules(before: ListEntry[], after: ListEntry[]): { added: string[]; removed: string[] } {
  const rule = (e: ListEntry) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain);
  const was = new Set(before.map(rule));
  const is = new Set(after.map(rule));
  return {
    added: [...is].filter((r) => !was.has(r)).sort(),
    removed: [...was].filter((r) => !is.has(r)).sort(),
  };
}

function describeError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) return `timed out after ${timeoutMs} ms`;
  if (!(err instanceof Error)) return String(err);
  // undici reports "fetch failed" and puts the useful part (ECONNREFUSED, ENOTFOUND …) in cause.
  const cause = err.cause instanceof Error ? err.cause : undefined;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return cause ? `${err.message}: ${code ?? cause.message}` : err.message;
}

function count(n: number, noun: string): string {
  return `${n} ${n === 1 ? noun : noun.replace(/y$/, 'ie') + 's'}`;
}

function metaJson(meta: RemoteListMeta): string {
  return JSON.stringify(meta, null, 2) + '\n';
}
