// The PostgreSQL query-log store's targets, measured on this machine (loopback only):
//
//   1. ingest: events offered at RATE/s (default 60,000) for DURATION s (default 60) through
//      PostgresStore#write in batches of 256, as the query-log buffer hands them over; reports
//      the events committed per second over the run, the backlog at its end, drops (refused
//      batches), and how long the final flush took. Target: >= 50k/s sustained, 0 dropped.
//   2. devices: the devices report over SIZES stored events (default 20M and 2M) of which
//      BLOCKED (default 200k) are blocked by a policy, seeded server-side with
//      INSERT ... SELECT generate_series over 20 daily partitions (5,000 clients, of which 500
//      are blocked, from 3 lists on 2 networks); the median of 5 runs, plus the
//      same at 2M with a tenth of the blocked events (the cost follows the matching events).
//      Target: <= 1 s at 20M / 200k.
//
//   npm run build && node bench/querylog-pg.mjs [ingest] [devices]
//
// Knobs (env): SLUICE_BENCH_PG_URL (else SLUICE_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres;
// a database sluice_bench_<random> is created there and dropped at the end, KEEP=1 keeps it),
// RATE, DURATION (s), SIZES ("20000000,2000000"), BLOCKED (200000), NOVACUUM=1 (seed without VACUUM:
// no index-only scans yet), JSON=1 (one JSON line of results).
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { URL } from 'node:url';
import pg from 'pg';
import { PostgresStore } from '../dist/querylog/store/postgres-store.js';
import { ensureDayPartitions, migratePostgres } from '../dist/querylog/store/postgres-schema.js';

const admin = process.env.SLUICE_BENCH_PG_URL ?? process.env.SLUICE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const RATE = Number(process.env.RATE ?? 60_000);
const DURATION = Number(process.env.DURATION ?? 60);
const SIZES = (process.env.SIZES ?? '20000000,2000000').split(',').map(Number);
const BLOCKED = Number(process.env.BLOCKED ?? 200_000);
const phases = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const want = (p) => phases.length === 0 || phases.includes(p);
const results = {};
const log = (...a) => {
  if (!process.env.JSON) console.log(...a);
};

