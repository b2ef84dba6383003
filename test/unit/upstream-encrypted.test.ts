// Forwarding over DNS over TLS and DNS over HTTPS (src/upstream/dot-connection.ts, doh-session.ts,
// tls-verify.ts, through the pool's Exchange): Node TLS and HTTP/2 servers on 127.0.0.1 with a test
// CA made by openssl. Pipelined queries answered out of order on one connection, stray replies
// (wrong ID, wrong question) ignored, the name, IP SAN, CA file and SPKI pins checked at the
// handshake with the next upstream used when they fail, idle close and a resumed reconnect, a
// connection dying mid-query failing over at once, DoH by POST and GET, and the plain fallback.
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EncryptedUpstream, UpstreamAddress } from '../../src/config/schema.js';
import { readQuery, type Query } from '../../src/dns/wire.js';
import { spkiPin } from '../../src/upstream/tls-verify.js';
import { UpstreamPool, formatServer, type UpstreamEvent, type UpstreamOptions } from '../../src/upstream/upstream-pool.js';
import { decodeResponse, encodeQuery } from '../helpers/dns-client.js';
import { encodeResponse, parseQuery, type FakeAnswer } from '../helpers/fake-upstream.js';
import { makeTestCa } from '../helpers/test-ca.js';
import { until } from '../helpers/until.js';

interface Pki {
  dir: string;
  caFile: string;
  /** Signed by the test CA, for dns.test and 127.0.0.1. */
  key: Buffer;
  cert: Buffer;
  /** Signed by the test CA, for other.test only (no IP). */
  otherKey: Buffer;
  otherCert: Buffer;
}

/** A test CA and two server certificates. */
function makePki(): Pki {
  const ca = makeTestCa('sluice-upstream-tls-');
  const dns = ca.issue('dns', 'DNS:dns.test,IP:127.0.0.1');
  const other = ca.issue('other', 'DNS:other.test');
  return { dir: ca.dir, caFile: ca.caFile, key: dns.key, cert: dns.cert, otherKey: other.key, otherCert: other.cert };
}

let pki: Pki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

function clientQuery(name: string): { msg: Buffer; query: Query } {
  const msg = encodeQuery(name, 'A', { id: 0x4242, edns: { udpSize: 1232 } });
  const r = readQuery(msg);
  if (!r.ok) throw new Error('the test query does not read');
  return { msg, query: r.query };
}

/** The address an A query for `name` is answered with by the fake servers: its first label's number. */
function addressFor(name: string): string {
  return `192.0.2.${Number(/\d+/.exec(name)?.[0] ?? 1) % 250}`;
}

function answerTo(raw: Buffer, extra: FakeAnswer = {}): Buffer {
  const q = parseQuery(raw).fields;
  return encodeResponse(raw, { answers: [{ name: q.name, type: 1, ttl: 60, data: addressFor(q.name) }], ...extra }, { transport: 'tcp' });
}

function frame(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

interface DotServer {
  port: number;
  connections: tls.TLSSocket[];
  /** Whether each connection resumed an earlier TLS session. */
  resumed: boolean[];
  queries: Buffer[];
  closedConnections: number;
  close(): Promise<void>;
}

/** A DoT server: each query (with its connection) goes to `onQuery`. */
async function dotServer(onQuery: (q: Buffer, socket: tls.TLSSocket, s: DotServer) => void, creds: { key: Buffer; cert: Buffer } = pki): Promise<DotServer> {
  const state: DotServer = { port: 0, connections: [], resumed: [], queries: [], closedConnections: 0, close: async () => {} };
  const server = tls.createServer({ key: creds.key, cert: creds.cert, ALPNProtocols: ['dot'] }, (socket) => {
    state.connections.push(socket);
    state.resumed.push(socket.isSessionReused());
    socket.on('close', () => state.closedConnections++);
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + q.length);
        state.queries.push(q);
        onQuery(q, socket, state);
      }
    });
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((r) => {
      for (const c of state.connections) c.destroy();
      server.close(() => r());
    });
  closers.push(state.close);
  return state;
}

const answering = (q: Buffer, socket: tls.TLSSocket) => socket.write(frame(answerTo(q)));

