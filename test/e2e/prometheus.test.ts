// What Prometheus sees of sluice: /metrics of a real server on the shipped config passes
// `promtool check metrics` without a finding, and the shipped alert rules, evaluated by
// `promtool test rules` over that scrape, fire none on a healthy server (and do fire when a metric
// says something is wrong, so the test can fail).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolve } from '../helpers/dns-client.js';
import { startSluice, type Harness } from '../helpers/sluice-harness.js';

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
  const r = spawnSync('promtool', args, { input, encoding: 'utf8', cwd: h.dir });
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
  for (const e of extra) {
    const [s, v] = e.split(' ');
    series.push(s!);
    values.push(v!);
  }
  return series.map((s, i) => `      - series: '${s}'\n        values: '${values[i]}+0x120'`).join('\n');
}

const ALERTS = [...readFileSync(RULES, 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);

function ruleTest(series: string, expect: Record<string, string[]>): string {
  const tests = ALERTS.map((a) => {
    const fired = expect[a];
    const exp = fired ? `\n        exp_alerts:\n${fired.map((l) => `          - exp_labels: { ${l} }`).join('\n')}` : '\n        exp_alerts: []';
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

  it('and they do fire when a metric says something is wrong', () => {
    const file = join(h.dir, 'rules-test-fires.yml');
    writeFileSync(file, ruleTest(inputSeries(scrape, NOW, ['sluice_list_refused{job="sluice",instance="sluice-a",list="refused-test"} 1']), {}));
    const r = promtool(['test', 'rules', file]);
    expect(r.status).not.toBe(0);
    expect(r.out).toContain('SluiceListRefused');
  });
});
