// `sluice lists`, `lists show`, `lists add|remove|new` and the audit log, run as the real binary
// against a copy of the repository's config and blocklists.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseList } from '../../src/lists/formats.js';
import { makeWorkspace, REPO, ruleLines, runSluice, type Workspace } from './cli-workspace.js';

interface CatalogYaml {
  version: string;
  lists: Record<string, { file: string; app?: string | null; vendor?: string | null }>;
}
const catalog = parseYaml(readFileSync(join(REPO, 'blocklists/catalog.yaml'), 'utf8')) as CatalogYaml;
const catalogNames = Object.keys(catalog.lists);
const expectedUser = process.env.SUDO_USER || userInfo().username;
const today = () => new Date().toISOString().slice(0, 10);
/** The reference config's site list (site_dir is lists/ beside the config). */
const SITE = 'config/lists/local-additions.txt';

// Tests run concurrently: `ws` is only read; a test that edits works on a fresh copy of its own.
let ws: Workspace;
const spaces: Workspace[] = [];
const fresh = (): Workspace => {
  const w = makeWorkspace();
  spaces.push(w);
  return w;
};
beforeAll(() => {
  ws = fresh();
});
afterAll(() => spaces.forEach((w) => w.remove()));

describe.concurrent('sluice lists', () => {
  it('prints a table row for every catalog list with its entry count, app, vendor, update time and source', async () => {
    const r = await ws.sluice('lists');
    expect(r.code, r.stderr).toBe(0);
    const [header, ...lines] = r.stdout.split('\n');
    expect(header!.split(/ {2,}/)).toEqual(['LIST', 'ENTRIES', 'APP', 'VENDOR', 'USED BY', 'UPDATED', 'SOURCE']);
    const rows = new Map(lines.filter((l) => /^\S+ {2,}\d+ /.test(l)).map((l) => [l.split(/ {2,}/)[0]!, l.split(/ {2,}/)]));
    for (const name of catalogNames) {
      const entry = catalog.lists[name]!;
      const row = rows.get(name);
      expect(row, `row for ${name}`).toBeDefined();
      const [, entries, app, vendor, , updated, source] = row!;
      expect(Number(entries), `${name} entries`).toBe(ruleLines(ws.read(`blocklists/${entry.file}`)).length);
      expect(app).toBe(entry.app ?? '-');
      expect(vendor).toBe(entry.vendor ?? '-');
      expect(updated).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
      expect(source).toBe(`blocklists/${entry.file}`);
    }
    expect(rows.get('local-additions')?.[1]).toBe('0');
    expect(r.stdout).toContain(`catalog ${catalog.version} (blocklists/catalog.yaml)`);
  });

  it('--json gives every catalog list with entries, app, vendor, source, updated and catalog version', async () => {
    const r = await ws.sluice('lists', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      catalog: { file: string; version: string };
      lists: { name: string; entries: number; problems: number; app?: string; vendor?: string; source: string; updated?: string; origin: string; usedBy: string[] }[];
    };
    expect(out.catalog).toEqual({ file: ws.path('blocklists/catalog.yaml'), version: catalog.version });
    const byName = new Map(out.lists.map((l) => [l.name, l]));
    expect([...byName.keys()].sort()).toEqual([...catalogNames, 'local-additions'].sort());
    for (const name of catalogNames) {
      const entry = catalog.lists[name]!;
      const l = byName.get(name)!;
      const file = ws.path(`blocklists/${entry.file}`);
      expect(l.entries, `${name} entries`).toBe(ruleLines(readFileSync(file, 'utf8')).length);
      expect(l.entries).toBeGreaterThan(0);
      expect(l.problems).toBe(0);
      expect(l.app).toBe(entry.app ?? undefined);
      expect(l.vendor).toBe(entry.vendor ?? undefined);
      expect(l.source).toBe(`blocklists/${entry.file}`);
      expect(l.origin).toBe('catalog');
      expect(l.updated).toBe(statSync(file).mtime.toISOString());
    }
    expect(byName.get('local-additions')).toMatchObject({ origin: 'config', entries: 0, source: 'config/lists/local-additions.txt' });
  });

  it('show prints the rules of a list in file order', async () => {
    const r = await ws.sluice('lists', 'show', 'temu');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('kwcdn.com\ntemu.com\n');
  });

  it('show --grep keeps only matching rules, case-insensitively', async () => {
    const r = await ws.sluice('lists', 'show', 'tiktok', '--grep', 'CDN');
    expect(r.code, r.stderr).toBe(0);
    const shown = r.stdout.trim().split('\n');
    const expected = ruleLines(ws.read('blocklists/tiktok.txt')).filter((d) => d.includes('cdn'));
    expect(expected.length).toBeGreaterThan(5);
    expect(shown).toEqual(expected);
  });

  it('show --json names each rule with its line', async () => {
    const r = await ws.sluice('lists', 'show', 'shareit', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { list: string; rules: { rule: string; line: number }[]; problems: unknown[] };
    const lines = ws.read('blocklists/shareit.txt').split('\n');
    expect(out.rules.map((x) => x.rule)).toEqual(['shareit.one', 'ushareit.com', 'wshareit.com']);
    for (const x of out.rules) expect(lines[x.line - 1]).toMatch(new RegExp(`^${x.rule.replaceAll('.', '\\.')}\\s`));
    expect(out.problems).toEqual([]);
  });

  it('show of an unknown list fails with exit 1', async () => {
    const unknown = await ws.sluice('lists', 'show', 'no-such-list');
    expect(unknown.code, unknown.stderr).toBe(1);
    expect(unknown.stderr).toContain('no list named "no-such-list"');
  });
});

describe.concurrent('sluice lists add / remove', () => {
  it('add appends the domains with the reason as a comment and keeps every existing byte', async () => {
    const ws = fresh();
    ws.write(SITE, `${ws.read(SITE)}# reviewed 2026-11\nkept.example  # ticket 4700\n`);
    const before = ws.read(SITE);
    const r = await ws.sluice('lists', 'add', 'local-additions', 'temu-extra.example', 'Cdn.Temu-Extra.Example.', '--reason', 'ticket 4711');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('+ temu-extra.example\n+ cdn.temu-extra.example\n');
    const after = ws.read(SITE);
    expect(after.startsWith(before)).toBe(true);
    const comment = `  # added ${today()} by ${expectedUser}: ticket 4711`;
    expect(after.slice(before.length)).toBe(`temu-extra.example${comment}\ncdn.temu-extra.example${comment}\n`);
    expect(parseList(after).problems).toEqual([]);
  });

  it('add of a domain that is listed already reports "already listed" and leaves the file alone', async () => {
    const ws = fresh();
    ws.write(SITE, `${ws.read(SITE)}listed.example\n`);
    const before = readFileSync(ws.path(SITE));
    const r = await ws.sluice('lists', 'add', 'local-additions', 'LISTED.example');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('  listed.example already listed\n');
    expect(readFileSync(ws.path(SITE)).equals(before)).toBe(true);
  });

  it('an invalid domain refuses the whole edit with exit 1 and leaves the file byte-identical', async () => {
    const ws = fresh();
    const before = readFileSync(ws.path('blocklists/temu.txt'));
    const auditBefore = ws.audit().length;
    const r = await ws.sluice('lists', 'add', 'temu', 'fine.example', 'bad..example', 'also fine.example', '10.0.0.1', '--reason', 'x');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/nothing changed/);
    expect(r.stderr).toContain('"bad..example" is not a valid domain name');
    expect(r.stderr).toContain('"also fine.example" is not a valid domain name');
    expect(r.stderr).toContain('"10.0.0.1" is an IP address');
    expect(r.stdout).toBe('');
    expect(readFileSync(ws.path('blocklists/temu.txt')).equals(before)).toBe(true);
    expect(ws.audit()).toHaveLength(auditBefore);
  });

  it("remove drops the domain's line and keeps comments and the order of the rest", async () => {
    const ws = fresh();
    ws.write(SITE, `${ws.read(SITE)}# shop\nshop-a.example  # ticket 1\nshop-b.example  # ticket 2\n# end\nshop-c.example\n`);
    const before = ws.read(SITE);
    const r = await ws.sluice('lists', 'remove', 'local-additions', 'shop-b.example', 'not-there.example', '--reason', 'false positive');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('- shop-b.example\n  not-there.example not in the list\n');
    const expected = before
      .split('\n')
      .filter((l) => !l.startsWith('shop-b.example '))
      .join('\n');
    expect(ws.read(SITE)).toBe(expected);
  });

  it('removing one domain from a hosts line with several keeps the others and the comment', async () => {
    const ws = fresh();
    const header = ws.read(SITE);
    ws.write(SITE, `${header}0.0.0.0 one.example two.example three.example  # trio\nfour.example\n`);
    const r = await ws.sluice('lists', 'remove', 'local-additions', 'two.example');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('- two.example\n');
    const after = ws.read(SITE);
    expect(after).toBe(`${header}0.0.0.0 one.example three.example  # trio\nfour.example\n`);
    expect(parseList(after).entries.map((e) => e.domain)).toEqual(['one.example', 'three.example', 'four.example']);
  });

  it('add and remove understand *.domain as subdomains only, distinct from the domain itself', async () => {
    const ws = fresh();
    const header = ws.read(SITE);
    ws.write(SITE, `${header}four.example\n`);
    const add = await ws.sluice('lists', 'add', 'local-additions', '*.four.example', '*.wild.example');
    expect(add.code, add.stderr).toBe(0);
    // four.example covers what *.four.example names: said, and added as asked
    expect(add.stdout).toBe('note: *.four.example is already blocked by list local-additions (rule four.example; profile staff)\n+ *.four.example\n+ *.wild.example\n');
    const rm = await ws.sluice('lists', 'remove', 'local-additions', '*.four.example');
    expect(rm.stdout).toBe('- *.four.example\n');
    const rules = parseList(ws.read(SITE)).entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain));
    expect(rules).toEqual(['four.example', '*.wild.example']);
  });
});

