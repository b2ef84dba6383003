// The SQLite store as the server runs it: the writer in a thread of its own at a low CPU
// priority, the readers on a read-only connection. What is written through the thread reads back
// whole, the spill bound holds across the thread boundary, erase and retention run in the writer,
// and closing writes everything before the thread ends.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Database } from '../../src/querylog/store/sqlite-driver.js';
import { afterAll, describe, expect, it } from 'vitest';
import { QueryLogBuffer } from '../../src/querylog/buffer.js';
import type { QueryEvent } from '../../src/querylog/event.js';
import { ThreadedSqliteStore, WRITER_NICE } from '../../src/querylog/store/sqlite-thread.js';
import type { SqliteStoreOptions } from '../../src/querylog/store/sqlite-store.js';

const T0 = Date.parse('2026-11-25T10:00:00Z');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function file(): string {
  const d = mkdtempSync(join(tmpdir(), 'sluice-sqlite-thread-'));
  dirs.push(d);
  return join(d, 'q.db');
}
const options = (over: Partial<SqliteStoreOptions> = {}): SqliteStoreOptions => ({
  instance: 'a',
  retentionDays: 30,
  rollupRetentionDays: 400,
  spillEvents: 100_000,
  now: () => T0 + 3_600_000,
  warn: () => undefined,
  ...over,
});

function event(i: number, over: Partial<QueryEvent> = {}): QueryEvent {
  const blocked = i % 10 === 0;
  return {
    time: T0 + i,
    instance: 'a',
    client: `10.0.0.${i % 7}`,
    network: 'internal',
    profile: 'staff',
    policy: blocked ? 'app-ban' : null,
    list: blocked ? 'tiktok' : null,
    rule: blocked ? 'tiktok.com' : null,
    name: blocked ? `v${i}.tiktok.com` : `n${i}.example.org`,
    type: 'A',
    decision: blocked ? 'blocked' : 'allowed',
    wouldBlock: false,
    exception: false,
    cache: i % 2 === 0,
    upstream: i % 2 === 0 ? null : '127.0.0.1:53',
    rcode: blocked ? 3 : 0,
    answers: blocked ? 0 : 1,
    durationMs: 0.25,
    transport: 'udp',
    ...over,
  };
}

async function until(ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The nice value of each thread of this process (field 19 of /proc/self/task/TID/stat). */
function threadNice(): number[] {
  return readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  });
}

