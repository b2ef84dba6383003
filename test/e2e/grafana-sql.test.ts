// The Grafana dashboards, proven without Grafana: every dashboard JSON shipped (docs/grafana and
// deploy/compose/grafana) is checked for structure (valid JSON, unique panel ids, data sources that
// are provisioned, variables that are defined, units and descriptions), and every SQL it holds —
// panel targets and variable queries — is expanded the way Grafana expands it for PostgreSQL
// (test/helpers/grafana-macros.ts) and run against a real PostgreSQL database with the query-log
// schema, seeded through the real writer (PostgresStore, one per resolver) with 30 days of
// realistic events from two resolvers plus older days that only the rollup still holds after
// retention. The queries run as a role with exactly the grants docs/grafana/README.md documents.
// A few numbers are checked against what was seeded.
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { QueryEvent } from '../../src/querylog/event.js';
import { PostgresStore } from '../../src/querylog/store/postgres-store.js';
import {
  expandGrafanaSql,
  formatInterval,
  macrosUsed,
  panelRange,
  rfc3339Nano,
  variablesUsed,
  type ExpandOptions,
  type GrafanaVariable,
  type Selection,
  type TimeRange,
} from '../helpers/grafana-macros.js';
import { createTestDatabase, pgAdminUrl, type TestDatabase } from '../helpers/postgres.js';

const REPO = join(import.meta.dirname, '../..');
const DAY = 86_400_000;
const utcDay = (t: number): string => new Date(t).toISOString().slice(0, 10);

// ---------------------------------------------------------------------------------------------
// The dashboards and the provisioned data sources

interface Target {
  refId?: string;
  datasource?: { type?: string; uid?: string };
  rawSql?: string;
  expr?: string;
  format?: string;
  rawQuery?: boolean;
  editorMode?: string;
}

interface Panel {
  id: number;
  type: string;
  title: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
  timeFrom?: string;
  fieldConfig?: { defaults?: { unit?: string }; overrides?: { properties: { id: string; value: unknown }[] }[] };
}

interface DashboardVariable extends GrafanaVariable {
  label?: string;
  datasource?: { type?: string; uid?: string } | string;
  definition?: string;
}

interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: DashboardVariable[] };
}

interface Shipped {
  file: string;
  dashboard: Dashboard;
}

function jsonFiles(dir: string): string[] {
  return (readdirSync(join(REPO, dir), { recursive: true }) as string[])
    .filter((f) => f.endsWith('.json'))
    .map((f) => join(dir, f))
    .sort();
}

const DASHBOARD_FILES = [...jsonFiles('docs/grafana'), ...jsonFiles('deploy/compose/grafana')];
const shipped: Shipped[] = DASHBOARD_FILES.map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(REPO, file), 'utf8')) as Dashboard }));

interface ProvisionedDatasource {
  name: string;
  uid: string;
  type: string;
  url: string;
  user?: string;
  jsonData?: Record<string, unknown>;
  secureJsonData?: Record<string, string>;
}

const DATASOURCE_DIR = 'deploy/compose/grafana/provisioning/datasources';
const provisioned: ProvisionedDatasource[] = readdirSync(join(REPO, DATASOURCE_DIR))
  .filter((f) => /\.ya?ml$/.test(f))
  .flatMap((f) => (parseYaml(readFileSync(join(REPO, DATASOURCE_DIR, f), 'utf8')) as { datasources: ProvisionedDatasource[] }).datasources);

/** Every panel, rows' nested panels included. */
function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

const sqlTargets = (d: Dashboard) => allPanels(d).flatMap((panel) => (panel.targets ?? []).filter((t) => t.rawSql !== undefined).map((target) => ({ panel, target })));

/** The SQL of a query variable (a string, or Grafana 10+'s `{ rawSql }` object). */
function variableSql(v: DashboardVariable): string | undefined {
  if (v.type !== 'query') return undefined;
  if (typeof v.query === 'string') return v.query;
  if (v.query && typeof v.query === 'object' && 'rawSql' in v.query) return String((v.query as { rawSql: unknown }).rawSql);
  return undefined;
}

const isSqlVariable = (v: DashboardVariable): boolean => {
  const uid = typeof v.datasource === 'string' ? v.datasource : v.datasource?.uid;
  return v.type === 'query' && provisioned.some((p) => p.uid === uid && p.type === 'grafana-postgresql-datasource');
};

const sqlDashboards = shipped.filter((s) => sqlTargets(s.dashboard).length > 0);

// ---------------------------------------------------------------------------------------------
// Structure

