// List edits on a real full disk, without permission, after an editor was killed, and on files
// with their own owner and mode: an edit is made with its audit record, or not at all.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runWithFullDisk } from '../helpers/full-disk.js';
import { BIN, makeWorkspace, type Workspace } from './cli-workspace.js';

const SITE = 'config/lists/local-additions.txt';
const spaces: Workspace[] = [];
function fresh(): Workspace {
  const ws = makeWorkspace();
  spaces.push(ws);
  mkdirSync(ws.path('var'), { recursive: true });
  return ws;
}
afterAll(() => spaces.forEach((w) => w.remove()));

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** The same command line `ws.sluice` runs, for starting it another way. */
const argv = (ws: Workspace, ...args: string[]) => [process.execPath, BIN, '--config', ws.configFile, ...args];

/** Audit records (JSON lines) of a file's bytes. */
const records = (b: Buffer | undefined) =>
  (b ?? Buffer.alloc(0))
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '');

/** An audit log of valid records, `size` bytes long: its last page then has room for only a few bytes more. */
function auditOfSize(size: number): string {
  const line = (reason: string) => JSON.stringify({ time: '2026-11-01T00:00:00.000Z', user: 'earlier', command: 'lists add', list: 'local-additions', domains: ['earlier.example'], reason }) + '\n';
  let text = '';
  while (text.length + line('').length * 2 < size) text += line('x'.repeat(40));
  return text + line('y'.repeat(size - text.length - line('').length));
}

const noStack = (stderr: string) => expect(stderr).not.toMatch(/^\s+at /m);

describe.concurrent('a full disk', () => {
  it.each([
    ['add', ['lists', 'add', 'local-additions', 'full-disk.example']],
    ['remove', ['lists', 'remove', 'local-additions', 'present.example']],
    ['import', ['lists', 'import', 'local-additions', 'IMPORT']],
  ])('under the list: `lists %s` changes nothing, writes no record, leaves no temporary file and says why', async (_verb, args) => {
    const ws = fresh();
    ws.write(SITE, `${ws.read(SITE)}present.example\n`);
    ws.write('import.txt', 'imported-1.example\nimported-2.example\n');
    const before = readFileSync(ws.path(SITE));
    const r = await runWithFullDisk([ws.path('config/lists')], argv(ws, ...args.map((a) => (a === 'IMPORT' ? ws.path('import.txt') : a))), ws.dir);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(`sluice: nothing changed: disk full writing ${ws.path(SITE)}\n`);
    noStack(r.stderr);
    const [lists] = r.after;
    expect(lists!.get('local-additions.txt')!.equals(before)).toBe(true);
    expect([...lists!.keys()]).toEqual(['local-additions.txt']);
    expect(ws.audit()).toEqual([]);
  });

  it('under the audit log: `lists add` leaves the list as it was and the log without a torn line', async () => {
    const ws = fresh();
    // 4090 bytes: the first bytes of a new record fit in the last page, the rest needs another
    const earlier = auditOfSize(4090);
    expect(earlier.length).toBe(4090);
    ws.write('var/audit.log', earlier);
    const before = readFileSync(ws.path(SITE));
    const r = await runWithFullDisk([ws.path('var')], argv(ws, 'lists', 'add', 'local-additions', 'audit-full.example', '--reason', 'a reason long enough to need a second page'), ws.dir);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(`sluice: nothing changed: disk full writing ${ws.path('var/audit.log')}\n`);
    noStack(r.stderr);
    expect(readFileSync(ws.path(SITE)).equals(before)).toBe(true);
    expect(readdirSync(ws.path('config/lists'))).toEqual(['local-additions.txt']);
    const [state] = r.after;
    expect(state!.get('audit.log')!.toString('utf8')).toBe(earlier);
    expect(records(state!.get('audit.log')).map((l) => JSON.parse(l) as unknown)).toHaveLength(earlier.split('\n').length - 1);
  });

  it('under the audit log: `lists new` leaves the config as it was and creates no list file', async () => {
    const ws = fresh();
    const config = ws.read('config/sluice.yaml');
    const r = await runWithFullDisk([ws.path('var')], argv(ws, 'lists', 'new', 'review'), ws.dir);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(`sluice: nothing changed: disk full writing ${ws.path('var/audit.log')}\n`);
    expect(ws.read('config/sluice.yaml')).toBe(config);
    expect(readdirSync(ws.path('config/lists'))).toEqual(['local-additions.txt']);
    expect(readdirSync(ws.path('config'))).toEqual(['lists', 'sluice.yaml']);
    expect(records(r.after[0]!.get('audit.log'))).toEqual([]);
  });

  it('under the list directory: `lists new` creates nothing', async () => {
    const ws = fresh();
    const config = ws.read('config/sluice.yaml');
    const r = await runWithFullDisk([ws.path('config/lists')], argv(ws, 'lists', 'new', 'review', '--description', 'full'), ws.dir);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(`sluice: nothing changed: disk full writing ${ws.path('config/lists/review.txt')}\n`);
    expect([...r.after[0]!.keys()]).toEqual(['local-additions.txt']);
    expect(ws.read('config/sluice.yaml')).toBe(config);
    expect(ws.audit()).toEqual([]);
  });
});

