// HPACK (RFC 7541) for sluice's HTTP/2 DoH server: the decoder of request header blocks, with
// the dynamic table the client's encoder keeps in step with, and the few response header blocks
// a DoH answer needs, encoded from the static table alone (so the client's decoder never needs
// our table: we announce none is used). Hand-written with connection.ts; see there for why.
import { huffmanDecode } from './huffman.js';

/** The static table (RFC 7541 Appendix A), index 1 first. */
const STATIC: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** Our SETTINGS_HEADER_TABLE_SIZE: the default, which the client's encoder may use. */
export const HEADER_TABLE_SIZE = 4096;
/** Bytes of decoded header list accepted in one request (names, values, 32 each). */
export const MAX_HEADER_LIST = 16384;

/** Why a header block was refused: a connection error (the tables are out of step), or only the stream's. */
export type HpackFailure = 'compression' | 'too-large';

/** Receives each header of a block, in order. */
export type HeaderSink = (name: string, value: string) => void;

/**
 * The request side of HPACK. One per connection: the dynamic table is the connection's. Names and
 * values are strings (the pipeline takes the path as one); a string is built only for a literal,
 * and a table entry keeps the one it was made of.
 */
export class HpackDecoder {
  /** The dynamic table, newest first. */
  private readonly names: string[] = [];
  private readonly values: string[] = [];
  private size = 0;
  private maxSize = HEADER_TABLE_SIZE;
  /** Scratch for Huffman strings: 8/5 of the longest literal a block can hold. */
  private scratch = Buffer.allocUnsafe(1024);
  private pos = 0;

  /** Decode one complete header block; undefined when it is good. */
  decode(block: Uint8Array, sink: HeaderSink, atStart = true): HpackFailure | undefined {
    this.pos = 0;
    const end = block.length;
    let listSize = 0;
    let first = atStart;
    while (this.pos < end) {
      const b = block[this.pos]!;
      let name: string;
      let value: string;
      if (b & 0x80) {
        // Indexed header field (§6.1).
        const index = this.integer(block, 7);
        if (index <= 0) return 'compression';
        const entry = this.entry(index);
        if (entry < 0) return 'compression';
        name = entry < 62 ? STATIC[entry - 1]![0] : this.names[entry - 62]!;
        value = entry < 62 ? STATIC[entry - 1]![1] : this.values[entry - 62]!;
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update (§6.3): only at the start of a block, within our setting.
        if (!first) return 'compression';
        const size = this.integer(block, 5);
        if (size < 0 || size > HEADER_TABLE_SIZE) return 'compression';
        this.maxSize = size;
        this.evict(0);
        continue;
      } else {
        // Literal (§6.2): with incremental indexing (01), without (0000) or never indexed (0001).
        const indexing = (b & 0xc0) === 0x40;
        const index = this.integer(block, indexing ? 6 : 4);
        if (index < 0) return 'compression';
        if (index === 0) {
          const n = this.string(block);
          if (n === undefined) return 'compression';
          name = n;
        } else {
          const entry = this.entry(index);
          if (entry < 0) return 'compression';
          name = entry < 62 ? STATIC[entry - 1]![0] : this.names[entry - 62]!;
        }
        const v = this.string(block);
        if (v === undefined) return 'compression';
        value = v;
        if (indexing) this.insert(name, value);
      }
      first = false;
      listSize += name.length + value.length + 32;
      if (listSize > MAX_HEADER_LIST) {
        // The rest must still be read, or the dynamic table would be out of step.
        const rest = this.skipRest(block);
        return rest ?? 'too-large';
      }
      sink(name, value);
    }
    return undefined;
  }

  /** Decode what is left of a block only for its table insertions. */
  private skipRest(block: Uint8Array): HpackFailure | undefined {
    // Not the start of the block: a table size update there is still an error (§4.2).
    const failure = this.decode(block.subarray(this.pos), () => undefined, false);
    return failure === 'too-large' ? undefined : failure;
  }

  /**
   * A table index as a position: 1-61 the static table, 62 and up the dynamic table's entry
   * (62 + its place in `names`, newest first); -1 when there is no such entry.
   */
  private entry(index: number): number {
    return index < 62 || index - 62 < this.names.length ? index : -1;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + 32;
    // An entry larger than the table empties it and is not added (§4.4).
    this.evict(size);
    if (size > this.maxSize) return;
    // Newest first: at most HEADER_TABLE_SIZE / 32 = 128 entries to move.
    this.names.unshift(name);
    this.values.unshift(value);
    this.size += size;
  }

  /** Drop the oldest entries until `room` more bytes fit. */
  private evict(room: number): void {
    while (this.names.length > 0 && this.size + room > this.maxSize) {
      this.size -= this.names.pop()!.length + this.values.pop()!.length + 32;
    }
  }

