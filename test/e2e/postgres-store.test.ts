// The PostgreSQL query-log store against a real server: every test gets its own database
// (createTestDatabase), the outage and spool tests a private cluster they stop and start.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from '../../src/querylog/store/sqlite-driver.js';
import { Command } from 'commander';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import YAML from 'yaml';
import { registerLogMigrate } from '../../src/cli/log-migrate.js';
import type { QueryEvent } from '../../src/querylog/event.js';
import { matches, type QueryFilter } from '../../src/querylog/filter.js';
import { bypassReport, devicesReport, trendReport } from '../../src/querylog/reports.js';
import { summarize } from '../../src/querylog/summary.js';
import { ensureDayPartitions, listDayPartitions, migratePostgres, SCHEMA_VERSION } from '../../src/querylog/store/postgres-schema.js';
import { PostgresStore, type PostgresStoreOptions } from '../../src/querylog/store/postgres-store.js';
import { postgresUrl } from '../../src/querylog/store/postgres-url.js';
import { DAY_MS, utcDay, type TrendOptions } from '../../src/querylog/store/store.js';
import { createTestDatabase, startPrivatePostgres, type PrivatePostgres, type TestDatabase } from '../helpers/postgres.js';
import { until as untilDone } from '../helpers/until.js';

const T0 = Date.parse('2026-11-25T12:00:00Z');

function event(over: Partial<QueryEvent> = {}): QueryEvent {
  return {
    time: T0,
    instance: 'a',
    client: '10.1.2.3',
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
    durationMs: 1.5,
    transport: 'udp',
    ...over,
  };
}

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Mixed traffic over `days` days before T0: blocks by policy and profile, dry-runs, bypass names, refused clients. */
function traffic(n: number, seed = 1, days = 3, instance = 'a'): QueryEvent[] {
  const r = rng(seed);
  const out: QueryEvent[] = [];
  const start = T0 - days * DAY_MS;
  const step = Math.floor((days * DAY_MS) / n);
  const networks = ['internal', 'guest', 'comms'];
  const clients = ['10.1.2.3', '10.1.2.4', '10.1.2.5', 'p:3f9a0c1d22e4b780', '192.168.100.7', 'fe80::1'];
  const blocked: [string, string, string | null][] = [
    ['www.tiktok.com', 'tiktok', 'app-ban'],
    ['log.tiktokv.com', 'tiktok', 'app-ban'],
    ['temu.com', 'temu', 'app-ban'],
    ['ads.example', 'ads', null],
    ['dns.google', 'doh-bypass', null],
    ['turbovpn.com', 'turbovpn', 'app-ban'],
  ];
  const allowed = ['example.org', 'www.example.org', 'nottiktok.com', 'mask.icloud.com', 'dns.quad9.net', 'api.turbovpn.co', 'intranet.local'];
  for (let i = 0; i < n; i++) {
    const time = start + i * step + Math.floor(r() * (step - 1));
    const network = pick(r, networks);
    const client = pick(r, clients);
    const roll = r();
    let e: QueryEvent;
    if (roll < 0.3) {
      const [name, list, policy] = pick(r, blocked);
      e = event({ time, instance, client, network, policy, list, rule: name.split('.').slice(-2).join('.'), name, decision: 'blocked', upstream: null, rcode: 3, answers: 0, durationMs: 0.25 });
    } else if (roll < 0.38) {
      e = event({ time, instance, client, network, policy: 'dry', list: 'temu', rule: 'temu.com', name: 'www.temu.com', wouldBlock: true, cache: r() < 0.5, durationMs: pick(r, [2, 4.5, 8]) });
    } else if (roll < 0.42) {
      e = event({ time, instance, client: `10.9.9.${Math.floor(r() * 4)}`, network: null, profile: null, name: pick(r, allowed), decision: 'refused', upstream: null, rcode: 5, answers: 0 });
    } else if (roll < 0.44) {
      e = event({ time, instance, client, network, name: pick(r, allowed), decision: pick(r, ['error', 'malformed'] as const), upstream: null, rcode: 2, answers: 0 });
    } else if (roll < 0.47) {
      e = event({ time, instance, client, network, policy: 'app-ban', exception: true, name: 'www.tiktok.com', upstream: '192.0.2.54:53' });
    } else {
      const cache = r() < 0.4;
      e = event({
        time,
        instance,
        client,
        network,
        name: pick(r, allowed),
        type: pick(r, ['A', 'AAAA', 'HTTPS']),
        cache,
        upstream: cache ? null : pick(r, ['192.0.2.53:53', '192.0.2.54:53']),
        durationMs: cache ? 0.125 : pick(r, [0.5, 1.25, 3, 7.75, 12.5, 40]),
        transport: r() < 0.1 ? 'tcp' : 'udp',
      });
    }
    out.push(e);
  }
  return out;
}

