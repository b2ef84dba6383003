// The forwarder as a careful operator tries it (issue 16): the CD bit in the cache key, serve-stale
// only for outages, answers fitted to the client's buffer, AA/AD, retries within the deadline, late
// answers, back-off once per period with one probe at a time, prefetch, and the queries Unbound
// rejects. Real sockets on loopback; the upstream is the fake in test/helpers.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EDNS_OPTION_EDE, RCODE, TYPE, decodeResponse, encodeQuery, queryUdp, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeAnswer, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';

const CLIENT = '127.0.0.2'; // the guest network: nothing blocked
let upstream: FakeUpstream;
let h: Harness;
let now = 1_800_000_000_000;

const ede = (code: number, text = ''): { code: number; data: Buffer } => {
  const data = Buffer.alloc(2 + text.length);
  data.writeUInt16BE(code, 0);
  data.write(text, 2, 'latin1');
  return { code: EDNS_OPTION_EDE, data };
};

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

describe('DNSSEC behind a validating upstream', () => {
  // The fake plays a validating resolver for a tampered zone: bogus data with CD, SERVFAIL + EDE 6 without.
  const validating =
    (name: string) =>
    (q: { name: string; cd: boolean }): FakeAnswer | undefined =>
      q.name !== name ? undefined : q.cd ? { answers: [{ name, type: TYPE.A, ttl: 300, data: '198.51.100.66' }] } : { rcode: RCODE.SERVFAIL, ednsOptions: [ede(6, 'signature mismatch')] };

  it('an answer fetched with CD=1 is never served to a CD=0 client', async () => {
    upstream.setHandler(validating('www.bogus.example'));
    const unchecked = await resolve(h.udp, 'www.bogus.example', 'A', { localAddress: CLIENT, cd: true, edns: { do: true } });
    expect(unchecked.answers.map((a) => a.data)).toEqual(['198.51.100.66']);
    expect(unchecked.flags.cd).toBe(true);
    for (const edns of [undefined, { do: true }, {}]) {
      const checked = await resolve(h.udp, 'www.bogus.example', 'A', { localAddress: CLIENT, ...(edns ? { edns } : {}) });
      expect(checked.rcode).toBe(RCODE.SERVFAIL);
      expect(checked.answers).toHaveLength(0);
    }
    // The CD=1 client still gets its cached answer.
    const before = upstream.queries.length;
    const again = await resolve(h.udp, 'www.bogus.example', 'A', { localAddress: CLIENT, cd: true, edns: { do: true } });
    expect(again.answers.map((a) => a.data)).toEqual(['198.51.100.66']);
    expect(upstream.queries.length).toBe(before);
  });

  it('passes the upstream validation failure on (EDE 6) and never serves it stale', async () => {
    // Good data first; then the zone goes bogus and the cache entry expires.
    upstream.setHandler((q) => (q.name === 'later.bogus.example' ? { answers: [{ name: q.name, type: TYPE.A, ttl: 60, data: '192.0.2.60' }] } : undefined));
    expect((await resolve(h.udp, 'later.bogus.example', 'A', { localAddress: CLIENT })).answers).toHaveLength(1);
    upstream.setHandler(validating('later.bogus.example'));
    now += 120_000;
    const r = await resolve(h.udp, 'later.bogus.example', 'A', { localAddress: CLIENT, edns: {} });
    expect(r.rcode).toBe(RCODE.SERVFAIL);
    expect(r.answers).toHaveLength(0);
    expect(r.edns?.ede?.infoCode).toBe(6);
  });

  it('serves stale when the upstream is unreachable, every record at the stale TTL (RFC 8767)', async () => {
    upstream.setHandler((q) =>
      q.name === 'short.example'
        ? {
            answers: [
              { name: q.name, type: TYPE.A, ttl: 5, data: '192.0.2.5' },
              { name: q.name, type: TYPE.A, ttl: 300, data: '192.0.2.6' },
            ],
          }
        : undefined,
    );
    expect((await resolve(h.udp, 'short.example', 'A', { localAddress: CLIENT })).answers).toHaveLength(2);
    now += 60_000;
    upstream.setMode('drop');
    const stale = await resolve(h.udp, 'short.example', 'A', { localAddress: CLIENT, edns: {}, timeoutMs: 3000 });
    expect(stale.edns?.ede?.infoCode).toBe(3);
    expect(stale.answers.map((a) => a.ttl)).toEqual([30, 30]);
  });

  it('asks upstream with AD=1 and passes AD on only to clients that asked (AD or DO)', async () => {
    upstream.setHandler((q) => (q.name === 'signed.example' ? { ad: q.ad || q.do, answers: [{ name: q.name, type: TYPE.A, ttl: 300, data: '192.0.2.7' }] } : undefined));
    const plain = await resolve(h.udp, 'signed.example', 'A', { localAddress: CLIENT });
    expect(upstream.queries.at(-1)!.ad).toBe(true);
    expect(plain.flags.ad).toBe(false);
    const withAd = await resolve(h.udp, 'signed.example', 'A', { localAddress: CLIENT, ad: true });
    expect(withAd.flags.ad).toBe(true);
    const withDo = await resolve(h.udp, 'signed.example', 'A', { localAddress: CLIENT, edns: { do: true } });
    expect(withDo.flags.ad).toBe(true);
  });
});

