// The query log of a running server over real sockets: the buffer under overload, daily files and
// their retention by the server's clock, pseudonyms, and each network's log level.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readConfigFile } from '../../src/config/load.js';
import { QueryLogBuffer, type QueryLogSink } from '../../src/querylog/buffer.js';
import type { QueryEvent } from '../../src/querylog/event.js';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { loggedEvents, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { REPO } from './cli-workspace.js';

const DAY = 86_400_000;

const config = (extra = '') => `
listeners:
  - address: 127.0.0.1
    port: 0
networks:
  staff: { cidrs: [127.0.0.1/32], profile: staff }
  guest: { cidrs: [127.0.2.0/24], profile: staff, log: { level: all, pseudonymize: true } }
  kiosk: { cidrs: [127.0.3.0/24], profile: staff, log: { level: blocked } }
  lab: { cidrs: [127.0.5.0/24], profile: staff, log: { level: none } }
profiles:
  staff: { block: [tiktok] }
lists:
  tiktok: { file: lists/tiktok.txt }
workers: 1
watch: false
state_dir: state
upstreams: { default: ["@UPSTREAM@"], timeout_ms: 300, total_timeout_ms: 1000 }
${extra}`;
const lists = { tiktok: 'tiktok.com\n' };

let upstream: FakeUpstream;
beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

const fileText = (dir: string) =>
  readdirSync(dir)
    .sort()
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('');

describe('the log buffer under overload', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startSluice({ config: config(), lists, upstream: upstream.address });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('answers every query while events are dropped and counted, and /metrics shows the drops', async () => {
    const obs = h.server.observability;
    // A five-event buffer in front of a sink that refuses every batch, as a full disk would.
    const refuser: QueryLogSink = { name: 'refuser', write: () => false };
    const tiny = new QueryLogBuffer(5, [refuser, obs.owner!], 50);
    (obs.queryLog as unknown as { buffer: QueryLogBuffer }).buffer = tiny;

    const n = 400;
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const name = i % 2 === 0 ? `x${i}.tiktok.com` : `host${i}.example.org`;
        return resolve(h.udp, name, 'A', { localAddress: '127.0.0.1', timeoutMs: 5000 }).then((r) => ({ i, r }));
      }),
    );
    for (const { i, r } of answers) {
      expect(r.rcode).toBe(i % 2 === 0 ? RCODE.NXDOMAIN : RCODE.NOERROR);
      if (i % 2 === 1) expect(r.answers.map((a) => a.data)).toEqual(['192.0.2.1']);
    }
    tiny.flush();
    expect(tiny.dropped).toBeGreaterThan(0);
    expect(tiny.accepted + tiny.dropped).toBe(n);
    expect(tiny.sinkDropped.get('refuser')).toBe(tiny.accepted);
    expect(tiny.sinkDropped.has('memory')).toBe(false);

    const metrics = (await obs.metrics.metrics()).split('\n');
    expect(metrics).toContain(`sluice_querylog_dropped_events_total{stage="buffer"} ${tiny.dropped}`);
    expect(metrics).toContain(`sluice_querylog_dropped_events_total{stage="refuser"} ${tiny.accepted}`);
    // the queries themselves were all counted
    expect(metrics).toContain(`sluice_queries_total{network="staff",profile="staff",decision="blocked",type="A"} ${n / 2}`);
    expect(metrics).toContain(`sluice_queries_total{network="staff",profile="staff",decision="allowed",type="A"} ${n / 2}`);
  });
});

