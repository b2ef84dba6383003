// `sluice cache flush`, `sluice reload` and `sluice query` against a running server, over its
// admin API, with real DNS on loopback and a fake upstream that counts what reaches it; then the
// same verbs through the primary of `workers: 2` (a real `sluice serve` process).
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FlushResult, QueryReport, ReloadResult } from '../../src/admin/backend.js';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { freePort } from '../helpers/ports.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const ADMIN = 'admin-verbs-admin-token';
const VIEWER = 'admin-verbs-viewer-token';
const METRICS = 'admin-verbs-metrics-token';

/** The CLI as an admin runs it, asynchronously (the server under test runs in this process). */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

let upstream: FakeUpstream;
beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

const queriesFor = (name: string) => upstream.queries.filter((q) => q.name.toLowerCase() === name).length;

describe('admin verbs on a standalone server', () => {
  let h: Harness;
  let api: string;
  const config = () => referenceConfig(`watch: false\nadmin: { enabled: true, port: 0, token: "${ADMIN}", viewer_token: "${VIEWER}", metrics_token: "${METRICS}" }\n`);
  const call = async (method: string, path: string, token = ADMIN, body?: string) => {
    const res = await fetch(`${api}${path}`, { method, headers: { authorization: `Bearer ${token}` }, ...(body !== undefined ? { body } : {}) });
    return { status: res.status, body: (await res.json()) as unknown };
  };
  const verb = (...args: string[]) => cli([...args, '--config', h.configFile, '--admin', api]);
  const ask = (name: string, client = '127.0.0.1') => resolve(h.udp, name, 'A', { localAddress: client });

  beforeAll(async () => {
    h = await startSluice({ config: config(), lists: referenceLists, upstream: upstream.address });
    api = `http://127.0.0.1:${h.server.adminPort}`;
  });
  afterAll(async () => {
    await h?.stop();
  });
  afterEach(() => upstream.clearQueries());

  it('cache flush empties the cache: the next query goes upstream again', async () => {
    await ask('flush-all.example.org');
    await ask('flush-all.example.org');
    expect(queriesFor('flush-all.example.org')).toBe(1);
    const r = await call('POST', '/api/admin/cache/flush');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: null, processes: 1 });
    expect((r.body as FlushResult).flushed).toBeGreaterThanOrEqual(1);
    expect(h.server.resolver.cache.size).toBe(0);
    expect((await ask('flush-all.example.org')).rcode).toBe(RCODE.NOERROR);
    expect(queriesFor('flush-all.example.org')).toBe(2);
  });

  it('cache flush NAME flushes only that name and the names below it', async () => {
    for (const n of ['sub.example.org', 'www.sub.example.org', 'other.example.net', 'notsub.example.org']) await ask(n);
    const out = await verb('cache', 'flush', 'Sub.Example.org.');
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toBe('flushed 2 cached answers for sub.example.org and below\n');
    for (const n of ['sub.example.org', 'www.sub.example.org', 'other.example.net', 'notsub.example.org']) await ask(n);
    expect(queriesFor('sub.example.org')).toBe(2);
    expect(queriesFor('www.sub.example.org')).toBe(2);
    expect(queriesFor('other.example.net')).toBe(1);
    expect(queriesFor('notsub.example.org')).toBe(1);
    // the JSON body works as the query does; a name that is not one is a usage error
    expect((await call('POST', '/api/admin/cache/flush', ADMIN, '{"name":"other.example.net"}')).body).toEqual({ flushed: 1, name: 'other.example.net', processes: 1 });
    expect((await call('POST', '/api/admin/cache/flush?name=bad..name')).status).toBe(400);
  });

  it('query shows a block with its network, profile, list and rule, exits 1, and is not logged', async () => {
    const out = await verb('query', 'only-asked.tiktok.com');
    expect(out.code).toBe(1);
    expect(out.stdout).toContain('only-asked.tiktok.com A: BLOCKED\n');
    expect(out.stdout).toMatch(/^ {2}network {4}internal$/m);
    expect(out.stdout).toMatch(/^ {2}profile {4}staff$/m);
    expect(out.stdout).toMatch(/^ {2}list {7}tiktok$/m);
    expect(out.stdout).toMatch(/^ {2}rule {7}tiktok\.com$/m);
    expect(out.stdout).toMatch(/^ {2}rcode {6}NXDOMAIN$/m);
    expect(out.stdout).toMatch(/^ {2}ede {8}15: sluice: blocked/m);
    expect(out.stdout).toMatch(/^ {2}tiktok\.com\.\t60\tIN\tSOA\t/m);
    // an allowed name from the guest network: forwarded to the fake upstream, then from the cache
    const first = await verb('query', 'only-asked.example.org', '--client', '127.0.0.2', '--json');
    expect(first.code).toBe(0);
    const a = JSON.parse(first.stdout) as QueryReport;
    expect(a).toMatchObject({ decision: 'allowed', network: 'guest', profile: 'open', rcode: 'NOERROR', source: 'upstream', upstream: upstream.address, version: h.server.version });
    expect(a.answers).toEqual([{ name: 'only-asked.example.org', type: 'A', ttl: 300, data: '192.0.2.1' }]);
    expect(a.durationMs).toBeGreaterThan(0);
    const again = JSON.parse((await verb('query', 'only-asked.example.org', '--client', '127.0.0.2', '--json')).stdout) as QueryReport;
    expect(again).toMatchObject({ source: 'cache', upstream: null });
    expect(queriesFor('only-asked.example.org')).toBe(1);
    // AAAA by name; a client in no network is refused (exit 3)
    const aaaa = (await call('GET', '/api/query?name=only-asked.example.org&type=aaaa&client=127.0.0.2')).body as QueryReport;
    expect(aaaa.answers).toEqual([{ name: 'only-asked.example.org', type: 'AAAA', ttl: 300, data: '2001:db8::1' }]);
    const refused = await verb('query', 'only-asked.example.org', '--client', '127.9.0.1');
    expect(refused.code).toBe(3);
    expect(refused.stdout).toContain('only-asked.example.org A: REFUSED\n');
    expect(refused.stdout).toMatch(/^ {2}rcode {6}REFUSED$/m);
    // The log has the DNS queries of the tests (this one last, once it is there), never the admin's.
    await ask('logged-marker.example.org');
    let names: string[] = [];
    await until('the marker query in /api/log', async () => {
      const log = (await call('GET', '/api/log?limit=1000')).body as { events: { name: string }[] };
      names = log.events.map((e) => e.name);
      return names.includes('logged-marker.example.org');
    });
    expect(names.filter((n) => n.startsWith('only-asked.'))).toEqual([]);
  });

  it('usage errors and an unreachable server exit 2', async () => {
    expect((await verb('query', 'x.example.org', '--type', 'NOPE')).code).toBe(2);
    expect((await call('GET', '/api/query?name=x.example.org&client=not-an-ip')).status).toBe(400);
    const down = await cli(['reload', '--config', h.configFile, '--admin', `http://127.0.0.1:${await freePort()}`]);
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  });

  it('the viewer and metrics tokens get 403 on all three; the viewer still reads the log', async () => {
    for (const token of [VIEWER, METRICS]) {
      expect((await call('POST', '/api/admin/cache/flush', token)).status).toBe(403);
      expect((await call('POST', '/api/admin/reload', token)).status).toBe(403);
      expect((await call('GET', '/api/query?name=example.org', token)).status).toBe(403);
    }
    expect((await call('GET', '/api/log?limit=1', VIEWER)).status).toBe(200);
  });

  it('reload picks up a changed list; a broken config is rejected with file:line and the server keeps serving', async () => {
    expect((await ask('www.temu.com')).rcode).toBe(RCODE.NOERROR);
    const before = h.server.version;
    h.writeList('tiktok', referenceLists.tiktok + 'temu.com\n');
    const ok = await verb('reload');
    expect(ok.code).toBe(0);
    expect(h.server.version).not.toBe(before);
    expect(ok.stdout).toBe(`reload accepted: policy version ${h.server.version}\n`);
    expect((await ask('www.temu.com')).rcode).toBe(RCODE.NXDOMAIN);
    const good = h.server.version;
    h.writeConfig(config().replace('cidrs: [127.0.0.2/32]', 'cidrs: [127.0.0.300/32]'));
    const bad = await verb('reload', '--json');
    expect(bad.code).toBe(1);
    const r = JSON.parse(bad.stdout) as ReloadResult;
    expect(r).toMatchObject({ accepted: false, version: good, processes: 1 });
    expect(r.problems.join('\n')).toMatch(/sluice\.yaml:\d+ networks\.guest\.cidrs\[0\]: "127\.0\.0\.300\/32" is not a CIDR/);
    expect((await ask('www.temu.com')).rcode).toBe(RCODE.NXDOMAIN);
    expect((await ask('example.org', '127.0.0.2')).rcode).toBe(RCODE.NOERROR);
    const text = await verb('reload');
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`^reload rejected, still serving policy version ${good}:\\n {2}\\S*sluice\\.yaml:\\d+ networks\\.guest`));
    h.writeConfig(config());
  });
});

