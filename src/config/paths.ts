// Where sluice reads and writes, from a config and the directory of its file (`baseDir`, against
// which the config's relative paths resolve): the one place that knows the layout of state_dir and
// site_dir. What a module keeps inside its own part of state_dir (the list state, a store's file)
// stays with that module.
import { join, resolve } from 'node:path';
import type { Config } from './schema.js';

/** `state_dir`: what sluice writes (downloaded lists, list state, the audit log, the query log, secrets). */
export function stateDir(config: Config, baseDir: string): string {
  return resolve(baseDir, config.state_dir);
}

/** `site_dir`: the site's own lists (`sluice lists new` creates them there), apart from the catalog a release replaces. */
export function siteDir(config: Config, baseDir: string): string {
  return resolve(baseDir, config.site_dir);
}

/** The audit log of list edits, downloads, acceptances and erasures. */
export function auditLogFile(config: Config, baseDir: string): string {
  return join(stateDir(config, baseDir), 'audit.log');
}

/**
 * Runtime overrides (`sluice disable`, `allow`, `deny`) of a standalone server. In a directory of
 * its own: the server watches it, and state_dir itself changes with every query-log write.
 */
export function overridesFile(config: Config, baseDir: string): string {
  return join(stateDir(config, baseDir), 'overrides', 'overrides.json');
}

/** The admin token generated when neither `admin.token` nor its variable is set. */
export function adminTokenFile(config: Config, baseDir: string): string {
  return join(stateDir(config, baseDir), 'admin-token');
}

/** The pseudonymisation key generated when its variable (`query_log.pseudonymize_key_env`) is not set. */
export function logKeyFile(config: Config, baseDir: string): string {
  return join(stateDir(config, baseDir), 'log-key');
}
