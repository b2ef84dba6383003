// DNS over TLS and DNS over HTTPS listeners with real clients (kdig, dig, curl, Chromium, Node's
// tls and http2): per-listener and per-address networks, DoH client IDs that never widen access, HTTP
// statuses, EDNS padding, connection limits, the transport in the query log, and a certificate
// replaced on disk while connections stay open. The certificates come from `openssl` here.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeResponse, encodeQuery, RCODE, type DecodedResponse, type EncodeQueryOptions } from '../helpers/dns-client.js';
import { DEFAULT_A, startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';
import { freePort } from '../helpers/ports.js';

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const NAME = 'dns.sluice.test';
const TOKEN = 'encrypted-listeners-token-0123';
const STAFF = '127.0.0.1'; // listener pinned to network staff (TikTok blocked)
const GUEST = '127.0.0.5'; // listener pinned to network guest (nothing blocked)
const BY_SOURCE = '127.0.0.6'; // listener without a network: the client's address decides

let certs: string;
let upstream: FakeUpstream;
let h: Harness;
/** Ports of each listener address: [dot, doh]. */
const ports = new Map<string, { dot: number; doh: number }>();

/** A server certificate for NAME and the listener addresses, signed by the test CA; `cn` tells them apart. */
function serverCertificate(cn: string): { cert: string; key: string } {
  const ext = join(certs, `${cn}.ext`);
  writeFileSync(ext, `subjectAltName=DNS:${NAME},IP:${STAFF},IP:${GUEST},IP:${BY_SOURCE}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  const key = join(certs, `${cn}.key`);
  const csr = join(certs, `${cn}.csr`);
  const cert = join(certs, `${cn}.pem`);
  execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', join(certs, 'ca.pem'), '-CAkey', join(certs, 'ca.key'), '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', cert], {
    stdio: 'ignore',
  });
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

const listener = (address: string, network?: string) => `
  - address: ${address}
    port: 0
    protocols: [udp, dot, doh]
    dot_port: 0
    doh_port: 0
    tls: { cert_file: tls/server.pem, key_file: tls/server.key }${network ? `\n    network: ${network}` : ''}`;

beforeAll(async () => {
  certs = mkdtempSync(join(tmpdir(), 'sluice-certs-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(certs, 'ca.key'),
      '-out',
      join(certs, 'ca.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=sluice test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    ],
    { stdio: 'ignore' },
  );
  const first = serverCertificate('first');
  upstream = await startFakeUpstream();
  h = await startSluice({
    upstream: upstream.address,
    lists: referenceLists,
    captureLogs: true,
    files: { 'tls/server.pem': first.cert, 'tls/server.key': first.key },
    config: `
listeners:${listener(STAFF, 'staff')}${listener(GUEST, 'guest')}${listener(BY_SOURCE)}
networks:
  staff: { cidrs: [127.0.0.1/32], profile: staff }
  guest: { cidrs: [127.0.0.2/32], profile: open }
profiles:
  staff: { block: [tiktok] }
  open: { block: [] }
lists:
  tiktok: { file: lists/tiktok.txt }
  wechat: { file: lists/wechat.txt }
workers: 1
upstreams:
  default: ["@UPSTREAM@"]
  timeout_ms: 300
  total_timeout_ms: 1000
dot: { max_connections_per_client: 3 }
doh:
  max_connections_per_client: 3
  max_request_bytes: 512
  client_ids: { kiosk: guest }
admin: { enabled: true, port: 0, token: "${TOKEN}" }
`,
  });
  for (const b of h.server.bound) {
    if (b.protocol !== 'dot' && b.protocol !== 'doh') continue;
    const p = ports.get(b.address) ?? { dot: 0, doh: 0 };
    p[b.protocol] = b.port;
    ports.set(b.address, p);
  }
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
  if (certs) rmSync(certs, { recursive: true, force: true });
});

const ca = () => join(certs, 'ca.pem');
const dot = (address: string) => ports.get(address)!.dot;
const doh = (address: string) => ports.get(address)!.doh;

async function kdig(args: string[]): Promise<string> {
  return (await run('kdig', ['+tls-ca=' + ca(), `+tls-hostname=${NAME}`, '+time=3', '+retry=0', ...args])).stdout;
}
async function dig(args: string[]): Promise<string> {
  return (await run('dig', ['+tls-ca=' + ca(), `+tls-hostname=${NAME}`, '+time=3', '+tries=1', ...args])).stdout;
}
const statusOf = (out: string) => /opcode: \w+[;,] status: (\w+)/.exec(out)?.[1];

/** TLS client options for the DoT listener on `address`, from `localAddress` (passed on to net.connect; not in the tls types). */
const dotOptions = (address: string, localAddress: string) =>
  ({ host: address, port: dot(address), servername: NAME, ca: readFileSync(ca()), ALPNProtocols: ['dot'], localAddress }) as tls.ConnectionOptions;

/** A DoT connection with Node's tls client, handshake done. */
function dotConnect(address: string, localAddress = '127.0.0.1'): Promise<tls.TLSSocket> {
  return new Promise((res, rej) => {
    const sock = tls.connect(dotOptions(address, localAddress));
    sock.once('secureConnect', () => res(sock));
    sock.once('error', rej);
  });
}
/** One DNS message on an open DoT connection, and its answer. */
function dotQuery(sock: tls.TLSSocket, name: string, opts: EncodeQueryOptions = {}): Promise<Buffer> {
  return new Promise((res, rej) => {
    const q = encodeQuery(name, 'A', opts);
    const framed = Buffer.alloc(2 + q.length);
    framed.writeUInt16BE(q.length, 0);
    q.copy(framed, 2);
    let got = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        sock.off('data', onData);
        res(got.subarray(2, 2 + got.readUInt16BE(0)));
      }
    };
    sock.on('data', onData);
    sock.once('error', rej);
    sock.write(framed);
  });
}

/** An HTTP/2 request with Node's client: status, headers, body. */
async function h2(address: string, path: string, opts: { method?: string; body?: Buffer; contentType?: string; localAddress?: string } = {}) {
  const session = http2.connect(`https://${NAME}:${doh(address)}`, {
    ca: readFileSync(ca()),
    lookup: (_n, _o, cb) => cb(null, address, 4),
    localAddress: opts.localAddress ?? '127.0.0.1',
  } as http2.SecureClientSessionOptions);
  try {
    return await new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }>((res, rej) => {
      session.once('error', rej);
      const req = session.request({ ':method': opts.method ?? 'GET', ':path': path, ...(opts.contentType ? { 'content-type': opts.contentType } : {}) });
      const chunks: Buffer[] = [];
      let headers: http2.IncomingHttpHeaders = {};
      req.on('response', (hd) => (headers = hd));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks) }));
      req.on('error', rej);
      req.end(opts.body);
    });
  } finally {
    session.close();
  }
}
const dnsGet = (name: string, opts: EncodeQueryOptions = {}) => `dns=${encodeQuery(name, 'A', { id: 0, ...opts }).toString('base64url')}`;

