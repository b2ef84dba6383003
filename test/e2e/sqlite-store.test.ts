// The embedded SQLite query-log store against the pure reference functions (filter, reports,
// summary) on random events, and its promises about the file: size per event, aggregates that
// survive a SIGKILL, retention, erasure, and a read-only reader next to the writer. Every store
// here is a real SQLite file in a temporary directory; the crash test kills a real child process.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Database } from '../../src/querylog/store/sqlite-driver.js';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { eventJson, type QueryEvent } from '../../src/querylog/event.js';
import { matches, type QueryFilter } from '../../src/querylog/filter.js';
import { bypassReport, devicesReport, trendReport, type BypassReportOptions, type DevicesReportOptions } from '../../src/querylog/reports.js';
import { summarize, type Summary } from '../../src/querylog/summary.js';
import { SqliteStore, type SqliteStoreOptions } from '../../src/querylog/store/sqlite-store.js';
import { DAY_MS, utcDay, type TrendOptions } from '../../src/querylog/store/store.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** A Wednesday; the random events span 9 days from here, across a week (Mon 30 Nov) and a month boundary. */
const T0 = Date.parse('2026-11-25T00:00:00Z');
const SPAN = 9 * DAY_MS;
/** After every random event, on a whole hour (see `aligned`). */
const NOW = T0 + SPAN + HOUR;

/** Runs of the property; more with RUNS=… for a longer search. */
const RUNS = Number(process.env.RUNS ?? 40);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sluice-sqlite-'));
  dirs.push(d);
  return d;
}

function options(over: Partial<SqliteStoreOptions> = {}): SqliteStoreOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return { instance: 'a', retentionDays: 30, rollupRetentionDays: 400, spillEvents: 1_000_000, now: () => NOW, warn: (m) => warnings.push(m), warnings, ...over };
}

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

/** A second, plain connection to a store's file: what a person would look at with `sqlite3`. */
function rawSql<T>(path: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** Events as a multiset: sorted by time, then by every field (eventJson's fixed field order). */
const canonical = (events: QueryEvent[]): QueryEvent[] =>
  events
    .map((e) => [`${String(e.time).padStart(15, '0')}${eventJson(e)}`, e] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([, e]) => e);

// -------------------------------------------------------------------------------------------------
// Random events

const CLIENTS = ['10.1.2.3', '10.1.2.4', '10.1.2.40', '192.168.100.7', 'fe80::1', '2001:db8::1', 'p:3f9a0c1d22e4b780', 'p:0000000000000001'];
const NAMES = [
  'tiktok.com',
  'www.tiktok.com',
  'a.b.tiktok.com',
  'nottiktok.com',
  'tiktok.com.evil',
  'dns.google',
  'mask.icloud.com',
  'turbovpn.com',
  'api.turbovpn.com',
  'temu.com',
  '100%.example',
  'x%y.example',
  'under_score.example',
  'underxscore.example',
  'a.under_score.example',
  'ünïcode.example',
  'null',
  'a.b.c.d.e.f.example.org',
];
const LISTS = ['tiktok', 'temu', 'doh-bypass', 'turbovpn', 'ads'] as const;
const DOMAINS = ['tiktok.com', 'TikTok.com.', 'com', 'example', '100%.example', '%', '_', 'under_score.example', 'x%y.example', 'google', 'ünïcode.example', 'null', 'nowhere.example'];
const SAME_MS = [0, 1, MINUTE - 1, MINUTE, HOUR - 1, DAY_MS - 1, DAY_MS, 5 * DAY_MS + 12_345, 5 * DAY_MS + 12_346];

/**
 * The list a blocked name was blocked by: a function of the name, as when one list holds it. (The
 * summary's top blocked domains show one list per name; the pure function takes the first event's,
 * the store the first shape's, so they agree only when a name has one list.)
 */
function blockedList(name: string): string | null {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 1009;
  return h % 6 === 5 ? null : LISTS[h % 5]!;
}

const timeArb = fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: SPAN - 1 }) }, { weight: 2, arbitrary: fc.constantFrom(...SAME_MS) }).map((t) => T0 + t);
const nameArb = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...NAMES) }, { weight: 1, arbitrary: fc.stringMatching(/^[a-z0-9_%-]{1,5}(\.[a-z0-9_%-]{1,5}){0,2}\.(com|example)$/) });

