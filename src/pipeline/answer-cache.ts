// The answer cache: upstream answers kept as bytes, keyed by name, type, class and DO bit, bounded
// by entry count with LRU eviction (lru-cache keeps recency in typed arrays, O(1) per hit).
// Blocking is decided before the cache, so an answer cached for one network is only ever served
// to a network whose rules allow the name.
import { LRUCache } from 'lru-cache';
import type { AnswerBytes } from '../dns/answer-bytes.js';
import type { Query } from '../dns/wire.js';

export type Clock = () => number;

const KEY_SCRATCH = Buffer.allocUnsafe(320); // a name is at most 253 characters

export class AnswerCache {
  private readonly lru: LRUCache<string, AnswerBytes> | undefined;
  hits = 0;
  misses = 0;
  /** Called for every answer stored (the shared cache writes it behind to Redis). */
  onStore: ((key: string, answer: AnswerBytes) => void) | undefined;

  constructor(maxEntries: number, private readonly now: Clock = Date.now) {
    this.lru = maxEntries > 0 ? new LRUCache<string, AnswerBytes>({ max: maxEntries }) : undefined;
  }

  /**
   * `name/type/class`, with `/do` when the client set the DO bit. Built in a scratch buffer so the
   * key is one flat string: a template literal makes a chain of four string objects, and the cache
   * keeps its keys.
   */
  static key(query: Query): string {
    let n = KEY_SCRATCH.write(query.name, 0, 'latin1');
    n += KEY_SCRATCH.write(`/${query.type}/${query.qclass}${query.edns?.do ? '/do' : ''}`, n, 'latin1');
    return KEY_SCRATCH.toString('latin1', 0, n);
  }

  get size(): number {
    return this.lru?.size ?? 0;
  }

  /**
   * A fresh answer (its age in seconds is `ageOf(answer)`). Expired entries stay for serve-stale
   * until evicted. A hit allocates nothing.
   */
  lookup(key: string): AnswerBytes | undefined {
    const e = this.lru?.get(key);
    if (!e || this.now() >= e.expiresAt) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return e;
  }

  ageOf(e: AnswerBytes): number {
    return Math.floor((this.now() - e.storedAt) / 1000);
  }

  /** An expired entry no more than `maxStaleSeconds` past its expiry (RFC 8767). */
  stale(key: string, maxStaleSeconds: number): AnswerBytes | undefined {
    const e = this.lru?.peek(key);
    if (!e) return undefined;
    const now = this.now();
    return now - e.expiresAt <= maxStaleSeconds * 1000 ? e : undefined;
  }

  store(key: string, answer: AnswerBytes): void {
    if (!this.lru || answer.cacheTtl <= 0) return;
    const now = this.now();
    answer.storedAt = now;
    answer.expiresAt = now + answer.cacheTtl * 1000;
    this.lru.set(key, answer);
    this.onStore?.(key, answer);
  }

  /** An answer resolved elsewhere with `remainingMs` to live, its TTLs already counted down by the rest. */
  warm(key: string, answer: AnswerBytes, remainingMs: number): void {
    if (!this.lru || remainingMs <= 0 || this.lru.has(key)) return;
    const now = this.now();
    const age = Math.max(0, answer.cacheTtl * 1000 - remainingMs);
    answer.storedAt = now - age;
    answer.expiresAt = now + remainingMs;
    this.lru.set(key, answer);
  }

  clear(): void {
    this.lru?.clear();
  }
}
