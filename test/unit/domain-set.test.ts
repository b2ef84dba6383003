import { describe, expect, it } from 'vitest';
import { DomainSet } from '../../src/policy/domain-set.js';
import { parseList } from '../../src/lists/formats.js';

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
