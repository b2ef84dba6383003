import { describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { bucketSeconds, percentile, summarize } from '../../src/querylog/summary.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const MIN = 60_000;

function event(over: Partial<QueryEvent>): QueryEvent {
  return {
    time: NOW - MIN,
    instance: 'test',
    client: '10.0.0.1',
    network: 'internal',
    profile: 'staff',
    policy: null,
    list: null,
    rule: null,
    name: 'example.org',
    type: 'A',
    decision: 'allowed',
    wouldBlock: false,
    exception: false,
    cache: false,
    upstream: '192.0.2.53:53',
    rcode: 0,
    answers: 1,
    durationMs: 10,
    transport: 'udp',
    ...over,
  };
}

const blocked = (name: string, list: string, over: Partial<QueryEvent> = {}): QueryEvent =>
  event({ name, list, rule: name, decision: 'blocked', upstream: null, rcode: 3, answers: 0, durationMs: 0.1, policy: 'app-ban', ...over });

const events: QueryEvent[] = [
  event({ durationMs: 10 }),
  event({ durationMs: 20, time: NOW - 2 * MIN }),
  event({ durationMs: 30, upstream: '192.0.2.54:53' }),
  event({ cache: true, upstream: '192.0.2.53:53', durationMs: 0.05 }),
  event({ cache: true, upstream: '192.0.2.53:53', durationMs: 0.05, network: 'guest', client: '10.9.0.7' }),
  blocked('www.tiktok.com', 'tiktok'),
  blocked('www.tiktok.com', 'tiktok', { client: '10.0.0.2' }),
  blocked('www.tiktok.com', 'tiktok', { time: NOW - 10 * MIN }),
  blocked('wechat.com', 'wechat'),
  blocked('weixin.qq.com', 'wechat', { client: '10.4.0.1', network: 'comms' }),
  event({ decision: 'refused', network: null, profile: null, upstream: null, client: '192.168.7.7', rcode: 5 }),
  event({ decision: 'error', upstream: null, rcode: 2 }),
  event({ decision: 'malformed', upstream: null, rcode: 1 }),
  event({ name: 'web.wechat.com', network: 'guest', client: '10.9.0.7', wouldBlock: true, policy: 'wechat-trial', list: 'wechat' }),
  event({ name: 'wechat.com', network: 'guest', client: '10.9.0.8', wouldBlock: true, policy: 'wechat-trial', list: 'wechat' }),
  // outside the last 15 minutes
  blocked('old.tiktok.com', 'tiktok', { time: NOW - 20 * MIN }),
];

const last15 = () => summarize(events, { since: NOW - 15 * MIN }, { now: NOW });

describe('summarize', () => {
  it('counts totals and ratios over the range only', () => {
    const s = last15();
    expect(s.totals).toEqual({
      queries: 15,
      blocked: 5,
      refused: 1,
      errors: 2,
      cacheHits: 2,
      wouldBlock: 2,
      blockRatio: 0.3333,
      cacheHitRatio: 0.2857, // 2 cache hits of 7 allowed
    });
    expect([s.total, s.blocked]).toEqual([15, 5]);
    expect(s.range).toEqual({ since: NOW - 15 * MIN, until: NOW });
  });

  it('applies the filter to every panel', () => {
    const s = summarize(events, { since: NOW - 15 * MIN, network: 'guest' }, { now: NOW });
    expect(s.totals.queries).toBe(3);
    expect(s.topBlockedDomains).toEqual([]);
    expect(s.series.networks.map((n) => n.network)).toEqual(['guest']);
  });

  it.each([
    [15 * MIN, 10],
    [60 * MIN, 30],
    [6 * 60 * MIN, 300],
    [24 * 60 * MIN, 600],
    [7 * 24 * 60 * MIN, 10800],
    [10_000, 1],
  ])('sizes buckets for a range of %d ms at %d s', (range, seconds) => {
    expect(bucketSeconds(range)).toBe(seconds);
  });

  it('puts queries and blocks per network into aligned buckets, busiest network first', () => {
    const s = last15();
    expect(s.series.bucketSeconds).toBe(10);
    expect(s.series.start).toBe(NOW - 15 * MIN);
    expect(s.series.networks.map((n) => n.network)).toEqual(['internal', 'guest', '(none)', 'comms']);
    const internal = s.series.networks[0]!;
    expect(internal.queries).toHaveLength(90);
    const at = (minutesAgo: number) => (15 * MIN - minutesAgo * MIN) / 10_000;
    expect(internal.queries[at(1)]).toBe(8);
    expect(internal.blocked[at(1)]).toBe(3);
    expect(internal.queries[at(2)]).toBe(1);
    expect(internal.blocked[at(10)]).toBe(1);
    expect(internal.queries.reduce((a, v) => a + v, 0)).toBe(10);
    expect(s.series.upstreamP95Ms[at(1)]).toBe(30);
    expect(s.series.upstreamP95Ms[at(3)]).toBeNull();
  });

  it('ranks blocked domains, apps and the clients that hit them', () => {
    const s = last15();
    expect(s.topBlockedDomains).toEqual([
      { name: 'www.tiktok.com', list: 'tiktok', count: 3 },
      { name: 'wechat.com', list: 'wechat', count: 1 },
      { name: 'weixin.qq.com', list: 'wechat', count: 1 },
    ]);
    expect(s.topApps).toEqual([
      { list: 'tiktok', count: 3, clients: 2 },
      { list: 'wechat', count: 2, clients: 2 },
    ]);
    expect(s.topBlockedClients).toEqual([
      { client: '10.0.0.1', network: 'internal', count: 3, lists: ['tiktok', 'wechat'] },
      { client: '10.0.0.2', network: 'internal', count: 1, lists: ['tiktok'] },
      { client: '10.4.0.1', network: 'comms', count: 1, lists: ['wechat'] },
    ]);
    expect(summarize(events, { since: NOW - 15 * MIN }, { now: NOW, top: 1 }).topBlockedDomains).toHaveLength(1);
  });

  it('measures upstream latency of forwarded answers only, not cache hits', () => {
    const s = last15();
    expect(s.upstreams).toEqual([
      // the two would-block queries were forwarded too (10 ms each)
      { upstream: '192.0.2.53:53', queries: 4, avgMs: 12.5, p50Ms: 10, p95Ms: 20 },
      { upstream: '192.0.2.54:53', queries: 1, avgMs: 30, p50Ms: 30, p95Ms: 30 },
    ]);
  });

  it('counts what each dry-run policy would have blocked', () => {
    expect(last15().dryRun).toEqual([{ policy: 'wechat-trial', wouldBlock: 2, clients: 2 }]);
  });

  it('without `since` starts at the earliest event, and is empty without events', () => {
    expect(summarize(events, {}, { now: NOW }).range.since).toBe(NOW - 20 * MIN);
    const empty = summarize([], { since: NOW - 60 * MIN }, { now: NOW });
    expect(empty.totals).toMatchObject({ queries: 0, blockRatio: 0, cacheHitRatio: 0 });
    expect(empty.series.bucketSeconds).toBe(30);
    expect(empty.series.upstreamP95Ms).toHaveLength(120);
  });

  it.each([
    [[], 50, 0],
    [[5], 95, 5],
    [[1, 2, 3, 4], 50, 2],
    [[1, 2, 3, 4], 95, 4],
    [[...Array(100).keys()].map((i) => i + 1), 95, 95],
  ])('percentile of %j at p%d is %d', (values, p, expected) => {
    expect(percentile(values, p)).toBe(expected);
  });
});
