// Answers still being resolved, so a listener can stop gracefully: stop receiving, then wait until
// what is in flight has been answered (or a deadline passed). Shared by the UDP and TCP listeners.
import type { RequestContext } from '../pipeline/context.js';

export class InFlight {
  private count = 0;
  private waiters: (() => void)[] = [];

  /**
   * Run `send` when the handler's promise settles; `onError` gets a rejection, `settled` runs after
   * either. Synchronous answers (most of them) never come here: listeners send those at once.
   */
  track(r: Promise<RequestContext>, send: (ctx: RequestContext) => void, onError: (err: Error) => void, settled?: () => void): void {
    this.count++;
    const after = () => {
      settled?.();
      if (--this.count === 0) for (const w of this.waiters.splice(0)) w();
    };
    // then(a, b) rather than then().finally(): one promise per forwarded query instead of four.
    r.then(
      (ctx) => {
        try {
          send(ctx);
        } catch (err) {
          onError(err as Error); // a throwing send must not become an unhandled rejection
        } finally {
          after();
        }
      },
      (err: Error) => {
        try {
          onError(err);
        } finally {
          after();
        }
      },
    );
  }

  get size(): number {
    return this.count;
  }

  /** Resolve when nothing is in flight, or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
