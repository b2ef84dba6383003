// The metrics registry without a server: the query duration histogram is counted by sluice itself
// (not prom-client's observe), so its exposition and its cluster aggregation are pinned here.
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { QueryMetrics } from '../../src/admin/metrics.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import type { Resolver } from '../../src/pipeline/resolver.js';

function metrics(): QueryMetrics {
  return new QueryMetrics({ resolver: () => ({}) as Resolver, buffer: () => undefined, listSizes: () => new Map(), now: Date.now });
}

const ctx = { query: { type: 1 }, outcome: 'blocked', network: { metricsKey: 'internal|staff' } } as unknown as RequestContext;

describe('QueryMetrics duration histogram', () => {
  it('exposes cumulative buckets, +Inf, sum and count in the Prometheus text format', async () => {
    const m = metrics();
    for (const s of [0.00005, 0.0002, 0.0002, 0.003, 7]) m.observe(ctx, s);
    const text = await m.registry.getSingleMetricAsString('sluice_query_duration_seconds');
    const lines = text.split('\n');
    expect(lines).toContain('# TYPE sluice_query_duration_seconds histogram');
    expect(lines).toContain('sluice_query_duration_seconds_bucket{le="0.0001"} 1');
    expect(lines).toContain('sluice_query_duration_seconds_bucket{le="0.00025"} 3');
    expect(lines).toContain('sluice_query_duration_seconds_bucket{le="0.001"} 3');
    expect(lines).toContain('sluice_query_duration_seconds_bucket{le="0.005"} 4');
    expect(lines).toContain('sluice_query_duration_seconds_bucket{le="2.5"} 4');
    expect(lines).toContain('sluice_query_duration_seconds_bucket{le="+Inf"} 5');
    expect(lines).toContain('sluice_query_duration_seconds_count 5');
    const sum = Number(lines.find((l) => l.startsWith('sluice_query_duration_seconds_sum '))!.split(' ')[1]);
    expect(sum).toBeCloseTo(7.00345, 9);
    expect(await m.registry.getSingleMetricAsString('sluice_queries_total')).toContain('sluice_queries_total{network="internal",profile="staff",decision="blocked",type="A"} 5');
  });

  it('keeps one upstream latency series per upstream that answered, and none for cache hits', async () => {
    const m = metrics();
    const fwd = (upstream: string, cacheHit = false) => ({ ...ctx, outcome: 'allowed', upstream, cacheHit }) as unknown as RequestContext;
    m.observe(fwd('192.0.2.53:53'), 0.002);
    m.observe(fwd('192.0.2.53:53'), 0.02);
    m.observe(fwd('[2001:db8::53]:53'), 0.0005);
    m.observe(fwd('192.0.2.53:53', true), 0.0001);
    const lines = (await m.registry.getSingleMetricAsString('sluice_upstream_duration_seconds')).split('\n');
    expect(lines).toContain('sluice_upstream_duration_seconds_bucket{upstream="192.0.2.53:53",le="0.0025"} 1');
    expect(lines).toContain('sluice_upstream_duration_seconds_bucket{upstream="192.0.2.53:53",le="0.025"} 2');
    expect(lines).toContain('sluice_upstream_duration_seconds_count{upstream="192.0.2.53:53"} 2');
    expect(lines).toContain('sluice_upstream_duration_seconds_bucket{upstream="[2001:db8::53]:53",le="0.001"} 1');
    expect(lines).toContain('sluice_upstream_duration_seconds_count{upstream="[2001:db8::53]:53"} 1');
  });

  it('adds up across workers the way prom-client aggregates a cluster', async () => {
    const a = metrics();
    const b = metrics();
    a.observe(ctx, 0.0002);
    b.observe(ctx, 0.0002);
    b.observe(ctx, 0.02);
    // What a worker sends its primary: the JSON of its metrics (here only the histogram's).
    const json = async (m: QueryMetrics) => [await m.registry.getSingleMetric('sluice_query_duration_seconds')!.get()];
    const merged = client.AggregatorRegistry.aggregate([await json(a), await json(b)]);
    const lines = (await merged.getSingleMetricAsString('sluice_query_duration_seconds')).split('\n');
    expect(lines).toContain('sluice_query_duration_seconds_bucket{le="0.00025"} 2');
    expect(lines).toContain('sluice_query_duration_seconds_bucket{le="0.025"} 3');
    expect(lines).toContain('sluice_query_duration_seconds_count 3');
  });
});