describe('Grafana dashboards: structure', () => {
  it('ships the Prometheus dashboard and the PostgreSQL query-log dashboard', () => {
    expect(DASHBOARD_FILES).toEqual(expect.arrayContaining(['docs/grafana/sluice-dashboard.json', 'docs/grafana/sluice-query-log.json']));
    expect(sqlDashboards.map((s) => s.dashboard.uid)).toContain('sluice-query-log');
    // Dashboards are identified by uid: no two files may claim one (unless they are copies).
    const byUid = new Map<string, string>();
    for (const s of shipped) {
      const text = readFileSync(join(REPO, s.file), 'utf8');
      const other = byUid.get(s.dashboard.uid);
      if (other !== undefined) expect(text, `${s.file} and its copy`).toBe(other);
      byUid.set(s.dashboard.uid, text);
    }
  });

  it('provisions the PostgreSQL data source with the uid the dashboard uses, a read-only user and the password from the environment', () => {
    const ds = provisioned.find((p) => p.uid === 'sluice-postgres');
    expect(ds).toMatchObject({ type: 'grafana-postgresql-datasource', url: 'postgres:5432', user: 'sluice_grafana', jsonData: { database: 'sluice' } });
    expect(ds!.secureJsonData!.password).toMatch(/^\$\{?GRAFANA_POSTGRES_PASSWORD\}?$/);
    // Unique uids and names across the provisioning files.
    expect(new Set(provisioned.map((p) => p.uid)).size).toBe(provisioned.length);
    expect(new Set(provisioned.map((p) => p.name)).size).toBe(provisioned.length);
  });

  describe.each(shipped.map((s) => [s.file, s.dashboard] as const))('%s', (file, d) => {
    const panels = allPanels(d);
    const variables = d.templating?.list ?? [];
    const byName = new Map(variables.map((v) => [v.name, v]));

    /** The provisioned data source a reference resolves to: by uid, or through a data source variable. */
    function resolveDatasource(ref: { type?: string; uid?: string } | undefined): ProvisionedDatasource | undefined {
      const uid = ref?.uid;
      if (uid === undefined) return undefined;
      const m = /^\$\{?(\w+)\}?$/.exec(uid);
      if (m) {
        const v = byName.get(m[1]!);
        if (v?.type !== 'datasource') return undefined;
        return provisioned.find((p) => p.type === v.query);
      }
      return provisioned.find((p) => p.uid === uid && (ref?.type === undefined || ref.type === p.type));
    }

    it('has a uid, a title, unique panel ids and grid positions inside 24 columns', () => {
      expect(d.uid).toMatch(/^[\w-]{1,40}$/);
      expect(d.title.length).toBeGreaterThan(0);
      const ids = panels.map((p) => p.id);
      expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
      expect(new Set(ids).size, 'panel ids are unique').toBe(ids.length);
      for (const p of panels as (Panel & { gridPos: { x: number; y: number; w: number; h: number } })[]) {
        expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
        expect(p.gridPos.h, p.title).toBeGreaterThan(0);
      }
      expect(new Set(variables.map((v) => v.name)).size, 'variable names are unique').toBe(variables.length);
    });

    it('every panel and target uses a provisioned data source', () => {
      for (const p of panels.filter((p) => p.type !== 'row')) {
        expect(resolveDatasource(p.datasource), `${file}: panel ${p.id} "${p.title}" data source ${JSON.stringify(p.datasource)}`).toBeDefined();
        for (const t of p.targets ?? []) {
          if (t.datasource === undefined) continue;
          expect(resolveDatasource(t.datasource), `${file}: panel ${p.id} target ${t.refId}`).toBeDefined();
          expect(resolveDatasource(t.datasource)?.uid).toBe(resolveDatasource(p.datasource)?.uid);
        }
      }
      for (const v of variables.filter((v) => v.type === 'query')) {
        const ref = typeof v.datasource === 'string' ? { uid: v.datasource } : v.datasource;
        expect(resolveDatasource(ref), `${file}: variable ${v.name}`).toBeDefined();
      }
    });

    // The query-log dashboard is held to this; the Prometheus one predates the rule (defined for
    // SQL dashboards only, so that no test is reported skipped).
    if (sqlTargets(d).length > 0)
      it('every panel has a title, a description and a unit', () => {
        for (const p of panels.filter((p) => p.type !== 'row')) {
          expect(p.title.trim().length, `panel ${p.id}`).toBeGreaterThan(0);
          expect((p.description ?? '').trim().length, `panel ${p.id} "${p.title}" has a description`).toBeGreaterThan(10);
          if (p.type === 'table') {
            // Tables: each numeric or time column its unit (an override), or a default one.
            const units = [p.fieldConfig?.defaults?.unit, ...(p.fieldConfig?.overrides ?? []).flatMap((o) => o.properties.filter((x) => x.id === 'unit').map((x) => x.value))];
            expect(
              units.some((u) => typeof u === 'string'),
              `table ${p.id} "${p.title}" sets units`,
            ).toBe(true);
          } else {
            expect(p.fieldConfig?.defaults?.unit, `panel ${p.id} "${p.title}" has a unit`).toEqual(expect.any(String));
          }
        }
      });

    it('every variable used in a query or title is defined, and only known Grafana macros are used', () => {
      const texts = [
        ...panels.flatMap((p) => [p.title, ...(p.targets ?? []).map((t) => t.rawSql ?? t.expr ?? '')]),
        ...variables.map((v) => (typeof v.query === 'string' ? v.query : JSON.stringify(v.query ?? ''))),
      ];
      const known = new Set(variables.map((v) => v.name));
      for (const text of texts) for (const name of variablesUsed(text)) expect(known.has(name), `$${name} in ${JSON.stringify(text.slice(0, 60))}`).toBe(true);
      const MACROS = new Set([
        '__time',
        '__timeEpoch',
        '__timeFilter',
        '__timeFrom',
        '__timeTo',
        '__timeGroup',
        '__timeGroupAlias',
        '__unixEpochFilter',
        '__unixEpochFrom',
        '__unixEpochTo',
        '__unixEpochNanoFilter',
        '__unixEpochNanoFrom',
        '__unixEpochNanoTo',
        '__unixEpochGroup',
        '__unixEpochGroupAlias',
      ]);
      for (const { target } of sqlTargets(d)) for (const m of macrosUsed(target.rawSql!)) expect(MACROS.has(m), m).toBe(true);
    });

    if (sqlTargets(d).length > 0)
      it('SQL targets are raw code queries in table or time-series format; SQL variables are multi-value with an All', () => {
        for (const { panel, target } of sqlTargets(d)) {
          expect(target, `${panel.title}`).toMatchObject({ rawQuery: true, editorMode: 'code' });
          expect(['table', 'time_series']).toContain(target.format);
          expect(target.refId).toBeDefined();
        }
        for (const v of variables.filter(isSqlVariable)) {
          expect(v, v.name).toMatchObject({ multi: true, includeAll: true });
          // The All value makes `(col IN ($v) OR '__all' IN ($v))` true for every row, NULLs included.
          expect(v.allValue, v.name).toBe("'__all'");
        }
        for (const name of ['network', 'instance', 'list', 'policy']) expect(byName.get(name)?.type, name).toBe('query');
      });
  });
});

