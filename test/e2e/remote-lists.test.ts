// Remote lists against a real HTTP server on loopback: the last good copy survives every kind of
// bad download, and conditional requests keep refreshes cheap.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cachedCopyPath, fetchRemoteList, readCachedMeta, type RemoteListSource } from '../../src/lists/remote.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

let server: Server;
let baseUrl: string;
let handler: Handler;
let seen: IncomingHttpHeaders[];
let cacheDir: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req.headers);
    // No keep-alive: afterEach drops every connection, and a pooled socket closed under fetch would fail the next test.
    res.setHeader('connection', 'close');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  seen = [];
  cacheDir = mkdtempSync(join(tmpdir(), 'sluice-remote-'));
});
afterEach(() => {
  // A test that stalls a response leaves its socket open; drop it so the next test starts clean.
  server.closeAllConnections();
  rmSync(cacheDir, { recursive: true, force: true });
});

const source = (over: Partial<RemoteListSource> = {}): RemoteListSource => ({
  name: 'ads',
  url: `${baseUrl}/ads.txt`,
  cacheDir,
  timeoutMs: 2000,
  maxBytes: 64 * 1024,
  ...over,
});
const at = (iso: string) => () => new Date(iso);
const domains = (n: number, prefix = 'd') => Array.from({ length: n }, (_, i) => `${prefix}${i}.example`).join('\n') + '\n';

/** Serve `body` with validators, answering 304 when the client already holds this etag. */
function serveList(body: string, etag = '"v1"', lastModified = 'Wed, 01 Jan 2025 00:00:00 GMT'): void {
  handler = (req, res) => {
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { etag }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', etag, 'last-modified': lastModified }).end(body);
  };
}

async function seed(body: string): Promise<void> {
  serveList(body);
  const r = await fetchRemoteList(source(), { now: at('2025-01-01T00:00:00Z') });
  expect(r.status).toBe('updated');
  seen = [];
}

const cachedText = () => readFileSync(cachedCopyPath(cacheDir, 'ads'), 'utf8');

