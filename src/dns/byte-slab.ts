// Copies of small byte strings that live long (cached answers), packed into slabs of their own.
//
// Hand-written because Node's Buffer.from() takes small copies from the same 8 KiB pool as every
// short-lived buffer of the hot path (answers being sent): one cached answer then kept a whole
// pool slab alive, most of it garbage. Measured with 100,000 cached answers: ~1.7 KB of resident
// memory per entry that way, against the ~70 bytes of the answer. Entries of a cache leave in
// roughly the order they came (LRU), so the slabs here empty and are freed in order too. One live
// copy still keeps its whole slab, so slabs stay as small as Node's own pool's: an answer that is
// hit for hours can never pin more than 8 KiB.
const SLAB_SIZE = 8 * 1024;
/** Larger copies get a buffer of their own: a few of them would fill a slab. */
const MAX_PACKED = 1024;

export class ByteSlab {
  private slab: Buffer | undefined;
  private used = 0;

  /** `n` bytes (uninitialised) that share their memory only with other long-lived copies. */
  alloc(n: number): Buffer {
    if (n > MAX_PACKED) return Buffer.allocUnsafeSlow(n);
    if (!this.slab || this.used + n > SLAB_SIZE) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + n);
    this.used += (n + 7) & ~7; // keep copies 8-byte aligned
    return out;
  }

  /** A copy of `src[start, end)` that shares its memory only with other long-lived copies. */
  copy(src: Uint8Array, start: number, end: number): Buffer {
    const n = end - start;
    const out = this.alloc(n);
    for (let i = 0; i < n; i++) out[i] = src[start + i]!;
    return out;
  }
}
