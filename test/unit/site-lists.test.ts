import { describe, expect, it } from 'vitest';
import type { ListDefinition, ResolvedLists } from '../../src/lists/catalog.js';
import { curatedListProblem, isInside, releaseDir, siteListFor } from '../../src/lists/site-lists.js';

const def = (name: string, file: string, origin: 'config' | 'catalog', url?: string): ListDefinition => ({ name, file, origin, format: 'auto', ...(url ? { url } : {}) });

function resolved(...defs: ListDefinition[]): ResolvedLists {
  return { lists: new Map(defs.map((d) => [d.name, d])), catalog: { file: '/opt/sluice/blocklists/catalog.yaml', catalog: { version: '1', lists: {}, changelog: [] } } };
}

const tiktok = def('tiktok', '/opt/sluice/blocklists/tiktok.txt', 'catalog');
const local = def('local-additions', '/etc/sluice/lists/local-additions.txt', 'config');
const cwd = '/opt/sluice';

describe('isInside', () => {
  it.each([
    ['/a/b/c.txt', '/a/b', true],
    ['/a/b', '/a/b', true],
    ['/a/bc/d.txt', '/a/b', false],
    ['/a/d.txt', '/a/b', false],
  ])('%s in %s: %s', (file, dir, expected) => expect(isInside(file, dir)).toBe(expected));
});

describe('curatedListProblem', () => {
  it('refuses a catalog list and suggests the site list, with the same domains', () => {
    expect(curatedListProblem(tiktok, resolved(tiktok, local), { verb: 'add', args: ['tiktokv.eu'], cwd })).toBe(
      'list tiktok is part of the curated catalog (blocklists/tiktok.txt), which an upgrade replaces; add it to a site list: sluice lists add local-additions tiktokv.eu',
    );
    expect(curatedListProblem(tiktok, resolved(tiktok, local), { verb: 'import', args: ['./x.txt'], cwd })).toContain('import it into a site list: sluice lists import local-additions ./x.txt');
    expect(curatedListProblem(tiktok, resolved(tiktok, local), { verb: 'remove', args: ['tiktok.com'], cwd })).toContain('add it to the `allow` list of the profile');
  });

  it('suggests creating a site list when there is none', () => {
    expect(curatedListProblem(tiktok, resolved(tiktok), { verb: 'add', args: ['x.example'], cwd })).toMatch(
      /a site list: sluice lists new local-additions && sluice lists add local-additions x\.example$/,
    );
  });

  it("refuses a config list whose file is in the catalog's directory, and allows one in site_dir", () => {
    const old = def('local-additions', '/opt/sluice/blocklists/local-additions.txt', 'config');
    expect(curatedListProblem(old, resolved(tiktok, old), { verb: 'add', args: ['x.example'], cwd })).toBe(
      "the file of list local-additions (blocklists/local-additions.txt) is in the curated catalog's directory, which an upgrade replaces; move it to site_dir and change lists.local-additions.file in the config",
    );
    expect(curatedListProblem(local, resolved(tiktok, local), { verb: 'add', args: ['x.example'], cwd })).toBeUndefined();
    expect(curatedListProblem(old, { lists: new Map([[old.name, old]]) }, { verb: 'add', args: ['x.example'], cwd })).toBeUndefined();
  });
});

describe('siteListFor and releaseDir', () => {
  it('prefers local-additions, never a url list or a file in the release', () => {
    const other = def('review', '/etc/sluice/lists/review.txt', 'config');
    const url = def('ads', '/var/lib/sluice/lists/ads.txt', 'config', 'https://example.org/ads.txt');
    const inRelease = def('old', '/opt/sluice/blocklists/old.txt', 'config');
    expect(siteListFor(resolved(tiktok, inRelease, url, other, local))).toBe('local-additions');
    expect(siteListFor(resolved(tiktok, inRelease, url, other))).toBe('review');
    expect(siteListFor(resolved(tiktok, inRelease, url))).toBeUndefined();
    expect(releaseDir(resolved())).toBe('/opt/sluice/blocklists');
  });
});
