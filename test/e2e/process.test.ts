// The real `sluice serve` process: signals, logs, start-up errors.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { until } from '../helpers/until.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists } from '../helpers/sluice-harness.js';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');

interface Running {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  port: number;
  waitFor(pred: (l: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
}

function run(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const logs: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not JSON */
      }
      for (const w of waiters.splice(0)) w();
    }
  });
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, ms = 5000) =>
    new Promise<Record<string, unknown>>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`timed out; logs: ${JSON.stringify(logs)}`)), ms);
      const check = () => {
        const hit = logs.find(pred);
        if (hit) {
          clearTimeout(t);
          res(hit);
        } else waiters.push(check);
      };
      check();
    });
  return waitFor((l) => l.msg === 'listening' && l.protocol === 'udp').then((l) => ({ child, logs, port: l.port as number, waitFor }));
}

let upstream: FakeUpstream;
let dir: string;
beforeAll(async () => {
  upstream = await startFakeUpstream();
  dir = mkdtempSync(join(tmpdir(), 'sluice-proc-'));
  mkdirSync(join(dir, 'lists'));
  for (const [n, t] of Object.entries(referenceLists)) writeFileSync(join(dir, 'lists', `${n}.txt`), t);
});
afterAll(async () => {
  await upstream?.close();
});

describe('sluice serve', () => {
  it('reloads on SIGHUP, keeps the old config when the new one is broken, and stops on SIGTERM within 5 s', async () => {
    const cfg = join(dir, 'sluice.yaml');
    const config = referenceConfig().replaceAll('@UPSTREAM@', upstream.address);
    writeFileSync(cfg, config);
    const s = await run(cfg);
    const server = { host: '127.0.0.1', port: s.port };
    try {
      expect((await resolve(server, 'temu.com', 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NOERROR);

      writeFileSync(join(dir, 'lists', 'tiktok.txt'), referenceLists.tiktok + 'temu.com\n');
      s.child.kill('SIGHUP');
      await s.waitFor((l) => l.msg === 'reloaded');
      expect((await resolve(server, 'temu.com', 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);

      writeFileSync(cfg, config.replace('cidrs: [127.0.0.2/32]', 'cidrs: [127.0.0.300/32]'));
      s.child.kill('SIGHUP');
      const rejected = await s.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('reload rejected'));
      expect(String(rejected.msg)).toMatch(/sluice\.yaml:\d+ networks\.guest\.cidrs\[0\]/);
      expect((await resolve(server, 'temu.com', 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);

      const t0 = Date.now();
      const exited = new Promise<number | null>((r) => s.child.on('exit', (code) => r(code)));
      s.child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      s.child.kill('SIGKILL');
    }
  });

  it('without the batched UDP socket serves on node:dgram and says why; `udp.io: batched` then refuses to start', async () => {
    const cfg = join(dir, 'no-native.yaml');
    writeFileSync(cfg, referenceConfig().replaceAll('@UPSTREAM@', upstream.address));
    const s = await run(cfg, { SLUICE_NO_NATIVE: '1' });
    try {
      expect(s.logs.find((l) => l.msg === 'listening' && l.protocol === 'udp')).toMatchObject({ io: 'dgram', io_note: 'SLUICE_NO_NATIVE is set' });
      const server = { host: '127.0.0.1', port: s.port };
      expect((await resolve(server, 'www.tiktok.com', 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
      expect((await resolve(server, 'forwarded.example', 'A', { localAddress: '127.0.0.1' })).answers[0]?.data).toBe('192.0.2.1');
    } finally {
      s.child.kill('SIGKILL');
    }
    writeFileSync(cfg, referenceConfig('udp: { io: batched }\n').replaceAll('@UPSTREAM@', upstream.address));
    const child = spawn(process.execPath, [BIN, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLUICE_NO_NATIVE: '1' } });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).not.toBe(0);
    expect(out).toContain('udp.io is batched, but the batched UDP socket is not available: SLUICE_NO_NATIVE is set');
  });

  it('refuses to start on a broken config, naming file, line and field', async () => {
    const cfg = join(dir, 'broken.yaml');
    writeFileSync(cfg, referenceConfig().replace('profile: open', 'profile: open\n    colour: blue'));
    const child = spawn(process.execPath, [BIN, 'serve', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(2);
    expect(stderr).toMatch(/broken\.yaml:\d+ networks\.guest\.colour: unknown key "colour"/);
  });

  it.each([
    ['through the native addon', {}],
    ['through systemd-notify(1) without it', { SLUICE_NO_NATIVE: '1' }],
  ])('tells systemd (Type=notify) it is ready, reloading and stopping, and pings the watchdog, %s', async (_how, extra) => {
    // A Unix datagram socket standing in for systemd's: Node has none, python3 prints each datagram.
    const sock = join(dir, `notify-${Object.keys(extra).length}.sock`);
    const receiver = spawn('/usr/bin/python3', [
      '-u',
      '-c',
      'import socket,sys,json\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound")\nwhile True: print(json.dumps(s.recv(4096).decode()))',
      sock,
    ]);
    const got: string[] = [];
    let bound = false;
    receiver.stdout.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        if (line === 'bound') bound = true;
        else got.push(JSON.parse(line) as string);
      }
    });
    await until('the notify socket', () => bound, 5000, 10);
    const cfg = join(dir, 'notify.yaml');
    writeFileSync(cfg, referenceConfig().replaceAll('@UPSTREAM@', upstream.address));
    const s = await run(cfg, { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '200000', ...extra });
    try {
      await until('READY=1', () => got.some((m) => m.includes('READY=1')), 5000, 10);
      const ready = got.find((m) => m.includes('READY=1'))!;
      expect(ready).toContain(`MAINPID=${s.child.pid}`);
      expect(ready).toContain('STATUS=serving');
      // WATCHDOG_USEC 0.2 s: a ping every 0.1 s.
      await until('three watchdog pings', () => got.filter((m) => m === 'WATCHDOG=1').length >= 3, 5000, 10);
      s.child.kill('SIGHUP');
      await until('RELOADING=1', () => got.some((m) => m.startsWith('RELOADING=1')), 5000, 10);
      await until('READY=1 after the reload', () => got.slice(got.findIndex((m) => m.startsWith('RELOADING=1'))).some((m) => m.startsWith('READY=1')), 5000, 10);
      expect(got.find((m) => m.startsWith('RELOADING=1'))).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+$/);
      const exited = new Promise<number | null>((r) => s.child.on('exit', (code) => r(code)));
      s.child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await until('STOPPING=1', () => got.includes('STOPPING=1'), 5000, 10);
    } finally {
      s.child.kill('SIGKILL');
      receiver.kill('SIGKILL');
    }
  });
});