describe.concurrent('concurrent edits', () => {
  it('eight `lists add` processes at once each land exactly once, atomically, without leftovers', async () => {
    const ws2 = fresh();
    const domains = Array.from({ length: 8 }, (_, i) => `parallel-${i}.example`);
    const runs = await Promise.all(domains.map((d, i) => ws2.sluice('lists', 'add', 'local-additions', d, '--reason', `run ${i}`)));
    runs.forEach((r, i) => {
      expect(r.stderr).toBe('');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`+ ${domains[i]}\n`);
    });
    const text = ws2.read(SITE);
    const parsed = parseList(text);
    expect(parsed.problems).toEqual([]);
    expect(parsed.entries.map((e) => e.domain).sort()).toEqual([...domains].sort());
    // the two header comment lines are still first
    expect(text.split('\n').slice(0, 2)).toEqual(ws.read(SITE).split('\n').slice(0, 2));
    for (const [i, d] of domains.entries()) expect(text).toContain(`${d}  # added ${today()} by ${expectedUser}: run ${i}\n`);
    expect(readdirSync(ws2.path('config/lists')).filter((f) => !f.endsWith('.txt'))).toEqual([]);
    const audit = ws2.audit();
    expect(audit).toHaveLength(8);
    expect(audit.flatMap((a) => a.domains as string[]).sort()).toEqual([...domains].sort());
  });
});

