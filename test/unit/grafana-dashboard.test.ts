// The Prometheus dashboard (docs/grafana/sluice-dashboard.json) and the metrics table of
// docs/grafana/README.md against the metrics registry: every family sluice exports is charted and
// listed, and the dashboard keeps the shape Grafana imports (unique ids, a data source variable,
// panels on the 24-column grid without overlaps, each below its row). test/e2e/prometheus.test.ts
// checks the same against a real scrape and has promtool parse every expression.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { QueryMetrics } from '../../src/admin/metrics.js';
import type { Resolver } from '../../src/pipeline/resolver.js';
import { chartedNames, readDashboard, uncharted, type DashboardPanel } from '../helpers/dashboard-families.js';

const REPO = join(import.meta.dirname, '../..');
const dashboard = readDashboard();

/** Every family of a registry with every source present (the store's too). */
function registryFamilies(): string[] {
  const m = new QueryMetrics({
    resolver: () => ({}) as Resolver,
    buffer: () => undefined,
    listSizes: () => new Map(),
    now: Date.now,
    store: () => undefined,
    lists: () => ({ lists: [], pendingRemote: [], errors: [], resolved: { lists: new Map() } }),
  });
  return m.registry.getMetricsAsArray().map((x) => x.name);
}

describe('the Grafana dashboard', () => {
  const families = registryFamilies();

  it('charts every metric family sluice exports', () => {
    expect(families).toEqual(expect.arrayContaining(['sluice_queries_total', 'sluice_build_info', 'sluice_redis_up', 'process_cpu_seconds_total', 'sluice_querylog_store_up']));
    expect(uncharted(families)).toEqual([]);
  });

  it('reads no metric that sluice does not export', () => {
    const known = new Set([...families, 'up']);
    const functions =
      /^(sum|max|min|count|avg|by|without|on|ignoring|group_left|group_right|and|or|unless|rate|increase|irate|delta|histogram_quantile|label_replace|sort_desc|sort|time|vector|topk|bottomk|clamp_min|clamp_max|abs|offset|bool|le|__rate_interval|__range|__interval|instance|network|policy|list|upstream|reason|stage|store|space|kind|type|worker|version|node|commit|policy_version|state|profile|decision|e|Inf|NaN)$/;
    const unknown = [...chartedNames()].filter((n) => !known.has(n) && !functions.test(n) && !/_(bucket|sum|count)$/.test(n));
    expect(unknown).toEqual([]);
  });

  it('keeps the shape Grafana imports', () => {
    expect(dashboard.uid).toBe('sluice-overview');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance', 'network']);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const taken = new Set<string>();
    let row: DashboardPanel | undefined;
    for (const p of dashboard.panels) {
      const g = p.gridPos;
      expect(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0, `${p.title}: on the 24-column grid`).toBe(true);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          expect(taken.has(`${x},${y}`), `${p.title} overlaps another panel`).toBe(false);
          taken.add(`${x},${y}`);
        }
      }
      if (p.type === 'row') {
        expect(g.w).toBe(24);
        if (row) expect(g.y).toBeGreaterThan(row.gridPos.y);
        row = p;
        continue;
      }
      expect(row, `${p.title}: below a row`).toBeDefined();
      expect(g.y).toBeGreaterThan(row!.gridPos.y);
      expect(['stat', 'timeseries', 'bargauge', 'table']).toContain(p.type);
      expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      const targets = p.targets ?? [];
      expect(targets.length, `${p.title}: has queries`).toBeGreaterThan(0);
      expect(new Set(targets.map((t) => t.refId)).size).toBe(targets.length);
      for (const t of targets) {
        expect(t.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
        expect(t.expr, `${p.title}: filtered by instance`).toContain('instance=~"$instance"');
      }
    }
  });

  it('gives a unit to every time series and bar', () => {
    for (const p of dashboard.panels) if (p.type === 'timeseries' || p.type === 'bargauge') expect(p.fieldConfig?.defaults?.unit, p.title).toBeTruthy();
  });
});

describe('the metrics table of docs/grafana/README.md', () => {
  it('lists every metric family', () => {
    const readme = readFileSync(join(REPO, 'docs/grafana/README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('| metric | type | labels |'));
    const listed = new Set([...table.slice(0, table.indexOf('\n\n')).matchAll(/`([a-z_:][a-z0-9_:]*)`/g)].map((m) => m[1]!));
    expect(registryFamilies().filter((f) => !listed.has(f))).toEqual([]);
  });
});
