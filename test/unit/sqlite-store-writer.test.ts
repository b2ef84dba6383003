// The SQLite store's write path: in-order events go to the file several rows per INSERT, and the
// ones that cannot take the next free id (out of order, a millisecond with more than 1,024 events,
// a file another run wrote) are probed one by one. Whatever the mix within a slice, every event is
// stored exactly once with its own fields, and the shape of an event is found again after a reopen.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { SqliteStore, type SqliteStoreOptions } from '../../src/querylog/store/sqlite-store.js';

const T0 = Date.parse('2026-11-25T10:00:00Z');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function file(): string {
  const d = mkdtempSync(join(tmpdir(), 'sluice-sqlite-writer-'));
  dirs.push(d);
  return join(d, 'q.db');
}
const options = (): SqliteStoreOptions => ({ instance: 'a', retentionDays: 3650, rollupRetentionDays: 3650, spillEvents: 1_000_000, now: () => T0 + 3_600_000, warn: () => undefined });

function event(i: number, time: number, over: Partial<QueryEvent> = {}): QueryEvent {
  return {
    time,
    instance: 'a',
    client: `10.0.${(i >> 8) & 255}.${i & 255}`,
    network: i % 3 === 0 ? 'guest' : 'internal',
    profile: i % 3 === 0 ? 'open' : 'staff',
    policy: null,
    list: null,
    rule: null,
    name: `n${i}.example.org`,
    type: i % 2 ? 'A' : 'AAAA',
    decision: 'allowed',
    wouldBlock: false,
    exception: false,
    cache: i % 5 < 3,
    upstream: i % 5 < 3 ? null : '192.0.2.53:53',
    rcode: 0,
    answers: 1,
    durationMs: (i % 1000) / 1000,
    transport: 'udp',
    ...over,
  };
}

const byName = (a: QueryEvent, b: QueryEvent) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

describe('the SQLite store writer', () => {
  it('stores in-order, out-of-order and crowded-millisecond events of one slice exactly once', async () => {
    const path = file();
    const store = new SqliteStore(path, options());
    const events: QueryEvent[] = [];
    // In order, several per millisecond; then, within the same slices, older events, and 1,500
    // events of one millisecond (more than its 1,024 ids); blocked ones among them.
    for (let i = 0; i < 3000; i++) {
      if (i % 97 === 0)
        events.push(
          event(100_000 + i, T0 - 10_000 + i, {
            decision: 'blocked',
            policy: 'app-ban',
            list: 'tiktok',
            rule: 'tiktok.com',
            name: `x${i}.tiktok.com`,
            rcode: 3,
            answers: 0,
            cache: false,
            upstream: null,
          }),
        );
      events.push(event(i, T0 + Math.floor(i / 7)));
      if (i >= 1000 && i < 2500) events.push(event(200_000 + i, T0 + 2000));
    }
    for (let k = 0; k < events.length; k += 256) expect(store.write(events.slice(k, k + 256))).toBe(true);
    await store.flush();
    const back = await store.events({});
    expect(back.length).toBe(events.length);
    // Every field but the time is its own; the time is its own too, except for the crowded
    // millisecond, whose events beyond its 1,024 ids are kept in the following milliseconds.
    const strip = (e: QueryEvent) => ({ ...e, time: 0 });
    expect(back.map(strip).sort(byName)).toEqual(events.map(strip).sort(byName));
    const sent = new Map(events.map((e) => [e.name, e.time]));
    for (const e of back) {
      const t = sent.get(e.name)!;
      if (t === T0 + 2000) {
        expect(e.time).toBeGreaterThanOrEqual(t);
        expect(e.time).toBeLessThan(t + 4);
      } else expect(e.time).toBe(t);
    }
    expect((await store.devices({})).reduce((n, r) => n + r.count, 0)).toBe(events.filter((e) => e.decision === 'blocked').length);
    await store.close();
  });

  it('reopened, keeps the shapes and ids it had and adds after them', async () => {
    const path = file();
    const first = new SqliteStore(path, options());
    const a = Array.from({ length: 700 }, (_, i) => event(i, T0 + i));
    first.write(a);
    await first.close();
    const second = new SqliteStore(path, options());
    // Later events, and some older than the newest stored: both kinds of id in one slice.
    const b = Array.from({ length: 700 }, (_, i) => event(1000 + i, i % 10 === 0 ? T0 + i : T0 + 1000 + i));
    second.write(b);
    await second.flush();
    const back = await second.events({});
    expect(back.length).toBe(1400);
    expect([...back].sort(byName)).toEqual([...a, ...b].sort(byName));
    // One shape row per distinct shape, whichever process wrote it first.
    const shapes = new Set([...a, ...b].map((e) => `${e.network}|${e.type}|${e.cache}|${e.upstream}`));
    expect((await second.summary({}, { now: T0 + 3_600_000 })).totals.queries).toBe(1400);
    await second.close();
    const { Database } = await import('../../src/querylog/store/sqlite-driver.js');
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM shapes').pluck().get()).toBe(shapes.size);
    db.close();
  });

  it('finds a shape another connection added since it loaded them, instead of adding it twice', async () => {
    const path = file();
    const a = new SqliteStore(path, options());
    const b = new SqliteStore(path, options()); // loads the shapes now: none
    a.write([event(1, T0)]);
    await a.flush();
    b.write([event(1, T0 + 1), event(2, T0 + 2)]); // event 1's shape is in the file, not in b's tree
    await b.flush();
    const back = await b.events({});
    expect(back.map((e) => e.name)).toEqual(['n1.example.org', 'n1.example.org', 'n2.example.org']);
    expect(back[1]).toEqual(event(1, T0 + 1));
    await a.close();
    await b.close();
    const { Database } = await import('../../src/querylog/store/sqlite-driver.js');
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM shapes').pluck().get()).toBe(2);
    db.close();
  });
});
