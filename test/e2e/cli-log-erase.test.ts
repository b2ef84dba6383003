// `sluice log erase` as an admin answering a data subject's request: the client's events leave
// the raw events and the daily rollup of the store (checked by SQL), other clients stay, and the
// audit log records the request before it applies and the counts after.
import { Database } from '../../src/querylog/store/sqlite-driver.js';
import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { SqliteStore } from '../../src/querylog/store/sqlite-store.js';
import { makeWorkspace, type Workspace } from './cli-workspace.js';

const T0 = Date.parse('2026-11-20T09:00:00Z');
const event = (i: number, client: string): QueryEvent => ({
  time: T0 + i * 3_600_000,
  instance: 'sluice',
  client,
  network: 'internal',
  profile: 'staff',
  policy: 'app-ban',
  list: 'tiktok',
  rule: 'tiktok.com',
  name: 'www.tiktok.com',
  type: 'A',
  decision: 'blocked',
  wouldBlock: false,
  exception: false,
  cache: false,
  upstream: null,
  rcode: 3,
  answers: 0,
  durationMs: 0.1,
  transport: 'udp',
});

let w: Workspace;
beforeAll(async () => {
  w = makeWorkspace();
  mkdirSync(w.path('var'), { recursive: true });
  const store = new SqliteStore(w.path('var/querylog.db'), { instance: 'sluice', retentionDays: 3650, rollupRetentionDays: 3650, spillEvents: 1000, now: () => T0, warn: () => undefined });
  // 48 hours of one event an hour from each of two clients: two days in the rollup each.
  store.write(Array.from({ length: 48 }, (_, i) => [event(i, '10.1.2.3'), event(i, '10.9.9.9')]).flat());
  await store.close();
});
afterAll(() => w?.remove());

const count = (sql: string, ...params: unknown[]): number => {
  const db = new Database(w.path('var/querylog.db'), { readonly: true });
  try {
    return (db.prepare(sql).get(...params) as { n: number }).n;
  } finally {
    db.close();
  }
};

describe('sluice log erase', () => {
  it("removes a client's events before a date, then all of them, and audits each request", async () => {
    const before = await w.sluice('log', 'erase', '--client', '10.1.2.3', '--before', '2026-11-21', '--reason', 'request 2026-114', '--json');
    expect(before.stderr).toBe('');
    expect(before.code).toBe(0);
    // 15 events on 2026-11-20 (09:00 to 23:00); the rollup row of that day goes with them
    expect(JSON.parse(before.stdout)).toMatchObject({ client: '10.1.2.3', events: 15, rollups: 1 });
    const client = "(SELECT id FROM clients WHERE client = '10.1.2.3')";
    expect(count(`SELECT count(*) AS n FROM events WHERE client = ${client}`)).toBe(33);

    const all = await w.sluice('log', 'erase', '--client', '10.1.2.3', '--reason', 'request 2026-114');
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^erased 33 events and \d+ rollup rows of 10\.1\.2\.3 from the SQLite store /);
    expect(count(`SELECT count(*) AS n FROM events WHERE client = ${client}`)).toBe(0);
    expect(count("SELECT count(*) AS n FROM rollup_daily WHERE client = '10.1.2.3'")).toBe(0);
    // the other client is untouched
    expect(count("SELECT count(*) AS n FROM events WHERE client = (SELECT id FROM clients WHERE client = '10.9.9.9')")).toBe(48);
    expect(count("SELECT sum(count) AS n FROM rollup_daily WHERE client = '10.9.9.9'")).toBe(48);
    expect(count('SELECT count(*) AS n FROM erasures')).toBe(2);
    const q = await w.sluice('log', 'query', '--since', '2026-11-01', '--client', '10.1.2.3', '--json');
    expect((JSON.parse(q.stdout) as { total: number }).total).toBe(0);

    const audit = w.audit().filter((r) => r.command === 'log erase');
    expect(audit.map((r) => [r.client, r.result])).toEqual([
      ['10.1.2.3', 'requested'],
      ['10.1.2.3', 'erased 15 events, 1 rollup rows'],
      ['10.1.2.3', 'requested'],
      ['10.1.2.3', expect.stringMatching(/^erased 33 events, \d+ rollup rows$/)],
    ]);
    expect(audit[0]).toMatchObject({ before: '2026-11-21T00:00:00.000Z', reason: 'request 2026-114' });
  });

  it('is a usage error without --client, and says so on a bad --before', async () => {
    expect((await w.sluice('log', 'erase')).code).toBe(2);
    const bad = await w.sluice('log', 'erase', '--client', '10.1.2.3', '--before', 'someday');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('sluice: --before: "someday" is not a time\n');
  });
});