  /** An integer with an N-bit prefix (§5.1) at pos; -1 when it runs off the block or past 2^28. */
  private integer(block: Uint8Array, prefix: number): number {
    const max = (1 << prefix) - 1;
    let v = block[this.pos++]! & max;
    if (v < max) return v;
    let shift = 0;
    for (;;) {
      if (this.pos >= block.length || shift > 21) return -1;
      const b = block[this.pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) return v;
    }
  }

  /** A string literal (§5.2) at pos, Huffman-coded or not. */
  private string(block: Uint8Array): string | undefined {
    if (this.pos >= block.length) return undefined;
    const huffman = (block[this.pos]! & 0x80) !== 0;
    const length = this.integer(block, 7);
    if (length < 0 || this.pos + length > block.length) return undefined;
    const start = this.pos;
    this.pos += length;
    if (!huffman) return latin1(block, start, this.pos);
    const room = Math.ceil((length * 8) / 5);
    if (this.scratch.length < room) this.scratch = Buffer.allocUnsafe(Math.max(room, this.scratch.length * 2));
    const n = huffmanDecode(block, start, this.pos, this.scratch, 0);
    if (n < 0) return undefined;
    return this.scratch.toString('latin1', 0, n);
  }
}

function latin1(block: Uint8Array, start: number, end: number): string {
  const b = Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  return b.toString('latin1', start, end);
}

// ---------------------------------------------------------------------------------------------
// Response header blocks: literal fields without indexing whose names are static-table indexes.

const STATUS_INDEX: Readonly<Record<number, number>> = { 200: 8, 204: 9, 206: 10, 304: 11, 400: 12, 404: 13, 500: 14 };
const NAME_CACHE_CONTROL = 24;
const NAME_CONTENT_LENGTH = 28;
const NAME_CONTENT_TYPE = 31;
const NAME_ALLOW = 22;
const NAME_STATUS = 8;

/** A literal without indexing (§6.2.2) of a static name and a short plain value, into `out` at `at`. */
function literal(out: Buffer, at: number, nameIndex: number, value: string): number {
  if (nameIndex < 15) out[at++] = nameIndex;
  else {
    out[at++] = 0x0f;
    out[at++] = nameIndex - 15;
  }
  out[at++] = value.length; // values here are under 127 bytes
  at += out.write(value, at, 'latin1');
  return at;
}

/** `:status` into `out` at `at`. */
function status(out: Buffer, at: number, code: number): number {
  const index = STATUS_INDEX[code];
  if (index !== undefined) {
    out[at++] = 0x80 | index;
    return at;
  }
  return literal(out, at, NAME_STATUS, String(code));
}

const DNS_MESSAGE = 'application/dns-message';
/** `:status: 200` and `content-type: application/dns-message`, the start of every answer. */
const ANSWER_HEAD = (() => {
  const b = Buffer.alloc(64);
  let at = status(b, 0, 200);
  at = literal(b, at, NAME_CONTENT_TYPE, DNS_MESSAGE);
  return Buffer.from(b.subarray(0, at));
})();

/** The longest answer header block: ANSWER_HEAD, content-length (5 digits), cache-control (10 digits). */
export const MAX_ANSWER_HEADERS = ANSWER_HEAD.length + 2 + 1 + 5 + 2 + 1 + 18;

/**
 * The header block of a DoH answer into `out` at `at` (room for MAX_ANSWER_HEADERS): status 200,
 * the content type, its length and, when the answer has a TTL, cache-control max-age.
 */
export function encodeAnswerHeaders(out: Buffer, at: number, contentLength: number, maxAge: number | undefined): number {
  at += ANSWER_HEAD.copy(out, at);
  at = literal(out, at, NAME_CONTENT_LENGTH, String(contentLength));
  if (maxAge !== undefined) at = literal(out, at, NAME_CACHE_CONTROL, `max-age=${maxAge}`);
  return at;
}

const STATUS_BLOCKS = new Map<number, Buffer>();
/** The header block of a bodiless status answer (an HTTP error, or 100 Continue). */
export function statusHeaders(code: number): Buffer {
  let b = STATUS_BLOCKS.get(code);
  if (!b) {
    const out = Buffer.alloc(64);
    let at = status(out, 0, code);
    if (code >= 200) at = literal(out, at, NAME_CONTENT_LENGTH, '0');
    if (code === 405) at = literal(out, at, NAME_ALLOW, 'GET, POST');
    b = Buffer.from(out.subarray(0, at));
    STATUS_BLOCKS.set(code, b);
  }
  return b;
}
