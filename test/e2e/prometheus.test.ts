// What Prometheus sees of sluice: /metrics of a real server on the shipped config passes
// `promtool check metrics` without a finding, and the shipped alert rules, evaluated by
// `promtool test rules` over that scrape, fire none on a healthy server (and do fire when a metric
// says something is wrong, so the test can fail). The Grafana dashboard charts every family of
// that scrape, and promtool parses each of its expressions.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expandedExpressions, uncharted } from '../helpers/dashboard-families.js';
import { resolve } from '../helpers/dns-client.js';
import { freePort } from '../helpers/ports.js';
import { startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';

const REPO = join(import.meta.dirname, '../..');
const TOKEN = 'prometheus-test-token-0123456789';
const RULES = join(REPO, 'deploy/compose/sluice-rules.yml');

let h: Harness;
let scrape: string;
// A fixed clock: the shipped policy's review date must not turn this test red in April 2027.
const NOW = Date.parse('2026-12-01T12:00:00Z');

/** The shipped config, on port 0 and with its paths made absolute; never asked an allowed name (it forwards to the machine's resolver). */
function shippedConfig(): string {
  return readFileSync(join(REPO, 'config/sluice.yaml'), 'utf8')
    .replace('port: 5353', 'port: 0')
    .replace('catalog: ../blocklists/catalog.yaml', `catalog: ${join(REPO, 'blocklists/catalog.yaml')}`)
    .replace('file: lists/local-additions.txt', `file: ${join(REPO, 'config/lists/local-additions.txt')}`)
    .replace('state_dir: ../var', 'state_dir: state')
    .replace(/^admin:\n {2}enabled: true$/m, `admin:\n  enabled: true\n  port: 0\n  token: "${TOKEN}"`);
}

beforeAll(async () => {
  const config = shippedConfig();
  expect(config).toContain(`token: "${TOKEN}"`);
  h = await startSluice({ config, clock: () => NOW });
  const server = { host: h.udp.host, port: h.udp.port };
  // Blocked (answered locally) and refused (a client in no network): nothing is forwarded.
  await resolve(server, 'www.tiktok.com', 'A', { localAddress: '127.0.0.1' });
  await resolve(server, 'example.org', 'A', { localAddress: '127.0.1.1' });
  const res = await fetch(`http://127.0.0.1:${h.server.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  scrape = await res.text();
});

afterAll(async () => {
  await h?.stop();
});

function promtool(args: string[], input?: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8', cwd: h?.dir ?? tmpdir() });
  expect(r.error, 'promtool is needed: apt-get install prometheus').toBeUndefined();
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Each sample of the scrape as a constant input series of `promtool test rules`, as scraped from instance sluice-a. */
function inputSeries(text: string, now: number, extra: string[] = []): string {
  const series: string[] = ['up{job="sluice",instance="sluice-a"}'];
  const values = ['1'];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [m[2], 'job="sluice"', 'instance="sluice-a"'].filter(Boolean).join(',');
    // promtool evaluates from time 0: timestamps are shifted so that its 0 is now.
    const value = m[1]!.endsWith('_timestamp_seconds') ? Number(m[3]) - now / 1000 : Number(m[3]);
    series.push(`${m[1]}{${labels}}`);
    values.push(String(value));
  }
  // An extra series is "name{labels} value" (constant) or "name{labels} 0+1x120" (a promtool expanding notation).
  for (const e of extra) {
    const [s, v] = e.split(' ');
    series.push(s!);
    values.push(v!);
  }
  return series.map((s, i) => `      - series: '${s}'\n        values: '${values[i]!.includes('x') ? values[i] : `${values[i]}+0x120`}'`).join('\n');
}

const ALERTS = [...readFileSync(RULES, 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);

function ruleTest(series: string, expect: Record<string, string[]>): string {
  const tests = ALERTS.map((a) => {
    const fired = expect[a];
    // Each expected alert: "its labels", or "its labels || its summary".
    const alert = (l: string) => {
      const [labels, summary] = l.split(' || ');
      return `          - exp_labels: { ${labels} }${summary ? `\n            exp_annotations: { summary: ${JSON.stringify(summary)} }` : ''}`;
    };
    const exp = fired ? `\n        exp_alerts:\n${fired.map(alert).join('\n')}` : '\n        exp_alerts: []';
    return `      - eval_time: 90m\n        alertname: ${a}${exp}`;
  }).join('\n');
  return `rule_files:\n  - ${RULES}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n${series}\n    alert_rule_test:\n${tests}\n`;
}

describe('Prometheus', () => {
  it('/metrics passes `promtool check metrics` without a finding', () => {
    expect(scrape).toContain('sluice_queries_total');
    const r = promtool(['check', 'metrics'], scrape);
    expect(r.out).toBe('');
    expect(r.status).toBe(0);
  });

  it('the shipped alert rules are valid', () => {
    expect(ALERTS.length).toBeGreaterThan(5);
    const r = promtool(['check', 'rules', RULES]);
    expect(r.out).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('no shipped alert fires on the shipped config (its empty local-additions list included)', () => {
    expect(scrape).toMatch(/^sluice_list_entries\{list="local-additions"\} 0$/m);
    const file = join(h.dir, 'rules-test.yml');
    writeFileSync(file, ruleTest(inputSeries(scrape, NOW), {}));
    const r = promtool(['test', 'rules', file]);
    expect(r.out).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('says which build runs, and how the process does', () => {
    const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    expect(scrape).toMatch(new RegExp(`^sluice_build_info\\{version="${version.replace(/\./g, '\\.')}",node="${process.version.replace(/\./g, '\\.')}",commit="[0-9a-z]+"\\} 1$`, 'm'));
    for (const f of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes']) expect(scrape).toMatch(new RegExp(`^${f} \\d`, 'm'));
    // Measured after a scrape for the next one: the family is there, its value maybe not yet.
    expect(scrape).toMatch(/^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
    // The shipped config's one local list: when its file was last written.
    expect(scrape).toMatch(/^sluice_list_last_update_timestamp_seconds\{list="local-additions"\} \d+/m);
  });

  it('the Grafana dashboard charts every metric family of the scrape', () => {
    const families = [...scrape.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
    expect(families.length).toBeGreaterThan(60);
    expect(families).toEqual(expect.arrayContaining(['sluice_blocked_total', 'sluice_redis_up', 'sluice_policy_version_diverged', 'sluice_build_info', 'process_cpu_seconds_total']));
    expect(uncharted(families)).toEqual([]);
  });

  it('promtool parses every expression of the Grafana dashboard', () => {
    const exprs = expandedExpressions();
    expect(exprs.length).toBeGreaterThan(50);
    const rules = exprs.map((e, i) => `      - record: dashboard_expr_${i}\n        expr: ${JSON.stringify(e.expr)}`).join('\n');
    const file = join(h.dir, 'dashboard-exprs.yml');
    writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
    const r = promtool(['check', 'rules', file]);
    expect(r.out).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('alerts on a url list whose downloads fail while its copy is old or missing, not after one failure of a fresh one', () => {
    const failing = 'sluice_list_download_failures_total{job="sluice",instance="sluice-a",list="fetched-test"} 0+1x120';
    const missing = join(h.dir, 'rules-test-download-missing.yml');
    writeFileSync(
      missing,
      ruleTest(inputSeries(scrape, NOW, [failing]), {
        SluiceListDownloadFailing: [
          'instance: sluice-a, job: sluice, list: fetched-test || sluice-a cannot download list fetched-test, and its copy is over two days old or missing (see the server log; sluice lists update NAME --dry-run)',
        ],
      }),
    );
    const r = promtool(['test', 'rules', missing]);
    expect(r.out).toContain('SUCCESS');
    expect(r.status).toBe(0);
    // Downloaded an hour before "now" (timestamps are shifted so that promtool's 0 is now).
    const fresh = join(h.dir, 'rules-test-download-fresh.yml');
    writeFileSync(fresh, ruleTest(inputSeries(scrape, NOW, [failing, 'sluice_list_last_update_timestamp_seconds{job="sluice",instance="sluice-a",list="fetched-test"} -3600']), {}));
    const f = promtool(['test', 'rules', fresh]);
    expect(f.out).toContain('SUCCESS');
    expect(f.status).toBe(0);
  });

  it('and they do fire when a metric says something is wrong', () => {
    const file = join(h.dir, 'rules-test-fires.yml');
    writeFileSync(file, ruleTest(inputSeries(scrape, NOW, ['sluice_list_refused{job="sluice",instance="sluice-a",list="refused-test"} 1']), {}));
    const r = promtool(['test', 'rules', file]);
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('SluiceListRefused');
  });
});

describe('Prometheus with workers: 2', () => {
  it('the primary aggregates the workers: one series per worker for the runtime, one build, promtool clean', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-prometheus-workers-'));
    const [port, adminPort] = [await freePort(), await freePort()];
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(
      cfg,
      shippedConfig()
        .replace('port: 0', `port: ${port}`)
        .replace(/^ {2}port: 0$/m, `  port: ${adminPort}`) + '\nworkers: 2\n',
    );
    const child = spawn(process.execPath, [join(REPO, 'bin/sluice.js'), 'serve', '--config', cfg], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await until('both workers serving', () => /"workers":2,"msg":"sluice started"/.test(out), 20000, 20);
      const scrapeOnce = async () => {
        const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
        expect(res.status).toBe(200);
        return res.text();
      };
      // prom-client measures nodejs_eventloop_lag_seconds after a scrape, for the next one.
      await scrapeOnce();
      const text = await scrapeOnce();
      const r = promtool(['check', 'metrics'], text);
      expect(r.out).toBe('');
      expect(r.status).toBe(0);
      // Runtime metrics per worker, not added up; the start time kept (prom-client would omit it).
      for (const w of ['1', '2']) {
        expect(text).toMatch(new RegExp(`^process_resident_memory_bytes\\{worker="${w}"\\} \\d+`, 'm'));
        expect(text).toMatch(new RegExp(`^process_start_time_seconds\\{worker="${w}"\\} \\d+`, 'm'));
        expect(text).toMatch(new RegExp(`^nodejs_eventloop_lag_seconds\\{worker="${w}"\\} `, 'm'));
      }
      expect(text.match(/^sluice_build_info\{/gm)).toHaveLength(1);
      expect(text.match(/^sluice_list_last_update_timestamp_seconds\{list="local-additions"\}/gm)).toHaveLength(1);
      expect(uncharted([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!))).toEqual([]);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
