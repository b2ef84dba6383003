import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WriteFailure } from '../../src/files/atomic-write.js';
import { addRules, addRulesToText, normaliseRules, ownerTag, reapDeadLock, removeRulesFromText, removeStaleTemps, withLock } from '../../src/lists/list-editor.js';

describe('removeRulesFromText', () => {
  it.each([
    ['a plain line', '# c\na.example  # why\nb.example\n', ['a.example'], '# c\nb.example\n'],
    ['one name of a hosts line', '0.0.0.0 a.example b.example  # trio\n', ['b.example'], '0.0.0.0 a.example  # trio\n'],
    ['a name written with case and trailing dot', '0.0.0.0 Two.Example. three.example\n', ['two.example'], '0.0.0.0 three.example\n'],
    ['an IDN name, given as punycode', '0.0.0.0 bücher.example other.example\n', ['xn--bcher-kva.example'], '0.0.0.0 other.example\n'],
    ['a wildcard name of a hosts line', '0.0.0.0 *.w.example w.example\n', ['*.w.example'], '0.0.0.0 w.example\n'],
    ['an adblock rule', '||ad.example^\nkeep.example\n', ['ad.example'], 'keep.example\n'],
  ])('removes %s and nothing else', (_what, text, rules, expected) => {
    const r = removeRulesFromText(text, rules);
    expect(r.text).toBe(expected);
    expect(r.removed).toEqual(rules);
    expect(r.missing).toEqual([]);
  });

  it('reports rules that are not there and leaves the text alone', () => {
    const text = '# only a comment\nkeep.example\n';
    expect(removeRulesFromText(text, ['gone.example'])).toEqual({ text, removed: [], missing: ['gone.example'] });
  });
});

describe('addRulesToText', () => {
  it('appends new rules with the comment and reports those present in any format', () => {
    const r = addRulesToText('0.0.0.0 a.example\n||b.example^', ['a.example', 'b.example', 'c.example', '*.c.example'], 'why');
    expect(r.present).toEqual(['a.example', 'b.example']);
    expect(r.added).toEqual(['c.example', '*.c.example']);
    expect(r.text).toBe('0.0.0.0 a.example\n||b.example^\nc.example  # why\n*.c.example  # why\n');
  });
});

describe('normaliseRules', () => {
  it('normalises case, trailing dots, IDN and duplicates, keeping *.', () => {
    expect(normaliseRules(['A.Example.', 'a.example', '*.Bücher.Example'])).toEqual(['a.example', '*.xn--bcher-kva.example']);
  });

  it('refuses the whole input when one name is invalid, naming each bad one', () => {
    expect(() => normaliseRules(['ok.example', 'bad..example', '1.2.3.4'])).toThrow(/"bad\.\.example".*\n.*"1\.2\.3\.4" is an IP address/);
  });
});

/** The PID of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('what a killed editor leaves', () => {
  it('removes temporary files of dead writers and keeps those of live ones', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-editor-'));
    try {
      const file = join(dir, 'list.txt');
      const dead = `.list.txt.${deadPid()}.0a1b2c3d.tmp`;
      const live = `.list.txt.${process.pid}.0a1b2c3d.tmp`;
      for (const f of [dead, live, '.other.txt.1.0a1b2c3d.tmp', 'list.txt']) writeFileSync(join(dir, f), '');
      expect(removeStaleTemps(file)).toEqual([dead]);
      expect(readdirSync(dir).sort()).toEqual([live, '.other.txt.1.0a1b2c3d.tmp', 'list.txt'].sort());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('removes a lock whose owner is dead, keeps one whose owner lives, and then takes the lock at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-editor-'));
    try {
      const file = join(dir, 'list.txt');
      writeFileSync(file, '');
      const tag = ownerTag();
      expect(tag).toMatch(new RegExp(`^(\\d+|x)@${hostname()}$`));
      mkdirSync(`${file}.lock`);
      writeFileSync(`${file}.lock.pid-${process.pid}.${tag}`, '');
      expect(reapDeadLock(file)).toBe(false);
      rmSync(`${file}.lock.pid-${process.pid}.${tag}`);
      // another PID namespace or host: its PIDs mean nothing here
      writeFileSync(`${file}.lock.pid-${deadPid()}.1@elsewhere`, '');
      expect(reapDeadLock(file)).toBe(false);
      expect(readdirSync(dir)).toContain('list.txt.lock');
      writeFileSync(`${file}.lock.pid-${deadPid()}.${tag}`, '');
      const t0 = Date.now();
      expect(await withLock(file, async () => readdirSync(dir).filter((f) => f.startsWith('list.txt.lock')).length)).toBe(2); // the lock and our owner file
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(readdirSync(dir)).toEqual(['list.txt']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the audit record, written ahead', () => {
  it('is not written, and the list not changed, when the record cannot be written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-editor-'));
    try {
      const file = join(dir, 'list.txt');
      writeFileSync(file, 'a.example\n');
      writeFileSync(join(dir, 'not-a-dir'), '');
      const audit = { file: join(dir, 'not-a-dir', 'audit.log'), record: () => ({ command: 'lists add', list: 'l', domains: ['b.example'] }) };
      await expect(addRules(file, ['b.example'], undefined, audit)).rejects.toBeInstanceOf(WriteFailure);
      expect(readFileSync(file, 'utf8')).toBe('a.example\n');
      expect(readdirSync(dir).sort()).toEqual(['list.txt', 'not-a-dir']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is written before the file changes, and a torn last line of the log stays a line of its own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-editor-'));
    try {
      const file = join(dir, 'list.txt');
      const log = join(dir, 'audit.log');
      writeFileSync(file, 'a.example\n');
      writeFileSync(log, '{"torn');
      let listWhenRecorded = '';
      await addRules(file, ['b.example'], 'why', {
        file: log,
        record: (r) => {
          listWhenRecorded = readFileSync(file, 'utf8');
          return { command: 'lists add', list: 'l', domains: r.added };
        },
      });
      expect(listWhenRecorded).toBe('a.example\n');
      expect(readFileSync(file, 'utf8')).toBe('a.example\nb.example  # why\n');
      const lines = readFileSync(log, 'utf8').split('\n');
      expect(lines[0]).toBe('{"torn');
      expect(JSON.parse(lines[1]!)).toMatchObject({ command: 'lists add', domains: ['b.example'] });
      expect(lines[2]).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
