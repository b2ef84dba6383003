// What QueryMetrics.observe() costs per query, blocked and allowed: `node bench/metrics-observe.mjs`
// after `npm run build` (it measures dist/). To compare builds, point DIST at copies of other
// builds' dist/ (with node_modules beside them), e.g. DIST=/tmp/old/dist, several joined by ':':
// the runs of all of them alternate in one process, so a busy machine slows them alike. Prints the median ns per call over RUNS runs.
import { pathToFileURL, URL } from 'node:url';

const N = Number(process.env.N ?? 5_000_000);
const RUNS = Number(process.env.RUNS ?? 9);

const builds = [['dist', new URL('../dist/', import.meta.url).href]];
for (const d of (process.env.DIST ?? '').split(':').filter(Boolean)) builds.push([d, pathToFileURL(`${d}/`).href]);

const network = (name, profile) => ({ name, metricsKey: `${name}|${profile}` });
const nets = [network('internal', 'staff'), network('guest', 'open'), network('comms', 'comms')];
const policy = { id: 'app-ban', title: 'App ban', reference: 'council decision' };
// As the engine builds them: one decision object per rule and network, shared by the names under it.
const blocked = nets.flatMap((n) =>
  [
    { kind: 'blocked', profile: 'staff', list: 'tiktok', rule: 'tiktok.com', policy },
    { kind: 'blocked', profile: 'staff', list: 'telegram', rule: 'telegram.org', policy },
    { kind: 'blocked', profile: 'staff', list: 'doh-bypass', rule: 'dns.google' },
  ].map((decision) => ({ query: { type: 1 }, outcome: 'blocked', network: n, decision })),
);
const allowed = nets.map((n) => ({ query: { type: 28 }, outcome: 'allowed', network: n, decision: { kind: 'allowed', profile: 'staff' }, upstream: '192.0.2.53:53' }));

const subjects = [];
for (const [name, href] of builds) {
  const { QueryMetrics } = await import(new URL('admin/metrics.js', href).href);
  const metrics = new QueryMetrics({ resolver: () => ({}), buffer: () => undefined, listSizes: () => new Map(), now: Date.now });
  subjects.push({ name, metrics, ns: { blocked: [], allowed: [] } });
}

function run(metrics, ctxs) {
  const k = ctxs.length;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) metrics.observe(ctxs[i % k], 0.0003);
  return Number(process.hrtime.bigint() - t0) / N;
}

const kinds = { blocked, allowed };
for (const s of subjects) for (const ctxs of Object.values(kinds)) run(s.metrics, ctxs); // warm-up
for (let r = 0; r < RUNS; r++) {
  for (const s of subjects) for (const [kind, ctxs] of Object.entries(kinds)) s.ns[kind].push(run(s.metrics, ctxs));
}
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const s of subjects) {
  for (const kind of Object.keys(kinds)) {
    const ns = s.ns[kind];
    console.log(`${s.name}  ${kind.padEnd(8)} ${median(ns).toFixed(1)} ns/observe (median of ${RUNS} x ${N}; min ${Math.min(...ns).toFixed(1)})`);
  }
}
