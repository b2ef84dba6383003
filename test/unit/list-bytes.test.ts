import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDomainsFromBytes, loadDomainsFromFile } from '../../src/lists/list-bytes.js';
import { parseList } from '../../src/lists/formats.js';

// The byte loader's fast path must agree with the general parser on every line.
const corpus = [
  'example.com',
  'Example.COM.',
  '  spaced.example   # comment',
  'tab\tseparated.example',
  'example..com',
  '-lead.example',
  'trail-.example',
  'a-b.example',
  '_srv.example',
  '1.2.3.4',
  '123.example',
  'example.123',
  'x.' + 'a'.repeat(63) + '.example',
  'x.' + 'a'.repeat(64) + '.example',
  Array.from({ length: 5 }, () => 'b'.repeat(50)).join('.'),
  '0.0.0.0 hosts.example',
  '||adblock.example^',
  '*.wild.example',
  'bücher.example',
  '.',
  'localhost',
  '# only a comment',
  '',
  'trailing.dot.example.',
  'two.dots.example..',
  'semi;colon.example',
].join('\n');

describe('loadDomainsFromBytes', () => {
  it('accepts and rejects exactly what parseList does, with the same line numbers', () => {
    const slow = parseList(corpus);
    const fast = loadDomainsFromBytes(Buffer.from(corpus));
    expect([...fast.set.rules()].sort()).toEqual([...new Set(slow.entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain)))].sort());
    expect(fast.problems.map((p) => p.line)).toEqual(slow.problems.map((p) => p.line));
  });

  it('matches subdomains of what it loaded', () => {
    const { set } = loadDomainsFromBytes(Buffer.from('tiktok.com\r\nbytedance.map.fastly.net\n'));
    expect(set.match('v16.tiktok.com')?.rule).toBe('tiktok.com');
    expect(set.match('x.bytedance.map.fastly.net')?.rule).toBe('bytedance.map.fastly.net');
    expect(set.match('map.fastly.net')).toBeUndefined();
    expect(set.size).toBe(2);
  });

  it('counts a duplicate once', () => {
    expect(loadDomainsFromBytes(Buffer.from('a.example\nA.example\na.example.\n')).set.size).toBe(1);
  });
});

describe('loadDomainsFromFile', () => {
  it('reads a file larger than its buffer exactly as the bytes loader reads it, lines cut at any place', async () => {
    // ~3 MiB: lines cross the 1 MiB read boundaries at arbitrary places, bad lines among them.
    const lines: string[] = [];
    for (let i = 0; i < 120_000; i++) lines.push(i % 997 === 0 ? `bad..line${i}.example` : i % 13 === 0 ? `0.0.0.0 host${i}.example` : `d${i}.${'x'.repeat(1 + (i % 17))}.example`);
    const text = lines.join('\n'); // no final newline: the last line must still count
    const dir = mkdtempSync(join(tmpdir(), 'sluice-listfile-'));
    try {
      const file = join(dir, 'big.txt');
      writeFileSync(file, text);
      const fromFile = await loadDomainsFromFile(file);
      const fromBytes = loadDomainsFromBytes(Buffer.from(text));
      expect(fromFile.set.size).toBe(120_000 - Math.ceil(120_000 / 997));
      expect(fromFile.set.size).toBe(fromBytes.set.size);
      expect(fromFile.rules).toBe(fromBytes.rules);
      expect(fromFile.problems).toEqual(fromBytes.problems);
      expect(fromFile.problems[1]).toMatchObject({ line: 998, text: 'bad..line997.example' });
      expect(fromFile.set.match(lines.at(-1)!)?.rule).toBe(lines.at(-1)); // the last line, without a newline
      expect(fromFile.sha256).toBe(createHash('sha256').update(text).digest('hex'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('loadDomainsFromBytes against parseList', () => {
  it('agrees on any text made of name characters, blanks, comments and odd bytes', () => {
    const piece = fc.constantFrom('a', 'b', 'x9', '-', '.', '_', ' ', '\t', '\r', '#', '*', '|', '^', '0.0.0.0 ', 'A', 'ü', '..', '1', '\n');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 80 }), (pieces) => {
        const text = pieces.join('');
        const slow = parseList(text);
        const fast = loadDomainsFromBytes(Buffer.from(text));
        expect([...fast.set.rules()].sort()).toEqual([...new Set(slow.entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain)))].sort());
        expect(fast.problems.map((p) => p.line)).toEqual(slow.problems.map((p) => p.line));
      }),
      { numRuns: 2000 },
    );
  });
});
