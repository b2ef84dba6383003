// Long-lived copies packed into slabs: each copy must hold exactly its bytes, however many share a slab.
import { describe, expect, it } from 'vitest';
import { ByteSlab } from '../../src/dns/byte-slab.js';

describe('ByteSlab', () => {
  it('keeps every copy intact across slabs, and gives large copies their own memory', () => {
    const slab = new ByteSlab();
    const source = Buffer.alloc(5000);
    const copies: { bytes: Buffer; want: Buffer }[] = [];
    for (let i = 0; i < 3000; i++) {
      const n = 1 + ((i * 37) % 1024);
      for (let k = 0; k < n; k++) source[k] = (i + k) & 0xff;
      copies.push({ bytes: slab.copy(source, 0, n), want: Buffer.from(source.subarray(0, n)) });
      source.fill(0xee); // the source is reused, as a socket's buffers are
    }
    for (const c of copies) expect(c.bytes.equals(c.want)).toBe(true);
    expect(new Set(copies.map((c) => c.bytes.buffer)).size).toBeGreaterThan(1); // more than one slab filled
    const big = slab.copy(Buffer.alloc(4000, 7), 0, 4000);
    expect(big.length).toBe(4000);
    expect(big.buffer.byteLength).toBe(4000);
    expect(big.every((b) => b === 7)).toBe(true);
    expect(copies.some((c) => c.bytes.buffer === big.buffer)).toBe(false);
  });
});