const eventArb: fc.Arbitrary<QueryEvent> = fc
  .record({
    time: timeArb,
    instance: fc.constantFrom('a', 'b'),
    client: fc.constantFrom(...CLIENTS),
    network: fc.constantFrom('internal', 'guest', 'comms', null),
    profile: fc.constantFrom('staff', 'open', null),
    policy: fc.constantFrom('app-ban', 'dry', null),
    list: fc.constantFrom(...LISTS, null),
    rule: fc.constantFrom('tiktok.com', '*.x', 'null', null),
    name: nameArb,
    type: fc.constantFrom('A', 'AAAA', 'HTTPS', 'TXT'),
    decision: fc.constantFrom('allowed', 'blocked', 'blocked', 'refused', 'error', 'malformed'),
    wouldBlock: fc.boolean(),
    exception: fc.boolean(),
    cache: fc.boolean(),
    upstream: fc.constantFrom('192.0.2.53:53', '[2001:db8::53]:53', null),
    rcode: fc.constantFrom(0, 2, 3, 5, null),
    answers: fc.nat(20),
    // Multiples of 1/8 ms: exact in µs and in binary, so averages computed from µs sums (the
    // store) and from sums of doubles (the pure function) round the same way.
    eighths: fc.nat(8000),
    transport: fc.constantFrom('udp', 'tcp'),
  })
  .map(({ eighths, ...r }): QueryEvent => {
    const e: QueryEvent = { ...r, durationMs: eighths / 8 };
    // As the resolver makes them: a dry run (wouldBlock) or an exception is of an allowed
    // decision, which can still end in an error (SERVFAIL); a blocked query has its list's name.
    if (e.decision !== 'allowed' && e.decision !== 'error') e.wouldBlock = e.exception = false;
    if (e.decision === 'blocked') e.list = blockedList(e.name);
    return e;
  });

const FILTER_KEYS = ['network', 'client', 'domain', 'decision', 'policy', 'list', 'instance'] as const;
const filterArb: fc.Arbitrary<QueryFilter> = fc
  .record({
    since: fc.option(timeArb, { nil: undefined }),
    until: fc.option(timeArb, { nil: undefined }),
    keys: fc.subarray([...FILTER_KEYS], { maxLength: 2 }),
    values: fc.record({
      network: fc.constantFrom('internal', 'guest', 'comms', 'nowhere'),
      client: fc.constantFrom(...CLIENTS, '10.9.9.9'),
      domain: fc.constantFrom(...DOMAINS),
      decision: fc.constantFrom('allowed', 'blocked', 'refused', 'error', 'malformed', 'would-block'),
      policy: fc.constantFrom('app-ban', 'dry', 'none'),
      list: fc.constantFrom(...LISTS, 'none'),
      instance: fc.constantFrom('a', 'b'),
    }),
  })
  .map(({ since, until, keys, values }) => {
    const f: QueryFilter = {};
    if (since !== undefined) f.since = since;
    if (until !== undefined) f.until = until;
    for (const k of keys) (f as Record<string, unknown>)[k] = values[k];
    return f;
  });

/**
 * A filter whose range suits the store's summary. The store counts from its per-minute series
 * (per-hour once the buckets are an hour or longer, i.e. ranges over 75 h), which hold whole
 * minutes (hours): an edge inside a minute would count the whole minute, events outside the range
 * included. So the edges are moved to whole minutes (hours) — what the dashboard asks for anyway.
 */
function aligned(f: QueryFilter): QueryFilter {
  const out = { ...f };
  const since = f.since ?? T0;
  const until = f.until ?? NOW;
  const unit = until - since > 75 * HOUR ? HOUR : MINUTE;
  if (f.since !== undefined) out.since = Math.floor(f.since / unit) * unit;
  if (f.until !== undefined) out.until = Math.ceil(f.until / unit) * unit;
  return out;
}

/** Day edges for the trend: the store answers it from its daily rollup. */
function dayAligned(t: number | undefined): number | undefined {
  return t === undefined ? undefined : Math.floor(t / DAY_MS) * DAY_MS;
}

/**
 * The store's summary must equal the pure one's; its per-bucket counts too where its series can
 * say them (buckets of whole minutes, or a client or domain filter, which counts raw events). With
 * buckets under a minute a minute's count lands in the minute's first bucket, so only the
 * per-network sums can agree. The upstream p50/p95 are compared exactly: the store takes them over
 * the newest 100,000 forwarded queries of the range, which here is all of them.
 */
function expectSameSummary(got: Summary, want: Summary, f: QueryFilter, label: string): void {
  const { series: gs, ...gotRest } = got;
  const { series: ws, ...wantRest } = want;
  expect(gotRest, label).toEqual(wantRest);
  expect({ start: gs.start, bucketSeconds: gs.bucketSeconds, upstreamP95Ms: gs.upstreamP95Ms }, label).toEqual({ start: ws.start, bucketSeconds: ws.bucketSeconds, upstreamP95Ms: ws.upstreamP95Ms });
  const exact = ws.bucketSeconds % 60 === 0 || f.client !== undefined || f.domain !== undefined;
  if (exact) expect(gs.networks, label).toEqual(ws.networks);
  else {
    const sums = (s: Summary['series']) => s.networks.map((n) => [n.network, n.queries.reduce((a, v) => a + v, 0), n.blocked.reduce((a, v) => a + v, 0)]);
    expect(sums(gs), label).toEqual(sums(ws));
  }
}

