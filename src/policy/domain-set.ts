// A set of domain rules with suffix matching. Hand-written because it is the hot path: a lookup
// walks the query's label suffixes against hash tables, so its cost depends on the number of labels
// in the name, never on the number of rules.
import type { ListEntry } from '../lists/formats.js';
import { DomainTable } from './domain-table.js';

export interface DomainMatch {
  /** The rule that matched: the listed domain (for `*.d` rules, `d`). */
  rule: string;
  subdomainsOnly: boolean;
}

export class DomainSet {
  // `self` rules match the domain and everything below; `below` rules (`*.d`) only what is below.
  readonly self: DomainTable;
  readonly below = new DomainTable();

  constructor(expected = 16) {
    this.self = new DomainTable(expected);
  }

  static from(entries: Iterable<Pick<ListEntry, 'domain' | 'subdomainsOnly'>>): DomainSet {
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

  get memoryBytes(): number {
    return this.self.memoryBytes + this.below.memoryBytes;
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
    if (this.self.has(name)) return { rule: name, subdomainsOnly: false };
    const checkBelow = this.below.size > 0;
    let dot = name.indexOf('.');
    while (dot >= 0) {
      if (this.self.hasRange(name, dot + 1)) return { rule: name.slice(dot + 1), subdomainsOnly: false };
      if (checkBelow && this.below.hasRange(name, dot + 1)) return { rule: name.slice(dot + 1), subdomainsOnly: true };
      dot = name.indexOf('.', dot + 1);
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.match(name) !== undefined;
  }
}
