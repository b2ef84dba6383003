// A resolver that cannot bind every listener (UDP, TCP, each address, the admin API) exits
// non-zero within seconds, naming the address, whatever the worker count: it neither stays up
// serving nothing nor joins a port another sluice serves (the workers' SO_REUSEPORT sockets).
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { referenceConfig, referenceLists } from '../helpers/sluice-harness.js';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
/** "Within a few seconds": workers take a moment to start, more so while other files run. */
const EXIT_WITHIN_MS = 10_000;
const TOKEN = 'bind-failure-token-123';

interface Listener {
  port: number;
  protocols?: ('udp' | 'tcp')[];
}

/** A fresh folder with the reference lists and a config listening on `listeners` (127.0.0.1). */
function configFile(workers: number, listeners: Listener[], extra = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bind-'));
  mkdirSync(join(dir, 'lists'));
  for (const [n, t] of Object.entries(referenceLists)) writeFileSync(join(dir, 'lists', `${n}.txt`), t);
  const block = listeners.map((l) => `  - address: 127.0.0.1\n    port: ${l.port}\n` + (l.protocols ? `    protocols: [${l.protocols.join(', ')}]\n` : '')).join('');
  const text = referenceConfig(extra).replace('  - address: 127.0.0.1\n    port: 0\n', block).replace('workers: 1', `workers: ${workers}`).replaceAll('@UPSTREAM@', '127.0.0.1:9');
  const file = join(dir, 'sluice.yaml');
  writeFileSync(file, text);
  return file;
}

function serve(cfg: string, env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, stdout: () => out, stderr: () => err };
}

/** The process exits 2 within EXIT_WITHIN_MS, says `problem` once, and leaves no worker behind. */
async function expectRefusal(cfg: string, problem: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const s = serve(cfg, env);
  const t0 = Date.now();
  const kill = setTimeout(() => s.child.kill('SIGKILL'), EXIT_WITHIN_MS);
  const code = await s.exited;
  clearTimeout(kill);
  const ms = Date.now() - t0;
  expect(ms, `still running after ${ms} ms; stderr: ${s.stderr()}`).toBeLessThan(EXIT_WITHIN_MS);
  expect(code).toBe(2);
  expect(s.stderr().split(problem).length - 1, s.stderr()).toBe(1);
  expect(s.stderr()).not.toMatch(/\n\s+at /); // a message, not a stack trace
  const pids = new Set([...s.stdout().matchAll(/"pid":(\d+)/g)].map((m) => Number(m[1])));
  for (const pid of pids) expect(alive(pid), `process ${pid} outlived sluice`).toBe(false);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function bindUdp(port: number): Promise<dgram.Socket> {
  return new Promise((res, rej) => {
    const s = dgram.createSocket('udp4');
    s.once('error', (e) => {
      s.close();
      rej(e);
    });
    s.bind(port, '127.0.0.1', () => res(s));
  });
}

function listenTcp(port: number): Promise<net.Server> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(port, '127.0.0.1', () => res(s));
  });
}

/** A port free for both UDP and TCP now, and the sockets holding it. */
async function bothFree(): Promise<{ port: number; udp: dgram.Socket; tcp: net.Server }> {
  for (;;) {
    const tcp = await listenTcp(0);
    const port = (tcp.address() as net.AddressInfo).port;
    const udp = await bindUdp(port).catch(() => undefined);
    if (udp) return { port, udp, tcp };
    await new Promise<void>((r) => tcp.close(() => r()));
  }
}

const closeUdp = (s: dgram.Socket) => new Promise<void>((r) => s.close(() => r()));
const closeTcp = (s: net.Server) => new Promise<void>((r) => s.close(() => r()));

/** Another process (this test) holds one protocol of a port; the other protocol is free. */
async function held(proto: 'udp' | 'tcp'): Promise<{ port: number; release(): Promise<void> }> {
  const { port, udp, tcp } = await bothFree();
  if (proto === 'udp') {
    await closeTcp(tcp);
    return { port, release: () => closeUdp(udp) };
  }
  await closeUdp(udp);
  return { port, release: () => closeTcp(tcp) };
}