async function writeAll(store: SqliteStore, events: QueryEvent[], chunks: number[], flushMidway: boolean): Promise<void> {
  let i = 0;
  let c = 0;
  while (i < events.length) {
    const n = chunks[c++ % chunks.length]!;
    expect(store.write(events.slice(i, i + n))).toBe(true);
    i += n;
    if (flushMidway && c % 3 === 0) await store.flush();
  }
  await store.flush();
}

const classify = (name: string): string | undefined =>
  name.endsWith('google') || name.includes('%') ? 'doh-bypass' : name.includes('vpn') ? 'turbovpn' : name.startsWith('temu') ? 'temu' : undefined;

describe('SQLite store: the same answers as the pure functions', () => {
  it(
    'query, events, reports, trend and summary over random events and filters',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(eventArb, { minLength: 0, maxLength: 250 }),
          fc.array(fc.integer({ min: 1, max: 80 }), { minLength: 1, maxLength: 5 }),
          fc.boolean(),
          fc.array(filterArb, { minLength: 1, maxLength: 6 }),
          fc.record({ limit: fc.integer({ min: 1, max: 40 }), offset: fc.nat(60), top: fc.constantFrom(2, 3, 10), by: fc.constantFrom('day', 'week', 'month') as fc.Arbitrary<TrendOptions['by']> }),
          async (events, chunks, flushMidway, filters, p) => {
            const dir = tempDir();
            const store = new SqliteStore(join(dir, 'q.db'), options());
            try {
              await writeAll(store, events, chunks, flushMidway);
              expect(store.health()).toMatchObject({ ok: true, written: events.length, pending: 0, failures: 0 });
              // Every field comes back, none mixed up with another event's.
              expect(canonical(await store.events({}))).toEqual(canonical(events));

              for (const f of [{}, ...filters]) {
                const label = JSON.stringify(f);
                const want = events.filter((e) => matches(e, f));
                // Newest first by time; events of one millisecond come in the store's id order,
                // which is not the order they were written in, so they are compared as a multiset.
                const all = await store.query(f, 100_000);
                expect(all.total, label).toBe(want.length);
                expect(canonical(all.events), label).toEqual(canonical(want));
                for (let i = 1; i < all.events.length; i++) expect(all.events[i]!.time, label).toBeLessThanOrEqual(all.events[i - 1]!.time);
                // Pages are slices of that one order, and events() is the same order reversed.
                const page = await store.query(f, p.limit, p.offset);
                expect(page.total, label).toBe(want.length);
                expect(page.events, label).toEqual(all.events.slice(p.offset, p.offset + p.limit));
                expect(await store.events(f), label).toEqual([...all.events].reverse());

                const d: DevicesReportOptions = {};
                if (f.policy !== undefined) d.policy = f.policy;
                if (f.network !== undefined) d.network = f.network;
                if (f.since !== undefined) d.since = f.since;
                if (f.until !== undefined) d.until = f.until;
                expect(await store.devices(d), label).toEqual(devicesReport(events, d));
                const b: BypassReportOptions = {
                  ...(f.network !== undefined ? { network: f.network } : {}),
                  ...(f.since !== undefined ? { since: f.since } : {}),
                  ...(f.until !== undefined ? { until: f.until } : {}),
                };
                expect(await store.bypass(b), label).toEqual(bypassReport(events, b));
                expect(await store.bypass({ ...b, classify }), label).toEqual(bypassReport(events, { ...b, classify }));
                expect(await store.bypass({ ...b, classify, lists: ['temu', 'tiktok'] }), label).toEqual(bypassReport(events, { ...b, classify, lists: ['temu', 'tiktok'] }));

                const t: TrendOptions = { by: p.by };
                if (f.policy !== undefined) t.policy = f.policy;
                if (f.network !== undefined) t.network = f.network;
                if (f.list !== undefined) t.list = f.list;
                if (f.since !== undefined) t.since = dayAligned(f.since)!;
                if (f.until !== undefined) t.until = dayAligned(f.until)!;
                expect(await store.trend(t), label).toEqual(trendReport(events, t));

                const s = aligned(f);
                expectSameSummary(await store.summary(s, { now: NOW, top: p.top }), summarize(events, s, { now: NOW, top: p.top }), s, JSON.stringify(s));
              }
            } finally {
              await store.close();
              rmSync(dir, { recursive: true, force: true });
            }
          },
        ),
        { numRuns: RUNS },
      );
    },
    RUNS * 1000,
  );

  it('gives back every field of an event exactly, the duration to the microsecond', async () => {
    const store = new SqliteStore(join(tempDir(), 'q.db'), options());
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
        cache: true,
        answers: 12,
        durationMs: 1234.5,
      }),
      event({ time: T0, name: 'quote"%_.example', decision: 'malformed', rcode: 1, durationMs: 0 }),
      event({ time: T0, decision: 'error', wouldBlock: true, exception: true, policy: 'dry', list: 'temu', rule: 'null', upstream: '[2001:db8::53]:53', rcode: 2, answers: 0, durationMs: 2999.9996 }),
      // A rule, policy or list that is the text "null" is not the absent value.
      event({ time: T0 + 1, policy: 'app-ban', list: 'null', rule: 'null', decision: 'blocked' }),
      event({ time: T0 + 2, policy: 'app-ban', list: null, rule: null, decision: 'blocked' }),
    ];
    const more = fc.sample(fc.tuple(eventArb, fc.double({ min: 0, max: 100_000, noNaN: true })), { numRuns: 300, seed: 42 }).map(([e, d]) => ({ ...e, durationMs: d }));
    expect(store.write([...events, ...more])).toBe(true);
    await store.flush();
    const us = (e: QueryEvent): QueryEvent => ({ ...e, durationMs: Math.round(e.durationMs * 1000) / 1000 });
    expect(canonical(await store.events({}))).toEqual(canonical([...events, ...more].map(us)));
    expect((await store.events({ since: T0 - 2000, until: T0 - 1999 }))[0]).toEqual(events[1]);
    await store.close();
  });
});