function encrypted(protocol: 'dot' | 'doh', port: number, e: Partial<EncryptedUpstream> = {}): UpstreamAddress {
  const url = protocol === 'dot' ? `tls://127.0.0.1:${port}` : `https://127.0.0.1:${port}/dns-query`;
  return {
    host: '127.0.0.1',
    port,
    encrypted: {
      protocol,
      url: e.tlsName ? `${url}#${e.tlsName}` : url,
      tlsName: 'dns.test',
      path: '/dns-query',
      authority: `dns.test:${port}`,
      pins: [],
      caFile: pki.caFile,
      fallbackPlain: false,
      method: 'post',
      ...e,
    },
  };
}

function openPool(opts: Partial<UpstreamOptions> = {}, events: UpstreamEvent[] = []): UpstreamPool {
  const p = new UpstreamPool({
    sockets: 2,
    socketMaxQueries: 100,
    timeoutMs: 2000,
    minTimeoutMs: 50,
    totalTimeoutMs: 4000,
    backoffMs: 5000,
    tlsConnections: 2,
    tlsIdleTimeoutMs: 30_000,
    onEvent: (e) => events.push(e),
    ...opts,
  });
  closers.push(() => p.close());
  return p;
}

async function ask(p: UpstreamPool, servers: UpstreamAddress[], name: string) {
  const { msg, query } = clientQuery(name);
  const r = await p.resolve(servers, msg, query);
  if (!r.ok) throw new Error(`no answer for ${name}: ${r.reason} ${r.server ?? ''}`);
  const answer = decodeResponse(r.reply);
  return { server: r.server, transport: r.transport, address: answer.answers[0]?.data, id: r.reply.readUInt16BE(0) };
}

