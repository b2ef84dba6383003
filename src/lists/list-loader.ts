// Reads the lists a config uses into DomainSets. Problems (unreadable files, bad lines) are
// returned with file and line, never thrown for a single bad line: the rest of the list still loads.
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { LoadedConfig, ConfigProblem } from '../config/load.js';
import { BYPASS_LIST, bypassApplies } from '../policy/bypass.js';
import { formatProblem } from '../config/load.js';
import type { DomainSet } from '../policy/domain-set.js';
import { resolveLists, type ListDefinition, type ResolvedLists } from './catalog.js';
import type { ListProblem } from './formats.js';
import { loadDomainsFromFile } from './list-bytes.js';

export interface LoadedList {
  def: ListDefinition;
  set: DomainSet;
  problems: ListProblem[];
  /** Modification time of the file the rules came from. */
  updated: Date | undefined;
  /** sha256 of the file, part of the policy version. */
  contentHash: string;
}

export async function loadList(def: ListDefinition): Promise<LoadedList> {
  const { set, problems, sha256 } = await loadDomainsFromFile(def.file);
  const st = await stat(def.file);
  return { def, set, problems, updated: st.mtime, contentHash: sha256 };
}

export interface LoadedLists {
  resolved: ResolvedLists;
  lists: LoadedList[];
  /** Problems that make the config unusable: unknown list names, unreadable list files. */
  errors: string[];
  /** `url` lists with no copy on disk yet: loaded empty until the first download succeeds. */
  pendingRemote: ListDefinition[];
}

/** Resolve and load every list the config defines or uses. */
export async function loadLists(loaded: LoadedConfig): Promise<LoadedLists> {
  const { config } = loaded;
  let resolved: ResolvedLists;
  try {
    resolved = resolveLists(config, loaded.baseDir);
  } catch (err) {
    return { resolved: { lists: new Map() }, lists: [], errors: [`${loaded.file} catalog: ${(err as Error).message}`], pendingRemote: [] };
  }
  const errors: ConfigProblem[] = [];
  const used = new Set<string>();
  for (const [p, prof] of Object.entries(config.profiles)) {
    prof.block.forEach((l, i) => {
      used.add(l);
      if (!resolved.lists.has(l)) errors.push(loaded.problemAt(['profiles', p, 'block', i], `unknown list "${l}"`));
    });
  }
  for (const [id, pol] of Object.entries(config.policies)) {
    pol.block.forEach((l, i) => {
      used.add(l);
      if (!resolved.lists.has(l)) errors.push(loaded.problemAt(['policies', id, 'block', i], `unknown list "${l}"`));
    });
  }
  if (resolved.lists.has(BYPASS_LIST) && Object.keys(config.profiles).some((p) => bypassApplies(config, p))) used.add(BYPASS_LIST);
  const lines = errors.map(formatProblem);
  const lists: LoadedList[] = [];
  const pendingRemote: ListDefinition[] = [];
  // Catalog lists that no profile uses are not loaded: a catalog may offer more than a site wants.
  const wanted = [...resolved.lists.values()].filter((d) => d.origin === 'config' || used.has(d.name));
  await Promise.all(
    wanted.map(async (def) => {
      if (def.url !== undefined && !existsSync(def.file)) {
        pendingRemote.push(def);
        return;
      }
      try {
        lists.push(await loadList(def));
      } catch (err) {
        lines.push(`${def.file}: list ${def.name}: ${(err as Error).message}`);
      }
    }),
  );
  lists.sort((a, b) => a.def.name.localeCompare(b.def.name));
  return { resolved, lists, errors: lines, pendingRemote };
}