// -------------------------------------------------------------------------------------------------

/** mulberry32, so the size test writes the same traffic every time. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A sampler of 0..n-1 with P(k) ~ 1/(k+1)^s. */
function zipf(n: number, s: number, r: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, s);
  return () => {
    const u = r() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** An office day: 300 clients, names of 15–40 characters Zipf-distributed, 1 % blocked, 8 hours. */
function officeDay(n: number, seed = 1): QueryEvent[] {
  const r = rng(seed);
  const words = 'mail web cdn api static img news shop cloud edge sync data app portal login video media maps stats intranet docs teams update telemetry'.split(' ');
  const tlds = ['com', 'net', 'org', 'be', 'nl', 'io', 'eu'];
  const names: string[] = [];
  while (names.length < 20_000) {
    const parts = [words[Math.floor(r() * words.length)]!, `${words[Math.floor(r() * words.length)]}${Math.floor(r() * 1e5)}`, tlds[Math.floor(r() * tlds.length)]!];
    if (r() < 0.5) parts.unshift(words[Math.floor(r() * words.length)]!);
    const name = parts.join('.');
    if (name.length >= 15 && name.length <= 40) names.push(name);
  }
  const pickName = zipf(names.length, 1, r);
  const pickClient = zipf(300, 0.7, r);
  const clients = Array.from({ length: 300 }, (_, i) =>
    i % 5 === 4
      ? { client: `p:${(i * 2654435761).toString(16).padStart(16, '0').slice(-16)}`, network: 'guest', profile: 'open' }
      : { client: `10.1.${i >> 8}.${i & 255}`, network: 'internal', profile: 'staff' },
  );
  const start = T0 + 8 * HOUR;
  const out: QueryEvent[] = [];
  for (let i = 0; i < n; i++) {
    const time = start + Math.floor((i * 8 * HOUR) / n);
    const c = clients[pickClient()]!;
    if (r() < 0.01) {
      const [name, list] = pick(r, [
        ['www.tiktok.com', 'tiktok'],
        ['log.tiktokv.com', 'tiktok'],
        ['api16-normal-c-useast1a.tiktokv.com', 'tiktok'],
        ['www.temu.com', 'temu'],
      ] as const);
      out.push(event({ time, ...c, policy: 'app-ban', list, rule: list === 'tiktok' ? 'tiktok.com' : 'temu.com', name, decision: 'blocked', upstream: null, rcode: 3, answers: 0, durationMs: 0.031 }));
      continue;
    }
    const cache = r() < 0.6;
    const nx = r() < 0.03;
    out.push(
      event({
        time,
        ...c,
        name: names[pickName()]!,
        type: pick(r, ['A', 'A', 'A', 'AAAA', 'AAAA', 'HTTPS']),
        cache,
        upstream: cache ? null : pick(r, ['192.0.2.53:53', '192.0.2.54:53']),
        rcode: nx ? 3 : 0,
        answers: nx ? 0 : 1 + Math.floor(r() * 3),
        durationMs: cache ? Math.round(20 + r() * 60) / 1000 : Math.round(Math.exp(r() * 4) * 1000) / 1000,
        transport: r() < 0.01 ? 'tcp' : 'udp',
      }),
    );
  }
  return out;
}
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

describe('SQLite store: the file', () => {
  it('holds 200,000 realistic events in at most 64 bytes each', async () => {
    const path = join(tempDir(), 'q.db');
    const store = new SqliteStore(path, options());
    const events = officeDay(200_000);
    for (let i = 0; i < events.length; i += 5000) expect(store.write(events.slice(i, i + 5000))).toBe(true);
    await store.flush();
    // Checkpointed and truncated from a second connection while the store is open.
    const db = new Database(path);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const stored = db.prepare('SELECT count(*) FROM events').pluck().get() as number;
    db.close();
    const wal = existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0;
    const bytes = statSync(path).size + wal;
    const perEvent = bytes / stored;
    console.log(`sqlite store: ${stored} events, ${bytes} bytes (wal ${wal}), ${perEvent.toFixed(1)} bytes/event`);
    expect(stored).toBe(200_000);
    expect(perEvent).toBeLessThanOrEqual(64);
    await store.close();
  }, 30_000);
});

// -------------------------------------------------------------------------------------------------

/** Random events of `days` days from `from`, written in time order unless shuffled by the caller. */
function randomEvents(n: number, seed: number, from = T0, days = 2): QueryEvent[] {
  const r = rng(seed);
  return fc
    .sample(eventArb, { numRuns: n, seed })
    .map((e) => ({ ...e, time: from + Math.floor(r() * days * DAY_MS) }))
    .sort((a, b) => a.time - b.time);
}

/** What the aggregates hold, from a second connection: per table, the number of events summed. */
function aggregateSums(path: string): { minute: number; hour: number; rollup: number; events: number } {
  const [row] = rawSql<{ minute: number; hour: number; rollup: number; events: number }>(
    path,
    `SELECT (SELECT coalesce(sum(count), 0) FROM series_minute) AS minute, (SELECT coalesce(sum(count), 0) FROM series_hour) AS hour,
            (SELECT coalesce(sum(count), 0) FROM rollup_daily) AS rollup, (SELECT count(*) FROM events) AS events`,
  );
  return row!;
}

const STORE_MODULE = pathToFileURL(join(process.cwd(), 'dist/querylog/store/sqlite-store.js')).href;

/**
 * The writer in a child process (the built store of dist/, which the global setup compiles):
 * writes `first` and flushes it (events, aggregates and their watermark), then writes `late`
 * and, once the writer has drained it into the events table, says so; the test then SIGKILLs
 * it, well before the store's 5 s aggregate timer, so the aggregates of `late` die with it.
 */
const CHILD = `
const { readFileSync } = await import('node:fs');
const { SqliteStore } = await import(process.env.STORE_MODULE);
const { first, late, now } = JSON.parse(readFileSync(process.env.EVENTS_FILE, 'utf8'));
const store = new SqliteStore(process.env.DB_FILE, { instance: 'a', retentionDays: 30, rollupRetentionDays: 400, spillEvents: 1e6, now: () => now, warn: (m) => process.stderr.write(m + '\\n') });
store.write(first);
await store.flush();
for (let i = 0; i < late.length; i += 64) store.write(late.slice(i, i + 64));
const wait = () => (store.health().pending === 0 ? process.stdout.write('drained ' + store.health().written + '\\n') : setTimeout(wait, 1));
wait();
setInterval(() => {}, 60_000);
`;

async function killedWriter(path: string, first: QueryEvent[], late: QueryEvent[]): Promise<void> {
  const file = join(tempDir(), 'events.json');
  writeFileSync(file, JSON.stringify({ first, late, now: NOW }));
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: { ...process.env, STORE_MODULE, EVENTS_FILE: file, DB_FILE: path },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve();
    });
    void exited.then(() => reject(new Error(`the writer exited before it drained: ${err}`)));
  });
  child.kill('SIGKILL');
  await exited;
  expect(child.signalCode).toBe('SIGKILL');
  expect(out.trim()).toBe(`drained ${first.length + late.length}`);
}

