// What the Prometheus dashboard (docs/grafana/sluice-dashboard.json) reads: its panels and the
// metric families their expressions name. Shared by the dashboard's unit test (against the
// registry) and test/e2e/prometheus.test.ts (against a real scrape, with promtool).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DashboardTarget {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: DashboardTarget[];
  fieldConfig?: { defaults?: { unit?: string } };
}
export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: DashboardPanel[];
  templating: { list: { name: string; type: string }[] };
}

export const DASHBOARD_FILE = join(import.meta.dirname, '../../docs/grafana/sluice-dashboard.json');

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** The names an expression uses outside label matchers and strings (histogram series also by their family's name). */
export function namesRead(expr: string): Set<string> {
  const names = new Set<string>();
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\{[^}]*\}/g, '');
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    names.add(m[0]);
    names.add(m[0].replace(/_(bucket|sum|count)$/, ''));
  }
  return names;
}

/** Every name the dashboard's expressions read. */
export function chartedNames(d: Dashboard = readDashboard()): Set<string> {
  const all = new Set<string>();
  for (const p of d.panels) for (const t of p.targets ?? []) for (const n of namesRead(t.expr ?? '')) all.add(n);
  return all;
}

/**
 * Families that would make no sense to chart, each with why. Empty: build info, versions and start
 * times are in the Instances table, and every counter and gauge has a panel.
 */
export const NOT_CHARTED: readonly string[] = [];

/** Families of `families` that no panel reads (and that NOT_CHARTED does not excuse). */
export function uncharted(families: Iterable<string>, d: Dashboard = readDashboard()): string[] {
  const charted = chartedNames(d);
  return [...families].filter((f) => !charted.has(f) && !NOT_CHARTED.includes(f));
}

/** Each expression with Grafana's variables replaced, as Prometheus would be sent it. */
export function expandedExpressions(d: Dashboard = readDashboard()): { panel: string; expr: string }[] {
  const out: { panel: string; expr: string }[] = [];
  for (const p of d.panels) {
    for (const t of p.targets ?? []) {
      if (!t.expr) continue;
      const expr = t.expr
        .replace(/\$__rate_interval|\$__interval/g, '1m')
        .replace(/\$__range/g, '1h')
        .replace(/\$(instance|network)/g, '.*');
      out.push({ panel: p.title, expr });
    }
  }
  return out;
}
