// A local list file that is truncated, overwritten by an error page or garbage, or loses most of
// its entries is not swapped in: the last good state keeps blocking, and the log, the metrics,
// /healthz, `sluice health`, `sluice lists` and `sluice config validate` say so until the file is
// fixed or `sluice lists accept` puts it in force. And a rule naming a public suffix (`com`) or a
// reserved name is never loaded, nor added by `sluice lists add` without --allow-suffix.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthReport } from '../../src/cli/health.js';
import { silentLogger } from '../../src/logging/logger.js';
import { SluiceServer } from '../../src/server/sluice-server.js';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';
import { runSluice } from './cli-workspace.js';

const TOKEN = 'list-safety-token-0123456789';
const config = (extra = '') => referenceConfig(`admin: { enabled: true, port: 0, token: "${TOKEN}" }\n${extra}`);

let upstream: FakeUpstream;
const harnesses: Harness[] = [];
beforeAll(async () => {
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  for (const h of harnesses) await h.stop();
  await upstream?.close();
});

async function start(lists: Record<string, string> = referenceLists, extra = ''): Promise<Harness> {
  const h = await startSluice({ config: config(extra), lists, upstream: upstream.address, captureLogs: true });
  harnesses.push(h);
  return h;
}

const rcode = async (h: Harness, name: string) => (await resolve(h.udp, name, 'A', { localAddress: '127.0.0.1' })).rcode;
const sluice = (h: Harness, ...args: string[]) => runSluice(['--config', h.configFile, ...args], h.dir);

