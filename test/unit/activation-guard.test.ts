import { describe, expect, it } from 'vitest';
import { decideActivation, sniffContent, type ListContent } from '../../src/lists/activation-guard.js';
import { loadDomainsFromBytes } from '../../src/lists/list-bytes.js';

const content = (entries: number, extra: Partial<ListContent> = {}): ListContent => ({ sha256: `sha-${entries}`, entries, problems: 0, bytes: entries * 12, ...extra });
const good = (entries: number) => ({ sha256: 'good', entries });

describe('decideActivation', () => {
  it.each([
    ['a first list', content(40), undefined, 'first'],
    ['a first list empty by design', content(0, { bytes: 120 }), undefined, 'first'],
    ['an empty list staying empty', content(0), { sha256: 'other', entries: 0 }, 'fine'],
    ['a list growing', content(50), good(40), 'fine'],
    ['a list losing exactly half', content(20), good(40), 'fine'],
    ['the same content as the good state', { ...content(0), sha256: 'good' }, good(40), 'unchanged'],
  ])('activates %s', (_what, next, last, why) => {
    expect(decideActivation(next, last)).toEqual({ activate: true, why });
  });

  it.each([
    ['a file truncated to 0 bytes', content(0, { bytes: 0 }), good(40), /^it is empty \(0 bytes\); the last good state had 40 entries$/],
    ['a file left with comments only', content(0, { bytes: 80 }), good(40), /^it has no entries/],
    ['a file losing more than half', content(19), good(40), /19 entries against 40 in the last good state: more than half would be lost/],
    ['binary garbage', content(1, { garbage: 'binary' }), good(40), /binary file/],
    ['an HTML error page', content(0, { garbage: 'markup' }), good(40), /HTML or XML page/],
    ['mostly lines that are not rules', content(3, { problems: 4 }), good(5), /4 lines that are not rules against 3 entries/],
  ])('refuses %s', (_what, next, last, reason) => {
    const d = decideActivation(next, last);
    expect(d.activate).toBe(false);
    expect(d.activate === false && d.reason).toMatch(reason);
  });

  it('refuses garbage even at the first start, with nothing to compare it to', () => {
    expect(decideActivation(content(0, { garbage: 'markup' }), undefined)).toMatchObject({ activate: false });
    expect(decideActivation(content(1, { problems: 9 }), undefined)).toMatchObject({ activate: false });
  });

  it('activates a content the admin accepted over the state in force, and only that content', () => {
    const truncated = content(0, { bytes: 0, sha256: 'empty' });
    expect(decideActivation(truncated, good(40), { sha256: 'empty', from: 'good', at: 1 })).toEqual({ activate: true, why: 'accepted' });
    expect(decideActivation(truncated, good(40), { sha256: 'another', from: 'good', at: 1 })).toMatchObject({ activate: false });
    expect(decideActivation(truncated, good(40), { sha256: 'empty', from: 'older', at: 1 })).toMatchObject({ activate: false });
    expect(decideActivation(content(0, { garbage: 'markup', sha256: 'page' }), undefined, { sha256: 'page', at: 1 })).toEqual({ activate: true, why: 'accepted' });
  });

  it('does not let an old acceptance of an empty list through a later truncation', () => {
    // emptied on purpose at t=100 over state "good"; filled again, with other or the same content, at t=200; truncated again
    const acceptance = { sha256: 'empty', from: 'good', at: 100 };
    const truncated = content(0, { bytes: 0, sha256: 'empty' });
    expect(decideActivation(truncated, { sha256: 'good', entries: 40, since: 50 }, acceptance)).toEqual({ activate: true, why: 'accepted' });
    expect(decideActivation(truncated, { sha256: 'refilled', entries: 30, since: 200 }, acceptance)).toMatchObject({ activate: false });
    expect(decideActivation(truncated, { sha256: 'good', entries: 40, since: 200 }, acceptance)).toMatchObject({ activate: false });
  });
});

describe('sniffContent', () => {
  it.each([
    ['<!DOCTYPE html><html><body>502 Bad Gateway</body></html>', 'markup'],
    ['\ufeff\n  <html>', 'markup'],
    ['<?xml version="1.0"?><Error/>', 'markup'],
    ['tiktok.com\n# <b>not markup</b>\n', undefined],
    ['', undefined],
  ])('%j is %s', (text, kind) => {
    expect(sniffContent(Buffer.from(text))).toBe(kind);
  });

  it('calls NUL bytes, other control bytes and UTF-16 text binary', () => {
    expect(sniffContent(Buffer.from([0x74, 0x00, 0x69, 0x00]))).toBe('binary');
    expect(sniffContent(Buffer.from('tiktok.com\n\x01\x02\x03\n'))).toBe('binary');
    expect(sniffContent(Buffer.from('tiktok.com\n', 'utf16le'))).toBe('binary');
    expect(sniffContent(Buffer.from('tiktok.com\r\n\tv16.tiktok.com\f\n'))).toBeUndefined();
  });

  it('is what the byte loader reports for the head of a file', () => {
    expect(loadDomainsFromBytes(Buffer.from('<html>\nexample.com\n')).garbage).toBe('markup');
    expect(loadDomainsFromBytes(Buffer.from('example.com\n')).garbage).toBeUndefined();
    expect(loadDomainsFromBytes(Buffer.from('example.com\n')).bytes).toBe(12);
  });
});
