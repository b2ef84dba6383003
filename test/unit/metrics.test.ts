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
