// Several resolvers, one brain: two (and three) sluice instances sharing a real redis-server that
// the test starts on a free loopback port.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, encodeQuery, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startRedis, type TestRedis } from '../helpers/redis-server.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const TOKEN = 'redis-test-token-0123456789';

let redis: TestRedis;
let upstream: FakeUpstream;
let a: Harness;
let b: Harness;
const prefix = `t${process.pid}:`;

function sharedConfig(instance: string): string {
  return (
    referenceConfig() + `redis: { url: "@REDIS@", key_prefix: "${prefix}", heartbeat_ms: 200 }\n` + `query_log: { instance: ${instance} }\n` + `admin: { enabled: true, port: 0, token: "${TOKEN}" }\n`
  );
}

function start(instance: string, files?: Record<string, string>): Promise<Harness> {
  return startSluice({ config: sharedConfig(instance).replace('@REDIS@', redis.url), lists: referenceLists, upstream: upstream.address, ...(files ? { files } : {}) });
}

function cli(h: Harness, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [BIN, '--config', h.configFile, ...args], (error, stdout, stderr) => {
      res({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr });
    });
  });
}

async function api<T>(h: Harness, path: string): Promise<T> {
  const r = await fetch(`http://127.0.0.1:${h.server.adminPort}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return (await r.json()) as T;
}

async function until(pred: () => Promise<boolean>, ms: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await pred()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`condition not met within ${ms} ms`);
}

const internal = (h: Harness, name: string) => resolve(h.udp, name, 'A', { localAddress: '127.0.0.1' });

beforeAll(async () => {
  redis = await startRedis();
  upstream = await startFakeUpstream();
  a = await start('alpha');
  b = await start('beta');
  await until(async () => a.server.shared!.up && b.server.shared!.up, 5000);
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await upstream?.close();
  await redis?.stop();
});

describe('shared state in redis', () => {
  it('an edit made through one instance is enforced by the other within 1 s', async () => {
    expect((await internal(b, 'www.temu.com')).rcode).toBe(RCODE.NOERROR);
    const r = await cli(a, 'lists', 'add', 'tiktok', 'temu.com', '--reason', 'shared test');
    expect(r.err).toBe('');
    expect(r.out).toMatch(/\+ temu\.com {2}\(shared edit \d+\)/);
    const t0 = Date.now();
    await until(async () => (await internal(b, 'x.temu.com')).rcode === RCODE.NXDOMAIN, 1000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await internal(a, 'y.temu.com')).rcode).toBe(RCODE.NXDOMAIN);
    // the list file itself is untouched: files stay the source of the curated lists
    expect(readFileSync(join(a.dir, 'lists', 'tiktok.txt'), 'utf8')).toBe(referenceLists.tiktok);
    // removing a file rule at runtime unblocks it everywhere
    await cli(b, 'lists', 'remove', 'tiktok', 'tiktok.com');
    await until(async () => (await internal(a, 'www.tiktok.com')).rcode === RCODE.NOERROR, 1000);
    await cli(b, 'lists', 'add', 'tiktok', 'tiktok.com');
    await until(async () => (await internal(a, 'www.tiktok.com')).rcode === RCODE.NXDOMAIN, 1000);
  });

  it("both instances' events appear in one log", async () => {
    await internal(a, 'from-alpha.tiktok.com');
    await internal(b, 'from-beta.tiktok.com');
    await until(async () => {
      const page = await api<{ events: { name: string; instance: string }[] }>(a, '/api/log?domain=tiktok.com&limit=100');
      const names = new Set(page.events.map((e) => `${e.instance}/${e.name}`));
      return names.has('alpha/from-alpha.tiktok.com') && names.has('beta/from-beta.tiktok.com');
    }, 3000);
  });

  it('sluice status shows both with the same policy version, and flags a diverged instance', async () => {
    await until(async () => a.server.version === b.server.version && a.server.shared!.instances.length >= 2, 2000);
    const ok = await cli(a, 'status', '--json');
    const parsed = JSON.parse(ok.out) as { instances: { instance: string; version: string; state: string }[] };
    const mine = parsed.instances.filter((i) => i.instance === 'alpha' || i.instance === 'beta');
    expect(mine.map((i) => i.state)).toEqual(['ok', 'ok']);
    expect(mine[0]!.version).toBe(mine[1]!.version);

    // gamma has an extra domain in its list file: a different policy version
    const gamma = await startSluice({
      config: sharedConfig('gamma').replace('@REDIS@', redis.url),
      lists: { ...referenceLists, tiktok: referenceLists.tiktok + 'extra.example\n' },
      upstream: upstream.address,
    });
    try {
      await until(async () => (await cli(a, 'status', '--json')).out.includes('"gamma"'), 3000);
      const st = await cli(a, 'status');
      expect(st.code).toBe(1);
      expect(st.out).toMatch(/gamma .* DIVERGED/);
      expect(st.out).toMatch(/alpha .* ok/);
      await until(async () => gamma.server.shared!.health().diverged.length > 0, 2000);
      const health = await fetch(`http://127.0.0.1:${gamma.server.adminPort}/healthz`);
      expect(health.status).toBe(503);
      const metrics = await (await fetch(`http://127.0.0.1:${gamma.server.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      expect(metrics).toMatch(/^sluice_policy_version_diverged [1-9]/m);
      expect(metrics).toMatch(/^sluice_redis_up 1$/m);
    } finally {
      await gamma.stop();
    }
  });

  it('stopping redis loses no answers; restarting it resynchronises and delivers the buffered events', async () => {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const answered = new Set<number>();
    sock.on('message', (m) => answered.add(m.readUInt16BE(0)));
    let sent = 0;
    const send = (h: Harness, name: string) => {
      const id = ++sent;
      sock.send(encodeQuery(name, 'A', { id }), h.udp.port, '127.0.0.1');
    };
    await redis.stop();
    await until(async () => !a.server.shared!.up && !b.server.shared!.up, 3000);
    for (let i = 0; i < 200; i++) {
      send(i % 2 ? a : b, i % 3 ? `q${i}.tiktok.com` : `q${i}.allowed.example`);
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 10));
    }
    send(b, 'while-down.tiktok.com');
    await until(async () => answered.size === sent, 3000);
    sock.close();
    expect(answered.size).toBe(201);

    await redis.start(); // empty: no persistence
    await until(async () => a.server.shared!.up && b.server.shared!.up, 8000);
    // the shared edits were restored from the instances, so a new instance gets them
    await until(async () => (await internal(b, 'z.temu.com')).rcode === RCODE.NXDOMAIN, 2000);
    // beta's events from while redis was down reach alpha's log
    await until(async () => {
      const page = await api<{ events: { instance: string }[] }>(a, '/api/log?domain=while-down.tiktok.com');
      return page.events.some((e) => e.instance === 'beta');
    }, 5000);
  });

  it('starts with redis down from the last local snapshot', async () => {
    const snapshot = readFileSync(join(a.dir, 'state', 'redis-snapshot.json'), 'utf8');
    expect((JSON.parse(snapshot) as { log: { rules: string[] }[] }).log.some((e) => e.rules.includes('temu.com'))).toBe(true);
    await redis.stop();
    const delta = await startSluice({
      config: sharedConfig('delta').replace('@REDIS@', redis.url),
      lists: referenceLists,
      upstream: upstream.address,
      files: { 'state/redis-snapshot.json': snapshot },
    });
    try {
      expect(delta.server.shared!.up).toBe(false);
      expect((await internal(delta, 'www.temu.com')).rcode).toBe(RCODE.NXDOMAIN);
      expect((await internal(delta, 'www.tiktok.com')).rcode).toBe(RCODE.NXDOMAIN);
    } finally {
      await delta.stop();
      await redis.start();
    }
  });

  it('a cold instance answers from what another resolved, with the shared cache on', async () => {
    const withCache = (name: string) =>
      startSluice({
        config: sharedConfig(name).replace('@REDIS@', redis.url).replace('heartbeat_ms: 200 }', 'heartbeat_ms: 200, shared_cache: true }'),
        lists: referenceLists,
        upstream: upstream.address,
      });
    const warm = await withCache('epsilon');
    let cold: Harness | undefined;
    try {
      await until(async () => warm.server.shared!.up, 3000);
      const first = await resolve(warm.udp, 'shared-cache.example', 'A', { localAddress: '127.0.0.2' });
      expect(first.answers[0]!.data).toBe('192.0.2.1');
      // Written behind, in batches every 200 ms: wait until it is in Redis.
      await until(async () => ((await redis.command('KEYS', '*shared-cache*')) as unknown[]).length > 0, 3000);
      cold = await withCache('zeta');
      await until(async () => cold!.server.shared!.warmed > 0, 3000);
      const asked = upstream.queries.filter((q) => q.name === 'shared-cache.example').length;
      const second = await resolve(cold.udp, 'shared-cache.example', 'A', { localAddress: '127.0.0.2' });
      expect(second.answers[0]!.data).toBe('192.0.2.1');
      expect(second.answers[0]!.ttl).toBeLessThanOrEqual(300);
      expect(upstream.queries.filter((q) => q.name === 'shared-cache.example').length).toBe(asked); // not forwarded again
      expect(cold.server.resolver.cache.hits).toBeGreaterThan(0);
    } finally {
      await cold?.stop();
      await warm.stop();
    }
  });
});
