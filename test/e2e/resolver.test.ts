// The serving path over real sockets: a sluice server on an ephemeral loopback port, a fake
// upstream on another, clients from different 127.x source addresses standing for networks.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RCODE, TYPE, resolve, encodeQuery, queryTcp, decodeResponse } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

const INTERNAL = '127.0.0.1';
const GUEST = '127.0.0.2';
const SCHOOL = '127.0.0.3';
const COMMS = '127.0.4.9';
const OUTSIDE = '127.9.9.9';

let upstream: FakeUpstream;
let h: Harness;
let now = 1_800_000_000_000;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  h = await startSluice({ config: referenceConfig(), lists: referenceLists, upstream: upstream.address, clock: () => now });
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});
beforeEach(() => {
  upstream.setMode('answer');
  upstream.setHandler(undefined);
});

describe('per-network decisions', () => {
  it('internal network blocks www.tiktok.com with NXDOMAIN, an SOA and an EDE naming the list', async () => {
    const r = await resolve(h.udp, 'www.tiktok.com', 'A', { localAddress: INTERNAL, edns: {} });
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
    expect(r.flags.qr && r.flags.ra).toBe(true);
    expect(r.answers).toHaveLength(0);
    expect(r.authorities[0]).toMatchObject({ name: 'tiktok.com', type: TYPE.SOA, ttl: 60 });
    expect(r.edns?.ede).toEqual({ infoCode: 15, text: expect.stringContaining('list tiktok') });
    expect(upstream.queries.some((q) => q.name.toLowerCase() === 'www.tiktok.com')).toBe(false);
  });

  it.each([
    ['guest', GUEST],
    ['school', SCHOOL],
    ['communications /24 inside the internal range', COMMS],
  ])('%s network forwards www.tiktok.com', async (_n, source) => {
    const name = `www-${source.replaceAll('.', '-')}.tiktok.com`;
    const r = await resolve(h.udp, name, 'A', { localAddress: source });
    expect(r.rcode).toBe(RCODE.NOERROR);
    expect(r.answers[0]).toMatchObject({ type: TYPE.A, data: '192.0.2.1' });
    expect(upstream.queries.some((q) => q.name.toLowerCase() === name)).toBe(true);
  });

  it('communications network still blocks the lists its profile names', async () => {
    const r = await resolve(h.udp, 'web.wechat.com', 'A', { localAddress: COMMS });
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
  });

  it('a client in no configured network is REFUSED, over UDP and TCP', async () => {
    for (const transport of ['udp', 'tcp'] as const) {
      const r = await resolve(transport === 'udp' ? h.udp : h.tcp, 'example.org', 'A', { localAddress: OUTSIDE, transport });
      expect(r.rcode).toBe(RCODE.REFUSED);
    }
  });

  it('a blocked answer does not leak into a network that allows the name through the cache', async () => {
    const blocked = await resolve(h.udp, 'cache.tiktok.com', 'A', { localAddress: INTERNAL });
    const allowed = await resolve(h.udp, 'cache.tiktok.com', 'A', { localAddress: GUEST });
    const blockedAgain = await resolve(h.udp, 'cache.tiktok.com', 'A', { localAddress: INTERNAL });
    expect([blocked.rcode, allowed.rcode, blockedAgain.rcode]).toEqual([RCODE.NXDOMAIN, RCODE.NOERROR, RCODE.NXDOMAIN]);
  });
});

describe('matching', () => {
  it.each([
    ['tiktok.com', true],
    ['TikTok.COM', true],
    ['a.b.c.tiktok.com', true],
    ['nottiktok.com', false],
    ['tiktok.com.example', false],
    ['newsroom.tiktok.com', false], // allow entry beats the block
    ['x.newsroom.tiktok.com', false],
    ['byteoversea.com', false], // *.byteoversea.com: subdomains only
    ['sg.byteoversea.com', true],
    ['weixin.qq.com', true], // hosts-file line
    ['login.wx.qq.com', true], // adblock line
    ['qq.com', false],
  ])('%s blocked on internal: %s', async (name, blocked) => {
    const r = await resolve(h.udp, name, 'A', { localAddress: INTERNAL });
    expect(r.rcode).toBe(blocked ? RCODE.NXDOMAIN : RCODE.NOERROR);
  });

  it.each(['A', 'AAAA', 'HTTPS', 'SVCB', 'TXT', 'MX', 'CNAME', 'NS', 'SRV'])('every query type of a blocked name is blocked: %s', async (type) => {
    const r = await resolve(h.udp, 'types.tiktok.com', type, { localAddress: INTERNAL });
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
  });

  it('the EDE is only sent to clients that use EDNS', async () => {
    const r = await resolve(h.udp, 'tiktok.com', 'A', { localAddress: INTERNAL });
    expect(r.edns).toBeUndefined();
    expect(r.additionals).toHaveLength(0);
  });
});

