// The answer cache: upstream answers kept as bytes, keyed by name, type, class, DO and CD bits, bounded
// by entry count with LRU eviction. Blocking is decided before the cache, so an answer cached for
// one network is only ever served to a network whose rules allow the name.
//
// Hand-written, and outside the JavaScript heap, because it is the hot path's largest structure:
// a full cache of JavaScript objects (a key string, an answer object and a byte view per entry)
// was most of what V8's old-generation collector had to trace, and at a steady rate of cache
// misses every new entry was promoted and every evicted one left garbage behind: incremental
// marking steps of 10-20 ms, which made the cache-miss p99 latency. Here an entry is a row of
// typed arrays (its metadata and LRU links), a slot in an open-addressing index, and a chunk of a
// ChunkStore holding its key, message and TTL table: no object per entry, and the heap stays the
// same size however many answers come and go. A hit is found by hashing the query's key bytes,
// so it allocates no key string either.
import type { AnswerBytes } from '../dns/answer-bytes.js';
import { copyBytes } from '../bytes/copy-bytes.js';
import type { Query } from '../dns/wire.js';

export type Clock = () => number;

// A key is `name/type/class`, with `/do` when the client set the DO bit and `/cd` when it set CD: an
// answer fetched with checking disabled may be bogus, so it is never served to a client that wants
// validated data. A name is at most 253 characters.
const KEY_SCRATCH = Buffer.allocUnsafe(320);
const PRIVATE_ADDRESS = 1;
const HAS_CNAMES = 2;
const NONE = -1;
/** What follows the name in a key (see writeKey). */
const KEY_SUFFIX = /\/\d+\/\d+(?:\/do)?(?:\/cd)?$/;

/** The key's bytes for `query` in KEY_SCRATCH; returns their length. The same bytes as key(query). */
function writeKey(query: Query): number {
  let n = KEY_SCRATCH.write(query.name, 0, 'latin1');
  KEY_SCRATCH[n++] = 0x2f; // '/'
  n = writeDecimal(query.type, n);
  KEY_SCRATCH[n++] = 0x2f;
  n = writeDecimal(query.qclass, n);
  if (query.edns?.do) n += KEY_SCRATCH.write('/do', n, 'latin1');
  if (query.flags & 0x0010) n += KEY_SCRATCH.write('/cd', n, 'latin1');
  return n;
}

function writeDecimal(v: number, at: number): number {
  if (v >= 10) at = writeDecimal(Math.floor(v / 10), at);
  KEY_SCRATCH[at] = 0x30 + (v % 10);
  return at + 1;
}

function hashKey(len: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ KEY_SCRATCH[i]!, 0x01000193);
  return h | 0;
}

/** Entries larger than this (key, message, TTL table) are not cached: they are rare and each would pin a large chunk. */
export const MAX_ENTRY_BYTES = 4096;
const CLASS_UNIT = 2 ** 32;

/**
 * Fixed-size chunks in 1 MiB pages, one size class per power of two from 64 bytes to
 * MAX_ENTRY_BYTES: an entry's bytes are one chunk, and an evicted entry's chunk is reused by the
 * next entry of its class. Pages are never given back one by one: when a churn of answer sizes
 * has spread them over the classes up to the cache's budget, the cache copies its live entries into
 * a fresh store (AnswerCache.compact), so the pages stay bounded by what is live.
 */
class ChunkStore {
  static readonly PAGE = 1 << 20;
  private readonly pages: Buffer[][] = [];
  private readonly free: number[][] = [];
  private readonly used: number[] = [];
  private total = 0;

  static classOf(size: number): number {
    let cls = 0;
    while (64 << cls < size) cls++;
    return cls;
  }

  private static perPage(cls: number): number {
    return Math.max(1, ChunkStore.PAGE >> (6 + cls));
  }

  /** Whether a chunk of class `cls` can be had without taking the pages past `budget` bytes. */
  hasRoom(cls: number, budget: number): boolean {
    if ((this.free[cls]?.length ?? 0) > 0) return true;
    const index = this.used[cls] ?? 0;
    return index % ChunkStore.perPage(cls) !== 0 || this.total + ChunkStore.PAGE <= budget;
  }

  /** A chunk of class `cls`, as class × 2^32 + index. */
  alloc(cls: number): number {
    const free = (this.free[cls] ??= []);
    const reused = free.pop();
    if (reused !== undefined) return cls * CLASS_UNIT + reused;
    const index = this.used[cls] ?? 0;
    this.used[cls] = index + 1;
    if (index % ChunkStore.perPage(cls) === 0) {
      (this.pages[cls] ??= []).push(Buffer.allocUnsafeSlow(ChunkStore.PAGE));
      this.total += ChunkStore.PAGE;
    }
    return cls * CLASS_UNIT + index;
  }

