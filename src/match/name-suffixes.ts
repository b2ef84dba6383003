// The suffixes of one query name, each with its hash, computed in one backward pass: what every
// list lookup of a query starts from. A name "a.b.c" has the suffixes "a.b.c", "b.c" and "c", most
// specific first. Reused from query to query (one per PolicyEngine), so the hot path allocates
// nothing here.
import { FNV_OFFSET, FNV_PRIME } from './domain-table.js';

const MAX_LABELS = 128; // a 255-byte name has at most 127 labels

export class NameSuffixes {
  name = '';
  /** Number of suffixes (labels); 0 for the root name "". */
  count = 0;
  /** Where suffix k starts in `name`; k = 0 is the whole name. */
  readonly starts = new Int32Array(MAX_LABELS);
  /** The DomainTable hash of suffix k. */
  readonly hashes = new Uint32Array(MAX_LABELS);
  /** Set by the last DomainSet.lookup that found a rule: which suffix, and whether a `*.` rule. */
  suffix = -1;
  below = false;

  /** `name` must be lower case without a trailing dot, as the wire reader produces it. */
  set(name: string): this {
    this.name = name;
    let n = 0;
    let h = FNV_OFFSET;
    // Backwards: the hash of the suffix starting at i is complete when i reaches a label start.
    const tmpStarts = this.starts;
    const tmpHashes = this.hashes;
    for (let i = name.length - 1; i >= 0; i--) {
      const c = name.charCodeAt(i);
      h = Math.imul(h ^ c, FNV_PRIME);
      if (i === 0 || name.charCodeAt(i - 1) === 0x2e) {
        if (n === MAX_LABELS) break;
        tmpStarts[n] = i;
        tmpHashes[n] = h >>> 0;
        n++;
      }
    }
    // Collected least specific first; store most specific first.
    for (let a = 0, b = n - 1; a < b; a++, b--) {
      const s = tmpStarts[a]!;
      tmpStarts[a] = tmpStarts[b]!;
      tmpStarts[b] = s;
      const x = tmpHashes[a]!;
      tmpHashes[a] = tmpHashes[b]!;
      tmpHashes[b] = x;
    }
    this.count = n;
    this.suffix = -1;
    this.below = false;
    return this;
  }

  /** The text of suffix k (allocates: for explanations and first-time decisions, not per query). */
  text(k: number): string {
    return this.name.slice(this.starts[k]!);
  }
}
