// Loading a list file into a DomainSet straight from its bytes. Hand-written for scale: a
// 1,000,000-line list must load in well under a second, so plain-domain lines (nearly all lines of
// real lists) are validated and inserted byte by byte without creating a string or object per line.
// Any other line (hosts, adblock, wildcard, IDN, or an error) goes through parseRule. Rules naming a
// public suffix are reported and skipped on both paths (public-suffix.ts, behind its pre-filter).
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { DomainSet } from '../match/domain-set.js';
import { sniffContent, type ContentKind } from './activation-guard.js';
import { admitEntries, parseRule, type ListProblem } from './formats.js';
import { ALLOW_SUFFIX_HINT, allowsSuffix, mayBeSuffixBytes, suffixVerdict } from './public-suffix.js';

export interface LoadedDomains {
  set: DomainSet;
  problems: ListProblem[];
  /** Rule lines read (duplicates included). */
  rules: number;
  /** Bytes read. */
  bytes: number;
  /** Set when the text is plainly not a list (binary, an HTML page): see activation-guard.ts. */
  garbage?: ContentKind;
}

const SCRATCH = Buffer.allocUnsafe(256);

// Byte classes: 1 = letter/digit/_ (lower-cased already), 2 = '-', 3 = '.', 0 = anything else.
const CLASS = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) CLASS[c] = 1;
CLASS[0x5f] = 1;
CLASS[0x2d] = 2;
CLASS[0x2e] = 3;

const isSpace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0d;

/**
 * Reads list text piece by piece (a file is streamed through one small buffer: holding a whole
 * 20 MB file until the next garbage collection showed in the resident size). Feed it complete
 * lines with `lines()`, then call `finish()`.
 */
export class DomainListReader {
  readonly set: DomainSet;
  private readonly problems: ListProblem[] = [];
  private rules = 0;
  private line = 0;
  private bytes = 0;
  private garbage: ContentKind | undefined;

  /** `size`: the bytes of list text to come, when known, to size the table once. */
  constructor(size: number) {
    // A plain line takes as many bytes in the table as in the file (length byte for newline), so
    // the file's size is room enough for all of them: no growing and copying while 1M names go in.
    this.set = new DomainSet(Math.max(16, Math.ceil(size / 20)), size);
  }

  /** Read `buf[from, to)`, which holds whole lines (the last one may lack its newline). */
  lines(buf: Uint8Array, from: number, to: number): void {
    const set = this.set;
    // The head of the text tells a binary file or an HTML error page from a list.
    if (this.bytes === 0 && to > from) this.garbage = sniffContent(buf.subarray(from, Math.min(to, from + 4096)));
    this.bytes += to - from;
    let pos = from;
    while (pos < to) {
      this.line++;
      let s = pos;
      while (s < to && isSpace(buf[s]!)) s++;
      // The fast path reads the name and stops at the first byte that cannot be in one: for a
      // plain line that is the newline, so the line's end is found without a second scan.
      const fast = s < to && buf[s] !== 0x23 ? plainDomain(buf, s, to) : 0;
      const stop = fast > 0 ? STOP : s;
      let end: number;
      if (stop >= to || buf[stop] === 0x0a) end = stop;
      else {
        end = buf.indexOf(0x0a, stop);
        if (end < 0 || end > to) end = to;
      }
      pos = end + 1;
      if (s === end || buf[s] === 0x23 /* # */) continue;
      if (fast > 0 && onlyCommentFollows(buf, stop, end)) {
        if (mayBeSuffixBytes(SCRATCH, fast) && this.refusedSuffix(buf, s, stop, end, fast)) continue;
        set.self.addBytes(SCRATCH, 0, fast);
        this.rules++;
        continue;
      }
      // Slow path: decode the line and let the general parser decide.
      const raw = Buffer.from(buf.buffer, buf.byteOffset + s, end - s).toString('utf8');
      const hash = raw.indexOf('#');
      const r = parseRule(hash < 0 ? raw : raw.slice(0, hash), 'auto');
      if (r === undefined) continue;
      if ('error' in r) {
        this.problems.push({ line: this.line, text: raw.trim(), message: r.error });
        continue;
      }
      const kept = admitEntries(r.entries, this.line, raw, hash < 0 ? '' : raw.slice(hash + 1), this.problems);
      if (kept.length === 0 && r.entries.length > 0) continue;
      for (const e of kept) set.add(e.domain, e.subdomainsOnly);
      this.rules++;
    }
  }