// ---------------------------------------------------------------------------------------------
// The macro expander itself, against Grafana's documented expansions

describe('Grafana macro expansion (PostgreSQL)', () => {
  const range: TimeRange = { from: Date.parse('2017-04-21T05:01:17Z'), to: Date.parse('2017-04-21T05:06:17Z') };
  const vars: GrafanaVariable[] = [
    { name: 'network', type: 'query', multi: true, includeAll: true, allValue: "'__all'" },
    { name: 'list', type: 'query', multi: true, includeAll: true },
    { name: 'client', type: 'textbox' },
  ];
  const x = (sql: string, selections: Record<string, Selection> = {}, intervalMs = 300_000) =>
    expandGrafanaSql(sql, { range, intervalMs, variables: vars, selections, options: { list: ['tiktok', "o'brien"] } });

  it('expands the time macros as Grafana does', () => {
    expect(x('$__timeFilter(time)')).toBe("time BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z'");
    expect(x('$__timeFrom() $__timeTo()')).toBe("'2017-04-21T05:01:17Z' '2017-04-21T05:06:17Z'");
    expect(x('$__timeGroupAlias(time, $__interval)')).toBe('floor(extract(epoch from time)/300)*300 AS "time"');
    expect(x("$__timeGroup(time, '1h', 0)")).toBe('floor(extract(epoch from time)/3600)*3600');
    expect(x('$__timeGroup(time, 5m), x')).toBe('floor(extract(epoch from time)/300)*300 AS "time", x');
    expect(x('$__time(t) $__timeEpoch(t)')).toBe('t AS "time" extract(epoch from t) as "time"');
    expect(x('$__unixEpochFilter(t)')).toBe('t >= 1492750877 AND t <= 1492751177');
    expect(x('$__unixEpochFrom() $__unixEpochTo()')).toBe('1492750877 1492751177');
    expect(x('$__unixEpochNanoFilter(t)')).toBe('t >= 1492750877000000000 AND t <= 1492751177000000000');
    expect(x('$__unixEpochGroupAlias(t, 1d)')).toBe('floor((t)/86400)*86400 AS "time"');
    expect(x('$__interval $__interval_ms', {}, 60_000)).toBe('1m 60000');
    expect(() => x('$__nope(time)')).toThrow(/unknown macro/);
    expect(rfc3339Nano(Date.parse('2026-11-01T10:00:00.500Z'))).toBe('2026-11-01T10:00:00.5Z');
    expect(formatInterval(86_400_000)).toBe('1d');
  });

  it('formats variables as the SQL data source does: quoted lists, raw custom All, escaped single values', () => {
    expect(x('IN ($network)', { network: ['internal', 'guest'] })).toBe("IN ('internal','guest')");
    expect(x('IN (${network})', { network: 'all' })).toBe("IN ('__all')");
    expect(x('IN ($list)', { list: 'all' })).toBe("IN ('tiktok','o''brien')");
    expect(x("'$client'", { client: ["x' OR 1=1 --"] })).toBe("'x'' OR 1=1 --'");
    expect(x('${network:csv}', { network: ['a', 'b'] })).toBe('a,b');
  });

  it("takes a panel's relative time over the dashboard range", () => {
    expect(panelRange({ from: 0, to: 200 * DAY }, { timeFrom: '182d' })).toEqual({ from: 18 * DAY, to: 200 * DAY });
    expect(panelRange({ from: 5, to: 10 }, {})).toEqual({ from: 5, to: 10 });
  });
});

// ---------------------------------------------------------------------------------------------
// Seed: a municipality's month

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be reproduced. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const APP_NAMES: Record<string, string[]> = {
  tiktok: ['www.tiktok.com', 'api16-normal-c-useast1a.tiktokv.com', 'log.tiktokv.com'],
  capcut: ['www.capcut.com', 'lv-api.capcut.com'],
  temu: ['temu.com', 'api.temu.com'],
  wechat: ['weixin.qq.com', 'long.weixin.qq.com'],
  shein: ['www.shein.com'],
  lemon8: ['www.lemon8-app.com'],
  turbovpn: ['api.turbovpn.com', 'www.turbovpn.com'],
  'doh-bypass': ['dns.google', 'mozilla.cloudflare-dns.com', 'use-application-dns.net'],
  'internal-zones': ['dc1.ad.city.example'],
};
const RULE: Record<string, string> = {
  tiktok: 'tiktokv.com',
  capcut: 'capcut.com',
  temu: 'temu.com',
  wechat: 'weixin.qq.com',
  shein: 'shein.com',
  lemon8: 'lemon8-app.com',
  turbovpn: 'turbovpn.com',
  'doh-bypass': 'dns.google',
  'internal-zones': 'ad.city.example',
};
const ALLOWED_NAMES = ['www.example.org', 'intranet.city.example', 'outlook.office365.com', 'www.gov.example', 'update.microsoft.com', 'teams.microsoft.com'];
const pseudonym = (i: number): string => `p:${(0x3f9a0c1d22e4b780n + BigInt(i) * 7919n).toString(16).padStart(16, '0')}`;

interface Device {
  network: string | null;
  client: string;
  instance: string;
  profile: string | null;
  /** The network logs only blocked (and would-block) queries. */
  blockedOnly: boolean;
  /** Apps the device still has, with the last day offset (days ago) it asks for them; 0 = still today. */
  apps: { list: string; until: number; how: 'policy' | 'profile' | 'dry-run' | 'exception' }[];
}