describe('cache', () => {
  it('answers a repeated query from the cache with the TTL counted down', async () => {
    const first = await resolve(h.udp, 'cached.example', 'A', { localAddress: GUEST });
    expect(first.answers[0]!.ttl).toBe(300);
    const before = upstream.queries.filter((q) => q.name === 'cached.example').length;
    now += 100_000;
    const second = await resolve(h.udp, 'CACHED.example', 'A', { localAddress: INTERNAL, id: 4242 });
    expect(second.id).toBe(4242);
    expect(second.questions[0]!.name).toBe('CACHED.example');
    expect(second.answers[0]).toMatchObject({ data: '192.0.2.1', ttl: 200 });
    expect(upstream.queries.filter((q) => q.name === 'cached.example').length).toBe(before);
    now += 201_000;
    const third = await resolve(h.udp, 'cached.example', 'A', { localAddress: GUEST });
    expect(third.answers[0]!.ttl).toBe(300);
    expect(upstream.queries.filter((q) => q.name === 'cached.example').length).toBe(before + 1);
  });

  it('caches NXDOMAIN and NODATA for the SOA minimum', async () => {
    for (const name of ['nxdomain-test.example', 'nodata-test.example']) {
      const a = await resolve(h.udp, name, 'A', { localAddress: GUEST });
      expect(a.rcode).toBe(name.startsWith('nx') ? RCODE.NXDOMAIN : RCODE.NOERROR);
      now += 30_000;
      const b = await resolve(h.udp, name, 'A', { localAddress: GUEST });
      expect(b.rcode).toBe(a.rcode);
      expect(b.authorities[0]!.ttl).toBe(30);
      expect(upstream.queries.filter((q) => q.name === name)).toHaveLength(1);
      now += 31_000; // past the SOA minimum of 60
      await resolve(h.udp, name, 'A', { localAddress: GUEST });
      expect(upstream.queries.filter((q) => q.name === name)).toHaveLength(2);
    }
  });

  it('keys the cache by the DO bit and passes DO upstream', async () => {
    await resolve(h.udp, 'dnssec.example', 'A', { localAddress: GUEST, edns: { do: true } });
    await resolve(h.udp, 'dnssec.example', 'A', { localAddress: GUEST, edns: { do: false } });
    const seen = upstream.queries.filter((q) => q.name === 'dnssec.example');
    expect(seen.map((q) => q.do)).toEqual([true, false]);
    expect(seen.every((q) => q.udpSize === 1232)).toBe(true);
  });
});

