// A running server and the CLI together: `sluice lists add` reaches a serving SluiceServer within
// 2 s without a lost answer, a broken config edit keeps the old state serving, and a url list whose
// source is down at start serves its cached copy from state_dir.
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { createLogger } from '../../src/logging/logger.js';
import { SluiceServer } from '../../src/server/sluice-server.js';
import { RCODE, resolve, type ServerAddress } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { until } from '../helpers/until.js';
import { closedPort, makeWorkspace, startListServer, type ListServer, type Workspace } from './cli-workspace.js';

interface Served {
  server: SluiceServer;
  udp: ServerAddress;
  logs: Record<string, unknown>[];
  waitForLog(pred: (l: Record<string, unknown>) => boolean, ms: number): Promise<Record<string, unknown>>;
}

/** The workspace's config on an ephemeral port, forwarding to the fake upstream; `edit` may change it further. */
function serveableConfig(ws: Workspace, upstream: FakeUpstream, edit: (doc: ReturnType<typeof parseDocument>) => void = () => {}): string {
  const doc = parseDocument(ws.read('config/sluice.yaml'));
  doc.setIn(['listeners', 0, 'port'], 0);
  doc.setIn(['upstreams', 'default'], doc.createNode([upstream.address], { flow: true }));
  // the reference admin server has a fixed port; these tests do not use it
  if (doc.has('admin')) doc.setIn(['admin', 'enabled'], false);
  edit(doc);
  return doc.toString();
}