async function metric(h: Harness, name: string, list: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${h.server.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name}{list="${list}"} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

async function healthz(h: Harness): Promise<{ ok: boolean; lists: { refused: { name: string; source: string; reason: string }[] } }> {
  const res = await fetch(`http://127.0.0.1:${h.server.adminPort}/healthz`);
  return (await res.json()) as { ok: boolean; lists: { refused: { name: string; source: string; reason: string }[] } };
}

const refusalLogs = (h: Harness, list: string) => h.logs.filter((l) => l.level === 50 && l.list === list && String(l.msg).includes('not activated'));

describe('a local list file that would lift a ban', () => {
  it('truncated to 0 bytes, keeps blocking and says so in the log, metrics, /healthz, sluice health, sluice lists and config validate', async () => {
    const h = await start();
    expect(await rcode(h, 'www.tiktok.com')).toBe(RCODE.NXDOMAIN);
    expect(await metric(h, 'sluice_list_refused', 'tiktok')).toBe(0);

    h.writeList('tiktok', '');
    expect(await h.server.reload()).toBe(true);
    expect(await rcode(h, 'www.tiktok.com')).toBe(RCODE.NXDOMAIN);
    expect(await rcode(h, 'v16.tiktokcdn.com')).toBe(RCODE.NXDOMAIN);

    const [logged] = refusalLogs(h, 'tiktok');
    expect(logged?.msg).toMatch(/lists\/tiktok\.txt: list tiktok not activated: it is empty \(0 bytes\); the last good state had 3 entries; still serving its last good state \(3 entries\)/);
    expect(logged?.msg).toContain('sluice lists accept tiktok');

    expect(await metric(h, 'sluice_list_refused', 'tiktok')).toBe(1);
    expect(await metric(h, 'sluice_list_refused_total', 'tiktok')).toBe(1);
    expect(await metric(h, 'sluice_list_refused', 'wechat')).toBe(0);
    // Another reload of the same refused file is the same refusal, not a new one.
    expect(await h.server.reload()).toBe(true);
    expect(await metric(h, 'sluice_list_refused_total', 'tiktok')).toBe(1);

    const health = await healthz(h);
    expect(health.ok).toBe(true);
    expect(health.lists.refused).toEqual([{ name: 'tiktok', source: join(h.dir, 'lists/tiktok.txt'), reason: expect.stringMatching(/^it is empty \(0 bytes\)/) as unknown as string }]);

    const admin = `http://127.0.0.1:${h.server.adminPort}`;
    const dns = `${h.udp.host}:${h.udp.port}`;
    const json = await runSluice(['health', '--config', h.configFile, '--server', dns, '--admin', admin, '--json'], h.dir);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as HealthReport).warnings).toEqual([expect.stringMatching(/^list tiktok refused: it is empty/)]);
    const text = await runSluice(['health', '--config', h.configFile, '--server', dns, '--admin', admin], h.dir);
    expect(text.stdout).toMatch(/^warn +list tiktok refused: it is empty/m);
    expect(text.stdout.trim().split('\n').at(-1)).toBe('healthy, with 1 warning');

    const table = await sluice(h, 'lists');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^note: list tiktok is REFUSED: it is empty \(0 bytes\).*serving its last good state, saved in state_dir \(3 entries\).*sluice lists accept tiktok/m);
    const rows = (JSON.parse((await sluice(h, 'lists', '--json')).stdout) as { lists: { name: string; entries: number; status: string; refused?: string }[] }).lists;
    expect(rows.find((l) => l.name === 'tiktok')).toMatchObject({ entries: 3, status: 'refused', refused: expect.stringMatching(/^it is empty/) as unknown as string });
    expect(rows.find((l) => l.name === 'wechat')).toMatchObject({ status: 'ok' });

    const validate = await sluice(h, 'config', 'validate');
    expect(validate.code).toBe(1);
    expect(validate.stderr).toMatch(/lists\/tiktok\.txt: list tiktok would not be activated: it is empty/);
  });

  it('overwritten by an HTML error page, is refused on the file watch alone', async () => {
    const h = await start();
    h.writeList('wechat', '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>\n');
    await until('the file watch to refuse the wechat list', () => refusalLogs(h, 'wechat').length > 0, 10_000);
    expect(refusalLogs(h, 'wechat')[0]?.reason).toMatch(/HTML or XML page/);
    expect(await rcode(h, 'wechat.com')).toBe(RCODE.NXDOMAIN);
    expect(await rcode(h, 'weixin.qq.com')).toBe(RCODE.NXDOMAIN);
  });

  it('overwritten by binary garbage, or by a copy that lost more than half of it, is refused', async () => {
    const h = await start({ ...referenceLists, tiktok: Array.from({ length: 10 }, (_, i) => `app${i}.tiktok.com`).join('\n') + '\ntiktok.com\n' });
    h.writeList('wechat', randomBytes(4096).toString('latin1'));
    h.writeList('tiktok', 'app1.tiktok.com\napp2.tiktok.com\n');
    expect(await h.server.reload()).toBe(true);
    expect(refusalLogs(h, 'wechat')[0]?.reason).toMatch(/binary file/);
    expect(refusalLogs(h, 'tiktok')[0]?.reason).toBe('it has 2 entries against 11 in the last good state: more than half would be lost');
    expect(await rcode(h, 'wechat.com')).toBe(RCODE.NXDOMAIN);
    expect(await rcode(h, 'www.tiktok.com')).toBe(RCODE.NXDOMAIN);
    // A smaller loss is an ordinary edit.
    h.writeList('tiktok', Array.from({ length: 6 }, (_, i) => `app${i}.tiktok.com`).join('\n') + '\n');
    expect(await h.server.reload()).toBe(true);
    expect(await rcode(h, 'www.tiktok.com')).toBe(RCODE.NOERROR);
    expect(await rcode(h, 'app5.tiktok.com')).toBe(RCODE.NXDOMAIN);
    expect(await metric(h, 'sluice_list_refused', 'tiktok')).toBe(0);
  });

  it('found truncated at the next start (a crash), is refused and the copy saved in state_dir keeps blocking', async () => {
    const h = await start();
    h.writeList('tiktok', '');
    const again = await SluiceServer.start({ configFile: h.configFile, logger: silentLogger() });
    try {
      expect((await resolve({ host: '127.0.0.1', port: again.port('udp') }, 'www.tiktok.com', 'A', { localAddress: '127.0.0.1' })).rcode).toBe(RCODE.NXDOMAIN);
      const res = await fetch(`http://127.0.0.1:${again.adminPort}/healthz`);
      expect(((await res.json()) as { lists: { refused: { name: string }[] } }).lists.refused.map((l) => l.name)).toEqual(['tiktok']);
    } finally {
      await again.stop(500);
    }
  });

  it('`sluice lists accept` puts the file in force, in the audit log, and the running server applies it at once', async () => {
    const h = await start();
    h.writeList('tiktok', '# emptied on purpose\n');
    expect(await h.server.reload()).toBe(true);
    expect(await rcode(h, 'www.tiktok.com')).toBe(RCODE.NXDOMAIN);

    const r = await sluice(h, 'lists', 'accept', 'tiktok', '--reason', 'ban lifted, ticket 4712');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^tiktok: accepted .*tiktok\.txt as it is \(0 entries; it was refused: it has no entries; the last good state had 3 entries\); a running server applies it within a second/,
    );
    await until('the server to apply the accepted list', async () => (await rcode(h, 'www.tiktok.com')) === RCODE.NOERROR, 10_000);
    expect(await metric(h, 'sluice_list_refused', 'tiktok')).toBe(0);
    expect(await metric(h, 'sluice_list_refused_total', 'tiktok')).toBe(1);
    expect((await healthz(h)).lists.refused).toEqual([]);

    const audit = readFileSync(join(h.dir, 'state/audit.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(audit.at(-1)).toMatchObject({
      command: 'lists accept',
      list: 'tiktok',
      domains: [],
      reason: 'ban lifted, ticket 4712',
      result: expect.stringMatching(/^accepted 0 entries \(sha256 [0-9a-f]{12}\), refused before: it has no entries/) as unknown as string,
    });
    // Nothing is left refused for the CLI either.
    expect((await sluice(h, 'config', 'validate')).code).toBe(0);
    expect((await sluice(h, 'lists', 'accept', 'tiktok')).stdout).toMatch(/is in force already; nothing to accept/);

    // The acceptance was of that emptying: filled again and emptied again is a new loss.
    h.writeList('tiktok', referenceLists.tiktok);
    expect(await h.server.reload()).toBe(true);
    h.writeList('tiktok', '# emptied on purpose\n');
    expect(await h.server.reload()).toBe(true);
    expect(await rcode(h, 'www.tiktok.com')).toBe(RCODE.NXDOMAIN);
    expect(await metric(h, 'sluice_list_refused_total', 'tiktok')).toBe(2);
  });

  it("`sluice lists remove` of most of a list is the admin's edit: applied, not refused", async () => {
    const h = await start();
    const r = await sluice(h, 'lists', 'remove', 'tiktok', 'tiktok.com', 'tiktokcdn.com', '--file');
    expect(r.code, r.stderr).toBe(0);
    await until('the server to apply the removal', async () => (await rcode(h, 'www.tiktok.com')) === RCODE.NOERROR, 10_000);
    expect(refusalLogs(h, 'tiktok')).toEqual([]);
    expect(await rcode(h, 'x.byteoversea.com')).toBe(RCODE.NXDOMAIN);
    // and the CLI, judging the file against the state the server saved, does not call it refused
    const rows = (JSON.parse((await sluice(h, 'lists', '--json')).stdout) as { lists: { name: string; entries: number; status: string }[] }).lists;
    expect(rows.find((l) => l.name === 'tiktok')).toMatchObject({ entries: 1, status: 'ok' });
  });

  it('empty by design at the first start (a new site list of comments), loads without a refusal', async () => {
    const h = await start({ ...referenceLists, tiktok: '# tiktok: local list\n# One domain per line.\n' });
    expect(refusalLogs(h, 'tiktok')).toEqual([]);
    expect(await metric(h, 'sluice_list_refused', 'tiktok')).toBe(0);
    expect(existsSync(join(h.dir, 'state/list-state/tiktok.json'))).toBe(true);
  });
});

