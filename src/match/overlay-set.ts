// A list as its file has it, plus rules added and minus rules removed at runtime (the shared
// edits): what the resolver matches while the file itself stays untouched.
import { DomainSet } from './domain-set.js';
import type { NameSuffixes } from './name-suffixes.js';

// Rule numbers of the added rules are kept apart from the file's (see DomainSet.lookup).
const ADDED = 2 ** 40;

export interface RuleEdits {
  add: readonly string[];
  remove: readonly string[];
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
    edits: RuleEdits,
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
