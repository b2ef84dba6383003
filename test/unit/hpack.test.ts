// HPACK (src/server/h2/hpack.ts) and its Huffman code (huffman.ts): the request blocks of
// RFC 7541 Appendix C decoded in sequence (the dynamic table kept in step), every way a block can
// be wrong refused, a too-large list refused without losing the table, and the answer blocks we
// encode read back. Huffman: the RFC's examples, a round trip of any string, any bytes decoded
// without a throw.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeAnswerHeaders, HpackDecoder, MAX_ANSWER_HEADERS, MAX_HEADER_LIST, statusHeaders } from '../../src/server/h2/hpack.js';
import { huffmanDecode, huffmanEncode } from '../../src/server/h2/huffman.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeAll(d: HpackDecoder, block: Uint8Array): { headers: [string, string][]; failure: string | undefined } {
  const headers: [string, string][] = [];
  const failure = d.decode(block, (n, v) => headers.push([n, v]));
  return { headers, failure };
}

/** A literal with incremental indexing and a new name, plain strings (lengths under 127). */
function indexed(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x40, name.length]), Buffer.from(name, 'latin1'), Buffer.from([value.length]), Buffer.from(value, 'latin1')]);
}

const C3 = [hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d'), hex('8286 84be 5808 6e6f 2d63 6163 6865'), hex('8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65')];
const C4 = [hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'), hex('8286 84be 5886 a8eb 1064 9cbf'), hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')];
const EXPECTED: [string, string][][] = [
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ],
];

