// Reference DNS servers for differential tests: NSD (authoritative, Debian's /usr/sbin/nsd) serving
// zones written at test time, some of them DNSSEC-signed with ldns, and Unbound (Debian's
// /usr/sbin/unbound) as a pure forwarder or a validating one in front of it. Everything listens on
// 127.0.0.1 on free ports and lives in a temporary directory; nothing reads /etc/resolv.conf.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RCODE, resolve, type ServerAddress } from './dns-client.js';
import { freeTcpUdpPort } from './ports.js';

const NSD = '/usr/sbin/nsd';
const UNBOUND = '/usr/sbin/unbound';
const LDNS_KEYGEN = '/usr/bin/ldns-keygen';
const LDNS_SIGNZONE = '/usr/bin/ldns-signzone';
/** The Debian packages that hold the binaries above (what .ci/run installs). */
export const REFERENCE_DNS_PACKAGES = ['nsd', 'unbound', 'ldnsutils'];

/** Throws a readable error when a binary the reference servers need is missing. */
export function requireReferenceTools(): void {
  const missing = [NSD, UNBOUND, LDNS_KEYGEN, LDNS_SIGNZONE].filter((bin) => {
    try {
      accessSync(bin, constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(`reference DNS servers need ${missing.join(', ')}: ` + `.ci/run installs the Debian packages ${REFERENCE_DNS_PACKAGES.join(' ')}`);
  }
}

export interface ReferenceServer extends ServerAddress {
  /** "127.0.0.1:PORT", the form sluice's config takes. */
  address: string;
  dir: string;
  /** What the server wrote to its log file and stderr so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

// Daemons still running when the test process exits are killed, with their own children (NSD
// forks xfrd and a server process), so a crashed test file does not leave them holding ports.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) {
    try {
      if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

interface Spawned {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
  ended(): boolean;
}

function spawnDaemon(bin: string, args: string[], logFile: string): Spawned {
  // detached: a process group of its own, which the exit handler above can kill as a whole.
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  running.add(child);
  let stderr = '';
  const collect = (d: Buffer | string): void => {
    // Bounded: a daemon that logs a lot must not grow the test's memory.
    if (stderr.length < 64 * 1024) stderr += d.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // 'exit', or 'error' alone when the binary could not be started at all.
  let ended = false;
  const exited = new Promise<void>((done) => {
    const end = (): void => {
      ended = true;
      running.delete(child);
      done();
    };
    child.once('exit', end);
    child.once('error', (e) => {
      collect(`spawn ${bin}: ${e.message}\n`);
      if (child.pid === undefined) end();
    });
  });
  const output = (): string => {
    let file = '';
    try {
      file = readFileSync(logFile, 'utf8');
    } catch {
      // not written yet
    }
    return `${stderr}${file}`.slice(-8000);
  };
  const stop = async (): Promise<void> => {
    if (ended) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  return { child, output, stop, ended: () => ended };
}

/** Poll `probe` until it returns true; fail with the daemon's log when it exits or time runs out. */
async function waitUntilServing(name: string, d: Spawned, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (d.ended()) {
      throw new Error(`${name} exited (${d.child.exitCode ?? d.child.signalCode}) before answering:\n${d.output()}`);
    }
    if (await probe()) return;
    // Each probe itself waits up to its timeout; this pause only spaces out refused attempts.
    await new Promise((r) => setTimeout(r, 25));
  }
  await d.stop();
  throw new Error(`${name} did not answer within 10 s:\n${d.output()}`);
}

// ---------------------------------------------------------------------------
// Zones
// ---------------------------------------------------------------------------

export interface ZoneSpec {
  /** Zone name without trailing dot, e.g. "diff.test". */
  origin: string;
  /** Zone file body ($ORIGIN and $TTL are prepended). */
  body: string;
  /** Sign with a fresh ECDSA P-256 key (ldns-signzone, NSEC). */
  sign?: boolean;
  /** Applied to the signed zone file: to break a signature on purpose. */
  tamper?: (signed: string) => string;
}

export interface SignedZone {
  origin: string;
  /** The DS record in presentation form, for an Unbound `trust-anchor:` line. */
  ds: string;
}

const DEFAULT_TTL = 300;

function soa(origin: string, mname = `ns1.${origin}.`, rname = `hostmaster.${origin}.`): string {
  return `@ IN SOA ${mname} ${rname} 1 3600 900 604800 ${DEFAULT_TTL}`;
}

/** The address the tampered A record of bogus.test carries instead of the signed one. */
export const BOGUS_ADDRESS = '192.0.2.66';
export const SIGNED_ADDRESS = '192.0.2.10';

/**
 * The zones the differential suite asks about. Addresses are documentation ranges (RFC 5737/3849),
 * never private ones, so sluice's rebinding protection has nothing to say about them.
 */
export function differentialZones(): ZoneSpec[] {
  const diff = [
    soa('diff.test'),
    '@ NS ns1',
    '@ NS ns2',
    'ns1 A 192.0.2.253',
    'ns2 A 192.0.2.254',
    '@ MX 10 mail',
    '@ CAA 0 issue "letsencrypt.org"',
    '@ TXT "v=spf1 -all"',
    'mail A 192.0.2.25',
    'www A 192.0.2.1',
    'www AAAA 2001:db8::1',
    'alias CNAME www',
    // A chain inside the zone, a CNAME into another zone the same server has, and one to a name
    // no zone serves.
    'chain1 CNAME chain2',
    'chain2 CNAME chain3',
    'chain3 CNAME www',
    'ext CNAME www.other.test.',
    'dangling CNAME nowhere.unserved.test.',
    '_sip._tcp SRV 10 5 5060 www',
    // HTTPS (type 65) "1 . alpn=h2" in RFC 3597 form: NSD 4.6's parser is not needed for it.
    'svc TYPE65 \\# 10 0001 00 0001 0003 026832',
    'ptr PTR www.diff.test.',
    '*.wild A 192.0.2.50',
    '*.wild TXT "wildcard"',
    // y.ent and ent are empty non-terminals.
    'x.y.ent A 192.0.2.60',
    'txt TXT "hello"',
    // Three 255-byte strings: over 512 bytes in the answer section alone.
    `longtxt TXT ${['a', 'b', 'c'].map((c) => `"${c.repeat(255)}"`).join(' ')}`,
    // 100 A records: 1.6 KB of answer, more than sluice's own 1232-byte EDNS buffer upstream.
    ...Array.from({ length: 100 }, (_, i) => `many A 198.51.100.${i + 1}`),
    // A CNAME that fits 512 to an RRset that does not: what goes in a truncated answer section.
    'bigalias CNAME many',
  ];
  const other = [soa('other.test'), '@ NS ns1', 'ns1 A 192.0.2.253', 'www A 192.0.2.2'];
  // Thirteen NS with glue: NSD puts them in the authority and additional sections of every
  // positive answer, so fit505's reply is 504 bytes without OPT (it fits 512, but not 512 once an
  // OPT record is added) and over's, with three A records, is 545 (it does not fit 512).
  const nsNames = 'abcdefghijklm'.split('').map((c) => `ns-${c}`);
  const big = [
    soa('big.test', 'ns-a.big.test.'),
    ...nsNames.flatMap((n, i) => [`@ NS ${n}`, `${n} A 192.0.2.${100 + i}`]),
    'fit505 A 192.0.2.9',
    'over A 192.0.2.10',
    'over A 192.0.2.11',
    'over A 192.0.2.12',
  ];
  // SOA names of 238 and 249 bytes: every negative answer is over 512 bytes (539 with OPT).
  const label = 'l'.repeat(55);
  const longMname = `${[label, label, label, label].join('.')}.longsoa.test.`;
  const longRname = `${['h', 'h', 'h', 'h'].map((c) => c.repeat(55)).join('.')}.hostmaster.longsoa.test.`;
  const longsoa = [soa('longsoa.test', longMname, longRname), '@ NS ns1', 'ns1 A 192.0.2.253', 'www A 192.0.2.3'];
  const signedBody = (origin: string): string[] => [
    soa(origin),
    '@ NS ns1',
    'ns1 A 192.0.2.253',
    `www A ${SIGNED_ADDRESS}`,
    'www AAAA 2001:db8::10',
    'txt TXT "signed"',
    'alias CNAME www',
    // A signed wildcard: the answer's RRSIG has fewer labels than the owner, and the NSEC that
    // proves the expansion goes in the authority section.
    '*.wild A 192.0.2.51',
  ];
  return [
    { origin: 'diff.test', body: diff.join('\n') },
    { origin: 'other.test', body: other.join('\n') },
    { origin: 'big.test', body: big.join('\n') },
    { origin: 'longsoa.test', body: longsoa.join('\n') },
    { origin: 'signed.test', body: signedBody('signed.test').join('\n'), sign: true },
    {
      origin: 'bogus.test',
      body: signedBody('bogus.test').join('\n'),
      sign: true,
      // Change the signed A record's address after signing: its RRSIG no longer matches.
      tamper: (signed) => {
        const re = new RegExp(`^(www\\.bogus\\.test\\.\\s+\\d+\\s+IN\\s+A\\s+)${SIGNED_ADDRESS.replaceAll('.', '\\.')}$`, 'm');
        if (!re.test(signed)) throw new Error('bogus.test: the signed A record to tamper with is not in the signed zone');
        return signed.replace(re, `$1${BOGUS_ADDRESS}`);
      },
    },
  ];
}

function run(bin: string, args: string[], cwd: string): string {
  const r = spawnSync(bin, args, { cwd, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.error ?? ''}`);
  return r.stdout;
}

/** Write the zone file (signed when asked) into `dir`; returns its file name and, if signed, its DS. */
function writeZone(dir: string, z: ZoneSpec): { file: string; signed?: SignedZone } {
  const file = `${z.origin}.zone`;
  writeFileSync(join(dir, file), `$ORIGIN ${z.origin}.\n$TTL ${DEFAULT_TTL}\n${z.body}\n`);
  if (!z.sign) return { file };
  // One KSK-flagged key signs everything (a CSK): enough for a validator, and fast to make.
  // /dev/urandom: ldns-keygen's default /dev/random could wait for entropy on a fresh machine.
  const base = run(LDNS_KEYGEN, ['-a', 'ECDSAP256SHA256', '-k', '-r', '/dev/urandom', z.origin], dir).trim();
  const signedFile = `${z.origin}.signed`;
  run(LDNS_SIGNZONE, ['-f', signedFile, file, base], dir);
  if (z.tamper) writeFileSync(join(dir, signedFile), z.tamper(readFileSync(join(dir, signedFile), 'utf8')));
  const ds = readFileSync(join(dir, `${base}.ds`), 'utf8')
    .trim()
    .split(/\s+/)
    .join(' ');
  return { file: signedFile, signed: { origin: z.origin, ds } };
}

export interface NsdServer extends ReferenceServer {
  /** DS records of the signed zones, for a validating resolver's trust anchors. */
  signedZones: SignedZone[];
}

/** A started daemon as the tests hold it: its address, its directory (removed by stop()), its log. */
function serverHandle(port: number, dir: string, d: Spawned): ReferenceServer {
  return {
    host: '127.0.0.1',
    port,
    address: `127.0.0.1:${port}`,
    dir,
    log: d.output,
    async stop() {
      await d.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** NSD in the foreground (-d) on a free loopback port, serving `zones`. Resolves once every zone answers. */
export async function startNsd(zones: ZoneSpec[]): Promise<NsdServer> {
  requireReferenceTools();
  const dir = mkdtempSync(join(tmpdir(), 'sluice-nsd-'));
  try {
    const written = zones.map((z) => ({ z, ...writeZone(dir, z) }));
    const port = await freeTcpUdpPort();
    const logFile = join(dir, 'nsd.log');
    const conf = [
      'server:',
      `  ip-address: 127.0.0.1@${port}`,
      '  do-ip6: no',
      // Run as the current user, with every file NSD writes in the temporary directory.
      '  username: ""',
      `  zonesdir: "${dir}"`,
      '  database: ""',
      '  pidfile: ""',
      `  zonelistfile: "${join(dir, 'zone.list')}"`,
      `  xfrdfile: "${join(dir, 'xfrd.state')}"`,
      `  xfrdir: "${dir}"`,
      `  logfile: "${logFile}"`,
      `  cookie-secret-file: "${join(dir, 'cookiesecrets.txt')}"`,
      '  verbosity: 1',
      '  server-count: 1',
      // Response rate limiting would answer a burst of test queries with TC or not at all.
      '  rrl-ratelimit: 0',
      '  rrl-whitelist-ratelimit: 0',
      // The default, spelled out: NS and glue in every positive answer (big.test depends on it).
      '  minimal-responses: no',
      '  round-robin: no',
      'remote-control:',
      '  control-enable: no',
      ...written.flatMap(({ z, file }) => ['zone:', `  name: "${z.origin}"`, `  zonefile: "${file}"`]),
    ].join('\n');
    const confFile = join(dir, 'nsd.conf');
    writeFileSync(confFile, `${conf}\n`);
    const d = spawnDaemon(NSD, ['-d', '-c', confFile], logFile);
    const server = { host: '127.0.0.1', port };
    // Serving means every zone is loaded: its SOA comes back authoritative.
    await waitUntilServing('nsd', d, async () => {
      for (const z of zones) {
        try {
          const r = await resolve(server, z.origin, 'SOA', { timeoutMs: 300 });
          if (r.rcode !== RCODE.NOERROR || !r.flags.aa) return false;
        } catch {
          return false;
        }
      }
      return true;
    });
    return { ...serverHandle(port, dir, d), signedZones: written.flatMap((w) => (w.signed ? [w.signed] : [])) };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export interface UnboundOptions {
  /** Where every query is forwarded (`forward-zone: "."`). */
  forwardTo: ServerAddress;
  /** `validator iterator` with `trustAnchors`, else `iterator` alone (a pure forwarder). */
  validate: boolean;
  /** Presentation-form DS (or DNSKEY) records; the only anchors (no root key). */
  trustAnchors?: string[];
  /** More `server:` lines. */
  extra?: string[];
}

/** Unbound in the foreground (-d) on a free loopback port, forwarding everything to `forwardTo`. */
export async function startUnbound(opts: UnboundOptions): Promise<ReferenceServer> {
  requireReferenceTools();
  const dir = mkdtempSync(join(tmpdir(), 'sluice-unbound-'));
  try {
    const port = await freeTcpUdpPort();
    const logFile = join(dir, 'unbound.log');
    const anchors = opts.validate ? (opts.trustAnchors ?? []) : [];
    if (opts.validate && anchors.length === 0) throw new Error('a validating Unbound needs trust anchors');
    const conf = [
      'server:',
      `  interface: 127.0.0.1@${port}`,
      '  do-ip4: yes',
      '  do-ip6: no',
      '  access-control: 127.0.0.0/8 allow',
      // The forwarder is NSD on 127.0.0.1, which Unbound would otherwise refuse to ask.
      '  do-not-query-localhost: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      `  logfile: "${logFile}"`,
      '  verbosity: 1',
      '  num-threads: 1',
      '  so-reuseport: no',
      // The default of 10 TCP clients at once is less than the suites' TCP concurrency.
      '  incoming-num-tcp: 100',
      `  module-config: "${opts.validate ? 'validator iterator' : 'iterator'}"`,
      // No root anchor: names outside the anchors below are insecure, not bogus.
      '  auto-trust-anchor-file: ""',
      ...anchors.map((a) => `  trust-anchor: "${a}"`),
      '  ede: yes',
      '  val-log-level: 2',
      '  serve-expired: no',
      '  prefetch: no',
      '  qname-minimisation: no',
      '  aggressive-nsec: no',
      // Full authority/additional sections, so truncation decisions are Unbound's, not elided.
      '  minimal-responses: no',
      // Unbound answers names under "test." from a built-in empty zone (RFC 6761) unless told not to.
      '  local-zone: "test." nodefault',
      ...(opts.extra ?? []).map((l) => `  ${l}`),
      'remote-control:',
      '  control-enable: no',
      'forward-zone:',
      '  name: "."',
      `  forward-addr: ${opts.forwardTo.host}@${opts.forwardTo.port}`,
    ].join('\n');
    const confFile = join(dir, 'unbound.conf');
    writeFileSync(confFile, `${conf}\n`);
    const d = spawnDaemon(UNBOUND, ['-d', '-c', confFile], logFile);
    const server = { host: '127.0.0.1', port };
    // "invalid." is one of Unbound's built-in local zones (RFC 6761): it answers without
    // forwarding, so the probe leaves nothing in the cache the tests look at.
    await waitUntilServing('unbound', d, async () => {
      try {
        const r = await resolve(server, 'ready.invalid', 'A', { timeoutMs: 300 });
        return r.rcode === RCODE.NXDOMAIN;
      } catch {
        return false;
      }
    });
    return serverHandle(port, dir, d);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
