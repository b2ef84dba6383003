// The SQLite query-log store when its disk fills up, on a real server: state_dir is a 2 MB tmpfs
// (mounted here, as root: .ci/run runs as root), a filler file takes the rest of it, and DNS
// queries keep coming. Answers must not suffer; the store fails, says so once and counts it,
// keeps the events in its spill, leaves an intact file, and writes everything once there is room.
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from '../../src/querylog/store/sqlite-driver.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { SqliteStore } from '../../src/querylog/store/sqlite-store.js';
import type { QueryLogStore } from '../../src/querylog/store/store.js';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

const TOKEN = 'disk-full-token-0123456789';

let mnt: string;
let mounted = false;
let upstream: FakeUpstream;
let h: Harness | undefined;
const copies: string[] = [];

beforeAll(async () => {
  mnt = mkdtempSync(join(tmpdir(), 'sluice-diskfull-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    throw new Error(`this test needs a 2 MB tmpfs and could not mount one on ${mnt} (it must run as root with mount permission, as .ci/run does): ${e.stderr?.toString().trim() || e.message}`);
  }
  mounted = true;
  upstream = await startFakeUpstream();
  h = await startSluice({
    config: referenceConfig(`state_dir: ${JSON.stringify(mnt)}
watch: false
query_log:
  store: { kind: sqlite, path: querylog.db }
admin: { enabled: true, port: 0, token: "${TOKEN}" }
`),
    lists: referenceLists,
    upstream: upstream.address,
    captureLogs: true,
  });
});

afterAll(async () => {
  await h?.stop();
  await upstream?.close();
  if (mounted) execFileSync('umount', [mnt]);
  rmSync(mnt, { recursive: true, force: true });
  for (const c of copies) rmSync(c, { recursive: true, force: true });
});

const store = (): QueryLogStore => h!.server.observability.owner!.store!;

/** A condition that becomes true through the server's own progress, checked between its turns. */
async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(store().health())}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `n` queries, 25 at a time, half forwarded upstream and half blocked; every one must be answered. */
let sent = 0;
async function pump(prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 25) {
    const batch = Array.from({ length: Math.min(25, n - i) }, (_, j) => i + j);
    const answers = await Promise.all(
      batch.map(async (k) => {
        const blocked = k % 2 === 1;
        const name = blocked ? `${prefix}-${k}.tiktok.com` : `${prefix}-${k}.example.org`;
        const r = await resolve(h!.udp, name, 'A', { timeoutMs: 2000 });
        return { name, blocked, r };
      }),
    );
    for (const { name, blocked, r } of answers) {
      expect(r.rcode, name).toBe(blocked ? RCODE.NXDOMAIN : RCODE.NOERROR);
      if (!blocked) expect(r.answers.length, name).toBeGreaterThan(0);
    }
    sent += batch.length;
  }
}

