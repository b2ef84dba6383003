// What loading a big list file costs in-process: `node bench/list-load.mjs [FILE]` after
// `npm run build` (it measures dist/; FILE defaults to ../shared/bench-data/domains-1m.txt). To
// compare builds, point DIST at copies of other builds' dist/ (with node_modules beside them),
// several joined by ':': their runs alternate in one process, so a busy machine slows them alike.
// Prints the median and fastest ms of loadDomainsFromFile over RUNS runs, and the entries loaded.
import { pathToFileURL, URL, fileURLToPath } from 'node:url';

const RUNS = Number(process.env.RUNS ?? 9);
const file = process.argv[2] ?? fileURLToPath(new URL('../../shared/bench-data/domains-1m.txt', import.meta.url));

const builds = [['dist', new URL('../dist/', import.meta.url).href]];
for (const d of (process.env.DIST ?? '').split(':').filter(Boolean)) builds.push([d, pathToFileURL(`${d}/`).href]);

const subjects = [];
for (const [name, href] of builds) {
  const { loadDomainsFromFile } = await import(new URL('lists/list-bytes.js', href).href);
  subjects.push({ name, load: loadDomainsFromFile, ms: [], entries: 0, problems: 0 });
}

for (let run = 0; run < RUNS; run++) {
  for (const s of subjects) {
    const t0 = process.hrtime.bigint();
    const r = await s.load(file);
    s.ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    s.entries = r.set.size;
    s.problems = r.problems.length;
  }
}

for (const s of subjects) {
  const sorted = [...s.ms].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(`${s.name}: median ${median.toFixed(0)} ms, fastest ${sorted[0].toFixed(0)} ms over ${RUNS} runs; ${s.entries} entries, ${s.problems} problems`);
}
