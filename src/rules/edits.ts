// Runtime edits: the additions and removals an admin made through Redis, on top of the list files.
// Pure: the state, how an edit changes it and folds into a log, the overlay on the list sets, and
// its hash.
import { createHash } from 'node:crypto';
import type { DomainSet } from '../match/domain-set.js';
import { OverlaySet } from '../match/overlay-set.js';

export interface ListEdits {
  add: string[];
  remove: string[];
}

/** One admin edit as the log in Redis holds it. `id` is unique across every Redis the log has lived in. */
export interface EditEntry {
  id: string;
  /** Its place in the log of `epoch` (1, 2, …): edits apply in this order. */
  version: number;
  list: string;
  op: 'add' | 'remove';
  rules: string[];
  /** When the CLI made it (ms since the epoch); orders edits when two logs are merged. */
  time: number;
  user?: string;
}

/**
 * The shared edits an instance enforces: the log of one epoch, folded into per-list additions and
 * removals. A new epoch starts whenever the log had to be rebuilt (Redis came back empty and the
 * instances merged what they hold), so a version number means something only within its epoch.
 */
export interface RuntimeEdits {
  epoch: string;
  version: number;
  log: EditEntry[];
  lists: Record<string, ListEdits>;
}

/**
 * The shared edit log's pseudo-list of runtime overrides (policy/overrides.ts): each rule is one
 * entry as JSON, added by `sluice disable|allow|deny`, removed by `enable` and `overrides remove`.
 * No list file has this name (list names cannot start with `@`).
 */
export const OVERRIDES_LIST = '@overrides';

export const NO_EDITS: RuntimeEdits = { epoch: '', version: 0, log: [], lists: {} };

/** Apply an add or remove to one list's edits (a later edit of the same rule wins). */
export function applyEdit(e: ListEdits | undefined, op: 'add' | 'remove', rules: string[]): ListEdits {
  const add = new Set(e?.add ?? []);
  const remove = new Set(e?.remove ?? []);
  for (const r of rules) {
    if (op === 'add') {
      add.add(r);
      remove.delete(r);
    } else {
      remove.add(r);
      add.delete(r);
    }
  }
  return { add: [...add].sort(), remove: [...remove].sort() };
}

/** The state a log leads to, its entries applied in version order. */
export function foldLog(epoch: string, log: readonly EditEntry[]): RuntimeEdits {
  const sorted = [...log].sort((a, b) => a.version - b.version);
  const lists: Record<string, ListEdits> = {};
  for (const e of sorted) lists[e.list] = applyEdit(lists[e.list], e.op, e.rules);
  return { epoch, version: sorted.at(-1)?.version ?? 0, log: sorted, lists };
}

/** `held` followed by the entries of `more` it lacks, when they continue its log without a gap. */
export function extendLog(held: RuntimeEdits, epoch: string, more: readonly EditEntry[]): RuntimeEdits | undefined {
  if (epoch !== held.epoch) return undefined;
  const next = more.filter((e) => e.version > held.version).sort((a, b) => a.version - b.version);
  for (let i = 0; i < next.length; i++) if (next[i]!.version !== held.version + i + 1) return undefined;
  return next.length === 0 ? held : foldLog(epoch, [...held.log, ...next]);
}

/** A snapshot file's content, including the format before the log (per-list state only). */
export function parseSnapshot(json: string): RuntimeEdits {
  const s = JSON.parse(json) as Partial<RuntimeEdits>;
  if (Array.isArray(s.log) && typeof s.epoch === 'string') return foldLog(s.epoch, s.log);
  // Snapshots written before the log held only the folded lists: one synthetic edit per list keeps them.
  const log: EditEntry[] = [];
  for (const [list, e] of Object.entries(s.lists ?? {})) {
    if (e.add.length > 0) log.push({ id: `legacy-${list}-add`, version: log.length + 1, list, op: 'add', rules: e.add, time: 0 });
    if (e.remove.length > 0) log.push({ id: `legacy-${list}-remove`, version: log.length + 1, list, op: 'remove', rules: e.remove, time: 0 });
  }
  return foldLog('legacy', log);
}

export function overlay(sets: ReadonlyMap<string, DomainSet>, edits: RuntimeEdits): Map<string, DomainSet> {
  const out = new Map(sets);
  for (const [name, e] of Object.entries(edits.lists)) {
    const base = sets.get(name);
    if (base && (e.add.length > 0 || e.remove.length > 0)) out.set(name, new OverlaySet(base, e));
  }
  return out;
}

/** A stable hash of the edits, part of the policy version. */
export function editsHash(edits: RuntimeEdits): string {
  const names = Object.keys(edits.lists).sort();
  const h = createHash('sha256');
  for (const n of names) h.update(`${n}\n${edits.lists[n]!.add.join(',')}\n${edits.lists[n]!.remove.join(',')}\n`);
  return h.digest('hex').slice(0, 16);
}
