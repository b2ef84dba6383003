// DNS over TLS to one upstream (RFC 7858): up to `connections` persistent TLS connections, opened
// on the first query and when the open ones are busy, each carrying many queries at once with the
// 2-byte length framing of DNS over TCP; answers are matched by ID and question and may come in
// any order (RFC 7766 §6.2.1.1). An idle connection is closed; the next one resumes the TLS session.
import tls from 'node:tls';
import { closedError, sameQuestion, StreamUpstream, type InFlight } from './stream-upstream.js';
import { tlsOptions } from './tls-verify.js';

class DotConnection {
  /** Queries sent on this connection, by ID. */
  readonly inflight = new Map<number, InFlight>();
  /** The handshake is done. */
  established = false;
  /** New queries may go on it: established, and neither side has begun to close it. */
  ready = false;
  error: Error | undefined;
  /** The start of a message split across reads. */
  private rest: Buffer | undefined;
  /** Framed queries gathered in this turn of the event loop, written together at its end. */
  private unsent: Buffer[] = [];
  private unsentBytes = 0;
  private readonly flush = (): void => {
    const parts = this.unsent;
    const bytes = this.unsentBytes;
    this.unsent = [];
    this.unsentBytes = 0;
    if (this.socket.destroyed || parts.length === 0) return;
    this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes));
  };

  constructor(
    private readonly owner: DotUpstream,
    readonly socket: tls.TLSSocket,
  ) {}

  write(out: Buffer, q: InFlight): void {
    this.inflight.set(q.id, q);
    // Queries sent in one turn of the event loop (a batch of client datagrams) leave in one write,
    // one TLS record and one system call rather than one each. Gathered here rather than by
    // cork(): a corked stream still keeps a write request (and its callback) per query.
    if (this.unsent.length === 0) process.nextTick(this.flush);
    this.unsent.push(out);
    this.unsentBytes += out.length;
  }

  onData(d: Buffer): void {
    const buf = this.rest ? Buffer.concat([this.rest, d]) : d;
    let p = 0;
    while (buf.length - p >= 2) {
      const n = buf.readUInt16BE(p);
      if (buf.length - p - 2 < n) break;
      const start = p + 2;
      p = start + n;
      if (n < 12) continue;
      const q = this.inflight.get(buf.readUInt16BE(start));
      // Neither a query of ours nor its question: ignored, as a stray UDP datagram is.
      if (!q || !sameQuestion(buf.subarray(start, p), q.question)) continue;
      this.inflight.delete(q.id);
      this.owner.pending.delete(q.id);
      // A copy: the answer may be cached, and must not hold on to the whole read.
      q.answer(Buffer.from(buf.subarray(start, p)));
    }
    this.rest = p < buf.length ? Buffer.from(buf.subarray(p)) : undefined;
  }
}

export class DotUpstream extends StreamUpstream {
  private readonly conns: (DotConnection | undefined)[] = [];
  private connecting = 0;

  protected isConnected(): boolean {
    for (const c of this.conns) if (c?.ready) return true;
    return false;
  }

  send(out: Buffer, q: InFlight): void {
    const c = this.pick();
    if (c) return c.write(out, q);
    this.queue.push({ out, q });
    if (this.connecting === 0) this.open();
  }

  /** The ready connection with the fewest queries in flight; opens another when all are busy and a slot is free. */
  private pick(): DotConnection | undefined {
    let best: DotConnection | undefined;
    let free = false;
    for (let i = 0; i < this.opts.connections; i++) {
      const c = this.conns[i];
      if (!c) free = true;
      else if (c.ready && (!best || c.inflight.size < best.inflight.size)) best = c;
    }
    if (best && best.inflight.size > 0 && free && this.connecting === 0) this.open();
    return best;
  }

  private open(): void {
    let slot = 0;
    while (this.conns[slot]) slot++;
    if (slot >= this.opts.connections) return;
    const s = this.server;
    let options: tls.ConnectionOptions;
    try {
      options = tlsOptions(s.encrypted, s.host, s.port, 'dot', this.tlsSession);
    } catch (err) {
      // Never synchronously inside send(): the exchange is still setting the attempt up.
      process.nextTick(() => this.connectFailed(err as Error));
      return;
    }
    this.connecting++;
    const socket = tls.connect(options);
    const c = new DotConnection(this, socket);
    this.conns[slot] = c;
    const timer = setTimeout(
      () => socket.destroy(Object.assign(new Error(`no TLS connection within ${this.opts.connectTimeoutMs} ms`), { code: 'ERR_SLUICE_CONNECT_TIMEOUT' })),
      this.opts.connectTimeoutMs,
    );
    timer.unref();
    socket.on('session', (session: Buffer) => (this.tlsSession = session));
    // Closing, by us or by the server: no new queries on it; its slot is free for a new one.
    const retire = () => {
      c.ready = false;
      if (this.conns[slot] === c) this.conns[slot] = undefined;
    };
    socket.on('end', retire);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      this.connecting--;
      c.established = c.ready = true;
      this.connected();
      socket.setNoDelay(true);
      socket.setTimeout(this.opts.idleMs);
      if (this.closed) return void socket.destroy();
      for (let w = this.dequeue(); w; w = this.dequeue()) (this.pick() ?? c).write(w.out, w.q);
    });
    socket.on('data', (d: Buffer) => c.onData(d));
    socket.on('timeout', () => {
      // Idle: closed gracefully (RFC 7766 §6.2.3); busy: the timer runs again.
      if (c.inflight.size > 0) return void socket.setTimeout(this.opts.idleMs);
      retire();
      socket.end();
    });
    socket.on('error', (err) => (c.error ??= err));
    socket.on('close', () => {
      clearTimeout(timer);
      retire();
      if (!c.established) {
        this.connecting--;
        if (!this.closed) this.connectFailed(c.error ?? closedError('connection closed during the TLS handshake'));
      } else if (c.inflight.size > 0 && !this.closed) {
        this.opts.onFailure('closed', `connection lost with ${c.inflight.size} queries in flight${c.error ? `: ${c.error.message}` : ''}`);
      }
      // Its queries get no answer from it: their exchanges move on now, not after their timeout.
      const lost = [...c.inflight.values()];
      c.inflight.clear();
      for (const q of lost) {
        if (this.pending.get(q.id) !== q) continue;
        this.pending.delete(q.id);
        q.drop();
      }
      if (this.queue.length > 0 && this.connecting === 0 && !this.closed && !this.isConnected()) this.open();
    });
    socket.unref();
  }

  forget(id: number): void {
    if (!this.pending.delete(id)) return;
    for (const c of this.conns) c?.inflight.delete(id);
  }

  close(): void {
    this.closed = true;
    for (const c of this.conns) c?.socket.destroy();
    this.queue.length = 0;
  }
}
