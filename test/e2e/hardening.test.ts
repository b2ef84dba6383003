// Abuse, malformed input, upstream failure and block bypass, over real sockets.
import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, TYPE, decodeResponse, encodeQuery, queryUdp, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';

let upstream: FakeUpstream;
let h: Harness;
let now = 1_800_000_000_000;

const config =
  referenceConfig()
    .replace('    cidrs: [127.0.0.2/32]\n    profile: open', '    cidrs: [127.0.0.2/32]\n    profile: open\n    rate_limit: { rate: 20, burst: 20, slip: 2 }')
    .replace('total_timeout_ms: 1000', 'total_timeout_ms: 600') +
  `hardening:\n  rebinding_protection: true\n  rebinding_allow: [corp.example]\ntcp:\n  idle_timeout_ms: 1500\n  max_connections_per_client: 3\n`;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  h = await startSluice({ config, lists: referenceLists, upstream: upstream.address, clock: () => now });
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});

describe('rate limiting', () => {
  // The token bucket itself is tested exactly, on an injected clock, in test/unit/rate-limiter.test.ts.
  // Here, on the real clock: a flood is limited at all, with bounds that hold however slow the machine.
  it('limits a flood from one client while another client is unaffected', async () => {
    const counters = h.server.resolver.counters;
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.2', () => r()));
    const replies: Buffer[] = [];
    sock.on('message', (m) => replies.push(m));
    const queriesBefore = counters.queries;
    const limitedBefore = counters.rateLimited;
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) sock.send(encodeQuery(`flood${i}.example`, 'A', { id: i }), h.udp.port, '127.0.0.1');
    // meanwhile an internal client asks normally
    const other = await Promise.all(Array.from({ length: 20 }, (_, i) => resolve(h.udp, `calm${i}.example`, 'A', { localAddress: '127.0.0.1' })));
    // Every query handled, and every reply the server sent for the flood arrived: all but the dropped
    // ones (every over-limit query that does not slip, i.e. half of them, rounded up).
    const limited = () => counters.rateLimited - limitedBefore;
    await until('the flood handled and answered', () => counters.queries - queriesBefore >= 220 && replies.length >= 200 - Math.ceil(limited() / 2), 10_000);
    const elapsedMs = performance.now() - t0;
    sock.close();
    expect(other.every((r) => r.rcode === RCODE.NOERROR && r.answers.length === 1)).toBe(true);
    const decoded = replies.map(decodeResponse);
    const full = decoded.filter((r) => !r.flags.tc);
    const truncated = decoded.filter((r) => r.flags.tc);
    expect(full.length).toBeGreaterThanOrEqual(20); // the burst
    // No more than the burst and what the bucket refilled at 20/s while the flood was handled.
    expect(full.length).toBeLessThanOrEqual(20 + Math.floor((20 * elapsedMs) / 1000));
    expect(full.length).toBeLessThan(200);
    // Each query of the flood was answered or limited, and every 2nd limited one slipped as TC.
    expect(full.length + limited()).toBe(200);
    expect(truncated.length).toBe(Math.floor(limited() / 2));
    expect(replies.length).toBe(200 - Math.ceil(limited() / 2)); // the rest were dropped
    // TCP is not rate limited: the client can always get through by retrying over TCP
    const viaTcp = await resolve(h.tcp, 'after-flood.example', 'A', { localAddress: '127.0.0.2', transport: 'tcp' });
    expect(viaTcp.answers).toHaveLength(1);
  });
});