async function withDatabase(fn) {
  const name = `sluice_bench_${randomBytes(5).toString('hex')}`;
  const a = new pg.Client({ connectionString: admin });
  await a.connect();
  await a.query(`CREATE DATABASE ${name}`);
  await a.end();
  const u = new URL(admin);
  u.pathname = `/${name}`;
  try {
    return await fn(u.toString());
  } finally {
    if (!process.env.KEEP) {
      const b = new pg.Client({ connectionString: admin });
      await b.connect();
      await b.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await b.end();
    } else log(`kept database ${name}`);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. ingest

/** Traffic like a resolver's: 5,000 clients, 2,000 names, 1% blocked, 40% cache hits. */
function eventFactory() {
  const clients = Array.from({ length: 5000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  const names = Array.from({ length: 2000 }, (_, i) => `host${i}.example${i % 97}.org`);
  let i = 0;
  return (time) => {
    i++;
    const blocked = i % 100 === 0;
    const cache = !blocked && i % 5 < 2;
    return {
      time,
      instance: 'bench',
      client: clients[(i * 7919) % clients.length],
      network: i % 3 === 0 ? 'guest' : 'internal',
      profile: i % 3 === 0 ? 'open' : 'staff',
      policy: blocked ? 'app-ban' : null,
      list: blocked ? 'tiktok' : null,
      rule: blocked ? 'tiktok.com' : null,
      name: blocked ? 'www.tiktok.com' : names[(i * 104729) % names.length],
      type: i % 4 === 0 ? 'AAAA' : 'A',
      decision: blocked ? 'blocked' : 'allowed',
      wouldBlock: false,
      exception: false,
      cache,
      upstream: blocked || cache ? null : '192.0.2.53:53',
      rcode: blocked ? 3 : 0,
      answers: blocked ? 0 : 1,
      durationMs: blocked || cache ? 0.05 : 3.5,
      transport: 'udp',
    };
  };
}

async function ingest(url) {
  const warnings = [];
  const store = await PostgresStore.open(url, {
    instance: 'bench',
    retentionDays: 30,
    rollupRetentionDays: 400,
    spillEvents: 1_000_000,
    now: () => Date.now(),
    warn: (m, f) => warnings.push(`${m} ${JSON.stringify(f ?? {})}`),
  });
  const make = eventFactory();
  const batch = 256;
  const start = performance.now();
  let offered = 0;
  let refused = 0;
  let samples = [];
  let lastWritten = 0;
  let lastT = start;
  const sampler = setInterval(() => {
    const t = performance.now();
    const w = store.health().written;
    samples.push(((w - lastWritten) * 1000) / (t - lastT));
    lastWritten = w;
    lastT = t;
  }, 5000);
  // Offer RATE events a second, in batches, on a 10 ms timer: what the buffer does under load.
  await new Promise((resolve) => {
    const tick = () => {
      const elapsed = (performance.now() - start) / 1000;
      if (elapsed >= DURATION) return resolve();
      const due = Math.floor(elapsed * RATE) - offered;
      for (let n = 0; n < due; n += batch) {
        const k = Math.min(batch, due - n);
        const now = Date.now();
        const b = new Array(k);
        for (let j = 0; j < k; j++) b[j] = make(now);
        if (!store.write(b)) refused += k;
        offered += k;
      }
      setTimeout(tick, 10);
    };
    tick();
  });
  clearInterval(sampler);
  const runSeconds = (performance.now() - start) / 1000;
  const h = store.health();
  const inRun = h.written;
  const f0 = performance.now();
  await store.flush();
  const flushSeconds = (performance.now() - f0) / 1000;
  const h2 = store.health();
  await store.close();
  const r = {
    offeredPerSecond: Math.round(offered / runSeconds),
    writtenPerSecond: Math.round(inRun / runSeconds),
    minPer5s: Math.round(Math.min(...samples.slice(1))),
    backlogAtEnd: h.pending,
    flushSeconds: Number(flushSeconds.toFixed(2)),
    written: h2.written,
    refused: refused + h2.refused,
    failures: h2.failures,
    seconds: Number(runSeconds.toFixed(1)),
  };
  log(
    `ingest: offered ${r.offeredPerSecond}/s for ${r.seconds} s; committed ${r.writtenPerSecond}/s during the run (slowest 5 s: ${r.minPer5s}/s), backlog ${r.backlogAtEnd} at the end (flushed in ${r.flushSeconds} s); ${r.refused} refused, ${r.failures} failures`,
  );
  for (const w of warnings) log(`  warn: ${w}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// 2. devices

const DAYS = 20;
const DAY0 = Date.parse('2026-11-01T00:00:00Z');

async function seed(url, total, blocked) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await migratePostgres(c);
  await ensureDayPartitions(
    c,
    Array.from({ length: DAYS }, (_, d) => new Date(DAY0 + d * 86_400_000).toISOString().slice(0, 10)),
  );
  const t0 = performance.now();
  const every = Math.floor(total / blocked);
  const perDay = Math.ceil(total / DAYS);
  for (let d = 0; d < DAYS; d++) {
    const from = d * perDay;
    const to = Math.min(total, from + perDay) - 1;
    if (to < from) break;
    // One statement per day's partition, so each is a sequential append like real ingest.
    await c.query(
      `INSERT INTO query_events (time, instance, client, network, profile, policy, list, rule, name, qtype, decision, would_block, exception, cache, upstream, rcode, answers, duration_ms, transport)
       SELECT to_timestamp(${DAY0 / 1000} + i::float8 * ${(DAYS * 86400) / total}), 'bench',
         '10.1.' || (i * 7919 % 5000 / 250) || '.' || (i * 7919 % 5000 % 250),
         CASE WHEN i % 3 = 0 THEN 'guest' ELSE 'internal' END, CASE WHEN i % 3 = 0 THEN 'open' ELSE 'staff' END,
         CASE WHEN b THEN 'app-ban' END, CASE WHEN b THEN (ARRAY['tiktok','temu','telegram'])[1 + i % 3] END, CASE WHEN b THEN 'tiktok.com' END,
         CASE WHEN b THEN (ARRAY['www.tiktok.com','log.tiktokv.com','api16-normal-c-useast1a.tiktokv.com','temu.com'])[1 + i % 4] ELSE 'host' || (i % 2000) || '.example.org' END,
         'A', CASE WHEN b THEN 'blocked' ELSE 'allowed' END, false, false, i % 5 < 2,
         CASE WHEN b OR i % 5 < 2 THEN NULL ELSE '192.0.2.53:53' END, CASE WHEN b THEN 3 ELSE 0 END, CASE WHEN b THEN 0 ELSE 1 END, 3.5, 'udp'
       FROM generate_series(${from}::bigint, ${to}::bigint) AS i, LATERAL (SELECT i % ${every} = 0 AS b) AS x`,
    );
  }
  // What autovacuum does to an append-only table soon after: statistics and the visibility map
  // (NOVACUUM=1: statistics only, so the devices report reads the table too).
  await c.query(process.env.NOVACUUM ? 'ANALYZE query_events' : 'VACUUM ANALYZE query_events');
  const [{ n, k }] = (await c.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE decision = 'blocked')::int AS k FROM query_events`)).rows;
  const [{ bytes }] = (await c.query(`SELECT sum(pg_total_relation_size(inhrelid))::float8 AS bytes FROM pg_inherits WHERE inhparent = 'query_events'::regclass`)).rows;
  await c.end();
  log(`seeded ${n} events (${k} blocked) in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${Math.round(bytes / n)} bytes per event with indexes`);
  return { n, k, bytesPerEvent: Math.round(bytes / n) };
}

async function timeIt(fn, runs = 5) {
  const times = [];
  let out;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    out = await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { ms: Math.round(times[Math.floor(runs / 2)]), out };
}

async function devices(url, total, blocked) {
  const { n, k, bytesPerEvent } = await seed(url, total, blocked);
  const store = await PostgresStore.open(url, { instance: 'bench', retentionDays: 3650, rollupRetentionDays: 3650, spillEvents: 1000, now: () => Date.now(), warn: () => undefined, readOnly: true });
  const all = await timeIt(() => store.devices({}));
  const policy = await timeIt(() => store.devices({ policy: 'app-ban', since: DAY0 + 10 * 86_400_000 }));
  const covers = await timeIt(() => store.covers({ since: DAY0, until: DAY0 + DAYS * 86_400_000 }));
  const page = await timeIt(() => store.query({ decision: 'blocked' }, 100));
  await store.close();
  const rows = all.out.length;
  const counted = all.out.reduce((a, r) => a + r.count, 0);
  log(
    `devices over ${n} events, ${k} blocked: ${all.ms} ms (${rows} rows, ${counted} queries); last 10 days, one policy: ${policy.ms} ms; covers: ${covers.ms} ms; first page of --blocked: ${page.ms} ms`,
  );
  return { events: n, blocked: k, bytesPerEvent, devicesMs: all.ms, rows, counted, devicesHalfRangeMs: policy.ms, coversMs: covers.ms, blockedPageMs: page.ms };
}

if (want('ingest')) results.ingest = await withDatabase(ingest);
if (want('devices')) {
  results.devices = [];
  for (const size of SIZES) results.devices.push(await withDatabase((url) => devices(url, size, BLOCKED)));
  const small = Math.min(...SIZES);
  results.devices.push(await withDatabase((url) => devices(url, small, Math.max(1, Math.floor(BLOCKED / 10)))));
}
if (process.env.JSON) console.log(JSON.stringify(results));