describe('flags and truncation', () => {
  it('clears AA from an authoritative upstream, fresh and cached, and sets RA', async () => {
    upstream.setHandler((q) => (q.name === 'dc.corp.example' ? { aa: true, answers: [{ name: q.name, type: TYPE.A, ttl: 300, data: '10.9.9.9' }] } : undefined));
    for (let i = 0; i < 2; i++) {
      const r = await resolve(h.udp, 'dc.corp.example', 'AAAA', { localAddress: CLIENT });
      expect(r.flags.aa).toBe(false);
      expect(r.flags.ra).toBe(true);
    }
  });

  it('fits a large reply to a classic client by dropping authority and additional records, without TC', async () => {
    const ns = Array.from({ length: 13 }, (_, i) => ({ name: 'fit.example', type: TYPE.NS, ttl: 300, data: `ns${i}.nameservers-of-a-long-zone.example` }));
    const glue = ns.map((n, i) => ({ name: n.data, type: TYPE.A, ttl: 300, data: `192.0.2.${100 + i}` }));
    upstream.setHandler((q) => (q.name === 'www.fit.example' ? { tc: false, answers: [{ name: q.name, type: TYPE.A, ttl: 300, data: '192.0.2.80' }], authorities: ns, additionals: glue } : undefined));
    const raw = await queryUdp(h.udp, encodeQuery('www.fit.example', 'A'), { localAddress: CLIENT });
    const r = decodeResponse(raw);
    expect(raw.length).toBeLessThanOrEqual(512);
    expect(r.flags.tc).toBe(false);
    expect(r.answers.map((a) => a.data)).toEqual(['192.0.2.80']);
    expect(r.authorities).toHaveLength(0);
    expect(r.additionals).toHaveLength(0);
    // With a large enough buffer the whole message goes out.
    const full = await resolve(h.udp, 'www.fit.example', 'A', { localAddress: CLIENT, edns: { udpSize: 4096 } });
    expect(full.authorities).toHaveLength(13);
  });

  it('keeps the SOA of a negative answer; an answer section that cannot fit gets TC', async () => {
    const soa = { mname: 'ns.neg.example', rname: 'hostmaster.neg.example', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 };
    const extra = Array.from({ length: 6 }, (_, i) => ({ name: `n${i}.neg.example`, type: TYPE.TXT, ttl: 60, data: ['p'.repeat(80)] }));
    const many = Array.from({ length: 40 }, (_, i) => ({ name: 'many.neg.example', type: TYPE.A, ttl: 60, data: `192.0.2.${i + 1}` }));
    upstream.setHandler((q) => {
      if (q.name === 'gone.neg.example') return { tc: false, rcode: RCODE.NXDOMAIN, authorities: [{ name: 'neg.example', type: TYPE.SOA, ttl: 60, data: soa }, ...extra] };
      if (q.name === 'many.neg.example') return { tc: false, answers: many };
      return undefined;
    });
    const r = await resolve(h.udp, 'gone.neg.example', 'A', { localAddress: CLIENT });
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
    expect(r.flags.tc).toBe(false);
    expect(r.authorities[0]).toMatchObject({ type: TYPE.SOA, name: 'neg.example' });
    expect(r.authorities.length).toBeLessThan(7);
    const tc = await resolve(h.udp, 'many.neg.example', 'A', { localAddress: CLIENT });
    expect(tc.flags.tc).toBe(true);
    expect(tc.answers).toHaveLength(0);
    const tcp = await resolve(h.tcp, 'many.neg.example', 'A', { localAddress: CLIENT, transport: 'tcp' });
    expect(tcp.answers).toHaveLength(40);
  });

  it('a truncated NXDOMAIN says NXDOMAIN', async () => {
    const soa = { mname: 'ns.neg.example', rname: 'hostmaster.neg.example', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 };
    // A DNSSEC client (DO) needs the whole authority section (its proofs): when it cannot fit, TC.
    const proofs = Array.from({ length: 6 }, (_, i) => ({ name: `p${i}.neg.example`, type: TYPE.TXT, ttl: 60, data: ['q'.repeat(200)] }));
    upstream.setHandler((q) =>
      q.name === 'proof.neg.example' ? { tc: false, rcode: RCODE.NXDOMAIN, authorities: [{ name: 'neg.example', type: TYPE.SOA, ttl: 60, data: soa }, ...proofs] } : undefined,
    );
    const r = await resolve(h.udp, 'proof.neg.example', 'A', { localAddress: CLIENT, edns: { do: true, udpSize: 512 } });
    expect(r.flags.tc).toBe(true);
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
    expect(r.edns).toBeDefined();
  });
});