describe('the SQLite store with its writer thread', () => {
  it('writes through the thread at its nice value and reads back every event, field for field', async () => {
    const path = file();
    const store = await ThreadedSqliteStore.open(path, options());
    try {
      expect(store.lowered).toBe(true);
      expect(threadNice()).toContain(WRITER_NICE);
      expect(threadNice()[0]).toBe(0); // the answers' thread keeps its priority
      const events = Array.from({ length: 5000 }, (_, i) => event(i));
      for (let i = 0; i < events.length; i += 250) expect(store.write(events.slice(i, i + 250))).toBe(true);
      await store.flush();
      expect(store.health()).toMatchObject({ kind: 'sqlite', ok: true, written: 5000, pending: 0, refused: 0 });
      const back = await store.events({});
      expect(back).toEqual(events);
      const devices = await store.devices({ since: T0 });
      expect(devices.reduce((n, d) => n + d.count, 0)).toBe(500);
      expect((await store.covers({ since: T0 })).complete).toBe(true);
    } finally {
      await store.close();
    }
    // Closed: the writer wrote its aggregates before it ended.
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT sum(count) FROM rollup_daily').pluck().get()).toBe(5000);
    db.close();
  });

  it('refuses what would overflow the spill, counted, and erases in the writer', async () => {
    const store = await ThreadedSqliteStore.open(file(), options({ spillEvents: 1000 }));
    try {
      expect(store.write(Array.from({ length: 800 }, (_, i) => event(i)))).toBe(true);
      // 800 are in flight until the thread says they are written: 400 more would exceed 1,000.
      expect(store.write(Array.from({ length: 400 }, (_, i) => event(800 + i)))).toBe(false);
      await store.flush();
      expect(store.health()).toMatchObject({ written: 800, pending: 0, refused: 400 });
      expect(store.write(Array.from({ length: 400 }, (_, i) => event(800 + i)))).toBe(true);
      const erased = await store.erase('10.0.0.3');
      expect(erased.events).toBe(Math.ceil((1200 - 3) / 7));
      expect((await store.events({})).some((e) => e.client === '10.0.0.3')).toBe(false);
      expect((await store.query({}, 1)).total).toBe(1200 - erased.events);
    } finally {
      await store.close();
    }
  });

  it('keeps 100,000 events waiting for a stalled writer as binary batches in under 12 MB, drops and counts the rest, then writes them all in order', async () => {
    // A full collection before each reading, so that garbage does not count as what is kept.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // The heap only: the batches' memory, moved to the thread, stays counted in arrayBuffers here.
    const heap = (): number => {
      gc();
      return process.memoryUsage().heapUsed;
    };
    const path = file();
    const store = await ThreadedSqliteStore.open(path, options({ spillEvents: 100_000 }));
    // Another connection holds the write lock: every slice the writer tries waits, then fails.
    const lock = new Database(path);
    lock.exec('BEGIN IMMEDIATE');
    const buffer = new QueryLogBuffer(20_000, [store]);
    const N = 100_000;
    // Several events a millisecond, forwarded ones a little late, as the server logs them.
    const at = (i: number): QueryEvent => event(i, { time: T0 + Math.floor(i / 8) - (i % 2 === 0 ? 0 : 3), transport: (['udp', 'tcp', 'dot', 'doh'] as const)[i % 4]! });
    try {
      const before = heap();
      for (let i = 0; i < N; i++) {
        buffer.push(at(i));
        if (i % 256 === 255) buffer.flush();
      }
      buffer.flush();
      expect(store.health().pending).toBe(N);
      // The owner keeps nothing of them: each batch went to the thread as it was encoded.
      expect(heap() - before).toBeLessThan(2 * 1024 * 1024);
      // The thread decodes only a few thousand into objects for the slice it retries; the rest
      // wait as the binary batches they came in, ~100 bytes an event (as objects, ~430).
      // The thread reads its messages between write attempts, each of which waits out SQLite's
      // busy timeout (5 s) on the lock: on a loaded machine the last batches can take a while.
      await until(() => (store.health().binarySpill?.events ?? 0) >= N - 8192, 40_000);
      const spill = store.health().binarySpill!;
      expect(spill.bytes / spill.events).toBeLessThan(120);
      expect(spill.bytes).toBeLessThan(12 * 1024 * 1024);
      // Beyond the spill: refused at once and counted, never waited for.
      const t = performance.now();
      for (let i = N; i < N + 10_000; i++) buffer.push(at(i));
      buffer.flush();
      expect(performance.now() - t).toBeLessThan(1000);
      expect(buffer.sinkDropped.get('store')).toBe(10_000);
      expect(store.health()).toMatchObject({ pending: N, refused: 10_000 });
      lock.exec('COMMIT');
      lock.close();
      await store.flush();
      expect(store.health()).toMatchObject({ written: N, pending: 0 });
      // Every event, in the order of its time and, within a millisecond, of its arrival.
      const expected = Array.from({ length: N }, (_, i) => at(i))
        .map((e, i) => ({ e, i }))
        .sort((a, b) => a.e.time - b.e.time || a.i - b.i)
        .map(({ e }) => e.name);
      const db = new Database(path, { readonly: true });
      try {
        expect(db.prepare('SELECT name FROM events ORDER BY id').pluck().all()).toEqual(expected);
      } finally {
        db.close();
      }
      const back = await store.events({});
      expect(back.filter((e) => e.transport === 'dot')).toHaveLength(N / 4);
    } finally {
      if (lock.open) lock.close();
      await store.close();
    }
  }, 90_000);

  it('reports a file it cannot open as an error of open, with no thread left behind', async () => {
    // A regular file where the folder should be.
    const notADir = file();
    writeFileSync(notADir, 'x');
    const before = readdirSync('/proc/self/task').length;
    await expect(ThreadedSqliteStore.open(join(notADir, 'q.db'), options())).rejects.toThrow(/EEXIST|ENOTDIR|not a directory/i);
    await until(() => readdirSync('/proc/self/task').length <= before);
  });
});
