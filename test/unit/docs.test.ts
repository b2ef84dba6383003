import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { renderCliReference } from '../../src/cli/reference.js';

describe('docs', () => {
  it('docs/cli.md is the current CLI reference (run `npm run docs` after changing a command)', () => {
    const committed = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderCliReference(buildProgram()));
  });

  it('every command appears in the CLI reference', () => {
    const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
    for (const c of buildProgram().commands) {
      expect(doc).toContain(`## \`sluice ${c.name()}`);
      for (const sub of c.commands) expect(doc).toContain(`## \`sluice ${c.name()} ${sub.name()}\``);
    }
  });
});
