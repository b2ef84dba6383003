// The SQLite query-log store without DNS in front, for bench/querylog.sh (`npm run bench:querylog`).
// Measures dist/ (run `npm run build` first); every event goes through SqliteStore#write, so the
// schema and encoding are the store's own.
//
//   node bench/querylog-sqlite.mjs ingest DIR    1. offered RATE events/s for DURATION s through
//        write() in batches of 256 on a 10 ms timer (what the query-log buffer does), to the store
//        as the server runs it (ThreadedSqliteStore: the writer in its own thread at nice 19), with
//        the spill of a default config (SPILL to change it): events/s written,
//        refused (dropped), backlog at the end; 2. the raw capacity: batches of RAW_BATCH events,
//        write() then flush() on this thread, for DURATION s: events/s over the time spent in the
//        store; 3. bytes per event of that file after wal_checkpoint(TRUNCATE).
//   node bench/querylog-sqlite.mjs seed FILE N   N events over the 30 days before now, BLOCKED_SHARE
//        of them blocked by a policy, written through SqliteStore in flush()ed batches of RAW_BATCH.
//   node bench/querylog-sqlite.mjs devices FILE  the devices report of the last 30 days in this
//        process (median of RUNS), without the CLI's start-up: how the CLI's time splits.
//
// Events (the same generator everywhere): names Zipf-distributed over 200,000 names plus 10 %
// names never seen before (CDN hashes), 3,000 clients (Zipf-ish; the guest network's pseudonymised),
// four networks as in config/sluice.yaml, 1 % blocked by the app-ban policy (12 lists), 60 % of the
// allowed from the cache, A/AAAA/HTTPS, times at RATE events per second of real time.
// Prints one JSON line of results on stdout; progress on stderr.
import Database from 'better-sqlite3';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { queryLogStoreSchema } from '../dist/config/schema.js';
import { SqliteStore } from '../dist/querylog/store/sqlite-store.js';
import { ThreadedSqliteStore } from '../dist/querylog/store/sqlite-thread.js';

const RATE = Number(process.env.RATE ?? 150_000);
const DURATION = Number(process.env.DURATION ?? 60);
const RAW_BATCH = Number(process.env.RAW_BATCH ?? 100_000);
const BLOCKED_SHARE = Number(process.env.BLOCKED_SHARE ?? 0.01);
const RUNS = Number(process.env.RUNS ?? 5);
const DAY = 86_400_000;
const say = (...a) => console.error('querylog-sqlite:', ...a);

