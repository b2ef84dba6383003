// Config file + lists → RuleSet: the one place that reads everything a RuleSet needs from disk.
// Used at start, on every reload, and by the CLI (so `sluice check` sees what the server sees).
import { createHash } from 'node:crypto';
import { ConfigError, readConfigFile, type LoadedConfig } from '../config/load.js';
import { loadLists, type LoadedLists } from '../lists/list-loader.js';
import type { Logger } from '../logging/logger.js';
import { DomainSet } from '../policy/domain-set.js';
import { RuleSet } from '../pipeline/resolver.js';

export class LoadError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
    this.name = 'LoadError';
  }
}

export interface LoadedRules {
  rules: RuleSet;
  loaded: LoadedConfig;
  lists: LoadedLists;
  /** The file-loaded domain sets by list name (before runtime edits). */
  sets: Map<string, DomainSet>;
  /** Hash of the effective config and list contents (runtime edits are added by the caller). */
  version: string;
}

/** The policy version: config, list contents and runtime edits, hashed. Equal versions enforce the same rules. */
export function policyVersion(loaded: LoadedRules, editsHash = ''): string {
  // Only what decides answers: not the instance name, ports or log settings, which differ by design.
  const c = loaded.loaded.config;
  const h = createHash('sha256').update(JSON.stringify({ networks: c.networks, profiles: c.profiles, policies: c.policies }));
  for (const l of loaded.lists.lists) h.update(`${l.def.name}:${l.contentHash}\n`);
  h.update(editsHash);
  return h.digest('hex').slice(0, 12);
}

/** Load a config file and its lists. Throws LoadError listing every problem. */
export async function loadRuleSet(configFile: string, logger: Logger): Promise<LoadedRules> {
  let loaded: LoadedConfig;
  try {
    loaded = readConfigFile(configFile);
  } catch (err) {
    if (err instanceof ConfigError) throw new LoadError(err.message.split('\n'));
    throw err;
  }
  const lists = await loadLists(loaded);
  if (lists.errors.length > 0) throw new LoadError(lists.errors);
  const sets = new Map<string, DomainSet>();
  for (const l of lists.lists) {
    sets.set(l.def.name, l.set);
    for (const p of l.problems.slice(0, 20)) logger.warn({ file: l.def.file, line: p.line, text: p.text }, `${l.def.file}:${p.line}: ${p.message} (line skipped)`);
    if (l.problems.length > 20) logger.warn({ file: l.def.file, count: l.problems.length }, `${l.def.file}: ${l.problems.length} lines skipped in all`);
  }
  for (const def of lists.pendingRemote) {
    sets.set(def.name, new DomainSet());
    logger.error({ list: def.name, url: def.url }, `list ${def.name} has no downloaded copy yet: it blocks nothing until ${def.url} is fetched`);
  }
  logger.info({ lists: lists.lists.map((l) => ({ name: l.def.name, entries: l.set.size })) }, 'lists loaded');
  const result: LoadedRules = { rules: new RuleSet(loaded.config, sets), loaded, lists, sets, version: '' };
  result.version = policyVersion(result);
  return result;
}