  release(ref: number): void {
    this.free[Math.floor(ref / CLASS_UNIT)]!.push(ref % CLASS_UNIT);
  }

  page(ref: number): Buffer {
    const cls = Math.floor(ref / CLASS_UNIT);
    return this.pages[cls]![Math.floor((ref % CLASS_UNIT) / ChunkStore.perPage(cls))]!;
  }

  offset(ref: number): number {
    const cls = Math.floor(ref / CLASS_UNIT);
    return ((ref % CLASS_UNIT) % ChunkStore.perPage(cls)) * (64 << cls);
  }

  get bytes(): number {
    return this.total;
  }
}

/**
 * What a lookup returns: the entry's bytes in place, as an AnswerBytes. One per cache, refilled by
 * every lookup, so a hit allocates nothing; it is valid until the next call into the cache (the
 * resolver renders it at once).
 */
class EntryView implements AnswerBytes {
  raw: Buffer = Buffer.alloc(0);
  base = 0;
  length = 0;
  records = 0;
  rcode = 0;
  cacheTtl = 0;
  answerCount = 0;
  cnames: string[] | undefined = undefined;
  privateAddress = false;
  storedAt = 0;
  expiresAt = 0;
}

export class AnswerCache {
  hits = 0;
  misses = 0;
  /** Called for every answer stored (the shared cache writes it behind to Redis). */
  onStore: ((key: string, answer: AnswerBytes) => void) | undefined;

  private readonly capacity: number;
  private count = 0;
  // One row per entry.
  private readonly hash: Int32Array;
  private readonly chunk: Float64Array;
  private readonly keyLength: Uint16Array;
  /** Bytes of the entry's chunk in use (key, message, TTL table, CNAME targets). */
  private readonly chunkUsed: Uint16Array;
  private readonly length: Int32Array;
  private readonly records: Uint16Array;
  private readonly rcode: Uint16Array;
  private readonly answerCount: Uint16Array;
  private readonly cacheTtl: Int32Array;
  private readonly flags: Uint8Array;
  private readonly storedAt: Float64Array;
  private readonly expiresAt: Float64Array;
  // LRU order: head is the most recently used, tail the next to go.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private head = NONE;
  private tail = NONE;
  private readonly freeRows: number[] = [];
  private unusedRow = 0;
  /** Open addressing with linear probing, at most half full: row + 1, or 0 for an empty slot. */
  private readonly index: Int32Array;
  private readonly mask: number;
  private chunks = new ChunkStore();
  /** Bytes of pages the chunks may take: ~1 KiB per entry, several times what typical answers need. */
  private readonly pageBudget: number;
  private readonly view = new EntryView();

  constructor(
    maxEntries: number,
    private readonly now: Clock = Date.now,
  ) {
    this.capacity = Math.max(0, maxEntries);
    const n = this.capacity;
    this.hash = new Int32Array(n);
    this.chunk = new Float64Array(n);
    this.keyLength = new Uint16Array(n);
    this.chunkUsed = new Uint16Array(n);
    this.length = new Int32Array(n);
    this.records = new Uint16Array(n);
    this.rcode = new Uint16Array(n);
    this.answerCount = new Uint16Array(n);
    this.cacheTtl = new Int32Array(n);
    this.flags = new Uint8Array(n);
    this.storedAt = new Float64Array(n);
    this.expiresAt = new Float64Array(n);
    this.prev = new Int32Array(n);
    this.next = new Int32Array(n);
    let slots = 2;
    while (slots < n * 2) slots *= 2;
    this.index = new Int32Array(n > 0 ? slots : 0);
    this.mask = slots - 1;
    this.pageBudget = Math.max(8 * ChunkStore.PAGE, n * 1024);
  }

