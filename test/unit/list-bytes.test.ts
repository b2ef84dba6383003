import { describe, expect, it } from 'vitest';
import { loadDomainsFromBytes } from '../../src/lists/list-bytes.js';
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
