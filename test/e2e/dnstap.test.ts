// dnstap against the real tools: Debian's fstrm_capture (fstrm-bin) receives the stream on a Unix
// socket in a temp dir or on loopback TCP and writes a Frame Streams file; dnstap-ldns (dnstap-ldns)
// decodes it. `.ci/run` installs both.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/logging/logger.js';
import { QueryLogBuffer } from '../../src/querylog/buffer.js';
import { DnstapSink, dnstapSinkFromConfig, type DnstapTarget } from '../../src/querylog/dnstap-sink.js';
import type { QueryEvent } from '../../src/querylog/event.js';
import { freePort } from '../helpers/ports.js';

const T0 = Date.parse('2026-11-01T10:00:00Z');

function ev(e: Partial<QueryEvent>): QueryEvent {
  return {
    time: T0,
    instance: 'dns1',
    client: '127.0.0.1',
    network: 'internal',
    profile: 'staff',
    policy: null,
    list: null,
    rule: null,
    name: 'example.org',
    type: 'A',
    decision: 'allowed',
    wouldBlock: false,
    exception: false,
    cache: false,
    upstream: null,
    rcode: 0,
    answers: 1,
    durationMs: 1,
    transport: 'udp',
    ...e,
  };
}

const EVENTS: QueryEvent[] = [
  ev({ name: 'www.tiktok.com', type: 'A', client: '10.1.2.3', rcode: 3, decision: 'blocked', policy: 'app-ban', list: 'tiktok', rule: 'tiktok.com' }),
  ev({ name: 'example.org', type: 'AAAA', client: '2001:db8::53', rcode: 0, transport: 'tcp' }),
  ev({ name: 'refused.example', type: 'MX', client: '192.0.2.77', rcode: 5, decision: 'refused' }),
  ev({ name: 'guest.example', type: 'HTTPS', client: 'p:3f9a0c1d22e4b780', rcode: 0 }),
];

interface Capture {
  file: string;
  /** SIGTERM, then resolve when fstrm_capture has closed its output file and exited. */
  stop(): Promise<void>;
}

/** fstrm_capture, resolved once it says it has opened its output file (it listens by then). */
function startCapture(dir: string, listen: DnstapTarget): Promise<Capture> {
  const file = join(dir, `capture-${Math.random().toString(36).slice(2, 8)}.fstrm`);
  const where = listen.kind === 'unix' ? ['-u', listen.path] : ['-a', listen.host, '-p', String(listen.port)];
  const child: ChildProcess = spawn('fstrm_capture', ['-t', 'protobuf:dnstap.Dnstap', ...where, '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let err = '';
    child.once('error', (e) => reject(new Error(`fstrm_capture: ${e.message} (is fstrm-bin installed? .ci/run installs it)`)));
    child.once('exit', (code) => reject(new Error(`fstrm_capture exited with ${code}: ${err}`)));
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('opened output file')) resolve({ file, stop: () => (child.kill('SIGTERM'), exited) });
    });
  });
}

function dnstapLdns(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dnstap-ldns', args, { maxBuffer: 128 * 1024 * 1024 }, (error, stdout, stderr) =>
      error ? reject(new Error(`dnstap-ldns ${args.join(' ')}: ${error.message} ${stderr}`)) : resolve(stdout),
    );
  });
}

