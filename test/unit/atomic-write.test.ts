import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { atomicWrite, describeFsError, stageWrite, tempPathFor, tempWriterPid, WriteFailure } from '../../src/files/atomic-write.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-atomic-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('atomicWrite', () => {
  it("keeps the original's mode (and owner, as root), and gives a new file 0644 less the umask", async () => {
    const file = join(dir, 'list.txt');
    writeFileSync(file, 'old\n');
    chmodSync(file, 0o640);
    if (process.getuid?.() === 0) chownSync(file, 65534, 65534);
    await atomicWrite(file, 'new\n');
    const st = statSync(file);
    expect(readFileSync(file, 'utf8')).toBe('new\n');
    expect((st.mode & 0o7777).toString(8)).toBe('640');
    if (process.getuid?.() === 0) expect([st.uid, st.gid]).toEqual([65534, 65534]);
    await atomicWrite(join(dir, 'fresh.txt'), 'x\n');
    expect(statSync(join(dir, 'fresh.txt')).mode & 0o777).toBe(0o644 & ~process.umask());
    expect(readdirSync(dir).sort()).toEqual(['fresh.txt', 'list.txt']);
  });

  it('writes bytes as they are', async () => {
    const file = join(dir, 'copy.bin');
    await atomicWrite(file, new Uint8Array([0, 1, 2, 255]));
    expect([...readFileSync(file)]).toEqual([0, 1, 2, 255]);
  });

  it('fails as a WriteFailure naming the file, and leaves nothing behind', async () => {
    const file = join(dir, 'missing-dir', 'x.txt');
    const err: unknown = await atomicWrite(file, 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WriteFailure);
    expect((err as WriteFailure).file).toBe(file);
    expect((err as WriteFailure).code).toBe('ENOENT');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('leaves the original as it was until the staged text is committed, and after an abort', async () => {
    const file = join(dir, 'list.txt');
    writeFileSync(file, 'old\n');
    const staged = await stageWrite(file, 'new\n');
    expect(readFileSync(file, 'utf8')).toBe('old\n');
    expect(readFileSync(staged.tmp, 'utf8')).toBe('new\n');
    await staged.abort();
    expect(readdirSync(dir)).toEqual(['list.txt']);
    expect(readFileSync(file, 'utf8')).toBe('old\n');
  });
});

describe('temporary files', () => {
  it('are hidden files beside the original that name their writer', () => {
    const file = join(dir, 'list.txt');
    const tmp = tempPathFor(file);
    expect(dirname(tmp)).toBe(dir);
    expect(basename(tmp)).toMatch(/^\.list\.txt\.\d+\.[0-9a-f]{8}\.tmp$/);
    expect(tempWriterPid(file, basename(tmp))).toBe(process.pid);
  });

  it.each([['.other.txt.1.0a1b2c3d.tmp'], ['list.txt'], ['.list.txt.x1.0a1b2c3d.tmp'], ['.list.txt.12.tmp'], ['.list.txt.12.0A1B.tmp'], ['.list.txt.12.0a1b.tmp.bak']])(
    'are told apart from other files: %s',
    (name) => {
      expect(tempWriterPid(join(dir, 'list.txt'), name)).toBeUndefined();
    },
  );
});

describe('describeFsError', () => {
  it('gives one line for file-system errors and nothing for bugs', () => {
    expect(describeFsError(new WriteFailure('/l.txt', Object.assign(new Error('x'), { code: 'ENOSPC' })))).toBe('disk full writing /l.txt');
    expect(describeFsError(Object.assign(new Error('x'), { code: 'EACCES', path: '/s/audit.log' }))).toBe('permission denied writing /s/audit.log');
    expect(describeFsError(new TypeError('bug'))).toBeUndefined();
  });
});