describe('log files', () => {
  let h: Harness;
  let now = Date.parse('2026-11-01T10:00:00Z');
  let dir: string;
  beforeAll(async () => {
    h = await startSluice({ config: config('query_log: { file: { retention_days: 2 } }'), lists, upstream: upstream.address, clock: () => now });
    dir = join(h.dir, 'state', 'querylog');
  });
  afterAll(async () => {
    await h?.stop();
  });

  const queryAndFlush = async (name: string) => {
    expect((await resolve(h.udp, name, 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
    h.server.observability.queryLog.buffer.flush();
  };
  const namesIn = (file: string) =>
    readFileSync(join(dir, file), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as QueryEvent).name);

  it("writes the events of each day of the server clock to that day's file, and deletes files beyond the retention", async () => {
    await queryAndFlush('day1.tiktok.com');
    now += DAY;
    await queryAndFlush('day2.tiktok.com');
    await vi.waitFor(() => expect(readdirSync(dir).sort()).toEqual(['queries-2026-11-01.jsonl', 'queries-2026-11-02.jsonl']));
    await vi.waitFor(() => expect(namesIn('queries-2026-11-02.jsonl')).toEqual(['day2.tiktok.com']));
    expect(namesIn('queries-2026-11-01.jsonl')).toEqual(['day1.tiktok.com']);

    // two days' retention: on day 3, the file of day 1 goes
    now += DAY;
    await queryAndFlush('day3.tiktok.com');
    await vi.waitFor(() => expect(readdirSync(dir).sort()).toEqual(['queries-2026-11-02.jsonl', 'queries-2026-11-03.jsonl']));
    // a gap of a week: everything older goes
    now += 7 * DAY;
    await queryAndFlush('day10.tiktok.com');
    await vi.waitFor(() => expect(readdirSync(dir).sort()).toEqual(['queries-2026-11-10.jsonl']));
    await vi.waitFor(() => expect(namesIn('queries-2026-11-10.jsonl')).toEqual(['day10.tiktok.com']));
  });
});

describe('pseudonyms and log levels per network', () => {
  let h: Harness;
  beforeAll(async () => {
    process.env.SLUICE_TEST_LOG_KEY_A = 'key-a-for-the-test';
    process.env.SLUICE_TEST_LOG_KEY_B = 'key-b-for-the-test';
    h = await startSluice({ config: config('query_log: { pseudonymize_key_env: SLUICE_TEST_LOG_KEY_A, file: { retention_days: 30 } }'), lists, upstream: upstream.address });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('gives the same device the same token, different devices different ones, and never logs the address', async () => {
    for (const [client, name] of [
      ['127.0.2.7', 'one.tiktok.com'],
      ['127.0.2.7', 'two.example.org'],
      ['127.0.2.8', 'three.tiktok.com'],
    ] as const) {
      await resolve(h.udp, name, 'A', { localAddress: client });
    }
    const events = (await loggedEvents(h)).filter((e) => e.network === 'guest');
    expect(events.map((e) => e.name)).toEqual(['one.tiktok.com', 'two.example.org', 'three.tiktok.com']);
    const [a1, a2, b] = events.map((e) => e.client);
    expect(a1).toMatch(/^p:[0-9a-f]{16}$/);
    expect(a2).toBe(a1);
    expect(b).toMatch(/^p:[0-9a-f]{16}$/);
    expect(b).not.toBe(a1);

    const dir = join(h.dir, 'state', 'querylog');
    await vi.waitFor(() => expect(fileText(dir)).toContain('three.tiktok.com'));
    for (const text of [JSON.stringify(events), fileText(dir)]) {
      expect(text).not.toContain('127.0.2.7');
      expect(text).not.toContain('127.0.2.8');
    }
    expect(fileText(dir)).toContain(a1);
  });

  it('gives other tokens with another key', async () => {
    const other = await startSluice({ config: config('query_log: { pseudonymize_key_env: SLUICE_TEST_LOG_KEY_B }'), lists, upstream: upstream.address });
    try {
      await resolve(other.udp, 'one.tiktok.com', 'A', { localAddress: '127.0.2.7' });
      await resolve(h.udp, 'four.tiktok.com', 'A', { localAddress: '127.0.2.7' });
      const [theirs] = (await loggedEvents(other)).map((e) => e.client);
      const ours = (await loggedEvents(h)).filter((e) => e.name === 'four.tiktok.com').map((e) => e.client);
      expect(theirs).toMatch(/^p:[0-9a-f]{16}$/);
      expect(ours).toEqual([(await loggedEvents(h)).find((e) => e.name === 'one.tiktok.com')!.client]);
      expect(theirs).not.toBe(ours[0]);
    } finally {
      await other.stop();
    }
  });

  it.each([
    ['staff', '127.0.0.1', ['allowed', 'blocked']],
    ['kiosk', '127.0.3.9', ['blocked']],
    ['lab', '127.0.5.9', []],
  ])('network %s (%s) logs %j', async (network, client, decisions) => {
    const allowed = await resolve(h.udp, `${network}.example.org`, 'A', { localAddress: client });
    const blocked = await resolve(h.udp, `${network}.tiktok.com`, 'A', { localAddress: client });
    // the log level never changes the answer
    expect([allowed.rcode, blocked.rcode]).toEqual([RCODE.NOERROR, RCODE.NXDOMAIN]);
    const events = (await loggedEvents(h)).filter((e) => e.name.startsWith(`${network}.`));
    expect(events.map((e) => e.decision)).toEqual(decisions);
    for (const e of events) expect(e).toMatchObject({ network, client });
    // …nor what /metrics counts
    const metrics = await h.server.observability.metrics.metrics();
    expect(metrics).toContain(`sluice_queries_total{network="${network}",profile="staff",decision="blocked",type="A"} 1`);
  });

  it('the default config logs only blocked queries of the guest network, pseudonymised, and keeps raw events 30 days in the SQLite store', () => {
    const c = readConfigFile(join(REPO, 'config/sluice.yaml')).config;
    expect(c.networks.guest?.log).toEqual({ level: 'blocked', pseudonymize: true });
    expect(c.networks.internal?.log).toEqual({ level: 'all', pseudonymize: false });
    expect(c.query_log.file).toBeUndefined();
    expect(c.query_log.store).toMatchObject({ kind: 'sqlite', path: 'querylog.db', retention_days: 30, rollup_retention_days: 400 });
    expect(c.admin).toMatchObject({ enabled: true, address: '127.0.0.1', token_env: 'SLUICE_ADMIN_TOKEN' });
    expect(c.admin.token).toBeUndefined();
  });
});