const children: ChildProcess[] = [];
const sinks: DnstapSink[] = [];
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'sluice-dnstap-'));
  dirs.push(d);
  return d;
};
afterEach(async () => {
  for (const s of sinks.splice(0)) await s.close();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function sinkTo(target: DnstapTarget): DnstapSink {
  const s = new DnstapSink({ target, identity: 'resolver-a', version: 'sluice 0.1.0', log: silentLogger(), backoffMinMs: 20, backoffMaxMs: 200 });
  sinks.push(s);
  return s;
}

/** Send, STOP/FINISH, stop the capture (which flushes its file) and read the file back both ways. */
async function roundTrip(capture: Capture, sink: DnstapSink, events: QueryEvent[]): Promise<{ text: string; yaml: string }> {
  await sink.whenConnected();
  expect(sink.write(events)).toBe(true);
  await sink.close();
  await capture.stop();
  return { text: await dnstapLdns('-r', capture.file), yaml: await dnstapLdns('-y', '-r', capture.file) };
}

/** The YAML documents of `dnstap-ldns -y`, one per message. */
const documents = (yaml: string) => yaml.split(/^---$/m).filter((d) => d.trim() !== '');

describe('dnstap to fstrm_capture and dnstap-ldns', () => {
  it('over a Unix socket: names, types, addresses, rcodes and the identity come out of dnstap-ldns', async () => {
    const dir = tempDir();
    const target: DnstapTarget = { kind: 'unix', path: join(dir, 'dnstap.sock') };
    const capture = await startCapture(dir, target);
    const { text, yaml } = await roundTrip(capture, sinkTo(target), EVENTS);

    expect(text.trim().split('\n')).toEqual([
      expect.stringMatching(/^2026-11-01 10:00:00\.001000 CR 10\.1\.2\.3 UDP \d+b "www\.tiktok\.com\." IN A$/),
      expect.stringMatching(/^2026-11-01 10:00:00\.001000 CR 2001:db8::53 TCP \d+b "example\.org\." IN AAAA$/),
      expect.stringMatching(/^2026-11-01 10:00:00\.001000 CR 192\.0\.2\.77 UDP \d+b "refused\.example\." IN MX$/),
      expect.stringMatching(/^2026-11-01 10:00:00\.001000 CR MISSING_ADDRESS UDP \d+b "guest\.example\." IN HTTPS$/),
    ]);

    const docs = documents(yaml);
    expect(docs).toHaveLength(4);
    for (const d of docs) {
      expect(d).toContain('identity: "resolver-a"');
      expect(d).toContain('version: "sluice 0.1.0"');
      expect(d).toContain('type: CLIENT_RESPONSE');
      expect(d).toContain('query_time: !!timestamp 2026-11-01 10:00:00.000000');
      expect(d).toContain('response_time: !!timestamp 2026-11-01 10:00:00.001000');
      expect(d).toMatch(/query_message: \|\n\s+;; ->>HEADER<<- opcode: QUERY, rcode: NOERROR, id: 0\n\s+;; flags: rd ; QUERY: 1, ANSWER: 0/);
    }
    const [blocked, tcp, refused, guest] = docs as [string, string, string, string];
    expect(blocked).toMatch(/socket_family: INET\n\s+socket_protocol: UDP\n\s+query_address: "10\.1\.2\.3"/);
    expect(blocked).toMatch(/response_message: \|\n\s+;; ->>HEADER<<- opcode: QUERY, rcode: NXDOMAIN, id: 0\n\s+;; flags: qr rd ra ;/);
    expect(blocked.match(/;www\.tiktok\.com\.\tIN\tA\n/g)).toHaveLength(2);
    expect(tcp).toMatch(/socket_family: INET6\n\s+socket_protocol: TCP\n\s+query_address: "2001:db8::53"/);
    expect(tcp).toMatch(/response_message: \|\n\s+;; ->>HEADER<<- opcode: QUERY, rcode: NOERROR/);
    expect(tcp).toContain(';example.org.\tIN\tAAAA');
    expect(refused).toMatch(/response_message: \|\n\s+;; ->>HEADER<<- opcode: QUERY, rcode: REFUSED/);
    expect(refused).toContain(';refused.example.\tIN\tMX');
    expect(guest).not.toContain('query_address');
    expect(guest).not.toContain('socket_family');
    expect(guest).toContain(';guest.example.\tIN\tHTTPS');
  });

  it('over TCP, built from the config and fed by the query log buffer: identity defaults to the instance', async () => {
    const dir = tempDir();
    const port = await freePort();
    const capture = await startCapture(dir, { kind: 'tcp', host: '127.0.0.1', port });
    const { config } = parseConfig(`listeners: [{ address: 127.0.0.1 }]\nnetworks: {}\nprofiles: {}\nquery_log: { dnstap: { tcp: "127.0.0.1:${port}" } }\n`, 'sluice.yaml');
    const sink = dnstapSinkFromConfig(config, 'dns1', silentLogger())!;
    sinks.push(sink);
    await sink.whenConnected();
    const buffer = new QueryLogBuffer(100_000, [sink]);
    const n = 20_000;
    for (let i = 0; i < n; i++) buffer.push(ev({ name: `host-${i}.example.net`, client: `10.9.${i >> 8}.${i & 255}`, rcode: i % 2 === 0 ? 0 : 3 }));
    await buffer.close(); // flushes, then STOP and FINISH
    expect(buffer.sinkDropped.get('dnstap')).toBeUndefined();
    await capture.stop();

    const lines = (await dnstapLdns('-r', capture.file)).trim().split('\n');
    expect(lines).toHaveLength(n);
    expect(lines[0]).toMatch(/ CR 10\.9\.0\.0 UDP \d+b "host-0\.example\.net\." IN A$/);
    expect(lines[n - 1]).toMatch(new RegExp(` CR 10\\.9\\.${(n - 1) >> 8}\\.${(n - 1) & 255} UDP \\d+b "host-${n - 1}\\.example\\.net\\." IN A$`));
    const docs = documents(await dnstapLdns('-y', '-r', capture.file));
    expect(docs).toHaveLength(n);
    expect(docs[1]).toContain('identity: "dns1"');
    expect(docs[1]).toMatch(/version: "sluice \d+\.\d+\.\d+/);
    expect(docs[1]).toContain('rcode: NXDOMAIN');
    expect(docs[2]).not.toContain('NXDOMAIN');
  });

  it('with no collector, write refuses and nothing throws; once one starts, the sink reconnects and later events arrive', async () => {
    const dir = tempDir();
    const target: DnstapTarget = { kind: 'unix', path: join(dir, 'later.sock') };
    const sink = sinkTo(target);
    const buffer = new QueryLogBuffer(1000, [sink]);
    expect(sink.write([ev({ name: 'lost-1.example' })])).toBe(false);
    buffer.push(ev({ name: 'lost-2.example' }));
    expect(() => buffer.flush()).not.toThrow();
    expect(buffer.sinkDropped.get('dnstap')).toBe(1);
    expect(sink.connected).toBe(false);

    const capture = await startCapture(dir, target);
    const { text } = await roundTrip(capture, sink, [ev({ name: 'kept.example', client: '10.0.0.9' })]);
    expect(sink.dropped).toBe(2);
    expect(text.trim().split('\n')).toEqual([expect.stringMatching(/ CR 10\.0\.0\.9 UDP \d+b "kept\.example\." IN A$/)]);
  });

  it('after the collector restarts, the sink reconnects by itself and the new collector gets later events', async () => {
    const dir = tempDir();
    const target: DnstapTarget = { kind: 'unix', path: join(dir, 'restart.sock') };
    const first = await startCapture(dir, target);
    const sink = sinkTo(target);
    await sink.whenConnected();
    expect(sink.write([ev({ name: 'before.example' })])).toBe(true);
    await first.stop();
    rmSync(target.path, { force: true }); // fstrm_capture leaves its socket file behind
    const second = await startCapture(dir, target);
    await sink.whenConnected(2);
    const { text } = await roundTrip(second, sink, [ev({ name: 'after.example' })]);
    expect(text.trim().split('\n')).toEqual([expect.stringMatching(/"after\.example\." IN A$/)]);
    expect(sink.connections).toBe(2);
  });
});
