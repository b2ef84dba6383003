// Whether a list file as it is now may replace the state of the list that is being enforced. A
// local list is as exposed as a downloaded one (remote.ts): an editor or a crash truncates it to
// nothing, a script writes an HTML error page or binary garbage over it, a bad merge loses most of
// it. Swapping that in would lift a ban without a word, so such a file is refused and the last
// good state keeps serving until the file is fixed or `sluice lists accept` says it is meant.
// Pure: the loader passes what it read and what it served before.

/** What the head of a file shows it to be when it is plainly not a list. */
export type ContentKind = 'binary' | 'markup';

/** A list file as read now. */
export interface ListContent {
  sha256: string;
  /** Rules loaded (unique). */
  entries: number;
  /** Lines that could not be read as rules (not counting refused public suffixes). */
  problems: number;
  bytes: number;
  garbage?: ContentKind;
}

/** The state last activated: what is being enforced. */
export interface GoodState {
  sha256: string;
  entries: number;
  /** When it was activated (ms since the epoch). */
  since?: number;
}

export type Activation = { activate: true; why: 'first' | 'unchanged' | 'accepted' | 'fine' } | { activate: false; reason: string };

/** A content the admin accepted (`sluice lists accept`), over the good state then in force. */
export interface Acceptance {
  sha256: string;
  /** sha256 of the last good state it was accepted over; undefined when there was none. */
  from?: string;
  /** When it was accepted (ms since the epoch). */
  at: number;
}

/**
 * Decide whether `next` may be activated, given the last good state (none at the very first
 * start) and a content the admin accepted with `sluice lists accept`. An acceptance holds only
 * over the state it was given against, and only until a later state is activated: a list emptied
 * on purpose, filled again and then truncated has the same (empty) content as the one accepted,
 * but is a new loss.
 * A file that is garbage is refused even without a last good state; an empty one is not, since a
 * list may be empty by design (a new site list holds only comments) until it is a change from a
 * non-empty good state.
 */
export function decideActivation(next: ListContent, last: GoodState | undefined, accepted?: Acceptance): Activation {
  if (accepted !== undefined && accepted.sha256 === next.sha256 && accepted.from === last?.sha256 && accepted.at >= (last?.since ?? -Infinity)) {
    return { activate: true, why: 'accepted' };
  }
  if (last !== undefined && last.sha256 === next.sha256) return { activate: true, why: 'unchanged' };
  const was = last !== undefined ? `; the last good state had ${count(last.entries, 'entry')}` : '';
  if (next.garbage === 'binary') return refuse(`it looks like a binary file, not a list (it holds NUL or control bytes; a UTF-16 text file does too)${was}`);
  if (next.garbage === 'markup') return refuse(`it looks like an HTML or XML page, not a list${was}`);
  if (next.problems > next.entries) return refuse(`it looks like garbage: ${count(next.problems, 'line')} that are not rules against ${count(next.entries, 'entry')}${was}`);
  if (last === undefined) return { activate: true, why: 'first' };
  if (last.entries > 0 && next.entries === 0) return refuse(next.bytes === 0 ? `it is empty (0 bytes)${was}` : `it has no entries${was}`);
  if (next.entries < last.entries / 2) return refuse(`it has ${count(next.entries, 'entry')} against ${last.entries} in the last good state: more than half would be lost`);
  return { activate: true, why: 'fine' };
}

function refuse(reason: string): Activation {
  return { activate: false, reason };
}

function count(n: number, noun: string): string {
  return `${n} ${n === 1 ? noun : noun.replace(/y$/, 'ie') + 's'}`;
}

/**
 * What the head of a file (its first few KiB) shows: `binary` for NUL or other control bytes,
 * `markup` when its first character is `<` (no list line starts with one), else undefined.
 */
export function sniffContent(head: Uint8Array): ContentKind | undefined {
  let i = 0;
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) i = 3; // UTF-8 byte order mark
  let control = 0;
  for (let j = i; j < head.length; j++) {
    const c = head[j]!;
    if (c === 0) return 'binary';
    // Tab, newline, vertical tab, form feed, carriage return are text; other C0 bytes are not.
    if ((c < 0x09 || (c > 0x0d && c < 0x20) || c === 0x7f) && ++control * 100 > head.length) return 'binary';
  }
  while (i < head.length && (head[i] === 0x20 || (head[i]! >= 0x09 && head[i]! <= 0x0d))) i++;
  return head[i] === 0x3c ? 'markup' : undefined;
}