  /** `name/type/class`, with `/do` and `/cd` when the client set those bits (the in-flight and Redis key). */
  static key(query: Query): string {
    const n = writeKey(query);
    return KEY_SCRATCH.toString('latin1', 0, n);
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held for answers (the chunk pages), for the docs and tests. */
  get storeBytes(): number {
    return this.chunks.bytes;
  }

  /**
   * The fresh answer to `query` (its age in seconds is `ageOf(answer)`), valid until the next call
   * into the cache. Expired entries stay for serve-stale until evicted.
   */
  lookupQuery(query: Query): AnswerBytes | undefined {
    if (this.capacity === 0) {
      this.misses++;
      return undefined;
    }
    return this.hit(this.find(writeKey(query)));
  }

  /** As lookupQuery(), by key string. */
  lookup(key: string): AnswerBytes | undefined {
    if (this.capacity === 0) {
      this.misses++;
      return undefined;
    }
    return this.hit(this.find(KEY_SCRATCH.write(key, 0, 'latin1')));
  }

  private hit(row: number): AnswerBytes | undefined {
    if (row < 0 || this.now() >= this.expiresAt[row]!) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.touch(row);
    return this.fill(row);
  }

  ageOf(e: AnswerBytes): number {
    return Math.floor((this.now() - e.storedAt) / 1000);
  }

  /** An expired entry no more than `maxStaleSeconds` past its expiry (RFC 8767). Valid until the next call. */
  stale(key: string, maxStaleSeconds: number): AnswerBytes | undefined {
    if (this.capacity === 0) return undefined;
    const row = this.find(KEY_SCRATCH.write(key, 0, 'latin1'));
    if (row < 0 || this.now() - this.expiresAt[row]! > maxStaleSeconds * 1000) return undefined;
    return this.fill(row);
  }

  store(key: string, answer: AnswerBytes): void {
    if (this.capacity === 0 || answer.cacheTtl <= 0) return;
    const now = this.now();
    this.put(key, answer, now, now + answer.cacheTtl * 1000);
    this.onStore?.(key, answer);
  }

  /** An answer resolved elsewhere with `remainingMs` to live, its TTLs already counted down by the rest. */
  warm(key: string, answer: AnswerBytes, remainingMs: number): void {
    if (this.capacity === 0 || remainingMs <= 0) return;
    if (this.find(KEY_SCRATCH.write(key, 0, 'latin1')) >= 0) return;
    const now = this.now();
    const age = Math.max(0, answer.cacheTtl * 1000 - remainingMs);
    this.put(key, answer, now - age, now + remainingMs);
  }

  /**
   * Drop every entry, or with `name` (lower case, no trailing dot) the entries for that name and
   * the names below it, as `unbound-control flush_zone` does. Returns how many went. An admin
   * action, not the query path: it reads every key once.
   */
  flush(name?: string): number {
    if (name === undefined || name === '') {
      const n = this.count;
      this.clear();
      return n;
    }
    const below = `.${name}`;
    let n = 0;
    for (let row = this.tail; row !== NONE;) {
      const older = this.prev[row]!;
      const ref = this.chunk[row]!;
      const at = this.chunks.offset(ref);
      // The key is `name/type/class[/do][/cd]`: the name is what precedes its type and class.
      const key = this.chunks.page(ref).toString('latin1', at, at + this.keyLength[row]!);
      const owner = key.replace(KEY_SUFFIX, '');
      if (owner === name || owner.endsWith(below)) {
        this.remove(row);
        n++;
      }
      row = older;
    }
    return n;
  }

  clear(): void {
    this.index.fill(0);
    this.count = 0;
    this.head = this.tail = NONE;
    this.freeRows.length = 0;
    this.unusedRow = 0;
    this.chunks = new ChunkStore();
  }

  // ---- entries ---------------------------------------------------------------------------------

  private put(key: string, a: AnswerBytes, storedAt: number, expiresAt: number): void {
    // Chunk: key, message, TTL table (records × 6 bytes), then CNAME targets as length-prefixed text.
    const body = a.length + a.records * 6;
    let cnameBytes = 0;
    if (a.cnames) for (const c of a.cnames.slice(0, 255)) cnameBytes += 1 + Math.min(255, c.length);
    const keyLen = KEY_SCRATCH.write(key, 0, 'latin1');
    const size = keyLen + body + (a.cnames ? 1 + cnameBytes : 0);
    const h = hashKey(keyLen);
    const old = this.find(keyLen, h);
    if (old >= 0) this.remove(old);
    if (size > MAX_ENTRY_BYTES) return;
    if (this.count === this.capacity) this.remove(this.tail);
    const cls = ChunkStore.classOf(size);
    if (!this.chunks.hasRoom(cls, this.pageBudget)) {
      // The pages are at their budget, held by other size classes: pack the live entries into a
      // fresh store; if they alone fill the budget, let the oldest quarter go and pack again.
      this.compact();
      if (!this.chunks.hasRoom(cls, this.pageBudget)) {
        for (let n = Math.ceil(this.count / 4); n > 0 && this.count > 0; n--) this.remove(this.tail);
        this.compact();
      }
      if (!this.chunks.hasRoom(cls, this.pageBudget)) return;
    }
    const row = this.freeRows.pop() ?? this.unusedRow++;
    const ref = this.chunks.alloc(cls);
    const page = this.chunks.page(ref);
    let at = this.chunks.offset(ref);
    copyBytes(KEY_SCRATCH, 0, keyLen, page, at);
    at += keyLen;
    copyBytes(a.raw, a.base, a.base + body, page, at);
    at += body;
    if (a.cnames) {
      page[at++] = Math.min(255, a.cnames.length);
      for (const c of a.cnames.slice(0, 255)) {
        const l = Math.min(255, c.length);
        page[at++] = l;
        at += page.write(c.slice(0, l), at, 'latin1');
      }
    }
    this.hash[row] = h;
    this.chunk[row] = ref;
    this.keyLength[row] = keyLen;
    this.chunkUsed[row] = size;
    this.length[row] = a.length;
    this.records[row] = a.records;
    this.rcode[row] = a.rcode;
    this.answerCount[row] = a.answerCount;
    this.cacheTtl[row] = a.cacheTtl;
    this.flags[row] = (a.privateAddress ? PRIVATE_ADDRESS : 0) | (a.cnames ? HAS_CNAMES : 0);
    this.storedAt[row] = storedAt;
    this.expiresAt[row] = expiresAt;
    this.linkHead(row);
    let slot = h & this.mask;
    while (this.index[slot] !== 0) slot = (slot + 1) & this.mask;
    this.index[slot] = row + 1;
    this.count++;
  }

  /** Copy every live entry into a fresh chunk store, oldest first, and drop the old pages. */
  private compact(): void {
    const fresh = new ChunkStore();
    for (let row = this.tail; row !== NONE; row = this.prev[row]!) {
      const ref = this.chunk[row]!;
      const size = this.chunkUsed[row]!;
      const moved = fresh.alloc(ChunkStore.classOf(size));
      const from = this.chunks.offset(ref);
      this.chunks.page(ref).copy(fresh.page(moved), fresh.offset(moved), from, from + size);
      this.chunk[row] = moved;
    }
    this.chunks = fresh;
  }

  /** The row whose key is the first `len` bytes of KEY_SCRATCH, or -1. */
  private find(len: number, h = hashKey(len)): number {
    const { index, mask } = this;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const v = index[slot]!;
      if (v === 0) return NONE;
      const row = v - 1;
      if (this.hash[row] === h && this.keyLength[row] === len && this.keyEquals(row, len)) return row;
    }
  }

