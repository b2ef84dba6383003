// Print the results of one `npm run bench` as Markdown: the machine, one table (server x kind),
// and sluice against its performance targets.
//
//   node bench/report.mjs DIR      (DIR holds env.txt, results.tsv, listload.tsv)
import fs from 'node:fs';
import path from 'node:path';

const dir = process.argv[2] || '/tmp/sluice-bench/latest';
const read = (f) => {
  const p = path.join(dir, f);
  if (!fs.existsSync(p)) return [];
  const [head, ...lines] = fs.readFileSync(p, 'utf8').trim().split('\n');
  const cols = head.split('\t');
  return lines.filter(Boolean).map((l) => Object.fromEntries(l.split('\t').map((v, i) => [cols[i], v])));
};
const results = read('results.tsv');
const loads = read('listload.tsv');
const num = (v) => (v === undefined || v === '' || v === '-' ? NaN : Number(v));
const int = (v) => (Number.isFinite(num(v)) ? Math.round(num(v)).toLocaleString('en-US') : '–');
const fix = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '–');

const qps = (server, kind) => num(results.find((r) => r.server === server && r.kind === kind)?.qps_median);
const sluice = results.find((r) => r.server.startsWith('sluice'))?.server;
const ceiling = qps('node-ceiling', 'ceiling');
const load = Object.fromEntries(loads.map((l) => [l.server, l]));

