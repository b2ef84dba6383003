// DDR (RFC 9462) through a real server: `_dns.resolver.arpa` SVCB names the DoT and DoH endpoints,
// as kdig shows them and dnspython parses them; the resolver's name comes from the certificate
// (made with openssl here, with the listener's IP so that Verified Discovery works); a client in
// no network is refused; another resolver's designation stays blocked by doh-bypass; nothing of
// resolver.arpa reaches the upstream; the query log records the answers as local.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { freePort } from '../helpers/ports.js';
import { loggedEvents, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

const run = promisify(execFile);
const NAME = 'dns.sluice.test';
const CATALOG = resolve(import.meta.dirname, '../../blocklists/catalog.yaml');
const STAFF = '127.0.0.1'; // network staff: blocks TikTok, so also doh-bypass
const OPEN = '127.0.0.2'; // network open: blocks nothing
const NOWHERE = '127.0.0.9'; // in no network

let certs: string;
let upstream: FakeUpstream;
let h: Harness;
let dotPort: number;
let dohPort: number;

beforeAll(async () => {
  certs = mkdtempSync(join(tmpdir(), 'sluice-ddr-'));
  const key = join(certs, 'server.key');
  const cert = join(certs, 'server.pem');
  // A wildcard first: the resolver's name is the first DNS name that can be an SVCB target.
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
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${NAME}`,
      '-addext',
      `subjectAltName=DNS:*.sluice.test,DNS:${NAME},IP:${STAFF}`,
    ],
    { stdio: 'ignore' },
  );
  [dotPort, dohPort] = [await freePort(), await freePort()];
  upstream = await startFakeUpstream();
  h = await startSluice({
    upstream: upstream.address,
    lists: referenceLists,
    captureLogs: true,
    files: { 'tls/server.pem': readFileSync(cert, 'utf8'), 'tls/server.key': readFileSync(key, 'utf8') },
    config: `
listeners:
  - address: ${STAFF}
    port: 0
    protocols: [udp, tcp, dot, doh]
    dot_port: ${dotPort}
    doh_port: ${dohPort}
    tls: { cert_file: tls/server.pem, key_file: tls/server.key }
networks:
  staff: { cidrs: [${STAFF}/32], profile: staff }
  open: { cidrs: [${OPEN}/32], profile: open }
profiles:
  staff: { block: [tiktok] }
  open: { block: [] }
catalog: ${CATALOG}
lists:
  tiktok: { file: lists/tiktok.txt }
workers: 1
upstreams:
  default: ["@UPSTREAM@"]
  timeout_ms: 300
  total_timeout_ms: 1000
doh: { path: /q }
`,
  });
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
  if (certs) rmSync(certs, { recursive: true, force: true });
});

const kdig = async (...args: string[]) => (await run('kdig', [`@${STAFF}`, '-p', String(h.udp.port), '+time=3', '+retry=0', ...args])).stdout;

interface Parsed {
  rcode: string;
  aa: boolean;
  records: { priority: number; target: string; alpn: string[] | null; port: number | null; ipv4hint: string[] | null; dohpath: string | null; ttl: number }[];
}

/** The answer as dnspython parses it (dnspython 2.3 knows no dohpath, key 7: read as a generic key). */
async function dnspython(name: string, source: string): Promise<Parsed> {
  const script = `
import json, sys, dns.message, dns.query, dns.flags, dns.rcode
q = dns.message.make_query(sys.argv[1], 'SVCB')
r = dns.query.udp(q, '${STAFF}', port=int(sys.argv[2]), source=sys.argv[3], timeout=3)
out = {'rcode': dns.rcode.to_text(r.rcode()), 'aa': bool(r.flags & dns.flags.AA), 'records': []}
for rrset in r.answer:
    for rd in rrset:
        p = {int(k): v for k, v in rd.params.items()}
        out['records'].append({
            'priority': rd.priority, 'target': rd.target.to_text(), 'ttl': rrset.ttl,
            'alpn': [a.decode() for a in p[1].ids] if 1 in p else None,
            'port': p[3].port if 3 in p else None,
            'ipv4hint': [str(a) for a in p[4].addresses] if 4 in p else None,
            'dohpath': p[7].value.decode() if 7 in p else None,
        })
print(json.dumps(out))
`;
  const { stdout } = await run('/usr/bin/python3', ['-c', script, name, String(h.udp.port), source]);
  return JSON.parse(stdout) as Parsed;
}

describe('DDR: _dns.resolver.arpa SVCB', () => {
  it('kdig shows one SVCB record per encrypted endpoint, with alpn, port, ipv4hint and dohpath', async () => {
    const out = await kdig('_dns.resolver.arpa', 'SVCB');
    expect(out).toMatch(/status: NOERROR/);
    expect(out).toMatch(/Flags: qr aa rd ra;/);
    const records = out.split('\n').filter((l) => /^_dns\.resolver\.arpa\.\s+300\s+IN\s+SVCB/.test(l));
    expect(records).toHaveLength(2);
    expect(records[0]).toMatch(new RegExp(`SVCB\\s+1 ${NAME.replaceAll('.', '\\.')}\\. alpn=dot port=${dotPort} ipv4hint=127\\.0\\.0\\.1$`));
    expect(records[1]).toMatch(new RegExp(`SVCB\\s+2 ${NAME.replaceAll('.', '\\.')}\\. alpn=h2,http/1\\.1 port=${dohPort} ipv4hint=127\\.0\\.0\\.1 (dohpath|key7)="?/q\\{\\?dns\\}"?$`)); // knot 3.2 names key 7 by number
  });

  it('parses in dnspython: the name from the certificate, the ports, the hint and the DoH template path', async () => {
    expect(await dnspython('_dns.resolver.arpa', STAFF)).toEqual({
      rcode: 'NOERROR',
      aa: true,
      records: [
        { priority: 1, target: `${NAME}.`, ttl: 300, alpn: ['dot'], port: dotPort, ipv4hint: [STAFF], dohpath: null },
        { priority: 2, target: `${NAME}.`, ttl: 300, alpn: ['h2', 'http/1.1'], port: dohPort, ipv4hint: [STAFF], dohpath: '/q{?dns}' },
      ],
    });
  });

  it('answers the same records at _dns.<resolver name>', async () => {
    const named = await dnspython(`_dns.${NAME}`, STAFF);
    expect(named.records.map((r) => [r.priority, r.port])).toEqual([
      [1, dotPort],
      [2, dohPort],
    ]);
  });

  it('refuses a client in no network', async () => {
    expect(await dnspython('_dns.resolver.arpa', NOWHERE)).toEqual({ rcode: 'REFUSED', aa: false, records: [] });
  });

  it('keeps _dns.dns.google blocked (doh-bypass) for the network that blocks, forwarded for the one that does not', async () => {
    upstream.clearQueries();
    const blocked = await dnspython('_dns.dns.google', STAFF);
    expect(blocked.records).toEqual([]);
    expect(blocked.rcode).toBe('NXDOMAIN');
    expect(upstream.queries.filter((q) => q.name === '_dns.dns.google')).toEqual([]);
    await dnspython('_dns.dns.google', OPEN);
    expect(upstream.queries.filter((q) => q.name === '_dns.dns.google')).toHaveLength(1);
  });

  it('answers NXDOMAIN for other names under resolver.arpa and never forwards resolver.arpa', async () => {
    upstream.clearQueries();
    expect(await kdig('nothing.resolver.arpa', 'A')).toMatch(/status: NXDOMAIN/);
    expect(await kdig('_dns.resolver.arpa', 'A')).toMatch(/status: NOERROR[\s\S]*AUTHORITY SECTION:\s+resolver\.arpa\.\s+300\s+IN\s+SOA/);
    expect(upstream.queries.filter((q) => q.name.endsWith('resolver.arpa'))).toEqual([]);
  });

  it('logs the DDR answer as allowed and answered locally (no upstream, not from cache); the bypass designation as blocked by doh-bypass', async () => {
    await dnspython('_dns.resolver.arpa', STAFF);
    const events = await loggedEvents(h);
    const ddr = events.filter((e) => e.name === '_dns.resolver.arpa' && e.type === 'SVCB' && e.network === 'staff');
    expect(ddr.length).toBeGreaterThan(0);
    for (const e of ddr) expect(e).toMatchObject({ decision: 'allowed', upstream: null, cache: false, rcode: 0, answers: 2, profile: 'staff' });
    expect(events.find((e) => e.name === '_dns.dns.google' && e.network === 'staff')).toMatchObject({ decision: 'blocked', list: 'doh-bypass' });
  });

  it('warns about nothing: the certificate names the resolver and carries the listener address', () => {
    expect(h.logs.filter((l) => String(l.msg).startsWith('DDR:'))).toEqual([]);
  });
});

describe('DDR over the encrypted listener', () => {
  it('kdig +tls gets the same designation on the DoT port', async () => {
    const out = (await run('kdig', ['+tls', `@${STAFF}`, '-p', String(dotPort), '+time=3', '+retry=0', '_dns.resolver.arpa', 'SVCB'])).stdout;
    expect(out.split('\n').filter((l) => /IN\s+SVCB\s+\d/.test(l))).toHaveLength(2);
  });
});

describe('DDR with a certificate that lacks the listener address', () => {
  it('still names the resolver, and warns that Verified Discovery will fail', async () => {
    const key = join(certs, 'noip.key');
    const cert = join(certs, 'noip.pem');
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
        key,
        '-out',
        cert,
        '-days',
        '2',
        '-subj',
        '/CN=noip',
        '-addext',
        'subjectAltName=DNS:other.sluice.test',
      ],
      {
        stdio: 'ignore',
      },
    );
    const other = await startSluice({
      captureLogs: true,
      files: { 'tls/server.pem': readFileSync(cert, 'utf8'), 'tls/server.key': readFileSync(key, 'utf8') },
      config: `
listeners:
  - { address: ${STAFF}, port: 0, protocols: [udp, dot], dot_port: ${await freePort()}, tls: { cert_file: tls/server.pem, key_file: tls/server.key } }
networks: { staff: { cidrs: [${STAFF}/32], profile: staff } }
profiles: { staff: {} }
upstreams: { default: ["127.0.0.1:9"] }
`,
    });
    try {
      const out = (await run('kdig', [`@${STAFF}`, '-p', String(other.udp.port), '+time=3', '+retry=0', '_dns.resolver.arpa', 'SVCB'])).stdout;
      expect(out).toMatch(/SVCB\s+1 other\.sluice\.test\. alpn=dot/);
      const warning = other.logs.find((l) => String(l.msg).startsWith('DDR: the certificate has no IP address entry'));
      expect(warning).toMatchObject({ level: 40, missing: [STAFF] });
    } finally {
      await other.stop();
    }
  });
});
