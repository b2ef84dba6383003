// Forwarding over encrypted upstreams to a real server: Debian's Unbound on loopback serving DNS
// over TLS (tls-port) and DNS over HTTPS (https-port) with a certificate from a test CA made by
// openssl, and answering e2e.test from local data so that it needs no internet. sluice forwards
// over DoT and DoH and dig gets the answer; a wrong tls_name or pin is refused, logged and counted
// in /metrics, and the next upstream answers; Unbound restarted under load costs no client answer
// beyond SERVFAILs while it is away.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { freePort, freeTcpUdpPort } from '../helpers/ports.js';
import { startSluice, type Harness } from '../helpers/sluice-harness.js';
import { makeTestCa } from '../helpers/test-ca.js';
import { until } from '../helpers/until.js';

const UNBOUND = '/usr/sbin/unbound';
const TOKEN = 'upstream-encrypted-token-0123';
const ANSWER = '192.0.2.80';

interface Pki {
  dir: string;
  caFile: string;
  keyFile: string;
  certFile: string;
}

/** A test CA and a server certificate for dns.test and 127.0.0.1, made with openssl. */
function makePki(): Pki {
  const ca = makeTestCa('sluice-e2e-tls-');
  const { keyFile, certFile } = ca.issue('dns', 'DNS:dns.test,IP:127.0.0.1');
  return { dir: ca.dir, caFile: ca.caFile, keyFile, certFile };
}

interface Unbound {
  dot: number;
  doh: number;
  plain: number;
  log(): string;
  stop(): Promise<void>;
}

