// `sluice health`: is a running server answering? One DNS query to every listener (each address and
// transport: UDP, TCP, DoT, DoH), answered by sluice itself — never forwarded, never logged, so a
// dead upstream does not make the server look dead and the probe does not pollute the query log —
// and GET /healthz on the admin server when it is enabled (Redis, workers, the query-log store).
// Exit 0 healthy, 1 not: the contract of Docker's HEALTHCHECK (which reserves 2), so a config that
// cannot be read is also exit 1.
import dgram from 'node:dgram';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { randomInt } from 'node:crypto';
import { Command, Option } from 'commander';
import { CLASS_IN, TYPE, rcodeName } from '../dns/codes.js';
import { encodeName } from '../dns/wire.js';
import { ConfigError, readConfigFile, type LoadedConfig } from '../config/load.js';
import { listenerPort, parseUpstreamAddress } from '../config/schema.js';
import { HEALTH_PROBE_NAME } from '../pipeline/context.js';
import { adminUrl } from '../querylog/log-source.js';
import { configPath } from './config-file.js';
import { EXIT, printJson } from './output.js';

/** Answered by sluice itself (see HEALTH_PROBE_NAME); an older server forwards or refuses it, and any answer still counts. */
export const HEALTH_QUERY_NAME = HEALTH_PROBE_NAME;

export type ProbeTransport = 'udp' | 'tcp' | 'dot' | 'doh';

export interface DnsTarget {
  host: string;
  port: number;
  transport: ProbeTransport;
  /** DoH: the path of the endpoint. */
  path?: string;
}

export interface DnsProbe {
  ok: boolean;
  target?: string;
  transport?: ProbeTransport;
  rcode?: string;
  ms?: number;
  error?: string;
}

export interface AdminProbe {
  ok: boolean;
  url?: string;
  status?: number;
  body?: unknown;
  ms?: number;
  /** Why the admin server was not asked (admin.enabled is false). */
  skipped?: string;
  error?: string;
}

export interface HealthReport {
  healthy: boolean;
  /** The first listener that failed, else the first listener. */
  dns: DnsProbe;
  /** Every listener and transport. */
  listeners: DnsProbe[];
  admin: AdminProbe;
  /** What an admin should look at though the server is healthy: list files it refused. */
  warnings: string[];
}

/** The refused list files /healthz reports (`lists.refused`), as sentences. */
export function healthWarnings(body: unknown): string[] {
  const refused = (body as { lists?: { refused?: unknown } } | null)?.lists?.refused;
  if (!Array.isArray(refused)) return [];
  return refused.map((r: { name?: unknown; reason?: unknown }) => `list ${String(r.name)} refused: ${String(r.reason)}`);
}

/** Where to send the test query: the first listener; a wildcard address is reached on loopback. */
export function dnsTargetOf(loaded: LoadedConfig): DnsTarget | string {
  const all = dnsTargetsOf(loaded);
  return typeof all === 'string' ? all : all[0]!;
}

/** Every listener and transport of the config (a wildcard address is reached on loopback). */
export function dnsTargetsOf(loaded: LoadedConfig): DnsTarget[] | string {
  const out: DnsTarget[] = [];
  for (const l of loaded.config.listeners) {
    const host = l.address === '0.0.0.0' ? '127.0.0.1' : l.address === '::' ? '::1' : l.address;
    for (const transport of l.protocols) {
      const port = listenerPort(l, transport);
      if (port === 0) return `a listener has port 0 (a random port); give --server HOST:PORT`;
      out.push({ host, port, transport, ...(transport === 'doh' ? { path: loaded.config.doh.path } : {}) });
    }
  }
  return out.length > 0 ? out : `no listeners in ${loaded.file}`;
}

function formatTarget(t: DnsTarget): string {
  return net.isIPv6(t.host) ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

function encodeHealthQuery(id: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD, as a stub resolver sends it
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(TYPE.A, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, encodeName(HEALTH_QUERY_NAME), tail]);
}

/** A reply to our query: same ID, QR set. Its rcode does not matter: the server is answering. */
function replyRcode(msg: Buffer, id: number): number | undefined {
  if (msg.length < 12 || msg.readUInt16BE(0) !== id || (msg[2]! & 0x80) === 0) return undefined;
  return msg[3]! & 0x0f;
}

function askUdp(t: DnsTarget, query: Buffer, id: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(t.host) ? 'udp6' : 'udp4');
    const done = (err: Error | undefined, rcode?: number) => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(rcode!);
    };
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => done(err));
    socket.on('message', (msg) => {
      const rcode = replyRcode(msg, id);
      if (rcode !== undefined) done(undefined, rcode);
    });
    socket.send(query, t.port, t.host, (err) => {
      if (err) done(err);
    });
  });
}

/**
 * TCP, or DoT (RFC 7858) when `tls`: the certificate is not checked — the probe asks whether this
 * server answers on the port, and an expired certificate is for the admin's monitoring of it.
 */
