// `sluice disable` / `enable`, `allow` / `deny` and `overrides` against running servers: a
// standalone one (the overrides file, picked up by its file watch) and two sharing a real
// redis-server (the shared edit log). Real DNS on loopback, a fake upstream behind.
import { execFile } from 'node:child_process';
import { chownSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, resolve, type DecodedResponse } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startRedis, type TestRedis } from '../helpers/redis-server.js';
import { loggedEvents, referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const TOKEN = 'overrides-test-admin-token';
const VIEWER = 'overrides-test-viewer-token';
// A policy on the school network besides the profile lists of the reference deployment.
const POLICY = `
policies:
  temu-ban:
    title: Temu on the school network
    reference: "Council decision 2026/11"
    from: 2026-01-01
    networks: [school]
    block: [temu]
admin: { enabled: true, port: 0, token: "${TOKEN}", viewer_token: "${VIEWER}" }
`;
const LISTS = { ...referenceLists, temu: 'temu.com\n' };
const listsSection = (c: string) => c.replace('  wechat: { file: lists/wechat.txt }\n', '  wechat: { file: lists/wechat.txt }\n  temu: { file: lists/temu.txt }\n');

function cli(h: Harness, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [BIN, '--config', h.configFile, ...args], (error, stdout, stderr) => {
      res({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr });
    });
  });
}

const ask = (h: Harness, name: string, client: string): Promise<DecodedResponse> => resolve(h.udp, name, 'A', { localAddress: client, edns: {} });
const rcodeOf = async (h: Harness, name: string, client: string) => (await ask(h, name, client)).rcode;