describe('a rule naming a public suffix or reserved name', () => {
  it('in a list file is skipped with its line, the rest loads, and config validate fails naming file:line', async () => {
    const h = await start({ ...referenceLists, tiktok: 'tiktok.com\ncom\n*.co.uk\nlocalhost\n' });
    expect(await rcode(h, 'www.tiktok.com')).toBe(RCODE.NXDOMAIN);
    expect(await rcode(h, 'www.google.com')).toBe(RCODE.NOERROR);
    expect(await rcode(h, 'www.bbc.co.uk')).toBe(RCODE.NOERROR);
    const warned = h.logs.filter((l) => l.level === 40 && l.file === join(h.dir, 'lists/tiktok.txt')).map((l) => l.line);
    expect(warned).toEqual([2, 3, 4]);

    const v = await sluice(h, 'config', 'validate');
    expect(v.code).toBe(1);
    expect(v.stdout).toBe('');
    const file = join(h.dir, 'lists/tiktok.txt');
    expect(v.stderr).toContain(`${file}:2: "com" is a public suffix (ICANN section of the Public Suffix List)`);
    expect(v.stderr).toContain(`${file}:3: "co.uk" is a public suffix`);
    expect(v.stderr).toContain(`${file}:4: "localhost" is reserved for loopback (RFC 6761)`);
  });

  it('is refused by `sluice lists add` unless --allow-suffix, which marks the line so that the server loads it', async () => {
    const h = await start();
    const file = join(h.dir, 'lists/tiktok.txt');
    for (const name of ['com', '*.com', 'co.uk', 'github.io', 'localhost']) {
      const r = await sluice(h, 'lists', 'add', 'tiktok', name, '--file');
      expect(r.code, name).toBe(1);
      expect(r.stderr).toMatch(/nothing changed: .* give --allow-suffix if that is meant/);
    }
    expect(readFileSync(file, 'utf8')).toBe(referenceLists.tiktok);

    const r = await sluice(h, 'lists', 'add', 'tiktok', 'xyz', '--file', '--allow-suffix', '--reason', 'no .xyz at all');
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/^xyz {2}# allow-suffix; added \d{4}-\d\d-\d\d by .*: no \.xyz at all$/m);
    await until('the server to load the allowed suffix', async () => (await rcode(h, 'ads.example.xyz')) === RCODE.NXDOMAIN, 10_000);
    expect((await sluice(h, 'config', 'validate')).code).toBe(0);
  });
});

it('a list written by the server keeps its copy in sync (state_dir/list-state)', async () => {
  const h = await start();
  h.writeList('tiktok', referenceLists.tiktok + 'temu.com\n');
  expect(await h.server.reload()).toBe(true);
  expect(readFileSync(join(h.dir, 'state/list-state/tiktok.txt'), 'utf8')).toBe(referenceLists.tiktok + 'temu.com\n');
  writeFileSync(join(h.dir, 'lists/tiktok.txt'), '');
  expect(await h.server.reload()).toBe(true);
  expect(readFileSync(join(h.dir, 'state/list-state/tiktok.txt'), 'utf8')).toBe(referenceLists.tiktok + 'temu.com\n');
});
