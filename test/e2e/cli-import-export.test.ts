// `sluice lists import` from files and from a local HTTP server in every format, and
// `lists export` → `lists new` → `lists import` round trips that keep the rule set, wildcards included.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseList } from '../../src/lists/formats.js';
import { makeWorkspace, startListServer, type ListServer, type Workspace } from './cli-workspace.js';

let ws: Workspace;
let http: ListServer;
const formats = ['plain', 'hosts', 'adblock', 'auto'] as const;
beforeAll(async () => {
  ws = makeWorkspace();
  http = await startListServer();
  // Lists for the import tests, registered by hand: `lists new` has tests of its own below.
  const cfg = ws.read('config/sluice.yaml');
  const local = [...formats.map((f) => `imported-${f}`), 'strict-plain', 'rt-source'];
  const extra = local.map((n) => `  ${n}: { file: lists/${n}.txt }\n`).join('');
  ws.write('config/sluice.yaml', cfg.replace(/^lists:\n/m, `lists:\n${extra}`));
  for (const n of local) ws.write(`config/lists/${n}.txt`, `# ${n}\n`);
});
afterAll(async () => {
  ws?.remove();
  await http?.close();
});

/** The rules of a list file as sluice parses them, sorted. */
function rulesOf(list: string): string[] {
  return parseList(ws.read(`config/lists/${list}.txt`))
    .entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain))
    .sort();
}

const sources = {
  plain: {
    text: '# a plain list\nplain-a.example\nPlain-B.Example.   # case and trailing dot\n*.sub.plain.example\n\n',
    rules: ['*.sub.plain.example', 'plain-a.example', 'plain-b.example'],
  },
  hosts: {
    text: '# a hosts file\n127.0.0.1 localhost\n::1 ip6-localhost\n0.0.0.0 hosts-a.example hosts-b.example  # two names\n127.0.0.1 hosts-c.example\n0.0.0.0 *.sub.hosts.example\n',
    rules: ['*.sub.hosts.example', 'hosts-a.example', 'hosts-b.example', 'hosts-c.example'],
  },
  adblock: {
    text: '[Adblock Plus 2.0]\n! an adblock list\n||ad-a.example^\n||ad-b.example^$important\n||*.sub.ad.example^\n',
    rules: ['*.sub.ad.example', 'ad-a.example', 'ad-b.example'],
  },
  auto: {
    text: 'mixed-plain.example\n0.0.0.0 mixed-hosts.example\n||mixed-adblock.example^\n*.sub.mixed.example\n! adblock comment\n# hash comment\n',
    rules: ['*.sub.mixed.example', 'mixed-adblock.example', 'mixed-hosts.example', 'mixed-plain.example'],
  },
} as const;

describe.concurrent('sluice lists import', () => {
  it.each(formats)('--format %s reads the same rules from a file and from an HTTP URL', async (format) => {
    const { text, rules } = sources[format];
    const list = `imported-${format}`;
    ws.write(`${format}.src`, text);
    http.serve(`/${format}.txt`, text);

    const fromFile = await ws.sluice('lists', 'import', list, ws.path(`${format}.src`), '--format', format, '--reason', 'file import');
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toBe(`${list}: ${rules.length} added, 0 already listed, 0 lines skipped\n`);
    expect(rulesOf(list)).toEqual([...rules].sort());

    // The same rules over HTTP: nothing new, every rule already listed.
    const fromUrl = await ws.sluice('lists', 'import', list, http.url(`/${format}.txt`), '--format', format);
    expect(fromUrl.code, fromUrl.stderr).toBe(0);
    expect(fromUrl.stdout).toBe(`${list}: 0 added, ${rules.length} already listed, 0 lines skipped\n`);
    expect(http.requests.some((q) => q.path === `/${format}.txt` && q.status === 200)).toBe(true);

    const audit = ws.audit().filter((a) => a.list === list && a.command === 'lists import');
    expect(audit).toHaveLength(2);
    expect(audit[0]).toMatchObject({ reason: 'file import' });
    expect([...(audit[0]!.domains as string[])].sort()).toEqual([...rules].sort());
    expect(audit[1]!.domains).toEqual([]);
    expect(audit[1]!.result).toContain(`from ${http.url(`/${format}.txt`)}: 0 added, ${rules.length} already listed`);
  });
});