describe('SQLite store: aggregates after a crash', () => {
  it('a writer killed before its aggregates were written: reopened, every event is counted once', async () => {
    const path = join(tempDir(), 'q.db');
    const first = randomEvents(700, 3, T0, 2);
    // After the first flush: newer events, and late ones (older than the newest already summed:
    // a worker's batch that arrives after another's, a spill written after an outage).
    const late = [...randomEvents(300, 4, T0 + 2 * DAY_MS, 1), ...randomEvents(300, 5, T0, 2)];
    await killedWriter(path, first, late);
    // What the kill left: every event in the table, the aggregates of `first` only.
    expect(aggregateSums(path)).toEqual({ minute: first.length, hour: first.length, rollup: first.length, events: first.length + late.length });

    const all = [...first, ...late];
    const check = async (store: SqliteStore) => {
      expect(aggregateSums(path)).toEqual({ minute: all.length, hour: all.length, rollup: all.length, events: all.length });
      for (const by of ['day', 'week', 'month'] as const) expect(await store.trend({ by })).toEqual(trendReport(all, { by }));
      const f = { since: T0, until: T0 + 3 * DAY_MS };
      expectSameSummary(await store.summary(f, { now: NOW }), summarize(all, f, { now: NOW }), f, 'summary');
      expectSameSummary(
        await store.summary({ since: T0 + DAY_MS, until: T0 + DAY_MS + 2 * HOUR }, { now: NOW }),
        summarize(all, { since: T0 + DAY_MS, until: T0 + DAY_MS + 2 * HOUR }, { now: NOW }),
        f,
        'two hours',
      );
    };
    let store = new SqliteStore(path, options());
    await check(store);
    // A clean close and a reopen sum nothing twice.
    await store.close();
    store = new SqliteStore(path, options());
    await check(store);
    await store.close();
  });

  it('migrates a version-4 file: blocked events get their level, and report devices reads them as before', async () => {
    const path = join(tempDir(), 'q.db');
    const blocked = Array.from({ length: 400 }, (_, i) =>
      event({
        time: T0 + i * MINUTE,
        client: `10.1.0.${i % 7}`,
        network: i % 3 ? 'm-internal' : 'm-comms',
        policy: 'app-ban',
        list: i % 2 ? 'tiktok' : 'temu',
        rule: `r${i % 40}.example`,
        name: `n${i % 50}.r${i % 40}.example`,
        type: i % 5 ? 'A' : 'AAAA',
        decision: 'blocked',
        upstream: null,
        rcode: 3,
        answers: 0,
      }),
    );
    const first = [...blocked.slice(0, 300), ...randomEvents(200, 5, T0, 1)];
    let store = new SqliteStore(path, options());
    expect(store.write(first)).toBe(true);
    await store.close();
    // Back to version 4: no grp column, the device index over shapes.
    const db = new Database(path);
    db.exec(`DROP INDEX events_blocked_by_client; ALTER TABLE events DROP COLUMN grp;
      CREATE INDEX events_blocked_by_client ON events(client, shape, id, name) WHERE mark = 1; PRAGMA user_version = 4;`);
    db.close();
    store = new SqliteStore(path, options());
    expect(await store.devices({})).toEqual(devicesReport(first));
    // Every blocked event has the lowest shape of its fields but the rule as its level.
    const levels = rawSql<{ grp: number | null; n: number; lowest: number }>(
      path,
      `SELECT e.grp, count(*) AS n, (SELECT min(b.id) FROM shapes b WHERE b.network IS s.network AND b.list IS s.list AND b.qtype = s.qtype AND b.decision = s.decision) AS lowest
       FROM events e JOIN shapes s ON s.id = e.shape WHERE e.mark = 1 AND s.network LIKE 'm-%' GROUP BY e.grp, s.network, s.list, s.qtype`,
    );
    expect(levels.every((l) => l.grp === l.lowest)).toBe(true);
    expect(levels.reduce((n, l) => n + l.n, 0)).toBe(300);
    expect(levels).toHaveLength(8); // two networks × two lists × two types
    // New events after the migration go to the same levels.
    expect(store.write(blocked.slice(300))).toBe(true);
    await store.flush();
    const all = [...first, ...blocked.slice(300)];
    expect(await store.devices({})).toEqual(devicesReport(all));
    expect(await store.devices({ network: 'm-comms' })).toEqual(devicesReport(all, { network: 'm-comms' }));
    expect(rawSql<{ n: number }>(path, 'SELECT count(*) AS n FROM events WHERE mark = 1 AND grp IS NULL')[0]!.n).toBe(0);
    await store.close();
  });

  it('clean closes and reopens count every event exactly once', async () => {
    const path = join(tempDir(), 'q.db');
    const all: QueryEvent[] = [];
    for (let round = 0; round < 3; round++) {
      const store = new SqliteStore(path, options());
      // Each round has newer and late events.
      const batch = [...randomEvents(200, 10 + round, T0 + round * DAY_MS, 1), ...randomEvents(100, 20 + round, T0, 1)];
      expect(store.write(batch)).toBe(true);
      all.push(...batch);
      await store.close();
      expect(aggregateSums(path)).toEqual({ minute: all.length, hour: all.length, rollup: all.length, events: all.length });
    }
    const store = new SqliteStore(path, options());
    expect(aggregateSums(path)).toEqual({ minute: all.length, hour: all.length, rollup: all.length, events: all.length });
    expect(await store.trend({ by: 'day' })).toEqual(trendReport(all, { by: 'day' }));
    await store.close();
  });
});

