// `sluice health` and `sluice version` as an operator or a container HEALTHCHECK runs them: the real
// binary against an in-process server on ephemeral loopback ports.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { checkHealth, dnsTargetOf, type HealthReport } from '../../src/cli/health.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { closedPort, REPO, runSluice } from './cli-workspace.js';

const TOKEN = 'health-test-token-0123456789';

let upstream: FakeUpstream;
let h: Harness;
let dns: string;
let admin: string;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  h = await startSluice({
    config: referenceConfig(`admin: { enabled: true, port: 0, token: "${TOKEN}" }\n`),
    lists: referenceLists,
    upstream: upstream.address,
  });
  dns = `${h.udp.host}:${h.udp.port}`;
  admin = `http://127.0.0.1:${h.server.adminPort}`;
});

afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});

/** A config as the harness writes it, for the probes' own use (the server keeps its own). */
const configText = (extra = '') => referenceConfig(extra).replaceAll('@UPSTREAM@', upstream.address);

async function health(...args: string[]): Promise<{ code: number | null; report: HealthReport; stderr: string }> {
  const r = await runSluice(['health', '--config', h.configFile, '--json', ...args], h.dir);
  return { code: r.code, report: JSON.parse(r.stdout) as HealthReport, stderr: r.stderr };
}