function options(over: Partial<PostgresStoreOptions> = {}): PostgresStoreOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    instance: 'a',
    retentionDays: 30,
    rollupRetentionDays: 400,
    spillEvents: 100_000,
    now: () => T0,
    warn: (m) => warnings.push(m),
    warnings,
    ...over,
  };
}

/** A condition that becomes true through the store's own progress, polled on its events' results. */
const until = (what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 60_000) => untilDone(what, ok, timeoutMs, 20);

async function sql<T extends pg.QueryResultRow = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

describe('PostgreSQL store', () => {
  let db: TestDatabase;
  const stores: PostgresStore[] = [];
  const open = async (o: PostgresStoreOptions, url = db.url) => {
    const s = await PostgresStore.open(url, o);
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    await sql(db.url, 'DROP SCHEMA public CASCADE; CREATE SCHEMA public');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('migrations run twice, and concurrently, leave one schema at the latest version', async () => {
    const clients = await Promise.all(
      [0, 1, 2].map(async () => {
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        return c;
      }),
    );
    try {
      expect(await Promise.all(clients.map((c) => migratePostgres(c)))).toEqual([SCHEMA_VERSION, SCHEMA_VERSION, SCHEMA_VERSION]);
      expect(await migratePostgres(clients[0]!)).toBe(SCHEMA_VERSION);
      const rows = await sql<{ version: number }>(db.url, 'SELECT version FROM sluice_schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      const tables = await sql<{ t: string }>(db.url, `SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'query_%' ORDER BY 1`);
      expect(tables.map((r) => r.t)).toEqual(expect.arrayContaining(['query_drops', 'query_erasures', 'query_events', 'query_instances', 'query_retention', 'query_rollup_daily']));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('two writers creating the same day partitions at once both succeed', async () => {
    const a = new pg.Client({ connectionString: db.url });
    const b = new pg.Client({ connectionString: db.url });
    await Promise.all([a.connect(), b.connect()]);
    try {
      await migratePostgres(a);
      const days = Array.from({ length: 10 }, (_, i) => utcDay(T0 + i * DAY_MS));
      await Promise.all([ensureDayPartitions(a, days), ensureDayPartitions(b, [...days].reverse()), ensureDayPartitions(a, days.slice(3))]);
      expect(await listDayPartitions(a)).toEqual(days);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
    // And two stores whose first batches fall on days without a partition.
    const [s1, s2] = await Promise.all([open(options({ instance: 'a' })), open(options({ instance: 'b' }))]);
    const later = T0 + 40 * DAY_MS;
    expect(s1.write([event({ time: later, instance: 'a' }), event({ time: later + DAY_MS, instance: 'a' })])).toBe(true);
    expect(s2.write([event({ time: later + 1, instance: 'b' }), event({ time: later + DAY_MS + 1, instance: 'b' })])).toBe(true);
    await Promise.all([s1.flush(), s2.flush()]);
    expect((await s1.query({}, 10)).total).toBe(4);
    expect(s1.health()).toMatchObject({ ok: true, failures: 0, written: 2 });
  });

  it('writes and reads back every field of an event', async () => {
    const store = await open(options());
    const events = [
      event({ time: T0 - 3000 }),
      event({
        time: T0 - 2000,
        instance: 'dns2',
        client: 'p:3f9a0c1d22e4b780',
        network: 'guest',
        profile: 'open',
        policy: 'app-ban',
        list: 'tiktok',
        rule: 'tiktok.com',
        name: 'www.tiktok.com',
        type: 'HTTPS',
        decision: 'blocked',
        wouldBlock: false,
        exception: false,
        cache: false,
        upstream: null,
        rcode: 3,
        answers: 0,
        durationMs: 0.05,
        transport: 'tcp',
      }),
      event({
        time: T0 - 1000,
        client: '2001:db8::1',
        network: null,
        profile: null,
        name: 'odd\tname\nwith\\escapes.ünïcode.example',
        decision: 'refused',
        rcode: null,
        upstream: null,
        wouldBlock: true,
        exception: true,
        cache: true,
        answers: 12,
        durationMs: 1234.5,
      }),
      event({ time: T0, name: 'null.byte\u0000.example', decision: 'malformed', rcode: 1 }),
    ];
    expect(store.write(events)).toBe(true);
    await store.flush();
    const back = await store.events({});
    expect(back.slice(0, 3)).toEqual(events.slice(0, 3));
    expect(back[3]).toEqual({ ...events[3], name: 'null.byte\uFFFD.example' });
    const page = await store.query({}, 2, 1);
    expect(page.total).toBe(4);
    expect(page.events.map((e) => e.time)).toEqual([T0 - 1000, T0 - 2000]);
    expect(store.health()).toMatchObject({ kind: 'postgres', ok: true, written: 4, failures: 0, pending: 0, refused: 0, lastError: null });
    // The rollup counts the same events, with '' for absent values and would-block as its own decision.
    const rollup = await sql<{ decision: string; count: string; network: string }>(db.url, 'SELECT decision, network, count FROM query_rollup_daily ORDER BY decision, network');
    expect(rollup).toEqual([
      { decision: 'allowed', network: 'internal', count: '1' },
      { decision: 'blocked', network: 'guest', count: '1' },
      { decision: 'malformed', network: 'internal', count: '1' },
      { decision: 'refused', network: '', count: '1' },
    ]);
  });

  it('keeps what waits beyond the first 10,000 events as binary batches, and writes every event back whole and in order', async () => {
    const store = await open(options());
    const transports = ['udp', 'tcp', 'dot', 'doh'] as const;
    const events = traffic(30_000, 5).map((e, i) => ({ ...e, transport: transports[i % 4]! }));
    // All handed in before the writer loop runs: 30,000 wait at once.
    for (let i = 0; i < events.length; i += 256) expect(store.write(events.slice(i, i + 256))).toBe(true);
    const waiting = (store as unknown as { memory: unknown[] }).memory;
    expect(waiting.filter((b) => b instanceof ArrayBuffer).length).toBe(Math.ceil(30_000 / 256) - Math.ceil(10_000 / 256));
    expect(store.health().pending).toBe(30_000);
    await store.flush();
    expect(store.health()).toMatchObject({ written: 30_000, pending: 0, refused: 0 });
    expect(await store.events({})).toEqual(events);
  });

  it('answers reports, summaries and filters with the same rows as the pure functions', async () => {
    const store = await open(options());
    const events = traffic(3000, 7);
    for (let i = 0; i < events.length; i += 256) expect(store.write(events.slice(i, i + 256))).toBe(true);
    await store.flush();
    const mid = T0 - 1.5 * DAY_MS;

    for (const o of [{}, { policy: 'app-ban' }, { network: 'guest' }, { since: mid }, { since: T0 - 2 * DAY_MS, until: mid, policy: 'app-ban', network: 'internal' }, { policy: 'none' }]) {
      expect(await store.devices(o), JSON.stringify(o)).toEqual(devicesReport(events, o));
    }
    const classify = (name: string) => (name === 'mask.icloud.com' || name === 'dns.quad9.net' ? 'doh-bypass' : name.endsWith('turbovpn.co') ? 'turbovpn' : undefined);
    for (const o of [{}, { classify }, { network: 'internal', classify }, { since: mid, until: T0 }, { lists: ['temu', 'tiktok'] }, { lists: [] }]) {
      expect(await store.bypass(o)).toEqual(bypassReport(events, o));
    }
    const filters: QueryFilter[] = [
      {},
      { since: mid },
      { since: T0 - 2 * DAY_MS, until: T0 - DAY_MS },
      { since: T0 - 20 * 60_000, until: T0 },
      { network: 'guest' },
      { decision: 'blocked' },
      { decision: 'would-block' },
      { domain: 'tiktok.com' },
      { domain: 'TikTok.com.' },
      { client: '10.1.2.3', since: mid },
      { policy: 'app-ban', list: 'tiktok' },
      { instance: 'b' },
    ];
    for (const f of filters) {
      const label = JSON.stringify(f);
      expect(await store.summary(f, { now: T0 + 1000 }), label).toEqual(summarize(events, f, { now: T0 + 1000 }));
      expect(await store.summary(f, { now: T0, top: 3 }), label).toEqual(summarize(events, f, { now: T0, top: 3 }));
      const want = events.filter((e) => matches(e, f));
      expect(await store.events(f), label).toEqual(want);
      const page = await store.query(f, 25, 10);
      expect(page.total, label).toBe(want.length);
      expect(page.events, label).toEqual([...want].reverse().slice(10, 35));
    }
    // nottiktok.com is not a subdomain of tiktok.com
    expect((await store.events({ domain: 'tiktok.com' })).some((e) => e.name === 'nottiktok.com')).toBe(false);

    // The rollup counts whole days: ranges on day boundaries give the pure function's rows.
    const day = Date.parse(`${utcDay(mid)}T00:00:00Z`);
    for (const o of [
      { by: 'day' },
      { by: 'week', policy: 'app-ban' },
      { by: 'month', since: day },
      { by: 'day', since: day, until: day + DAY_MS, list: 'tiktok' },
      { by: 'week', network: 'guest' },
    ] as TrendOptions[]) {
      expect(await store.trend(o), JSON.stringify(o)).toEqual(trendReport(events, o));
    }
    const weeks = await store.trend({ by: 'week' });
    expect(weeks.every((w) => new Date(`${w.period}T00:00:00Z`).getUTCDay() === 1)).toBe(true);
  });

  it('two resolvers writing one database: covers names both, the devices report holds both', async () => {
    const a = await open(options({ instance: 'a' }));
    const b = await open(options({ instance: 'b' }));
    const ea = traffic(800, 11, 2, 'a');
    const eb = traffic(800, 12, 2, 'b');
    expect(a.write(ea)).toBe(true);
    expect(b.write(eb)).toBe(true);
    await Promise.all([a.flush(), b.flush()]);
    const c = await a.covers({ since: T0 - 2 * DAY_MS, until: T0 });
    expect(c).toMatchObject({ source: 'postgres', instances: ['a', 'b'], dropped: 0, complete: true });
    expect(c.held.oldest).toBe(Math.min(ea[0]!.time, eb[0]!.time));
    expect(c.held.newest).toBe(Math.max(ea.at(-1)!.time, eb.at(-1)!.time));
    expect((await b.covers({ instance: 'a' })).instances).toEqual(['a']);
    expect((await a.covers({ since: T0 + 5 * DAY_MS })).instances).toEqual([]);
    const all = [...ea, ...eb];
    const rows = await a.devices({ policy: 'app-ban' });
    expect(rows).toEqual(devicesReport(all, { policy: 'app-ban' }));
    expect(rows.reduce((n, r) => n + r.count, 0)).toBe(all.filter((e) => e.decision === 'blocked' && e.policy === 'app-ban' && e.list !== null).length);
    // Read-only stores (the CLI) see the same.
    const ro = await open(options({ readOnly: true }));
    expect(await ro.devices({ policy: 'app-ban' })).toEqual(rows);
    expect(ro.write([event()])).toBe(false);
  });

  it('refuses batches beyond the spill without a spool, and covers counts them as dropped', async () => {
    let now = T0;
    const url = new URL(db.url);
    url.port = '1'; // nothing listens there: the store opens and keeps events in memory
    const o = options({ spillEvents: 1000, now: () => now });
    const store = await open(o, url.toString());
    expect(store.health().ok).toBe(false);
    expect(store.write(traffic(600, 1, 1))).toBe(true);
    expect(store.write(traffic(400, 2, 1))).toBe(true);
    expect(store.write(traffic(10, 3, 1))).toBe(false);
    store.noteDropped(5, T0);
    now += 1000;
    await until('retries', () => store.health().failures >= 3);
    expect(store.health()).toMatchObject({ ok: false, pending: 1000, refused: 10, written: 0 });
    // Warned once in the interval, however often it retried.
    expect(o.warnings.filter((w) => w.includes('failed'))).toHaveLength(1);
    await store.close();
    // A store that can reach the database records what the first could not (there, the drops of
    // the refused batch would have been written with the next batch).
    const ok = await open(options());
    ok.noteDropped(7, T0 - DAY_MS);
    expect(ok.write([event()])).toBe(true);
    await ok.flush();
    const c = await ok.covers({ since: T0 - 2 * DAY_MS });
    expect(c).toMatchObject({ dropped: 7, complete: false });
    expect(c.notes.join(' ')).toMatch(/7 events of this range were dropped/);
  });

  it('cuts a write that hangs (a lock held elsewhere) after writeTimeoutMs and retries it on a new connection', async () => {
    const store = await open(options({ writeTimeoutMs: 500, retryMs: 50, retryMaxMs: 100 }));
    expect(store.write([event({ time: T0 - 1 })])).toBe(true);
    await store.flush();
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE query_writers IN ACCESS EXCLUSIVE MODE');
      expect(store.write([event({ time: T0 }), event({ time: T0 + 1 })])).toBe(true);
      await until('the hung write is cut', () => store.health().failures > 0);
      expect(store.health().lastError).toMatch(/no answer from PostgreSQL in 500 ms/);
      await locker.query('COMMIT');
      await store.flush();
    } finally {
      await locker.end();
    }
    expect((await store.events({})).map((e) => e.time)).toEqual([T0 - 1, T0, T0 + 1]);
    expect(store.health()).toMatchObject({ ok: true, pending: 0, written: 3 });
  });

  it('retention drops whole day partitions and covers says the range is incomplete', async () => {
    let now = T0;
    const store = await open(options({ retentionDays: 3, rollupRetentionDays: 5, now: () => now }));
    const events = Array.from({ length: 8 }, (_, d) => event({ time: T0 - d * DAY_MS, client: `10.0.0.${d}`, decision: 'blocked', policy: 'app-ban', list: 'tiktok', name: 'www.tiktok.com' }));
    // Written before retention removes them: the store runs with the clock 10 days back.
    now = T0 - 10 * DAY_MS;
    expect(store.write(events)).toBe(true);
    await store.flush();
    expect((await store.query({}, 100)).total).toBe(8);
    expect((await store.covers({ since: T0 - 7 * DAY_MS })).complete).toBe(true);

    now = T0;
    await store.enforceRetention(T0);
    const days = (await listDayPartitionsOf(db.url)).filter((d) => d <= utcDay(T0));
    expect(days).toEqual([utcDay(T0 - 2 * DAY_MS), utcDay(T0 - DAY_MS), utcDay(T0)]);
    expect((await store.events({})).map((e) => e.client)).toEqual(['10.0.0.2', '10.0.0.1', '10.0.0.0']);
    const c = await store.covers({ since: T0 - 7 * DAY_MS, until: T0 });
    expect(c.complete).toBe(false);
    expect(c.notes[0]).toBe(`raw events before ${utcDay(T0 - 2 * DAY_MS)}T00:00:00.000Z are no longer held (retention 3 days)`);
    expect((await store.covers({ since: T0 - DAY_MS })).complete).toBe(true);
    // The rollup keeps 5 days.
    const rollupDays = await sql<{ day: string }>(db.url, `SELECT to_char(day, 'YYYY-MM-DD') AS day FROM query_rollup_daily ORDER BY day`);
    expect(rollupDays.map((r) => r.day)).toEqual([4, 3, 2, 1, 0].map((d) => utcDay(T0 - d * DAY_MS)));
    expect(await store.trend({ by: 'day' })).toHaveLength(5);
    const cuts = await sql<{ kind: string; cut: Date }>(db.url, 'SELECT kind, cut FROM query_retention ORDER BY kind');
    expect(cuts.map((r) => [r.kind, r.cut.toISOString()])).toEqual([
      ['raw', `${utcDay(T0 - 2 * DAY_MS)}T00:00:00.000Z`],
      ['rollup', `${utcDay(T0 - 4 * DAY_MS)}T00:00:00.000Z`],
    ]);
    // Events older than retention that arrive late (a spool replayed) are not written back.
    expect(store.write([event({ time: T0 - 6 * DAY_MS, client: 'late' })])).toBe(true);
    await store.flush();
    expect(await store.events({ client: 'late' })).toEqual([]);
    expect((await listDayPartitionsOf(db.url)).includes(utcDay(T0 - 6 * DAY_MS))).toBe(false);
  });

  it('erase removes a client from raw events and the rollup, and writes an audit row', async () => {
    const store = await open(options());
    const x = '10.6.6.6';
    const events = [
      ...traffic(300, 5, 2),
      event({ time: T0 - DAY_MS, client: x, decision: 'blocked', policy: 'app-ban', list: 'tiktok', name: 'www.tiktok.com' }),
      event({ time: T0 - 2 * 3600_000, client: x }),
      event({ time: T0 - 3600_000, client: x, wouldBlock: true, policy: 'dry', list: 'temu' }),
      event({ time: T0 + 3600_000, client: x }),
    ];
    expect(store.write(events)).toBe(true);
    await store.flush();
    const others = await sql<{ n: string }>(db.url, 'SELECT count(*) AS n FROM query_events WHERE client <> $1', [x]);

    // Before a time in the middle of a day: that day's rollup is counted again from what is left.
    // Deleted: yesterday's blocked query and the 10:00 one; the rollup loses yesterday's row, and today's
    // rows are counted again from the 11:00 and 13:00 events.
    expect(await store.erase(x, T0 - 90 * 60_000)).toEqual({ events: 2, rollups: 1 });
    expect(await store.events({ client: x })).toEqual([events.at(-2), events.at(-1)]);
    expect(await sql(db.url, `SELECT decision, count::int AS count FROM query_rollup_daily WHERE client = $1 ORDER BY decision`, [x])).toEqual([
      { decision: 'allowed', count: 1 },
      { decision: 'would-block', count: 1 },
    ]);

    expect(await store.erase(x)).toEqual({ events: 2, rollups: 2 });
    expect(await sql(db.url, 'SELECT count(*)::int AS n FROM query_events WHERE client = $1', [x])).toEqual([{ n: 0 }]);
    expect(await sql(db.url, 'SELECT count(*)::int AS n FROM query_rollup_daily WHERE client = $1', [x])).toEqual([{ n: 0 }]);
    expect(await sql(db.url, 'SELECT count(*) AS n FROM query_events WHERE client <> $1', [x])).toEqual(others);
    const audit = await sql<{ client: string; before: Date | null; events: string; rollups: string; time: Date }>(db.url, 'SELECT * FROM query_erasures ORDER BY before NULLS LAST');
    expect(audit.map((a) => [a.client, a.before?.toISOString() ?? null, Number(a.events), Number(a.rollups), a.time.getTime()])).toEqual([
      [x, new Date(T0 - 90 * 60_000).toISOString(), 2, 1, T0],
      [x, null, 2, 2, T0],
    ]);
  });
});

async function listDayPartitionsOf(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await listDayPartitions(c);
  } finally {
    await c.end();
  }
}

describe('PostgreSQL store when the database goes away', () => {
  let server: PrivatePostgres;
  let db: TestDatabase;
  let dir: string;

  beforeAll(async () => {
    server = await startPrivatePostgres();
    dir = mkdtempSync(join(tmpdir(), 'sluice-spool-'));
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await db?.drop();
  });

  /** Every event once: names are unique per event. */
  async function stored(url: string): Promise<{ total: number; distinct: number }> {
    const [r] = await sql<{ total: number; distinct: number }>(url, 'SELECT count(*)::int AS total, count(DISTINCT name)::int AS distinct FROM query_events');
    return r!;
  }

  /** Writes `perBatch` unique events every `everyMs` until `stop()` resolves; returns what was accepted. */
  function producer(store: PostgresStore, perBatch: number, everyMs: number) {
    let n = 0;
    let refused = 0;
    let running = true;
    const done = (async () => {
      while (running) {
        const batch = Array.from({ length: perBatch }, () => {
          n++;
          return event({ time: T0 + n, name: `e${n}.example` });
        });
        if (!store.write(batch)) refused += perBatch;
        await new Promise((r) => setTimeout(r, everyMs));
      }
    })();
    return {
      get written() {
        return n - refused;
      },
      get refused() {
        return refused;
      },
      async stop() {
        running = false;
        await done;
      },
    };
  }

  it('keeps writing through a 30 s outage: every event arrives once, health shows the failures and the recovery', async () => {
    db = await createTestDatabase(server.url);
    const o = options({ retryMs: 100, retryMaxMs: 1000, batchEvents: 2000, spillEvents: 500_000, warnIntervalMs: 600_000, now: () => Date.now() });
    const store = await PostgresStore.open(db.url, o);
    try {
      const p = producer(store, 100, 20);
      await until('the first events are written', () => store.health().written > 2000);
      await server.stop();
      const stoppedAt = Date.now();
      await until('a failed write', () => store.health().failures > 0);
      expect(store.health().ok).toBe(false);
      // Batches keep coming while the database is away (the producer runs on), for 30 s.
      await until('30 s of outage', () => Date.now() - stoppedAt >= 30_000, 40_000);
      const during = store.health();
      expect(during.ok).toBe(false);
      expect(during.pending).toBeGreaterThan(20_000);
      await server.start();
      await until('the backlog is written', () => store.health().ok && store.health().pending < 5000, 60_000);
      await p.stop();
      await store.flush();
      expect(p.refused).toBe(0);
      expect(await stored(db.url)).toEqual({ total: p.written, distinct: p.written });
      const h = store.health();
      expect(h).toMatchObject({ ok: true, pending: 0, refused: 0, written: p.written });
      expect(h.failures).toBeGreaterThan(1);
      // One warning for the outage however many batches failed (the interval is 10 minutes here), one when writing works again.
      expect(o.warnings.filter((w) => w.includes('failed'))).toHaveLength(1);
      expect(o.warnings.filter((w) => w.includes('works again'))).toHaveLength(1);
    } finally {
      await store.close();
    }
  }, 180_000);

  it('spills beyond memory into the local spool, replays it in order, and keeps it across a restart', async () => {
    db = await createTestDatabase(server.url);
    const spoolPath = join(dir, 'spool.db');
    const o = options({ spillEvents: 1000, batchEvents: 500, retryMs: 50, retryMaxMs: 200, spoolPath, now: () => Date.now() });
    let store = await PostgresStore.open(db.url, o);
    let n = 0;
    const next = (k: number) =>
      Array.from({ length: k }, () => {
        n++;
        return event({ time: T0 + n, name: `e${n}.example` });
      });
    try {
      expect(store.write(next(300))).toBe(true);
      await store.flush();
      await server.stop();
      for (let i = 0; i < 20; i++) {
        expect(store.write(next(250))).toBe(true);
        await new Promise((r) => setImmediate(r)); // batches arrive on separate turns of the event loop, as from the buffer
      }
      await until('the spool takes what memory cannot', () => store.spooled() >= 3000);
      expect(store.health().pending).toBe(5000);
      expect(store.health().ok).toBe(false);
      await server.start();
      await store.flush();
      expect(store.spooled()).toBe(0);
      expect(await stored(db.url)).toEqual({ total: 5300, distinct: 5300 });
      // In order of arrival: the first written are the first stored.
      const order = await sql<{ name: string }>(db.url, 'SELECT name FROM query_events ORDER BY time');
      expect(order.map((r) => r.name)).toEqual(Array.from({ length: 5300 }, (_, i) => `e${i + 1}.example`));

      // Closed while the database is away: what is left waits in the spool for the next start.
      await server.stop();
      for (let i = 0; i < 10; i++) {
        expect(store.write(next(300))).toBe(true);
        await new Promise((r) => setImmediate(r));
      }
      await until('a failed write', () => store.health().failures > 0);
      store.noteDropped(3, T0);
      await store.close();
      expect(spoolRows(spoolPath)).toBeGreaterThan(0);
      await server.start();
      store = await PostgresStore.open(db.url, { ...o });
      await until('the spool is replayed', () => store.spooled() === 0 && store.health().pending === 0);
      expect(await stored(db.url)).toEqual({ total: 8300, distinct: 8300 });
      expect((await store.covers({})).dropped).toBe(3);
    } finally {
      await store.close();
    }
  }, 120_000);
});

describe('PostgreSQL store replaying a batch that was written', () => {
  it('skips a batch whose commit succeeded though its reply was lost, so no event is stored twice', async () => {
    const db = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), 'sluice-spool-'));
    const spoolPath = join(dir, 'spool.db');
    try {
      const first = await PostgresStore.open(db.url, options({ spoolPath }));
      const events = Array.from({ length: 50 }, (_, i) => event({ time: T0 + i, name: `e${i}.example` }));
      expect(first.write(events)).toBe(true);
      await first.flush();
      await first.close();
      // The writer's last committed batch, put back into the spool as if the store had not heard
      // that its COMMIT went through (the connection broke during it) and kept it for a retry.
      const [w] = await sql<{ writer: string; last_seq: string }>(db.url, 'SELECT writer, last_seq FROM query_writers');
      const spool = new Database(spoolPath);
      spool.prepare('INSERT INTO spool (writer, seq, count, events) VALUES (?, ?, ?, ?)').run(w!.writer, Number(w!.last_seq), events.length, JSON.stringify(events));
      // And a batch of the same writer that was not written yet.
      const later = [event({ time: T0 + 100, name: 'later.example' })];
      spool.prepare('INSERT INTO spool (writer, seq, count, events) VALUES (?, ?, ?, ?)').run(w!.writer, Number(w!.last_seq) + 1, 1, JSON.stringify(later));
      spool.close();
      const second = await PostgresStore.open(db.url, options({ spoolPath }));
      try {
        await until('the spool is replayed', () => second.spooled() === 0);
        expect((await second.events({})).map((e) => e.name)).toEqual([...events.map((e) => e.name), 'later.example']);
        expect(second.health()).toMatchObject({ ok: true, written: 1, pending: 0 });
        // The spool belongs to one process: another store (a CLI command opened as a writer) does without.
        const o = options({ spoolPath });
        const third = await PostgresStore.open(db.url, o);
        await third.close();
        expect(o.warnings).toEqual(['query-log store: no local spool; events beyond the spill are dropped while PostgreSQL is away']);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await db.drop();
    }
  });
});

function spoolRows(path: string): number {
  const d = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return (d.prepare('SELECT count(*) AS n FROM spool').get() as { n: number }).n;
  } finally {
    d.close();
  }
}

describe('the PostgreSQL URL', () => {
  it('takes the URL from the environment first, and the password only from the environment', () => {
    const config = { url: 'postgres://sluice_writer@db.example:5432/sluice', url_env: 'SLUICE_QUERYLOG_URL', password_env: 'SLUICE_QUERYLOG_PASSWORD' };
    expect(postgresUrl(config, {})).toBe('postgres://sluice_writer@db.example:5432/sluice');
    expect(postgresUrl(config, { SLUICE_QUERYLOG_PASSWORD: 'p@ss:w/rd' })).toBe('postgres://sluice_writer:p%40ss%3Aw%2Frd@db.example:5432/sluice');
    expect(postgresUrl(config, { SLUICE_QUERYLOG_URL: 'postgresql://other@h/x', SLUICE_QUERYLOG_PASSWORD: 's' })).toBe('postgresql://other:s@h/x');
    expect(() => postgresUrl({ ...config, url: undefined }, {})).toThrow(/needs a url/);
  });
});

describe('sluice log migrate', () => {
  it('creates the PostgreSQL schema and the next partitions, and says the version', async () => {
    const db = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), 'sluice-migrate-'));
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const config = YAML.parse(readFileSync(join(import.meta.dirname, '../../config/sluice.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
      config.query_log = { ...config.query_log, store: { kind: 'postgres', url_env: 'SLUICE_TEST_MIGRATE_URL' } };
      const file = join(dir, 'sluice.yaml');
      writeFileSync(file, YAML.stringify(config));
      process.env.SLUICE_TEST_MIGRATE_URL = db.url;
      const run = async () => {
        const program = new Command('sluice').option('-c, --config <file>').exitOverride();
        registerLogMigrate(program.command('log'));
        await program.parseAsync(['node', 'sluice', '-c', file, 'log', 'migrate', '--json']);
      };
      await run();
      await run();
      const printed = out.mock.calls.map((c) => JSON.parse(String(c[0])) as { kind: string; version: number });
      expect(printed).toEqual([expect.objectContaining({ kind: 'postgres', version: SCHEMA_VERSION }), expect.objectContaining({ kind: 'postgres', version: SCHEMA_VERSION })]);
      expect(process.exitCode ?? 0).toBe(0);
      const days = await listDayPartitionsOf(db.url);
      expect(days).toContain(utcDay(Date.now()));
    } finally {
      out.mockRestore();
      delete process.env.SLUICE_TEST_MIGRATE_URL;
      rmSync(dir, { recursive: true, force: true });
      await db.drop();
    }
  });
});
