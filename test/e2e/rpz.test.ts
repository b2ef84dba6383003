// RPZ out (docs/rpz.md): `sluice lists export --format rpz` loads in Debian's Unbound as an RPZ
// zone file, and the zone-transfer endpoint feeds an Unbound secondary (`rpz: primary:`) that
// blocks what sluice blocks, follows a `sluice lists add` by NOTIFY and transfer, and refuses a
// transfer from an address outside allow_transfer.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, resolve, type ServerAddress } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startRedis, type TestRedis } from '../helpers/redis-server.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';
import { makeWorkspace, runSluice, type Workspace } from './cli-workspace.js';
import { freeTcpUdpPort } from '../helpers/ports.js';

const UNBOUND = '/usr/sbin/unbound';
const NAMED_CHECKZONE = '/usr/bin/named-checkzone';

/** A command's output, run without blocking the event loop (the server under test is in this process). */
function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', fail);
    child.once('close', (code) => done({ code, stdout, stderr }));
  });
}

interface Unbound {
  server: ServerAddress;
  log(): string;
  stop(): Promise<void>;
}

/** Debian's Unbound on 127.0.0.1:`port` with the respip module and one `rpz:` clause. */
async function startUnbound(port: number, forwardTo: string, rpz: string[]): Promise<Unbound> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-rpz-unbound-'));
  const conf = join(dir, 'unbound.conf');
  writeFileSync(
    conf,
    [
      'server:',
      `  interface: 127.0.0.1@${port}`,
      '  do-ip6: no',
      '  access-control: 127.0.0.0/8 allow',
      '  do-not-query-localhost: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      `  logfile: ""`,
      '  verbosity: 1',
      '  num-threads: 1',
      '  so-reuseport: no',
      '  module-config: "respip iterator"',
      '  qname-minimisation: no',
      '  local-zone: "example." nodefault',
      'rpz:',
      '  name: rpz.sluice.',
      ...rpz.map((l) => `  ${l}`),
      'remote-control:',
      '  control-enable: no',
      'forward-zone:',
      '  name: "."',
      `  forward-addr: ${forwardTo}`,
      '',
    ].join('\n'),
  );
  const check = spawnSync('/usr/sbin/unbound-checkconf', [conf], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`unbound-checkconf: ${check.stdout}${check.stderr}`);
  const child: ChildProcess = spawn(UNBOUND, ['-d', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const server = { host: '127.0.0.1', port };
  await until(
    'unbound answering',
    async () => {
      if (child.exitCode !== null) throw new Error(`unbound exited:\n${out}`);
      return resolve(server, 'ready.invalid', 'A', { timeoutMs: 300 }).then(
        () => true,
        () => false,
      );
    },
    10_000,
    50,
  );
  return {
    server,
    log: () => out.slice(-6000),
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let upstream: FakeUpstream;
beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

describe('sluice lists export --format rpz', () => {
  let ws: Workspace;
  let unbound: Unbound | undefined;
  beforeAll(() => {
    ws = makeWorkspace();
    const cfg = ws.read('config/sluice.yaml');
    ws.write('config/sluice.yaml', cfg.replace(/^lists:\n/m, 'lists:\n  rpz-src: { file: lists/rpz-src.txt }\n'));
    ws.write('config/lists/rpz-src.txt', '# rpz source\nblocked.example\n*.wild.example\n0.0.0.0 hosts.example\n||ad.example^\n');
  });
  afterAll(async () => {
    await unbound?.stop();
    ws?.remove();
  });

  it('writes $TTL, SOA, NS and CNAME . pairs; Unbound loads it as an RPZ zone file and blocks by it', async () => {
    const r = await ws.sluice('lists', 'export', 'rpz-src', '--format', 'rpz');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\$ORIGIN rpz\.sluice\.$/m);
    expect(r.stdout).toMatch(/^\$TTL 300$/m);
    expect(r.stdout).toMatch(/^@ SOA localhost\. hostmaster \(\d+ 3600 600 604800 300\)$/m);
    expect(r.stdout).toMatch(/^@ NS localhost\.$/m);
    const body = r.stdout.split('\n').filter((l) => / CNAME /.test(l));
    expect(body.sort()).toEqual(['*.ad.example', '*.blocked.example', '*.hosts.example', '*.wild.example', 'ad.example', 'blocked.example', 'hosts.example'].map((n) => `${n} CNAME .`).sort());
    // the serial follows the list file: an edit moves it on
    const serial = Number(/SOA localhost\. hostmaster \((\d+) /.exec(r.stdout)![1]);
    const zoneFile = ws.path('rpz.zone');
    ws.write('rpz.zone', r.stdout);
    // BIND's checker (bind9-utils, installed by .ci/run)
    const check = spawnSync(NAMED_CHECKZONE, ['rpz.sluice', zoneFile], { encoding: 'utf8' });
    expect(check.error, `${NAMED_CHECKZONE}: .ci/run installs bind9-utils`).toBeUndefined();
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain(`loaded serial ${serial}`);

    unbound = await startUnbound(await freeTcpUdpPort(), upstream.address.replace(':', '@'), [`zonefile: "${zoneFile}"`]);
    const ask = (name: string) => resolve(unbound!.server, name, 'A', { timeoutMs: 2000 });
    for (const name of ['blocked.example', 'deep.sub.blocked.example', 'x.wild.example', 'hosts.example', 'www.ad.example']) {
      expect((await ask(name)).rcode, `${name}\n${unbound.log()}`).toBe(RCODE.NXDOMAIN);
    }
    // `*.wild.example` is for the subdomains only; other names go to the upstream
    for (const name of ['wild.example', 'unlisted.example']) expect((await ask(name)).rcode, name).toBe(RCODE.NOERROR);
  });
});

describe('the zone-transfer endpoint', () => {
  let h: Harness;
  let unbound: Unbound;
  let rpzPort: number;
  beforeAll(async () => {
    rpzPort = await freeTcpUdpPort();
    const unboundPort = await freeTcpUdpPort();
    h = await startSluice({
      upstream: upstream.address,
      lists: referenceLists,
      config: referenceConfig(`
logging:
  level: warn
rpz:
  - name: rpz.sluice.
    network: internal
    listen: 127.0.0.1:${rpzPort}
    allow_transfer: [127.0.0.1/32]
    notify: ["127.0.0.1:${unboundPort}"]
`),
    });
    unbound = await startUnbound(unboundPort, upstream.address.replace(':', '@'), [`primary: 127.0.0.1@${rpzPort}`, 'allow-notify: 127.0.0.1/32', 'rpz-log: yes']);
  }, 20_000);
  afterAll(async () => {
    await unbound?.stop();
    await h?.stop();
  });

  const blocked = async (name: string) => (await resolve(unbound.server, name, 'A', { timeoutMs: 2000 })).rcode === RCODE.NXDOMAIN;

  it('Unbound blocks what the internal network blocks, from the transferred zone; the allow entry passes', async () => {
    await until('unbound has transferred the zone', () => blocked('www.tiktok.com'), 10_000, 100);
    expect(await blocked('tiktok.com')).toBe(true);
    expect(await blocked('a.byteoversea.com')).toBe(true);
    expect(await blocked('byteoversea.com')).toBe(false);
    expect(await blocked('weixin.qq.com')).toBe(true);
    // profile staff allows newsroom.tiktok.com: a passthru rule in the zone
    const allowed = await resolve(unbound.server, 'newsroom.tiktok.com', 'A', { timeoutMs: 2000 });
    expect(allowed.rcode).toBe(RCODE.NOERROR);
    expect(allowed.answers.map((a) => a.data)).toEqual(['192.0.2.1']);
    expect(h.server.rpz[0]!.stats.transfers).toBeGreaterThanOrEqual(1);
  });

  it('after `sluice lists add` (the server reloads the watched list), Unbound blocks the new name within seconds: NOTIFY, then a transfer', async () => {
    await until('first transfer', () => blocked('www.tiktok.com'), 10_000, 100);
    const before = h.server.rpz[0]!.serial!;
    const transfers = h.server.rpz[0]!.stats.transfers;
    const add = await runSluice(['--config', h.configFile, 'lists', 'add', 'tiktok', 'newapp.example', '--reason', 'rpz e2e'], h.dir);
    expect(add.code, add.stderr).toBe(0);
    await until('a new serial', () => (h.server.rpz[0]!.serial ?? 0) !== before, 10_000, 50);
    expect(h.server.rpz[0]!.stats.notifiesSent).toBeGreaterThanOrEqual(1);
    // a name of its own per probe: Unbound never answers from a cache filled before the zone arrived
    let probe = 0;
    await until('unbound blocks the added name', () => blocked(`p${probe++}.newapp.example`), 10_000, 100);
    expect(await blocked('newapp.example')).toBe(true);
    expect(h.server.rpz[0]!.stats.transfers).toBeGreaterThan(transfers);
    expect(h.server.rpz[0]!.stats.notifiesAcked).toBeGreaterThanOrEqual(1);
  });

  it('AXFR from an allowed address gives the zone; from 127.0.0.2 (outside allow_transfer) REFUSED', async () => {
    const ok = await run('dig', ['+tcp', '+time=3', '+tries=1', '-b', '127.0.0.1', '-p', String(rpzPort), '@127.0.0.1', 'rpz.sluice.', 'AXFR']);
    expect(ok.stdout).toMatch(/^\*\.tiktok\.com\.rpz\.sluice\.\s+300\s+IN\s+CNAME\s+\.$/m);
    expect(ok.stdout).toMatch(/^newsroom\.tiktok\.com\.rpz\.sluice\.\s+300\s+IN\s+CNAME\s+rpz-passthru\.$/m);
    expect(ok.stdout.match(/\sSOA\s/g)).toHaveLength(2);
    const refused = await run('dig', ['+tcp', '+time=3', '+tries=1', '-b', '127.0.0.2', '-p', String(rpzPort), '@127.0.0.1', 'rpz.sluice.', 'AXFR']);
    expect(refused.stdout + refused.stderr).toMatch(/REFUSED|Transfer failed/);
    expect(refused.stdout).not.toMatch(/CNAME/);
    const soa = await run('dig', ['+time=3', '+tries=1', '-b', '127.0.0.2', '-p', String(rpzPort), '@127.0.0.1', 'rpz.sluice.', 'SOA']);
    expect(soa.stdout).toContain('status: REFUSED');
    expect(h.server.rpz[0]!.stats.refused).toBeGreaterThanOrEqual(2);
  });
});

describe('TSIG (HMAC-SHA256) on the zone-transfer endpoint', () => {
  let h: Harness;
  let rpzPort: number;
  const secret = randomBytes(32).toString('base64');
  beforeAll(async () => {
    rpzPort = await freeTcpUdpPort();
    // big enough for a transfer of several messages
    const bulk = Array.from({ length: 2000 }, (_, i) => `n${i}.bulk.example\n`).join('');
    h = await startSluice({
      upstream: upstream.address,
      lists: { ...referenceLists, tiktok: referenceLists.tiktok + bulk },
      config: referenceConfig(`
logging:
  level: warn
rpz:
  - name: rpz.sluice.
    network: internal
    listen: 127.0.0.1:${rpzPort}
    tsig: { name: xfr-key., secret: "${secret}" }
`),
    });
  });
  afterAll(async () => {
    await h?.stop();
  });
  const axfr = (...opts: string[]) => run('dig', ['+tcp', '+time=3', '+tries=1', ...opts, '-p', String(rpzPort), '@127.0.0.1', 'rpz.sluice.', 'AXFR']);

  it('a transfer signed with the key gets the zone, signed (dig verifies every message)', async () => {
    const r = await axfr('-y', `hmac-sha256:xfr-key:${secret}`);
    expect(r.stdout + r.stderr).not.toMatch(/verify failure|Transfer failed|TSIG error|expected a TSIG/i);
    expect(r.stdout).toMatch(/^\*\.tiktok\.com\.rpz\.sluice\.\s+300\s+IN\s+CNAME\s+\.$/m);
    expect(r.stdout).toMatch(/^xfr-key\.\s+0\s+ANY\s+TSIG\s+hmac-sha256\. \d+ 300 32 \S+ \d+ NOERROR 0\s*$/m);
    // several messages, each signed over the MAC before it (RFC 8945 §5.3.1)
    const messages = Number(/XFR size: \d+ records \(messages (\d+),/.exec(r.stdout)?.[1]);
    expect(messages).toBeGreaterThan(3);
    expect(r.stdout).toContain('n1999.bulk.example.rpz.sluice.');
  });

  it('an unsigned transfer is REFUSED; one signed with another key is NOTAUTH; a signed one from outside allow_transfer is REFUSED', async () => {
    const unsigned = await axfr();
    expect(unsigned.stdout + unsigned.stderr).toMatch(/REFUSED|Transfer failed/);
    expect(unsigned.stdout).not.toMatch(/CNAME/);
    const wrong = await axfr('-y', `hmac-sha256:xfr-key:${randomBytes(32).toString('base64')}`);
    expect(wrong.stdout + wrong.stderr).toMatch(/NOTAUTH|Transfer failed|tsig/i);
    expect(wrong.stdout).not.toMatch(/CNAME/);
    // the address list still applies to a signed transfer
    const outside = await axfr('-b', '127.0.0.2', '-y', `hmac-sha256:xfr-key:${secret}`);
    expect(outside.stdout + outside.stderr).toMatch(/REFUSED|Transfer failed/);
    expect(outside.stdout).not.toMatch(/CNAME/);
    // the SOA stays open to unsigned probes (Unbound's, before its transfer)
    const soa = await run('dig', ['+time=3', '+tries=1', '-p', String(rpzPort), '@127.0.0.1', 'rpz.sluice.', 'SOA']);
    expect(soa.stdout).toContain('status: NOERROR');
  });
});

describe('shared mode: a shared edit changes the zone', () => {
  let redis: TestRedis;
  let h: Harness;
  let rpzPort: number;
  beforeAll(async () => {
    redis = await startRedis();
    rpzPort = await freeTcpUdpPort();
    h = await startSluice({
      upstream: upstream.address,
      lists: referenceLists,
      config: referenceConfig(`
logging:
  level: warn
redis: { url: "${redis.url}", key_prefix: "rpz${process.pid}:", heartbeat_ms: 200 }
rpz:
  - name: rpz.sluice.
    network: internal
    listen: 127.0.0.1:${rpzPort}
`),
    });
    await until('shared state up', () => h.server.shared!.up, 5000);
  });
  afterAll(async () => {
    await h?.stop();
    await redis?.stop();
  });

  it('`sluice lists add` in shared mode (no file edit) gives a new serial and the name in the next transfer', async () => {
    const before = h.server.rpz[0]!.serial!;
    const add = await runSluice(['--config', h.configFile, 'lists', 'add', 'tiktok', 'shared-edit.example', '--reason', 'rpz shared'], h.dir);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/shared edit/);
    await until('a new serial', () => h.server.rpz[0]!.serial !== before, 5000);
    const r = await run('dig', ['+tcp', '+time=3', '+tries=1', '-p', String(rpzPort), '@127.0.0.1', 'rpz.sluice.', 'AXFR']);
    expect(r.stdout).toMatch(/^shared-edit\.example\.rpz\.sluice\.\s+300\s+IN\s+CNAME\s+\.$/m);
  });
});