describe('HpackDecoder', () => {
  it('decodes the request examples of RFC 7541 C.3 (plain) and C.4 (Huffman), each sequence on one table', () => {
    for (const blocks of [C3, C4]) {
      const d = new HpackDecoder();
      expect(blocks.map((b) => decodeAll(d, b))).toEqual(EXPECTED.map((headers) => ({ headers, failure: undefined })));
    }
  });

  it('refuses a block that is not valid HPACK as a compression error', () => {
    const bad = [
      hex('80'), // index 0
      hex('be'), // dynamic index 62 with an empty table
      hex('ff ff ff ff ff 0f'), // an index past 2^28
      hex('3f 81 20'), // table size update to 4096 + 32: over our setting
      hex('82 20'), // a size update after a field
      hex('00 05 61 62'), // a name longer than the block
      hex('00 81 ff 01 61'), // a Huffman name of one all-ones byte: padding of 8 bits
      hex('00 84 ff ff ff ff 01 61'), // a Huffman name containing EOS
      hex('40'), // a literal cut off before its name
    ];
    for (const block of bad) expect(decodeAll(new HpackDecoder(), block).failure, block.toString('hex')).toBe('compression');
  });

  it('follows table size updates: a table cut to 0 holds nothing', () => {
    const d = new HpackDecoder();
    expect(decodeAll(d, C3[0]!).failure).toBeUndefined();
    expect(decodeAll(d, hex('be')).headers).toEqual([[':authority', 'www.example.com']]);
    expect(decodeAll(d, hex('20 be')).failure).toBe('compression');
  });

  it('evicts the oldest entries when the table is full, and never adds one larger than the table', () => {
    const d = new HpackDecoder();
    // 40 entries of 100 + 32 bytes: only the newest 31 fit in 4096 bytes.
    const names = Array.from({ length: 40 }, (_, i) => `h${String(i).padStart(2, '0')}`);
    const block = Buffer.concat(names.map((n) => indexed(n, 'v'.repeat(97))));
    expect(decodeAll(d, block).failure).toBeUndefined();
    expect(decodeAll(d, Buffer.from([0x80 | 62])).headers[0]![0]).toBe('h39');
    // Index 62 + 30 is the oldest kept (h09); 62 + 31 is gone.
    expect(decodeAll(d, Buffer.from([0x80 | 92])).headers[0]![0]).toBe('h09');
    expect(decodeAll(d, Buffer.from([0x80 | 93])).failure).toBe('compression');
    // An entry larger than the whole table empties it.
    expect(decodeAll(d, Buffer.concat([Buffer.from([0x40, 3]), Buffer.from('big'), Buffer.from([0x7f, 0x81, 0x1f]), Buffer.alloc(4096, 0x61)])).failure).toBeUndefined();
    expect(decodeAll(d, Buffer.from([0x80 | 62])).failure).toBe('compression');
  });

  it('refuses a header list over its limit as the stream’s error, and keeps the table in step', () => {
    const d = new HpackDecoder();
    const fields = Array.from({ length: 200 }, (_, i) => indexed(`x-${i}`, 'v'.repeat(90)));
    const result = decodeAll(d, Buffer.concat(fields));
    expect(result.failure).toBe('too-large');
    expect(result.headers.length).toBeLessThan(200);
    expect(result.headers.reduce((n, [k, v]) => n + k.length + v.length + 32, 0)).toBeLessThanOrEqual(MAX_HEADER_LIST);
    // Every insertion was made, the last one included: the client's encoder sees the same table.
    expect(decodeAll(d, Buffer.from([0x80 | 62])).headers).toEqual([['x-199', 'v'.repeat(90)]]);
    // A table size update right after the field that passed the limit is still in the middle of
    // the block: refused. Fields of 5 + 90 + 32 = 127 bytes: the 130th passes 16,384.
    const exact = Array.from({ length: 130 }, (_, i) => indexed(`x-${String(i).padStart(3, '0')}`, 'v'.repeat(90)));
    expect(decodeAll(new HpackDecoder(), Buffer.concat(exact)).failure).toBe('too-large');
    expect(decodeAll(new HpackDecoder(), Buffer.concat(exact.slice(0, 129))).failure).toBeUndefined();
    expect(decodeAll(new HpackDecoder(), Buffer.concat([...exact, Buffer.from([0x20])])).failure).toBe('compression');
  });

  it('never throws on arbitrary blocks, and leaves a good block after them decodable', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const d = new HpackDecoder();
        const r = decodeAll(d, bytes);
        expect([undefined, 'compression', 'too-large']).toContain(r.failure);
        expect(decodeAll(d, hex('8286 84')).headers).toEqual(EXPECTED[0]!.slice(0, 3));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('answer header blocks', () => {
  it('reads back as status 200, the DNS media type, the length and the max-age', () => {
    const out = Buffer.alloc(MAX_ANSWER_HEADERS);
    for (const [length, maxAge] of [
      [33, 60],
      [65535, 4294967295],
      [0, undefined],
    ] as const) {
      const end = encodeAnswerHeaders(out, 0, length, maxAge);
      expect(end).toBeLessThanOrEqual(MAX_ANSWER_HEADERS);
      const expected: [string, string][] = [
        [':status', '200'],
        ['content-type', 'application/dns-message'],
        ['content-length', String(length)],
      ];
      if (maxAge !== undefined) expected.push(['cache-control', `max-age=${maxAge}`]);
      expect(decodeAll(new HpackDecoder(), out.subarray(0, end))).toEqual({ headers: expected, failure: undefined });
    }
  });

  it('gives each status its block: 405 says what is allowed, 100 has no length', () => {
    const read = (code: number) => decodeAll(new HpackDecoder(), statusHeaders(code)).headers;
    expect(read(405)).toEqual([
      [':status', '405'],
      ['content-length', '0'],
      ['allow', 'GET, POST'],
    ]);
    expect(read(400)).toEqual([
      [':status', '400'],
      ['content-length', '0'],
    ]);
    expect(read(100)).toEqual([[':status', '100']]);
    expect(statusHeaders(413)).toBe(statusHeaders(413));
  });
});

describe('Huffman code', () => {
  const decode = (b: Buffer) => {
    const out = Buffer.alloc(Math.ceil((b.length * 8) / 5) + 1);
    const n = huffmanDecode(b, 0, b.length, out, 0);
    return n < 0 ? undefined : out.toString('latin1', 0, n);
  };

  it('decodes and encodes the strings of RFC 7541 C.4', () => {
    const pairs: [string, string][] = [
      ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
      ['no-cache', 'a8eb 1064 9cbf'],
      ['custom-key', '25a8 49e9 5ba9 7d7f'],
      ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
    ];
    for (const [text, code] of pairs) {
      expect(decode(hex(code))).toBe(text);
      expect(huffmanEncode(text).toString('hex')).toBe(code.replace(/ /g, ''));
    }
  });

  it('round-trips any byte string', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = Buffer.from(bytes).toString('latin1');
        expect(decode(huffmanEncode(text))).toBe(text);
      }),
      { numRuns: 3000 },
    );
  });

  it('decodes arbitrary bytes without a throw and within the room it asks for', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const b = Buffer.from(bytes);
        const out = Buffer.alloc(Math.ceil((b.length * 8) / 5));
        const n = huffmanDecode(b, 0, b.length, out, 0);
        expect(n).toBeGreaterThanOrEqual(-1);
        expect(n).toBeLessThanOrEqual(out.length);
      }),
      { numRuns: 3000 },
    );
  });
});