describe('remote lists', () => {
  it('first download writes the copy and its meta', async () => {
    const body = 'tiktok.com\n0.0.0.0 a.example b.example\n*.wild.example\n';
    serveList(body);
    const r = await fetchRemoteList(source(), { now: at('2025-01-01T00:00:00Z') });
    expect(r.status).toBe('updated');
    expect(r.file).toBe(join(cacheDir, 'ads.txt'));
    expect(r.added).toEqual(['*.wild.example', 'a.example', 'b.example', 'tiktok.com']);
    expect(r.removed).toEqual([]);
    expect(cachedText()).toBe(body);
    const meta = readCachedMeta(cacheDir, 'ads');
    expect(meta).toMatchObject({ url: source().url, etag: '"v1"', lastModified: 'Wed, 01 Jan 2025 00:00:00 GMT', entries: 4 });
    expect(meta?.fetchedAt).toBe('2025-01-01T00:00:00.000Z');
    expect(meta?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(r.meta).toEqual(meta);
    expect(readdirSync(cacheDir).sort()).toEqual(['ads.meta.json', 'ads.txt']);
  });

  it('refreshes with If-None-Match and If-Modified-Since, and a 304 leaves the copy alone', async () => {
    await seed('a.example\nb.example\n');
    const r = await fetchRemoteList(source(), { now: at('2025-01-02T00:00:00Z') });
    expect(seen[0]?.['if-none-match']).toBe('"v1"');
    expect(seen[0]?.['if-modified-since']).toBe('Wed, 01 Jan 2025 00:00:00 GMT');
    expect(r.status).toBe('not-modified');
    expect(cachedText()).toBe('a.example\nb.example\n');
    expect(readCachedMeta(cacheDir, 'ads')).toMatchObject({ fetchedAt: '2025-01-01T00:00:00.000Z', checkedAt: '2025-01-02T00:00:00.000Z' });
  });

  it('treats a 200 with identical content as not modified', async () => {
    await seed('a.example\n');
    handler = (_req, res) => res.end('a.example\n');
    const r = await fetchRemoteList(source(), { now: at('2025-01-02T00:00:00Z') });
    expect(r.status).toBe('not-modified');
    expect(readCachedMeta(cacheDir, 'ads')?.checkedAt).toBe('2025-01-02T00:00:00.000Z');
  });

  it('reports added and removed rules when the content changes', async () => {
    await seed('a.example\nb.example\n*.c.example\n');
    serveList('b.example\nc.example\nd.example\n', '"v2"');
    const r = await fetchRemoteList(source(), { now: at('2025-01-02T00:00:00Z') });
    expect(r.status).toBe('updated');
    expect(r.added).toEqual(['c.example', 'd.example']);
    expect(r.removed).toEqual(['*.c.example', 'a.example']);
    expect(r.message).toMatch(/\+2 -2/);
    expect(cachedText()).toBe('b.example\nc.example\nd.example\n');
    expect(readCachedMeta(cacheDir, 'ads')).toMatchObject({ etag: '"v2"', entries: 3, fetchedAt: '2025-01-02T00:00:00.000Z' });
  });

  it('fails on an unreachable server and keeps the cached copy readable', async () => {
    await seed('a.example\nb.example\n');
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const r = await fetchRemoteList(source({ url: `http://127.0.0.1:${port}/ads.txt` }));
    expect(r.status).toBe('failed');
    expect(r.message).toMatch(/ECONNREFUSED/);
    expect(r.meta?.entries).toBe(2);
    expect(readFileSync(r.file, 'utf8')).toBe('a.example\nb.example\n');
  });

  it('fails on an HTTP error status and keeps the cached copy', async () => {
    await seed('a.example\n');
    handler = (_req, res) => res.writeHead(503).end('down for maintenance');
    const r = await fetchRemoteList(source());
    expect(r.status).toBe('failed');
    expect(r.message).toMatch(/HTTP 503/);
    expect(cachedText()).toBe('a.example\n');
  });

  it('rejects an HTML error page as garbage, even when a stray line parses as a name', async () => {
    await seed('a.example\nb.example\n');
    // "Login" alone on a line is a valid single-label name, so this page yields one entry.
    const page = '<!doctype html>\n<html>\n<head><title>Portal</title></head>\n<body>\nLogin\n<form action="/x"></form>\n</body>\n</html>\n';
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    const r = await fetchRemoteList(source());
    expect(r.status).toBe('rejected');
    expect(r.message).toMatch(/garbage: 7 problem lines against 1 entry/);
    expect(r.problems.map((p) => p.line)).toEqual([1, 2, 3, 4, 6, 7, 8]);
    expect(cachedText()).toBe('a.example\nb.example\n');
  });

  it('rejects a copy that loses more than half of the entries, then accepts it with force', async () => {
    await seed(domains(10));
    serveList(domains(4), '"v2"');
    const r = await fetchRemoteList(source());
    expect(r.status).toBe('rejected');
    expect(r.message).toMatch(/4 entries against 10/);
    expect(r.added).toEqual([]); // diffs of a refused copy are only computed on dry runs
    expect(cachedText()).toBe(domains(10));

    const forced = await fetchRemoteList(source(), { force: true });
    expect(forced.status).toBe('updated');
    expect(forced.removed).toHaveLength(6);
    expect(cachedText()).toBe(domains(4));
  });

  it('accepts a copy that loses exactly half', async () => {
    await seed(domains(10));
    serveList(domains(5), '"v2"');
    expect((await fetchRemoteList(source())).status).toBe('updated');
  });

  it('rejects a streamed body over maxBytes without reading it all', async () => {
    await seed('a.example\n');
    let aborted = false;
    handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }); // chunked: no Content-Length to go by
      const chunk = domains(200);
      const timer = setInterval(() => res.write(chunk), 1);
      req.socket.on('close', () => {
        aborted = true;
        clearInterval(timer);
      });
    };
    const r = await fetchRemoteList(source({ maxBytes: 10_000 }));
    expect(r.status).toBe('rejected');
    expect(r.message).toMatch(/10000-byte limit/);
    expect(cachedText()).toBe('a.example\n');
    await expect.poll(() => aborted).toBe(true);
  });

  it('rejects a body whose Content-Length is over maxBytes', async () => {
    const body = domains(2000);
    handler = (_req, res) => res.writeHead(200, { 'content-length': Buffer.byteLength(body) }).end(body);
    const r = await fetchRemoteList(source({ maxBytes: 1000 }));
    expect(r.status).toBe('rejected');
    expect(existsSync(cachedCopyPath(cacheDir, 'ads'))).toBe(false);
  });

  it('rejects a truncated body that ends before its Content-Length', async () => {
    await seed('a.example\n');
    const part = domains(50);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-length': Buffer.byteLength(part) * 2 });
      res.write(part, () => res.socket?.end());
    };
    const r = await fetchRemoteList(source());
    expect(r.status).toBe('rejected');
    expect(r.message).toMatch(/broke off|truncated/);
    expect(cachedText()).toBe('a.example\n');
  });

  it('fails when the server does not answer within timeoutMs', async () => {
    await seed('a.example\n');
    handler = () => undefined; // never answers
    const r = await fetchRemoteList(source({ timeoutMs: 200 }));
    expect(r.status).toBe('failed');
    expect(r.message).toMatch(/timed out after 200 ms/);
    expect(cachedText()).toBe('a.example\n');
  });

  it('fails when the body stalls past timeoutMs', async () => {
    await seed('a.example\n');
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('b.example\n'); // and nothing more
    };
    const r = await fetchRemoteList(source({ timeoutMs: 200 }));
    expect(r.status).toBe('failed');
    expect(r.message).toMatch(/timed out/);
    expect(cachedText()).toBe('a.example\n');
  });

  it('writes nothing on a dry run, first download or update', async () => {
    const fresh = join(cacheDir, 'not-yet');
    serveList('a.example\nb.example\n');
    const first = await fetchRemoteList(source({ cacheDir: fresh }), { dryRun: true });
    expect(first.status).toBe('updated');
    expect(first.added).toEqual(['a.example', 'b.example']);
    expect(first.meta).toBeUndefined();
    expect(existsSync(fresh)).toBe(false);

    await seed('a.example\nb.example\n');
    const before = readFileSync(join(cacheDir, 'ads.meta.json'), 'utf8');
    serveList('b.example\nc.example\n', '"v2"');
    const r = await fetchRemoteList(source(), { dryRun: true, now: at('2025-02-01T00:00:00Z') });
    expect(r.status).toBe('updated');
    expect(r.message).toMatch(/would update/);
    expect(r.added).toEqual(['c.example']);
    expect(r.removed).toEqual(['a.example']);
    expect(cachedText()).toBe('a.example\nb.example\n');
    expect(readFileSync(join(cacheDir, 'ads.meta.json'), 'utf8')).toBe(before);
    expect(readdirSync(cacheDir).sort()).toEqual(['ads.meta.json', 'ads.txt']);
  });

  it('shows on a dry run what a rejected shrink would remove', async () => {
    await seed(domains(4));
    serveList(domains(1), '"v2"');
    const r = await fetchRemoteList(source(), { dryRun: true });
    expect(r.status).toBe('rejected');
    expect(r.removed).toEqual(['d1.example', 'd2.example', 'd3.example']);
  });

  it('reports parse problems with line numbers and keeps the good lines', async () => {
    serveList('# header\na.example\nnot a domain!\nb.example\n||x.example^$third-party\nc.example\r\n');
    const r = await fetchRemoteList(source());
    expect(r.status).toBe('updated');
    expect(r.problems.map((p) => [p.line, p.text])).toEqual([
      [3, 'not a domain!'],
      [5, '||x.example^$third-party'],
    ]);
    expect(r.problems.every((p) => p.message.length > 0)).toBe(true);
    expect(r.message).toMatch(/2 problem lines/);
    expect(readCachedMeta(cacheDir, 'ads')?.entries).toBe(3);
  });

  it('downloads in full when the cached copy no longer matches its meta', async () => {
    await seed('a.example\n');
    rmSync(cachedCopyPath(cacheDir, 'ads'));
    serveList('a.example\n');
    const r = await fetchRemoteList(source());
    expect(seen[0]?.['if-none-match']).toBeUndefined();
    expect(r.status).toBe('updated');
    expect(cachedText()).toBe('a.example\n');
  });
});
