// `workers: 2`: two processes share the listeners; reloads reach both; SIGTERM stops all.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists } from '../helpers/sluice-harness.js';
import { NODE_FLAGS } from '../../src/server/node-flags.js';
import { freePort } from '../helpers/ports.js';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');

let upstream: FakeUpstream;
beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

/** `sluice serve` with `workers: 2` on the reference config and lists in a fresh folder, admin server on. */
async function startTwoWorkers(watch: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-workers-'));
  mkdirSync(join(dir, 'lists'));
  for (const [n, t] of Object.entries(referenceLists)) writeFileSync(join(dir, 'lists', `${n}.txt`), t);
  const port = await freePort();
  const adminPort = await freePort();
  const cfg = join(dir, 'sluice.yaml');
  writeFileSync(
    cfg,
    referenceConfig().replaceAll('@UPSTREAM@', upstream.address).replace('workers: 1', 'workers: 2').replace('port: 0', `port: ${port}`) +
      `watch: ${watch}\nadmin: { enabled: true, port: ${adminPort}, token: "workers-test-token-123" }\n`,
  );
  const child = spawn(process.execPath, [BIN, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return { dir, port, adminPort, child, output: () => out };
}

describe('workers', () => {
  it('two workers answer, both apply a reload, and SIGTERM stops them all', async () => {
    const { dir, port, adminPort, child, output } = await startTwoWorkers(false);
    const waitFor = async (re: RegExp, count = 1) => {
      for (let i = 0; i < 100; i++) {
        if ((output().match(new RegExp(re, 'g')) ?? []).length >= count) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`timed out waiting for ${re}: ${output()}`);
    };
    try {
      await waitFor(/"workers":2,"msg":"sluice started"/);
      const pids = new Set((output().match(/"pid":(\d+)[^\n]*"msg":"listening"/g) ?? []).map((l) => /"pid":(\d+)/.exec(l)![1]));
      expect(pids.size).toBe(2);
      // Each worker has its own batched UDP socket on the one port (SO_REUSEPORT).
      const udpLines = (output().match(/[^\n]*"msg":"listening"[^\n]*/g) ?? []).filter((l) => l.includes('"protocol":"udp"'));
      expect(udpLines).toHaveLength(2);
      for (const l of udpLines) expect(l).toContain('"io":"batched"');
      // Workers run with the node flags (the primary was started without them, as a plain `node bin/sluice.js`).
      for (const pid of pids) expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining([...NODE_FLAGS]));
      const server = { host: '127.0.0.1', port };
      for (let i = 0; i < 20; i++) {
        expect((await resolve(server, `w${i}.tiktok.com`, 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
        expect((await resolve(server, `w${i}.tiktok.com`, 'A', { localAddress: '127.0.0.1', transport: 'tcp' })).rcode).toBe(RCODE.NXDOMAIN);
      }
      // The primary's admin server sees both workers' query log events and metrics.
      const get = async (path: string) => {
        const r = await fetch(`http://127.0.0.1:${adminPort}${path}`, { headers: { authorization: 'Bearer workers-test-token-123' } });
        return r.text();
      };
      let total = 0;
      for (let i = 0; i < 40 && total < 40; i++) {
        await new Promise((r) => setTimeout(r, 50));
        total = (JSON.parse(await get('/api/log?limit=1')) as { total: number }).total;
      }
      expect(total).toBe(40);
      const metrics = await get('/metrics');
      const blocked = [...metrics.matchAll(/^sluice_queries_total\{[^}]*decision="blocked"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
      expect(blocked).toBe(40);
      expect(metrics).toMatch(/^sluice_list_entries\{list="tiktok"\} 3$/m);
      // A gauge whose sum is wrong is combined otherwise: standalone, "up" is 1, not 1 per worker.
      expect(metrics).toMatch(/^sluice_redis_up 1$/m);
      writeFileSync(join(dir, 'lists', 'tiktok.txt'), referenceLists.tiktok + 'temu.com\n');
      child.kill('SIGHUP');
      await waitFor(/"msg":"reloaded"/, 2);
      for (let i = 0; i < 20; i++) expect((await resolve(server, `x${i}.temu.com`, 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
      const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      const t0 = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it("a reload the workers make by themselves (a watched list changed) reaches the primary's admin view", async () => {
    const { dir, port, adminPort, child, output } = await startTwoWorkers(true);
    // /api/lists is the primary's own view (metrics come from the workers' registries).
    const entries = async () => {
      const r = await fetch(`http://127.0.0.1:${adminPort}/api/lists`, { headers: { authorization: 'Bearer workers-test-token-123' } }).catch(() => undefined);
      if (!r?.ok) return undefined;
      const body = (await r.json()) as { name: string; entries: number }[] | { lists: { name: string; entries: number }[] };
      const lists = Array.isArray(body) ? body : body.lists;
      return String(lists.find((l) => l.name === 'tiktok')?.entries);
    };
    try {
      for (let i = 0; i < 100 && !/"workers":2,"msg":"sluice started"/.test(output()); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await entries()).toBe('3');
      writeFileSync(join(dir, 'lists', 'tiktok.txt'), referenceLists.tiktok + 'temu.com\n'); // no SIGHUP
      let seen: string | undefined;
      for (let i = 0; i < 100 && seen !== '4'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        seen = await entries();
      }
      expect(seen).toBe('4');
      expect((await resolve({ host: '127.0.0.1', port }, 'x.temu.com', 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