/** Unbound on 127.0.0.1 with DoT on `dot`, DoH on `doh` and plain DNS on `plain`; everything under e2e.test is ANSWER. */
async function startUnbound(pki: Pki, ports: { dot: number; doh: number; plain: number }): Promise<Unbound> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-e2e-unbound-'));
  const conf = join(dir, 'unbound.conf');
  writeFileSync(
    conf,
    [
      'server:',
      `  interface: 127.0.0.1@${ports.plain}`,
      `  interface: 127.0.0.1@${ports.dot}`,
      `  interface: 127.0.0.1@${ports.doh}`,
      `  tls-port: ${ports.dot}`,
      `  https-port: ${ports.doh}`,
      `  tls-service-key: "${pki.keyFile}"`,
      `  tls-service-pem: "${pki.certFile}"`,
      '  http-endpoint: "/dns-query"',
      '  do-ip6: no',
      '  access-control: 127.0.0.0/8 allow',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 1',
      '  num-threads: 1',
      '  so-reuseport: no',
      // Nothing is resolved from the internet: e2e.test from local data, everything else refused.
      '  local-zone: "." refuse',
      '  local-zone: "e2e.test." redirect',
      `  local-data: "e2e.test. 300 IN A ${ANSWER}"`,
      'remote-control:',
      '  control-enable: no',
      '',
    ].join('\n'),
  );
  const check = spawnSync('/usr/sbin/unbound-checkconf', [conf], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`unbound-checkconf: ${check.stdout}${check.stderr}`);
  const child: ChildProcess = spawn(UNBOUND, ['-d', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const collect = (d: Buffer) => {
    if (out.length < 64 * 1024) out += d.toString();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await until(
    'unbound answering',
    async () => {
      if (child.exitCode !== null) throw new Error(`unbound exited:\n${out}`);
      return resolve({ host: '127.0.0.1', port: ports.plain }, 'ready.e2e.test', 'A', { timeoutMs: 300 }).then(
        (r) => r.rcode === RCODE.NOERROR,
        () => false,
      );
    },
    10_000,
    50,
  );
  return {
    ...ports,
    log: () => out.slice(-6000),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function config(upstreams: string[], extra = ''): string {
  return `
listeners:
  - address: 127.0.0.1
    port: 0
networks:
  lan:
    cidrs: [127.0.0.0/8]
    profile: open
profiles:
  open:
    block: []
workers: 1
admin: { enabled: true, port: 0, token: "${TOKEN}" }
upstreams:
  default:
${upstreams.map((u) => `    - ${u}`).join('\n')}
  timeout_ms: 1000
  total_timeout_ms: 3000
${extra}`;
}

async function dig(h: Harness, name: string): Promise<string> {
  const { stdout } = await promisify(execFile)('dig', [`@127.0.0.1`, '-p', String(h.udp.port), name, 'A', '+short', '+time=4', '+tries=1']);
  return stdout.trim();
}

async function metrics(h: Harness): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${h.server.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.text()).split('\n');
}

let pki: Pki;
let unbound: Unbound;
let ports: { dot: number; doh: number; plain: number };
beforeAll(async () => {
  pki = makePki();
  ports = { dot: await freePort(), doh: await freePort(), plain: await freeTcpUdpPort() };
  unbound = await startUnbound(pki, ports);
}, 30_000);
afterAll(async () => {
  await unbound?.stop();
  rmSync(pki.dir, { recursive: true, force: true });
});

let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const dot = (opts = '') => `{ url: "tls://127.0.0.1:${ports.dot}", tls_name: dns.test, ca_file: "${pki.caFile}"${opts} }`;
const doh = (opts = '') => `{ url: "https://127.0.0.1:${ports.doh}/dns-query", tls_name: dns.test, ca_file: "${pki.caFile}"${opts} }`;

describe('forwarding to Unbound over DoT and DoH', () => {
  it('answers over DoT, with the name and with the IP address in the certificate checked', async () => {
    h = await startSluice({ config: config([dot()]), captureLogs: true });
    expect(await dig(h, 'www.e2e.test')).toBe(ANSWER);
    expect(await dig(h, 'a1.e2e.test')).toBe(ANSWER);
    const health = h.server.resolver.upstreamHealth.get(`tls://127.0.0.1:${ports.dot}`);
    expect(health?.srtt).toBeGreaterThan(0);
    expect(health?.connectFailures.size).toBe(0);
    await h.stop();
    // No tls_name: the certificate's IP SAN is checked.
    h = await startSluice({ config: config([`{ url: "tls://127.0.0.1:${ports.dot}", ca_file: "${pki.caFile}" }`]) });
    expect(await dig(h, 'www.e2e.test')).toBe(ANSWER);
  });

  it('answers over DoH, by POST and by GET', async () => {
    h = await startSluice({ config: config([doh()]) });
    expect(await dig(h, 'www.e2e.test')).toBe(ANSWER);
    expect((await metrics(h)).some((l) => l.startsWith(`sluice_upstream_srtt_seconds{upstream="https://127.0.0.1:${ports.doh}/dns-query"}`))).toBe(true);
    await h.stop();
    h = await startSluice({ config: config([doh(', method: get')]) });
    expect(await dig(h, 'get.e2e.test')).toBe(ANSWER);
  });

  it('refuses a wrong tls_name and a wrong pin, logs and counts them, and the next upstream answers', async () => {
    const wrongName = `{ url: "tls://127.0.0.1:${ports.dot}", tls_name: wrong.test, ca_file: "${pki.caFile}" }`;
    const wrongPin = `{ url: "https://127.0.0.1:${ports.doh}/dns-query", tls_name: dns.test, ca_file: "${pki.caFile}", spki_pins: ["${'A'.repeat(43)}="] }`;
    const plain = `"127.0.0.1:${ports.plain}"`;
    h = await startSluice({ config: config([wrongName, wrongPin, plain]), captureLogs: true });
    expect(await dig(h, 'www.e2e.test')).toBe(ANSWER);
    expect(await dig(h, 'b2.e2e.test')).toBe(ANSWER);
    const lines = await metrics(h);
    const failures = lines.filter((l) => l.startsWith('sluice_upstream_connect_failures_total{'));
    // At least once each (a second query may retry the connection once its back-off is over); nothing else failed.
    const count = (upstream: string, reason: string) =>
      Number(failures.find((l) => l.startsWith(`sluice_upstream_connect_failures_total{upstream="${upstream}",reason="${reason}"} `))?.split(' ')[1] ?? 0);
    expect(count(`tls://127.0.0.1:${ports.dot}`, 'tls-name')).toBeGreaterThanOrEqual(1);
    expect(count(`https://127.0.0.1:${ports.doh}/dns-query`, 'pin')).toBeGreaterThanOrEqual(1);
    expect(failures).toHaveLength(2);
    const warned = h.logs.filter((l) => l.msg === 'upstream connection failed: tls-name' || l.msg === 'upstream connection failed: pin');
    expect(warned.map((l) => [l.level, l.upstream])).toEqual(
      expect.arrayContaining([
        [40, `tls://127.0.0.1:${ports.dot}`],
        [40, `https://127.0.0.1:${ports.doh}/dns-query`],
      ]),
    );
    // Logged once per upstream, however many connections failed (at most one warning a minute each).
    expect(warned).toHaveLength(2);
  });

  it('loses no client answer beyond SERVFAILs while the DoT upstream restarts under load', async () => {
    h = await startSluice({ config: config([dot()], 'hardening:\n  upstream_backoff_ms: 500\n') });
    const results: { sentAt: number; rcode: number | 'timeout'; ok: boolean }[] = [];
    let downAt = Infinity;
    let upAt = Infinity;
    let stopLoad = false;
    let n = 0;
    const server = h.udp;
    // Eight clients asking unique names (no cache hits), bounded to 10,000 queries in all. After a
    // SERVFAIL a client waits 20 ms, as a stub would before it retries: otherwise the quick
    // SERVFAILs of a slow Unbound restart used up the budget before it was back.
    const client = async () => {
      while (!stopLoad && n < 10_000) {
        const name = `n${n++}.e2e.test`;
        const sentAt = Date.now();
        const r = await resolve(server, name, 'A', { timeoutMs: 5000 }).catch(() => undefined);
        const ok = r?.rcode === RCODE.NOERROR && r.answers[0]?.data === ANSWER;
        results.push({ sentAt, rcode: r ? r.rcode : 'timeout', ok });
        if (!ok) await new Promise((resolveWait) => setTimeout(resolveWait, 20));
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, client));
    await until('answers before the restart', () => results.filter((r) => r.ok).length >= 100, 20_000);
    downAt = Date.now();
    await unbound.stop();
    await until('queries while Unbound is away', () => results.some((r) => r.sentAt > downAt && !r.ok), 10_000);
    unbound = await startUnbound(pki, ports);
    upAt = Date.now();
    await until('answers after the restart', () => results.filter((r) => r.ok && r.sentAt > upAt).length >= 100, 20_000);
    stopLoad = true;
    await load;
    // Every client got an answer: no timeouts, only the right address or SERVFAIL.
    expect(results.filter((r) => r.rcode === 'timeout')).toHaveLength(0);
    expect(results.filter((r) => !r.ok && r.rcode !== RCODE.SERVFAIL)).toHaveLength(0);
    const failed = results.filter((r) => !r.ok);
    expect(failed.length).toBeGreaterThan(0);
    // The SERVFAILs fall in the restart window: from just before the kill (queries then in flight)
    // to a few seconds after Unbound is back (the reconnect back-off).
    expect(failed.every((r) => r.sentAt >= downAt - 3000 && r.sentAt <= upAt + 5000)).toBe(true);
    const lastFailure = Math.max(...failed.map((r) => r.sentAt));
    expect(results.filter((r) => r.sentAt > lastFailure).every((r) => r.ok)).toBe(true);
  }, 60_000);
});
