// What DNS over TLS and DNS over HTTPS upstreams share: queries in flight by ID, a bounded queue of
// queries waiting while a connection is made, and reconnecting with exponential back-off after a
// failed connection, so that a dead upstream is not hammered. The pool's Exchange treats one of
// these as it treats a UDP socket: it registers an attempt by ID and sends it; the answer (its ID
// and question checked here) or the loss of its connection comes back through the attempt.
import type { UpstreamAddress } from '../config/schema.js';
import type { ConnectFailure } from './tls-verify.js';
import { classifyFailure } from './tls-verify.js';

/** A query in flight on a stream upstream: the pool's attempt. */
export interface InFlight {
  readonly id: number;
  readonly question: Buffer;
  /** A reply with this ID and question arrived on the connection the query went out on. */
  answer(msg: Buffer): void;
  /** Its connection failed or closed before an answer: none will come from here. */
  drop(): void;
}

export interface StreamOptions {
  /** DoT: persistent connections per upstream (DoH uses one HTTP/2 session). */
  connections: number;
  /** An idle connection is closed after this long. */
  idleMs: number;
  /** A TCP + TLS handshake that takes longer than this fails with `timeout`. */
  connectTimeoutMs: number;
  /** A connection could not be made, or was lost with queries in flight. */
  onFailure(reason: ConnectFailure, detail: string): void;
}

/** Queries that may wait for one upstream's connection; beyond, the upstream takes no more until it is up. */
const MAX_QUEUED = 1024;
/** Reconnect back-off after the first failed connection, doubling per failure up to RECONNECT_MAX_MS. */
const RECONNECT_BASE_MS = 200;
const RECONNECT_MAX_MS = 30_000;

export abstract class StreamUpstream {
  /** Queries in flight (sent or queued) by ID; the pool picks IDs not in here. */
  readonly pending = new Map<number, InFlight>();
  /** Queries waiting for a connection, with their framed message. */
  protected readonly queue: { out: Buffer; q: InFlight }[] = [];
  /** The last TLS session (ticket) the server gave, to resume the next connection with. */
  protected tlsSession: Buffer | undefined;
  /** Connections in a row that could not be made; 0 once one is. */
  private failuresInRow = 0;
  private retryAt = 0;
  protected closed = false;

  constructor(
    readonly server: UpstreamAddress & { encrypted: NonNullable<UpstreamAddress['encrypted']> },
    protected readonly opts: StreamOptions,
  ) {}

  /** Whether a query can be taken now: not while the reconnect back-off runs with no connection up, nor with the queue full. */
  accepting(now: number): boolean {
    if (this.closed) return false;
    if (this.isConnected()) return true;
    return this.retryAt <= now && this.queue.length < MAX_QUEUED;
  }

  /** The last connection attempt failed (a plain fallback applies while this holds). */
  get failing(): boolean {
    return this.failuresInRow > 0;
  }

  /** Send `out` (the ID in it is `q.id`, already in `pending`); never calls back synchronously. */
  abstract send(out: Buffer, q: InFlight): void;
  /** Stop waiting for query `id`. */
  abstract forget(id: number): void;
  abstract close(): void;
  protected abstract isConnected(): boolean;

  protected connected(): void {
    this.failuresInRow = 0;
    this.retryAt = 0;
  }

  /** A connection could not be made: back off, fail the queued queries (their exchanges move on). */
  protected connectFailed(err: Error): void {
    this.failuresInRow++;
    this.retryAt = Date.now() + Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** (this.failuresInRow - 1));
    // A resumed session the server no longer takes must not keep failing the handshake.
    this.tlsSession = undefined;
    this.opts.onFailure(classifyFailure(err), err.message);
    this.failQueued();
  }

  protected failQueued(): void {
    const waiting = this.queue.splice(0);
    for (const { q } of waiting) {
      if (this.pending.get(q.id) !== q) continue;
      this.pending.delete(q.id);
      q.drop();
    }
  }

  /** Take the next queued query still wanted, or undefined. */
  protected dequeue(): { out: Buffer; q: InFlight } | undefined {
    for (let w = this.queue.shift(); w; w = this.queue.shift()) if (this.pending.get(w.q.id) === w.q) return w;
    return undefined;
  }
}

/** The reply's question equals ours (name compared case-insensitively, RFC 5452 §9.1). */
export function sameQuestion(reply: Buffer, question: Buffer): boolean {
  if (reply.length < 12 + question.length || reply.readUInt16BE(4) !== 1) return false;
  for (let i = 0; i < question.length; i++) {
    let a = reply[12 + i]!;
    let b = question[i]!;
    if (a >= 0x41 && a <= 0x5a) a |= 0x20;
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (a !== b) return false;
  }
  return true;
}

export function closedError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_SLUICE_CLOSED' });
}
