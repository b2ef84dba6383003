// The console examples of README.md and docs/ that say they are checked (an HTML comment before
// the block) are run against a copy of the shipped config, and their output must be what the
// real command prints: they cannot drift. In an example, `…` stands for any text.
//
//   <!-- example: checked against config/sluice.yaml -->
//   <!-- example: checked against config/sluice.yaml with "cidrs: [127.0.0.2/32]" as "cidrs: [127.0.0.300/32]" -->
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeWorkspace, REPO, runSluice, type Workspace } from './cli-workspace.js';

interface Example {
  file: string;
  line: number;
  replace?: [string, string];
  commands: { command: string; expected: string[] }[];
}

const MARK = /<!-- example: checked against config\/sluice\.yaml(?: with "(.+?)" as "(.+?)")? -->\n```console\n([\s\S]*?)```/g;

function examples(): Example[] {
  const files = [
    'README.md',
    ...readdirSync(join(REPO, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const out: Example[] = [];
  for (const file of files) {
    const text = readFileSync(join(REPO, file), 'utf8');
    for (const m of text.matchAll(MARK)) {
      const commands: Example['commands'] = [];
      for (const l of m[3]!.split('\n').slice(0, -1)) {
        if (l.startsWith('$ ')) commands.push({ command: l.slice(2).replace(/ {2,}#.*$/, ''), expected: [] });
        else commands.at(-1)?.expected.push(l);
      }
      out.push({ file, line: text.slice(0, m.index).split('\n').length, ...(m[1] !== undefined ? { replace: [m[1], m[2]!] as [string, string] } : {}), commands });
    }
  }
  return out;
}

/** `sluice a "b c"` → ['a', 'b c']; the command must be sluice itself. */
function argvOf(command: string): string[] {
  const words = [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
  const start = words[0] === 'sluice' ? 1 : words[0] === 'node' && words[1] === 'bin/sluice.js' ? 2 : -1;
  if (start < 0) throw new Error(`not a sluice command: ${command}`);
  return words.slice(start);
}

function matches(expected: string, actual: string): boolean {
  const rx = new RegExp(
    `^${expected
      .split('…')
      .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return rx.test(actual);
}

const all = examples();
const workspaces: Workspace[] = [];
afterAll(() => {
  for (const w of workspaces) w.remove();
});

describe('checked console examples in the docs', () => {
  it('there are some, in the README and in docs/', () => {
    expect(all.some((e) => e.file === 'README.md')).toBe(true);
    expect(all.some((e) => e.file.startsWith('docs/'))).toBe(true);
  });

  it('a wrong example would fail', () => {
    expect(matches('v16-webapp.tiktok.com A: BLOCKED', 'v16-webapp.tiktok.com A: ALLOWED')).toBe(false);
    expect(matches('  policy     app-ban: Ban (…)', '  policy     app-ban: Ban (CCB advice)')).toBe(true);
  });

  it.each(all.map((e) => [`${e.file}:${e.line}`, e] as const))('%s prints what the real command prints', async (_where, e) => {
    const ws = makeWorkspace();
    workspaces.push(ws);
    if (e.replace) {
      const config = ws.read('config/sluice.yaml');
      expect(config, `${e.file}:${e.line}: the config has no "${e.replace[0]}"`).toContain(e.replace[0]);
      ws.write('config/sluice.yaml', config.replace(e.replace[0], e.replace[1]));
    }
    for (const c of e.commands) {
      const argv = argvOf(c.command);
      const r = await runSluice(argv.includes('config/sluice.yaml') ? argv : ['--config', 'config/sluice.yaml', ...argv], ws.dir);
      const actual = `${r.stdout}${r.stderr}`.replace(/\n$/, '').split('\n');
      const where = `${e.file}:${e.line} \`${c.command}\``;
      expect(actual.length, `${where}: printed\n${actual.join('\n')}`).toBe(c.expected.length);
      c.expected.forEach((line, i) => expect(matches(line, actual[i]!), `${where}, line ${i + 1}:\n  doc:  ${line}\n  real: ${actual[i]}`).toBe(true));
    }
  });
});