// -------------------------------------------------------------------------------------------------

describe('SQLite store: retention', () => {
  it('deletes raw events, series and rollup past their retention; covers says so; trend reaches back with the rollup', async () => {
    const path = join(tempDir(), 'q.db');
    let now = T0 - 30 * DAY_MS;
    const store = new SqliteStore(path, options({ retentionDays: 3, rollupRetentionDays: 5, now: () => now }));
    const day = (d: number) => T0 - d * DAY_MS;
    // One blocked event of its own client per day, 8 days back; 25,000 more on day 6 (the
    // deletes go 10,000 rows a statement).
    const events = Array.from({ length: 8 }, (_, d) =>
      event({ time: day(d) + 10 * HOUR, client: `10.0.0.${d}`, decision: 'blocked', policy: 'app-ban', list: 'tiktok', rule: 'tiktok.com', name: 'www.tiktok.com', upstream: null, rcode: 3 }),
    );
    const bulk = Array.from({ length: 25_000 }, (_, i) => event({ time: day(6) + i * 1000, client: `10.0.${i % 200}.1` }));
    // Written while the clock is 30 days back, so that nothing is past retention yet.
    expect(store.write([...bulk, ...events])).toBe(true);
    await store.flush();
    expect((await store.query({}, 1)).total).toBe(25_008);
    expect((await store.covers({ since: day(7) })).complete).toBe(true);

    now = T0 + 12 * HOUR;
    await store.enforceRetention(now);
    const rawCut = day(2);
    const rollupCut = day(4);
    expect((await store.events({})).map((e) => e.client)).toEqual(['10.0.0.2', '10.0.0.1', '10.0.0.0']);
    const [minutes] = rawSql<{ lo: number; n: number }>(path, 'SELECT min(minute) AS lo, sum(count) AS n FROM series_minute');
    expect(minutes).toEqual({ lo: (day(2) + 10 * HOUR) / MINUTE, n: 3 });
    const [hours] = rawSql<{ lo: number; n: number }>(path, 'SELECT min(hour) AS lo, sum(count) AS n FROM series_hour');
    expect(hours).toEqual({ lo: (day(4) + 10 * HOUR) / HOUR, n: 5 });
    expect(rawSql<{ day: string }>(path, 'SELECT DISTINCT day FROM rollup_daily ORDER BY day').map((r) => r.day)).toEqual([4, 3, 2, 1, 0].map((d) => utcDay(day(d))));
    expect(rawSql<{ kind: string; cut: number }>(path, 'SELECT kind, cut FROM retention ORDER BY kind')).toEqual([
      { kind: 'raw', cut: rawCut },
      { kind: 'rollup', cut: rollupCut },
    ]);

    const c = await store.covers({ since: day(7), until: T0 });
    expect(c.complete).toBe(false);
    expect(c.notes).toContain(`raw events before ${new Date(rawCut).toISOString()} are no longer held (retention 3 days)`);
    expect(c.held).toEqual({ oldest: day(2) + 10 * HOUR, newest: T0 + 10 * HOUR });
    expect((await store.covers({ since: day(1) })).complete).toBe(true);
    // Days 4 and 3 have no raw events any more; the trend still has them, from the rollup.
    const trend = await store.trend({ by: 'day' });
    expect(trend).toEqual(
      trendReport(
        events.filter((e) => e.time >= rollupCut),
        { by: 'day' },
      ),
    );
    expect(trend.map((t) => t.period)).toEqual([4, 3, 2, 1, 0].map((d) => utcDay(day(d))));
    // Run again: nothing more goes, the cuts stay.
    await store.enforceRetention(now);
    expect((await store.query({}, 1)).total).toBe(3);
    await store.close();
  });
});

