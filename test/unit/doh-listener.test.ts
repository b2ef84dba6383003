// The DoH listener (src/server/doh-listener.ts) with a stand-in pipeline: HTTP/2 through sluice's
// own connection (h2/connection.ts) to node:http2's client, HTTP/1.1 through node:http, answers and statuses the same
// on both, a POST body in several DATA frames, and a client that resets its stream before a slow
// answer is ready (nothing is sent, nothing is thrown, the query is still counted).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dohSchema } from '../../src/config/schema.js';
import type { ClientInfo, RequestContext } from '../../src/pipeline/context.js';
import { DohListener } from '../../src/server/doh-listener.js';
import type { TlsCertificate } from '../../src/server/tls-certificate.js';
import { encodeQuery } from '../helpers/dns-client.js';
import { until } from '../helpers/until.js';

let dir: string;
let cert: Buffer;
let listener: DohListener;
let port: number;
const seen: { msg: Buffer; client: ClientInfo }[] = [];
const done: RequestContext[] = [];
const errors: string[] = [];
/** Answers of queries for slow.test wait here until a test releases them. */
const slow: (() => void)[] = [];

/** The query with QR set and one A record (TTL 60): enough for a 200 with a Cache-Control. */
function answerOf(msg: Buffer): Buffer {
  const tail = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
  const r = Buffer.concat([msg, tail]);
  r[2]! |= 0x80;
  r.writeUInt16BE(1, 6);
  return r;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-doh-listener-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'key.pem',
      '-out',
      'cert.pem',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  cert = readFileSync(join(dir, 'cert.pem'));
  const certificate = { options: { cert, key: readFileSync(join(dir, 'key.pem')) }, attach: () => {} } as unknown as TlsCertificate;
  const settings = dohSchema.parse({ max_request_bytes: 512, client_ids: { kiosk: 'guest' } });
  const handler = {
    handle(msg: Buffer, client: ClientInfo): RequestContext | Promise<RequestContext> {
      seen.push({ msg, client });
      const ctx = { msg, client, response: answerOf(msg) } as unknown as RequestContext;
      if (!msg.includes(Buffer.from('\x04slow'))) return ctx;
      return new Promise((resolve) => slow.push(() => resolve(ctx)));
    },
  };
  const hooks = { done: (ctx: RequestContext) => done.push(ctx), error: (err: Error, where: string) => errors.push(`${where}: ${err.message}`) };
  listener = new DohListener(
    '127.0.0.1',
    0,
    undefined,
    () => handler,
    hooks,
    () => settings,
    certificate,
  );
  port = (await listener.start()).port;
});
afterAll(async () => {
  await listener?.stop(100);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  version?: string;
}

/** Requests on one HTTP/2 connection. */
async function withSession<T>(f: (s: http2.ClientHttp2Session) => Promise<T>): Promise<T> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: cert });
  session.on('error', () => {});
  try {
    return await f(session);
  } finally {
    session.close();
  }
}
function h2request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer[]): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers);
    const chunks: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (head = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    if (!body) {
      req.end();
      return;
    }
    // Each part in its own DATA frame, the last one a tick later.
    for (const part of body.slice(0, -1)) req.write(part);
    setImmediate(() => req.end(body.at(-1)));
  });
}
/** An HTTP/1.1 request: Node's https client offers no ALPN, so the server falls back to HTTP/1.1. */
function h1request(method: string, path: string, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, method, path, ca: cert, headers: body ? { 'content-type': 'application/dns-message' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), version: res.httpVersion }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const query = (name: string) => encodeQuery(name, 'A', { id: 0 });
const get = (name: string, path = '/dns-query') => ({ ':method': 'GET', ':path': `${path}?dns=${query(name).toString('base64url')}` });