describe('ANY (RFC 8482)', () => {
  it('answers ANY with one HINFO record and does not forward it', async () => {
    const r = await resolve(h.udp, 'any.example', 'ANY', { localAddress: '127.0.0.1' });
    expect(r.rcode).toBe(RCODE.NOERROR);
    expect(r.answers).toHaveLength(1);
    expect(r.answers[0]!.type).toBe(13);
    expect(upstream.queries.some((q) => q.name === 'any.example')).toBe(false);
    // a blocked name stays blocked for ANY too
    expect((await resolve(h.udp, 'tiktok.com', 'ANY', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
  });
});

describe('malformed input over the wire', () => {
  const raw = async (bytes: Buffer) => decodeResponse(await queryUdp(h.udp, bytes, { localAddress: '127.0.0.1' }));

  it.each([
    ['QDCOUNT 2', (q: Buffer) => q.writeUInt16BE(2, 4), RCODE.FORMERR],
    ['QDCOUNT 0', (q: Buffer) => q.writeUInt16BE(0, 4), RCODE.FORMERR],
    ['a label longer than 63', (q: Buffer) => (q[12] = 64), RCODE.FORMERR],
    ['a compression pointer in the question', (q: Buffer) => (q[12] = 0xc0), RCODE.FORMERR],
    [
      'a pointer past the end',
      (q: Buffer) => {
        q[12] = 0xc0;
        q[13] = 0xff;
      },
      RCODE.FORMERR,
    ],
    ['opcode UPDATE', (q: Buffer) => (q[2] = (q[2]! & 0x87) | (5 << 3)), RCODE.NOTIMP],
  ])('%s → %s', async (_n, mutate, rcode) => {
    const q = encodeQuery('abc.example', 'A', { id: 77 });
    mutate(q);
    const r = await raw(q);
    expect(r.id).toBe(77);
    expect(r.rcode).toBe(rcode);
  });

  it('a name over 255 bytes → FORMERR', async () => {
    const head = encodeQuery('x.example', 'A', { id: 78 }).subarray(0, 12);
    const labels = Buffer.concat([...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([60]), Buffer.alloc(60, 0x61)])), Buffer.from([0, 0, 1, 0, 1])]);
    expect((await raw(Buffer.concat([head, labels]))).rcode).toBe(RCODE.FORMERR);
  });

  it('EDNS version 1 → BADVERS, with an OPT record; unknown options are ignored', async () => {
    const bad = await resolve(h.udp, 'v1.example', 'A', { localAddress: '127.0.0.1', edns: { version: 1 } });
    expect(bad.rcode).toBe(RCODE.BADVERS);
    expect(bad.edns).toBeDefined();
    const unknown = await resolve(h.udp, 'opt.example', 'A', { localAddress: '127.0.0.1', edns: { options: [{ code: 65001, data: Buffer.from('hi') }] } });
    expect(unknown.rcode).toBe(RCODE.NOERROR);
  });

  it('never answers more than the client buffer over UDP: 512 without EDNS, else its size', async () => {
    const big = Array.from({ length: 8 }, (_, i) => ({ name: 'size.example', type: TYPE.TXT, ttl: 300, data: ['y'.repeat(150) + i] }));
    upstream.setHandler((q) => (q.name === 'size.example' ? { answers: big, tc: false } : undefined));
    try {
      const classic = await queryUdp(h.udp, encodeQuery('size.example', 'TXT'), { localAddress: '127.0.0.1' });
      expect(classic.length).toBeLessThanOrEqual(512);
      expect(decodeResponse(classic).flags.tc).toBe(true);
      const small = await queryUdp(h.udp, encodeQuery('size.example', 'TXT', { edns: { udpSize: 800 } }), { localAddress: '127.0.0.1' });
      expect(small.length).toBeLessThanOrEqual(800);
      expect(decodeResponse(small).flags.tc).toBe(true);
      const large = decodeResponse(await queryUdp(h.udp, encodeQuery('size.example', 'TXT', { edns: { udpSize: 4096 } }), { localAddress: '127.0.0.1' }));
      expect(large.answers).toHaveLength(8);
    } finally {
      upstream.setHandler(undefined);
    }
  });
});

/** A DNS query over an open TCP connection; its answer, decoded. */
function queryOn(sock: net.Socket, query: Buffer): Promise<ReturnType<typeof decodeResponse>> {
  return new Promise((res, rej) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      sock.off('data', onData);
      sock.off('close', onClose);
      res(decodeResponse(buf.subarray(2, 2 + buf.readUInt16BE(0))));
    };
    const onClose = () => rej(new Error('the connection closed before the answer'));
    sock.on('data', onData);
    sock.once('close', onClose);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(query.length);
    sock.write(Buffer.concat([len, query]));
  });
}

describe('TCP abuse', () => {
  it('a stalled client (half a length prefix, then silence) does not delay another', async () => {
    const stalled = net.connect(h.tcp.port, '127.0.0.1');
    await new Promise<void>((r) => stalled.once('connect', () => r()));
    let stalledOpen = true;
    const t0 = Date.now();
    const closedAfter = new Promise<number>((res) =>
      stalled.on('close', () => {
        stalledOpen = false;
        res(Date.now() - t0);
      }),
    );
    stalled.write(Buffer.from([0x00]));
    const r = await resolve(h.tcp, 'not-delayed.example', 'A', { transport: 'tcp', localAddress: '127.0.0.1' });
    expect(r.answers).toHaveLength(1);
    // Answered while the stalled connection was still held open: it did not have to go first.
    expect(stalledOpen).toBe(true);
    // The idle timeout (1.5 s) closes it, not sooner (timers never fire early).
    expect(await closedAfter).toBeGreaterThanOrEqual(1000);
  });

  it('caps connections per client', async () => {
    const socks = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<net.Socket>((res) => {
            const s = net.connect({ port: h.tcp.port, host: '127.0.0.1', localAddress: '127.0.0.9' });
            s.on('error', () => {});
            s.once('connect', () => res(s));
          }),
      ),
    );
    const closed = new Set<net.Socket>();
    for (const s of socks) s.once('close', () => closed.add(s));
    await until('the connection over the cap closed', () => closed.size >= 1);
    // The other three are served: each answers a query (so none of them is closed for the cap).
    const open = socks.filter((s) => !closed.has(s));
    expect(open).toHaveLength(3);
    const answers = await Promise.all(open.map((s, i) => queryOn(s, encodeQuery(`capped${i}.example`, 'A', { id: 100 + i }))));
    expect(answers.map((a) => a.id)).toEqual([100, 101, 102]);
    expect(answers.every((a) => a.answers.length === 1)).toBe(true);
    expect(closed.size).toBe(1); // the 4th of max 3
    socks.forEach((s) => s.destroy());
  });
});

