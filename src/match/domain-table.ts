// A compact hash set of domain names. Hand-written because it holds the blocklists, the product's
// core data: a JS Set of 1,000,000 strings costs ~100 MB and ~1 s to fill; this stores every name
// once as bytes in one buffer, indexed by an open-addressing table of offsets (~30 MB for 1M names),
// and can be filled straight from a file's bytes without creating a string per line.
//
// Names are ASCII bytes (lower case); lookups take JS strings whose char codes are those bytes.
// Names are hashed from their last character to their first (FNV-1a, backwards), so that one pass
// over a query name yields the hash of every suffix (see NameSuffixes): a lookup across several
// lists and labels never hashes the same characters twice.

import { copyBytes } from '../bytes/copy-bytes.js';

const EMPTY = 0;
export const FNV_OFFSET = 0x811c9dc5;
export const FNV_PRIME = 0x01000193;

function nextPow2(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

export class DomainTable {
  /** Each name stored as [length byte][bytes…]; offsets below point at the length byte, +1. */
  private bytes: Buffer;
  private used = 1; // offset 0 is never an entry, so 0 can mean "empty slot"
  /**
   * Open addressing: each slot holds an entry's offset in its low `offBits` bits and the top bits
   * of the name's hash above them (a tag), so a probe that meets another name is told apart
   * without reading the byte store, which is the cache miss a lookup or an insert pays for.
   */
  private slots: Uint32Array;
  private offBits = 0;
  private offMask = 0;
  private count = 0;

  /** `expectedBytes`: room for the names (a length byte each), when the caller knows better. */
  constructor(expected = 16, expectedBytes = expected * 24) {
    this.slots = new Uint32Array(nextPow2(expected * 2));
    this.bytes = Buffer.allocUnsafe(Math.max(64, expectedBytes + 1));
    this.fitOffsets();
  }

  /** Offsets must address the whole byte store; the rest of a slot's 32 bits is the tag. */
  private fitOffsets(): void {
    let bits = 16;
    while (bits < 30 && 2 ** bits <= this.bytes.length) bits++;
    this.offBits = bits;
    this.offMask = 2 ** bits - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Add `src[start, end)` (already lower case and valid). Returns false when it was present. */
  addBytes(src: Uint8Array, start: number, end: number): boolean {
    const len = end - start;
    let h = FNV_OFFSET;
    for (let i = end - 1; i >= start; i--) h = Math.imul(h ^ src[i]!, FNV_PRIME);
    const slot = this.findBytes(h >>> 0, src, start, len);
    if (slot < 0) return false;
    if (this.used + len + 1 > this.bytes.length) this.growBytes(len + 1);
    const off = this.used;
    const bytes = this.bytes;
    bytes[off] = len;
    // Not set(subarray()): a subarray is an object, and a 1M-line list made 1M of them.
    copyBytes(src, start, end, bytes, off + 1);
    this.used += len + 1;
    this.slots[slot] = (((h >>> 0) >>> this.offBits) * (this.offMask + 1) + off) >>> 0;
    this.count++;
    if (this.count * 2 > this.slots.length) this.rehash();
    return true;
  }

  add(name: string): boolean {
    const b = Buffer.from(name, 'latin1');
    return this.addBytes(b, 0, b.length);
  }

  /**
   * The entry for the suffix of `name` starting at `from`, whose hash is `hash` (as NameSuffixes
   * computes it): a number > 0 that stays the same for this name as long as the table lives, or 0
   * when the suffix is not in the table.
   */
  find(name: string, from: number, hash: number): number {
    const len = name.length - from;
    if (len > 255 || this.count === 0) return EMPTY;
    const mask = this.slots.length - 1;
    const bytes = this.bytes;
    const offBits = this.offBits;
    const tag = hash >>> offBits;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const v = this.slots[i]!;
      if (v === EMPTY) return EMPTY;
      if (v >>> offBits !== tag) continue;
      const off = v & this.offMask;
      if (bytes[off] !== len) continue;
      let k = 0;
      while (k < len && bytes[off + 1 + k] === name.charCodeAt(from + k)) k++;
      if (k === len) return off;
    }
  }

  *[Symbol.iterator](): IterableIterator<string> {
    let off = 1;
    while (off < this.used) {
      const len = this.bytes[off]!;
      yield this.bytes.toString('latin1', off + 1, off + 1 + len);
      off += len + 1;
    }
  }

  /** Slot for a new entry, or -1 when the name is already present. */
  private findBytes(h: number, src: Uint8Array, start: number, len: number): number {
    const mask = this.slots.length - 1;
    const bytes = this.bytes;
    const offBits = this.offBits;
    const tag = h >>> offBits;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = this.slots[i]!;
      if (v === EMPTY) return i;
      if (v >>> offBits !== tag) continue;
      const off = v & this.offMask;
      if (bytes[off] !== len) continue;
      let k = 0;
      while (k < len && bytes[off + 1 + k] === src[start + k]) k++;
      if (k === len) return -1;
    }
  }

  /** Give back the spare room of the byte store once loading is done. */
  trim(): void {
    // Copying costs a second buffer for a moment: only worth it for an eighth or more to give back.
    if (this.bytes.length - this.used < Math.max(4096, this.bytes.length / 8)) return;
    const exact = Buffer.allocUnsafe(this.used);
    this.bytes.copy(exact, 0, 0, this.used);
    this.bytes = exact;
  }

  private growBytes(need: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.used + need));
    this.bytes.copy(next, 0, 0, this.used);
    this.bytes = next;
    if (next.length > this.offMask) {
      // Offsets need more bits: fewer are left for the tags, so every slot is written again.
      this.fitOffsets();
      this.rehash(this.slots.length);
    }
  }

  private rehash(size = this.slots.length * 2): void {
    const slots = new Uint32Array(size);
    const mask = slots.length - 1;
    const offBits = this.offBits;
    const scale = this.offMask + 1;
    let off = 1;
    while (off < this.used) {
      const len = this.bytes[off]!;
      let h = FNV_OFFSET;
      for (let i = off + len; i > off; i--) h = Math.imul(h ^ this.bytes[i]!, FNV_PRIME);
      let i = (h >>> 0) & mask;
      while (slots[i] !== EMPTY) i = (i + 1) & mask;
      slots[i] = (((h >>> 0) >>> offBits) * scale + off) >>> 0;
      off += len + 1;
    }
    this.slots = slots;
  }
}
