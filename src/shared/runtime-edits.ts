// Runtime edits: the additions and removals an admin made through Redis, on top of the list files.
// Pure: the state, how an edit changes it, how it overlays a DomainSet, and its hash.
import { createHash } from 'node:crypto';
import { DomainSet } from '../policy/domain-set.js';
import type { NameSuffixes } from '../policy/name-suffixes.js';

// Rule numbers of the added rules are kept apart from the file's (see DomainSet.lookup).
const ADDED = 2 ** 40;

export interface ListEdits {
  add: string[];
  remove: string[];
}

export interface RuntimeEdits {
  version: number;
  lists: Record<string, ListEdits>;
}

export const NO_EDITS: RuntimeEdits = { version: 0, lists: {} };

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

/**
 * A list as the file has it, plus runtime additions, minus runtime removals. Removing a rule hides
 * exactly that rule of the file (a parent rule still covers the name).
 */
export class OverlaySet extends DomainSet {
  private readonly removed: Set<string>;
  private readonly added: DomainSet;

  constructor(
    private readonly base: DomainSet,
    edits: ListEdits,
  ) {
    super();
    this.added = new DomainSet();
    for (const r of edits.add) this.added.add(r.startsWith('*.') ? r.slice(2) : r, r.startsWith('*.'));
    this.removed = new Set(edits.remove);
  }

  override get size(): number {
    return this.base.size + this.added.size;
  }

  override lookup(s: NameSuffixes, resume = 0): number {
    if (resume === 0) {
      const a = this.added.lookup(s);
      if (a >= 0) return ADDED + a;
    }
    let next = resume;
    for (;;) {
      const m = this.base.lookup(s, next);
      if (m < 0) return -1;
      const rule = s.text(s.suffix);
      if (!this.removed.has(s.below ? `*.${rule}` : rule)) return m;
      next = 2 * s.suffix + (s.below ? 2 : 1); // hidden: a less specific rule may still cover the name
    }
  }

  override *rules(): IterableIterator<string> {
    for (const r of this.base.rules()) if (!this.removed.has(r)) yield r;
    yield* this.added.rules();
  }
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