function askTcp(t: DnsTarget, query: Buffer, id: number, timeoutMs: number, overTls = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = overTls
      ? tls.connect({ host: t.host, port: t.port, ALPNProtocols: ['dot'], rejectUnauthorized: false, servername: net.isIP(t.host) ? undefined : t.host })
      : net.connect({ host: t.host, port: t.port });
    let pending = Buffer.alloc(0);
    let settled = false;
    const done = (err: Error | undefined, rcode?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(rcode!);
    };
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(query.length, 0);
    socket.once(overTls ? 'secureConnect' : 'connect', () => socket.write(Buffer.concat([prefix, query])));
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length < 2) return;
      const len = pending.readUInt16BE(0);
      if (pending.length < 2 + len) return;
      const rcode = replyRcode(pending.subarray(2, 2 + len), id);
      if (rcode === undefined) done(new Error('the reply does not match the query'));
      else done(undefined, rcode);
    });
    socket.on('error', (err) => done(err));
    socket.on('close', () => done(new Error('connection closed without an answer')));
  });
}

/** DoH (RFC 8484): one POST over HTTP/2, the certificate not checked (as for DoT). */
function askDoh(t: DnsTarget, query: Buffer, id: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const authority = `https://${net.isIPv6(t.host) ? `[${t.host}]` : t.host}:${t.port}`;
    const session = http2.connect(authority, { rejectUnauthorized: false });
    let settled = false;
    const done = (err: Error | undefined, rcode?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      if (err) reject(err);
      else resolve(rcode!);
    };
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    session.on('error', (err) => done(err));
    const req = session.request({ ':method': 'POST', ':path': t.path ?? '/dns-query', 'content-type': 'application/dns-message', accept: 'application/dns-message' });
    const chunks: Buffer[] = [];
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (status !== 200) return done(new Error(`HTTP ${status}`));
      const rcode = replyRcode(Buffer.concat(chunks), id);
      if (rcode === undefined) done(new Error('the reply does not match the query'));
      else done(undefined, rcode);
    });
    req.on('error', (err) => done(err));
    req.end(query);
  });
}

const ASK: Record<ProbeTransport, (t: DnsTarget, query: Buffer, id: number, timeoutMs: number) => Promise<number>> = {
  udp: askUdp,
  tcp: (t, q, id, ms) => askTcp(t, q, id, ms),
  dot: (t, q, id, ms) => askTcp(t, q, id, ms, true),
  doh: askDoh,
};

export async function probeDns(t: DnsTarget, timeoutMs: number): Promise<DnsProbe> {
  const id = randomInt(0, 0x10000);
  const query = encodeHealthQuery(id);
  const started = performance.now();
  const base = { target: formatTarget(t), transport: t.transport };
  try {
    const rcode = await ASK[t.transport](t, query, id, timeoutMs);
    return { ok: true, ...base, rcode: rcodeName(rcode), ms: Math.round(performance.now() - started) };
  } catch (err) {
    return { ok: false, ...base, error: (err as Error).message };
  }
}

/** GET /healthz: 200 with a body whose `ok` is not false. */
export async function probeAdmin(baseUrl: string, timeoutMs: number): Promise<AdminProbe> {
  const url = `${baseUrl.replace(/\/+$/, '')}/healthz`;
  const started = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: report the text
    }
    const ms = Math.round(performance.now() - started);
    const bodyOk = typeof body !== 'object' || body === null || (body as { ok?: unknown }).ok !== false;
    return { ok: res.status === 200 && bodyOk, url, status: res.status, body, ms };
  } catch (err) {
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    const error = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message ?? String(err));
    return { ok: false, url, error };
  }
}

export interface HealthOptions {
  /** HOST:PORT of the DNS listener; default the config's first listener. */
  server?: string;
  /** Base URL of the admin server; default from the config's `admin` section when it is enabled. */
  admin?: string;
  timeoutMs: number;
}

/** Both probes, run in parallel. `loaded` may be undefined when --server (and --admin) say everything. */
export async function checkHealth(loaded: LoadedConfig | undefined, opts: HealthOptions, loadError?: string): Promise<HealthReport> {
  let dnsTargets: DnsTarget[] | string;
  if (opts.server !== undefined) {
    const a = parseUpstreamAddress(opts.server);
    dnsTargets = a ? [{ host: a.host, port: a.port, transport: 'udp' }] : `--server ${opts.server}: not an address such as 127.0.0.1:53 or [::1]:53`;
  } else dnsTargets = loaded ? dnsTargetsOf(loaded) : (loadError ?? 'no config');

  let adminTarget: string | AdminProbe;
  if (opts.admin !== undefined) adminTarget = opts.admin;
  else if (!loaded) adminTarget = { ok: false, error: loadError ?? 'no config' };
  else if (!loaded.config.admin.enabled) adminTarget = { ok: true, skipped: `admin.enabled is false in ${loaded.file}` };
  else adminTarget = adminUrl(loaded);

  const [listeners, admin] = await Promise.all([
    typeof dnsTargets === 'string' ? [{ ok: false, error: dnsTargets }] : Promise.all(dnsTargets.map((t) => probeDns(t, opts.timeoutMs))),
    typeof adminTarget === 'string' ? probeAdmin(adminTarget, opts.timeoutMs) : adminTarget,
  ]);
  const dns = listeners.find((l) => !l.ok) ?? listeners[0]!;
  return { healthy: listeners.every((l) => l.ok) && admin.ok, dns, listeners, admin, warnings: [...healthWarnings(admin.body), ...partWarnings(admin.body)] };
}

