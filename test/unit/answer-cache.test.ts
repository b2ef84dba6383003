// The answer cache outside the JavaScript heap: an open-addressing index, LRU links and chunked
// byte pages. Checked against a plain Map model under random operations, and for what the resolver
// relies on: bytes in place, TTLs counting down, CNAME targets and flags kept, stale windows, and
// memory that stays bounded however many answers come and go.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { answerMessage, renderAnswer, scanAnswer, type AnswerBytes } from '../../src/dns/answer-bytes.js';
import { readQuery, type Query } from '../../src/dns/wire.js';
import { AnswerCache, MAX_ENTRY_BYTES } from '../../src/pipeline/answer-cache.js';
import { decodeResponse, encodeQuery, TYPE } from '../helpers/dns-client.js';
import { encodeResponse, type Rr } from '../helpers/fake-upstream.js';

const CLAMP = { minTtl: 0, maxTtl: 86400, negativeMaxTtl: 3600 };

function parse(q: Buffer): Query {
  const r = readQuery(q);
  if (!r.ok) throw new Error(`bad query: ${r.reason}`);
  return r.query;
}

/** An upstream answer for `name`, scanned as the forwarder does. */
function answerFor(name: string, opts: { type?: string; ttl?: number; answers?: Rr[]; do?: boolean } = {}): { query: Query; msg: Buffer; answer: AnswerBytes } {
  const msg = encodeQuery(name, opts.type ?? 'A', { id: 77, ...(opts.do ? { edns: { do: true } } : {}) });
  const query = parse(msg);
  const reply = encodeResponse(msg, { tc: false, answers: opts.answers ?? [{ name, type: TYPE.A, ttl: opts.ttl ?? 300, data: '192.0.2.1' }] });
  const answer = scanAnswer(reply, query.questionEnd, CLAMP);
  if (!answer) throw new Error('unscannable');
  return { query, msg, answer };
}