async function metric(h: Harness, name: string): Promise<string[]> {
  const r = await fetch(`http://127.0.0.1:${h.server.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return (await r.text()).split('\n').filter((l) => l.startsWith(name));
}

let upstream: FakeUpstream;
beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  await upstream?.close();
});

describe('runtime overrides on a standalone server', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startSluice({ config: listsSection(referenceConfig(POLICY)), lists: LISTS, upstream: upstream.address });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('a timed disable of a network lets its blocks through, says so in the EDE, the log and the metrics, and ends by itself', async () => {
    expect(await rcodeOf(h, 'www.tiktok.com', '127.0.0.1')).toBe(RCODE.NXDOMAIN);
    // state_dir owned by the server's user (as systemd's StateDirectory= makes it), the CLI run as root
    const asRoot = process.getuid?.() === 0;
    if (asRoot) chownSync(join(h.dir, 'state'), 65534, 65534);
    const r = await cli(h, 'disable', '--network', 'internal', '--for', '3s', '--reason', 'login check, ticket 4711');
    // the overrides directory and file it made belong to that user too, so the server can change them
    if (asRoot) expect([statSync(join(h.dir, 'state', 'overrides')).uid, statSync(join(h.dir, 'state', 'overrides', 'overrides.json')).uid]).toEqual([65534, 65534]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^blocking disabled: network internal until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(disable-[0-9a-f]{8}\)\n/);
    expect(r.out).toContain('a running server applies it within a second');
    await until('the disable to apply', async () => (await rcodeOf(h, 'www.tiktok.com', '127.0.0.1')) === RCODE.NOERROR, 2000, 20);
    const a = await ask(h, 'disabled.tiktok.com', '127.0.0.1');
    expect(a.answers.map((x) => x.data)).toEqual(['192.0.2.1']);
    expect(a.edns?.ede?.infoCode).toBe(0);
    expect(a.edns?.ede?.text).toMatch(/^sluice: blocking disabled \(network internal\) until .*: login check, ticket 4711; would block: list tiktok, rule tiktok\.com$/);
    // another network keeps its blocks (the guest profile blocks nothing; the school's policy does)
    expect(await rcodeOf(h, 'www.temu.com', '127.0.0.3')).toBe(RCODE.NXDOMAIN);
    expect(await metric(h, 'sluice_blocking_disabled_until_timestamp_seconds{')).toEqual([
      expect.stringMatching(/^sluice_blocking_disabled_until_timestamp_seconds\{policy="\*",network="internal"\} \d+(\.\d+)?$/),
    ]);
    const logged = (await loggedEvents(h)).filter((e) => e.name === 'disabled.tiktok.com');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ decision: 'allowed', wouldBlock: true, exception: true, list: 'tiktok', rule: 'tiktok.com', network: 'internal' });
    const log = await cli(h, 'log', 'query', '--domain', 'disabled.tiktok.com');
    expect(log.out).toMatch(/disabled +disabled\.tiktok\.com +blocking disabled, would block: list tiktok \(rule tiktok\.com\)/);
    // it ends by itself, without a reload or a command
    await until('the disable to end', async () => (await rcodeOf(h, 'www.tiktok.com', '127.0.0.1')) === RCODE.NXDOMAIN, 4000, 50);
    expect(await metric(h, 'sluice_blocking_disabled_until_timestamp_seconds{')).toEqual([]);
    const audit = readFileSync(join(h.dir, 'state', 'audit.log'), 'utf8');
    expect(audit).toMatch(/"command":"disable network internal until .*","list":"@overrides","domains":\[\],"reason":"login check, ticket 4711"/);
  });

  it('disabling one policy leaves the profile lists and the other networks blocking; enable ends it early', async () => {
    const r = await cli(h, 'disable', '--policy', 'temu-ban', '--for', '10m', '--reason', 'supplier call');
    expect(r.code).toBe(0);
    await until('the policy disable', async () => (await rcodeOf(h, 'www.temu.com', '127.0.0.3')) === RCODE.NOERROR, 2000, 20);
    const a = await ask(h, 'shop.temu.com', '127.0.0.3');
    expect(a.edns?.ede?.text).toContain('(policy temu-ban) until');
    expect(a.edns?.ede?.text).toContain('would block: policy temu-ban, list temu, rule temu.com');
    expect(await rcodeOf(h, 'www.tiktok.com', '127.0.0.1')).toBe(RCODE.NXDOMAIN);
    const status = await cli(h, 'policy', 'status');
    expect(status.out).toMatch(/temu-ban +DISABLED until .* \(supplier call\)/);
    const none = await cli(h, 'enable', '--policy', 'temu-ban', '--network', 'school');
    expect(none.out).toBe('nothing to enable: no disable in force with that scope\n');
    const e = await cli(h, 'enable', '--policy', 'temu-ban', '--reason', 'call done');
    expect(e.err).toBe('');
    expect(e.out).toMatch(/^blocking enabled again: policy temu-ban \(disable-[0-9a-f]{8}\)\n/);
    await until('the policy to block again', async () => (await rcodeOf(h, 'www.temu.com', '127.0.0.3')) === RCODE.NXDOMAIN, 2000, 20);
  });

  it('allow lets one client through a block, deny blocks a name for one network, and overrides lists and removes them', async () => {
    const allow = await cli(h, 'allow', 'www.tiktok.com', '--client', '127.0.0.5', '--until', '2099-01-31', '--reason', 'campaign', '--approved-by', 'CISO');
    expect(allow.err).toBe('');
    expect(allow.out).toMatch(/^allowed: www\.tiktok\.com for client 127\.0\.0\.5 until 2099-02-01T00:00:00Z \(allow-[0-9a-f]{8}\)\n/);
    const deny = await cli(h, 'deny', 'Tracker.Example.NET.', '--network', 'guest', '--reason', 'seen in the log');
    expect(deny.code).toBe(0);
    await until(
      'both entries',
      async () => (await rcodeOf(h, 'cdn.www.tiktok.com', '127.0.0.5')) === RCODE.NOERROR && (await rcodeOf(h, 'a.tracker.example.net', '127.0.0.2')) === RCODE.NXDOMAIN,
      2000,
      20,
    );
    // `sluice check` explains both as the server decides them
    const checked = await cli(h, 'check', 'cdn.www.tiktok.com', '--client', '127.0.0.5');
    expect(checked.code).toBe(0);
    expect(checked.out).toMatch(
      /^ {2}override {3}allow entry allow-[0-9a-f]{8} for client 127\.0\.0\.5 \(campaign, approved by CISO, until 2099-02-01T00:00:00\.000Z\), beating list tiktok, rule tiktok\.com$/m,
    );
    const blockedByDeny = await cli(h, 'check', 'tracker.example.net', '--client', '127.0.0.2');
    expect(blockedByDeny.code).toBe(1);
    expect(blockedByDeny.out).toMatch(/^ {2}override {3}blocked by a deny entry for network guest: seen in the log$/m);
    // the allow covers that name and below for that client only
    expect(await rcodeOf(h, 'www.tiktok.com', '127.0.0.1')).toBe(RCODE.NXDOMAIN);
    expect(await rcodeOf(h, 'api.tiktok.com', '127.0.0.5')).toBe(RCODE.NXDOMAIN);
    // the deny answers as the profile's blocks do, with its own EDE; other networks are untouched
    const denied = await ask(h, 'tracker.example.net', '127.0.0.2');
    expect(denied.rcode).toBe(RCODE.NXDOMAIN);
    expect(denied.edns?.ede).toEqual({ infoCode: 15, text: 'sluice: blocked by a deny entry for network guest: seen in the log' });
    expect(await rcodeOf(h, 'tracker.example.net', '127.0.0.1')).toBe(RCODE.NOERROR);
    const events = await loggedEvents(h);
    // the last of each: the wait above asked before the entries applied too
    expect(events.findLast((e) => e.name === 'cdn.www.tiktok.com' && e.client === '127.0.0.5')).toMatchObject({ decision: 'allowed', exception: true, wouldBlock: false, list: 'tiktok' });
    expect(events.findLast((e) => e.name === 'a.tracker.example.net')).toMatchObject({ decision: 'blocked', list: 'sluice-deny', rule: 'tracker.example.net' });
    const listed = await cli(h, 'overrides');
    expect(listed.out.split('\n')[0]).toMatch(/^ID +KIND +NAME +SCOPE +UNTIL +BY +REASON$/);
    expect(listed.out).toMatch(/allow-[0-9a-f]{8} +allow +www\.tiktok\.com +client 127\.0\.0\.5 +2099-.* approved by CISO +campaign/);
    expect(listed.out).toMatch(/deny-[0-9a-f]{8} +deny +tracker\.example\.net +network guest +no end/);
    const ids = (JSON.parse((await cli(h, 'overrides', '--json')).out) as { id: string; kind: string }[]).filter((e) => e.kind !== 'disable').map((e) => e.id);
    expect(ids).toHaveLength(2);
    const removed = await cli(h, 'overrides', 'remove', ...ids, '--reason', 'campaign over');
    expect(removed.err).toBe('');
    await until(
      'the entries to go',
      async () => (await rcodeOf(h, 'www.tiktok.com', '127.0.0.5')) === RCODE.NXDOMAIN && (await rcodeOf(h, 'tracker.example.net', '127.0.0.2')) === RCODE.NOERROR,
      2000,
      20,
    );
    expect((await cli(h, 'overrides', 'remove', 'allow-00000000')).err).toContain('no override allow-00000000');
  });

  it('the admin API adds (in force when it answers), lists and removes overrides; the viewer token only reads', async () => {
    const api = (method: string, path: string, token: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${h.server.adminPort}${path}`, { method, headers: { authorization: `Bearer ${token}` }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const denied = await api('POST', '/api/admin/overrides', VIEWER, { kind: 'disable', for: '5m', reason: 'x' });
    expect(denied.status).toBe(403);
    const added = await api('POST', '/api/admin/overrides', TOKEN, { kind: 'deny', domain: 'api-denied.example.org', network: 'guest', reason: 'via the API', by: 'bob' });
    expect(added.status).toBe(201);
    const body = (await added.json()) as { entry: { id: string; by: string }; stored: string };
    expect(body).toMatchObject({ stored: 'file', entry: { kind: 'deny', domain: 'api-denied.example.org', by: 'bob (admin API)' } });
    // reloaded before the answer: in force now
    expect(await rcodeOf(h, 'api-denied.example.org', '127.0.0.2')).toBe(RCODE.NXDOMAIN);
    const listed = (await (await api('GET', '/api/overrides', VIEWER)).json()) as { overrides: { id: string; active: boolean }[] };
    // ended ones stay listed for a week, marked inactive
    expect(listed.overrides.filter((e) => e.active)).toEqual([expect.objectContaining({ id: body.entry.id, active: true })]);
    expect(listed.overrides.filter((e) => !e.active).length).toBeGreaterThan(0);
    expect((await api('DELETE', `/api/admin/overrides/${body.entry.id}`, VIEWER)).status).toBe(403);
    expect((await api('DELETE', `/api/admin/overrides/${body.entry.id}?reason=done`, TOKEN)).status).toBe(200);
    expect(await rcodeOf(h, 'api-denied.example.org', '127.0.0.2')).toBe(RCODE.NOERROR);
    expect((await api('DELETE', '/api/admin/overrides/deny-00000000', TOKEN)).status).toBe(404);
    const bad = await api('POST', '/api/admin/overrides', TOKEN, { kind: 'disable', reason: 'no end' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'give --for DURATION or --until DATE: a disable always ends by itself', usage: true });
    expect((await api('POST', '/api/admin/overrides', TOKEN, { kind: 'deny', domain: 'co.uk', network: 'guest', reason: 'x' })).status).toBe(422);
    expect((await api('POST', '/api/admin/overrides', TOKEN, { kind: 'pause' })).status).toBe(400);
    expect((await api('POST', '/api/admin/overrides', TOKEN, { kind: 'allow', domain: 'x.example', network: 'guest', reason: 'x', colour: 'red' })).status).toBe(400);
    expect(readFileSync(join(h.dir, 'state', 'audit.log'), 'utf8')).toMatch(/"command":"deny api-denied\.example\.org for network guest until no end \(deny-[0-9a-f]{8}\) by bob \(admin API\)"/);
  });

  it('refuses what would be unsafe or vague, changing nothing', async () => {
    const before = readFileSync(join(h.dir, 'state', 'overrides', 'overrides.json'), 'utf8');
    expect((await cli(h, 'disable', '--reason', 'x')).err).toContain('give --for DURATION or --until DATE');
    expect((await cli(h, 'disable', '--for', '5 minutes', '--reason', 'x')).err).toContain('--for: "5 minutes" is not a duration');
    expect((await cli(h, 'disable', '--policy', 'nope', '--for', '5m', '--reason', 'x')).err).toContain('no policy "nope" in the config (known: temu-ban)');
    expect((await cli(h, 'allow', 'x.example', '--reason', 'x')).err).toContain('give --network NAME or --client ADDRESS');
    expect((await cli(h, 'allow', 'x.example', '--client', '10.0.0.300', '--reason', 'x')).err).toContain('is not an address or a CIDR range');
    expect((await cli(h, 'deny', 'co.uk', '--network', 'guest', '--reason', 'x')).code).toBe(1);
    expect((await cli(h, 'allow', 'x.example', '--network', 'guest', '--until', '2020-01-01', '--reason', 'x')).err).toContain('is in the past');
    expect((await cli(h, 'deny', 'x.example', '--network', 'guest')).code).toBe(2); // --reason is required
    expect(readFileSync(join(h.dir, 'state', 'overrides', 'overrides.json'), 'utf8')).toBe(before);
  });

  it('a broken overrides file is refused by the reload and the server keeps what it enforced', async () => {
    const file = join(h.dir, 'state', 'overrides', 'overrides.json');
    const version = h.server.version;
    const allow = await cli(h, 'allow', 'keep.tiktok.com', '--network', 'internal', '--reason', 'kept');
    expect(allow.code).toBe(0);
    await until('the allow', async () => (await rcodeOf(h, 'keep.tiktok.com', '127.0.0.1')) === RCODE.NOERROR, 2000, 20);
    expect(h.server.version).not.toBe(version);
    const good = h.server.version;
    writeFileSync(file, '{"overrides": [{"kind": "allow"}]}');
    const reload = await cli(h, 'reload', '--json', '--admin', `http://127.0.0.1:${h.server.adminPort}`);
    expect(reload.code).toBe(1);
    expect(reload.out).toContain('overrides.json: overrides.0');
    expect(h.server.version).toBe(good);
    expect(await rcodeOf(h, 'keep.tiktok.com', '127.0.0.1')).toBe(RCODE.NOERROR);
  });
});