describe('forwarding', () => {
  it('uses a fresh random ID upstream and ignores a reply whose question does not match', async () => {
    upstream.setHandler((q) =>
      q.name === 'spoof.example' ? { questionOverride: { name: 'evil.example', type: TYPE.A }, answers: [{ name: 'evil.example', type: TYPE.A, ttl: 300, data: '203.0.113.66' }] } : undefined,
    );
    const r = await resolve(h.udp, 'spoof.example', 'A', { localAddress: GUEST, id: 7, timeoutMs: 3000 });
    expect(r.rcode).toBe(RCODE.SERVFAIL); // the only reply was not for our question
    expect(r.answers).toHaveLength(0);
    upstream.setHandler(undefined);
    const again = await resolve(h.udp, 'spoof.example', 'A', { localAddress: GUEST, id: 7 });
    expect(again.answers.map((a) => a.data)).toEqual(['192.0.2.1']); // nothing forged was cached
    // The first query was asked again while it waited (the same upstream is the only one), the
    // second once: every attempt with its own ID.
    const ids = upstream.queries.filter((x) => x.name === 'spoof.example').map((x) => x.id);
    expect(ids.length).toBeGreaterThanOrEqual(3);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('ignores a reply with the wrong ID', async () => {
    upstream.setHandler((q) => (q.name === 'wrongid.example' ? { idOverride: (q.id + 1) & 0xffff } : undefined));
    const r = await resolve(h.udp, 'wrongid.example', 'A', { localAddress: GUEST, timeoutMs: 3000 });
    expect(r.rcode).toBe(RCODE.SERVFAIL);
  });

  it('retries a truncated UDP answer over TCP upstream, and truncates for a classic client', async () => {
    const big = Array.from({ length: 12 }, (_, i) => ({ name: 'big.example', type: TYPE.TXT, ttl: 300, data: ['x'.repeat(100) + i] }));
    upstream.setHandler((q) => (q.name === 'big.example' ? { tc: q.transport === 'udp', answers: big } : undefined));
    const viaEdns = await resolve(h.udp, 'big.example', 'TXT', { localAddress: GUEST, edns: { udpSize: 4096 } });
    expect(viaEdns.flags.tc).toBe(false);
    expect(viaEdns.answers).toHaveLength(12);
    expect(upstream.queries.filter((q) => q.name === 'big.example').map((q) => q.transport)).toEqual(['udp', 'tcp']);
    // A client without EDNS accepts 512 bytes: it gets TC and asks again over TCP.
    const classic = await resolve(h.udp, 'big.example', 'TXT', { localAddress: GUEST });
    expect(classic.flags.tc).toBe(true);
    expect(classic.answers).toHaveLength(0);
    const overTcp = await resolve(h.tcp, 'big.example', 'TXT', { localAddress: GUEST, transport: 'tcp' });
    expect(overTcp.answers).toHaveLength(12);
  });

  it('fails over to the next upstream and answers SERVFAIL within the bound when all fail', async () => {
    const dead = await startFakeUpstream();
    dead.setMode('drop');
    const failing = await startSluice({
      config: referenceConfig().replace('default: ["@UPSTREAM@"]', `default: ["${dead.address}", "@UPSTREAM@"]`),
      lists: referenceLists,
      upstream: upstream.address,
    });
    try {
      const r = await resolve(failing.udp, 'failover.example', 'A', { localAddress: GUEST, timeoutMs: 3000 });
      expect(r.answers[0]!.data).toBe('192.0.2.1');
      expect(dead.queries.map((q) => q.name)).toContain('failover.example');

      upstream.setMode('drop');
      const t0 = Date.now();
      const fail = await resolve(failing.udp, 'allfail.example', 'A', { localAddress: GUEST, timeoutMs: 3000, edns: {} });
      const elapsed = Date.now() - t0;
      expect(fail.rcode).toBe(RCODE.SERVFAIL);
      expect(fail.edns?.ede?.infoCode).toBe(22);
      expect(elapsed).toBeLessThan(1000 + 400); // total_timeout_ms 1000 in the test config
    } finally {
      await failing.stop();
      await dead.close();
    }
  });

  it('moves on from an upstream that answers SERVFAIL', async () => {
    const broken = await startFakeUpstream();
    broken.setMode('servfail');
    const s = await startSluice({
      config: referenceConfig().replace('default: ["@UPSTREAM@"]', `default: ["${broken.address}", "@UPSTREAM@"]`),
      lists: referenceLists,
      upstream: upstream.address,
    });
    try {
      const r = await resolve(s.udp, 'servfail-then-ok.example', 'A', { localAddress: GUEST });
      expect(r.rcode).toBe(RCODE.NOERROR);
    } finally {
      await s.stop();
      await broken.close();
    }
  });

  it('forwards conditional zones to their own servers', async () => {
    const ad = await startFakeUpstream();
    ad.setHandler((q) => ({ answers: [{ name: q.name, type: TYPE.A, ttl: 60, data: '10.1.1.1' }] }));
    const s = await startSluice({
      config: referenceConfig(`  conditional:\n    - zone: corp.example.\n      servers: ["${ad.address}"]\n`),
      lists: referenceLists,
      upstream: upstream.address,
    });
    try {
      const r = await resolve(s.udp, 'dc1.CORP.example', 'A', { localAddress: INTERNAL });
      expect(r.answers[0]!.data).toBe('10.1.1.1');
      const other = await resolve(s.udp, 'www.example', 'A', { localAddress: INTERNAL });
      expect(other.answers[0]!.data).toBe('192.0.2.1');
      expect(ad.queries.map((q) => q.name)).toEqual(['dc1.CORP.example']);
    } finally {
      await s.stop();
      await ad.close();
    }
  });
});

describe('TCP', () => {
  it('answers several pipelined queries on one connection', async () => {
    const names = Array.from({ length: 10 }, (_, i) => (i % 3 === 0 ? `p${i}.tiktok.com` : `p${i}.pipelined.example`));
    const queries = names.map((n, i) => encodeQuery(n, 'A', { id: 1000 + i }));
    const replies = (await queryTcp(h.tcp, queries, { localAddress: INTERNAL })).map(decodeResponse);
    expect(replies).toHaveLength(10);
    for (const r of replies) {
      const i = r.id - 1000;
      expect(r.questions[0]!.name).toBe(names[i]);
      expect(r.rcode).toBe(i % 3 === 0 ? RCODE.NXDOMAIN : RCODE.NOERROR);
    }
  });
});
