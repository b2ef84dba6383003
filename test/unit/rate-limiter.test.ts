// The per-client token bucket on its own clock: `check()` is given the time of each query (the
// resolver passes the query's high-resolution start), so every refill, burst, verdict and sweep
// here is exact, with no waiting and nothing that a loaded machine can change.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RateLimiter, type RateLimit, type RateVerdict } from '../../src/pipeline/rate-limiter.js';

const T0 = 1_000_000; // any origin: only differences between times matter

/** `n` queries from `address` at the same instant, their verdicts in order. */
function burst(l: RateLimiter, address: string, limit: RateLimit, n: number, at: number): RateVerdict[] {
  return Array.from({ length: n }, () => l.check(address, limit, at));
}

const ok = (vs: RateVerdict[]) => vs.filter((v) => v === 'ok').length;

describe('token bucket', () => {
  const limit: RateLimit = { rate: 20, burst: 5, slip: 0 };

  it('lets a new client send its burst at once, then nothing more at that instant', () => {
    const l = new RateLimiter(100);
    expect(burst(l, '192.0.2.1', limit, 5, T0)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(burst(l, '192.0.2.1', limit, 3, T0)).toEqual(['drop', 'drop', 'drop']);
    expect(l.limited).toBe(3);
  });

  it('refills at `rate` tokens a second: 20/s is one query per 50 ms, fractions kept', () => {
    const l = new RateLimiter(100);
    burst(l, 'c', limit, 5, T0);
    expect(l.check('c', limit, T0 + 49)).toBe('drop'); // 0.98 of a token
    expect(l.check('c', limit, T0 + 50)).toBe('ok'); // 0.98 + 0.02: one whole token
    expect(l.check('c', limit, T0 + 75)).toBe('drop'); // half a token
    expect(l.check('c', limit, T0 + 100)).toBe('ok');
    // 250 ms refill 5 tokens: exactly five more queries, then none.
    expect(ok(burst(l, 'c', limit, 8, T0 + 350))).toBe(5);
  });

  it('never holds more than `burst` tokens, however long the client was idle', () => {
    const l = new RateLimiter(100);
    burst(l, 'c', limit, 5, T0);
    expect(ok(burst(l, 'c', limit, 50, T0 + 3_600_000))).toBe(5);
  });

  it('a query that is refused costs no token: a flood at a steady rate gets exactly the rate through', () => {
    const l = new RateLimiter(100);
    // 1000 queries a second for 10 s (one every ms) after the burst: 20 a second get through.
    let passed = 0;
    for (let t = 0; t < 10_000; t++) if (l.check('flood', limit, T0 + t) === 'ok') passed++;
    expect(passed).toBe(5 + 200 - 1); // the burst, then one per 50 ms (the 10,000th ms not yet reached)
  });

  it('keeps each client in its own bucket', () => {
    const l = new RateLimiter(100);
    burst(l, 'noisy', limit, 50, T0);
    expect(burst(l, 'quiet', limit, 5, T0)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(l.size).toBe(2);
  });

  it('follows a changed limit at once (a reload): a smaller burst caps the bucket', () => {
    const l = new RateLimiter(100);
    expect(ok(burst(l, 'c', { rate: 10, burst: 10, slip: 0 }, 3, T0))).toBe(3); // 7 left
    expect(ok(burst(l, 'c', { rate: 10, burst: 2, slip: 0 }, 5, T0 + 1))).toBe(2);
  });

  it('over any schedule of queries, lets through no more than burst + rate × elapsed, and counts the rest', () => {
    fc.assert(
      fc.property(
        fc.record({ rate: fc.integer({ min: 1, max: 1000 }), burst: fc.integer({ min: 1, max: 200 }), slip: fc.integer({ min: 0, max: 5 }) }),
        fc.array(fc.integer({ min: 0, max: 2000 }), { minLength: 1, maxLength: 300 }),
        (lim, gaps) => {
          const l = new RateLimiter(10);
          let t = T0;
          let passed = 0;
          for (const g of gaps) {
            t += g;
            if (l.check('c', lim, t) === 'ok') passed++;
          }
          expect(passed).toBeLessThanOrEqual(lim.burst + Math.floor((lim.rate * (t - T0)) / 1000));
          expect(passed).toBeGreaterThanOrEqual(Math.min(gaps.length, lim.burst));
          expect(l.limited).toBe(gaps.length - passed);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('verdicts over the limit: drop, or slip (a truncated answer) every `slip`-th time', () => {
  const over = (slip: number, n: number): RateVerdict[] => {
    const l = new RateLimiter(100);
    const limit = { rate: 1, burst: 1, slip };
    l.check('c', limit, T0);
    return burst(l, 'c', limit, n, T0);
  };

  it('slip 2: every second over-limit query slips, starting with the second', () => {
    expect(over(2, 6)).toEqual(['drop', 'slip', 'drop', 'slip', 'drop', 'slip']);
  });

  it('slip 3: two dropped, then one slips', () => {
    expect(over(3, 6)).toEqual(['drop', 'drop', 'slip', 'drop', 'drop', 'slip']);
  });

  it('slip 1: every over-limit query slips; slip 0: every one is dropped', () => {
    expect(over(1, 4)).toEqual(['slip', 'slip', 'slip', 'slip']);
    expect(over(0, 4)).toEqual(['drop', 'drop', 'drop', 'drop']);
  });

  it('counts slipped and dropped queries alike as limited, and keeps the slip rhythm across refills', () => {
    const l = new RateLimiter(100);
    const limit = { rate: 1, burst: 1, slip: 2 };
    expect(burst(l, 'c', limit, 4, T0)).toEqual(['ok', 'drop', 'slip', 'drop']);
    // A second later one token came back; the next over-limit query is the 4th of this client.
    expect(burst(l, 'c', limit, 3, T0 + 1000)).toEqual(['ok', 'slip', 'drop']);
    expect(l.limited).toBe(5);
  });
});

describe('client table: bounded memory', () => {
  const limit: RateLimit = { rate: 10, burst: 10, slip: 0 };

  it('when full, forgets only the idle clients (buckets that have refilled) to make room', () => {
    const l = new RateLimiter(3);
    l.check('idle', limit, T0); // 9 tokens; full again after 100 ms
    burst(l, 'busy1', limit, 10, T0 + 900); // empty
    burst(l, 'busy2', limit, 10, T0 + 900);
    expect(l.size).toBe(3);
    expect(l.check('new', limit, T0 + 950)).toBe('ok');
    expect(l.size).toBe(3);
    expect(l.resets).toBe(0);
    // The busy clients kept their state: still empty (half a token each since T0 + 900).
    expect(l.check('busy1', limit, T0 + 950)).toBe('drop');
    expect(l.check('busy2', limit, T0 + 950)).toBe('drop');
    // The idle one was forgotten: it comes back as a new client with a full burst. The table holds
    // only busy clients now, so making room for it starts the table afresh.
    expect(ok(burst(l, 'idle', limit, 10, T0 + 950))).toBe(10);
    expect(l.resets).toBe(1);
  });

  it('when no client is idle, starts afresh (fails open) and counts the reset', () => {
    const l = new RateLimiter(3);
    for (const c of ['a', 'b', 'c']) burst(l, c, limit, 10, T0);
    expect(l.check('a', limit, T0)).toBe('drop');
    expect(l.check('d', limit, T0)).toBe('ok');
    expect(l.resets).toBe(1);
    expect(l.size).toBe(1);
    // `a` lost its empty bucket with the rest: its next query gets a new burst.
    expect(l.check('a', limit, T0)).toBe('ok');
    expect(l.size).toBe(2);
  });

  it('never holds more than maxClients buckets, whatever the clients and times', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 500 })), { maxLength: 400 }), (max, queries) => {
        const l = new RateLimiter(max);
        let t = T0;
        for (const [client, gap] of queries) {
          t += gap;
          l.check(`10.0.0.${client}`, limit, t);
          expect(l.size).toBeLessThanOrEqual(max);
        }
      }),
      { numRuns: 200 },
    );
  });
});