describe.concurrent('import problems', () => {
  it('a source in another format than --format says so line by line and adds only what it understood', async () => {
    ws.write('hosts-as-plain.src', 'ok-plain.example\n0.0.0.0 hosts-line.example\n||adblock-line.example^\n');
    const r = await ws.sluice('lists', 'import', 'strict-plain', ws.path('hosts-as-plain.src'), '--format', 'plain');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('strict-plain: 1 added, 0 already listed, 2 lines skipped\n');
    expect(r.stderr).toContain('hosts-as-plain.src:2: expected one domain per line');
    expect(r.stderr).toContain('hosts-as-plain.src:3: ');
    expect(rulesOf('strict-plain')).toEqual(['ok-plain.example']);
  });

  it('an HTTP error or a missing file fails with exit 1 and changes nothing', async () => {
    const before = ws.read('config/lists/local-additions.txt');
    const missing = await ws.sluice('lists', 'import', 'local-additions', http.url('/missing.txt'));
    expect(missing.code, missing.stderr).toBe(1);
    expect(missing.stderr).toContain(`cannot read ${http.url('/missing.txt')}: HTTP 404`);
    const noFile = await ws.sluice('lists', 'import', 'local-additions', ws.path('no-such-file.txt'));
    expect(noFile.code, noFile.stderr).toBe(1);
    expect(noFile.stderr).toContain('cannot read');
    expect(ws.read('config/lists/local-additions.txt')).toBe(before);
  });
});

describe.concurrent('lists export round trips', () => {
  const original = ['# round-trip source', 'rt-plain.example', '0.0.0.0 rt-hosts-a.example rt-hosts-b.example', '||rt-adblock.example^', '*.sub.rt.example', 'xn--bcher-kva.example', ''].join('\n');
  const originalRules = parseList(original)
    .entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain))
    .sort();

  beforeAll(() => {
    ws.write('config/lists/rt-source.txt', original);
  });

  it.each(['plain', 'hosts', 'adblock'] as const)('--format %s exported and imported into a new list gives the same rule set (hosts: without the subdomain-only rules)', async (format) => {
    expect(originalRules).toContain('*.sub.rt.example');
    const exported = await ws.sluice('lists', 'export', 'rt-source', '--format', format);
    expect(exported.code, exported.stderr).toBe(0);
    const body = exported.stdout.split('\n').filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('!'));
    const shape = { plain: /^(\*\.)?[a-z0-9.-]+$/, hosts: /^0\.0\.0\.0 [a-z0-9.-]+$/, adblock: /^\|\|(\*\.)?[a-z0-9.-]+\^$/ }[format];
    for (const line of body) expect(line).toMatch(shape);
    // a hosts file cannot say "subdomains only": the rule is a comment line, with a note on stderr
    const expected = format === 'hosts' ? originalRules.filter((r) => !r.startsWith('*.')) : originalRules;
    expect(body).toHaveLength(expected.length);
    if (format === 'hosts') {
      expect(exported.stdout).toContain('# not exported: *.sub.rt.example (subdomains of sub.rt.example only; a hosts file cannot express that)\n');
      expect(exported.stderr).toContain('note: 1 subdomains-only rule(s) not exported: a hosts file cannot express "subdomains only" (*.sub.rt.example)');
    } else expect(exported.stderr).toBe('');
    // the exported text is a valid list in that format
    expect(parseList(exported.stdout, format).problems).toEqual([]);

    ws.write(`rt.${format}`, exported.stdout);
    const list = `rt-${format}`;
    expect((await ws.sluice('lists', 'new', list, '--description', `round trip via ${format}`)).code).toBe(0);
    const imported = await ws.sluice('lists', 'import', list, ws.path(`rt.${format}`), '--format', format);
    expect(imported.code, imported.stderr).toBe(0);
    // every rule is in rt-source too (and in the other round trips' lists): `lists import` notes that first
    expect(imported.stdout).toMatch(/^note: .* is already in list rt-(source|plain|hosts|adblock) \(rule .*\), which no profile or policy uses\n/);
    expect(imported.stdout.split('\n').at(-2)).toBe(`${list}: ${expected.length} added, 0 already listed, 0 lines skipped`);
    expect(rulesOf(list)).toEqual(expected);
  });
});