/** mulberry32: deterministic. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A sampler of 0..n-1 with P(k) ~ 1/(k+1)^s. */
function zipf(n, s, rnd) {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, s);
  for (let k = 0; k < n; k++) cdf[k] /= sum;
  return () => {
    const u = rnd();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

const BLOCKED = [
  ['tiktok', 'tiktok.com', ['www.tiktok.com', 'log.tiktokv.com', 'api16-normal-c-useast1a.tiktokv.com', 'v16-webapp.tiktok.com', 'mon.tiktokv.com']],
  ['bytedance-shared', 'ibytedtos.com', ['sf16-website-login.neutral.ttwstatic.com', 'p16-sign-va.tiktokcdn.com', 'lf16-tiktok-common.ibytedtos.com']],
  ['temu', 'temu.com', ['www.temu.com', 'api.temu.com', 'img.kwcdn.com']],
  ['shein', 'shein.com', ['www.shein.com', 'api-service.shein.com']],
  ['wechat', 'wechat.com', ['long.weixin.qq.com', 'dns.weixin.qq.com']],
  ['capcut', 'capcut.com', ['www.capcut.com']],
  ['lemon8', 'lemon8-app.com', ['www.lemon8-app.com']],
  ['pinduoduo', 'pinduoduo.com', ['mobile.yangkeduo.com']],
  ['ucbrowser', 'ucweb.com', ['ucweb.com', 'u.ucweb.com']],
  ['camscanner', 'camscanner.com', ['www.camscanner.com']],
  ['turbovpn', 'turbovpn.com', ['api.turbovpn.com']],
  ['shareit', 'ushareit.com', ['api.ushareit.com']],
];

/** make(time) → one event. Deterministic for a seed. */
export function eventFactory(seed = 1) {
  const rnd = prng(seed);
  const words = 'mail web cdn api static img news shop cloud edge sync data app go my portal login video media play maps stats intranet docs'.split(' ');
  const tlds = ['com', 'com', 'com', 'net', 'org', 'be', 'nl', 'io', 'de', 'fr', 'eu'];
  const names = Array.from({ length: 200_000 }, (_, i) => {
    const w = words[i % words.length];
    const base = `${words[(i * 7) % words.length]}${i}.${tlds[(i * 13) % tlds.length]}`;
    return i % 3 === 0 ? base : `${w}.${base}`;
  });
  const pickName = zipf(names.length, 1.0, rnd);
  const pickClient = zipf(3000, 0.7, rnd);
  const clients = Array.from({ length: 3000 }, (_, i) => {
    if (i % 10 < 7) return { addr: `10.${1 + (i >> 8)}.${i & 255}.${(i * 7) & 255}`, network: 'internal', profile: 'staff' };
    if (i % 10 < 9) return { addr: `p:${((i * 2654435761) >>> 0).toString(16).padStart(8, '0')}${((i * 40503) >>> 0).toString(16).padStart(8, '0')}`, network: 'guest', profile: 'open' };
    return i % 20 === 9 ? { addr: `10.3.0.${i & 255}`, network: 'comms', profile: 'staff' } : { addr: `10.2.${i >> 8}.${i & 255}`, network: 'school', profile: 'open' };
  });
  const staff = clients.filter((c) => c.network === 'internal');
  const types = ['A', 'A', 'A', 'A', 'A', 'A', 'AAAA', 'AAAA', 'AAAA', 'HTTPS'];
  const upstreams = ['127.0.0.1:5629', '127.0.0.1:5630'];
  let uniq = 0;
  return (time) => {
    const r = rnd();
    if (r < BLOCKED_SHARE) {
      // blocked by the policy: a few hundred staff devices that still have an app
      const [list, rule, hosts] = BLOCKED[Math.floor(rnd() * rnd() * BLOCKED.length)];
      const c = staff[Math.floor(rnd() * 400) % staff.length];
      return {
        time,
        instance: 'dns1',
        client: c.addr,
        network: 'internal',
        profile: 'staff',
        policy: 'app-ban',
        list,
        rule,
        name: hosts[Math.floor(rnd() * hosts.length)],
        type: rnd() < 0.7 ? 'A' : 'AAAA',
        decision: 'blocked',
        wouldBlock: false,
        exception: false,
        cache: false,
        upstream: null,
        rcode: 3,
        answers: 0,
        durationMs: 0.03,
        transport: 'udp',
      };
    }
    const c = clients[pickClient()];
    const cache = rnd() < 0.6;
    const name = rnd() < 0.1 ? `x${(uniq++).toString(36)}${Math.floor(rnd() * 1e9).toString(36)}.cdn${uniq % 50}.example.net` : names[pickName()];
    const nx = rnd() < 0.03;
    return {
      time,
      instance: 'dns1',
      client: c.addr,
      network: c.network,
      profile: c.profile,
      policy: null,
      list: null,
      rule: null,
      name,
      type: types[Math.floor(rnd() * types.length)],
      decision: 'allowed',
      wouldBlock: false,
      exception: false,
      cache,
      upstream: cache ? null : upstreams[rnd() < 0.8 ? 0 : 1],
      rcode: nx ? 3 : 0,
      answers: nx ? 0 : 1 + Math.floor(rnd() * 3),
      durationMs: cache ? Math.round(20 + rnd() * 60) / 1000 : Math.round(Math.exp(rnd() * 4) * 1000) / 1000,
      transport: rnd() < 0.01 ? 'tcp' : 'udp',
    };
  };
}

function storeOptions(warnings, extra = {}) {
  return {
    instance: 'dns1',
    retentionDays: 3650,
    rollupRetentionDays: 3650,
    // the spill of a default config (query_log.store.spill_events), unless SPILL says otherwise
    spillEvents: Number(process.env.SPILL ?? queryLogStoreSchema.parse({}).spill_events),
    now: () => Date.now(),
    warn: (m) => warnings.push(m),
    ...extra,
  };
}

function openStore(file, extra = {}) {
  const warnings = [];
  return { store: new SqliteStore(file, storeOptions(warnings, extra)), warnings };
}

/** The store as the server opens it: the writer in a thread of its own. */
async function openThreaded(file) {
  const warnings = [];
  return { store: await ThreadedSqliteStore.open(file, storeOptions(warnings)), warnings };
}

function onDisk(file) {
  const db = new Database(file);
  db.pragma('wal_checkpoint(TRUNCATE)');
  const events = db.prepare('SELECT count(*) FROM events').pluck().get();
  let tables = {};
  try {
    for (const r of db.prepare('SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name').all()) tables[r.name] = r.bytes;
  } catch {
    tables = null; // no dbstat in this build
  }
  db.close();
  const bytes = statSync(file).size;
  return {
    events,
    bytes,
    bytesPerEvent: events ? Math.round((bytes / events) * 10) / 10 : null,
    eventsTableAndIndexPerEvent: tables && events ? Math.round((((tables.events ?? 0) + (tables.events_marked ?? 0) + (tables.events_blocked_by_client ?? 0)) / events) * 10) / 10 : null,
    tables,
  };
}

async function ingest(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const out = {};

  // 1. As the server writes: through the writer thread.
  {
    const { store, warnings } = await openThreaded(join(dir, 'threaded.db'));
    const make = eventFactory(1);
    const t0 = Date.now();
    const start = performance.now();
    let offered = 0;
    let refused = 0;
    let lastW = 0;
    let lastT = start;
    const per5 = [];
    const sampler = setInterval(() => {
      const t = performance.now();
      const w = store.health().written;
      per5.push(((w - lastW) * 1000) / (t - lastT));
      lastW = w;
      lastT = t;
    }, 5000);
    await new Promise((resolve) => {
      const tick = () => {
        const elapsed = (performance.now() - start) / 1000;
        if (elapsed >= DURATION) return resolve();
        const due = Math.floor(elapsed * RATE) - offered;
        for (let n = 0; n < due; n += 256) {
          const k = Math.min(256, due - n);
          const b = new Array(k);
          // each event its own arrival time, RATE a second (not one time per batch: a millisecond
          // holds at most 1,024 ids before the store probes for free ones)
          for (let j = 0; j < k; j++) b[j] = make(t0 + Math.floor(((offered + j) * 1000) / RATE));
          if (!store.write(b)) refused += k;
          offered += k;
        }
        setTimeout(tick, 10);
      };
      tick();
    });
    clearInterval(sampler);
    const seconds = (performance.now() - start) / 1000;
    const h = store.health();
    const f0 = performance.now();
    await store.close();
    out.threaded = {
      seconds: +seconds.toFixed(1),
      offeredPerSecond: Math.round(offered / seconds),
      writtenPerSecond: Math.round(h.written / seconds),
      slowest5sPerSecond: per5.length > 1 ? Math.round(Math.min(...per5.slice(1))) : null,
      refused,
      refusedShare: +(refused / offered).toFixed(4),
      backlogAtEnd: h.pending,
      flushSeconds: +((performance.now() - f0) / 1000).toFixed(2),
      warnings,
    };
    say(
      `threaded: offered ${out.threaded.offeredPerSecond}/s, written ${out.threaded.writtenPerSecond}/s, refused ${refused} (${(out.threaded.refusedShare * 100).toFixed(1)} %), backlog ${h.pending} at the end`,
    );
    rmSync(join(dir, 'threaded.db'), { force: true });
    rmSync(join(dir, 'threaded.db-wal'), { force: true });
    rmSync(join(dir, 'threaded.db-shm'), { force: true });
  }

  // 2. Raw capacity: write() + flush() on this thread; event times at RATE/s of real time.
  {
    const file = join(dir, 'raw.db');
    const { store, warnings } = openStore(file);
    const make = eventFactory(2);
    const t0 = Date.now() - Math.ceil((DURATION * 1.5 * 1e6) / RATE) * 1000; // room for the synthetic clock
    let i = 0;
    let inStore = 0;
    const start = performance.now();
    const per = [];
    while ((performance.now() - start) / 1000 < DURATION) {
      const b = new Array(RAW_BATCH);
      for (let j = 0; j < RAW_BATCH; j++, i++) b[j] = make(t0 + Math.floor((i * 1000) / RATE));
      const w0 = performance.now();
      if (!store.write(b)) throw new Error('refused');
      await store.flush();
      const dt = performance.now() - w0;
      inStore += dt;
      per.push((RAW_BATCH * 1000) / dt);
    }
    const seconds = (performance.now() - start) / 1000;
    await store.close();
    per.sort((a, b) => a - b);
    out.raw = {
      seconds: +seconds.toFixed(1),
      events: i,
      perSecondInStore: Math.round((i * 1000) / inStore),
      perSecondWall: Math.round(i / seconds),
      storeShareOfWall: +(inStore / 1000 / seconds).toFixed(2),
      slowestBatchPerSecond: Math.round(per[0]),
      medianBatchPerSecond: Math.round(per[Math.floor(per.length / 2)]),
      warnings,
    };
    say(`raw: ${i} events in ${seconds.toFixed(1)} s: ${out.raw.perSecondInStore}/s in the store (slowest batch ${out.raw.slowestBatchPerSecond}/s), ${out.raw.perSecondWall}/s with the generator`);
    out.disk = onDisk(file);
    say(`disk: ${out.disk.bytes} bytes / ${out.disk.events} events = ${out.disk.bytesPerEvent} bytes per event`);
  }
  return out;
}

async function seed(file, n) {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
  const { store, warnings } = openStore(file);
  const make = eventFactory(3);
  const until = Date.now() - 60_000;
  const since = Date.now() - 30 * DAY + 15 * 60_000; // inside `--since 30d` for a while
  const step = (until - since) / n;
  const t0 = performance.now();
  for (let i = 0; i < n;) {
    const k = Math.min(RAW_BATCH, n - i);
    const b = new Array(k);
    for (let j = 0; j < k; j++, i++) b[j] = make(Math.floor(since + i * step));
    store.write(b);
    await store.flush();
    if (i % 2_000_000 < RAW_BATCH) say(`seed: ${i} of ${n}`);
  }
  await store.close();
  const seconds = (performance.now() - t0) / 1000;
  const disk = onDisk(file);
  const db = new Database(file, { readonly: true });
  const blocked = db.prepare('SELECT count(*) FROM events WHERE mark = 1').pluck().get();
  db.close();
  return {
    events: disk.events,
    blocked,
    seconds: +seconds.toFixed(1),
    perSecond: Math.round(n / seconds),
    bytesPerEvent: disk.bytesPerEvent,
    eventsTableAndIndexPerEvent: disk.eventsTableAndIndexPerEvent,
    since,
    until,
    warnings,
  };
}

async function devices(file) {
  const { store } = openStore(file, { readOnly: true });
  const since = Date.now() - 30 * DAY;
  const times = [];
  let rows = 0;
  let counted = 0;
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    const out = await store.devices({ since });
    times.push(performance.now() - t);
    rows = out.length;
    counted = out.reduce((a, x) => a + x.count, 0);
  }
  await store.close();
  times.sort((a, b) => a - b);
  return { ms: Math.round(times[Math.floor(RUNS / 2)]), runs: times.map(Math.round), rows, counted };
}

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const [cmd, arg, n] = main ? process.argv.slice(2) : [];
let result;
if (!main) {
  // imported (eventFactory)
} else if (cmd === 'ingest') result = await ingest(arg);
else if (cmd === 'seed') result = await seed(arg, Number(n));
else if (cmd === 'devices') result = await devices(arg);
else {
  console.error('usage: querylog-sqlite.mjs ingest DIR | seed FILE N | devices FILE');
  process.exit(2);
}
if (main) console.log(JSON.stringify(result));
