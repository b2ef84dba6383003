// A real redis-server for tests, on a free loopback port, started and stopped by the test.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from './ports.js';

export interface TestRedis {
  port: number;
  url: string;
  /** One command on a fresh connection (e.g. CLIENT KILL, CLIENT PAUSE, ACL SETUSER). */
  command(...args: (string | number)[]): Promise<unknown>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.on('connect', () => c.write('PING\r\n'));
    c.on('data', (d) => {
      c.destroy();
      // NOAUTH: up, and asking for credentials (the default user is off).
      resolve(/^(\+PONG|-NOAUTH)/.test(d.toString()));
    });
    c.on('error', () => resolve(false));
  });
}

export interface RedisOptions {
  /** More redis-server arguments, e.g. ['--requirepass', 'x']. */
  args?: string[];
  /** Serve TLS only, with these PEM files (the plain port is then closed). */
  tls?: { cert: string; key: string; ca: string };
  /** A password the test's own commands and readiness check use. */
  password?: string;
}

export async function startRedis(opts: RedisOptions = {}): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const tlsArgs = opts.tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.cert, '--tls-key-file', opts.tls.key, '--tls-ca-cert-file', opts.tls.ca, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  const ready = async () => {
    if (!opts.tls) return ping(port);
    return command('PING').then(
      (r) => r === 'PONG',
      () => false,
    );
  };
  const command = async (...args: (string | number)[]): Promise<unknown> => {
    const { Redis } = await import('ioredis');
    const r = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      ...(opts.password ? { password: opts.password } : {}),
      ...(opts.tls ? { tls: { ca: readFileSync(opts.tls.ca), servername: 'localhost' } } : {}),
    });
    r.on('error', () => {});
    try {
      await r.connect();
      return await r.call(String(args[0]), ...args.slice(1).map(String));
    } finally {
      r.disconnect();
    }
  };
  const start = async () => {
    child = spawn('redis-server', [...tlsArgs, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...(opts.args ?? [])], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      if (await ready()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('redis-server did not start (is it installed? .ci/run installs it)');
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  await start();
  return { port, url: `${opts.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`, stop, start, command };
}