if (fs.existsSync(path.join(dir, 'env.txt'))) {
  console.log('```');
  console.log(fs.readFileSync(path.join(dir, 'env.txt'), 'utf8').trim());
  console.log('```\n');
}
// a measurement during which other processes on the machine used more than OTHER_MAX % of a CPU
const otherMax = Number(process.env.OTHER_MAX || 10);
const busy = (v) => (num(v) > otherMax ? ' ⚠' : '');
const plain = results.length > 0 || loads.length > 0; // false for `npm run bench:encrypted` alone
if (plain) printPlain();
function printPlain() {
  console.log(
    '| server | queries | QPS median (all runs) | ÷ dnsmasq | ÷ Node ceiling | server CPU % | ' +
      'rate for latency | avg ms | p99 ms | lost at peak | lost at ½ peak | 1M list: load s | 1M list: RSS MB |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  const seen = new Set();
  for (const r of results) {
    const q = num(r.qps_median);
    const dm = r.kind === 'ceiling' ? NaN : q / qps('dnsmasq', r.kind);
    const first = !seen.has(r.server);
    seen.add(r.server);
    const l = first ? load[r.server] : undefined;
    console.log(
      `| ${r.server} | ${r.kind} | **${int(q)}**${busy(r.other_pct)} (${r.qps_runs.split(',').map(int).join(', ')}) | ` +
        `${fix(dm)} | ${fix(q / ceiling)} | ${r.cpu_pct} | ${int(r.lat_rate)}/s | ${r.lat_avg_ms} | ${r.lat_p99_ms}${busy(r.lat_other_pct)} | ` +
        `${r.sat_lost} | ${r.lat_lost} of ${int(r.lat_sent)} | ${l ? fix(num(l.load_ms_median) / 1000, 1) : ''} | ${l ? l.rss_mb : ''} |`,
    );
  }
  for (const l of loads) {
    if (!seen.has(l.server)) console.log(`| ${l.server} | – | | | | | | | | | | ${fix(num(l.load_ms_median) / 1000, 1)} | ${l.rss_mb} |`);
  }
  console.log(
    '\nQPS: `dnsperf -c 4 -q 100 -t 1` at full speed, median of the runs. Latency and "lost at ½ peak": ' +
      'one run at half the median QPS (`dnsperf -Q`), p99 over every query. ⚠: other processes used more ' +
      `than ${otherMax} % of a CPU during that measurement (the bench waited and repeated, then gave up).` +
      (loads.length ? ` 1M list: exec to the first blocked answer (median of ${loads[0].load_ms_runs.split(',').length}), RSS 1 s later.` : ''),
  );
  if (loads.length) {
    console.log('\n| server | 1M list: load ms (runs) | RSS MB | peak RSS MB |\n|---|---|---|---|');
    for (const l of loads) console.log(`| ${l.server} | ${l.load_ms_median} (${l.load_ms_runs}) | ${l.rss_mb} | ${l.hwm_mb} |`);
  }
}

if (!sluice) {
  printEncrypted();
  process.exit(0);
}
const checks = [];
const check = (what, ok, detail) => checks.push(`- ${ok === undefined ? 'n/a   ' : ok ? 'met   ' : 'MISSED'} ${what}: ${detail}`);
for (const kind of ['blocked', 'cached']) {
  const f = qps(sluice, kind) / ceiling;
  check(`${kind} >= 80% of the Node ceiling`, Number.isFinite(f) ? f >= 0.8 : undefined, `${fix(f * 100, 0)}%`);
}
const miss = qps(sluice, 'miss');
const vsDm = miss / qps('dnsmasq', 'miss');
const vsUb = miss / qps('unbound', 'miss');
check('cache miss >= 2x dnsmasq', Number.isFinite(vsDm) ? vsDm >= 2 : undefined, `${fix(vsDm)}x`);
check('cache miss within 20% of Unbound', Number.isFinite(vsUb) ? vsUb >= 0.8 : undefined, `${fix(vsUb * 100, 0)}% of Unbound`);
const ls = load[sluice];
const ld = load.dnsmasq;
if (ls && ld) {
  check("1M list loaded in at most dnsmasq's time", num(ls.load_ms_median) <= num(ld.load_ms_median), `${ls.load_ms_median} ms vs ${ld.load_ms_median} ms`);
  check("1M list RSS at most 1.5x dnsmasq's", num(ls.rss_mb) <= 1.5 * num(ld.rss_mb), `${ls.rss_mb} MB vs ${ld.rss_mb} MB (${fix(num(ls.rss_mb) / num(ld.rss_mb))}x)`);
} else {
  check('1M list load vs dnsmasq', undefined, 'not measured');
}
for (const r of results.filter((x) => x.server === sluice)) {
  check(`${r.kind}: p99 < 2 ms at half peak`, Number.isFinite(num(r.lat_p99_ms)) ? num(r.lat_p99_ms) < 2 : undefined, `${r.lat_p99_ms} ms at ${int(r.lat_rate)}/s`);
  check(`${r.kind}: no lost queries at half peak`, r.lat_lost === '0', `${r.lat_lost} of ${int(r.lat_sent)}`);
}
console.log(`\nTargets (${sluice}):`);
console.log(checks.join('\n'));
const dgramRow = results.find((r) => r.server.startsWith('sluice-dgram'))?.server;
if (dgramRow && dgramRow !== sluice) {
  const part = (k) => `${k} ${int(qps(dgramRow, k))} (${fix((qps(dgramRow, k) / ceiling) * 100, 0)}% of the ceiling)`;
  console.log(`\nThe same sluice with \`udp.io: dgram\` (${dgramRow}): ${['blocked', 'cached', 'miss'].map(part).join(', ')}.`);
}
const baseRow = results.find((r) => r.server.startsWith('sluice-base'))?.server;
if (baseRow && baseRow !== sluice) {
  console.log(`\nThis sluice (${sluice}) against the base build (${baseRow}, SLUICE_BASE) in the same run:`);
  for (const k of ['blocked', 'cached', 'miss']) {
    const vsBase = qps(sluice, k) / qps(baseRow, k);
    const ub = qps('unbound', k);
    const ratios = Number.isFinite(ub) ? `; ÷ Unbound ${fix(qps(sluice, k) / ub)} (base ${fix(qps(baseRow, k) / ub)})` : '';
    console.log(`- ${k}: ${int(qps(sluice, k))} vs ${int(qps(baseRow, k))} QPS, ${fix(vsBase)}x the base${ratios}`);
  }
  const p99 = (server) => results.find((r) => r.server === server && r.kind === 'miss')?.lat_p99_ms;
  console.log(`- miss p99 at half peak: ${p99(sluice)} ms (base ${p99(baseRow)} ms, Unbound ${p99('unbound') ?? 'n/a'} ms)`);
}
printEncrypted();

// The encrypted-DNS rows (bench/encrypted.sh): encrypted.tsv (listeners), forward.tsv (forwarding
// over a DoT upstream against plain UDP), idle.tsv (idle connections' RSS), with their targets.
function printEncrypted() {
  const enc = read('encrypted.tsv');
  const fwd = read('forward.tsv');
  const idle = read('idle.tsv');
  if (!enc.length && !fwd.length && !idle.length) return;
  const name = { dot: 'DoT', doh: 'DoH', udp: 'UDP' };
  const row = (r, what) =>
    r.note?.startsWith('not available')
      ? `| ${what} | ${r.kind} | ${r.note} | | | | | | |`
      : `| ${what} | ${r.kind} | **${int(r.qps_median)}**${busy(r.other_pct)} (${r.qps_runs.split(',').map(int).join(', ')}) | ${r.cpu_pct} | ` +
        `${int(r.lat_rate)}/s | ${r.lat_avg_ms} | ${r.lat_p50_ms} | ${r.lat_p99_ms}${busy(r.lat_other_pct)} | ${r.lat_lost} of ${int(r.lat_sent)} |`;
  const head = '| QPS median (all runs) | server CPU % | rate for latency | avg ms | p50 ms | p99 ms | lost at ½ peak |\n|---|---|---|---|---|---|---|---|---|';
  if (enc.length) {
    console.log(`\n### Encrypted listeners\n\n| server | queries ${head}`);
    for (const r of enc) console.log(row(r, `${r.server} ${name[r.transport] ?? r.transport}`));
    console.log(
      '\nDoT: `dnsperf -m dot -c 4 -q 100 -t 1` (4 TLS connections, reused for the whole run, queries pipelined). ' +
        "DoH: h2load (bench/doh-perf.sh), GET `?dns=`, 4 HTTP/2 connections × 25 streams; dnsperf 2.10's own `-m doh` stalls. " +
        'Latency at half the median QPS, as above.',
    );
  }
  if (fwd.length) {
    console.log(`\n### Forwarding over a DoT upstream (every query a cache miss)\n\n| sluice's upstream | queries ${head.replace('|---|', '|---|')}`);
    for (const r of fwd) console.log(row(r, r.note?.startsWith('upstream side CPU') ? `${name[r.transport] ?? r.transport} (${r.note.replace('side ', '')})` : (name[r.transport] ?? r.transport)));
    console.log("\nClients ask sluice over UDP (`dnsperf -c 4 -q 100`); sluice forwards to dnsdist answering by itself, over UDP or DoT, on the fake upstream's CPU (its CPU % in brackets).");
  }
  if (idle.length) {
    console.log('\n### Idle connections\n\n| listener | connections | still open | RSS before MB | RSS after MB | extra MB | time to open s |\n|---|---|---|---|---|---|---|');
    for (const r of idle) {
      if (r.note?.startsWith('not available')) console.log(`| ${name[r.listener]} | ${r.connections} | ${r.note} | | | | |`);
      else console.log(`| ${name[r.listener]} | ${int(r.connections)} | ${int(r.open)} | ${r.rss_before_mb} | ${r.rss_after_mb} | **${r.extra_mb}** | ${r.open_s} |`);
    }
  }
  const q = (rows, server, transport, kind) => rows.find((r) => r.server === server && r.transport === transport && r.kind === kind);
  const lines = [];
  const check = (what, ok, detail) => lines.push(`- ${ok === undefined ? 'n/a   ' : ok ? 'met   ' : 'MISSED'} ${what}: ${detail}`);
  const ratio = (a, b) => num(a?.qps_median) / num(b?.qps_median);
  for (const [t, peer] of enc.length
    ? [
        ['dot', 'unbound'],
        ['doh', 'dnsdist'],
      ]
    : []) {
    for (const kind of ['blocked', 'cached']) {
      // Like for like: the peers keep no query log, so the target is read on sluice-nolog (every
      // network at log level none); the default sluice, its SQLite writer on the same core, is shown beside it.
      const theirs = q(enc, peer, t, kind);
      const bare = q(enc, 'sluice-nolog', t, kind);
      const logged = q(enc, 'sluice', t, kind);
      const mine = bare && !bare.note?.startsWith('not available') ? bare : logged;
      const f = ratio(mine, theirs);
      const withLog = mine === bare ? ratio(logged, theirs) : NaN;
      check(
        `sluice ${name[t]} ${kind} >= ${peer} ${name[t]}${mine === bare ? ' (neither keeps a query log)' : ''}`,
        Number.isFinite(f) ? f >= 1 : undefined,
        (Number.isFinite(f) ? `${int(mine.qps_median)} vs ${int(theirs.qps_median)} QPS (${fix(f)}x)` : 'not measured') +
          (Number.isFinite(withLog) ? `; with sluice's default SQLite query log on the same core ${int(logged.qps_median)} QPS (${fix(withLog)}x)` : ''),
      );
    }
  }
  if (fwd.length) {
    const u = q(fwd, 'sluice', 'udp', 'miss');
    const d = q(fwd, 'sluice', 'dot', 'miss');
    const f = ratio(d, u);
    check(
      'cache miss over a DoT upstream >= 0.5x over plain UDP',
      Number.isFinite(f) ? f >= 0.5 : undefined,
      Number.isFinite(f) ? `${int(d.qps_median)} vs ${int(u.qps_median)} QPS (${fix(f)}x)` : 'not measured',
    );
    const p = num(d?.lat_p99_ms) / num(u?.lat_p99_ms);
    check(
      'p99 at half load over DoT <= 2x plain UDP',
      Number.isFinite(p) ? p <= 2 : undefined,
      Number.isFinite(p) ? `${d.lat_p99_ms} ms at ${int(d.lat_rate)}/s vs ${u.lat_p99_ms} ms at ${int(u.lat_rate)}/s (${fix(p)}x)` : 'not measured',
    );
  }
  for (const r of idle) {
    const extra = num(r.extra_mb);
    const full = num(r.open) === num(r.connections);
    check(
      `${name[r.listener]} listener: ${int(r.connections)} idle connections <= 50 MB extra RSS`,
      Number.isFinite(extra) ? extra <= 50 && full : undefined,
      Number.isFinite(extra) ? `${extra >= 0 ? '+' : ''}${r.extra_mb} MB, ${int(r.open)} of ${int(r.connections)} still open` : 'not measured',
    );
  }
  if (lines.length) console.log(`\nTargets (encrypted DNS):\n${lines.join('\n')}`);
}
