// The forwarding stage: ask the upstream group the route picked (src/upstream/routes.ts) through
// the pool, keep the answer in the cache and render it for the client. Identical
// queries already in flight share one upstream exchange.
import { replyEdeCode, scanAnswer, type AnswerBytes, type TtlClamp } from '../dns/answer-bytes.js';
import type { UpstreamAddress } from '../config/schema.js';
import { RCODE } from '../dns/codes.js';
import type { ReplyProblem } from '../dns/reply-check.js';
import type { Query } from '../dns/wire.js';
import type { UpstreamFailure, UpstreamPool } from '../upstream/upstream-pool.js';
import type { AnswerCache } from './answer-cache.js';

export interface ForwardResult {
  answer: AnswerBytes | undefined;
  upstream: string | undefined;
  /** Why there is no answer. */
  failure?: UpstreamFailure;
  problem?: ReplyProblem;
  /** The Extended DNS Error code of an upstream SERVFAIL (e.g. 6: DNSSEC bogus). */
  ede?: number;
}

export class Forwarder {
  private readonly inFlight = new Map<string, Promise<ForwardResult>>();

  constructor(
    private readonly pool: UpstreamPool,
    private readonly cache: AnswerCache,
    private readonly clamp: () => TtlClamp,
  ) {}

  /** Exchanges under way. */
  get size(): number {
    return this.inFlight.size;
  }

  /** Whether an exchange for `cacheKey` is under way (a prefetch then has nothing to do). */
  inFlightFor(cacheKey: string): boolean {
    return this.inFlight.has(cacheKey);
  }

  // Promise chains rather than async functions: this runs once per forwarded query, and an async
  // function keeps its whole frame on the heap while it waits.
  forward(servers: UpstreamAddress[], msg: Buffer, query: Query, cacheKey: string): Promise<ForwardResult> {
    let flight = this.inFlight.get(cacheKey);
    if (!flight) {
      const f = this.exchange(servers, msg, query, cacheKey);
      flight = f;
      this.inFlight.set(cacheKey, f);
      const done = () => {
        if (this.inFlight.get(cacheKey) === f) this.inFlight.delete(cacheKey);
      };
      void f.then(done, done);
    }
    return flight;
  }

  private exchange(servers: UpstreamAddress[], msg: Buffer, query: Query, cacheKey: string): Promise<ForwardResult> {
    return this.pool.resolve(servers, msg, query).then((result): ForwardResult => {
      if (!result.ok) return { answer: undefined, upstream: result.server, failure: result.reason, ...(result.problem ? { problem: result.problem } : {}) };
      const answer = scanAnswer(result.reply, query.questionEnd, this.clamp(), result.address.trustAd !== false);
      if (answer) this.cache.store(cacheKey, answer);
      if ((result.reply[3]! & 0xf) !== RCODE.SERVFAIL) return { answer, upstream: result.server };
      const ede = replyEdeCode(result.reply, query.questionEnd);
      return ede === undefined ? { answer, upstream: result.server } : { answer, upstream: result.server, ede };
    });
  }
}
