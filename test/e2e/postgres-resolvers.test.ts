// Two resolvers writing their query logs to one PostgreSQL database, as a city runs them: a
// report from either covers both (also after a restart), and PostgreSQL stopped for 30 s under
// load loses no answer and no event.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/postgres.js';
import { startSluice, type Harness } from '../helpers/sluice-harness.js';
import { runSluice } from './cli-workspace.js';

let pg: PrivatePostgres;
let upstream: FakeUpstream;
beforeAll(async () => {
  [pg, upstream] = await Promise.all([startPrivatePostgres(), startFakeUpstream()]);
}, 120_000);
afterAll(async () => {
  await upstream?.close();
  await pg?.close();
});

const config = (instance: string, url: string) => `
listeners: [{ address: 127.0.0.1, port: 0 }]
networks:
  internal: { cidrs: [127.0.0.0/16], profile: staff }
profiles:
  staff: { block: [] }
policies:
  app-ban:
    title: App ban
    reference: council decision 2026-10-01
    block: [tiktok]
    networks: [internal]
    from: 2026-01-01
    review_by: 2099-01-01
lists:
  tiktok: { file: lists/tiktok.txt }
upstreams: { default: ["@UPSTREAM@"], timeout_ms: 300, total_timeout_ms: 1000 }
workers: 1
watch: false
state_dir: state
query_log: { instance: ${instance}, store: { kind: postgres, url: "${url}" } }
`;

interface Devices {
  covers: { source: string; instances: string[]; complete: boolean };
  rows: { client: string; count: number }[];
}

async function blocked(h: Harness, n: number, from: string): Promise<void> {
  for (let i = 0; i < n; i++) expect((await resolve(h.udp, `v${i % 5}.tiktok.com`, 'A', { localAddress: from })).rcode).toBe(RCODE.NXDOMAIN);
}

const report = async (h: Harness): Promise<Devices> => {
  const r = await runSluice(['--config', h.configFile, 'report', 'devices', '--json'], h.dir);
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as Devices;
};

describe('two resolvers, one PostgreSQL database', () => {
  it('a report from either covers both, also after a restart; a 30 s outage loses no answer and no event', async () => {
    const db = `${pg.url.replace(/\/postgres$/, '')}/postgres`;
    let a = await startSluice({ config: config('alpha', db), lists: { tiktok: 'tiktok.com\n' }, upstream: upstream.address });
    const b = await startSluice({ config: config('beta', db), lists: { tiktok: 'tiktok.com\n' }, upstream: upstream.address });
    try {
      await blocked(a, 20, '127.0.0.1');
      await blocked(b, 30, '127.0.0.2');
      for (const h of [a, b]) {
        h.server.observability.queryLog.buffer.flush();
        await h.server.observability.owner!.store!.flush();
      }
      for (const h of [a, b]) {
        const r = await report(h);
        expect(r.covers).toMatchObject({ source: 'postgres', instances: ['alpha', 'beta'], complete: true });
        expect(r.rows.map((x) => [x.client, x.count])).toEqual([
          ['127.0.0.1', 20],
          ['127.0.0.2', 30],
        ]);
      }

      // A restarted instance reads the same database: nothing of its own view was in memory only.
      const dirA = a.dir;
      await a.stop();
      a = await startSluice({ config: config('alpha', db), lists: { tiktok: 'tiktok.com\n' }, upstream: upstream.address });
      expect(dirA).not.toBe(a.dir);
      expect((await report(a)).rows.map((x) => x.count)).toEqual([20, 30]);

      // PostgreSQL away for 30 s while the resolvers answer: every answer comes, every event
      // waits in the spill and is written when the database is back.
      await pg.stop();
      const started = Date.now();
      let sent = 0;
      while (Date.now() - started < 30_000 && sent < 600) {
        await blocked(a, 5, '127.0.0.3');
        await blocked(b, 5, '127.0.0.4');
        sent += 5;
        await new Promise((r) => setTimeout(r, 200));
      }
      for (const h of [a, b]) h.server.observability.queryLog.buffer.flush();
      expect(a.server.observability.owner!.store!.health()).toMatchObject({ ok: false });
      await pg.start();
      for (const h of [a, b]) {
        await vi.waitFor(() => expect(h.server.observability.owner!.store!.health()).toMatchObject({ ok: true, pending: 0 }), { timeout: 30_000, interval: 200 });
      }
      const after = await report(b);
      expect(after.rows.map((x) => [x.client, x.count])).toEqual([
        ['127.0.0.1', 20],
        ['127.0.0.2', 30],
        ['127.0.0.3', sent],
        ['127.0.0.4', sent],
      ]);
    } finally {
      await a.stop();
      await b.stop();
    }
  }, 150_000);
});
