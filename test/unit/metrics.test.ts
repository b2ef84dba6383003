// The metrics registry without a server: the query duration histogram is counted by sluice itself
// (not prom-client's observe), so its exposition and its cluster aggregation are pinned here.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import client from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { QueryMetrics, buildInfo } from '../../src/admin/metrics.js';
import { readQuery } from '../../src/dns/wire.js';
import type { LoadedList, LoadedLists } from '../../src/lists/list-loader.js';
import { fetchRemoteList } from '../../src/lists/remote.js';
import type { RequestContext } from '../../src/pipeline/context.js';
import type { Resolver } from '../../src/pipeline/resolver.js';
import { UpstreamPool } from '../../src/upstream/upstream-pool.js';
import { encodeQuery } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';

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

describe('upstream metrics, counted by the pool', () => {
  const upstreams: FakeUpstream[] = [];
  const pools: UpstreamPool[] = [];
  afterEach(async () => {
    for (const p of pools.splice(0)) p.close();
    for (const u of upstreams.splice(0)) await u.close();
  });
  const fake = async () => {
    const u = await startFakeUpstream();
    upstreams.push(u);
    return u;
  };
  const openPool = () => {
    const p = new UpstreamPool({ sockets: 1, socketMaxQueries: 100, timeoutMs: 200, minTimeoutMs: 150, totalTimeoutMs: 2000, backoffMs: 5000 });
    pools.push(p);
    return p;
  };
  const ask = (p: UpstreamPool, servers: FakeUpstream[], name: string) => {
    const msg = encodeQuery(name, 'A');
    const r = readQuery(msg);
    if (!r.ok) throw new Error('the test query does not read');
    return p.resolve(
      servers.map((u) => ({ host: u.host, port: u.port })),
      msg,
      r.query,
    );
  };
  const metricsOf = (p: UpstreamPool) =>
    new QueryMetrics({ resolver: () => ({ upstreamHealth: p.health, upstreamErrors: p.errors }) as unknown as Resolver, buffer: () => undefined, listSizes: () => new Map(), now: Date.now });
  const lines = async (m: QueryMetrics, name: string) => (await m.registry.getSingleMetricAsString(name)).split('\n');

  it('times the attempt that answered, not the query with the attempt that timed out before it', async () => {
    const silent = await fake();
    silent.setMode('drop');
    const quick = await fake();
    const p = openPool();
    const t0 = performance.now();
    const r = await ask(p, [silent, quick], 'rtt.example');
    const queryMs = performance.now() - t0;
    expect(r).toMatchObject({ ok: true, server: quick.address });
    expect(queryMs).toBeGreaterThanOrEqual(140); // the first attempt's timeout (150 ms) is in the query's time
    const l = await lines(metricsOf(p), 'sluice_upstream_duration_seconds');
    expect(l).toContain(`sluice_upstream_duration_seconds_count{upstream="${quick.address}"} 1`);
    // The answering attempt's round trip, on loopback: far below the 150 ms the query waited first.
    expect(l).toContain(`sluice_upstream_duration_seconds_bucket{upstream="${quick.address}",le="0.1"} 1`);
    const sum = Number(l.find((x) => x.startsWith(`sluice_upstream_duration_seconds_sum{upstream="${quick.address}"}`))!.split(' ')[1]);
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(0.1);
    expect(l.some((x) => x.includes(`upstream="${silent.address}"`))).toBe(false); // it answered nothing
  });

  it('counts upstream errors by the upstream whose answer it was or that was asked last', async () => {
    const failing = await fake();
    failing.setMode('servfail');
    const silent = await fake();
    silent.setMode('drop');
    const p = openPool();
    expect(await ask(p, [failing], 'servfail.example')).toMatchObject({ ok: true, server: failing.address });
    const q = new UpstreamPool({ sockets: 1, socketMaxQueries: 100, timeoutMs: 50, minTimeoutMs: 20, totalTimeoutMs: 200, backoffMs: 5000 });
    pools.push(q);
    expect(await ask(q, [silent], 'silent.example')).toMatchObject({ ok: false, reason: 'timeout' });
    expect(await lines(metricsOf(p), 'sluice_upstream_errors_total')).toContain(`sluice_upstream_errors_total{upstream="${failing.address}"} 1`);
    expect(await lines(metricsOf(q), 'sluice_upstream_errors_total')).toContain(`sluice_upstream_errors_total{upstream="${silent.address}"} 1`);
    // A query that no upstream could be asked for (all backed off) is counted, as upstream="none".
    const m = new QueryMetrics({ resolver: () => ({ upstreamHealth: new Map(), upstreamErrors: 2 }) as unknown as Resolver, buffer: () => undefined, listSizes: () => new Map(), now: Date.now });
    expect(await lines(m, 'sluice_upstream_errors_total')).toContain('sluice_upstream_errors_total{upstream="none"} 2');
  });
});

