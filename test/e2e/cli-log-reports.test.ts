// `sluice report devices` and `sluice report bypass` as a user runs them: the real binary against
// a running server's admin API, and against the log files when the server is not reachable.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, runSluice } from './cli-workspace.js';
import { ADMIN_LINE, config, startFixture, TOKEN, type Fixture } from './querylog-fixture.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

const sluice = (...args: string[]) => runSluice(['--config', f.h.configFile, ...args], f.h.dir);
/** The rows of a report's JSON (`{ covers, rows }`). */
const json = <T>(out: { code: number | null; stdout: string; stderr: string }): T => {
  expect(out.stderr).toBe('');
  expect(out.code).toBe(0);
  return (JSON.parse(out.stdout) as { rows: T }).rows;
};
/** The fixture's config without a store: the API and the files, as before there was one. */
const noStore = (c: string) => c.replace('  instance: fixture', '  instance: fixture\n  store: { kind: none }');
const guest = (rows: { client: string }[]) => rows.map((r) => ({ ...r, client: r.client.replace(/^p:[0-9a-f]{16}$/, 'P') }));

const DEVICES = [
  { network: 'guest', client: 'P', policy: 'app-ban', list: 'tiktok', app: null, count: 1, firstSeen: '2026-12-01T12:06:00.000Z', lastSeen: '2026-12-01T12:06:00.000Z', names: ['tiktok.com'] },
  {
    network: 'internal',
    client: '127.0.0.1',
    policy: 'app-ban',
    list: 'tiktok',
    app: null,
    count: 1,
    firstSeen: '2026-12-01T12:00:00.000Z',
    lastSeen: '2026-12-01T12:00:00.000Z',
    names: ['www.tiktok.com'],
  },
  {
    network: 'internal',
    client: '127.0.0.1',
    policy: 'app-ban',
    list: 'turbovpn',
    app: null,
    count: 1,
    firstSeen: '2026-12-01T12:08:00.000Z',
    lastSeen: '2026-12-01T12:08:00.000Z',
    names: ['turbovpn.com'],
  },
  {
    network: 'internal',
    client: '127.0.0.5',
    policy: 'app-ban',
    list: 'tiktok',
    app: null,
    count: 1,
    firstSeen: '2026-12-01T12:04:00.000Z',
    lastSeen: '2026-12-01T12:04:00.000Z',
    names: ['v16.tiktokcdn.com'],
  },
];

const BYPASS = [
  { network: 'internal', client: '127.0.0.1', list: 'turbovpn', count: 1, blocked: 1, firstSeen: '2026-12-01T12:08:00.000Z', lastSeen: '2026-12-01T12:08:00.000Z', endpoints: ['turbovpn.com'] },
  { network: 'internal', client: '127.0.0.5', list: 'doh-bypass', count: 1, blocked: 1, firstSeen: '2026-12-01T12:05:00.000Z', lastSeen: '2026-12-01T12:05:00.000Z', endpoints: ['dns.google'] },
];

describe('sluice report devices', () => {
  it.each(['store', 'api', 'files'])('lists every device the policy blocked, per app, from the %s', async (source) => {
    const rows = json<typeof DEVICES>(await sluice('report', 'devices', '--policy', 'app-ban', '--format', 'json', '--source', source));
    expect(guest(rows)).toEqual(DEVICES);
  });

  it('narrows by network and time', async () => {
    const internal = json<typeof DEVICES>(await sluice('report', 'devices', '--policy', 'app-ban', '--network', 'internal', '--since', '2026-12-01T12:01:00Z', '--json'));
    expect(internal.map((r) => [r.client, r.list])).toEqual([
      ['127.0.0.1', 'turbovpn'],
      ['127.0.0.5', 'tiktok'],
    ]);
    // without --source: the store, which the CLI opens itself
    const none = await sluice('report', 'devices', '--policy', 'no-such-policy');
    expect(none.stdout).toBe(`no blocked queries of policy no-such-policy in the SQLite store ${join(f.h.dir, 'state', 'querylog.db')}\n`);
  });

  it('prints a table for people and CSV for spreadsheets', async () => {
    const table = await sluice('report', 'devices', '--policy', 'app-ban', '--network', 'internal');
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')).toEqual([
      'NETWORK   CLIENT     POLICY   APP       COUNT  FIRST SEEN (UTC)  LAST SEEN (UTC)   NAMES',
      'internal  127.0.0.1  app-ban  tiktok    1      2026-12-01 12:00  2026-12-01 12:00  www.tiktok.com',
      'internal  127.0.0.1  app-ban  turbovpn  1      2026-12-01 12:08  2026-12-01 12:08  turbovpn.com',
      'internal  127.0.0.5  app-ban  tiktok    1      2026-12-01 12:04  2026-12-01 12:04  v16.tiktokcdn.com',
      '',
      '2 devices, 3 blocked queries',
      '',
    ]);
    const csv = await sluice('report', 'devices', '--policy', 'app-ban', '--network', 'internal', '--format', 'csv', '--source', 'files');
    expect(csv.stdout.split('\r\n')).toEqual([
      'network,client,policy,list,app,count,firstSeen,lastSeen,names',
      'internal,127.0.0.1,app-ban,tiktok,,1,2026-12-01T12:00:00.000Z,2026-12-01T12:00:00.000Z,www.tiktok.com',
      'internal,127.0.0.1,app-ban,turbovpn,,1,2026-12-01T12:08:00.000Z,2026-12-01T12:08:00.000Z,turbovpn.com',
      'internal,127.0.0.5,app-ban,tiktok,,1,2026-12-01T12:04:00.000Z,2026-12-01T12:04:00.000Z,v16.tiktokcdn.com',
      '',
    ]);
  });
});