describe('sluice health', () => {
  it('exits 0 when the server answers the test query and /healthz is good', async () => {
    const { code, report } = await health('--server', dns, '--admin', admin);
    expect(report.dns).toMatchObject({ ok: true, target: dns, transport: 'udp' });
    expect(report.dns.rcode).toMatch(/^[A-Z]+$/);
    expect(report.admin).toMatchObject({ ok: true, url: `${admin}/healthz`, status: 200, body: { ok: true } });
    expect(report.healthy).toBe(true);
    expect(code).toBe(0);
  });

  it('is answered by sluice itself, from an address in no network too: never forwarded, never logged', async () => {
    const outsider = await startSluice({ config: referenceConfig().replace('127.0.0.0/16', '127.1.0.0/16'), lists: referenceLists, upstream: upstream.address });
    try {
      const asked = upstream.queries.length;
      const report = await checkHealth(undefined, { server: `${outsider.udp.host}:${outsider.udp.port}`, admin, timeoutMs: 2000 });
      expect(report.dns).toMatchObject({ ok: true, rcode: 'NOERROR' });
      expect(report.healthy).toBe(true);
      const inside = await checkHealth(undefined, { server: dns, admin, timeoutMs: 2000 });
      expect(inside.dns).toMatchObject({ ok: true, rcode: 'NOERROR' });
      expect(upstream.queries.length).toBe(asked);
      const log = (await (await fetch(`${admin}/api/log?name=health.sluice.invalid`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { events: unknown[] };
      expect(log.events).toEqual([]);
    } finally {
      await outsider.stop();
    }
  });

  it('stays healthy when every upstream is dead: the probe does not depend on them', async () => {
    const deadUpstream = `127.0.0.1:${await closedPort()}`;
    const cut = await startSluice({ config: referenceConfig(), lists: referenceLists, upstream: deadUpstream });
    try {
      const report = await checkHealth(undefined, { server: `${cut.udp.host}:${cut.udp.port}`, admin, timeoutMs: 1000 });
      expect(report.dns).toMatchObject({ ok: true, rcode: 'NOERROR' });
      expect(report.healthy).toBe(true);
    } finally {
      await cut.stop();
    }
  });

  it('asks every listener on each transport, and names the one that does not answer', async () => {
    const dead = await closedPort();
    const two = parseConfig(
      configText().replace('address: 127.0.0.1\n    port: 0', `address: 127.0.0.1\n    port: ${h.udp.port}\n  - address: 127.0.0.1\n    port: ${dead}\n    protocols: [tcp]`),
      'two.yaml',
    );
    const report = await checkHealth(two, { timeoutMs: 1000 });
    expect(report.listeners.map((l) => [l.target, l.transport, l.ok])).toEqual([
      [dns, 'udp', true],
      [dns, 'tcp', true],
      [`127.0.0.1:${dead}`, 'tcp', false],
    ]);
    expect(report.dns).toMatchObject({ ok: false, target: `127.0.0.1:${dead}` });
    expect(report.healthy).toBe(false);
  });

  it('prints a line per probe and "healthy" for people', async () => {
    const r = await runSluice(['health', '--config', h.configFile, '--server', dns, '--admin', admin], h.dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^dns +ok +${dns.replaceAll('.', '\\.')} udp answered [A-Z]+ in \\d+ ms$`, 'm'));
    expect(r.stdout).toMatch(/^admin +ok +http:\/\/127\.0\.0\.1:\d+\/healthz HTTP 200/m);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('healthy');
  });

  it('exits 1 when nothing answers on the DNS port within --timeout', async () => {
    const started = Date.now();
    const { code, report } = await health('--server', `127.0.0.1:${await closedPort()}`, '--admin', admin, '--timeout', '300');
    expect(report.dns.ok).toBe(false);
    expect(report.dns.error).toBeDefined();
    expect(report.admin.ok).toBe(true);
    expect(report.healthy).toBe(false);
    expect(code).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('exits 1 when the admin server is down', async () => {
    const { code, report } = await health('--server', dns, '--admin', `http://127.0.0.1:${await closedPort()}`, '--timeout', '500');
    expect(report.dns.ok).toBe(true);
    expect(report.admin).toMatchObject({ ok: false, error: expect.any(String) });
    expect(code).toBe(1);
  });

  describe('with an admin server that reports itself unhealthy', () => {
    let sick: Server;
    beforeAll(async () => {
      sick = createServer((_req, res) => res.writeHead(503, { 'content-type': 'application/json' }).end('{"ok":false,"diverged":["b"]}'));
      await new Promise<void>((r) => sick.listen(0, '127.0.0.1', r));
    });
    afterAll(() => new Promise<void>((r) => sick.close(() => r())));

    it('exits 1 and shows the body of /healthz', async () => {
      const { code, report } = await health('--server', dns, '--admin', `http://127.0.0.1:${(sick.address() as AddressInfo).port}`);
      expect(report.admin).toMatchObject({ ok: false, status: 503, body: { ok: false, diverged: ['b'] } });
      expect(code).toBe(1);
    });
  });

  it('reads the admin address from the config when --admin is not given', async () => {
    // The server's config has admin port 0 (a random port); a copy names the real one.
    const file = join(h.dir, 'with-admin-port.yaml');
    writeFileSync(file, configText(`admin: { enabled: true, port: ${h.server.adminPort}, token: "${TOKEN}" }\n`));
    const r = await runSluice(['health', '--config', file, '--server', dns, '--json'], h.dir);
    const { code } = r;
    const report = JSON.parse(r.stdout) as HealthReport;
    expect(report.admin).toMatchObject({ ok: true, url: `${admin}/healthz` });
    expect(code).toBe(0);
  });

  it('skips the admin probe when admin.enabled is false', async () => {
    const loaded = parseConfig(configText(), 'plain.yaml');
    const report = await checkHealth(loaded, { server: dns, timeoutMs: 2000 });
    expect(report.admin).toEqual({ ok: true, skipped: 'admin.enabled is false in plain.yaml' });
    expect(report.healthy).toBe(true);
  });

  it('asks a wildcard listener on loopback, and needs --server for a port-0 listener', () => {
    const wild = (address: string, port: number) =>
      dnsTargetOf(parseConfig(configText().replace('address: 127.0.0.1\n    port: 0', `address: "${address}"\n    port: ${port}\n    protocols: [tcp]`), 'w.yaml'));
    expect(wild('0.0.0.0', 53)).toEqual({ host: '127.0.0.1', port: 53, transport: 'tcp' });
    expect(wild('::', 5353)).toEqual({ host: '::1', port: 5353, transport: 'tcp' });
    expect(wild('10.0.53.11', 53)).toEqual({ host: '10.0.53.11', port: 53, transport: 'tcp' });
    expect(wild('127.0.0.1', 0)).toMatch(/--server/);
  });

  it('queries over TCP when the first listener serves only TCP', async () => {
    const report = await checkHealth(undefined, { server: `${h.tcp.host}:${h.tcp.port}`, admin, timeoutMs: 2000 });
    expect(report.healthy).toBe(true);
    const tcpOnly = parseConfig(configText().replace('port: 0', `port: ${h.tcp.port}\n    protocols: [tcp]`), 't.yaml');
    const viaConfig = await checkHealth(tcpOnly, { timeoutMs: 2000 });
    expect(viaConfig.dns).toMatchObject({ ok: true, transport: 'tcp' });
  });

  it('exits 1, not 2, when the config cannot be read (2 is reserved by Docker HEALTHCHECK)', async () => {
    const r = await runSluice(['health', '--config', '/nonexistent/sluice.yaml', '--json'], h.dir);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as HealthReport;
    expect(report.dns.error).toMatch(/cannot load \/nonexistent\/sluice\.yaml/);
  });
});

describe('sluice version', () => {
  it('prints the package version, the Node.js version and the commit from $SLUICE_COMMIT', async () => {
    const pkg = JSON.parse(readFileSync(`${REPO}/package.json`, 'utf8')) as { version: string };
    const r = await runSluice(['version', '--json'], h.dir, { SLUICE_COMMIT: 'abc123def456' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ sluice: pkg.version, node: process.version, commit: 'abc123def456' });
    const text = await runSluice(['version'], h.dir, { SLUICE_COMMIT: 'abc123def456' });
    expect(text.stdout).toBe(`sluice ${pkg.version}\nnode   ${process.version}\ncommit abc123def456\n`);
  });
});