describe('SQLite store: erase', () => {
  it('removes a client from raw events and the rollup, writes an erasures row, and leaves the others', async () => {
    const path = join(tempDir(), 'q.db');
    const store = new SqliteStore(path, options());
    const x = '10.6.6.6';
    const y = 'p:00000000deadbeef';
    const others = randomEvents(400, 7, T0, 3);
    const mine = (client: string) =>
      [0, 1, 2].flatMap((d) => [
        event({ time: T0 + d * DAY_MS + HOUR, client, decision: 'blocked', policy: 'app-ban', list: 'tiktok', rule: 'tiktok.com', name: 'www.tiktok.com', upstream: null, rcode: 3 }),
        event({ time: T0 + d * DAY_MS + 2 * HOUR, client }),
      ]);
    const all = [...others, ...mine(x), ...mine(y)];
    expect(store.write(all)).toBe(true);
    await store.flush();
    const rollupOf = (client: string) => rawSql<{ day: string; count: number }>(path, 'SELECT day, count FROM rollup_daily WHERE client = ? ORDER BY day, decision', client);
    const othersRollup = rawSql<Record<string, unknown>>(path, 'SELECT * FROM rollup_daily WHERE client NOT IN (?, ?) ORDER BY day, client, decision, network, policy, list, instance', x, y);
    expect(rollupOf(x)).toHaveLength(6);

    expect(await store.erase(x)).toEqual({ events: 6, rollups: 6 });
    const eventsOf = (client: string) => rawSql<{ n: number }>(path, 'SELECT count(*) AS n FROM events e JOIN clients c ON c.id = e.client WHERE c.client = ?', client)[0]!.n;
    expect(eventsOf(x)).toBe(0);
    expect(rollupOf(x)).toEqual([]);
    // y before the second day: its first day's two events and rollup rows.
    expect(await store.erase(y, T0 + DAY_MS)).toEqual({ events: 2, rollups: 2 });
    expect(eventsOf(y)).toBe(4);
    expect(rollupOf(y).map((r) => r.day)).toEqual([1, 1, 2, 2].map((d) => utcDay(T0 + d * DAY_MS)));
    expect(rawSql(path, 'SELECT time, client, before, events, rollups FROM erasures ORDER BY rowid')).toEqual([
      { time: NOW, client: x, before: null, events: 6, rollups: 6 },
      { time: NOW, client: y, before: T0 + DAY_MS, events: 2, rollups: 2 },
    ]);
    // Everyone else is as it was.
    const kept = [...others, ...mine(y).filter((e) => e.time >= T0 + DAY_MS)];
    expect(canonical(await store.events({}))).toEqual(canonical(kept));
    expect(rawSql(path, 'SELECT * FROM rollup_daily WHERE client NOT IN (?, ?) ORDER BY day, client, decision, network, policy, list, instance', x, y)).toEqual(othersRollup);
    expect(await store.devices({})).toEqual(devicesReport(kept));
    expect(await store.trend({ by: 'day' })).toEqual(trendReport(kept, { by: 'day' }));
    await store.close();
  });
});