describe('AnswerCache', () => {
  it('finds an answer by query and by key, renders it in place with TTLs counted down', () => {
    let now = 1_000_000;
    const cache = new AnswerCache(10, () => now);
    const { query, msg, answer } = answerFor('www.example.org', { ttl: 300 });
    const key = AnswerCache.key(query);
    expect(key).toBe('www.example.org/1/1');
    expect(cache.lookupQuery(query)).toBeUndefined();
    cache.store(key, answer);
    now += 100_500;
    const hit = cache.lookupQuery(query)!;
    expect(hit).toBeDefined();
    expect(cache.ageOf(hit)).toBe(100);
    const out = decodeResponse(renderAnswer(hit, msg, query, cache.ageOf(hit)));
    expect(out.id).toBe(77);
    expect(out.answers[0]).toMatchObject({ name: 'www.example.org', ttl: 200, data: '192.0.2.1' });
    expect(cache.lookup(key)).toBeDefined();
    expect(cache.hits).toBe(2);
    expect(cache.misses).toBe(1);
    now += 200_000; // past its TTL: a miss, but still there for serve-stale
    expect(cache.lookupQuery(query)).toBeUndefined();
    expect(cache.stale(key, 30)).toBeDefined(); // expired 0.5 s ago
    expect(cache.stale(key, 0)).toBeUndefined();
  });

  it('keeps the DO bit, type and class apart in its keys', () => {
    const cache = new AnswerCache(10);
    const plain = answerFor('a.example');
    const withDo = answerFor('a.example', { do: true });
    const aaaa = answerFor('a.example', { type: 'AAAA', answers: [{ name: 'a.example', type: TYPE.AAAA, ttl: 60, data: '2001:db8::1' }] });
    cache.store(AnswerCache.key(plain.query), plain.answer);
    expect(cache.lookupQuery(withDo.query)).toBeUndefined();
    expect(cache.lookupQuery(aaaa.query)).toBeUndefined();
    expect(AnswerCache.key(withDo.query)).toBe('a.example/1/1/do');
    cache.store(AnswerCache.key(aaaa.query), aaaa.answer);
    expect(cache.lookupQuery(aaaa.query)?.cacheTtl).toBe(60);
    expect(cache.lookupQuery(plain.query)?.cacheTtl).toBe(300);
  });

  it('serves an expired answer only within the stale window', () => {
    let now = 0;
    const cache = new AnswerCache(10, () => now);
    const { query, answer } = answerFor('s.example', { ttl: 10 });
    const key = AnswerCache.key(query);
    cache.store(key, answer);
    now = 10_000 + 29_000;
    expect(cache.lookupQuery(query)).toBeUndefined();
    expect(cache.stale(key, 30)?.cacheTtl).toBe(10);
    now = 10_000 + 31_000;
    expect(cache.stale(key, 30)).toBeUndefined();
  });

  it('keeps CNAME targets and the private-address flag of an entry', () => {
    const cache = new AnswerCache(10);
    const { query, answer } = answerFor('alias.example', {
      answers: [
        { name: 'alias.example', type: TYPE.CNAME, ttl: 300, data: 'Edge.Tiktokcdn.COM' },
        { name: 'edge.tiktokcdn.com', type: TYPE.A, ttl: 300, data: '10.1.2.3' },
      ],
    });
    expect(answer.cnames).toEqual(['edge.tiktokcdn.com']);
    cache.store(AnswerCache.key(query), answer);
    const hit = cache.lookupQuery(query)!;
    expect(hit.cnames).toEqual(['edge.tiktokcdn.com']);
    expect(hit.privateAddress).toBe(true);
    expect(hit.answerCount).toBe(2);
    const plain = answerFor('plain.example');
    cache.store(AnswerCache.key(plain.query), plain.answer);
    const hit2 = cache.lookupQuery(plain.query)!;
    expect(hit2.cnames).toBeUndefined();
    expect(hit2.privateAddress).toBe(false);
  });

  it('evicts the least recently used entry when full', () => {
    const cache = new AnswerCache(3);
    const a = ['a', 'b', 'c', 'd'].map((n) => answerFor(`${n}.example`));
    for (const x of a.slice(0, 3)) cache.store(AnswerCache.key(x.query), x.answer);
    expect(cache.lookupQuery(a[0]!.query)).toBeDefined(); // a is now the most recent
    cache.store(AnswerCache.key(a[3]!.query), a[3]!.answer);
    expect(cache.size).toBe(3);
    expect(cache.lookupQuery(a[1]!.query)).toBeUndefined(); // b went
    for (const i of [0, 2, 3]) expect(cache.lookupQuery(a[i]!.query)).toBeDefined();
  });

  it('warm() adds only what it does not have, with the remaining lifetime', () => {
    let now = 5_000_000;
    const cache = new AnswerCache(10, () => now);
    const { query, answer } = answerFor('w.example', { ttl: 300 });
    const key = AnswerCache.key(query);
    cache.warm(key, answer, 100_000);
    const hit = cache.lookupQuery(query)!;
    expect(cache.ageOf(hit)).toBe(200);
    now += 100_000;
    expect(cache.lookupQuery(query)).toBeUndefined();
    const fresh = answerFor('w.example', { ttl: 60 });
    cache.store(key, fresh.answer);
    cache.warm(key, answer, 250_000); // already there: unchanged
    expect(cache.lookupQuery(query)?.cacheTtl).toBe(60);
  });

  it('agrees with a Map model under random stores, lookups and evictions', () => {
    const names = fc.integer({ min: 0, max: 60 }).map((i) => `n${i}.${'x'.repeat(i % 7)}example.org`);
    const op = fc.oneof(
      fc.record({ kind: fc.constant('store' as const), name: names, ttl: fc.integer({ min: 1, max: 900 }), big: fc.boolean() }),
      fc.record({ kind: fc.constant('lookup' as const), name: names }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(op, { maxLength: 300 }), (capacity, ops) => {
        const cache = new AnswerCache(capacity, () => 0);
        const model = new Map<string, number>(); // key -> ttl, in LRU order (oldest first)
        for (const o of ops) {
          if (o.kind === 'store') {
            // `big`: a TXT answer of several hundred bytes, to mix chunk sizes.
            const ans = o.big
              ? answerFor(o.name, { ttl: o.ttl, answers: [{ name: o.name, type: TYPE.TXT, ttl: o.ttl, data: ['t'.repeat(200), 'u'.repeat(150)] }] })
              : answerFor(o.name, { ttl: o.ttl });
            const key = AnswerCache.key(ans.query);
            cache.store(key, ans.answer);
            model.delete(key);
            if (model.size === capacity) model.delete(model.keys().next().value!);
            model.set(key, o.ttl);
          } else {
            const { query } = answerFor(o.name);
            const key = AnswerCache.key(query);
            const hit = cache.lookupQuery(query);
            const want = model.get(key);
            expect(hit?.cacheTtl).toBe(want);
            if (want !== undefined) {
              model.delete(key);
              model.set(key, want);
            }
          }
          expect(cache.size).toBe(model.size);
        }
        for (const [key, ttl] of model) expect(cache.lookup(key)?.cacheTtl).toBe(ttl);
      }),
      { numRuns: 200 },
    );
  });

  it('holds the same memory after a million answers have come and gone', () => {
    const cache = new AnswerCache(1000);
    const ans = answerFor('churn.example');
    const store = (i: number) => cache.store(`u${i}.churn.example/1/1`, ans.answer);
    for (let i = 0; i < 5000; i++) store(i);
    const settled = cache.storeBytes;
    for (let i = 5000; i < 1_000_000; i++) store(i);
    expect(cache.size).toBe(1000);
    expect(cache.storeBytes).toBe(settled);
    expect(cache.lookup('u999999.churn.example/1/1')).toBeDefined();
    expect(cache.lookup('u998999.churn.example/1/1')).toBeUndefined();
  });

  it('does not cache an answer over 4 KiB, and drops the older answer it would have replaced', () => {
    const cache = new AnswerCache(10);
    const small = answerFor('big.example', { type: 'TXT', answers: [{ name: 'big.example', type: TYPE.TXT, ttl: 300, data: ['small'] }] });
    const key = AnswerCache.key(small.query);
    cache.store(key, small.answer);
    expect(cache.lookupQuery(small.query)).toBeDefined();
    const big = answerFor('big.example', { type: 'TXT', answers: Array.from({ length: 20 }, (_, i) => ({ name: 'big.example', type: TYPE.TXT, ttl: 300, data: ['x'.repeat(250) + i] })) });
    expect(big.answer.length).toBeGreaterThan(MAX_ENTRY_BYTES);
    cache.store(key, big.answer);
    expect(cache.lookupQuery(big.query)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('keeps its pages within budget however the answer sizes churn', () => {
    const cache = new AnswerCache(2000);
    const sizes = [1, 3, 6, 12, 24, 48, 90]; // TXT strings of 40 bytes: from ~100 B to ~4 KiB per answer
    const answers = sizes.map(
      (n) =>
        answerFor('size.example', {
          type: 'TXT',
          answers: Array.from({ length: n }, (_, i) => ({ name: 'size.example', type: TYPE.TXT, ttl: 300, data: ['y'.repeat(38) + String(i).padStart(2, '0')] })),
        }).answer,
    );
    for (let round = 0; round < 3; round++) {
      for (const [k, a] of answers.entries()) {
        if (a.length + 40 > MAX_ENTRY_BYTES) continue;
        for (let i = 0; i < 3000; i++) cache.store(`s${round}-${k}-${i}.example/16/1`, a);
      }
    }
    // Without a budget every size class would keep its peak: well over 8 MiB here.
    expect(cache.storeBytes).toBeLessThanOrEqual(8 << 20);
    expect(cache.size).toBeGreaterThan(0);
    // Entries moved by the packing keep their bytes.
    for (const [k, i] of [
      [5, 2999],
      [5, 2500],
      [5, 1001],
    ] as const) {
      const hit = cache.lookup(`s2-${k}-${i}.example/16/1`);
      expect(hit?.records).toBe(sizes[k]);
      expect(answerMessage(hit!).equals(answerMessage(answers[k]!))).toBe(true);
    }
  });

  it('caches nothing with max_entries 0, and forgets everything on clear()', () => {
    const none = new AnswerCache(0);
    const { query, answer } = answerFor('z.example');
    none.store(AnswerCache.key(query), answer);
    expect(none.lookupQuery(query)).toBeUndefined();
    const cache = new AnswerCache(5);
    cache.store(AnswerCache.key(query), answer);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.lookupQuery(query)).toBeUndefined();
    cache.store(AnswerCache.key(query), answer);
    expect(cache.lookupQuery(query)).toBeDefined();
  });
});