describe.concurrent('the audit log', () => {
  it('has one JSON line per edit with time, user, command, list, domains and reason', async () => {
    const ws3 = fresh();
    const t0 = Date.now();
    expect((await ws3.sluice('lists', 'add', 'local-additions', 'shein-audit.example', '--reason', 'seen in query log')).code).toBe(0);
    expect((await ws3.sluice('lists', 'remove', 'local-additions', 'shein-audit.example', '--reason', 'false positive')).code).toBe(0);
    const t1 = Date.now();
    const lines = ws3.read('var/audit.log').trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    const [add, remove] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const rec of [add!, remove!]) {
      const t = Date.parse(String(rec.time));
      expect(rec.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(t).toBeGreaterThanOrEqual(t0 - 1000);
      expect(t).toBeLessThanOrEqual(t1 + 1000);
      expect(rec.user).toBe(expectedUser);
    }
    expect(add).toMatchObject({ command: 'lists add', list: 'local-additions', domains: ['shein-audit.example'], reason: 'seen in query log' });
    expect(remove).toMatchObject({ command: 'lists remove', list: 'local-additions', domains: ['shein-audit.example'], reason: 'false positive' });
  });

  it('names the invoking user from SUDO_USER', async () => {
    const ws4 = fresh();
    const r = await runSluice(['--config', ws4.configFile, 'lists', 'add', 'local-additions', 'sudo.example'], ws4.dir, { SUDO_USER: 'alice' });
    expect(r.code, r.stderr).toBe(0);
    expect(ws4.audit()).toMatchObject([{ user: 'alice', command: 'lists add', list: 'local-additions', domains: ['sudo.example'] }]);
    expect(ws4.read(SITE)).toContain(`sudo.example  # added ${today()} by alice\n`);
  });
});

