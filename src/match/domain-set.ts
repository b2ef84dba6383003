// A set of domain rules with suffix matching. Hand-written because it is the hot path: a lookup
// walks the query's label suffixes against hash tables, so its cost depends on the number of labels
// in the name, never on the number of rules.
import { DomainTable } from './domain-table.js';
import { NameSuffixes } from './name-suffixes.js';

/** Scratch for match(): the hot path passes its own NameSuffixes to lookup(). */
const SCRATCH = new NameSuffixes();

export interface DomainMatch {
  /** The rule that matched: the listed domain (for `*.d` rules, `d`). */
  rule: string;
  subdomainsOnly: boolean;
}

export class DomainSet {
  // `self` rules match the domain and everything below; `below` rules (`*.d`) only what is below.
  readonly self: DomainTable;
  readonly below = new DomainTable();

  constructor(expected = 16, expectedBytes?: number) {
    this.self = new DomainTable(expected, expectedBytes);
  }

  static from(entries: Iterable<{ domain: string; subdomainsOnly: boolean }>): DomainSet {
    const set = new DomainSet();
    for (const e of entries) set.add(e.domain, e.subdomainsOnly);
    return set;
  }

  /** `domain` must already be normalised (lower case, no trailing dot). */
  add(domain: string, subdomainsOnly = false): void {
    (subdomainsOnly ? this.below : this.self).add(domain);
  }

  get size(): number {
    return this.self.size + this.below.size;
  }

  /** Rules in insertion order, `*.` prefixed for subdomain-only rules. */
  *rules(): IterableIterator<string> {
    yield* this.self;
    for (const d of this.below) yield `*.${d}`;
  }

  /**
   * The rule covering `name`, if any. `name` must be lower case without a trailing dot (the wire
   * reader produces exactly that). The most specific rule wins.
   */
  match(name: string): DomainMatch | undefined {
    const s = SCRATCH.set(name);
    if (this.lookup(s) < 0) return undefined;
    return { rule: s.text(s.suffix), subdomainsOnly: s.below };
  }

  /**
   * The hot path's match: the most specific rule covering the name of `s`, as a number that
   * identifies the rule for as long as this set lives (≥ 0), or -1. Sets `s.suffix` and `s.below`
   * to say which suffix matched and how. Allocates nothing. `resume` continues a search after the
   * rule it last found (2 × suffix + 1 for a plain rule, + 2 for a `*.` rule), from the next one.
   */
  lookup(s: NameSuffixes, resume = 0): number {
    const name = s.name;
    const self = this.self.size > 0 ? this.self : undefined;
    const below = this.below.size > 0 ? this.below : undefined;
    for (let k = resume >> 1; k < s.count; k++) {
      const from = s.starts[k]!;
      const h = s.hashes[k]!;
      if (self && (k > resume >> 1 || (resume & 1) === 0)) {
        const off = self.find(name, from, h);
        if (off > 0) {
          s.suffix = k;
          s.below = false;
          return off * 2;
        }
      }
      // `*.d` covers what is below d, not d itself: never the whole name.
      if (below && k > 0) {
        const off = below.find(name, from, h);
        if (off > 0) {
          s.suffix = k;
          s.below = true;
          return off * 2 + 1;
        }
      }
    }
    return -1;
  }
}
