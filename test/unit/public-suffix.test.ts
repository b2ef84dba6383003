import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadDomainsFromBytes } from '../../src/lists/list-bytes.js';
import { parseList } from '../../src/lists/formats.js';
import { mayBeSuffix, mayBeSuffixBytes, suffixFilterActive, suffixRefusals, suffixVerdict } from '../../src/lists/public-suffix.js';

describe('suffixVerdict', () => {
  it.each([
    ['com', 'public-suffix', 'ICANN'],
    ['co.uk', 'public-suffix', 'ICANN'],
    ['xn--mgberp4a5d4ar', 'public-suffix', 'ICANN'], // السعودية, as a list holds it after normalising
    ['foo', 'public-suffix', 'ICANN'], // a real TLD (Google's)
    ['x.ck', 'public-suffix', 'ICANN'], // under the *.ck rule
    ['github.io', 'public-suffix', 'private'],
    ['blogspot.com', 'public-suffix', 'private'],
    ['s3.amazonaws.com', 'public-suffix', 'private'],
    ['localhost', 'reserved', 'loopback'],
    ['local', 'reserved', 'multicast DNS'],
    ['arpa', 'reserved', 'reverse'],
    ['in-addr.arpa', 'reserved', 'IPv4'],
    ['ip6.arpa', 'reserved', 'IPv6'],
    ['home.arpa', 'reserved', 'home networks'],
  ])('refuses %s (%s)', (name, kind, why) => {
    const v = suffixVerdict(name);
    expect(v?.kind).toBe(kind);
    expect(v?.message).toContain(`"${name}"`);
    expect(v?.message).toContain(why);
  });

  it.each(['tiktok.com', 'example.co.uk', 'mysite.github.io', 'www.ck', 'bucket.s3.amazonaws.com', 'test', 'example', 'invalid', 'lan', 'wpad', 'x.localhost', 'printer.local', '1.in-addr.arpa'])(
    'lets %s be blocked',
    (name) => {
      expect(suffixVerdict(name)).toBeUndefined();
    },
  );

  it('checks *.d rules as d', () => {
    expect(suffixRefusals(['*.com', 'tiktok.com', '*.tiktok.com', 'co.uk'])).toEqual([suffixVerdict('com')!.message, suffixVerdict('co.uk')!.message]);
  });
});

// Every rule of the PSL, read the way the filter reads it, with `*` standing for some label.
function pslRules(): string[] {
  const t = createRequire(import.meta.url)('tldts/dist/cjs/src/data/trie.js') as {
    nodeFlags: Uint8Array;
    edgeStart: ArrayLike<number>;
    edgeLength: ArrayLike<number>;
    edgeChild: ArrayLike<number>;
    labelText: string;
    rulesRoot: number;
  };
  const offset: number[] = [];
  for (let e = 0, o = 0; e < t.edgeLength.length; e++) {
    offset.push(o);
    o += t.edgeLength[e]!;
  }
  const out: string[] = [];
  const walk = (node: number, name: string) => {
    for (let e = t.edgeStart[node]!; e < t.edgeStart[node + 1]!; e++) {
      const label = t.labelText.slice(offset[e], offset[e]! + t.edgeLength[e]!);
      const child = t.edgeChild[e]!;
      const childName = name === '' ? label : `${label}.${name}`;
      if (t.nodeFlags[child] !== 0) out.push(childName.replace('*', 'anylabel'));
      walk(child, childName);
    }
  };
  walk(t.rulesRoot, '');
  return out;
}

describe('the pre-filter', () => {
  it('is in use with the tldts installed (a tldts that moved its trie would make loading slower)', () => {
    expect(suffixFilterActive()).toBe(true);
  });

  it('lets through every rule of the Public Suffix List, as bytes and as a string', () => {
    // Names reach the filter normalised, IDNs as punycode: the trie holds both forms.
    const rules = pslRules().filter((r) => /^[\x20-\x7e]+$/.test(r));
    expect(rules.length).toBeGreaterThan(10_000);
    const scratch = Buffer.alloc(256);
    const missed = rules.filter((r) => {
      const n = scratch.write(r, 'latin1');
      return !mayBeSuffixBytes(scratch, n) || !mayBeSuffix(r);
    });
    expect(missed).toEqual([]);
    // and tldts itself calls each a suffix (or an exception such as www.ck makes it not one)
    expect(rules.filter((r) => suffixVerdict(r) !== undefined).length).toBeGreaterThan(rules.length * 0.99);
  });

  it('keeps out ordinary names', () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `host${i}.shop${i % 97}.com`);
    const passed = names.filter((n) => mayBeSuffix(n)).length;
    expect(passed).toBeLessThan(names.length * 0.05);
  });
});

describe('suffix rules in list files', () => {
  it('reports com, *.co.uk and localhost with their lines and loads the rest', () => {
    const text = '# site list\ntiktok.com\ncom\n*.co.uk\n0.0.0.0 localhost.example github.io\n||com^\nlocalhost\n';
    for (const r of [parseList(text), loadDomainsFromBytes(Buffer.from(text))]) {
      expect(r.problems.map((p) => [p.line, p.code])).toEqual([
        [3, 'public-suffix'],
        [4, 'public-suffix'],
        [5, 'public-suffix'],
        [6, 'public-suffix'],
        [7, 'reserved'],
      ]);
      expect(r.problems[0]!.message).toMatch(/"com" is a public suffix .*# allow-suffix/);
      expect(r.problems[2]!.text).toBe('0.0.0.0 localhost.example github.io');
    }
    const { set } = loadDomainsFromBytes(Buffer.from(text));
    expect([...set.rules()].sort()).toEqual(['localhost.example', 'tiktok.com']);
    expect(set.match('www.google.com')).toBeUndefined();
  });

  it('loads a suffix whose line says # allow-suffix', () => {
    const text = 'com  # allow-suffix: ticket 4711\n*.github.io # allow-suffix\nco.uk # not allow-suffix\n';
    const { set, problems } = loadDomainsFromBytes(Buffer.from(text));
    expect([...set.rules()].sort()).toEqual(['*.github.io', 'com']);
    expect(problems.map((p) => p.line)).toEqual([3]);
    expect(parseList(text).entries.map((e) => e.domain)).toEqual(['com', 'github.io']);
  });

  it('the byte loader and parseList agree on texts made of suffixes, names and comments', () => {
    const piece = fc.constantFrom('com', 'co.uk', 'github.io', 'localhost', 'tiktok.com', 'x.ck', 'www.ck', '*.', '0.0.0.0 ', ' ', '# allow-suffix', '#', '\n', 'a', '.');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
        const text = pieces.join('');
        const slow = parseList(text);
        const fast = loadDomainsFromBytes(Buffer.from(text));
        expect([...fast.set.rules()].sort()).toEqual([...new Set(slow.entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain)))].sort());
        expect(fast.problems.map((p) => [p.line, p.code])).toEqual(slow.problems.map((p) => [p.line, p.code]));
      }),
      { numRuns: 1000 },
    );
  });
});
