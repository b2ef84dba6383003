import { describe, expect, it } from 'vitest';
import { normaliseDomain, parseList } from '../../src/lists/formats.js';

describe('list formats', () => {
  it('reads plain, hosts, adblock and wildcard lines with comments, reporting bad lines', () => {
    const text = [
      '# a comment',
      'TikTok.com.   # trailing dot and case',
      '0.0.0.0 a.example b.example',
      '127.0.0.1 localhost',
      '||adblock.example^',
      '||important.example^$important',
      '*.wild.example',
      '! adblock comment',
      'not a domain!',
      '||bad.example^$third-party',
      '@@||exception.example^',
      '1.2.3.4',
      'bücher.example',
      '',
    ].join('\n');
    const { entries, problems } = parseList(text);
    expect(entries.map((e) => [e.subdomainsOnly ? `*.${e.domain}` : e.domain, e.line])).toEqual([
      ['tiktok.com', 2],
      ['a.example', 3],
      ['b.example', 3],
      ['adblock.example', 5],
      ['important.example', 6],
      ['*.wild.example', 7],
      ['xn--bcher-kva.example', 13],
    ]);
    expect(problems.map((p) => p.line)).toEqual([9, 10, 11, 12]);
    expect(problems[0]!.message).toMatch(/hosts-file|not a sinkhole/);
  });

  it('rejects adblock syntax in a plain list', () => {
    expect(parseList('||x.example^', 'plain').problems).toHaveLength(1);
    expect(parseList('0.0.0.0 x.example', 'plain').problems).toHaveLength(1);
  });

  it.each([
    ['a..b', false],
    ['-a.example', false],
    ['a'.repeat(64) + '.example', false],
    ['_dmarc.example', true],
    ['x'.repeat(63) + '.example', true],
    ['10.0.0.1', false],
  ])('normaliseDomain(%s) valid=%s', (d, ok) => {
    expect('domain' in normaliseDomain(d)).toBe(ok);
  });
});