function devices(): Device[] {
  const out: Device[] = [];
  const internal = (i: number, apps: Device['apps']): Device => ({
    network: 'internal',
    client: `10.10.1.${i}`,
    instance: i % 3 === 0 ? 'sluice-b' : 'sluice-a',
    profile: 'staff',
    blockedOnly: false,
    apps,
  });
  out.push(internal(1, [{ list: 'tiktok', until: 0, how: 'policy' }]));
  out.push(internal(2, [{ list: 'tiktok', until: 12, how: 'policy' }])); // removed the app 12 days ago
  out.push(
    internal(3, [
      { list: 'temu', until: 0, how: 'policy' },
      { list: 'capcut', until: 3, how: 'policy' },
    ]),
  );
  out.push(internal(4, [{ list: 'wechat', until: 0, how: 'policy' }]));
  out.push(internal(5, [{ list: 'shein', until: 20, how: 'policy' }]));
  out.push(internal(6, []));
  out.push(internal(7, [{ list: 'doh-bypass', until: 0, how: 'profile' }])); // hand-configured DoH
  out.push(internal(8, [{ list: 'turbovpn', until: 0, how: 'policy' }]));
  for (let i = 9; i <= 12; i++) out.push(internal(i, []));
  out.push({
    network: 'comms',
    client: '10.10.40.5',
    instance: 'sluice-a',
    profile: 'staff',
    blockedOnly: false,
    apps: [
      { list: 'tiktok', until: 0, how: 'exception' },
      { list: 'temu', until: 5, how: 'policy' },
    ],
  });
  out.push({ network: 'comms', client: '10.10.40.6', instance: 'sluice-b', profile: 'staff', blockedOnly: false, apps: [{ list: 'tiktok', until: 0, how: 'exception' }] });
  out.push({ network: 'lab', client: '172.28.53.1', instance: 'sluice-b', profile: 'staff', blockedOnly: false, apps: [{ list: 'lemon8', until: 0, how: 'policy' }] });
  for (let i = 0; i < 6; i++) {
    out.push({
      network: 'guest',
      client: pseudonym(i),
      instance: i % 2 ? 'sluice-b' : 'sluice-a',
      profile: 'guest',
      blockedOnly: true,
      apps: i < 2 ? [{ list: 'internal-zones', until: 0, how: 'profile' }] : [],
    });
  }
  for (let i = 10; i < 15; i++) {
    out.push({ network: 'school', client: pseudonym(i), instance: 'sluice-a', profile: 'open', blockedOnly: true, apps: i < 13 ? [{ list: 'tiktok', until: 0, how: 'dry-run' }] : [] });
  }
  return out;
}

function event(rand: () => number, time: number, d: Device, over: Partial<QueryEvent>): QueryEvent {
  return {
    time,
    instance: d.instance,
    client: d.client,
    network: d.network,
    profile: d.profile,
    policy: null,
    list: null,
    rule: null,
    name: 'www.example.org',
    type: rand() < 0.7 ? 'A' : rand() < 0.5 ? 'AAAA' : 'HTTPS',
    decision: 'allowed',
    wouldBlock: false,
    exception: false,
    cache: false,
    upstream: null,
    rcode: 0,
    answers: 0,
    durationMs: Math.round(rand() * 4000) / 100,
    transport: rand() < 0.95 ? 'udp' : 'tcp',
    ...over,
  };
}

/**
 * Events of the last `days` days before `now` (newest day offset 0), plus, for the trend and the
 * devices beyond retention, a few blocked queries of two devices 40 to 170 days ago.
 */
function seedEvents(now: number, days: number): QueryEvent[] {
  const rand = prng(20261101);
  const events: QueryEvent[] = [];
  const at = (dayOffset: number): number => now - dayOffset * DAY - Math.floor(60_000 + rand() * (DAY - 120_000));
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  for (const d of devices()) {
    for (let day = 0; day < days; day++) {
      if (!d.blockedOnly) {
        const n = 4 + Math.floor(rand() * 8);
        for (let k = 0; k < n; k++) {
          const cache = rand() < 0.4;
          const error = rand() < 0.02;
          events.push(
            event(rand, at(day), d, {
              name: pick(ALLOWED_NAMES),
              cache,
              upstream: cache || error ? null : pick(['10.0.0.53', '10.0.1.53']),
              decision: error ? 'error' : 'allowed',
              rcode: error ? 2 : 0,
              answers: error ? 0 : 1 + Math.floor(rand() * 3),
            }),
          );
        }
      }
      for (const app of d.apps) {
        if (day < app.until) continue;
        const n = 1 + Math.floor(rand() * 4);
        for (let k = 0; k < n; k++) {
          const name = pick(APP_NAMES[app.list]!);
          const rule = RULE[app.list]!;
          if (app.how === 'policy') events.push(event(rand, at(day), d, { name, decision: 'blocked', policy: 'app-ban', list: app.list, rule, rcode: 3 }));
          else if (app.how === 'profile') events.push(event(rand, at(day), d, { name, decision: 'blocked', list: app.list, rule, rcode: 3 }));
          else if (app.how === 'dry-run') events.push(event(rand, at(day), d, { name, policy: 'school-pilot', list: app.list, rule, wouldBlock: true, upstream: '10.0.0.53', answers: 2 }));
          else if (!d.blockedOnly) events.push(event(rand, at(day), d, { name, policy: 'app-ban', exception: true, upstream: '10.0.0.53', answers: 2 }));
        }
      }
    }
  }
  // A device in no network: refused, logged with its address.
  const stray: Device = { network: null, client: '203.0.113.7', instance: 'sluice-a', profile: null, blockedOnly: false, apps: [] };
  for (let day = 0; day < days; day += 2) events.push(event(rand, at(day), stray, { profile: null, name: 'www.example.org', decision: 'refused', rcode: 5 }));
  // Older than the raw retention: kept only in the daily rollup.
  const oldTiktok = devices()[0]!;
  const gone: Device = { ...devices()[8]!, client: '10.10.1.99' }; // a device replaced three months ago
  for (let day = 40; day <= 170; day += 3)
    events.push(event(rand, at(day), oldTiktok, { name: 'www.tiktok.com', decision: 'blocked', policy: 'app-ban', list: 'tiktok', rule: 'tiktokv.com', rcode: 3 }));
  for (let day = 95; day <= 110; day++) events.push(event(rand, at(day), gone, { name: 'www.capcut.com', decision: 'blocked', policy: 'app-ban', list: 'capcut', rule: 'capcut.com', rcode: 3 }));
  return events.sort((a, b) => a.time - b.time);
}