describe('list freshness and download failures', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-list-metrics-'));
  const def = (name: string, url?: string) => ({ name, file: join(dir, name, `${name}.txt`), ...(url ? { url } : {}) });
  const loaded = (d: ReturnType<typeof def>, updated?: Date) => ({ def: d, set: { size: 1 }, problems: [], updated, contentHash: '', refusals: 0 }) as unknown as LoadedList;

  it('says when each list was last brought up to date, and counts failed downloads of the url lists only', async () => {
    const fetched = def('fetched', 'http://127.0.0.1:9/fetched.txt');
    mkdirSync(join(dir, 'fetched'), { recursive: true });
    writeFileSync(fetched.file, 'ads.example\n');
    const checkedAt = '2026-11-30T08:00:00.000Z';
    writeFileSync(join(dir, 'fetched', 'fetched.meta.json'), JSON.stringify({ url: fetched.url, fetchedAt: '2026-11-01T00:00:00.000Z', checkedAt, entries: 1, sha256: 'x' }));
    const local = def('local');
    const pending = def('pending', 'http://127.0.0.1:9/pending.txt');
    // A download that fails (nothing listens on the discard port of loopback) counts for its list.
    const res = await fetchRemoteList({ name: 'pending', url: pending.url!, cacheDir: join(dir, 'pending'), timeoutMs: 2000, maxBytes: 1000 });
    expect(res.status).toBe('failed');
    const lists = {
      lists: [loaded(fetched, new Date('2026-11-01T00:00:00Z')), loaded(local, new Date('2026-10-15T12:00:00Z'))],
      pendingRemote: [pending],
      errors: [],
      resolved: { lists: new Map() },
    } as unknown as LoadedLists;
    const m = new QueryMetrics({ resolver: () => ({}) as Resolver, buffer: () => undefined, listSizes: () => new Map(), lists: () => lists, now: Date.now });
    const ts = (await m.registry.getSingleMetricAsString('sluice_list_last_update_timestamp_seconds')).split('\n');
    expect(ts).toContain(`sluice_list_last_update_timestamp_seconds{list="fetched"} ${Date.parse(checkedAt) / 1000}`);
    expect(ts).toContain(`sluice_list_last_update_timestamp_seconds{list="local"} ${Date.parse('2026-10-15T12:00:00Z') / 1000}`);
    expect(ts.some((l) => l.includes('list="pending"'))).toBe(false); // never downloaded
    const failures = (await m.registry.getSingleMetricAsString('sluice_list_download_failures_total')).split('\n');
    expect(failures).toContain('sluice_list_download_failures_total{list="pending"} 1');
    expect(failures).toContain('sluice_list_download_failures_total{list="fetched"} 0');
    expect(failures.some((l) => l.includes('list="local"'))).toBe(false);
  });
});

describe('build and runtime metrics', () => {
  it('sluice_build_info carries the package version, the Node.js version and the commit', async () => {
    const m = metrics();
    const text = await m.registry.getSingleMetricAsString('sluice_build_info');
    const info = buildInfo();
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(text).toContain(`sluice_build_info{version="${info.version}",node="${process.version}",commit="${info.commit}"} 1`);
  });

  it('takes the commit from $SLUICE_COMMIT, else from the checkout, else says unknown', () => {
    expect(buildInfo(undefined, { SLUICE_COMMIT: 'abc123def456' }).commit).toBe('abc123def456');
    const root = mkdtempSync(join(tmpdir(), 'sluice-build-info-'));
    writeFileSync(join(root, 'package.json'), '{"version":"9.8.7"}');
    expect(buildInfo(root, {})).toEqual({ version: '9.8.7', node: process.version, commit: 'unknown' });
    mkdirSync(join(root, '.git', 'refs', 'heads'), { recursive: true });
    writeFileSync(join(root, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    writeFileSync(join(root, '.git', 'packed-refs'), `# pack-refs\n${'c'.repeat(40)} refs/heads/main\n`);
    expect(buildInfo(root, {}).commit).toBe('c'.repeat(12));
    writeFileSync(join(root, '.git', 'refs', 'heads', 'main'), `${'d'.repeat(40)}\n`);
    expect(buildInfo(root, {}).commit).toBe('d'.repeat(12));
  });

  it('registers the process and Node.js runtime metrics in its registry', async () => {
    const m = new QueryMetrics({ resolver: () => ({ upstreamHealth: new Map(), upstreamErrors: 0 }) as unknown as Resolver, buffer: () => undefined, listSizes: () => new Map(), now: Date.now });
    const names = m.registry.getMetricsAsArray().map((x) => x.name);
    for (const n of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds'])
      expect(names).toContain(n);
  });
});
