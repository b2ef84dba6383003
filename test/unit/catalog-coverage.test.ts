import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCatalog } from '../../src/lists/catalog.js';
import { checkName, concreteName, coverage, indexCatalog, readReference } from '../../src/tools/catalog-coverage.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-coverage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const catalogYaml = `version: "1"
lists:
  app:
    file: app.txt
    app: App
    category: app
    sources:
      - id: ref
        repository: owner/repo
        path: data/app
        commit: 0123456789abcdef0123456789abcdef01234567
        license: MIT
    excluded:
      - domain: cdn.example
        also: [cdn2.example]
        subdomains: true
        reason: shared CDN
      - domain: vendor.example
        reason: vendor root, app hosts listed one by one
    also_serves:
      - domain: app.example
        serves: the vendor's business portal
        narrower: allow portal.app.example
changelog: []
`;
writeFileSync(join(dir, 'catalog.yaml'), catalogYaml);
writeFileSync(join(dir, 'app.txt'), 'app.example  # ref\n*.wild.example  # ref\napp.vendor.example  # ref\n');

describe('catalog fields for curation', () => {
  it('accepts excluded also/subdomains, also_serves and a source commit, with defaults', () => {
    const c = parseCatalog(catalogYaml, 'catalog.yaml');
    const l = c.lists['app']!;
    expect(l.sources[0]!.commit).toBe('0123456789abcdef0123456789abcdef01234567');
    expect(l.excluded[0]).toEqual({ domain: 'cdn.example', also: ['cdn2.example'], subdomains: true, reason: 'shared CDN' });
    expect(l.excluded[1]).toEqual({ domain: 'vendor.example', also: [], subdomains: false, reason: 'vendor root, app hosts listed one by one' });
    expect(l.also_serves).toEqual([{ domain: 'app.example', serves: "the vendor's business portal", narrower: 'allow portal.app.example' }]);
    expect(parseCatalog('version: "1"\nlists:\n  x:\n    file: x.txt\n', 'c.yaml').lists['x']!.also_serves).toEqual([]);
  });

  it('still refuses unknown fields', () => {
    expect(() => parseCatalog('version: "1"\nlists:\n  x:\n    file: x.txt\n    also_serve: []\n', 'c.yaml')).toThrow(/also_serve|Unrecognized/);
    expect(() => parseCatalog('version: "1"\nlists:\n  x:\n    file: x.txt\n    excluded:\n      - domain: a.example\n        reason: r\n        scope: all\n', 'c.yaml')).toThrow();
  });

  it('parses the shipped catalog', () => {
    const c = parseCatalog(readFileSync('blocklists/catalog.yaml', 'utf8'), 'blocklists/catalog.yaml');
    expect(c.changelog[0]!.version).toBe(c.version);
    expect(c.lists['camscanner']!.also_serves.map((a) => a.domain)).toContain('intsig.net');
    expect(c.lists['wechat']!.also_serves.map((a) => a.domain)).toContain('weixin.qq.com');
    expect(c.lists['bytedance-shared']!.also_serves.length).toBeGreaterThan(0);
  });
});

describe('catalog coverage', () => {
  const index = indexCatalog(join(dir, 'catalog.yaml'));

  it('matches as the resolver does: a rule covers its name and below, *.d only below', () => {
    expect(checkName(index, 'deep.api.app.example')).toEqual({ kind: 'blocked', list: 'app', rule: 'app.example' });
    expect(checkName(index, 'x.wild.example')).toEqual({ kind: 'blocked', list: 'app', rule: '*.wild.example' });
    expect(checkName(index, 'wild.example').kind).toBe('missed');
    expect(checkName(index, 'notapp.example').kind).toBe('missed');
  });

  it('an exclusion covers its names, and the names below only with subdomains', () => {
    expect(checkName(index, 'cdn2.example')).toMatchObject({ kind: 'excluded', domain: 'cdn2.example' });
    expect(checkName(index, 'app.example.cdn.example')).toMatchObject({ kind: 'excluded', domain: 'cdn.example', reason: 'shared CDN' });
    expect(checkName(index, 'vendor.example')).toMatchObject({ kind: 'excluded' });
    expect(checkName(index, 'chat.vendor.example').kind).toBe('missed');
    expect(checkName(index, 'app.vendor.example').kind).toBe('blocked');
  });

  it('reads a snapshot header and entries, and counts names and roots', () => {
    const f = join(dir, 'ref.txt');
    writeFileSync(f, '# repository: owner/repo\n# commit: abc\n# app: app\napp.example\nfull:a.cdn.example\np16-*.app.example\nchat.vendor.example\n');
    const ref = readReference(f);
    expect(ref.meta).toMatchObject({ repository: 'owner/repo', commit: 'abc', app: 'app' });
    expect(concreteName('p16-*.app.example')).toBe('p16-x0.app.example');
    const c = coverage(index, ref);
    expect(c.checked.map((x) => x.verdict.kind)).toEqual(['blocked', 'excluded', 'blocked', 'missed']);
    expect(c.roots).toEqual([
      { root: 'app.example', names: 2, blocked: 2, excluded: 0 },
      { root: 'cdn.example', names: 1, blocked: 0, excluded: 1 },
      { root: 'vendor.example', names: 1, blocked: 0, excluded: 0 },
    ]);
  });
});
