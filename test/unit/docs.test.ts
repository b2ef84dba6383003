import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { renderCliReference } from '../../src/cli/reference.js';
import { configKeys, IMPLIED_DESCRIPTIONS, renderConfigReference } from '../../src/config/reference.js';

describe('docs', () => {
  it('docs/cli.md is the current CLI reference (run `npm run docs` after changing a command)', async () => {
    const committed = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderCliReference(await buildProgram()));
  });

  it('every command appears in the CLI reference', async () => {
    const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    for (const c of (await buildProgram()).commands) {
      expect(doc).toContain(`## \`sluice ${c.name()}`);
      for (const sub of c.commands) expect(doc).toContain(`## \`sluice ${c.name()} ${sub.name()}\``);
    }
  });

  it('every option of every command appears in the CLI reference', async () => {
    const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
    for (const c of all(await buildProgram())) for (const o of c.options) expect(doc).toContain(o.long ?? o.short!);
    expect(doc).toContain('## `sluice health`');
    expect(doc).toContain('## `sluice version`');
    for (const verb of ['cache flush', 'reload', 'query']) expect(doc).toContain(`## \`sluice ${verb}\``);
  });

  it('docs/configuration.md is the current config reference (run `npm run docs` after changing the schema)', () => {
    const committed = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderConfigReference());
  });

  it('every config key in the schema is documented in docs/configuration.md with a description', () => {
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    const keys = configKeys();
    expect(keys.length).toBeGreaterThan(50);
    for (const k of keys) {
      expect(doc, k.path).toContain(`| \`${k.path}\` |`);
      expect(k.description, `${k.path} has no .describe() text and no entry in IMPLIED_DESCRIPTIONS`).not.toBe('');
    }
    for (const top of ['listeners', 'networks', 'profiles', 'policies', 'upstreams', 'admin']) expect(doc).toContain(`## \`${top}\``);
  });

  it('IMPLIED_DESCRIPTIONS only fills keys that exist and that the schema does not describe', () => {
    const keys = new Map(configKeys().map((k) => [k.path, k]));
    for (const path of Object.keys(IMPLIED_DESCRIPTIONS)) {
      expect(keys.has(path), `${path} is not a config key`).toBe(true);
      expect(keys.get(path)!.described, `${path} is described in the schema now; remove it from IMPLIED_DESCRIPTIONS`).toBe(false);
    }
  });

  it('the README and the operator pages link to pages that exist', () => {
    const pages = ['README.md', 'docs/getting-started.md', 'docs/deployment.md', 'docs/operations.md', 'docs/troubleshooting.md', 'docs/architecture.md'];
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const p of ['getting-started', 'configuration', 'deployment', 'operations', 'troubleshooting', 'architecture', 'cli']) {
      expect(readme).toContain(`(docs/${p}.md)`);
    }
    for (const page of pages) {
      const url = new URL(`../../${page}`, import.meta.url);
      const text = readFileSync(url, 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!) || target!.startsWith('#')) continue;
        const file = target!.split('#')[0]!;
        expect(existsSync(new URL(file, url)), `${page} links to ${target}`).toBe(true);
      }
    }
  });
});