describe('timeouts, retries and back-off', () => {
  let slow: Harness;
  let lone: FakeUpstream;
  beforeAll(async () => {
    lone = await startFakeUpstream();
    slow = await startSluice({
      config: referenceConfig().replace('timeout_ms: 300\n  total_timeout_ms: 1000', 'timeout_ms: 1000\n  total_timeout_ms: 3000'),
      lists: referenceLists,
      upstream: lone.address,
    });
  });
  afterAll(async () => {
    await slow?.stop();
    await lone?.close();
  });

  it('a single upstream that answers after 2 s: the answer arrives within total_timeout_ms and is cached', async () => {
    lone.setHandler((q) => (q.name === 'slow.example' ? { delayMs: 2000, answers: [{ name: q.name, type: TYPE.A, ttl: 300, data: '192.0.2.1' }] } : undefined));
    const t0 = Date.now();
    const r = await resolve(slow.udp, 'slow.example', 'A', { localAddress: CLIENT, timeoutMs: 5000 });
    const took = Date.now() - t0;
    expect(r.rcode).toBe(RCODE.NOERROR);
    expect(r.answers.map((a) => a.data)).toEqual(['192.0.2.1']);
    expect(took).toBeLessThan(3000);
    const asked = lone.queries.filter((q) => q.name === 'slow.example');
    expect(asked.length).toBeGreaterThanOrEqual(2); // asked again while waiting, each time with a fresh ID
    expect(new Set(asked.map((q) => q.id)).size).toBe(asked.length);
    expect(new Set(asked.map((q) => q.fromPort)).size).toBeGreaterThan(1);
    const cached = await resolve(slow.udp, 'slow.example', 'A', { localAddress: CLIENT });
    expect(cached.answers).toHaveLength(1);
    expect(lone.queries.filter((q) => q.name === 'slow.example')).toHaveLength(asked.length);
  });

  it('learns the upstream round-trip time', () => {
    const health = slow.server.resolver.upstreamHealth.get(lone.address)!;
    expect(health.srtt).toBeGreaterThan(0);
    expect(health.rto).toBeGreaterThanOrEqual(200);
    expect(health.rto).toBeLessThanOrEqual(1000);
  });
});

describe('back-off', () => {
  let dead: FakeUpstream;
  let good: FakeUpstream;
  let b: Harness;
  beforeAll(async () => {
    dead = await startFakeUpstream();
    good = await startFakeUpstream();
    dead.setMode('drop');
    b = await startSluice({
      config: referenceConfig('hardening:\n  upstream_backoff_ms: 400\n').replace('default: ["@UPSTREAM@"]', `default: ["${dead.address}", "${good.address}"]`),
      lists: referenceLists,
    });
  });
  afterAll(async () => {
    await b?.stop();
    await dead?.close();
    await good?.close();
  });

  it('backs off after two failed queries, for the base period, doubling once per failed probe; one probe at a time', async () => {
    for (let i = 0; i < 2; i++) expect((await resolve(b.udp, `fail${i}.example`, 'A', { localAddress: CLIENT })).answers).toHaveLength(1);
    const health = b.server.resolver.upstreamHealth.get(dead.address)!;
    expect(health.downUntil).toBeGreaterThan(Date.now());
    expect(health.downUntil - Date.now()).toBeLessThanOrEqual(400);
    // Queries during the back-off do not touch the dead upstream, nor lengthen its back-off.
    const asked = dead.queries.length;
    await Promise.all(Array.from({ length: 20 }, (_, i) => resolve(b.udp, `during${i}.example`, 'A', { localAddress: CLIENT })));
    expect(dead.queries.length).toBe(asked);
    expect(health.backoffMs).toBe(800);
    // After the period, a burst sends one probe to it, and every query is answered by the other at once.
    await until('the back-off period to end', () => Date.now() > health.downUntil);
    const t0 = Date.now();
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => resolve(b.udp, `after${i}.example`, 'A', { localAddress: CLIENT })));
    expect(burst.every((r) => r.answers.length === 1)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(250);
    expect(dead.queries.length).toBe(asked + 1);
    // The probe times out: backed off again, for the doubled period.
    await until('the probe to fail', () => health.downUntil > Date.now());
    expect(health.downUntil - Date.now()).toBeGreaterThan(400);
    expect(health.downUntil - Date.now()).toBeLessThanOrEqual(800);
    expect(health.backoffMs).toBe(1600);
  });

  it('a probe that is answered brings the upstream back', async () => {
    const health = b.server.resolver.upstreamHealth.get(dead.address)!;
    dead.setMode('answer');
    await until('the back-off period to end', () => Date.now() > health.downUntil, 5000);
    await resolve(b.udp, 'probe-ok.example', 'A', { localAddress: CLIENT });
    await until('the probe to be answered', () => health.downUntil === 0);
    const before = dead.queries.length;
    await resolve(b.udp, 'back.example', 'A', { localAddress: CLIENT });
    expect(dead.queries.length).toBe(before + 1); // first in order again
  });
});

