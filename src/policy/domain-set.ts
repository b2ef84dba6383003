// A set of domain rules with suffix matching. Hand-written because it is the hot path: a lookup
// walks the query's label suffixes against hash sets, so its cost depends on the number of labels
// in the name, never on the number of rules.
import type { ListEntry } from '../lists/formats.js';

export interface DomainMatch {
  /** The rule that matched: the listed domain (for `*.d` rules, `d`). */
  rule: string;
  subdomainsOnly: boolean;
}

export class DomainSet {
  // `self` rules match the domain and everything below; `below` rules (`*.d`) only what is below.
  private readonly self = new Set<string>();
  private readonly below = new Set<string>();

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
      const suffix = name.slice(dot + 1);
      if (this.self.has(suffix)) return { rule: suffix, subdomainsOnly: false };
      if (checkBelow && this.below.has(suffix)) return { rule: suffix, subdomainsOnly: true };
      dot = name.indexOf('.', dot + 1);
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.match(name) !== undefined;
  }
}