describe('DNS over TLS', () => {
  it('pipelines queries on one connection and takes answers out of order; stray replies (wrong ID, wrong question) are ignored', async () => {
    const held: { q: Buffer; socket: tls.TLSSocket }[] = [];
    const spoofed = [{ name: 'q11.test', type: 1, ttl: 60, data: '198.51.100.66' }];
    const s = await dotServer((q, socket) => {
      held.push({ q, socket });
      if (held.length < 3) return;
      // First a reply with an ID no query has, and one with a query's ID but another question...
      const first = held[0]!;
      socket.write(frame(answerTo(first.q, { idOverride: first.q.readUInt16BE(0) ^ 0xffff, answers: spoofed })));
      first.socket.write(frame(answerTo(first.q, { questionOverride: { name: 'spoofed.test', type: 1 }, answers: spoofed })));
      // ...then the genuine answers, last query first, all in one write.
      first.socket.write(Buffer.concat(held.reverse().map((h) => frame(answerTo(h.q)))));
    });
    const p = openPool({ tlsConnections: 1 });
    const up = encrypted('dot', s.port);
    const answers = await Promise.all(['q11.test', 'q12.test', 'q13.test'].map((n) => ask(p, [up], n)));
    expect(answers.map((a) => a.address)).toEqual(['192.0.2.11', '192.0.2.12', '192.0.2.13']);
    expect(answers.every((a) => a.transport === 'dot' && a.server === `tls://127.0.0.1:${s.port}`)).toBe(true);
    expect(s.connections).toHaveLength(1);
    // Each query left with its own ID, not the client's.
    expect(new Set(s.queries.map((q) => q.readUInt16BE(0))).size).toBe(3);
    expect(s.queries.some((q) => q.readUInt16BE(0) === 0x4242)).toBe(false);
    expect(formatServer(up)).toBe(`tls://127.0.0.1:${s.port}`);
  });

  it('spreads load over up to tls_connections connections, opened when the open ones are busy', async () => {
    const held: { q: Buffer; socket: tls.TLSSocket }[] = [];
    const s = await dotServer((q, socket) => {
      held.push({ q, socket });
      if (held.length === 7) for (const h of held) h.socket.write(frame(answerTo(h.q)));
    });
    const p = openPool({ tlsConnections: 2 });
    const up = encrypted('dot', s.port);
    const first = ask(p, [up], 'q1.test');
    await until('the first connection', () => s.queries.length === 1);
    // With a query in flight on the only connection, the next ones open the second (up to the limit)...
    const more = Array.from({ length: 5 }, (_, i) => ask(p, [up], `q${i + 2}.test`));
    await until('the second connection', () => s.connections.length === 2 && held.length === 6);
    // ...and, once it is up, a query goes to the less busy one.
    const last = ask(p, [up], 'q7.test');
    const all = await Promise.all([first, ...more, last]);
    expect(all.map((a) => a.address)).toEqual(['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5', '192.0.2.6', '192.0.2.7']);
    expect(held[6]!.socket).toBe(s.connections[1]);
    expect(s.connections).toHaveLength(2);
  });

  it('refuses a certificate without the configured name, counts and reports it, and the next upstream answers', async () => {
    const events: UpstreamEvent[] = [];
    const bad = await dotServer(answering, { key: pki.otherKey, cert: pki.otherCert });
    const good = await dotServer(answering);
    const p = openPool({}, events);
    const wrong = encrypted('dot', bad.port);
    const a = await ask(p, [wrong, encrypted('dot', good.port)], 'q7.test');
    expect(a.address).toBe('192.0.2.7');
    expect(a.server).toBe(`tls://127.0.0.1:${good.port}`);
    expect(bad.queries).toHaveLength(0);
    expect(p.health.get(formatServer(wrong))?.connectFailures.get('tls-name')).toBe(1);
    expect(events).toEqual([expect.objectContaining({ kind: 'connect-failed', upstream: formatServer(wrong), reason: 'tls-name' })]);
  });

  it('checks the IP address in the certificate when the upstream has no tls_name', async () => {
    const withIp = await dotServer(answering);
    const withoutIp = await dotServer(answering, { key: pki.otherKey, cert: pki.otherCert });
    const p = openPool();
    const byIp = encrypted('dot', withIp.port, { tlsName: undefined });
    expect((await ask(p, [byIp], 'q8.test')).address).toBe('192.0.2.8');
    const noIp = encrypted('dot', withoutIp.port, { tlsName: undefined });
    const { msg, query } = clientQuery('q9.test');
    const r = await p.resolve([noIp], msg, query);
    expect(r.ok).toBe(false);
    expect(withoutIp.queries).toHaveLength(0);
    expect(p.health.get(formatServer(noIp))?.connectFailures.get('tls-name')).toBe(1);
  });

  it('needs the CA file for a private CA: without it the certificate is refused', async () => {
    const s = await dotServer(answering);
    const p = openPool();
    const systemCas = encrypted('dot', s.port, { caFile: undefined });
    const { msg, query } = clientQuery('q10.test');
    expect((await p.resolve([systemCas], msg, query)).ok).toBe(false);
    expect(p.health.get(formatServer(systemCas))?.connectFailures.get('certificate')).toBe(1);
    expect(s.queries).toHaveLength(0);
  });

  it('accepts a pinned SPKI anywhere in the chain and refuses a chain with none of the pins', async () => {
    const s = await dotServer(answering);
    const other = await dotServer(answering);
    const p = openPool();
    const leafPin = spkiPin(new X509Certificate(pki.cert).raw);
    const caPin = spkiPin(new X509Certificate(readFileSync(pki.caFile)).raw);
    // The digest is the one `openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64` prints.
    const fromOpenssl = execFileSync('sh', ['-c', `openssl x509 -in dns.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`], { cwd: pki.dir })
      .toString()
      .trim();
    expect(leafPin).toBe(fromOpenssl);
    expect((await ask(p, [encrypted('dot', s.port, { pins: [leafPin] })], 'q20.test')).address).toBe('192.0.2.20');
    expect((await ask(p, [encrypted('dot', other.port, { pins: ['A'.repeat(43) + '=', caPin] })], 'q21.test')).address).toBe('192.0.2.21');
    const events: UpstreamEvent[] = [];
    const p2 = openPool({}, events);
    const pinned = encrypted('dot', s.port, { pins: ['A'.repeat(43) + '='], url: 'tls://pinned' });
    const fallbackTo = encrypted('dot', other.port);
    const a = await ask(p2, [pinned, fallbackTo], 'q22.test');
    expect(a.server).toBe(`tls://127.0.0.1:${other.port}`);
    expect(p2.health.get('tls://pinned')?.connectFailures.get('pin')).toBe(1);
    expect(events[0]).toMatchObject({ kind: 'connect-failed', upstream: 'tls://pinned', reason: 'pin' });
  });

  it('closes an idle connection and reconnects on the next query, resuming the TLS session', async () => {
    const s = await dotServer(answering);
    const p = openPool({ tlsIdleTimeoutMs: 200, tlsConnections: 1 });
    const up = encrypted('dot', s.port);
    expect((await ask(p, [up], 'q30.test')).address).toBe('192.0.2.30');
    await until('the idle connection closed', () => s.closedConnections === 1, 3000);
    expect((await ask(p, [up], 'q31.test')).address).toBe('192.0.2.31');
    expect(s.connections).toHaveLength(2);
    expect(s.resumed).toEqual([false, true]);
    expect(p.health.get(formatServer(up))?.connectFailures.size).toBe(0);
  });

  it('a connection that dies with a query in flight fails over to the next upstream at once, not after the timeout', async () => {
    const dying = await dotServer((_q, socket) => socket.destroy());
    const good = await dotServer(answering);
    const p = openPool({ timeoutMs: 5000, totalTimeoutMs: 8000 });
    const first = encrypted('dot', dying.port);
    // The first upstream is given a long timeout: only the lost connection can move the query on early.
    p.healthOf(formatServer(first)).rto = 5000;
    const started = performance.now();
    const a = await ask(p, [first, encrypted('dot', good.port)], 'q40.test');
    expect(a.server).toBe(`tls://127.0.0.1:${good.port}`);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(dying.queries).toHaveLength(1);
    expect(p.health.get(formatServer(first))?.connectFailures.get('closed')).toBe(1);
  });

  it('asks the only upstream once more on a new connection when its connection closes under a query', async () => {
    // The server's idle timeout closing the connection just as a query goes out on it.
    const s = await dotServer((q, socket, state) => (state.connections.length === 1 ? socket.destroy() : socket.write(frame(answerTo(q)))));
    const p = openPool();
    const up = encrypted('dot', s.port);
    expect((await ask(p, [up], 'q45.test')).address).toBe('192.0.2.45');
    expect(s.connections).toHaveLength(2);
    expect(s.queries).toHaveLength(2);
  });

  it('backs off reconnecting to a refused upstream instead of trying it for every query', async () => {
    const gone = await dotServer(answering);
    const port = gone.port;
    await gone.close();
    const good = await dotServer(answering);
    const p = openPool();
    const dead = encrypted('dot', port);
    for (let i = 0; i < 10; i++) expect((await ask(p, [dead, encrypted('dot', good.port)], `q${50 + i}.test`)).address).toBe(`192.0.2.${50 + i}`);
    const refused = p.health.get(formatServer(dead))?.connectFailures.get('refused') ?? 0;
    expect(refused).toBeGreaterThanOrEqual(1);
    expect(refused).toBeLessThanOrEqual(3);
  });

  it('falls back to plain DNS on the same address only with fallback: plain, while the TLS connection cannot be made', async () => {
    const plain = dgram.createSocket('udp4');
    await new Promise<void>((r) => plain.bind(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => plain.close(() => r())));
    const plainQueries: Buffer[] = [];
    plain.on('message', (m, from) => {
      plainQueries.push(m);
      plain.send(encodeResponse(m, { answers: [{ name: parseQuery(m).fields.name, type: 1, ttl: 60, data: '192.0.2.99' }] }), from.port, from.address);
    });
    const plainPort = (plain.address() as AddressInfo).port;
    const gone = await dotServer(answering);
    const port = gone.port;
    await gone.close();
    const events: UpstreamEvent[] = [];
    const p = openPool({ plainFallbackPort: plainPort }, events);
    const { msg, query } = clientQuery('q60.test');
    // Without fallback configured: no answer, nothing in clear text.
    expect((await p.resolve([encrypted('dot', port, { url: 'tls://strict' })], msg, query)).ok).toBe(false);
    expect(plainQueries).toHaveLength(0);
    const lax = encrypted('dot', port, { fallbackPlain: true });
    const a = await ask(p, [lax], 'q61.test');
    expect(a.address).toBe('192.0.2.99');
    expect(a.transport).toBe('udp');
    expect(a.server).toBe(`127.0.0.1:${plainPort}`);
    expect(events.some((e) => e.kind === 'fallback' && e.upstream === formatServer(lax))).toBe(true);
  });
});

