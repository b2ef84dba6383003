// HPACK's Huffman code (RFC 7541 §5.2, Appendix B): the decoder of header strings that HTTP/2
// clients send Huffman-coded (nghttp2, and so curl, kdig, dig and h2load, and the browsers, do
// whenever it is shorter). Hand-written because it is on the DoH hot path (see connection.ts).
//
// Decoding goes four bits at a time through a table built once from the code: a state is an
// inner node of the code tree; for each state and nibble the table gives the next state and the
// symbol completed on the way, if any (the shortest code is 5 bits: at most one per nibble).

/** Code length in bits of each symbol, 0-255 and EOS (256). */
const LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6,
  6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5,
  5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23,
  21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24,
  21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/** The code of each symbol, right-aligned in LENGTHS[s] bits. */
const CODES = [
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed, 0xfffffee,
  0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15,
  0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18, 0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60,
  0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24,
  0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7,
  0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2,
  0x7fffe3, 0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd, 0x3fffde,
  0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6,
  0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3,
  0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9,
  0x1fffe7, 0x1fffe8, 0x7ffff3, 0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9,
  0x7ffffea, 0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee, 0x3fffffff,
];

const EOS = 256;
/** States (inner nodes of the tree): 256 for a code of 257 symbols. */
const STATES = 256;
/** Per state × nibble: the next state; its symbol (or -1); whether that nibble passed EOS's code. */
const NEXT = new Uint16Array(STATES * 16);
const SYMBOL = new Int16Array(STATES * 16);
/**
 * A state where decoding may end: its path from the root is at most 7 bits, all 1 (the padding
 * must be a prefix of EOS's code, shorter than a byte: RFC 7541 §5.2).
 */
const ACCEPTS = new Uint8Array(STATES);

(function build(): void {
  // The tree: children of inner node i at 2i and 2i+1 of `child` (>= 0: an inner node; < 0: ~symbol).
  const child = new Int32Array(STATES * 2).fill(0);
  const depth = new Uint8Array(STATES);
  const ones = new Uint8Array(STATES);
  let nodes = 1;
  ones[0] = 1;
  for (let s = 0; s <= EOS; s++) {
    const len = LENGTHS[s]!;
    const code = CODES[s]!;
    let node = 0;
    for (let b = len - 1; b >= 0; b--) {
      const bit = (code >>> b) & 1;
      const slot = node * 2 + bit;
      if (b === 0) {
        child[slot] = ~s;
        break;
      }
      if (child[slot] === 0) {
        child[slot] = nodes;
        depth[nodes] = depth[node]! + 1;
        ones[nodes] = ones[node]! & bit;
        nodes++;
      }
      node = child[slot]!;
    }
  }
  for (let state = 0; state < STATES; state++) {
    ACCEPTS[state] = ones[state] && depth[state]! <= 7 ? 1 : 0;
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let symbol = -1;
      for (let b = 3; b >= 0; b--) {
        const next = child[node * 2 + ((nibble >>> b) & 1)]!;
        if (next < 0) {
          symbol = ~next;
          node = 0;
        } else node = next;
      }
      NEXT[state * 16 + nibble] = node;
      SYMBOL[state * 16 + nibble] = symbol;
    }
  }
})();

/**
 * Decode `src[start, end)` into `out` from `at`; the end offset in `out`, or -1 when it is not a
 * valid Huffman string (EOS inside, padding longer than 7 bits or not all 1). `out` must have
 * room for (end - start) * 8 / 5 bytes.
 */
export function huffmanDecode(src: Uint8Array, start: number, end: number, out: Uint8Array, at: number): number {
  let state = 0;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    let k = state * 16 + (byte >>> 4);
    let s = SYMBOL[k]!;
    if (s >= 0) {
      if (s === EOS) return -1;
      out[at++] = s;
    }
    state = NEXT[k]!;
    k = state * 16 + (byte & 15);
    s = SYMBOL[k]!;
    if (s >= 0) {
      if (s === EOS) return -1;
      out[at++] = s;
    }
    state = NEXT[k]!;
  }
  return ACCEPTS[state] ? at : -1;
}

/** Huffman-encode `text` (latin1): for tests and for clients written here. */
export function huffmanEncode(text: string): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    const s = text.charCodeAt(i) & 0xff;
    const len = LENGTHS[s]!;
    acc = acc * 2 ** len + CODES[s]!;
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      out.push(Math.floor(acc / 2 ** bits) & 0xff);
      acc %= 2 ** bits;
    }
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | (0xff >>> bits)) & 0xff);
  return Buffer.from(out);
}