describe('DohListener', () => {
  it('announces the configured stream limit and no server push to an HTTP/2 client', async () => {
    // Asked before the connection is up: the server's SETTINGS frame is still to come.
    const settings = await withSession((s) => new Promise<http2.Settings>((resolve) => s.once('remoteSettings', resolve)));
    expect(settings.maxConcurrentStreams).toBe(dohSchema.parse({}).max_concurrent_streams);
    expect(settings.enablePush).toBe(false);
  });

  it('answers many HTTP/2 requests on one connection, whatever the client keeps in its header table', async () => {
    // nghttp2 indexes repeated headers in the HPACK dynamic table: every answer needs the table in step.
    const names = Array.from({ length: 300 }, (_, i) => `n${i}.x${'x'.repeat(i % 50)}.test`);
    const answers = await withSession((s) => Promise.all(names.map((n, i) => h2request(s, { ...get(n), 'x-request': `r${i % 7}`, 'user-agent': 'sluice-test' }))));
    expect(answers.every((a, i) => a.status === 200 && a.body.equals(answerOf(query(names[i]!))))).toBe(true);
  });

  it('answers HTTP/2 GET and POST (a body in several DATA frames) with the DNS answer and its headers', async () => {
    const before = done.length;
    const [g, p, kiosk] = await withSession((s) =>
      Promise.all([
        h2request(s, get('get.test')),
        h2request(s, { ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message' }, [query('post.test').subarray(0, 5), query('post.test').subarray(5)]),
        h2request(s, get('kiosk.test', '/dns-query/kiosk')),
      ]),
    );
    for (const [r, name] of [
      [g, 'get.test'],
      [p, 'post.test'],
      [kiosk, 'kiosk.test'],
    ] as const) {
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('application/dns-message');
      expect(r.headers['content-length']).toBe(String(r.body.length));
      expect(r.headers['cache-control']).toBe('max-age=60');
      expect(r.body.equals(answerOf(query(name)))).toBe(true);
    }
    const clients = seen.slice(-3).map((s) => s.client);
    expect(clients.map((c) => [c.transport, c.address, c.pathNetwork])).toEqual(
      expect.arrayContaining([
        ['doh', '127.0.0.1', undefined],
        ['doh', '127.0.0.1', 'guest'],
      ]),
    );
    expect(clients.every((c) => c.port > 0 && c.listener === `127.0.0.1:${port}`)).toBe(true);
    expect(done.length - before).toBe(3);
  });

  it('gives HTTP/2 and HTTP/1.1 the same statuses for what is not a DoH query', async () => {
    const post = (contentType: string, body: Buffer) => ({ headers: { ':method': 'POST', ':path': '/dns-query', 'content-type': contentType }, body });
    const cases: [http2.OutgoingHttpHeaders, Buffer[] | undefined, number][] = [
      [{ ':method': 'GET', ':path': '/elsewhere' }, undefined, 404],
      [{ ':method': 'GET', ':path': '/dns-query?dns=***' }, undefined, 400],
      [{ ':method': 'PUT', ':path': '/dns-query' }, undefined, 405],
      [post('text/plain', query('x.test')).headers, [query('x.test')], 415],
      [post('application/dns-message', Buffer.alloc(600)).headers, [Buffer.alloc(300), Buffer.alloc(300)], 413],
      [post('application/dns-message', Buffer.alloc(5)).headers, [Buffer.alloc(5)], 400],
    ];
    const answers = await withSession((s) => Promise.all(cases.map(([h, b]) => h2request(s, h, b))));
    const expecting = await withSession((s) =>
      Promise.all([
        h2request(s, { ...get('expect.test'), expect: 'something' }),
        h2request(s, { ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message', expect: '100-continue' }, [query('continue.test')]),
      ]),
    );
    expect(expecting.map((a) => a.status)).toEqual([417, 200]);
    expect(answers.map((a) => a.status)).toEqual(cases.map((c) => c[2]));
    expect(answers[2]!.headers.allow).toBe('GET, POST');
    expect(answers.every((a) => a.body.length === 0 && a.headers['content-length'] === '0')).toBe(true);

    const h1 = [await h1request('GET', '/elsewhere'), await h1request('GET', '/dns-query?dns=***'), await h1request('PUT', '/dns-query'), await h1request('POST', '/dns-query', Buffer.alloc(600))];
    expect(h1.map((a) => [a.version, a.status])).toEqual([
      ['1.1', 404],
      ['1.1', 400],
      ['1.1', 405],
      ['1.1', 413],
    ]);
    expect(h1[2]!.headers.allow).toBe('GET, POST');
  });

  it('answers HTTP/1.1 GET and POST with the same headers', async () => {
    const g = await h1request('GET', `/dns-query?dns=${query('h1.test').toString('base64url')}`);
    const p = await h1request('POST', '/dns-query', query('h1post.test'));
    for (const [r, name] of [
      [g, 'h1.test'],
      [p, 'h1post.test'],
    ] as const) {
      expect([r.version, r.status]).toEqual(['1.1', 200]);
      expect(r.headers['content-type']).toBe('application/dns-message');
      expect(r.headers['content-length']).toBe(String(r.body.length));
      expect(r.headers['cache-control']).toBe('max-age=60');
      expect(r.body.equals(answerOf(query(name)))).toBe(true);
    }
    expect(seen.at(-1)!.client.transport).toBe('doh');
  });

  it('sends nothing to a stream the client reset before its answer was ready, and keeps serving', async () => {
    const before = done.length;
    await withSession(async (s) => {
      const req = s.request(get('slow.test'));
      req.on('error', () => {});
      const closed = new Promise((r) => req.on('close', r));
      await until('the slow query to reach the handler', () => slow.length === 1);
      req.close(http2.constants.NGHTTP2_CANCEL);
      await closed;
      // Frames are handled in order: once the PING is answered, the server has seen the reset.
      await new Promise((r, j) => s.ping((err) => (err ? j(err) : r(undefined))));
      slow.shift()!();
      await until('the slow answer to be counted', () => done.length === before + 1);
      expect((await h2request(s, get('after.test'))).status).toBe(200);
    });
    expect(errors).toEqual([]);
  });
});
