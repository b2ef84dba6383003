// `sluice health`: is a running server answering? One real DNS query to the first listener, and
// GET /healthz on the admin server when it is enabled. Exit 0 healthy, 1 not: the contract of
// Docker's HEALTHCHECK (which reserves 2), so a config that cannot be read is also exit 1.
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';
import { Command, Option } from 'commander';
import { CLASS_IN, TYPE, rcodeName } from '../dns/codes.js';
import { encodeName } from '../dns/wire.js';
import { ConfigError, readConfigFile, type LoadedConfig } from '../config/load.js';
import { parseUpstreamAddress } from '../config/schema.js';
import { adminUrl } from '../querylog/log-source.js';
import { configPath } from './config-file.js';
import { EXIT, printJson } from './output.js';

/** RFC 6761 reserves .invalid, so the query can never leak a real lookup; any answer will do. */
export const HEALTH_QUERY_NAME = 'health.sluice.invalid';

export interface DnsTarget {
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
}

export interface DnsProbe {
  ok: boolean;
  target?: string;
  transport?: 'udp' | 'tcp';
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
  dns: DnsProbe;
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
  const l = loaded.config.listeners[0];
  if (!l) return `no listeners in ${loaded.file}`;
  if (l.port === 0) return `the first listener has port 0 (a random port); give --server HOST:PORT`;
  const host = l.address === '0.0.0.0' ? '127.0.0.1' : l.address === '::' ? '::1' : l.address;
  return { host, port: l.port, transport: l.protocols.includes('udp') ? 'udp' : 'tcp' };
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

function askTcp(t: DnsTarget, query: Buffer, id: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: t.host, port: t.port });
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
    socket.once('connect', () => socket.write(Buffer.concat([prefix, query])));
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

export async function probeDns(t: DnsTarget, timeoutMs: number): Promise<DnsProbe> {
  const id = randomInt(0, 0x10000);
  const query = encodeHealthQuery(id);
  const started = performance.now();
  const base = { target: formatTarget(t), transport: t.transport };
  try {
    const rcode = await (t.transport === 'udp' ? askUdp : askTcp)(t, query, id, timeoutMs);
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
  let dnsTarget: DnsTarget | string;
  if (opts.server !== undefined) {
    const a = parseUpstreamAddress(opts.server);
    dnsTarget = a ? { ...a, transport: 'udp' } : `--server ${opts.server}: not an address such as 127.0.0.1:53 or [::1]:53`;
  } else dnsTarget = loaded ? dnsTargetOf(loaded) : (loadError ?? 'no config');

  let adminTarget: string | AdminProbe;
  if (opts.admin !== undefined) adminTarget = opts.admin;
  else if (!loaded) adminTarget = { ok: false, error: loadError ?? 'no config' };
  else if (!loaded.config.admin.enabled) adminTarget = { ok: true, skipped: `admin.enabled is false in ${loaded.file}` };
  else adminTarget = adminUrl(loaded);

  const [dns, admin] = await Promise.all([
    typeof dnsTarget === 'string' ? { ok: false, error: dnsTarget } : probeDns(dnsTarget, opts.timeoutMs),
    typeof adminTarget === 'string' ? probeAdmin(adminTarget, opts.timeoutMs) : adminTarget,
  ]);
  return { healthy: dns.ok && admin.ok, dns, admin, warnings: healthWarnings(admin.body) };
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
    .description('Is the running server healthy? A test DNS query to the first listener and GET /healthz on the admin server. Exit 0 healthy, 1 not.')
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
      `\nThe query is for ${HEALTH_QUERY_NAME} (type A); any answer with the query's ID counts, REFUSED included,` +
        '\nso the probe works from an address that is in no network. Wildcard listeners (0.0.0.0, ::) are' +
        '\nqueried on loopback. A list file the server refused (see `sluice lists`) is a WARN line and' +
        '\ndoes not change the exit code: the server serves its last good state, as it should.' +
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
      const warnings = report.warnings.map((w) => `lists  WARN  ${w}\n`).join('');
      const verdict = report.healthy ? (report.warnings.length > 0 ? `healthy, with ${report.warnings.length} warning${report.warnings.length === 1 ? '' : 's'}` : 'healthy') : 'UNHEALTHY';
      process.stdout.write(`dns    ${describeDns(report.dns)}\nadmin  ${describeAdmin(report.admin)}\n${warnings}${verdict}\n`);
    });
}