describe('admin verbs with workers: 2', () => {
  it('flush reaches every worker, reload answers once both reloaded, query runs on a worker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-admin-verbs-'));
    mkdirSync(join(dir, 'lists'));
    for (const [n, t] of Object.entries(referenceLists)) writeFileSync(join(dir, 'lists', `${n}.txt`), t);
    const port = await freePort();
    const adminPort = await freePort();
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(
      cfg,
      referenceConfig().replaceAll('@UPSTREAM@', upstream.address).replace('workers: 1', 'workers: 2').replace('port: 0', `port: ${port}`) +
        `watch: false\nadmin: { enabled: true, port: ${adminPort}, token: "${ADMIN}" }\n`,
    );
    const child = spawn(process.execPath, [BIN, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const server = { host: '127.0.0.1', port };
    // Each query comes from a new socket (a new source port): the kernel spreads them over the workers.
    const ask = (name: string) => resolve(server, name, 'A', { localAddress: '127.0.0.1' });
    try {
      await until('both workers serving', () => /"workers":2,"msg":"sluice started"/.test(out), 15000, 20);
      const name = 'spread.example.org';
      // Until both workers have the answer cached: each asked upstream once.
      for (let i = 0; i < 400 && queriesFor(name) < 2; i++) await ask(name);
      expect(queriesFor(name)).toBe(2);
      for (let i = 0; i < 20; i++) await ask(name);
      expect(queriesFor(name)).toBe(2);
      const flush = await cli(['cache', 'flush', 'example.org', '--config', cfg, '--json']);
      expect(flush.code).toBe(0);
      expect(JSON.parse(flush.stdout)).toEqual({ flushed: 2, name: 'example.org', processes: 2 });
      // Both caches are empty: the first query each worker gets goes upstream again.
      for (let i = 0; i < 400 && queriesFor(name) < 4; i++) await ask(name);
      expect(queriesFor(name)).toBe(4);

      writeFileSync(join(dir, 'lists', 'tiktok.txt'), referenceLists.tiktok + 'temu.com\n');
      const reload = await cli(['reload', '--config', cfg, '--json']);
      expect(reload.code).toBe(0);
      const r = JSON.parse(reload.stdout) as ReloadResult;
      expect(r).toMatchObject({ accepted: true, problems: [], processes: 2 });
      // answered once both had reloaded: every query, whichever worker gets it, is blocked now
      for (let i = 0; i < 20; i++) expect((await ask(`w${i}.temu.com`)).rcode).toBe(RCODE.NXDOMAIN);
      const q = await cli(['query', 'www.temu.com', '--config', cfg, '--json']);
      expect(q.code).toBe(1);
      expect(JSON.parse(q.stdout)).toMatchObject({ decision: 'blocked', list: 'tiktok', rule: 'temu.com', version: r.version });
    } finally {
      child.kill('SIGKILL');
    }
  });
});