// -------------------------------------------------------------------------------------------------

describe('SQLite store: a read-only reader next to the writer', () => {
  it('sees what the writer committed, slice by slice, and the shapes it adds later', async () => {
    const path = join(tempDir(), 'q.db');
    const writer = new SqliteStore(path, options());
    const first = randomEvents(300, 8, T0, 1);
    expect(writer.write(first)).toBe(true);
    await writer.flush();
    const reader = new SqliteStore(path, options({ readOnly: true }));
    expect(canonical(await reader.events({}))).toEqual(canonical(first));
    expect(reader.write([event()])).toBe(false);

    // 20,000 events the writer takes in its own time-budgeted slices of 1,024 (one transaction
    // each), while the reader reads between them: it sees whole slices only, and sees them grow.
    const bulk = Array.from({ length: 20_000 }, (_, i) => event({ time: T0 + DAY_MS + i, client: `10.2.${(i >> 8) & 255}.${i & 255}` }));
    expect(writer.write(bulk)).toBe(true);
    const seen = new Set<number>();
    while (writer.health().pending > 0) {
      const n = (await reader.query({ since: T0 + DAY_MS }, 1)).total;
      expect(n % 1024 === 0 || n === bulk.length, `${n} is not a whole number of slices`).toBe(true);
      expect(n).toBeLessThanOrEqual(writer.health().written - first.length);
      seen.add(n);
      await new Promise((r) => setImmediate(r));
    }
    expect(
      [...seen].some((n) => n > 0 && n < bulk.length),
      `the reader saw only ${[...seen].join(', ')}`,
    ).toBe(true);
    expect((await reader.query({ since: T0 + DAY_MS }, 1)).total).toBe(bulk.length);

    // Shapes the writer adds after the reader loaded its own: a new network, policy, list, type.
    const later = [
      event({
        time: T0 + 2 * DAY_MS,
        network: 'lab',
        profile: 'lab',
        policy: 'lab-ban',
        list: 'lab-list',
        rule: 'lab.example',
        name: 'x.lab.example',
        type: 'SVCB',
        decision: 'blocked',
        upstream: null,
        rcode: 3,
      }),
      event({ time: T0 + 2 * DAY_MS + 1, network: 'lab', profile: 'lab', name: 'dns.google', type: 'TXT', transport: 'tcp', instance: 'b' }),
    ];
    expect(writer.write(later)).toBe(true);
    await writer.flush();
    expect(await reader.events({ since: T0 + 2 * DAY_MS })).toEqual(later);
    expect(await reader.events({ network: 'lab', decision: 'blocked' })).toEqual([later[0]]);
    expect(await reader.devices({ policy: 'lab-ban' })).toEqual(devicesReport(later, { policy: 'lab-ban' }));
    const all = [...first, ...bulk, ...later];
    expect(await reader.bypass({ classify })).toEqual(bypassReport(all, { classify }));
    const f = { since: T0, until: T0 + 3 * DAY_MS };
    expectSameSummary(await reader.summary(f, { now: NOW }), summarize(all, f, { now: NOW }), f, 'reader summary');
    expect(await reader.trend({ by: 'week' })).toEqual(trendReport(all, { by: 'week' }));
    await reader.close();
    await writer.close();
  });

  it('refuses batches beyond the spill and counts them', async () => {
    const store = new SqliteStore(join(tempDir(), 'q.db'), options({ spillEvents: 1000 }));
    expect(store.write(randomEvents(600, 1))).toBe(true);
    expect(store.write(randomEvents(400, 2))).toBe(true);
    expect(store.write(randomEvents(10, 3))).toBe(false);
    expect(store.health()).toMatchObject({ pending: 1000, refused: 10, written: 0 });
    await store.flush();
    expect(store.health()).toMatchObject({ ok: true, pending: 0, refused: 10, written: 1000 });
    await store.close();
  });
});