describe.concurrent('sluice lists new', () => {
  it('creates the file, registers it in the config keeping every other line, and the config still validates', async () => {
    const ws = fresh();
    const before = ws.read('config/sluice.yaml');
    const r = await ws.sluice('lists', 'new', 'review-2026', '--description', 'Domains found by our own review');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('created config/lists/review-2026.txt');
    expect(ws.read('config/lists/review-2026.txt')).toMatch(/^# review-2026: Domains found by our own review\n/);
    const after = ws.read('config/sluice.yaml');
    const added = after.split('\n').filter((l) => !before.split('\n').includes(l));
    expect(added).toEqual(['  review-2026: { file: lists/review-2026.txt, description: Domains found by our own review }']);
    // nothing else changed: comments, their alignment and one-line flow sequences stay as written
    expect(
      after
        .split('\n')
        .filter((l) => !added.includes(l))
        .join('\n'),
    ).toBe(before);
    expect((parseYaml(after) as { lists: Record<string, unknown> }).lists['review-2026']).toEqual({
      file: 'lists/review-2026.txt',
      description: 'Domains found by our own review',
    });
    const v = await ws.sluice('config', 'validate');
    expect(v.stderr).toBe('');
    expect(v.code, v.stderr).toBe(0);
    const cfg = parseYaml(after) as Record<string, Record<string, unknown>>;
    expect(v.stdout).toContain(
      `OK (${Object.keys(cfg.listeners!).length} listeners, ${Object.keys(cfg.networks!).length} networks, ` +
        `${Object.keys(cfg.profiles!).length} profiles, ${Object.keys(cfg.lists!).length} lists)`,
    );
    expect(Object.keys(cfg.lists!)).toHaveLength(Object.keys((parseYaml(before) as { lists: object }).lists).length + 1);
    expect(ws.audit().at(-1)).toMatchObject({ command: 'lists new', list: 'review-2026', reason: 'Domains found by our own review' });
  });

  it('lets exactly one of several admins creating the same list at once have it, and the config stays valid', async () => {
    const ws = fresh();
    const runs = await Promise.all(Array.from({ length: 4 }, () => ws.sluice('lists', 'new', 'same-name', '--description', 'raced')));
    expect(runs.map((r) => r.code).sort()).toEqual([0, 1, 1, 1]);
    for (const r of runs.filter((x) => x.code === 1)) expect(r.stderr).toMatch(/exists already/);
    const cfg = ws.read('config/sluice.yaml');
    expect(cfg.split('\n').filter((l) => l.trimStart().startsWith('same-name:'))).toHaveLength(1);
    expect(ws.read('config/lists/same-name.txt')).toMatch(/^# same-name: raced\n/);
    const v = await ws.sluice('config', 'validate');
    expect(v.code, v.stderr).toBe(0);
  });

  it('refuses a name that exists already and a name that is not an identifier', async () => {
    const before = ws.read('config/sluice.yaml');
    const dup = await ws.sluice('lists', 'new', 'tiktok');
    expect(dup.code, dup.stderr).toBe(1);
    expect(dup.stderr).toContain('a list named "tiktok" exists already');
    const bad = await ws.sluice('lists', 'new', 'no spaces');
    expect(bad.code, bad.stderr).toBe(2);
    expect(ws.read('config/sluice.yaml')).toBe(before);
  });
});