/** Fill the file system: a file that grows until ENOSPC, in big then page-sized writes. */
function fill(path: string): number {
  const fd = openSync(path, 'w');
  let bytes = 0;
  try {
    for (const size of [256 * 1024, 4096, 512]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          bytes += writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}

async function metric(name: string): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${h!.server.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.text()).split('\n').filter((l) => l.startsWith(name));
}

/** The warnings about the store in the server's log. */
const storeWarnings = () => h!.logs.filter((l) => l.level === 40 && /store/.test(String(l.msg)));

/**
 * A copy of the database (file and WAL) off the tmpfs, as a backup would take it: opened, it must
 * pass SQLite's integrity check and every event row must decode (its shape and client exist, its
 * fields are well-formed). Returns the events it holds.
 */
async function checkCopy(): Promise<QueryEvent[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-diskfull-copy-'));
  copies.push(dir);
  const db = join(mnt, 'querylog.db');
  copyFileSync(db, join(dir, 'q.db'));
  if (existsSync(`${db}-wal`)) copyFileSync(`${db}-wal`, join(dir, 'q.db-wal'));
  const raw = new Database(join(dir, 'q.db'));
  try {
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(raw.prepare('SELECT count(*) FROM events e LEFT JOIN shapes s ON s.id = e.shape LEFT JOIN clients c ON c.id = e.client WHERE s.id IS NULL OR c.id IS NULL').pluck().get()).toBe(0);
  } finally {
    raw.close();
  }
  const ro = new SqliteStore(join(dir, 'q.db'), { instance: 'copy', retentionDays: 30, rollupRetentionDays: 400, spillEvents: 1000, now: () => Date.now(), warn: () => {}, readOnly: true });
  try {
    const events = await ro.events({});
    for (const e of events) {
      expect(e.name).toMatch(/^(before|during|after)-\d+\.(example\.org|tiktok\.com)$/);
      expect(e).toMatchObject({ instance: expect.any(String), client: '127.0.0.1', network: 'internal', type: 'A', transport: 'udp' });
      expect(e.decision).toBe(e.name.endsWith('tiktok.com') ? 'blocked' : 'allowed');
      expect(Number.isInteger(e.time) && e.durationMs >= 0).toBe(true);
    }
    return events;
  } finally {
    await ro.close();
  }
}

describe('SQLite store on a full disk', () => {
  it('answers every query, fails and says so once, keeps the file intact, and catches up when there is room', async () => {
    await pump('before', 100);
    await until('the first events in the store', () => store().health().written === 100);
    expect(store().health()).toMatchObject({ ok: true, failures: 0 });

    const filler = join(mnt, 'filler');
    expect(fill(filler)).toBeGreaterThan(0);
    // Queries go on; the store's writes fail (SQLITE_FULL) and are retried every second.
    let during = 0;
    const deadline = Date.now() + 30_000;
    while (store().health().failures === 0) {
      if (Date.now() > deadline) throw new Error(`the store never failed on the full tmpfs: ${JSON.stringify(store().health())}`);
      await pump('during', 50).then(() => (during += 50));
    }
    await pump('during', 50).then(() => (during += 50));
    // A flush during the outage (what a shutdown does) gives up on the events for now and tries
    // the aggregates too, which fail as well.
    await store().flush();
    await until('three failed attempts', () => store().health().failures >= 3);
    const failing = store().health();
    expect(failing.ok).toBe(false);
    expect(failing.lastError).toMatch(/full|disk|space/i);
    expect(failing.pending).toBeGreaterThan(0);
    expect(failing.refused).toBe(0);
    // Said once, not once per attempt or per batch.
    expect(storeWarnings()).toHaveLength(1);
    expect(String(storeWarnings()[0]!.msg)).toMatch(/the query-log store cannot write/);
    const failures = Number((await metric('sluice_querylog_store_failures_total'))[0]?.split(' ')[1]);
    expect(failures).toBeGreaterThanOrEqual(3);
    expect(await metric('sluice_querylog_store_up')).toEqual(['sluice_querylog_store_up{store="sqlite"} 0']);

    // The file as it is during the outage: intact, and exactly what was written, nothing torn.
    const held = await checkCopy();
    expect(held).toHaveLength(failing.written);
    expect(held.filter((e) => e.name.startsWith('before-'))).toHaveLength(100);

    // Room again: the spill is written, new events too.
    unlinkSync(filler);
    await until('the store to recover', () => store().health().ok && store().health().pending === 0);
    await pump('after', 100);
    await until('the events after the outage', async () => (await store().query({ since: 0 }, 1)).total === sent);
    const events = await store().events({});
    const count = (p: string) => events.filter((e) => e.name.startsWith(`${p}-`)).length;
    expect([count('before'), count('during'), count('after')]).toEqual([100, during, 100]);
    // The writer thread reports its health every 50 ms: the rows are visible a moment earlier.
    await until('the writer to report the last slice', () => store().health().pending === 0);
    expect(store().health()).toMatchObject({ ok: true, pending: 0, refused: 0, written: sent });
    expect(await metric('sluice_querylog_store_up')).toEqual(['sluice_querylog_store_up{store="sqlite"} 1']);
    expect(storeWarnings()).toHaveLength(1);
    // The series and rollup count every event once, whatever failed on the way.
    await store().flush();
    expect((await store().summary({ since: 0 }, { now: Date.now() + 60_000 })).totals).toMatchObject({ queries: sent, blocked: sent / 2 });
    expect((await store().trend({ by: 'day' })).reduce((n, t) => n + t.blocked, 0)).toBe(sent / 2);
    const after = await checkCopy();
    expect(after).toHaveLength(sent);
  }, 90_000);
});
