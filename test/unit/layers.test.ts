// The layer rules themselves: a copy of them run over a tiny tree that breaks each of them once.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const rules = createRequire(import.meta.url)('../../.dependency-cruiser.cjs') as { forbidden: unknown[] };

async function violations(files: Record<string, string>): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-layers-'));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  const { cruise } = await import('dependency-cruiser');
  const r = await cruise(['src'], { baseDir: dir, ruleSet: { forbidden: rules.forbidden } as never, validate: true });
  const out = r.output as { summary: { violations: { rule: { name: string }; from: string; to: string }[] } };
  return out.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
}

describe('layer rules (.dependency-cruiser.cjs)', () => {
  it('accepts imports downwards and within a layer', async () => {
    expect(await violations({ 'src/server/a.js': "import '../policy/b.js';\n", 'src/policy/b.js': "import '../match/c.js';\n", 'src/match/c.js': '' })).toEqual([]);
  });

  it('refuses an import from a higher layer, a cycle, and a folder with no layer', async () => {
    const found = await violations({
      'src/config/a.js': "import '../server/b.js';\n",
      'src/server/b.js': '',
      'src/lists/x.js': "import './y.js';\n",
      'src/lists/y.js': "import './x.js';\n",
      'src/stray/z.js': "import '../match/c.js';\n",
      'src/match/c.js': '',
    });
    expect(found).toContain('layer-config-dns-logging-native-match-files-bytes: src/config/a.js -> src/server/b.js');
    expect(found).toContain('no-circular: src/lists/x.js -> src/lists/y.js');
    expect(found).toContain('no-unknown-folder: src/stray/z.js -> src/match/c.js');
  });
});