describe('QueryMetrics sluice_blocked_total', () => {
  const internal = { name: 'internal', metricsKey: 'internal|staff' };
  const guest = { name: 'guest', metricsKey: 'guest|open' };
  const appBan = { id: 'app-ban', title: 'App ban', reference: 'council decision' };
  const vpnBan = { id: 'vpn-ban', title: 'VPN ban', reference: 'circular' };
  const blocked = (network: object, list: string, policy?: object) =>
    ({ query: { type: 1 }, outcome: 'blocked', network, decision: { kind: 'blocked', profile: 'staff', list, rule: `${list}.example`, ...(policy ? { policy } : {}) } }) as unknown as RequestContext;
  const allowed = (network: object) => ({ query: { type: 1 }, outcome: 'allowed', network, decision: { kind: 'allowed', profile: 'staff' }, upstream: '192.0.2.53:53' }) as unknown as RequestContext;
  const series = async (m: QueryMetrics) => (await m.registry.getSingleMetricAsString('sluice_blocked_total')).split('\n').filter((l) => l.startsWith('sluice_blocked_total{'));

  it('counts blocked queries per network, policy and list', async () => {
    const m = metrics();
    m.observe(blocked(internal, 'tiktok', appBan), 0.0001);
    m.observe(blocked(internal, 'turbovpn', vpnBan), 0.0001);
    m.observe(blocked(internal, 'tiktok', appBan), 0.0001);
    m.observe(blocked(guest, 'tiktok', appBan), 0.0001);
    expect((await series(m)).sort()).toEqual([
      'sluice_blocked_total{network="guest",policy="app-ban",list="tiktok"} 1',
      'sluice_blocked_total{network="internal",policy="app-ban",list="tiktok"} 2',
      'sluice_blocked_total{network="internal",policy="vpn-ban",list="turbovpn"} 1',
    ]);
  });

  it('labels a block by the profile itself, without a policy, with policy=""', async () => {
    const m = metrics();
    m.observe(blocked(internal, 'doh-bypass'), 0.0001);
    expect(await series(m)).toEqual(['sluice_blocked_total{network="internal",policy="",list="doh-bypass"} 1']);
  });

  it('counts one decision object that two networks share on each of them', async () => {
    const m = metrics();
    const shared = blocked(internal, 'tiktok', appBan).decision;
    for (const network of [internal, guest, internal]) m.observe({ query: { type: 1 }, outcome: 'blocked', network, decision: shared } as unknown as RequestContext, 0.0001);
    expect((await series(m)).sort()).toEqual(['sluice_blocked_total{network="guest",policy="app-ban",list="tiktok"} 1', 'sluice_blocked_total{network="internal",policy="app-ban",list="tiktok"} 2']);
  });

  it('adds nothing for allowed, refused and malformed queries', async () => {
    const m = metrics();
    m.observe(allowed(internal), 0.002);
    m.observe({ query: { type: 1 }, outcome: 'refused' } as unknown as RequestContext, 0.0001);
    m.observe({ query: { type: 0 }, outcome: 'malformed' } as unknown as RequestContext, 0.0001);
    expect(await series(m)).toEqual([]);
    expect(await m.registry.getSingleMetricAsString('sluice_blocked_total')).toContain('# TYPE sluice_blocked_total counter');
  });

  it('adds up across workers', async () => {
    const a = metrics();
    const b = metrics();
    a.observe(blocked(internal, 'tiktok', appBan), 0.0001);
    b.observe(blocked(internal, 'tiktok', appBan), 0.0001);
    b.observe(blocked(internal, 'doh-bypass'), 0.0001);
    const json = async (m: QueryMetrics) => [await m.registry.getSingleMetric('sluice_blocked_total')!.get()];
    const merged = client.AggregatorRegistry.aggregate([await json(a), await json(b)]);
    const lines = (await merged.getSingleMetricAsString('sluice_blocked_total')).split('\n');
    expect(lines).toContain('sluice_blocked_total{network="internal",policy="app-ban",list="tiktok"} 2');
    expect(lines).toContain('sluice_blocked_total{network="internal",policy="",list="doh-bypass"} 1');
  });
});