async function serve(configFile: string): Promise<Served> {
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger('info', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const server = await SluiceServer.start({ configFile, logger });
  const waitForLog = async (pred: (l: Record<string, unknown>) => boolean, ms: number) => {
    let hit: Record<string, unknown> | undefined;
    try {
      await until('the log line', () => (hit = logs.find(pred)) !== undefined, ms);
    } catch {
      throw new Error(`no such log line within ${ms} ms; logs: ${JSON.stringify(logs.map((l) => l.msg))}`);
    }
    return hit!;
  };
  return { server, udp: { host: '127.0.0.1', port: server.port('udp') }, logs, waitForLog };
}

interface Probe {
  name: string;
  sentAt: number;
  rcode?: number;
  error?: string;
}

/** Queries `names` in turn from 127.0.0.1 every ~10 ms until stopped; every outcome is kept. */
function queryLoop(udp: ServerAddress, names: string[]) {
  const probes: Probe[] = [];
  const pending: Promise<void>[] = [];
  let i = 0;
  const timer = setInterval(() => {
    const p: Probe = { name: names[i++ % names.length]!, sentAt: Date.now() };
    probes.push(p);
    pending.push(
      resolve(udp, p.name, 'A', { localAddress: '127.0.0.1', timeoutMs: 1500 }).then(
        (r) => void (p.rcode = r.rcode),
        (err: Error) => void (p.error = err.message),
      ),
    );
  }, 10);
  return {
    probes,
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
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

describe('a running server and `sluice lists add`', () => {
  let ws: Workspace;
  let s: Served;
  beforeAll(async () => {
    ws = makeWorkspace();
    ws.write('config/sluice.yaml', serveableConfig(ws, upstream));
    s = await serve(ws.configFile);
  });
  afterAll(async () => {
    await s?.server.stop(500);
    ws?.remove();
  });

  it('blocks a newly added domain within 2 s of the edit, answering every query meanwhile', async () => {
    const internal = (name: string) => resolve(s.udp, name, 'A', { localAddress: '127.0.0.1' });
    expect((await internal('newly-banned.example')).rcode).toBe(RCODE.NOERROR);
    expect((await internal('www.tiktok.com')).rcode).toBe(RCODE.NXDOMAIN);

    const loop = queryLoop(s.udp, ['newly-banned.example', 'www.example.org', 'www.tiktok.com']);
    const answered = (after: number) => loop.probes.filter((p) => p.sentAt >= after && (p.rcode !== undefined || p.error !== undefined)).length;
    await until('the loop to be answered before the edit', () => answered(0) >= 15);
    const edit = await ws.sluice('lists', 'add', 'local-additions', 'newly-banned.example', '--reason', 'e2e');
    const editedAt = Date.now();
    expect(edit.code, edit.stderr).toBe(0);

    let blockedAt: number | undefined;
    await until('newly-banned.example to become NXDOMAIN', () => (blockedAt = loop.probes.find((p) => p.name === 'newly-banned.example' && p.rcode === RCODE.NXDOMAIN)?.sentAt) !== undefined, 3000);
    // Go on for a few rounds of the loop after that, to see the block hold.
    await until('the loop to be answered after the block', () => answered(blockedAt!) >= 15);
    await loop.stop();

    expect(blockedAt! - editedAt).toBeLessThan(2000);
    expect(loop.probes.filter((p) => p.error !== undefined)).toEqual([]);
    for (const p of loop.probes) {
      if (p.name === 'www.example.org') expect(p.rcode).toBe(RCODE.NOERROR);
      if (p.name === 'www.tiktok.com') expect(p.rcode).toBe(RCODE.NXDOMAIN);
    }
    // once blocked it stays blocked: no answer from a half-applied state
    const banned = loop.probes.filter((p) => p.name === 'newly-banned.example');
    const first = banned.findIndex((p) => p.rcode === RCODE.NXDOMAIN);
    expect(first).toBeGreaterThan(0); // answered before the edit too
    expect(banned.length - first).toBeGreaterThanOrEqual(5);
    expect(banned.slice(first).every((p) => p.rcode === RCODE.NXDOMAIN)).toBe(true);
    expect(banned.slice(0, first).every((p) => p.rcode === RCODE.NOERROR)).toBe(true);
  });

  it('keeps serving the previous state when the config is edited into an invalid one', async () => {
    const good = ws.read('config/sluice.yaml');
    const loop = queryLoop(s.udp, ['newly-banned.example', 'www.example.org']);
    const before = s.logs.length;
    ws.write('config/sluice.yaml', good.replace(/^cache:\n/m, 'cache:\n  colour: blue\n'));
    const rejected = await s.waitForLog((l) => s.logs.indexOf(l) >= before && String(l.msg).startsWith('reload rejected'), 3000);
    expect(String(rejected.msg)).toMatch(/sluice\.yaml:\d+ cache\.colour: unknown key "colour"/);

    // a list edit while the config is broken cannot take effect either
    const edit = await ws.sluice('lists', 'add', 'local-additions', 'too-late.example');
    expect(edit.code, edit.stderr).toBe(2); // the CLI refuses to work on the broken config
    // Keep asking for a while after the refused edit: the previous state goes on answering.
    const refusedAt = Date.now();
    await until('the loop to be answered after the refused edit', () => loop.probes.filter((p) => p.sentAt >= refusedAt && (p.rcode !== undefined || p.error !== undefined)).length >= 20);
    await loop.stop();
    expect(loop.probes.some((p) => p.name === 'newly-banned.example' && p.rcode === RCODE.NXDOMAIN)).toBe(true);
    expect(loop.probes.filter((p) => p.error !== undefined)).toEqual([]);
    for (const p of loop.probes) expect(p.rcode).toBe(p.name === 'newly-banned.example' ? RCODE.NXDOMAIN : RCODE.NOERROR);

    // fixing the config applies it again
    const fixedAt = s.logs.length;
    ws.write('config/sluice.yaml', good);
    await s.waitForLog((l) => s.logs.indexOf(l) >= fixedAt && l.msg === 'reloaded', 3000);
    expect((await resolve(s.udp, 'newly-banned.example', 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
    expect((await resolve(s.udp, 'newly-banned.example', 'A', { localAddress: '127.0.0.2' })).rcode).toBe(RCODE.NOERROR);
  });
});

describe('a url list whose source is down at start', () => {
  let ws: Workspace;
  let s: Served;
  const cached = '# last good copy\ncached-ban.example\n0.0.0.0 cached-hosts.example\n';
  beforeAll(async () => {
    ws = makeWorkspace();
    const url = `http://127.0.0.1:${await closedPort()}/list.txt`;
    ws.write(
      'config/sluice.yaml',
      serveableConfig(ws, upstream, (doc) => {
        doc.setIn(['lists', 'mirror'], doc.createNode({ url }, { flow: true }));
        const profile = String(doc.getIn(['networks', 'internal', 'profile']));
        doc.addIn(['profiles', profile, 'block'], 'mirror');
      }),
    );
    mkdirSync(ws.path('var/lists'), { recursive: true });
    ws.write('var/lists/mirror.txt', cached);
    const at = '2026-01-01T00:00:00.000Z';
    const sha256 = createHash('sha256').update(cached).digest('hex');
    ws.write('var/lists/mirror.meta.json', JSON.stringify({ url, fetchedAt: at, checkedAt: at, entries: 2, sha256, etag: '"old"' }));
    s = await serve(ws.configFile);
  });
  afterAll(async () => {
    await s?.server.stop(500);
    ws?.remove();
  });

  it('blocks the domains of the cached copy in state_dir/lists', async () => {
    const internal = (name: string) => resolve(s.udp, name, 'A', { localAddress: '127.0.0.1' });
    expect((await internal('www.cached-ban.example')).rcode).toBe(RCODE.NXDOMAIN);
    expect((await internal('cached-hosts.example')).rcode).toBe(RCODE.NXDOMAIN);
    expect((await internal('not-cached.example')).rcode).toBe(RCODE.NOERROR);
    expect((await resolve(s.udp, 'www.cached-ban.example', 'A', { localAddress: '127.0.0.2' })).rcode).toBe(RCODE.NOERROR);
    const loaded = s.logs.find((l) => l.msg === 'lists loaded') as { lists: { name: string; entries: number }[] } | undefined;
    expect(loaded?.lists).toContainEqual({ name: 'mirror', entries: 2 });
    expect(s.logs.some((l) => String(l.msg).includes('no downloaded copy'))).toBe(false);
  });

  it('`sluice check` names the cached copy, and `lists update` fails without touching it', async () => {
    const check = await ws.sluice('check', 'www.cached-ban.example', '--client', '127.0.0.1');
    expect(check.code, check.stderr).toBe(1);
    expect(check.stdout).toMatch(/^ {2}list +mirror$/m);
    expect(check.stdout).toContain('cached-ban.example  (var/lists/mirror.txt:2)');
    const update = await ws.sluice('lists', 'update', 'mirror');
    expect(update.code, update.stderr).toBe(1);
    expect(update.stdout).toMatch(/^mirror: download failed \(.*ECONNREFUSED\), keeping the cached copy$/m);
    expect(ws.read('var/lists/mirror.txt')).toBe(cached);
    expect((await resolve(s.udp, 'cached-ban.example', 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
  });
});

describe('a url list with no copy yet, downloaded by `sluice lists update` while the server runs', () => {
  let ws: Workspace;
  let s: Served;
  let http: ListServer;
  beforeAll(async () => {
    http = await startListServer();
    ws = makeWorkspace();
    ws.write(
      'config/sluice.yaml',
      serveableConfig(ws, upstream, (doc) => {
        doc.setIn(['lists', 'late'], doc.createNode({ url: http.url('/late.txt') }, { flow: true }));
        const profile = String(doc.getIn(['networks', 'internal', 'profile']));
        doc.addIn(['profiles', profile, 'block'], 'late');
      }),
    );
    s = await serve(ws.configFile);
  });
  afterAll(async () => {
    await s?.server.stop(500);
    ws?.remove();
    await http?.close();
  });

  it('blocks the downloaded domains within 2 s of the update', async () => {
    const internal = (name: string) => resolve(s.udp, name, 'A', { localAddress: '127.0.0.1' });
    // the server's own first attempt gets a 404: the list blocks nothing yet
    await s.waitForLog((l) => l.list === 'late' && String(l.msg).includes('HTTP 404'), 3000);
    expect((await internal('late-ban.example')).rcode).toBe(RCODE.NOERROR);

    http.serve('/late.txt', 'late-ban.example\n');
    const update = await ws.sluice('lists', 'update', 'late');
    expect(update.code, update.stderr).toBe(0);
    expect(update.stdout).toContain('late: updated to 1 entry (+1 -0)');
    // Asked again and again (each answer is awaited: no sleep between), until blocked, for 2 s at most.
    let rcode: number = RCODE.NOERROR;
    await until('late-ban.example to become NXDOMAIN', async () => (rcode = (await internal('late-ban.example')).rcode) === RCODE.NXDOMAIN, 2000);
    expect(rcode).toBe(RCODE.NXDOMAIN);
  });
});