/** Run the CLI as a user who may not write where `deny` says: as nobody when the tests run as root, else with the directory made read-only. */
async function runDenied(ws: Workspace, deny: string, writable: string[], ...args: string[]) {
  // The workspace and the binary's copy are private temporary directories: let nobody in.
  for (let d = ws.path('config/lists'); d.startsWith(ws.dir); d = dirname(d)) chmodSync(d, 0o755);
  chmodSync(dirname(dirname(BIN)), 0o755);
  if (isRoot) {
    for (const w of writable) {
      chownSync(w, NOBODY, NOBODY);
      for (const f of readdirSync(w)) chownSync(join(w, f), NOBODY, NOBODY);
    }
    return new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, '--config', ws.configFile, ...args], { cwd: ws.dir, uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
  }
  chmodSync(deny, 0o555);
  try {
    return await ws.sluice(...args);
  } finally {
    chmodSync(deny, 0o755);
  }
}

describe.concurrent('no permission', () => {
  it('to write the audit log: `lists add` changes nothing and says so', async () => {
    const ws = fresh();
    const before = readFileSync(ws.path(SITE));
    const r = await runDenied(ws, ws.path('var'), [ws.path('config/lists')], 'lists', 'add', 'local-additions', 'denied.example');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(`sluice: nothing changed: permission denied writing ${ws.path('var/audit.log')}\n`);
    expect(readFileSync(ws.path(SITE)).equals(before)).toBe(true);
    expect(readdirSync(ws.path('config/lists'))).toEqual(['local-additions.txt']);
    expect(existsSync(ws.path('var/audit.log'))).toBe(false);
  });

  it('to write the list: `lists add` changes nothing and says so', async () => {
    const ws = fresh();
    const before = readFileSync(ws.path(SITE));
    const r = await runDenied(ws, ws.path('config/lists'), [ws.path('var')], 'lists', 'add', 'local-additions', 'denied.example');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(`sluice: nothing changed: permission denied writing ${ws.path(SITE)}\n`);
    expect(readFileSync(ws.path(SITE)).equals(before)).toBe(true);
    expect(readdirSync(ws.path('config/lists'))).toEqual(['local-additions.txt']);
    expect(ws.audit()).toEqual([]);
  });
});

describe('an editor killed mid-edit', () => {
  it('leaves nothing that makes the next edit wait: its lock and temporary file are removed at once', async () => {
    const ws = fresh();
    const file = ws.path(SITE);
    // Takes the lock as `lists add` does, writes half a temporary copy the way atomicWrite names it, and hangs there.
    const script = `
      import { open } from 'node:fs/promises';
      import { basename, dirname, join } from 'node:path';
      const { withLock } = await import(process.argv[1]);
      const file = process.argv[2];
      await withLock(file, async () => {
        const fh = await open(join(dirname(file), '.' + basename(file) + '.' + process.pid + '.0badc0de.tmp'), 'wx');
        await fh.write('x'.repeat(65536));
        process.stdout.write('editing\\n');
        // hang here, alive (a bare pending promise would let the process exit and release the lock)
        setInterval(() => {}, 1000);
        await new Promise(() => {});
      });`;
    const editor = join(dirname(dirname(BIN)), 'dist/lists/list-editor.js');
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, editor, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('editing') && resolve());
      child.on('exit', (code) => reject(new Error(`the editor exited (${code}) before it took the lock`)));
    });
    expect(readdirSync(ws.path('config/lists')).filter((f) => f.endsWith('.tmp'))).toHaveLength(1);
    expect(existsSync(`${file}.lock`)).toBe(true);
    const exited = new Promise((r) => child.on('exit', (_code, signal) => r(signal)));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    // what a killed editor leaves: its lock and its half-written copy
    expect(existsSync(`${file}.lock`)).toBe(true);
    expect(readdirSync(ws.path('config/lists')).filter((f) => f.endsWith('.tmp'))).toHaveLength(1);

    const t0 = Date.now();
    const r = await ws.sluice('lists', 'add', 'local-additions', 'after-kill.example');
    const took = Date.now() - t0;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('+ after-kill.example\n');
    // the lock of a dead editor goes at once, not after proper-lockfile's 15 s staleness
    expect(took).toBeLessThan(5000);
    expect(ws.read(SITE)).toContain('after-kill.example');
    expect(readdirSync(ws.path('config/lists'))).toEqual(['local-additions.txt']);
  });
});

describe('owner and mode', () => {
  it(`an edit keeps the list's mode${isRoot ? ' and owner' : ''}, and \`lists new\` the config's`, async () => {
    const ws = fresh();
    const list = ws.path(SITE);
    chmodSync(list, 0o640);
    chmodSync(ws.configFile, 0o640);
    if (isRoot) {
      chownSync(list, NOBODY, NOBODY);
      chownSync(ws.configFile, 0, NOBODY);
      chownSync(ws.path('config/lists'), NOBODY, NOBODY);
    }
    const add = await ws.sluice('lists', 'add', 'local-additions', 'mode.example');
    expect(add.code, add.stderr).toBe(0);
    const rm = await ws.sluice('lists', 'remove', 'local-additions', 'mode.example');
    expect(rm.code, rm.stderr).toBe(0);
    const created = await ws.sluice('lists', 'new', 'review');
    expect(created.code, created.stderr).toBe(0);
    const l = statSync(list);
    const c = statSync(ws.configFile);
    expect((l.mode & 0o7777).toString(8)).toBe('640');
    expect((c.mode & 0o7777).toString(8)).toBe('640');
    if (isRoot) {
      expect([l.uid, l.gid]).toEqual([NOBODY, NOBODY]);
      expect([c.uid, c.gid]).toEqual([0, NOBODY]);
    }
    // a new list is readable by the service (0644 less the umask), and as root it belongs to site_dir's owner
    const n = statSync(ws.path('config/lists/review.txt'));
    expect(n.mode & 0o444).toBe(0o444 & ~process.umask());
    if (isRoot) expect([n.uid, n.gid]).toEqual([NOBODY, NOBODY]);
  });
});