async function freePort(): Promise<number> {
  const { port, udp, tcp } = await bothFree();
  await Promise.all([closeUdp(udp), closeTcp(tcp)]);
  return port;
}

const CASES: { workers: number; extra: string }[] = [
  { workers: 1, extra: '' },
  { workers: 2, extra: '' },
  { workers: 4, extra: '' },
  // node:dgram in workers: the primary binds one socket and shares its handle with them.
  { workers: 2, extra: 'udp: { io: dgram }\n' },
];

describe.each(CASES)('workers: $workers $extra', ({ workers, extra }) => {
  for (const proto of ['udp', 'tcp'] as const) {
    it(`a ${proto.toUpperCase()} port another process holds: exits 2 naming it`, async () => {
      const h = await held(proto);
      try {
        await expectRefusal(configFile(workers, [{ port: h.port }], extra), `cannot listen on 127.0.0.1:${h.port}/${proto}: address in use`);
      } finally {
        await h.release();
      }
    });
  }

  it('the second of two listeners held: exits 2 naming that one', async () => {
    const first = await freePort();
    const h = await held('udp');
    try {
      await expectRefusal(configFile(workers, [{ port: first }, { port: h.port }], extra), `cannot listen on 127.0.0.1:${h.port}/udp: address in use`);
    } finally {
      await h.release();
    }
  });

  it('the admin API port held: exits 2 naming it', async () => {
    const h = await held('tcp');
    try {
      const cfg = configFile(workers, [{ port: 0 }], `${extra}admin: { enabled: true, port: ${h.port}, token: "${TOKEN}" }\n`);
      await expectRefusal(cfg, `cannot listen on 127.0.0.1:${h.port}/tcp (admin API): address in use`);
    } finally {
      await h.release();
    }
  });
});

describe('workers that cannot start', () => {
  it.each([2, 4])('workers: %i, each failing: the primary says why once, stops them all and exits 2', async (workers) => {
    // Fails in every worker (after the primary's checks): the batched socket it asks for is missing.
    const cfg = configFile(workers, [{ port: 0 }], 'udp: { io: batched }\n');
    await expectRefusal(cfg, 'udp.io is batched, but the batched UDP socket is not available: SLUICE_NO_NATIVE is set', { SLUICE_NO_NATIVE: '1' });
  });
});

describe('a second sluice on the port of a running one', () => {
  it('is refused, with one or several workers, on both protocols or UDP alone; the first keeps serving', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const adminPort = await freePort();
    const first = serve(configFile(2, [{ port }], `admin: { enabled: true, port: ${adminPort}, token: "${TOKEN}" }\n`));
    try {
      for (let i = 0; !/"workers":2,"msg":"sluice started"/.test(first.stdout()); i++) {
        if (i > 400 || first.child.exitCode !== null) throw new Error(`the first sluice did not start: ${first.stdout()}${first.stderr()}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      for (const workers of [1, 2]) {
        // UDP alone is what SO_REUSEPORT would let a second sluice with workers share.
        for (const protocols of [undefined, ['udp'] as ('udp' | 'tcp')[]]) {
          const secondAdmin = await freePort();
          const cfg = configFile(workers, [{ port, protocols }], `admin: { enabled: true, port: ${secondAdmin}, token: "${TOKEN}" }\n`);
          await expectRefusal(cfg, `cannot listen on 127.0.0.1:${port}/udp: address in use`);
        }
      }
      // Every query reaches the first (a second one in the port's group would take some).
      for (let i = 0; i < 20; i++) expect((await resolve({ host: '127.0.0.1', port }, `b${i}.tiktok.com`, 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
      const health = await fetch(`http://127.0.0.1:${adminPort}/healthz`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(health.status).toBe(200);
    } finally {
      first.child.kill('SIGTERM');
      await first.exited;
    }
  });
});
