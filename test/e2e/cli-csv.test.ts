// CSV from the real binary that a spreadsheet opens as text: a query name that a DNS client made
// look like a formula is written with a leading ' in `sluice log query` and `sluice report devices`.
import { mkdirSync } from 'node:fs';
import { SqliteStore } from '../../src/querylog/store/sqlite-store.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { makeWorkspace, type Workspace } from './cli-workspace.js';

const FORMULA = '=HYPERLINK("http://x")+tiktok.tiktok.com';

const event: QueryEvent = {
  time: Date.parse('2026-12-01T12:00:00Z'),
  instance: 'sluice',
  client: '127.0.0.1',
  network: 'internal',
  profile: 'staff',
  policy: 'app-ban',
  list: 'tiktok',
  rule: 'tiktok.com',
  name: FORMULA,
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
};

let w: Workspace;
beforeAll(async () => {
  w = makeWorkspace();
  // the reference config keeps its store in state_dir (../var)/querylog.db
  mkdirSync(w.path('var'), { recursive: true });
  const store = new SqliteStore(w.path('var/querylog.db'), { instance: 'sluice', retentionDays: 30, rollupRetentionDays: 400, spillEvents: 1000, now: () => event.time, warn: () => undefined });
  store.write([event]);
  await store.close();
});
afterAll(() => w?.remove());

const range = ['--since', '2026-12-01', '--until', '2026-12-02', '--source', 'store', '--format', 'csv'];

describe('CSV output opened in a spreadsheet', () => {
  it('sluice log query writes a formula-looking name as text', async () => {
    const r = await w.sluice('log', 'query', ...range);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = r.stdout.split('\r\n');
    expect(rows[1]).toBe(`2026-12-01T12:00:00.000Z,sluice,internal,127.0.0.1,A,"'=HYPERLINK(""http://x"")+tiktok.tiktok.com",blocked,false,false,staff,app-ban,tiktok,tiktok.com,false,,3,0,0.1,udp`);
  });

  it('sluice report devices writes it as text too', async () => {
    const r = await w.sluice('report', 'devices', '--policy', 'app-ban', ...range);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\r\n')[1]).toMatch(
      /^internal,127\.0\.0\.1,app-ban,tiktok,[^,]*,1,2026-12-01T12:00:00\.000Z,2026-12-01T12:00:00\.000Z,"'=HYPERLINK\(""http:\/\/x""\)\+tiktok\.tiktok\.com"$/,
    );
  });
});