describe('upstream failure', () => {
  it('serves stale answers when every upstream fails, then fresh answers when it returns', async () => {
    const fresh = await resolve(h.udp, 'stale.example', 'A', { localAddress: '127.0.0.1' });
    expect(fresh.answers[0]!.ttl).toBe(300);
    now += 400_000; // expired
    upstream.setMode('drop');
    try {
      const stale = await resolve(h.udp, 'stale.example', 'A', { localAddress: '127.0.0.1', edns: {}, timeoutMs: 3000 });
      expect(stale.rcode).toBe(RCODE.NOERROR);
      expect(stale.answers[0]).toMatchObject({ data: '192.0.2.1', ttl: 30 });
      expect(stale.edns?.ede?.infoCode).toBe(3);
      const never = await resolve(h.udp, 'never-seen.example', 'A', { localAddress: '127.0.0.1', timeoutMs: 3000 });
      expect(never.rcode).toBe(RCODE.SERVFAIL);
    } finally {
      upstream.setMode('answer');
    }
    upstream.setHandler((q) => (q.name === 'stale.example' ? { answers: [{ name: q.name, type: TYPE.A, ttl: 120, data: '192.0.2.55' }] } : undefined));
    try {
      // the failing upstream is in back-off, but it is the only one, so it is probed at once
      const back = await resolve(h.udp, 'stale.example', 'A', { localAddress: '127.0.0.1', timeoutMs: 3000 });
      expect(back.answers[0]).toMatchObject({ data: '192.0.2.55', ttl: 120 });
    } finally {
      upstream.setHandler(undefined);
    }
  });
});

describe('block bypass', () => {
  it('blocks an allowed name whose CNAME chain reaches a blocked domain', async () => {
    upstream.setHandler((q) =>
      q.name === 'cdn-alias.example'
        ? {
            answers: [
              { name: 'cdn-alias.example', type: TYPE.CNAME, ttl: 300, data: 'edge.innocent.example' },
              { name: 'edge.innocent.example', type: TYPE.CNAME, ttl: 300, data: 'v16.tiktokcdn.com' },
              { name: 'v16.tiktokcdn.com', type: TYPE.A, ttl: 300, data: '192.0.2.16' },
            ],
          }
        : undefined,
    );
    try {
      const internal = await resolve(h.udp, 'cdn-alias.example', 'A', { localAddress: '127.0.0.1', edns: {} });
      expect(internal.rcode).toBe(RCODE.NXDOMAIN);
      expect(internal.edns?.ede?.text).toContain('CNAME target of cdn-alias.example');
      // the same cached answer is fine for the guest network, which allows TikTok
      const guest = await resolve(h.udp, 'cdn-alias.example', 'A', { localAddress: '127.0.0.3' });
      expect(guest.answers.map((a) => a.data)).toContain('192.0.2.16');
    } finally {
      upstream.setHandler(undefined);
    }
  });

  it('rebinding protection removes private addresses for public names, not for allowed internal zones', async () => {
    upstream.setHandler((q) => (q.name.endsWith('rebind.example') || q.name.endsWith('corp.example') ? { answers: [{ name: q.name, type: TYPE.A, ttl: 60, data: '10.1.2.3' }] } : undefined));
    try {
      const pub = await resolve(h.udp, 'evil.rebind.example', 'A', { localAddress: '127.0.0.1', edns: {} });
      expect(pub.answers).toHaveLength(0);
      expect(pub.edns?.ede?.infoCode).toBe(17);
      const corp = await resolve(h.udp, 'dc1.corp.example', 'A', { localAddress: '127.0.0.1' });
      expect(corp.answers[0]!.data).toBe('10.1.2.3');
    } finally {
      upstream.setHandler(undefined);
    }
  });
});
