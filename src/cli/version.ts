// `sluice version`: what is running — the package version, the Node.js version and, when known,
// the git commit it was built from ($SLUICE_COMMIT in the container image, else `git` in a checkout).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { printJson } from './output.js';

export interface VersionInfo {
  sluice: string;
  node: string;
  commit?: string;
}

// src/cli/ and dist/cli/ are both two levels below the package root.
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function gitCommit(): string | undefined {
  const fromEnv = process.env.SLUICE_COMMIT?.trim();
  if (fromEnv) return fromEnv;
  try {
    const out = execFileSync('git', ['-C', PACKAGE_ROOT, 'rev-parse', '--short=12', 'HEAD'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 2000,
      encoding: 'utf8',
    }).trim();
    return /^[0-9a-f]{7,40}$/.test(out) ? out : undefined;
  } catch {
    return undefined; // no git, or not a checkout (npm install, container image)
  }
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

export function versionInfo(): VersionInfo {
  const commit = gitCommit();
  return { sluice: packageVersion(), node: process.version, ...(commit ? { commit } : {}) };
}

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('The sluice version, the Node.js version, and the git commit when known.')
    .addOption(new Option('--json', 'machine-readable output'))
    .addHelpText('after', '\nExamples:\n  sluice version\n  sluice version --json')
    .action((opts: { json?: boolean }) => {
      const v = versionInfo();
      if (opts.json) return printJson(v);
      process.stdout.write(`sluice ${v.sluice}\nnode   ${v.node}\ncommit ${v.commit ?? 'unknown'}\n`);
    });
}