  private keyEquals(row: number, len: number): boolean {
    const ref = this.chunk[row]!;
    const page = this.chunks.page(ref);
    const at = this.chunks.offset(ref);
    for (let i = 0; i < len; i++) if (page[at + i] !== KEY_SCRATCH[i]) return false;
    return true;
  }

  private remove(row: number): void {
    // Backward-shift deletion keeps every probe sequence unbroken without tombstones.
    const { index, mask } = this;
    let slot = this.hash[row]! & mask;
    while (index[slot] !== row + 1) slot = (slot + 1) & mask;
    let hole = slot;
    for (let s = (hole + 1) & mask; index[s] !== 0; s = (s + 1) & mask) {
      const home = this.hash[index[s]! - 1]! & mask;
      // The entry at s may move into the hole unless its home lies cyclically in (hole, s].
      if ((s > hole && (home <= hole || home > s)) || (s < hole && home <= hole && home > s)) {
        index[hole] = index[s]!;
        hole = s;
      }
    }
    index[hole] = 0;
    this.unlink(row);
    this.chunks.release(this.chunk[row]!);
    this.freeRows.push(row);
    this.count--;
  }

  private fill(row: number): AnswerBytes {
    const v = this.view;
    const ref = this.chunk[row]!;
    v.raw = this.chunks.page(ref);
    v.base = this.chunks.offset(ref) + this.keyLength[row]!;
    v.length = this.length[row]!;
    v.records = this.records[row]!;
    v.rcode = this.rcode[row]!;
    v.cacheTtl = this.cacheTtl[row]!;
    v.answerCount = this.answerCount[row]!;
    v.privateAddress = (this.flags[row]! & PRIVATE_ADDRESS) !== 0;
    v.cnames = this.flags[row]! & HAS_CNAMES ? this.cnamesOf(v) : undefined;
    v.storedAt = this.storedAt[row]!;
    v.expiresAt = this.expiresAt[row]!;
    return v;
  }

  private cnamesOf(v: EntryView): string[] {
    const page = v.raw;
    let at = v.base + v.length + v.records * 6;
    const out: string[] = [];
    for (let n = page[at++]!; n > 0; n--) {
      const l = page[at++]!;
      out.push(page.toString('latin1', at, at + l));
      at += l;
    }
    return out;
  }

  // ---- LRU list --------------------------------------------------------------------------------

  private touch(row: number): void {
    if (this.head === row) return;
    this.unlink(row);
    this.linkHead(row);
  }

  private linkHead(row: number): void {
    this.prev[row] = NONE;
    this.next[row] = this.head;
    if (this.head !== NONE) this.prev[this.head] = row;
    this.head = row;
    if (this.tail === NONE) this.tail = row;
  }

  private unlink(row: number): void {
    const p = this.prev[row]!;
    const n = this.next[row]!;
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
  }
}
