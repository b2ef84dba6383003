import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileWatcher } from '../../src/server/file-watcher.js';

const dirs: string[] = [];
const watchers: FileWatcher[] = [];
afterEach(() => {
  watchers.splice(0).forEach((w) => w.close());
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

function watching(files: string[]): { changes: string[][]; next(): Promise<string[]> } {
  const changes: string[][] = [];
  const waiters: ((f: string[]) => void)[] = [];
  const w = new FileWatcher((f) => {
    changes.push(f);
    waiters.shift()?.(f);
  }, 20);
  watchers.push(w);
  w.setFiles(files);
  return {
    changes,
    next: () =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no change reported within 2 s')), 2000);
        waiters.push((f) => {
          clearTimeout(t);
          resolve(f);
        });
      }),
  };
}

describe('FileWatcher', () => {
  it('reports a watched file replaced by rename, and ignores its neighbours', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-watch-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'list.txt'), 'a.example\n');
    const w = watching([join(dir, 'list.txt')]);
    writeFileSync(join(dir, 'other.txt'), 'x\n');
    writeFileSync(join(dir, '.list.txt.tmp'), 'b.example\n');
    renameSync(join(dir, '.list.txt.tmp'), join(dir, 'list.txt'));
    expect(await w.next()).toEqual(['list.txt']);
  });

  it('reports a file whose directory did not exist yet when the watch started', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-watch-'));
    dirs.push(dir);
    const file = join(dir, 'var', 'lists', 'remote.txt');
    const w = watching([file]);
    mkdirSync(join(dir, 'var', 'lists'), { recursive: true });
    writeFileSync(file, 'a.example\n');
    expect(await w.next()).toEqual(['remote.txt']);
  });
});
