import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainSet } from '../../src/match/domain-set.js';
import { NameSuffixes } from '../../src/match/name-suffixes.js';
import { parseList } from '../../src/lists/formats.js';
import { OverlaySet } from '../../src/match/overlay-set.js';

const set = DomainSet.from(parseList('tiktok.com\n*.wildcard.example\nexact.example.org\n').entries);

describe('DomainSet', () => {
  it.each([
    ['tiktok.com', 'tiktok.com'],
    ['www.tiktok.com', 'tiktok.com'],
    ['a.b.c.v16-webapp.tiktok.com', 'tiktok.com'],
    ['nottiktok.com', undefined],
    ['tiktok.com.evil.example', undefined],
    ['com', undefined],
    ['wildcard.example', undefined],
    ['x.wildcard.example', '*.wildcard.example'],
    ['exact.example.org', 'exact.example.org'],
    ['sub.exact.example.org', 'exact.example.org'],
    ['example.org', undefined],
    ['', undefined],
  ])('%s → %s', (name, rule) => {
    const m = set.match(name);
    expect(m ? (m.subdomainsOnly ? `*.${m.rule}` : m.rule) : undefined).toBe(rule);
  });

  it('prefers the most specific rule', () => {
    const s = DomainSet.from([
      { domain: 'example.com', subdomainsOnly: false },
      { domain: 'deep.example.com', subdomainsOnly: false },
    ]);
    expect(s.match('x.deep.example.com')?.rule).toBe('deep.example.com');
  });

  it('lookup cost does not depend on the list size', () => {
    // Not a timing: a set of 200k rules answers from the suffix walk, so a name that is not listed
    // is still found absent and one that is listed is found, with no scan.
    const big = new DomainSet();
    for (let i = 0; i < 200_000; i++) big.add(`d${i}.example`);
    expect(big.match('www.d199999.example')?.rule).toBe('d199999.example');
    expect(big.match('www.nope.example')).toBeUndefined();
    expect(big.size).toBe(200_000);
  });
});

/** What a DomainSet must answer, written the slow obvious way: most specific suffix first, `d` before `*.d`. */
function reference(rules: { domain: string; subdomainsOnly: boolean }[], name: string): string | undefined {
  const labels = name === '' ? [] : name.split('.');
  for (let k = 0; k < labels.length; k++) {
    const suffix = labels.slice(k).join('.');
    if (rules.some((r) => !r.subdomainsOnly && r.domain === suffix)) return suffix;
    if (k > 0 && rules.some((r) => r.subdomainsOnly && r.domain === suffix)) return `*.${suffix}`;
  }
  return undefined;
}

describe('DomainSet against a reference', () => {
  const label = fc.constantFrom('a', 'b', 'www', 'tiktok', 'com', 'x-y', '0');
  const domain = fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join('.'));
  const rule = fc.record({ domain, subdomainsOnly: fc.boolean() });

  it('match and lookup find the rule the reference finds, for any rules and names', () => {
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 30 }), fc.array(domain, { minLength: 1, maxLength: 20 }), (rules, names) => {
        const set = DomainSet.from(rules);
        const s = new NameSuffixes();
        for (const name of names) {
          const want = reference(rules, name);
          const m = set.match(name);
          expect(m ? (m.subdomainsOnly ? `*.${m.rule}` : m.rule) : undefined).toBe(want);
          const id = set.lookup(s.set(name));
          expect(id >= 0).toBe(want !== undefined);
          if (want !== undefined) expect((s.below ? '*.' : '') + s.text(s.suffix)).toBe(want);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('gives every rule its own number, the same for every name under it', () => {
    const set = DomainSet.from(parseList('tiktok.com\nbytedance.com\n*.tiktok.com\n').entries);
    const s = new NameSuffixes();
    const a = set.lookup(s.set('www.tiktok.com'));
    const b = set.lookup(s.set('m.tiktok.com'));
    const c = set.lookup(s.set('tiktok.com'));
    const d = set.lookup(s.set('api.bytedance.com'));
    expect(a).toBe(b);
    expect(a).toBe(c); // plain tiktok.com is more specific than *.tiktok.com at the same suffix
    expect(d).not.toBe(a);
    // Resuming after a rule finds the next less specific one: tiktok.com, then *.tiktok.com, then none.
    s.set('x.tiktok.com');
    expect(set.lookup(s)).toBe(a);
    expect([s.suffix, s.below]).toEqual([1, false]);
    const wildcard = set.lookup(s, 2 * s.suffix + 1);
    expect([wildcard >= 0 && wildcard !== a, s.suffix, s.below]).toEqual([true, 1, true]);
    expect(set.lookup(s, 2 * s.suffix + 2)).toBe(-1);
  });
});

describe('OverlaySet (runtime edits)', () => {
  const base = DomainSet.from(parseList('tiktok.com\nwww.tiktok.com\nbytedance.com\n').entries);
  const edited = new OverlaySet(base, { add: ['*.capcut.com'], remove: ['www.tiktok.com', 'bytedance.com'] });

  it.each([
    ['www.tiktok.com', 'tiktok.com'], // the removed rule is hidden; its parent still covers the name
    ['m.tiktok.com', 'tiktok.com'],
    ['bytedance.com', undefined],
    ['x.capcut.com', '*.capcut.com'],
    ['capcut.com', undefined],
  ])('%s → %s', (name, rule) => {
    const m = edited.match(name);
    expect(m ? (m.subdomainsOnly ? `*.${m.rule}` : m.rule) : undefined).toBe(rule);
  });
});