/** The rollup decision: allowed events a dry-run would block are counted apart. */
const rollupDecision = (e: QueryEvent): string => (e.decision === 'allowed' && e.wouldBlock ? 'would-block' : e.decision);

/**
 * Write the events as the resolvers would have: one PostgresStore per instance, fed day by day on
 * a clock that moves with the events (the store writes nothing older than its raw retention, so
 * the older days are written while they were recent), drops noted on the day they happened; then
 * the clock reaches `now` and retention runs, deleting the raw events of the older days and
 * keeping their rollup.
 */
async function writeThroughStores(url: string, events: QueryEvent[], drops: { time: number; instance: string; count: number }[], now: number, retentionDays: number): Promise<void> {
  let clock = events[0]!.time;
  const warnings: string[] = [];
  const instances = [...new Set(events.map((e) => e.instance))].sort();
  const stores = new Map<string, PostgresStore>();
  for (const instance of instances) {
    stores.set(
      instance,
      await PostgresStore.open(url, { instance, retentionDays, rollupRetentionDays: 400, spillEvents: 100_000, now: () => clock, warn: (m, f) => warnings.push(`${m} ${JSON.stringify(f ?? {})}`) }),
    );
  }
  try {
    const byDay = new Map<string, QueryEvent[]>();
    for (const e of events) byDay.set(utcDay(e.time), [...(byDay.get(utcDay(e.time)) ?? []), e]);
    for (const [, dayEvents] of [...byDay].sort(([a], [b]) => a.localeCompare(b))) {
      clock = Math.max(...dayEvents.map((e) => e.time)) + 1000;
      for (const d of drops.filter((d) => utcDay(d.time) === utcDay(clock))) stores.get(d.instance)!.noteDropped(d.count, d.time);
      for (const [instance, store] of stores) {
        const mine = dayEvents.filter((e) => e.instance === instance);
        if (mine.length > 0) expect(store.write(mine)).toBe(true);
      }
      for (const store of stores.values()) await store.flush();
    }
    clock = now;
    for (const store of stores.values()) {
      await store.flush();
      await store.enforceRetention(now);
      expect(store.health()).toMatchObject({ ok: true, refused: 0, pending: 0 });
    }
    expect(warnings).toEqual([]);
  } finally {
    for (const store of stores.values()) await store.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The dashboards' SQL against PostgreSQL

/** The read-only role's grants, as docs/grafana/README.md gives them (the block marked grafana-grants). */
function documentedGrants(role: string, database: string): string[] {
  const doc = readFileSync(join(REPO, 'docs/grafana/README.md'), 'utf8');
  const block = /```sql\n(-- grafana-grants[^\n]*\n[\s\S]*?)```/.exec(doc);
  if (!block) throw new Error('docs/grafana/README.md has no ```sql block starting with "-- grafana-grants"');
  return block[1]!
    .split('\n')
    .filter((l) => !l.trim().startsWith('--'))
    .join('\n')
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) =>
      s
        .replaceAll('sluice_grafana', role)
        .replace(/DATABASE sluice\b/, `DATABASE ${database}`)
        .replace(/PASSWORD '[^']*'/, ''),
    );
}