  /** The plain rule in SCRATCH names a suffix and its line does not allow that: reported. */
  private refusedSuffix(buf: Uint8Array, s: number, stop: number, end: number, len: number): boolean {
    const domain = SCRATCH.toString('latin1', 0, len);
    const v = suffixVerdict(domain);
    if (v === undefined) return false;
    let hash = stop;
    while (hash < end && buf[hash] !== 0x23) hash++;
    const comment = hash < end ? Buffer.from(buf.buffer, buf.byteOffset + hash + 1, end - hash - 1).toString('utf8') : '';
    if (allowsSuffix(comment)) return false;
    const text = Buffer.from(buf.buffer, buf.byteOffset + s, end - s)
      .toString('utf8')
      .trim();
    this.problems.push({ line: this.line, text, message: `${v.message}; ${ALLOW_SUFFIX_HINT}`, code: v.kind });
    return true;
  }

  finish(): LoadedDomains {
    this.set.self.trim();
    this.set.below.trim();
    return { set: this.set, problems: this.problems, rules: this.rules, bytes: this.bytes, ...(this.garbage ? { garbage: this.garbage } : {}) };
  }
}

export function loadDomainsFromBytes(buf: Uint8Array): LoadedDomains {
  const reader = new DomainListReader(buf.length);
  reader.lines(buf, 0, buf.length);
  return reader.finish();
}

const CHUNK = 1 << 20;

/** Load a list file through one 1 MiB buffer; also returns the sha256 of its bytes. */
export async function loadDomainsFromFile(file: string): Promise<LoadedDomains & { sha256: string }> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const reader = new DomainListReader(size);
    const sha = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    let kept = 0; // bytes of an unfinished line carried to the front of buf
    for (;;) {
      const { bytesRead } = await fh.read(buf, kept, CHUNK - kept, null);
      if (bytesRead === 0) break;
      sha.update(buf.subarray(kept, kept + bytesRead));
      const filled = kept + bytesRead;
      const lastNewline = buf.lastIndexOf(0x0a, filled - 1);
      // A line longer than the buffer is not a domain; it is read in pieces and reported as bad.
      const upTo = lastNewline < 0 ? filled : lastNewline + 1;
      reader.lines(buf, 0, upTo);
      kept = filled - upTo;
      buf.copyWithin(0, upTo, filled);
    }
    if (kept > 0) reader.lines(buf, 0, kept);
    return { ...reader.finish(), sha256: sha.digest('hex') };
  } finally {
    await fh.close();
  }
}

/** Where plainDomain() stopped reading: the first byte after the name. */
let STOP = 0;

/**
 * If the line at `buf[s…]` starts with a plain domain, copy it lower-cased without a trailing dot
 * into SCRATCH, set STOP to the byte after it, and return its length; otherwise 0. What follows
 * the name is for the caller to check (onlyCommentFollows).
 */
function plainDomain(buf: Uint8Array, s: number, to: number): number {
  let len = 0;
  let labelLen = 0;
  let labelStart = true;
  let lastLabelDigits = true;
  let i = s;
  for (; i < to; i++) {
    const c = buf[i]!;
    const k = CLASS[c]!;
    if (k === 0) break;
    if (len >= 254) return 0;
    if (k === 3) {
      if (labelLen === 0 || SCRATCH[len - 1] === 0x2d) return 0; // empty label or ends with '-'
      labelLen = 0;
      labelStart = true;
      SCRATCH[len++] = c;
      continue;
    }
    if (k === 2 && labelStart) return 0;
    if (labelStart) lastLabelDigits = true;
    labelStart = false;
    if (++labelLen > 63) return 0;
    if (c < 0x30 || c > 0x39) lastLabelDigits = false;
    SCRATCH[len++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
  }
  STOP = i;
  if (len > 0 && SCRATCH[len - 1] === 0x2e) {
    len--; // one trailing dot is allowed
    labelLen = len === 0 ? 0 : labelLen;
    if (len > 0 && SCRATCH[len - 1] === 0x2e) return 0;
  } else if (labelLen === 0) {
    return 0;
  }
  if (len === 0 || len > 253 || SCRATCH[len - 1] === 0x2d || lastLabelDigits) return 0;
  return len;
}

/** Only whitespace and a `#` comment in `buf[from, end)`. */
function onlyCommentFollows(buf: Uint8Array, from: number, end: number): boolean {
  for (let j = from; j < end; j++) {
    const c = buf[j]!;
    if (c === 0x23) return true;
    if (!isSpace(c)) return false;
  }
  return true;
}