interface DohServer {
  port: number;
  requests: { method: string; path: string; authority: string; contentType: string | undefined; body: Buffer }[];
  sessions: number;
  /** Sessions open now. */
  open: number;
}

async function dohServer(reply: (q: Buffer) => Buffer = (q) => answerTo(q)): Promise<DohServer> {
  const state: DohServer = { port: 0, requests: [], sessions: 0, open: 0 };
  const server = http2.createSecureServer({ key: pki.key, cert: pki.cert, ALPNProtocols: ['h2'] });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    state.sessions++;
    state.open++;
    sessions.add(s);
    s.on('close', () => {
      state.open--;
      sessions.delete(s);
    });
  });
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => {
      const method = String(headers[':method']);
      const path = String(headers[':path']);
      const body = Buffer.concat(chunks);
      state.requests.push({ method, path, authority: String(headers[':authority']), contentType: headers['content-type'] as string | undefined, body });
      const q = method === 'GET' ? Buffer.from(new URL(path, 'https://x').searchParams.get('dns') ?? '', 'base64url') : body;
      stream.respond({ ':status': 200, 'content-type': 'application/dns-message' });
      stream.end(reply(q));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  );
  return state;
}

describe('DNS over HTTPS', () => {
  it('POSTs application/dns-message to the path with the configured :authority, many queries on one session', async () => {
    const s = await dohServer();
    const p = openPool();
    const up = encrypted('doh', s.port);
    const answers = await Promise.all(['q70.test', 'q71.test', 'q72.test'].map((n) => ask(p, [up], n)));
    expect(answers.map((a) => a.address)).toEqual(['192.0.2.70', '192.0.2.71', '192.0.2.72']);
    expect(answers.every((a) => a.transport === 'doh')).toBe(true);
    expect(s.sessions).toBe(1);
    expect(s.requests.map((r) => [r.method, r.path, r.authority, r.contentType])).toEqual(Array(3).fill(['POST', '/dns-query', `dns.test:${s.port}`, 'application/dns-message']));
    // A random ID, not 0 and not the client's.
    expect(s.requests.every((r) => r.body.readUInt16BE(0) !== 0x4242)).toBe(true);
  });

  it('GETs ?dns= base64url when method is get', async () => {
    const s = await dohServer();
    const p = openPool();
    expect((await ask(p, [encrypted('doh', s.port, { method: 'get' })], 'q73.test')).address).toBe('192.0.2.73');
    expect(s.requests[0]).toMatchObject({ method: 'GET' });
    expect(s.requests[0]!.path).toMatch(/^\/dns-query\?dns=[A-Za-z0-9_-]+$/);
  });

  it('does not take an answer with another ID or question, and moves on to the next upstream', async () => {
    const spoofing = await dohServer((q) => answerTo(q, { idOverride: q.readUInt16BE(0) ^ 1 }));
    const other = await dohServer((q) => answerTo(q, { questionOverride: { name: 'spoofed.test', type: 1 } }));
    const good = await dohServer();
    const p = openPool();
    const a = await ask(p, [encrypted('doh', spoofing.port), encrypted('doh', other.port), encrypted('doh', good.port)], 'q74.test');
    expect(a.server).toBe(`https://127.0.0.1:${good.port}/dns-query`);
    expect(spoofing.requests).toHaveLength(1);
    expect(other.requests).toHaveLength(1);
  });

  it('closes an idle session and opens a new one for the next query', async () => {
    const s = await dohServer();
    const p = openPool({ tlsIdleTimeoutMs: 200 });
    const up = encrypted('doh', s.port);
    expect((await ask(p, [up], 'q76.test')).address).toBe('192.0.2.76');
    await until('the idle session closed', () => s.open === 0, 3000);
    expect((await ask(p, [up], 'q77.test')).address).toBe('192.0.2.77');
    expect(s.sessions).toBe(2);
  });

  it('refuses a pin mismatch at the handshake, before any request', async () => {
    const s = await dohServer();
    const p = openPool();
    const up = encrypted('doh', s.port, { pins: ['B'.repeat(43) + '='] });
    const { msg, query } = clientQuery('q75.test');
    expect((await p.resolve([up], msg, query)).ok).toBe(false);
    expect(s.requests).toHaveLength(0);
    expect(p.health.get(formatServer(up))?.connectFailures.get('pin')).toBe(1);
  });
});