describe.runIf(sqlDashboards.length > 0)('Grafana dashboards: every SQL query against PostgreSQL', () => {
  const NOW = Math.floor(Date.now() / 60_000) * 60_000;
  const RANGE: TimeRange = { from: NOW - 30 * DAY, to: NOW };
  const INTERVAL = 3_600_000; // what Grafana picks for 30 days on a wide panel
  const RETENTION_DAYS = 30;
  const events = seedEvents(NOW, 30);
  const raw = events.filter((e) => e.time >= Date.parse(`${utcDay(NOW - (RETENTION_DAYS - 1) * DAY)}T00:00:00Z`));
  const DROPS = [
    { time: NOW - 3 * DAY, instance: 'sluice-b', count: 1200 },
    { time: NOW - DAY, instance: 'sluice-a', count: 34 },
  ];
  const role = `sluice_test_grafana_${randomBytes(5).toString('hex')}`;
  let db: TestDatabase;
  let owner: pg.Client;
  let reader: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    owner = new pg.Client({ connectionString: db.url });
    await owner.connect();
    await writeThroughStores(db.url, events, DROPS, NOW, RETENTION_DAYS);
    // Grafana's role: only what the documentation grants.
    for (const sql of documentedGrants(role, db.name)) await owner.query(sql);
    // Grafana's sessions get the server's TimeZone: the panels must count UTC days whatever it is.
    await owner.query(`ALTER DATABASE ${db.name} SET TimeZone = 'Pacific/Chatham'`);
    const u = new URL(db.url);
    u.username = role;
    u.password = '';
    reader = new pg.Client({ connectionString: u.toString() });
    await reader.connect();
  });

  afterAll(async () => {
    await reader?.end().catch(() => undefined);
    await owner?.end().catch(() => undefined);
    await db?.drop();
    const admin = new pg.Client({ connectionString: pgAdminUrl() });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`).finally(() => admin.end());
  });

  it('seeded a realistic month: several networks, clients, apps, policies, decisions, two instances', () => {
    expect(new Set(raw.map((e) => e.network))).toEqual(new Set(['internal', 'comms', 'lab', 'guest', 'school', null]));
    expect(new Set(raw.map((e) => e.instance))).toEqual(new Set(['sluice-a', 'sluice-b']));
    expect(new Set(raw.map(rollupDecision))).toEqual(new Set(['allowed', 'blocked', 'would-block', 'refused', 'error']));
    expect(new Set(raw.map((e) => e.list).filter((l) => l !== null)).size).toBeGreaterThanOrEqual(8);
    expect(new Set(raw.map((e) => e.client)).size).toBeGreaterThan(20);
    expect(raw.length).toBeGreaterThan(3000);
    expect(events.length - raw.length).toBeGreaterThan(50); // older than the retention: rollup only
  });

  it('the Grafana role can read the query-log tables and nothing else, and cannot write', async () => {
    expect((await reader.query('SHOW TimeZone')).rows[0].TimeZone).toBe('Pacific/Chatham');
    expect((await reader.query('SELECT count(*)::int AS n FROM query_events')).rows[0].n).toBe(raw.length);
    await expect(reader.query('SELECT * FROM query_erasures')).rejects.toThrow(/permission denied/);
    await expect(reader.query('SELECT * FROM query_writers')).rejects.toThrow(/permission denied/);
    await expect(reader.query("DELETE FROM query_events WHERE client = '10.10.1.1'")).rejects.toThrow(/permission denied|read-only/);
    await expect(reader.query('CREATE TABLE grafana_was_here (x int)')).rejects.toThrow(/permission denied|read-only/);
  });

  for (const { file, dashboard } of sqlDashboards) {
    const variables = dashboard.templating.list;

    /** Options of every variable: run the SQL ones, split the custom ones. */
    async function variableOptions(range: TimeRange): Promise<Record<string, string[]>> {
      const out: Record<string, string[]> = {};
      for (const v of variables) {
        if (v.type === 'custom')
          out[v.name] = String(v.query)
            .split(',')
            .map((s) => s.trim());
        const sql = variableSql(v);
        if (sql === undefined || !isSqlVariable(v)) continue;
        const expanded = expandGrafanaSql(sql, { range, intervalMs: INTERVAL, variables, options: out });
        const r = await reader.query({ text: expanded, rowMode: 'array' });
        out[v.name] = r.rows.map((row: unknown[]) => String(row[0]));
      }
      return out;
    }

    async function run(panelTitle: string, selections: Record<string, Selection> = {}, range = RANGE): Promise<Record<string, unknown>[][]> {
      const panel = allPanels(dashboard).find((p) => p.title === panelTitle);
      if (!panel) throw new Error(`${file}: no panel "${panelTitle}"`);
      const r = panelRange(range, panel);
      const options = await variableOptions(r);
      const results: Record<string, unknown>[][] = [];
      for (const t of panel.targets ?? []) {
        const o: ExpandOptions = { range: r, intervalMs: INTERVAL, variables, selections, options };
        results.push((await reader.query(expandGrafanaSql(t.rawSql!, o))).rows as Record<string, unknown>[]);
      }
      return results;
    }
    const rows = async (title: string, selections?: Record<string, Selection>, range?: TimeRange) => (await run(title, selections, range))[0]!;

    describe(file, () => {
      it('every variable query runs and offers what was seeded', async () => {
        const options = await variableOptions(RANGE);
        for (const v of variables.filter(isSqlVariable)) expect(options[v.name]!.length, `variable ${v.name}`).toBeGreaterThan(0);
        expect(options.instance).toEqual(['sluice-a', 'sluice-b']);
        expect(options.network).toEqual(['comms', 'guest', 'internal', 'lab', 'school']);
        expect(options.list).toEqual(expect.arrayContaining(['tiktok', 'temu', 'capcut', 'doh-bypass', 'turbovpn']));
        expect(options.policy).toEqual(['app-ban', 'school-pilot']);
      });

      const targets = sqlTargets(dashboard);
      it.each(targets.map(({ panel, target }) => [`${panel.id} ${panel.title} (${target.refId})`, panel, target] as const))(
        'panel %s runs with every filter on All and returns rows',
        async (_name, panel, target) => {
          const r = panelRange(RANGE, panel);
          const sql = expandGrafanaSql(target.rawSql!, { range: r, intervalMs: INTERVAL, variables, options: await variableOptions(r) });
          expect(sql).not.toMatch(/\$\w|\[\[/); // nothing left unexpanded
          const res = await reader.query(sql);
          expect(res.rows.length, sql).toBeGreaterThan(0);
          if (target.format === 'time_series') {
            // Grafana needs a time column, ascending.
            expect(res.fields.map((f) => f.name)).toContain('time');
            const times = res.rows.map((row: { time: unknown }) => (row.time instanceof Date ? row.time.getTime() : Number(row.time)));
            expect([...times].sort((a, b) => a - b)).toEqual(times);
          }
        },
      );

      it.each(targets.map(({ panel, target }) => [`${panel.id} ${panel.title} (${target.refId})`, panel, target] as const))(
        'panel %s runs with one value picked in every filter, and with a quote in the text boxes',
        async (_name, panel, target) => {
          const r = panelRange(RANGE, panel);
          const options = await variableOptions(r);
          for (const selections of [
            { instance: ['sluice-a'], network: ['internal'], list: ['tiktok'], policy: ['app-ban'], decision: ['blocked'], client: ['10.10.1.1'], domain: ['tiktok.com'] },
            {
              instance: ['sluice-a', 'sluice-b'],
              network: ['school', 'guest'],
              list: ['tiktok', 'doh-bypass'],
              policy: ['school-pilot'],
              decision: ['would-block', 'refused'],
              client: [''],
              domain: [''],
            },
            { client: ["x' OR '1'='1"], domain: ["'; DROP TABLE query_events; --"] },
          ] as Record<string, Selection>[]) {
            await reader.query(expandGrafanaSql(target.rawSql!, { range: r, intervalMs: INTERVAL, variables, selections, options }));
          }
        },
      );

      const inRange = (e: QueryEvent, r = RANGE) => e.time >= r.from && e.time <= r.to;
      const count = <K extends string>(xs: QueryEvent[], key: (e: QueryEvent) => K): Record<K, number> => {
        const out = {} as Record<K, number>;
        for (const e of xs) out[key(e)] = (out[key(e)] ?? 0) + 1;
        return out;
      };

      it('totals, blocked per app and per network/policy/app equal what was seeded', async () => {
        const r = raw.filter((e) => inRange(e));
        const [totals] = await rows('Totals in the time range');
        expect(Number(totals!['Queries'])).toBe(r.length);
        expect(Number(totals!['Blocked'])).toBe(r.filter((e) => e.decision === 'blocked').length);
        expect(Number(totals!['Would block (dry-run)'])).toBe(r.filter((e) => e.wouldBlock).length);
        expect(Number(totals!['Refused'])).toBe(r.filter((e) => e.decision === 'refused').length);
        expect(Number(totals!['Devices blocked by a policy'])).toBe(new Set(r.filter((e) => e.decision === 'blocked' && e.policy !== null).map((e) => e.client)).size);

        const blocked = r.filter((e) => e.decision === 'blocked' && e.list !== null);
        const perApp = Object.fromEntries((await rows('Blocked queries per app')).map((x) => [x['App'], Number(x['Blocked'])]));
        expect(perApp).toEqual(count(blocked, (e) => e.list!));
        // One app and one network picked.
        const tiktokInternal = Object.fromEntries((await rows('Blocked queries per app', { list: ['tiktok'], network: ['internal'] })).map((x) => [x['App'], Number(x['Blocked'])]));
        expect(tiktokInternal).toEqual({ tiktok: blocked.filter((e) => e.list === 'tiktok' && e.network === 'internal').length });

        const table = await rows('Blocked per network, policy and app');
        const seeded = count(blocked, (e) => `${e.network ?? '(no network)'}|${e.policy ?? '(profile)'}|${e.list}`);
        expect(Object.fromEntries(table.map((x) => [`${x['Network']}|${x['Policy']}|${x['App']}`, Number(x['Blocked'])]))).toEqual(seeded);
        expect(table.find((x) => x['App'] === 'doh-bypass')?.['Policy']).toBe('(profile)');

        const [ratio] = await rows('Block ratio');
        expect(Number(ratio!['Block ratio'])).toBeCloseTo(r.filter((e) => e.decision === 'blocked').length / r.length, 6);
      });

      it('the time series add up to the totals, one series per network', async () => {
        const series = await rows('Queries by network');
        const sum = count(
          raw.filter((e) => inRange(e)),
          (e) => e.network ?? '(no network)',
        );
        const got: Record<string, number> = {};
        for (const x of series) got[String(x['metric'])] = (got[String(x['metric'])] ?? 0) + Number(x['queries']);
        expect(got).toEqual(sum);
        // Buckets of $__interval (1h) aligned on the epoch.
        expect(series.every((x) => Number(x['time']) % 3600 === 0)).toBe(true);
      });

      it('devices per banned app come from the rollup: first and last seen, beyond the raw retention', async () => {
        const long: TimeRange = { from: NOW - 180 * DAY, to: NOW };
        const table = await rows('Devices per banned app, first and last seen', {}, long);
        const fromDay = utcDay(long.from);
        const toDay = utcDay(long.to);
        const want = new Map<string, { count: number; first: number; last: number }>();
        for (const e of events) {
          if (e.decision !== 'blocked' || e.policy === null || e.list === null) continue;
          if (utcDay(e.time) < fromDay || utcDay(e.time) > toDay) continue;
          const k = `${e.network}|${e.client}|${e.policy}|${e.list}`;
          const w = want.get(k);
          if (!w) want.set(k, { count: 1, first: e.time, last: e.time });
          else {
            w.count++;
            w.first = Math.min(w.first, e.time);
            w.last = Math.max(w.last, e.time);
          }
        }
        const got = new Map(
          table.map((x) => [
            `${x['Network']}|${x['Device']}|${x['Policy']}|${x['App']}`,
            { count: Number(x['Blocked queries']), first: (x['First seen'] as Date).getTime(), last: (x['Last seen'] as Date).getTime() },
          ]),
        );
        expect(got).toEqual(want);
        // The device replaced three months ago: only in the rollup, not in the raw events.
        expect(got.get('internal|10.10.1.99|app-ban|capcut')?.count).toBe(16);
        expect(raw.some((e) => e.client === '10.10.1.99')).toBe(false);
        // Not counted: profile blocks (doh-bypass), dry-run would-blocks (school), exceptions (comms tiktok).
        expect(table.some((x) => x['App'] === 'doh-bypass' || x['Network'] === 'school' || (x['Network'] === 'comms' && x['App'] === 'tiktok'))).toBe(false);
        // Newest last seen first; the device that removed TikTok 12 days ago is not seen in the last 7.
        const lasts = table.map((x) => (x['Last seen'] as Date).getTime());
        expect([...lasts].sort((a, b) => b - a)).toEqual(lasts);
        expect(table.find((x) => x['Device'] === '10.10.1.2')?.['Seen in the last 7 days']).toBe('no');
        expect(table.find((x) => x['Device'] === '10.10.1.1')?.['Seen in the last 7 days']).toBe('yes');

        const perApp = Object.fromEntries((await rows('Devices per banned app', {}, long)).map((x) => [x['App'], Number(x['Devices'])]));
        expect(perApp['tiktok']).toBe(2); // 10.10.1.1 and 10.10.1.2; the comms devices are excepted
        expect(perApp['capcut']).toBe(2); // 10.10.1.3, and 10.10.1.99 (rollup only)
      });

      it('bypass attempts per device: DoH endpoints and VPN apps', async () => {
        const table = await rows('Bypass attempts per device (DoH endpoints, VPN apps)');
        const r = raw.filter((e) => inRange(e) && (e.list === 'doh-bypass' || e.list === 'turbovpn'));
        expect(Object.fromEntries(table.map((x) => [`${x['Device']}|${x['List']}`, Number(x['Attempts'])]))).toEqual(count(r, (e) => `${e.client}|${e.list}`));
        const doh = table.find((x) => x['Device'] === '10.10.1.7')!;
        expect(doh['List']).toBe('doh-bypass');
        expect(String(doh['Endpoints (first 5)'])).toMatch(/dns\.google/);
      });

      it('top blocked names, and what dry-run policies would block', async () => {
        const top = await rows('Top blocked names');
        expect(top.length).toBeLessThanOrEqual(25);
        const names = count(
          raw.filter((e) => inRange(e) && e.decision === 'blocked'),
          (e) => e.name,
        );
        expect(Number(top[0]!['Blocked'])).toBe(Math.max(...Object.values<number>(names)));
        const would = await rows('Would block: what dry-run policies would change');
        expect(would.map((x) => `${x['Policy']}|${x['Network']}|${x['App']}`)).toEqual(['school-pilot|school|tiktok']);
        expect(Number(would[0]!['Devices'])).toBe(3);
      });

      it('the query log: newest first, at most 500, filters by network, client, domain and decision', async () => {
        const all = await rows('Query log (newest 500)');
        expect(all).toHaveLength(500);
        const times = all.map((x) => (x['Time'] as Date).getTime());
        expect(times[0]).toBe(Math.max(...raw.filter((e) => inRange(e)).map((e) => e.time)));
        expect([...times].sort((a, b) => b - a)).toEqual(times);

        const filtered = await rows('Query log (newest 500)', { network: ['internal'], client: ['10.10.1.1'], domain: ['tiktokv.com'], decision: ['blocked'] });
        const want = raw.filter((e) => inRange(e) && e.client === '10.10.1.1' && e.decision === 'blocked' && (e.name === 'tiktokv.com' || e.name.endsWith('.tiktokv.com')));
        expect(want.length).toBeGreaterThan(0);
        expect(filtered).toHaveLength(want.length);
        expect(filtered.every((x) => String(x['Name']).endsWith('.tiktokv.com') && x['Decision'] === 'blocked')).toBe(true);
        // A domain is the name and its subdomains, not names that merely end the same way.
        expect(await rows('Query log (newest 500)', { domain: ['iktokv.com'] })).toHaveLength(0);
        // would-block is a decision of its own in the filter.
        const dry = await rows('Query log (newest 500)', { decision: ['would-block'] });
        expect(dry.length).toBe(Math.min(500, raw.filter((e) => inRange(e) && e.wouldBlock).length));
        expect(dry.every((x) => x['Decision'] === 'would-block' && x['Policy'] === 'school-pilot')).toBe(true);
        // Refused clients (in no network) are there when the network filter is All.
        expect((await rows('Query log (newest 500)', { decision: ['refused'] })).every((x) => x['Network'] === null)).toBe(true);
        // A quote in a text box is data, not SQL.
        expect(await rows('Query log (newest 500)', { client: ["x' OR '1'='1"] })).toHaveLength(0);
      });

      it('six-month weekly trend from the rollup, and dropped events', async () => {
        const trend = await rows('Blocked per app per week (six months)');
        const panel = allPanels(dashboard).find((p) => p.title === 'Blocked per app per week (six months)')!;
        const r = panelRange(RANGE, panel);
        const want = count(
          events.filter((e) => e.decision === 'blocked' && e.list !== null && utcDay(e.time) >= utcDay(r.from) && utcDay(e.time) <= utcDay(r.to)),
          (e) => e.list!,
        );
        const got: Record<string, number> = {};
        for (const x of trend) got[String(x['metric'])] = (got[String(x['metric'])] ?? 0) + Number(x['blocked']);
        expect(got).toEqual(want);
        // Weeks start on Monday (UTC), and the trend reaches months back past the raw retention.
        expect(trend.every((x) => (x['time'] as Date).getUTCDay() === 1 && (x['time'] as Date).getUTCHours() === 0)).toBe(true);
        expect(Math.min(...trend.map((x) => (x['time'] as Date).getTime()))).toBeLessThan(NOW - 150 * DAY);

        const [dropped] = await rows('Events dropped');
        expect(Number(dropped!['Dropped events'])).toBe(1234);
        expect(Number((await rows('Events dropped', { instance: ['sluice-b'] }))[0]!['Dropped events'])).toBe(1200);
        const perDay = await rows('Events dropped per day');
        expect(perDay.map((x) => [x['metric'], Number(x['dropped'])])).toEqual([
          ['sluice-b', 1200],
          ['sluice-a', 34],
        ]);
        const resolvers = await rows('Resolvers writing to this database');
        expect(resolvers.map((x) => x['Instance'])).toEqual(['sluice-a', 'sluice-b']);
        expect((resolvers[0]!['Raw events held since'] as Date).toISOString()).toBe(`${utcDay(NOW - (RETENTION_DAYS - 1) * DAY)}T00:00:00.000Z`);
      });
    });
  }
});