describe('runtime overrides shared through redis', () => {
  let redis: TestRedis;
  let a: Harness;
  let b: Harness;
  const prefix = `ov${process.pid}:`;
  const start = (instance: string) =>
    startSluice({
      config: listsSection(referenceConfig(POLICY)) + `redis: { url: "${redis.url}", key_prefix: "${prefix}", heartbeat_ms: 200 }\nquery_log: { instance: ${instance} }\n`,
      lists: LISTS,
      upstream: upstream.address,
    });
  beforeAll(async () => {
    redis = await startRedis();
    a = await start('alpha');
    b = await start('beta');
    await until('both instances in redis', () => a.server.shared!.up && b.server.shared!.up, 5000);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await redis?.stop();
  });

  it('a disable made through one instance is enforced by both within a second, confirmed, and ends by itself', async () => {
    const r = await cli(a, 'disable', '--network', 'internal', '--for', '4s', '--reason', 'shared check');
    expect(r.err).toBe('');
    expect(r.out).toMatch(/stored in redis \(shared edit \d+\); applied by alpha, beta\n$/);
    // confirmed by both before the command returned
    expect(await rcodeOf(b, 'www.tiktok.com', '127.0.0.1')).toBe(RCODE.NOERROR);
    expect(await rcodeOf(a, 'www.tiktok.com', '127.0.0.1')).toBe(RCODE.NOERROR);
    const listed = JSON.parse((await cli(b, 'overrides', '--json')).out) as { kind: string; network: string }[];
    expect(listed).toMatchObject([{ kind: 'disable', network: 'internal' }]);
    await until(
      'the shared disable to end',
      async () => (await rcodeOf(b, 'www.tiktok.com', '127.0.0.1')) === RCODE.NXDOMAIN && (await rcodeOf(a, 'www.tiktok.com', '127.0.0.1')) === RCODE.NXDOMAIN,
      5000,
      50,
    );
  });

  it('allow and deny reach both instances within a second; enable and remove too', async () => {
    const t0 = Date.now();
    const allow = await cli(b, 'allow', 'www.tiktok.com', '--network', 'internal', '--reason', 'shared allow');
    expect(allow.out).toContain('applied by alpha, beta');
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await rcodeOf(a, 'www.tiktok.com', '127.0.0.1')).toBe(RCODE.NOERROR);
    const deny = await cli(a, 'deny', 'shared.example.org', '--client', '127.0.0.2', '--reason', 'shared deny');
    expect(deny.out).toContain('applied by alpha, beta');
    expect(await rcodeOf(b, 'shared.example.org', '127.0.0.2')).toBe(RCODE.NXDOMAIN);
    const disable = await cli(a, 'disable', '--for', '1h', '--reason', 'everything');
    expect(disable.out).toContain('applied by alpha, beta');
    expect(await rcodeOf(b, 'www.temu.com', '127.0.0.3')).toBe(RCODE.NOERROR);
    const enable = await cli(b, 'enable');
    expect(enable.out).toContain('applied by alpha, beta');
    expect(await rcodeOf(a, 'www.temu.com', '127.0.0.3')).toBe(RCODE.NXDOMAIN);
    const ids = (JSON.parse((await cli(a, 'overrides', '--json')).out) as { id: string }[]).map((e) => e.id);
    expect(ids).toHaveLength(2);
    const removed = await cli(b, 'overrides', 'remove', ...ids);
    expect(removed.out).toContain('applied by alpha, beta');
    expect(await rcodeOf(a, 'www.tiktok.com', '127.0.0.1')).toBe(RCODE.NXDOMAIN);
    expect(await rcodeOf(b, 'shared.example.org', '127.0.0.2')).toBe(RCODE.NOERROR);
    expect((await cli(a, 'overrides')).out).toBe('no runtime overrides in force\n');
  });
});