async function curl(address: string, path: string, args: string[]): Promise<{ code: string; version: string; headers: string; body: DecodedResponse | undefined }> {
  const headerFile = join(certs, `headers-${Math.random().toString(36).slice(2)}`);
  const url = `https://${NAME}:${doh(address)}${path}`;
  const r = await run(
    'curl',
    ['-s', '--cacert', ca(), '--resolve', `${NAME}:${doh(address)}:${address}`, '-D', headerFile, '-w', '%{stderr}%{http_code} %{http_version}', '--max-time', '5', ...args, url],
    { encoding: 'buffer' },
  );
  const [code, version] = r.stderr.toString().split(' ');
  const body = r.stdout.length >= 12 ? decodeResponse(r.stdout) : undefined;
  return { code: code!, version: version!, headers: readFileSync(headerFile, 'utf8').toLowerCase(), body };
}

describe('DoT and DoH listeners', () => {
  it('listen on their own ports, logged with their protocol', () => {
    const listening = h.logs.filter((l) => l.msg === 'listening').map((l) => `${String(l.protocol)} ${String(l.address)}`);
    for (const a of [STAFF, GUEST, BY_SOURCE]) expect(listening).toEqual(expect.arrayContaining([`udp ${a}`, `dot ${a}`, `doh ${a}`]));
    expect(dot(STAFF)).toBeGreaterThan(0);
    expect(doh(STAFF)).not.toBe(dot(STAFF));
  });

  it('kdig +tls and +https get the network of the listener: TikTok blocked for staff, forwarded for guests', async () => {
    for (const transport of [['+tls'], ['+https']]) {
      const staff = await kdig([...transport, '@' + STAFF, '-p', String(transport[0] === '+tls' ? dot(STAFF) : doh(STAFF)), 'www.tiktok.com', 'A']);
      expect(statusOf(staff)).toBe('NXDOMAIN');
      const guest = await kdig([...transport, '@' + GUEST, '-p', String(transport[0] === '+tls' ? dot(GUEST) : doh(GUEST)), 'www.tiktok.com', 'A']);
      expect(statusOf(guest)).toBe('NOERROR');
      expect(guest).toContain(DEFAULT_A);
      const allowed = await kdig([...transport, '@' + STAFF, '-p', String(transport[0] === '+tls' ? dot(STAFF) : doh(STAFF)), 'example.org', 'A']);
      expect(allowed).toContain(DEFAULT_A);
    }
    // kdig's DoH GET, with the default /dns-query path.
    expect(statusOf(await kdig(['+https', '+https-get', '@' + STAFF, '-p', String(doh(STAFF)), 'www.tiktok.com', 'A']))).toBe('NXDOMAIN');
  });

  it('dig +tls and +https do the same', async () => {
    expect(statusOf(await dig(['+tls', '@' + STAFF, '-p', String(dot(STAFF)), 'www.tiktok.com', 'A']))).toBe('NXDOMAIN');
    expect(await dig(['+tls', '@' + GUEST, '-p', String(dot(GUEST)), 'www.tiktok.com', 'A'])).toContain(DEFAULT_A);
    expect(statusOf(await dig(['+https', '@' + STAFF, '-p', String(doh(STAFF)), 'www.tiktok.com', 'A']))).toBe('NXDOMAIN');
    expect(await dig(['+https', '@' + GUEST, '-p', String(doh(GUEST)), 'www.tiktok.com', 'A'])).toContain(DEFAULT_A);
  });

  it('the address decides on a listener without a network; a client in no network is refused over DoT and DoH', async () => {
    const p = ['-p', String(dot(BY_SOURCE)), '@' + BY_SOURCE];
    expect(statusOf(await kdig(['+tls', ...p, '-b', '127.0.0.1', 'www.tiktok.com']))).toBe('NXDOMAIN');
    expect(statusOf(await kdig(['+tls', ...p, '-b', '127.0.0.2', 'www.tiktok.com']))).toBe('NOERROR');
    expect(statusOf(await kdig(['+tls', ...p, '-b', '127.0.9.9', 'example.org']))).toBe('REFUSED');
    const viaDoh = await kdig(['+https', '-p', String(doh(BY_SOURCE)), '@' + BY_SOURCE, '-b', '127.0.9.9', 'example.org']);
    expect(statusOf(viaDoh)).toBe('REFUSED');
    // As over UDP: the REFUSED is a DNS answer in a 200, with an EDE that says why.
    const r = await curl(BY_SOURCE, `/dns-query?${dnsGet('example.org', { edns: {} })}`, ['--interface', '127.0.9.9']);
    expect(r.code).toBe('200');
    expect(r.body?.rcode).toBe(RCODE.REFUSED);
    expect(r.body?.edns?.ede?.text ?? '').toMatch(/no configured network/);
  });

  it('curl POSTs application/dns-message and GETs ?dns= over HTTP/2 and HTTP/1.1, with Cache-Control from the TTL', async () => {
    const q = encodeQuery('www.tiktok.com', 'A', { id: 0 });
    writeFileSync(join(certs, 'q.bin'), q);
    const post = await curl(STAFF, '/dns-query', ['-H', 'content-type: application/dns-message', '--data-binary', '@' + join(certs, 'q.bin')]);
    expect([post.code, post.version]).toEqual(['200', '2']);
    expect(post.headers).toContain('content-type: application/dns-message');
    expect(post.body?.rcode).toBe(RCODE.NXDOMAIN);
    const negTtl = post.body!.authorities[0]!.ttl;
    expect(post.headers).toContain(`cache-control: max-age=${negTtl}`);
    const get = await curl(GUEST, `/dns-query?${dnsGet('www.tiktok.com')}`, ['--http1.1']);
    expect([get.code, get.version]).toEqual(['200', '1.1']);
    expect(get.body?.answers.map((a) => a.data)).toEqual([DEFAULT_A]);
    expect(get.headers).toMatch(/cache-control: max-age=(\d+)/);
    expect(Number(/cache-control: max-age=(\d+)/.exec(get.headers)![1])).toBe(get.body!.answers[0]!.ttl);
  });

  it("Chromium's HTTP/2 stack gets the DoH answers: GET and POST, and 200 requests at once on one connection", async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium, as .ci/run does) or set CHROMIUM_PATH`);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', `--host-resolver-rules=MAP ${NAME} ${STAFF}`],
    });
    try {
      // The test CA is not the browser's: the certificate is checked by the other clients here.
      const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
      const origin = `https://${NAME}:${doh(STAFF)}`;
      // A page of the listener's origin (served by the browser itself), so that fetch() is same-origin.
      await page.route(`${origin}/page.html`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<p>DoH</p>' }));
      await page.goto(`${origin}/page.html`);
      const blocked = encodeQuery('www.tiktok.com', 'A', { id: 0 });
      const allowed = encodeQuery('chromium.example.org', 'A', { id: 0 });
      const got = await page.evaluate(
        async ([get, post]) => {
          const bytes = async (r: Response) => ({ status: r.status, type: r.headers.get('content-type'), body: Array.from(new Uint8Array(await r.arrayBuffer())) });
          const g = await bytes(await fetch(`/dns-query?dns=${get}`));
          const p = await bytes(await fetch('/dns-query', { method: 'POST', headers: { 'content-type': 'application/dns-message' }, body: new Uint8Array(post!) }));
          const many = await Promise.all(Array.from({ length: 200 }, (_, i) => fetch(`/dns-query?dns=${get}&n=${i}`).then((r) => r.status)));
          const protocols = performance.getEntriesByType('resource').map((e) => (e as unknown as { nextHopProtocol: string }).nextHopProtocol);
          return { g, p, many, protocols };
        },
        [blocked.toString('base64url'), Array.from(allowed)] as const,
      );
      expect([got.g.status, got.g.type, got.p.status, got.p.type]).toEqual([200, 'application/dns-message', 200, 'application/dns-message']);
      expect(decodeResponse(Buffer.from(got.g.body)).rcode).toBe(RCODE.NXDOMAIN);
      expect(decodeResponse(Buffer.from(got.p.body)).answers.map((a) => a.data)).toEqual([DEFAULT_A]);
      expect(got.many.filter((status) => status === 200)).toHaveLength(200);
      // Every fetch whose protocol the browser reports went over HTTP/2 (it reports '' for many).
      expect(got.protocols.filter((p) => p === 'h2').length).toBeGreaterThan(0);
      expect(got.protocols.filter((p) => p !== 'h2' && p !== '')).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  it('answers what is not a DoH query with an HTTP status', async () => {
    const msg = encodeQuery('example.org', 'A', { id: 0 });
    expect((await h2(STAFF, `/elsewhere?${dnsGet('example.org')}`)).status).toBe(404);
    expect((await h2(STAFF, `/dns-query/nobody?${dnsGet('example.org')}`)).status).toBe(404);
    expect((await h2(STAFF, '/dns-query', { method: 'PUT', body: msg, contentType: 'application/dns-message' })).status).toBe(405);
    expect((await h2(STAFF, '/dns-query?dns=***')).status).toBe(400);
    expect((await h2(STAFF, '/dns-query', { method: 'POST', body: msg, contentType: 'text/plain' })).status).toBe(415);
    expect((await h2(STAFF, '/dns-query', { method: 'POST', body: Buffer.alloc(600, 1), contentType: 'application/dns-message' })).status).toBe(413);
    const ok = await h2(STAFF, '/dns-query', { method: 'POST', body: msg, contentType: 'application/dns-message' });
    expect(ok.status).toBe(200);
    expect(decodeResponse(ok.body).answers[0]?.data).toBe(DEFAULT_A);
  });

  it('a DoH client ID picks its network only for a client already in one', async () => {
    // staff (by address) asking at /dns-query/kiosk is treated as guest: TikTok forwarded.
    const kiosk = await h2(BY_SOURCE, `/dns-query/kiosk?${dnsGet('www.tiktok.com')}`);
    expect(decodeResponse(kiosk.body).answers[0]?.data).toBe(DEFAULT_A);
    const plain = await h2(BY_SOURCE, `/dns-query?${dnsGet('www.tiktok.com')}`);
    expect(decodeResponse(plain.body).rcode).toBe(RCODE.NXDOMAIN);
    // A client in no network stays refused whatever the path says.
    const outsider = await h2(BY_SOURCE, `/dns-query/kiosk?${dnsGet('example.org')}`, { localAddress: '127.0.9.9' });
    expect(outsider.status).toBe(200);
    expect(decodeResponse(outsider.body).rcode).toBe(RCODE.REFUSED);
  });

  it('pads DoT and DoH answers to 468-byte blocks when the query asks, and never over UDP', async () => {
    const padded = await kdig(['+tls', '+padding', '@' + STAFF, '-p', String(dot(STAFF)), 'example.org']);
    expect(padded).toMatch(/PADDING: \d+ B/);
    expect(await kdig(['+tls', '+nopadding', '@' + STAFF, '-p', String(dot(STAFF)), 'example.org'])).not.toMatch(/PADDING/);
    const ask: EncodeQueryOptions = { edns: { options: [{ code: 12, data: Buffer.alloc(0) }] } };
    const sock = await dotConnect(STAFF);
    try {
      for (const name of ['example.org', 'www.tiktok.com']) expect((await dotQuery(sock, name, ask)).length % 468).toBe(0);
    } finally {
      sock.destroy();
    }
    const viaDoh = await h2(STAFF, '/dns-query', { method: 'POST', body: encodeQuery('example.org', 'A', ask), contentType: 'application/dns-message' });
    expect(viaDoh.body.length % 468).toBe(0);
    const udp = await run('kdig', ['@' + STAFF, '-p', String(h.server.bound.find((b) => b.protocol === 'udp' && b.address === STAFF)!.port), '+padding', '+time=2', '+retry=0', 'example.org']);
    expect(udp.stdout).not.toMatch(/PADDING/);
    expect(udp.stdout).toContain(DEFAULT_A);
  });

  it('refuses DoT and DoH connections beyond max_connections_per_client, and serves other clients', async () => {
    const mine = [await dotConnect(STAFF, '127.0.0.8'), await dotConnect(STAFF, '127.0.0.8'), await dotConnect(STAFF, '127.0.0.8')];
    try {
      const third = tls.connect(dotOptions(STAFF, '127.0.0.8'));
      const outcome = await new Promise<string>((res) => {
        third.once('secureConnect', () => {
          // The handshake may complete before the server has looked: then it closes the socket at once.
          third.once('close', () => res('closed'));
          third.once('data', () => res('data'));
        });
        third.once('error', () => res('closed'));
      });
      expect(outcome).toBe('closed');
      expect(decodeResponse(await dotQuery(mine[0]!, 'example.org')).answers[0]?.data).toBe(DEFAULT_A);
      const other = await dotConnect(STAFF, '127.0.0.9');
      expect(decodeResponse(await dotQuery(other, 'example.org')).answers[0]?.data).toBe(DEFAULT_A);
      other.destroy();
    } finally {
      for (const s of mine) s.destroy();
    }
    // DoH: three open sessions from 127.0.0.8, the fourth is closed before any request.
    const open = await Promise.all([0, 1, 2].map(() => connectH2(STAFF, '127.0.0.8')));
    try {
      await until('the server to count the three DoH connections', () => h.server.encryptedConnections().doh >= 3);
      const metrics = await (await fetch(`http://127.0.0.1:${h.server.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      expect(Number(/^sluice_doh_connections (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
      expect(metrics).toMatch(/^sluice_dot_connections \d+$/m);
      await expect(h2(STAFF, `/dns-query?${dnsGet('example.org')}`, { localAddress: '127.0.0.8' })).rejects.toThrow();
      expect((await h2(STAFF, `/dns-query?${dnsGet('example.org')}`, { localAddress: '127.0.0.9' })).status).toBe(200);
    } finally {
      for (const s of open) s.close();
    }
  });

  it('logs the transport of each query (admin API /api/log)', async () => {
    await until(
      'dot and doh events in /api/log',
      async () => {
        const res = await fetch(`http://127.0.0.1:${h.server.adminPort}/api/log?limit=500`, { headers: { authorization: `Bearer ${TOKEN}` } });
        const body = (await res.json()) as { events: { transport: string; network?: string; name: string }[] };
        const transports = new Set(body.events.map((e) => e.transport));
        return transports.has('dot') && transports.has('doh');
      },
      5000,
      50,
    );
  });

  it('uses a certificate replaced on disk for new handshakes within 2 s; open connections keep answering; a broken one is refused', async () => {
    const before = await dotConnect(STAFF);
    try {
      expect(before.getPeerCertificate().subject.CN).toBe('first');
      // A broken key: logged with its file, the old certificate stays.
      writeFileSync(join(h.dir, 'tls/server.key'), 'not a key\n');
      await until('the broken key to be reported', () => h.logs.some((l) => String(l.msg).startsWith('certificate not replaced') && String(l.key).endsWith('tls/server.key')), 3000, 20);
      const still = await dotConnect(STAFF, '127.0.2.1');
      expect(still.getPeerCertificate().subject.CN).toBe('first');
      still.destroy();

      const second = serverCertificate('second');
      const t0 = Date.now();
      writeFileSync(join(h.dir, 'tls/server.pem'), second.cert);
      writeFileSync(join(h.dir, 'tls/server.key'), second.key);
      let cn = '';
      let probe = 2; // each handshake from its own address: the per-client limit is not what this tests
      await until(
        'a new handshake to present the new certificate',
        async () => {
          const s = await dotConnect(STAFF, `127.0.2.${probe++}`);
          cn = String(s.getPeerCertificate().subject.CN);
          s.destroy();
          return cn === 'second';
        },
        2000,
        50,
      );
      expect(Date.now() - t0).toBeLessThan(2000);
      // DoH too, and the connection made before the change still answers.
      const session = await connectH2(STAFF, '127.0.3.1');
      expect((session.socket as tls.TLSSocket).getPeerCertificate().subject.CN).toBe('second');
      session.close();
      expect(decodeResponse(await dotQuery(before, 'www.tiktok.com')).rcode).toBe(RCODE.NXDOMAIN);
    } finally {
      before.destroy();
    }
  });
});

function connectH2(address: string, localAddress = '127.0.0.1'): Promise<http2.ClientHttp2Session> {
  return new Promise((res, rej) => {
    const s = http2.connect(`https://${NAME}:${doh(address)}`, { ca: readFileSync(ca()), lookup: (_n, _o, cb) => cb(null, address, 4), localAddress } as http2.SecureClientSessionOptions);
    s.once('connect', () => res(s));
    s.once('error', rej);
  });
}

describe('DoT and DoH idle timeouts, HTTP/2 settings and reload', () => {
  let h2h: Harness;
  beforeAll(async () => {
    const pair = serverCertificate('idle');
    h2h = await startSluice({
      upstream: upstream.address,
      lists: referenceLists,
      files: { 'tls/server.pem': pair.cert, 'tls/server.key': pair.key },
      config: `
listeners:${listener(STAFF, 'staff')}
networks:
  staff: { cidrs: [127.0.0.1/32], profile: staff }
profiles:
  staff: { block: [] }
workers: 1
upstreams:
  default: ["@UPSTREAM@"]
dot: { idle_timeout_ms: 300 }
doh: { idle_timeout_ms: 300, max_concurrent_streams: 7 }
`,
    });
  });
  afterAll(async () => {
    await h2h?.stop();
  });

  const opts = () => ({ servername: NAME, ca: readFileSync(ca()) });

  it('closes DoT and DoH connections idle for idle_timeout_ms, and tells HTTP/2 clients the stream limit', async () => {
    const t0 = Date.now();
    const dotSock = tls.connect({ host: STAFF, port: h2h.dot.port, ...opts() });
    const dotClosed = new Promise<number>((r) => dotSock.on('close', () => r(Date.now() - t0)));
    dotSock.on('error', () => {});
    const session = http2.connect(`https://${STAFF}:${h2h.doh.port}`, opts());
    session.on('error', () => {});
    const h2Closed = new Promise<number>((r) => session.on('close', () => r(Date.now() - t0)));
    await new Promise((r) => session.once('remoteSettings', r));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(7);
    const h1 = tls.connect({ host: STAFF, port: h2h.doh.port, ...opts(), ALPNProtocols: ['http/1.1'] });
    h1.on('error', () => {});
    const h1Closed = new Promise<number>((r) => h1.on('close', () => r(Date.now() - t0)));
    // Timers never fire early; that the connections close at all is the wait itself.
    for (const closed of await Promise.all([dotClosed, h2Closed, h1Closed])) expect(closed).toBeGreaterThanOrEqual(250);
  });

  it("does not start with a key that is not the certificate's, and says which files", async () => {
    const a = serverCertificate('mismatch-a');
    const b = serverCertificate('mismatch-b');
    await expect(
      startSluice({
        files: { 'tls/server.pem': a.cert, 'tls/server.key': b.key },
        config: `listeners:${listener(STAFF, 'staff')}\nnetworks:\n  staff: { cidrs: [127.0.0.1/32], profile: p }\nprofiles:\n  p: { block: [] }\nupstreams:\n  default: ["@UPSTREAM@"]\n`,
        upstream: upstream.address,
      }),
    ).rejects.toThrow(/certificate \S*tls\/server\.pem with key \S*tls\/server\.key: .*key values mismatch/);
  });

  it('reads the certificate again on reload (SIGHUP)', async () => {
    const next = serverCertificate('reloaded');
    writeFileSync(join(h2h.dir, 'tls/server.pem'), next.cert);
    writeFileSync(join(h2h.dir, 'tls/server.key'), next.key);
    expect(await h2h.server.reload()).toBe(true);
    const sock = await new Promise<tls.TLSSocket>((res, rej) => {
      const s = tls.connect({ host: STAFF, port: h2h.dot.port, ...opts() }, () => res(s));
      s.once('error', rej);
    });
    expect(sock.getPeerCertificate().subject.CN).toBe('reloaded');
    sock.destroy();
  });
});

describe('DoT and DoH under workers: 2 (sluice serve, dist/)', () => {
  it('both workers serve DoT and DoH on the shared ports and both take a replaced certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-workers-'));
    mkdirSync(join(dir, 'lists'));
    mkdirSync(join(dir, 'tls'));
    writeFileSync(join(dir, 'lists', 'tiktok.txt'), referenceLists.tiktok);
    const pair = serverCertificate('workers-1');
    writeFileSync(join(dir, 'tls/server.pem'), pair.cert);
    writeFileSync(join(dir, 'tls/server.key'), pair.key);
    const [udpPort, dotPort, dohPort] = [await freePort(), await freePort(), await freePort()];
    writeFileSync(
      join(dir, 'sluice.yaml'),
      `listeners:
  - address: ${STAFF}
    port: ${udpPort}
    protocols: [udp, dot, doh]
    dot_port: ${dotPort}
    doh_port: ${dohPort}
    tls: { cert_file: tls/server.pem, key_file: tls/server.key }
networks:
  staff: { cidrs: [127.0.0.1/32], profile: staff }
profiles:
  staff: { block: [tiktok] }
lists:
  tiktok: { file: lists/tiktok.txt }
workers: 2
upstreams:
  default: ["${upstream.address}"]
`,
    );
    const child = spawn(process.execPath, [join(import.meta.dirname, '../../bin/sluice.js'), 'serve', '--config', join(dir, 'sluice.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await until('both workers to listen on DoT and DoH', () => (out.match(/"protocol":"(dot|doh)"[^\n]*"msg":"listening"/g) ?? []).length >= 4, 15000, 50);
      const pids = new Set((out.match(/"pid":(\d+)[^\n]*"protocol":"dot"[^\n]*"msg":"listening"/g) ?? []).map((l) => /"pid":(\d+)/.exec(l)![1]));
      expect(pids.size).toBe(2);
      // Connections are spread over the workers; every one answers by the same rules.
      for (let i = 0; i < 4; i++) {
        expect(statusOf(await kdig(['+tls', '@' + STAFF, '-p', String(dotPort), `w${i}.tiktok.com`]))).toBe('NXDOMAIN');
        expect(statusOf(await kdig(['+https', '@' + STAFF, '-p', String(dohPort), `w${i}.tiktok.com`]))).toBe('NXDOMAIN');
      }
      const next = serverCertificate('workers-2');
      writeFileSync(join(dir, 'tls/server.pem'), next.cert);
      writeFileSync(join(dir, 'tls/server.key'), next.key);
      await until('both workers to say they replaced the certificate', () => (out.match(/"msg":"certificate replaced"/g) ?? []).length >= 2, 3000, 50);
      for (let i = 0; i < 4; i++) {
        const sock = await new Promise<tls.TLSSocket>((res, rej) => {
          const s = tls.connect({ host: STAFF, port: dotPort, servername: NAME, ca: readFileSync(ca()) }, () => res(s));
          s.once('error', rej);
        });
        expect(sock.getPeerCertificate().subject.CN).toBe('workers-2');
        sock.destroy();
      }
      const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