describe('sluice report bypass', () => {
  it.each(['store', 'api', 'files'])('lists clients that asked for DoH endpoints or VPN apps, from the %s', async (source) => {
    const rows = json<typeof BYPASS>(await sluice('report', 'bypass', '--format', 'json', '--source', source));
    expect(rows).toEqual(BYPASS);
  });

  it('prints a table and CSV, per network', async () => {
    const table = await sluice('report', 'bypass', '--network', 'internal');
    expect(table.stdout.split('\n')).toEqual([
      'NETWORK   CLIENT     LIST        COUNT  BLOCKED  FIRST SEEN (UTC)  LAST SEEN (UTC)   ENDPOINTS',
      'internal  127.0.0.1  turbovpn    1      1        2026-12-01 12:08  2026-12-01 12:08  turbovpn.com',
      'internal  127.0.0.5  doh-bypass  1      1        2026-12-01 12:05  2026-12-01 12:05  dns.google',
      '',
    ]);
    const csv = await sluice('report', 'bypass', '--format', 'csv', '--list', 'doh-bypass');
    expect(csv.stdout).toBe('network,client,list,count,blocked,firstSeen,lastSeen,endpoints\r\ninternal,127.0.0.5,doh-bypass,1,1,2026-12-01T12:05:00.000Z,2026-12-01T12:05:00.000Z,dns.google\r\n');
    const guestOnly = await sluice('report', 'bypass', '--network', 'guest');
    expect(guestOnly.stdout).toMatch(/^no queries for lists doh-bypass, turbovpn in the SQLite store/);
  });
});

describe('where the reports read from', () => {
  it("falls back to the files, saying so, when the server's API is not reachable", async () => {
    const port = await closedPort();
    const file = join(f.h.dir, 'down.yaml');
    writeFileSync(
      file,
      noStore(config)
        .replaceAll('@UPSTREAM@', f.upstream.address)
        .replace(ADMIN_LINE, ADMIN_LINE.replace('port: 0', `port: ${port}`)),
    );
    const r = await runSluice(['--config', file, 'report', 'devices', '--policy', 'app-ban', '--json'], f.h.dir);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`sluice: the admin API at http://127.0.0.1:${port} is not reachable (ECONNREFUSED); reading the log files in ${join(f.h.dir, 'state', 'querylog')}\n`);
    expect(guest((JSON.parse(r.stdout) as { rows: typeof DEVICES }).rows)).toEqual(DEVICES);
    const forced = await runSluice(['--config', file, 'report', 'bypass', '--source', 'api'], f.h.dir);
    expect(forced.code).toBe(1);
    expect(forced.stderr).toBe(`sluice: the admin API at http://127.0.0.1:${port} is not reachable (ECONNREFUSED)\n`);
  });

  it('says so when the token is wrong, instead of reading stale files', async () => {
    const file = join(f.h.dir, 'wrong-token.yaml');
    writeFileSync(file, noStore(config).replaceAll('@UPSTREAM@', f.upstream.address).replace(ADMIN_LINE, `admin: { enabled: true, port: ${f.adminPort}, token: "${TOKEN}-not" }`));
    const r = await runSluice(['--config', file, 'report', 'devices'], f.h.dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sluice: the admin API at http:\/\/127.0.0.1:\d+ refused the token \(HTTP 401\)/);
  });

  it('takes the token from the environment variable when the config has none', async () => {
    const file = join(f.h.dir, 'env-token.yaml');
    writeFileSync(file, config.replaceAll('@UPSTREAM@', f.upstream.address).replace(ADMIN_LINE, `admin: { enabled: true, port: ${f.adminPort}, token_env: SLUICE_TEST_ADMIN_TOKEN }`));
    const r = await runSluice(['--config', file, 'report', 'bypass', '--json', '--source', 'api'], f.h.dir, { SLUICE_TEST_ADMIN_TOKEN: TOKEN });
    expect(json(r)).toEqual(BYPASS);
  });
});
