// `sluice lists update` against a url list served by a local HTTP server: first download,
// conditional requests (304), dry runs, and the guard against a download that loses most of a list.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, makeWorkspace, startListServer, type ListServer, type Workspace } from './cli-workspace.js';

let ws: Workspace;
let http: ListServer;
const domains = (names: string[]) => `# remote ads list\n${names.map((n) => `${n}\n`).join('')}`;
const v1 = Array.from({ length: 10 }, (_, i) => `ad${i}.example`);
const copy = () => ws.read('var/lists/remote-ads.txt');
const meta = () => JSON.parse(ws.read('var/lists/remote-ads.meta.json')) as Record<string, unknown>;

beforeAll(async () => {
  http = await startListServer();
  ws = makeWorkspace();
  const cfg = ws.read('config/sluice.yaml');
  expect(cfg).toMatch(/^lists:\n/m);
  ws.write('config/sluice.yaml', cfg.replace(/^lists:\n/m, `lists:\n  remote-ads: { url: "${http.url('/ads.txt')}", refresh_minutes: 60 }\n`));
});
afterAll(async () => {
  ws?.remove();
  await http?.close();
});

describe('sluice lists update', () => {
  it('downloads a url list the first time, keeping the copy and its validators in state_dir', async () => {
    http.serve('/ads.txt', domains(v1), '"v1"');
    const r = await ws.sluice('lists', 'update', 'remote-ads');
    expect(r.stderr).toBe('');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('remote-ads: updated to 10 entries (+10 -0)');
    for (const d of v1) expect(r.stdout).toContain(`  + ${d}\n`);
    expect(copy()).toBe(domains(v1));
    expect(meta()).toMatchObject({ url: http.url('/ads.txt'), etag: '"v1"', entries: 10 });
    expect(ws.audit().at(-1)).toMatchObject({ command: 'lists update', list: 'remote-ads', result: 'remote-ads: updated to 10 entries (+10 -0)' });

    const show = await ws.sluice('lists', 'show', 'remote-ads');
    expect(show.stdout).toBe(v1.join('\n') + '\n');
    const lists = JSON.parse((await ws.sluice('lists', '--json')).stdout) as { lists: { name: string; source: string; entries: number; updated?: string }[] };
    expect(lists.lists.find((l) => l.name === 'remote-ads')).toMatchObject({ source: http.url('/ads.txt'), entries: 10, updated: meta().fetchedAt });
  });

  it('asks with If-None-Match the second time and keeps the copy on 304', async () => {
    const before = readFileSync(ws.path('var/lists/remote-ads.txt'));
    const auditBefore = ws.audit().length;
    http.requests.length = 0;
    const r = await ws.sluice('lists', 'update');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^remote-ads: not modified since \d{4}-\d\d-\d\dT/);
    expect(http.requests).toEqual([{ path: '/ads.txt', ifNoneMatch: '"v1"', status: 304 }]);
    expect(readFileSync(ws.path('var/lists/remote-ads.txt')).equals(before)).toBe(true);
    expect(ws.audit()).toHaveLength(auditBefore);
  });

  it('--dry-run prints the + and - lines of a new version and changes nothing', async () => {
    const v2 = [...v1.slice(1), 'new-a.example', 'new-b.example'];
    http.serve('/ads.txt', domains(v2), '"v2"');
    const copyBefore = copy();
    const metaBefore = ws.read('var/lists/remote-ads.meta.json');
    const auditBefore = ws.audit().length;
    const r = await ws.sluice('lists', 'update', 'remote-ads', '--dry-run');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('[dry run] remote-ads: would update to 11 entries (+2 -1)\n  + new-a.example\n  + new-b.example\n  - ad0.example\n');
    expect(copy()).toBe(copyBefore);
    expect(ws.read('var/lists/remote-ads.meta.json')).toBe(metaBefore);
    expect(ws.audit()).toHaveLength(auditBefore);

    const json = await ws.sluice('lists', 'update', 'remote-ads', '--dry-run', '--json');
    expect(JSON.parse(json.stdout)).toEqual([
      { name: 'remote-ads', status: 'updated', message: 'remote-ads: would update to 11 entries (+2 -1)', added: ['new-a.example', 'new-b.example'], removed: ['ad0.example'], problems: 0 },
    ]);
    expect(copy()).toBe(copyBefore);
  });

  it('rejects a download that loses more than half of the list (exit 1) and accepts it with --force', async () => {
    const small = ['ad1.example', 'ad2.example', 'ad3.example'];
    http.serve('/ads.txt', domains(small), '"v3"');
    const before = copy();
    const rejected = await ws.sluice('lists', 'update', 'remote-ads');
    expect(rejected.code, rejected.stderr).toBe(1);
    expect(rejected.stdout).toContain('remote-ads: new copy has 3 entries against 10 now, more than half would be lost');
    expect(copy()).toBe(before);
    expect(meta().etag).toBe('"v1"');

    const forced = await ws.sluice('lists', 'update', 'remote-ads', '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout.split('\n')[0]).toBe('remote-ads: updated to 3 entries (+0 -7)');
    expect(forced.stdout).toContain('  - ad0.example\n');
    expect(copy()).toBe(domains(small));
    expect(meta()).toMatchObject({ etag: '"v3"', entries: 3 });
  });

  it('fails with exit 1 when the source answers 404 or is unreachable, keeping the last good copy', async () => {
    const before = copy();
    const notFound = await withUrl(http.url('/gone.txt'), () => ws.sluice('lists', 'update', 'remote-ads'));
    expect(notFound.code, notFound.stderr).toBe(1);
    expect(notFound.stdout).toBe('remote-ads: HTTP 404 Not Found, keeping the cached copy\n');
    const refused = await withUrl(`http://127.0.0.1:${await closedPort()}/ads.txt`, () => ws.sluice('lists', 'update', 'remote-ads'));
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stdout).toMatch(/^remote-ads: download failed \(.*ECONNREFUSED\), keeping the cached copy\n$/);
    expect(copy()).toBe(before);
  });

  it('refuses to edit a url list by hand and to update a list that has no url', async () => {
    const add = await ws.sluice('lists', 'add', 'remote-ads', 'x.example');
    expect(add.code, add.stderr).toBe(1);
    expect(add.stderr).toContain(`list "remote-ads" is downloaded from ${http.url('/ads.txt')}`);
    const local = await ws.sluice('lists', 'update', 'tiktok');
    expect(local.code, local.stderr).toBe(1);
    expect(local.stderr).toContain('no url list named "tiktok"');
  });
});

/** Run `fn` with the url list pointing at `url`, then restore the config. */
async function withUrl<T>(url: string, fn: () => Promise<T>): Promise<T> {
  const cfg = ws.read('config/sluice.yaml');
  ws.write('config/sluice.yaml', cfg.replace(http.url('/ads.txt'), url));
  try {
    return await fn();
  } finally {
    ws.write('config/sluice.yaml', cfg);
  }
}
