// Per-client rate limiting for UDP (token buckets, like response rate limiting in BIND and
// Unbound). Over the limit a query is dropped, except every `slip`-th, which gets a truncated
// answer so a real client behind a busy NAT can retry over TCP (which cannot be spoofed). Memory is
// bounded: idle buckets are swept, and if that is not enough the table starts afresh (fails open).

interface Bucket {
  tokens: number;
  last: number;
  over: number;
}

export interface RateLimit {
  rate: number;
  burst: number;
  slip: number;
}

export type RateVerdict = 'ok' | 'drop' | 'slip';

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  limited = 0;
  resets = 0;

  constructor(private readonly maxClients: number) {}

  get size(): number {
    return this.buckets.size;
  }

  check(address: string, limit: RateLimit, nowMs: number): RateVerdict {
    let b = this.buckets.get(address);
    if (!b) {
      if (this.buckets.size >= this.maxClients) this.sweep(nowMs, limit);
      b = { tokens: limit.burst, last: nowMs, over: 0 };
      this.buckets.set(address, b);
    } else {
      b.tokens = Math.min(limit.burst, b.tokens + ((nowMs - b.last) / 1000) * limit.rate);
      b.last = nowMs;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 'ok';
    }
    this.limited++;
    b.over++;
    return limit.slip > 0 && b.over % limit.slip === 0 ? 'slip' : 'drop';
  }

  private sweep(nowMs: number, limit: RateLimit): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((nowMs - b.last) / 1000) * limit.rate >= limit.burst) this.buckets.delete(k);
    }
    if (this.buckets.size >= this.maxClients) {
      this.buckets.clear();
      this.resets++;
    }
  }
}