/** What /healthz says of the parts besides DNS, when one is unwell: the store, Redis, the workers. */
export function partWarnings(body: unknown): string[] {
  if (typeof body !== 'object' || body === null) return [];
  const b = body as { store?: { ok?: unknown; error?: unknown; lastError?: unknown }; redis?: unknown; problems?: unknown };
  const out: string[] = [];
  if (b.store && b.store.ok === false) out.push(`query-log store: ${String(b.store.lastError ?? b.store.error ?? 'not ok')}`);
  if (typeof b.redis === 'string' && b.redis !== 'ok' && b.redis !== 'up') out.push(`redis: ${b.redis}`);
  if (Array.isArray(b.problems)) for (const p of b.problems) out.push(String(p));
  return out;
}

function describeDns(d: DnsProbe): string {
  if (!d.ok) return `FAIL  ${d.target ? `${d.target} ${d.transport}: ` : ''}${d.error}`;
  return `ok    ${d.target} ${d.transport} answered ${d.rcode} in ${d.ms} ms`;
}

function describeAdmin(a: AdminProbe): string {
  if (a.skipped !== undefined) return `-     skipped: ${a.skipped}`;
  if (a.error !== undefined) return `FAIL  ${a.url ? `${a.url}: ` : ''}${a.error}`;
  const detail = typeof a.body === 'object' && a.body !== null ? ` ${JSON.stringify(a.body)}` : '';
  return `${a.ok ? 'ok  ' : 'FAIL'}  ${a.url} HTTP ${a.status} in ${a.ms} ms${detail}`;
}

export function registerHealth(program: Command): void {
  program
    .command('health')
    .description('Is the running server healthy? A test query to every listener (answered by sluice itself, never forwarded) and GET /healthz on the admin server. Exit 0 healthy, 1 not.')
    .addOption(new Option('--server <host:port>', 'DNS address to query instead of the first listener (e.g. 127.0.0.1:53, [::1]:53)'))
    .addOption(new Option('--admin <url>', "admin server base URL instead of the config's admin section (e.g. http://127.0.0.1:8053)"))
    .addOption(
      new Option('--timeout <ms>', 'time limit for each probe').default('2000').argParser((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new Error('--timeout: a whole number of milliseconds');
        return String(n);
      }),
    )
    .addOption(new Option('--json', 'machine-readable output'))
    .addHelpText(
      'after',
      `\nThe query is for ${HEALTH_QUERY_NAME} (type A): sluice answers it itself, from any address, and` +
        '\nneither forwards nor logs it, so a dead upstream does not fail the probe. Every listener is asked' +
        '\non each of its transports (DoT and DoH without checking the certificate). Wildcard listeners' +
        '\n(0.0.0.0, ::) are queried on loopback. A list file the server refused (see `sluice lists`), or' +
        '\na query-log store that cannot write, is a warn line and does not change the exit code: the' +
        '\nserver answers, as it should.' +
        '\n\nExamples:\n  sluice health\n  sluice health --config /etc/sluice/sluice.yaml --timeout 3000' +
        '\n  sluice health --server 127.0.0.1:5353 --admin http://127.0.0.1:8053 --json',
    )
    .action(async (opts: { server?: string; admin?: string; timeout: string; json?: boolean }, cmd: Command) => {
      let loaded: LoadedConfig | undefined;
      let loadError: string | undefined;
      if (opts.server === undefined || opts.admin === undefined) {
        const file = configPath(cmd);
        try {
          loaded = readConfigFile(file);
        } catch (err) {
          loadError = err instanceof ConfigError ? `cannot load ${file}: ${err.message}` : (err as Error).message;
        }
      }
      const report = await checkHealth(loaded, { server: opts.server, admin: opts.admin, timeoutMs: Number(opts.timeout) }, loadError);
      process.exitCode = report.healthy ? EXIT.OK : EXIT.FAILED;
      if (opts.json) return printJson(report);
      const warnings = report.warnings.map((w) => `warn   ${w}\n`).join('');
      const verdict = report.healthy ? (report.warnings.length > 0 ? `healthy, with ${report.warnings.length} warning${report.warnings.length === 1 ? '' : 's'}` : 'healthy') : 'UNHEALTHY';
      const dnsLines = report.listeners.map((l) => `dns    ${describeDns(l)}\n`).join('');
      process.stdout.write(`${dnsLines}admin  ${describeAdmin(report.admin)}\n${warnings}${verdict}\n`);
    });
}
