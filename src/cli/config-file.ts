// The config a CLI command works on: --config, else $SLUICE_CONFIG, else /etc/sluice/sluice.yaml
// when it exists (an installed package), else config/sluice.yaml (a checkout).
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { auditLogFile } from '../config/paths.js';
import type { LoadedRules } from '../rules/load.js';
import { EXIT, fail } from './output.js';

export const INSTALLED_CONFIG = '/etc/sluice/sluice.yaml';
export const CHECKOUT_CONFIG = 'config/sluice.yaml';

/** Where admins look first (as for unbound.conf or named.conf), then the checkout's own config. */
export function defaultConfigPath(exists: (file: string) => boolean = existsSync): string {
  return exists(INSTALLED_CONFIG) ? INSTALLED_CONFIG : CHECKOUT_CONFIG;
}

export function configPath(cmd: Command): string {
  const opts = cmd.optsWithGlobals<{ config?: string }>();
  return opts.config ?? process.env.SLUICE_CONFIG ?? defaultConfigPath();
}

/** Load config and lists as the server would; on failure print every problem and return undefined. */
export async function loadForCli(cmd: Command): Promise<LoadedRules | undefined> {
  // Loaded here, not at the top: `sluice log` and `sluice report` use configPath only, and the
  // rule compiler and the logger would double their start-up.
  const [{ LoadError, loadRuleSet }, { silentLogger }] = await Promise.all([import('../rules/load.js'), import('../logging/logger.js')]);
  try {
    return await loadRuleSet(configPath(cmd), silentLogger());
  } catch (err) {
    const lines = err instanceof LoadError ? err.lines : [(err as Error).message];
    fail(`cannot load ${configPath(cmd)}:\n${lines.map((l) => `  ${l}`).join('\n')}`, EXIT.USAGE);
    return undefined;
  }
}

/** The audit log of the config `r` was loaded from. */
export function auditLogPath(r: LoadedRules): string {
  return auditLogFile(r.loaded.config, r.loaded.baseDir);
}
