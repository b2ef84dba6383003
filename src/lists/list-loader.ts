// Reads the lists a config uses into DomainSets. Problems (unreadable files, bad lines) are
// returned with file and line, never thrown for a single bad line: the rest of the list still loads.
// A local list file that became empty, garbage, or lost more than half of its entries is not
// activated (activation-guard.ts): the list keeps its last good state, and says why.
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { LoadedConfig, ConfigProblem } from '../config/load.js';
import { BYPASS_LIST, bypassApplies } from '../config/bypass.js';
import { formatProblem } from '../config/load.js';
import type { DomainSet } from '../match/domain-set.js';
import { resolveLists, type ListDefinition, type ResolvedLists } from './catalog.js';
import type { ListProblem } from './formats.js';
import { loadDomainsFromFile, type LoadedDomains } from './list-bytes.js';
import { decideActivation, type GoodState } from './activation-guard.js';
import { listStateDir, readAccepted, readSavedState, savedCopyPath } from './list-state.js';

export interface LoadedList {
  def: ListDefinition;
  /** The rules enforced: the file's, or when it was refused, the last good state's. */
  set: DomainSet;
  /** Problems of the file on disk. */
  problems: ListProblem[];
  /** Modification time of the file the rules came from. */
  updated: Date | undefined;
  /** sha256 of the content the rules came from, part of the policy version. */
  contentHash: string;
  /** The last good state, the reference for the next change (undefined: none yet). */
  good?: GoodState;
  /** Set when the file on disk was not activated. */
  refused?: ListRefusal;
  /** Refusals of this list since the process started (each new content refused counts once). */
  refusals: number;
}

export interface ListRefusal {
  /** Why, as a sentence about the file ("it is empty (0 bytes); …"). */
  reason: string;
  /** sha256 of the refused file. */
  sha256: string;
  /** Where the rules enforced instead come from: this process's last good state, its copy saved in state_dir, or (none) the file. */
  serving: 'memory' | 'saved-copy' | 'file';
}

/** One sentence: what a refused list enforces instead of its file. */
export function describeServing(l: LoadedList): string {
  const n = `${l.set.size} ${l.set.size === 1 ? 'entry' : 'entries'}`;
  switch (l.refused?.serving) {
    case 'memory':
      return `still serving its last good state (${n})`;
    case 'saved-copy':
      return `serving its last good state, saved in state_dir (${n})`;
    default:
      return `there is no earlier good state, so what the file holds is served (${n})`;
  }
}

export async function loadList(def: ListDefinition): Promise<LoadedList> {
  const { list } = await readList(def);
  return list;
}

async function readList(def: ListDefinition): Promise<{ list: LoadedList; read: LoadedDomains & { sha256: string } }> {
  const read = await loadDomainsFromFile(def.file);
  const st = await stat(def.file);
  return { list: { def, set: read.set, problems: read.problems, updated: st.mtime, contentHash: read.sha256, refusals: 0 }, read };
}

export interface LoadListsOptions {
  /** The lists this process enforces now (a reload): the reference for what a change may do. */
  previous?: readonly LoadedList[];
}

/**
 * Load a local list through the activation guard. The reference is the state this process
 * enforces, else the one saved in state_dir by the last server that ran; a refused file leaves
 * that state in force (from memory, else from its saved copy).
 */
async function loadGuarded(def: ListDefinition, stateDirectory: string, previous: LoadedList | undefined): Promise<LoadedList> {
  const { list, read } = await readList(def);
  const saved = previous ? undefined : readSavedState(stateDirectory, def.name);
  const last: GoodState | undefined = previous ? previous.good : saved && { sha256: saved.sha256, entries: saved.entries, since: Date.parse(saved.activatedAt) };
  const content = {
    sha256: read.sha256,
    entries: read.set.size,
    problems: read.problems.filter((p) => p.code === undefined).length,
    bytes: read.bytes,
    ...(read.garbage ? { garbage: read.garbage } : {}),
  };
  const accepted = readAccepted(stateDirectory, def.name);
  const decision = decideActivation(content, last, accepted && { sha256: accepted.sha256, at: Date.parse(accepted.acceptedAt), ...(accepted.from !== null ? { from: accepted.from } : {}) });
  const refusals = previous?.refusals ?? 0;
  if (decision.activate) {
    const since = decision.why === 'unchanged' && last?.since !== undefined ? last.since : Date.now();
    return { ...list, good: { sha256: read.sha256, entries: read.set.size, since }, refusals };
  }
  // A content already refused is not counted again at every reload.
  const counted = previous?.refused?.sha256 === read.sha256 ? refusals : refusals + 1;
  const refusal = (serving: ListRefusal['serving']): ListRefusal => ({ reason: decision.reason, sha256: read.sha256, serving });
  if (previous && previous.good) {
    return { ...previous, def, problems: read.problems, refused: refusal('memory'), refusals: counted };
  }
  if (saved) {
    const copy = await loadDomainsFromFile(savedCopyPath(stateDirectory, def.name)).catch(() => undefined);
    if (copy && copy.sha256 === saved.sha256) {
      return { def, set: copy.set, problems: read.problems, updated: new Date(saved.activatedAt), contentHash: saved.sha256, good: last, refused: refusal('saved-copy'), refusals: counted };
    }
  }
  // Nothing better to serve: what the file holds blocks at least what it names.
  return { ...list, refused: refusal('file'), refusals: counted };
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
export async function loadLists(loaded: LoadedConfig, opts: LoadListsOptions = {}): Promise<LoadedLists> {
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
  const stateDirectory = listStateDir(config, loaded.baseDir);
  const previous = new Map((opts.previous ?? []).map((l) => [l.def.name, l]));
  await Promise.all(
    wanted.map(async (def) => {
      if (def.url !== undefined && !existsSync(def.file)) {
        pendingRemote.push(def);
        return;
      }
      try {
        // Downloaded lists have their own guard, at download (remote.ts).
        lists.push(def.url !== undefined ? await loadList(def) : await loadGuarded(def, stateDirectory, previous.get(def.name)));
      } catch (err) {
        lines.push(`${def.file}: list ${def.name}: ${(err as Error).message}`);
      }
    }),
  );
  lists.sort((a, b) => a.def.name.localeCompare(b.def.name));
  return { resolved, lists, errors: lines, pendingRemote };
}

/**
 * What `sluice config validate` says about the lists: errors (a rule naming a public suffix or
 * reserved name, a file that would be refused) make the config invalid; other unreadable lines
 * are warnings, as the server skips them and loads the rest (at most `perList` of them a list).
 */
export function listFindings(lists: LoadedLists, perList = 20): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const l of lists.lists) {
    if (l.refused) errors.push(`${l.def.file}: list ${l.def.name} would not be activated: ${l.refused.reason} (\`sluice lists accept ${l.def.name}\` puts it in force)`);
    const other = l.problems.filter((p) => p.code === undefined);
    for (const p of l.problems) if (p.code !== undefined) errors.push(`${l.def.file}:${p.line}: ${p.message}`);
    for (const p of other.slice(0, perList)) warnings.push(`${l.def.file}:${p.line}: ${p.message} (line skipped)`);
    if (other.length > perList) warnings.push(`${l.def.file}: ${other.length} lines skipped in all`);
  }
  return { errors, warnings };
}