describe('prefetch', () => {
  it('a name asked once a second with a 10 s TTL is a cache miss only the first time, over a minute', async () => {
    upstream.setHandler((q) => (q.name === 'popular.example' ? { answers: [{ name: q.name, type: TYPE.A, ttl: 10, data: '192.0.2.10' }] } : undefined));
    const c = h.server.resolver.counters;
    const missesBefore = h.server.resolver.cache.misses;
    const prefetchedBefore = c.prefetched;
    const asked = () => upstream.queries.filter((q) => q.name === 'popular.example').length;
    for (let s = 0; s < 60; s++) {
      const r = await resolve(h.udp, 'popular.example', 'A', { localAddress: CLIENT });
      expect(r.answers).toHaveLength(1);
      // A prefetch that started is answered before the clock moves on.
      await until(
        `the prefetch to land (second ${s}: asked ${asked()}, prefetched ${c.prefetched - prefetchedBefore}, in flight ${h.server.resolver.forwardsInFlight})`,
        () => asked() === 1 + (c.prefetched - prefetchedBefore) && h.server.resolver.forwardsInFlight === 0,
      );
      now += 1000;
    }
    expect(h.server.resolver.cache.misses - missesBefore).toBe(1);
    expect(c.prefetched - prefetchedBefore).toBeGreaterThanOrEqual(6);
    expect(c.prefetched - prefetchedBefore).toBeLessThanOrEqual(7);
  });
});

describe('queries a resolver rejects (as Unbound does)', () => {
  const raw = (mutate: (q: Buffer) => Buffer) => mutate(encodeQuery('reject.example', 'A'));
  it.each([
    ['TC set', (q: Buffer) => ((q[2] = q[2]! | 0x02), q), RCODE.FORMERR],
    ['an answer record', (q: Buffer) => Buffer.concat([((q[7] = 1), q), Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1])]), RCODE.FORMERR],
    ['an authority record', (q: Buffer) => Buffer.concat([((q[9] = 1), q), Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1])]), RCODE.FORMERR],
  ])('%s: %s', async (_what, mutate, rcode) => {
    const r = decodeResponse(await queryUdp(h.udp, raw(mutate), { localAddress: CLIENT }));
    expect(r.rcode).toBe(rcode);
  });

  it.each([
    ['AXFR', 252, RCODE.REFUSED],
    ['IXFR', 251, RCODE.REFUSED],
    ['OPT', 41, RCODE.FORMERR],
    ['MAILA', 254, RCODE.FORMERR],
    ['MAILB', 253, RCODE.FORMERR],
    ['TSIG', 250, RCODE.FORMERR],
  ])('qtype %s', async (_what, type, rcode) => {
    const before = upstream.queries.length;
    const r = await resolve(h.udp, 'meta.example', type, { localAddress: CLIENT });
    expect(r.rcode).toBe(rcode);
    expect(upstream.queries.length).toBe(before);
  });

  it('a query with QR set gets no answer', async () => {
    const q = encodeQuery('qr.example', 'A');
    q[2] = q[2]! | 0x80;
    await expect(queryUdp(h.udp, q, { localAddress: CLIENT, timeoutMs: 300 })).rejects.toThrow();
  });
});
