// The query-log store end to end, as an admin meets it: `sluice serve` with two workers (the
// primary owns the log and writes the SQLite store), blocked queries, then `sluice report devices`
// with the server running and after it stopped: the same answer, counting every event, also far
// beyond what the memory ring holds.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { closedPort, runSluice } from './cli-workspace.js';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const BLOCKED_A = 240; // from 127.0.0.1
const BLOCKED_B = 60; // from 127.0.0.7
const MEMORY = 100;

let upstream: FakeUpstream;
let dir: string;
beforeAll(async () => {
  upstream = await startFakeUpstream();
  dir = mkdtempSync(join(tmpdir(), 'sluice-store-'));
});
afterAll(async () => {
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Devices {
  covers: { source: string; complete: boolean; dropped: number; instances: string[] };
  rows: { network: string; client: string; policy: string; list: string; count: number; names: string[] }[];
}

describe('the SQLite store behind the reports', () => {
  it('reports every blocked query of two workers, the same while running and after the server stopped', async () => {
    mkdirSync(join(dir, 'lists'));
    writeFileSync(join(dir, 'lists', 'tiktok.txt'), 'tiktok.com\n');
    const port = await closedPort();
    const adminPort = await closedPort();
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(
      cfg,
      `
listeners: [{ address: 127.0.0.1, port: ${port} }]
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
upstreams: { default: ["${upstream.address}"], timeout_ms: 300, total_timeout_ms: 1000 }
workers: 2
watch: false
state_dir: state
query_log: { instance: store-test, memory_events: ${MEMORY}, store: { kind: sqlite } }
admin: { enabled: true, port: ${adminPort}, token: "store-test-token-0123" }
`,
    );
    const child = spawn(process.execPath, [BIN, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await vi.waitFor(() => expect(out).toContain('"msg":"sluice started"'), { timeout: 15000, interval: 50 });
      const server = { host: '127.0.0.1', port };
      for (let i = 0; i < BLOCKED_A + BLOCKED_B; i++) {
        const r = await resolve(server, `v${i % 7}.tiktok.com`, 'A', { localAddress: i < BLOCKED_A ? '127.0.0.1' : '127.0.0.7' });
        expect(r.rcode).toBe(RCODE.NXDOMAIN);
        if (i % 3 === 0) expect((await resolve(server, `host${i}.example.org`, 'A')).rcode).toBe(RCODE.NOERROR);
      }
      const report = async (): Promise<Devices> => {
        const r = await runSluice(['--config', cfg, 'report', 'devices', '--json'], dir);
        expect(r.stderr).toBe('');
        return JSON.parse(r.stdout) as Devices;
      };
      // The primary writes the store off the hot path: wait until the last event is in.
      await vi.waitFor(async () => expect((await report()).rows.reduce((n, r) => n + r.count, 0)).toBe(BLOCKED_A + BLOCKED_B), { timeout: 10000, interval: 200 });
      const running = await report();
      expect(running.rows.map((r) => [r.network, r.client, r.policy, r.list, r.count])).toEqual([
        ['internal', '127.0.0.1', 'app-ban', 'tiktok', BLOCKED_A],
        ['internal', '127.0.0.7', 'app-ban', 'tiktok', BLOCKED_B],
      ]);
      expect(running.rows[0]!.names).toEqual(['v0.tiktok.com', 'v1.tiktok.com', 'v2.tiktok.com', 'v3.tiktok.com', 'v4.tiktok.com', 'v5.tiktok.com', 'v6.tiktok.com']);
      expect(running.covers).toMatchObject({ source: 'sqlite', complete: true, dropped: 0, instances: ['store-test'] });
      // The table names the client and the app.
      const table = await runSluice(['--config', cfg, 'report', 'devices'], dir);
      expect(table.stdout).toMatch(/internal\s+127\.0\.0\.1\s+app-ban\s+tiktok\s+240/);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const stopped = await report();
      expect(stopped).toEqual(running);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60000);
});
