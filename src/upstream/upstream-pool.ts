// Forwarding to upstream servers. A pool of UDP sockets carries many queries at once; each query
// gets a fresh random ID on a randomly chosen socket, and each socket is replaced by one on a new
// random port after a number of queries, so the (ID, port) pair stays hard to guess (RFC 5452)
// without creating a socket per query. A reply is accepted only from the server asked, with the
// ID and question that were sent. An encrypted upstream (DoT, DoH) is asked the same way, over a
// persistent stream of its own (stream-upstream.ts) instead of a UDP socket: the same timeouts,
// back-off, failover and reply checks apply.
import dgram from 'node:dgram';
import net from 'node:net';
import { randomFillSync } from 'node:crypto';
import type { UpstreamAddress } from '../config/schema.js';
import { EDNS_UDP_SIZE, TYPE, isUpstreamFailure } from '../dns/codes.js';
import { checkReply, type ReplyProblem } from '../dns/reply-check.js';
import { copyBytes } from '../bytes/copy-bytes.js';
import type { Query } from '../dns/wire.js';
import { SourceAddresses, type BatchBinding, type BatchSocket } from '../native/udp-batch.js';
import { DohUpstream } from './doh-session.js';
import { DotUpstream } from './dot-connection.js';
import { sameQuestion, type InFlight, type StreamUpstream } from './stream-upstream.js';
import type { ConnectFailure } from './tls-verify.js';

export interface UpstreamOptions {
  /** A failing upstream is skipped for this long, then probed by one query; each failed probe doubles it, up to 60 s. */
  backoffMs?: number;
  sockets: number;
  socketMaxQueries: number;
  /** Upper bound of an attempt's timeout, which is learned per upstream from its round-trip times. */
  timeoutMs: number;
  /** Lower bound of that timeout (Unbound's infra-cache-min-rtt). */
  minTimeoutMs: number;
  totalTimeoutMs: number;
  /** The batched native socket for upstream queries (see src/native/udp-batch.ts); node:dgram without it. */
  batch?: BatchBinding | undefined;
  /** Persistent connections per DoT upstream (upstreams.tls_connections). */
  tlsConnections?: number;
  /** An idle DoT/DoH connection is closed after this long (upstreams.tls_idle_timeout_ms). */
  tlsIdleTimeoutMs?: number;
  /** Connection failures and plain fallbacks of encrypted upstreams, at most one per kind and upstream per minute. */
  onEvent?: ((e: UpstreamEvent) => void) | undefined;
  /** The port of `fallback: plain` (53; tests move it). */
  plainFallbackPort?: number;
}

/** What the server logs (at warn) about encrypted upstreams. `suppressed`: like events since the last one reported. */
export type UpstreamEvent =
  { kind: 'connect-failed'; upstream: string; reason: ConnectFailure; detail: string; suppressed: number } | { kind: 'fallback'; upstream: string; to: string; suppressed: number };

/** Events of one kind and upstream are reported at most once per this period. */
const EVENT_INTERVAL_MS = 60_000;

/** What an attempt goes out on: a UDP socket of the pool, or an encrypted upstream's stream. */
interface Carrier {
  readonly pending: Map<number, InFlight>;
  send(out: Buffer, a: Attempt): void;
  forget(id: number): void;
}

/** One UDP port of the pool. Two kinds, one behaviour: node:dgram, and the batched native socket. */
abstract class PoolSocket {
  /** Attempts waiting for their answer, by query ID. */
  readonly pending = new Map<number, Attempt>();
  used = 0;
  retired = false;

  /** Send attempt `a`'s query `out` to its server; the attempt is told (at once or later) when it cannot go. */
  abstract send(out: Buffer, a: Attempt): void;
  abstract close(): void;

  /** A datagram from host:port: it settles the query it answers, if it is a genuine answer to one. */
  protected reply(msg: Buffer, host: string, port: number): void {
    if (msg.length < 12) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    if (!p) return;
    if (port !== p.port || normaliseHost(host) !== normaliseHost(p.host)) return;
    if (!sameQuestion(msg, p.question)) return; // a spoofed or stray reply: keep waiting
    this.forget(id);
    p.exchange.reply(p, msg);
  }

  /** Stop waiting for query `id`; a retired socket closes with its last pending query. */
  forget(id: number): void {
    this.pending.delete(id);
    if (this.retired && this.pending.size === 0) this.close();
  }
}

class DgramPoolSocket extends PoolSocket {
  private readonly socket: dgram.Socket;

  constructor(family: 'udp4' | 'udp6', onError: (e: Error) => void) {
    super();
    this.socket = dgram.createSocket({ type: family, recvBufferSize: 4 << 20 });
    this.socket.on('error', onError);
    this.socket.on('message', (msg, rinfo) => this.reply(msg, rinfo.address, rinfo.port));
    // exclusive: under node:cluster a worker's port-0 bind would otherwise be shared with the
    // other workers, and replies would land in the wrong process.
    this.socket.bind({ port: 0, exclusive: true });
    this.socket.unref();
  }

  send(out: Buffer, a: Attempt): void {
    this.socket.send(out, a.port, a.host, (err) => {
      if (err) a.exchange.lost(a);
    });
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      /* already closed */
    }
  }
}

/**
 * The batched native socket (native/udp-batch.c) as a pool socket: answers are read many per
 * system call, and a query leaves with one sendto() instead of node:dgram's send machinery (on
 * the cache-miss path that machinery was the largest single cost).
 */
class BatchedPoolSocket extends PoolSocket {
  private readonly socket: BatchSocket;
  private readonly rx: Buffer;
  private readonly meta: Int32Array;
  private readonly addresses: SourceAddresses;
  private closed = false;

  constructor(
    private readonly binding: BatchBinding,
    family: 'udp4' | 'udp6',
  ) {
    super();
    // A fresh random port from the kernel, on every address, as node:dgram's bind({ port: 0 }).
    // A pool socket is replaced every socket_max_queries queries: 8 slots and no send area keep
    // each one at ~130 KiB of shared memory instead of the listener's 1.3 MiB.
    this.socket = binding.open(family === 'udp6' ? 6 : 4, family === 'udp6' ? '::' : '0.0.0.0', 0, false, 4 << 20, (n) => this.onBatch(n), 8, false);
    binding.unref(this.socket.handle);
    this.rx = Buffer.from(this.socket.rx);
    this.meta = new Int32Array(this.socket.rxmeta);
    this.addresses = new SourceAddresses(binding, this.socket);
  }

  private onBatch(n: number): number {
    const s = this.socket;
    for (let i = 0; i < n; i++) {
      const m = i * s.meta;
      const len = this.meta[m]!;
      const off = i * s.rxSlot;
      // Only a datagram that names a pending query is copied out of the batch.
      if (len < 12 || this.closed || !this.pending.has(this.rx.readUInt16BE(off))) continue;
      const host = this.addresses.of(i);
      const msg = Buffer.allocUnsafe(len);
      copyBytes(this.rx, off, off + len, msg, 0);
      this.reply(msg, host, this.meta[m + 1]!);
    }
    return 0;
  }

  send(out: Buffer, a: Attempt): void {
    if (this.closed || this.binding.sendTo(this.socket.handle, out, out.length, a.host, a.port) !== 0) a.exchange.lost(a);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.binding.close(this.socket.handle);
  }
}

/** Why no usable answer came back. */
export type UpstreamFailure = 'timeout' | 'invalid' | 'backoff' | 'closed';

export type UpstreamResult =
  /** An answer; its rcode may still be SERVFAIL/REFUSED/FORMERR/NOTIMP when every upstream said so. */
  { ok: true; reply: Buffer; server: string; address: UpstreamAddress; transport: 'udp' | 'tcp' | 'dot' | 'doh' } | { ok: false; reason: UpstreamFailure; server?: string; problem?: ReplyProblem };

/**
 * What the pool knows of one upstream, as Unbound's infra cache: its smoothed round-trip time and
 * variance (RFC 6298), the retransmission timeout they give, and its back-off state.
 */
export interface UpstreamHealth {
  /** Smoothed RTT and its variance in ms; NaN before the first answer. */
  srtt: number;
  rttvar: number;
  /** Timeout of the next attempt to this upstream, ms. */
  rto: number;
  /** Queries in a row that this upstream failed (timed out or sent an invalid reply). */
  failures: number;
  /** Epoch ms until which it is skipped; 0: not backed off. */
  downUntil: number;
  /** The next back-off period, ms: doubles once per period whose probe fails. */
  backoffMs: number;
  /** A query is probing it (after a back-off period, or while every upstream is backed off). */
  probing: boolean;
  invalid: Map<ReplyProblem, number>;
  retries: number;
  /** Encrypted upstreams: connections that could not be made (or were lost with queries in flight), by reason. */
  connectFailures: Map<ConnectFailure, number>;
  /** Failed queries put down to this upstream: its answer (SERVFAIL, invalid …) was the result, or it was the last one asked (a share of UpstreamPool.errors). */
  errors: number;
  /** Round trips of the attempts whose answer was used, from sending to the reply: counts per ANSWER_RTT_BOUNDS_MS bucket (not cumulative), their sum and number. */
  answerRtt: { counts: Float64Array; sumMs: number; count: number };
}

/** Upper bounds (ms) of the answer round-trip histogram (sluice_upstream_duration_seconds). */
export const ANSWER_RTT_BOUNDS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/** Unbound's first timeout for an upstream it has no RTT for (UNKNOWN_SERVER_NICENESS). */
const UNKNOWN_RTO_MS = 376;
const BACKOFF_MAX_MS = 60_000;
/** Failed queries in a row before an upstream is backed off. */
const BACKOFF_AFTER = 2;

export class UpstreamPool {
  private readonly pools: Record<'udp4' | 'udp6', (PoolSocket | undefined)[]> = { udp4: [], udp6: [] };
  private ids = Buffer.alloc(0);
  private idPos = 0;
  closed = false;
  /** Exchanges that timed out, failed, or answered SERVFAIL/REFUSED/FORMERR/NOTIMP. */
  errors = 0;
  readonly health = new Map<string, UpstreamHealth>();
  /** Upstreams with downUntil > 0: while none is, every query may use every server as configured. */
  private backedOff = 0;
  /** The DoT/DoH upstreams asked so far, by label; their connections open on the first query. */
  private readonly streams = new Map<string, StreamUpstream>();
  /** When an event of each kind and upstream was last reported, and how many were not since. */
  private readonly reported = new Map<string, { at: number; suppressed: number }>();

  get hasBackedOff(): boolean {
    return this.backedOff > 0;
  }

  constructor(
    readonly opts: UpstreamOptions,
    private readonly onSocketError: (e: Error) => void = () => {},
  ) {}

  /**
   * Resolve through `servers`, within `totalTimeoutMs`: each attempt waits the upstream's learned
   * timeout, then the next attempt goes to the next server (the same one, with a fresh ID and port,
   * when it is the only one) while earlier attempts may still answer. A truncated UDP answer is
   * asked again over TCP. A reply that fails checkReply(), or answers SERVFAIL/REFUSED/FORMERR/
   * NOTIMP, moves on to the next server.
   */
  resolve(servers: readonly UpstreamAddress[], msg: Buffer, query: Query): Promise<UpstreamResult> {
    if (this.closed) return Promise.resolve({ ok: false, reason: 'closed' });
    const question = msg.subarray(12, query.questionEnd);
    return new Promise((resolve) => new Exchange(this, servers, question, query, resolve).start());
  }

  healthOf(label: string): UpstreamHealth {
    let h = this.health.get(label);
    if (!h) {
      const rto = Math.max(this.opts.minTimeoutMs, Math.min(UNKNOWN_RTO_MS, this.opts.timeoutMs));
      h = {
        srtt: NaN,
        rttvar: 0,
        rto,
        failures: 0,
        downUntil: 0,
        backoffMs: this.opts.backoffMs ?? 5000,
        probing: false,
        invalid: new Map(),
        retries: 0,
        connectFailures: new Map(),
        errors: 0,
        answerRtt: { counts: new Float64Array(ANSWER_RTT_BOUNDS_MS.length), sumMs: 0, count: 0 },
      };
      this.health.set(label, h);
    }
    return h;
  }

  /** An answer `rttMs` after its attempt was sent (RFC 6298 §2). */
  answered(h: UpstreamHealth, rttMs: number): void {
    if (Number.isNaN(h.srtt)) {
      h.srtt = rttMs;
      h.rttvar = rttMs / 2;
    } else {
      h.rttvar = 0.75 * h.rttvar + 0.25 * Math.abs(h.srtt - rttMs);
      h.srtt = 0.875 * h.srtt + 0.125 * rttMs;
    }
    h.rto = Math.min(this.opts.timeoutMs, Math.max(this.opts.minTimeoutMs, h.srtt + 4 * h.rttvar));
  }

  /** An attempt got no answer in its time: the next one waits twice as long (RFC 6298 §5.5). */
  timedOut(h: UpstreamHealth): void {
    h.rto = Math.min(this.opts.timeoutMs, h.rto * 2);
  }

  succeeded(h: UpstreamHealth): void {
    if (h.downUntil > 0) this.backedOff--;
    h.failures = 0;
    h.downUntil = 0;
    h.backoffMs = this.opts.backoffMs ?? 5000;
    h.probing = false;
  }

  /** A query this upstream failed. Back-off starts after BACKOFF_AFTER in a row and doubles only when a probe fails. */
  failed(h: UpstreamHealth, now: number): void {
    if (h.probing) {
      h.probing = false;
      h.downUntil = now + h.backoffMs;
      h.backoffMs = Math.min(h.backoffMs * 2, BACKOFF_MAX_MS);
      return;
    }
    if (h.downUntil > now) return;
    if (++h.failures >= BACKOFF_AFTER) {
      if (h.downUntil === 0) this.backedOff++;
      h.downUntil = now + h.backoffMs;
      h.backoffMs = Math.min(h.backoffMs * 2, BACKOFF_MAX_MS);
    }
  }

  /**
   * The servers a query may use, in configured order: those not backed off, plus one backed-off
   * server it probes (when its period is over, or at once when every server is backed off) if no
   * other query is probing it. Empty: every server is backed off and already being probed.
   */
  usable(servers: readonly UpstreamAddress[], now: number): UpstreamAddress[] {
    if (this.backedOff === 0) return servers as UpstreamAddress[];
    let up = 0;
    for (const s of servers) if ((this.health.get(formatServer(s))?.downUntil ?? 0) === 0) up++;
    if (up === servers.length) return servers as UpstreamAddress[];
    const out: UpstreamAddress[] = [];
    let probe = false;
    for (const s of servers) {
      const h = this.health.get(formatServer(s));
      if (!h || h.downUntil === 0) out.push(s);
      else if (!h.probing && (h.downUntil <= now || up === 0) && !probe) {
        h.probing = probe = true;
        out.push(s);
      }
    }
    return out;
  }

  invalid(h: UpstreamHealth, problem: ReplyProblem): void {
    h.invalid.set(problem, (h.invalid.get(problem) ?? 0) + 1);
  }

  /** A UDP socket of `family`; a retry leaves from another port when the pool has one (RFC 5452 §9.2). */
  socketFor(family: 'udp4' | 'udp6', avoid: Carrier | undefined): PoolSocket {
    // A retry leaves from another slot (another port) whenever there is one.
    return this.pick(family, avoid instanceof PoolSocket && this.opts.sockets > 1 ? this.pools[family].indexOf(avoid) : -1);
  }

  /** The stream of encrypted upstream `server`, made on its first query. */
  streamFor(server: UpstreamAddress): StreamUpstream {
    const label = formatServer(server);
    let s = this.streams.get(label);
    if (!s) {
      const encrypted = server.encrypted!;
      const health = this.healthOf(label);
      const opts = {
        connections: this.opts.tlsConnections ?? 2,
        idleMs: this.opts.tlsIdleTimeoutMs ?? 30_000,
        // A handshake gets as long as a whole query may take, at least a second.
        connectTimeoutMs: Math.max(1000, this.opts.totalTimeoutMs),
        onFailure: (reason: ConnectFailure, detail: string) => {
          health.connectFailures.set(reason, (health.connectFailures.get(reason) ?? 0) + 1);
          this.report(`c ${label}`, (suppressed) => ({ kind: 'connect-failed', upstream: label, reason, detail, suppressed }));
        },
      };
      const target = { ...server, encrypted };
      s = encrypted.protocol === 'dot' ? new DotUpstream(target, opts) : new DohUpstream(target, opts);
      this.streams.set(label, s);
    }
    return s;
  }

  /** A query for encrypted `server` goes to its plain fallback instead. */
  fellBack(server: UpstreamAddress, plain: UpstreamAddress): void {
    const label = formatServer(server);
    this.report(`f ${label}`, (suppressed) => ({ kind: 'fallback', upstream: label, to: formatServer(plain), suppressed }));
  }

  private report(key: string, event: (suppressed: number) => UpstreamEvent): void {
    const onEvent = this.opts.onEvent;
    if (!onEvent) return;
    const now = Date.now();
    const r = this.reported.get(key);
    if (r && now - r.at < EVENT_INTERVAL_MS) {
      r.suppressed++;
      return;
    }
    onEvent(event(r?.suppressed ?? 0));
    this.reported.set(key, { at: now, suppressed: 0 });
  }

  /** A random query ID not in flight on `socket`; -1 when 65k queries are in flight on it. */
  freeId(socket: Carrier): number {
    let id = this.nextId();
    for (let tries = 0; socket.pending.has(id) && tries < 16; tries++) id = this.nextId();
    return socket.pending.has(id) ? -1 : id;
  }

  nextId(): number {
    if (this.idPos + 2 > this.ids.length) this.refill();
    const id = this.ids.readUInt16BE(this.idPos);
    this.idPos += 2;
    return id;
  }

  private pick(family: 'udp4' | 'udp6', avoidSlot = -1): PoolSocket {
    const pool = this.pools[family];
    let i = (this.randomByte() * (avoidSlot >= 0 ? this.opts.sockets - 1 : this.opts.sockets)) >> 8;
    if (avoidSlot >= 0 && i >= avoidSlot) i++;
    let s = pool[i];
    if (!s || s.used >= this.opts.socketMaxQueries) {
      if (s) {
        s.retired = true;
        if (s.pending.size === 0) s.close();
      }
      s = this.opts.batch ? new BatchedPoolSocket(this.opts.batch, family) : new DgramPoolSocket(family, this.onSocketError);
      pool[i] = s;
    }
    s.used++;
    return s;
  }

  private randomByte(): number {
    if (this.idPos >= this.ids.length) this.refill();
    return this.ids[this.idPos++]!;
  }

  // One crypto call per 4 KiB of randomness rather than one per query.
  private refill(): void {
    this.ids = randomFillSync(Buffer.allocUnsafe(4096));
    this.idPos = 0;
  }

  close(): void {
    this.closed = true;
    for (const pool of Object.values(this.pools)) {
      // The pool is sparse: slots are filled on first use.
      for (const s of pool) {
        if (!s) continue;
        for (const p of [...s.pending.values()]) p.exchange.abort();
        s.close();
      }
      pool.length = 0;
    }
    for (const s of this.streams.values()) {
      for (const p of [...s.pending.values()]) (p as Attempt).exchange.abort();
      s.close();
    }
    this.streams.clear();
  }
}

/** One attempt of an exchange: what its socket or stream waits for (by ID), and what came of it. */
class Attempt implements InFlight {
  /** Still waiting for its answer. */
  open = true;
  /** Its server sent a valid reply (any rcode). */
  replied = false;

  constructor(
    readonly exchange: Exchange,
    readonly socket: Carrier,
    readonly id: number,
    readonly server: UpstreamAddress,
    readonly question: Buffer,
    readonly health: UpstreamHealth,
    readonly sentAt: number,
  ) {}

  /** The server's address, to match a datagram's source. */
  get host(): string {
    return this.server.host;
  }

  get port(): number {
    return this.server.port;
  }

  answer(msg: Buffer): void {
    this.exchange.reply(this, msg);
  }

  drop(): void {
    this.exchange.dropped(this);
  }
}

// The plain-DNS address an encrypted upstream falls back to (`fallback: plain`): its host, port 53.
const plainFallbacks = new WeakMap<UpstreamAddress, UpstreamAddress>();

function plainFallbackOf(s: UpstreamAddress, port: number): UpstreamAddress {
  let p = plainFallbacks.get(s);
  if (!p) {
    p = { host: s.host, port, ...(s.trustAd === undefined ? {} : { trustAd: s.trustAd }) };
    plainFallbacks.set(s, p);
  }
  return p;
}

/**
 * One forwarded query: its attempts, one timer (the next attempt or the deadline) and its result.
 * A class rather than closures: it runs for every forwarded query, and one object with fields
 * costs less than a closure per step.
 */
class Exchange {
  private readonly attempts: Attempt[] = [];
  /** The backed-off upstream this query probes, if any (at most one), and its place in `order`. */
  private probe: UpstreamHealth | undefined;
  private probeAt = -1;
  private readonly order: UpstreamAddress[];
  /** Servers that gave a definite answer (a bad rcode or an invalid reply): not asked again. */
  private done: UpstreamAddress[] | undefined;
  /** Encrypted servers whose connection was lost under an attempt of this query. */
  private lostOnce: UpstreamAddress[] | undefined;
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly deadline: number;
  private last: UpstreamResult = { ok: false, reason: 'timeout' };
  private settled = false;
  private tcpOpen = 0;

  constructor(
    private readonly pool: UpstreamPool,
    servers: readonly UpstreamAddress[],
    private readonly question: Buffer,
    private readonly query: Query,
    private readonly resolve: (r: UpstreamResult) => void,
  ) {
    const now = Date.now();
    this.deadline = now + pool.opts.totalTimeoutMs;
    this.order = pool.usable(servers, now);
    if (pool.hasBackedOff) {
      // The only backed-off server usable() lets in is the probe.
      this.order.forEach((s, i) => {
        const h = pool.health.get(formatServer(s));
        if (h && h.downUntil > 0) {
          this.probe = h;
          this.probeAt = i;
        }
      });
    }
  }

  start(): void {
    if (this.order.length === 0) return this.finish({ ok: false, reason: 'backoff' });
    // A probe goes out at once beside the first regular attempt, so the query does not wait on it.
    if (this.probe && this.order.length > 1) {
      this.send(this.order[this.probeAt]!, false);
      if (this.probeAt === 0) this.next = 1;
    }
    this.sendNext();
  }

  /** The next attempt: the next server in order not yet done, cycling; else wait for open ones. */
  private sendNext(): void {
    if (this.settled) return;
    const n = this.order.length;
    for (let k = 0; k < n; k++) {
      const server = this.order[(this.next + k) % n]!;
      if (this.done?.includes(server)) continue;
      this.next = (this.next + k + 1) % n;
      this.send(server, true);
      return;
    }
    if (!this.attempts.some((a) => a.open) && this.tcpOpen === 0) this.finish(this.last);
    else this.arm(this.deadline - Date.now());
  }

  private send(server: UpstreamAddress, armTimer: boolean): void {
    const pool = this.pool;
    const remaining = this.deadline - Date.now();
    if (remaining <= 0 || pool.closed) return this.finish(this.last);
    const label = formatServer(server);
    const health = pool.healthOf(label);
    const n = this.attempts.length;
    let socket: Carrier;
    if (server.encrypted) {
      const stream = pool.streamFor(server);
      if (!stream.accepting(Date.now())) return this.unreachable(server, stream, armTimer);
      socket = stream;
    } else socket = pool.socketFor(server.host.includes(':') ? 'udp6' : 'udp4', n > 0 ? this.attempts[n - 1]!.socket : undefined);
    const id = pool.freeId(socket);
    for (let i = 0; i < n; i++) if (this.attempts[i]!.server === server) health.retries++;
    if (id >= 0) {
      // `question` is a view into the query, which no one writes to again (a datagram has its own
      // buffer; TCP copies each message out of its stream), so it is kept without a copy.
      const a = new Attempt(this, socket, id, server, this.question, health, performance.now());
      this.attempts.push(a);
      socket.pending.set(id, a);
      socket.send(buildUpstreamQuery(id, this.question, this.query, server.encrypted?.protocol === 'dot'), a);
    }
    if (armTimer) this.arm(Math.min(health.rto, remaining));
  }

  /**
   * Encrypted `server` takes no query now (its reconnect back-off runs): its plain fallback when
   * configured, else the next server at once.
   */
  private unreachable(server: UpstreamAddress, stream: StreamUpstream, armTimer: boolean): void {
    if (server.encrypted!.fallbackPlain && stream.failing) {
      const plain = plainFallbackOf(server, this.pool.opts.plainFallbackPort ?? 53);
      this.pool.fellBack(server, plain);
      return this.send(plain, armTimer);
    }
    if (this.last.ok === false && this.last.server === undefined) this.last = { ok: false, reason: 'backoff', server: formatServer(server) };
    this.markDone(server);
    if (armTimer) this.sendNext();
  }

  /** The stream of attempt `a` was lost before its answer: no use waiting for its timeout. */
  dropped(a: Attempt): void {
    if (!a.open) return;
    a.open = false;
    a.socket.forget(a.id);
    if (this.settled) {
      if (a.health === this.probe) this.judgeProbe(a.health, false);
      return;
    }
    const stream = a.server.encrypted ? this.pool.streamFor(a.server) : undefined;
    if (a.server.encrypted?.fallbackPlain && stream?.failing) {
      const plain = plainFallbackOf(a.server, this.pool.opts.plainFallbackPort ?? 53);
      this.pool.fellBack(a.server, plain);
      return this.send(plain, true);
    }
    // A connection may close just as a query goes out on it (the server's idle timeout, RFC 7766
    // §6.2.3): the server is asked once more, on a new connection, before it counts as done.
    if (this.lostOnce?.includes(a.server)) this.markDone(a.server);
    else (this.lostOnce ??= []).push(a.server);
    // An earlier attempt lost while a later one is under way: that one keeps its time.
    if (a === this.attempts[this.attempts.length - 1] || !this.attempts.some((x) => x.open)) this.sendNext();
  }

  private arm(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, ms));
  }

  private onTimer(): void {
    this.timer = undefined;
    if (Date.now() >= this.deadline) return this.finish(this.last);
    const latest = this.attempts[this.attempts.length - 1];
    if (latest?.open) this.pool.timedOut(latest.health);
    this.sendNext();
  }

  /** An attempt's datagram could not be sent. */
  lost(a: Attempt): void {
    if (!a.open) return;
    a.open = false;
    a.socket.forget(a.id);
  }

  /** A datagram that answers attempt `a` (ID, source and question already checked). */
  reply(a: Attempt, msg: Buffer): void {
    a.open = false;
    // A round trip, even when the reply turns out invalid: the upstream is that far away.
    this.pool.answered(a.health, performance.now() - a.sentAt);
    if (this.settled) {
      // A probe's late answer still tells whether its upstream is back.
      if (a.health === this.probe) this.judgeProbe(a.health, checkReply(msg, this.query.questionEnd) === undefined);
      return;
    }
    if (a.server.encrypted) return this.judge(a, msg, a.server.encrypted.protocol);
    if (msg[2]! & 0x02) {
      // Truncated: the same server again over TCP, within what is left of the deadline.
      this.tcpOpen++;
      const out = buildUpstreamQuery(this.pool.nextId(), this.question, this.query);
      void tcpExchange(a.server, out, this.question, Math.min(this.pool.opts.timeoutMs, this.deadline - Date.now())).then((r) => {
        this.tcpOpen--;
        if (this.settled) return;
        if (r) this.judge(a, r, 'tcp');
        else {
          this.markDone(a.server);
          this.sendNext();
        }
      });
      return;
    }
    this.judge(a, msg, 'udp');
  }

  private judge(a: Attempt, reply: Buffer, transport: 'udp' | 'tcp' | 'dot' | 'doh'): void {
    const label = formatServer(a.server);
    const problem = checkReply(reply, this.query.questionEnd);
    if (problem) {
      this.pool.invalid(a.health, problem);
      this.last = { ok: false, reason: 'invalid', server: label, problem };
      this.markDone(a.server);
      return this.sendNext();
    }
    a.replied = true;
    const result: UpstreamResult = { ok: true, reply, server: label, address: a.server, transport };
    if (isUpstreamFailure(reply[3]! & 0xf)) {
      // An answer, so the upstream is up; another upstream may still know better.
      this.pool.succeeded(a.health);
      this.last = result;
      this.markDone(a.server);
      return this.sendNext();
    }
    this.pool.succeeded(a.health);
    // The answer's own round trip, not the query's: earlier attempts that timed out are not in it.
    countAnswerRtt(a.health.answerRtt, performance.now() - a.sentAt);
    this.finish(result);
  }

  private markDone(server: UpstreamAddress): void {
    (this.done ??= []).push(server);
  }

  private judgeProbe(h: UpstreamHealth, good: boolean): void {
    if (!h.probing) return;
    if (good) this.pool.succeeded(h);
    else this.pool.failed(h, Date.now());
  }

  abort(): void {
    this.finish({ ok: false, reason: 'closed' });
  }

  private finish(result: UpstreamResult): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    const attempts = this.attempts;
    if (attempts.length === 1 && !this.probe) {
      // The common case, kept short: one attempt, answered or not.
      const a = attempts[0]!;
      if (a.open) {
        a.open = false;
        a.socket.forget(a.id);
      }
      if (!a.replied) this.pool.failed(a.health, Date.now());
    } else this.settleAttempts();
    if (!result.ok || result.reply[3]! & 0xf) this.countError(result);
    this.resolve(result);
  }

  /** A failed query, on the upstream whose result it got, else the last one asked (none: every upstream was backed off). */
  private countError(result: UpstreamResult): void {
    this.pool.errors++;
    const last = this.attempts[this.attempts.length - 1];
    if (result.server !== undefined) this.pool.healthOf(result.server).errors++;
    else if (last) last.health.errors++;
  }

  /** After several attempts: stop waiting for them, and note which upstreams failed this query. */
  private settleAttempts(): void {
    const now = Date.now();
    for (const a of this.attempts) {
      const probeStillOpen = a.open && a.health === this.probe && !this.replied(a.server) && !this.pool.closed;
      if (a.open && !probeStillOpen) {
        a.open = false;
        a.socket.forget(a.id);
      }
    }
    // Upstreams asked that never answered failed this query (once each). An open probe gets until
    // its own timeout to answer.
    for (let i = 0; i < this.attempts.length; i++) {
      const a = this.attempts[i]!;
      if (this.attempts.findIndex((b) => b.server === a.server) !== i) continue;
      if (this.replied(a.server)) continue;
      if (a.health === this.probe && a.open) this.probeTimeout(a);
      else this.pool.failed(a.health, now);
    }
    const probe = this.probe;
    if (probe?.probing && !this.attempts.some((a) => a.health === probe)) probe.probing = false;
  }

  /** Whether `server` sent a valid reply to any attempt. */
  private replied(server: UpstreamAddress): boolean {
    for (const a of this.attempts) if (a.server === server && a.replied) return true;
    return false;
  }

  private probeTimeout(a: Attempt): void {
    const t = setTimeout(
      () => {
        if (!a.open) return;
        a.open = false;
        a.socket.forget(a.id);
        this.judgeProbe(a.health, false);
      },
      Math.max(0, a.health.rto - (performance.now() - a.sentAt)),
    );
    t.unref();
  }
}

function countAnswerRtt(h: UpstreamHealth['answerRtt'], ms: number): void {
  const b = ANSWER_RTT_BOUNDS_MS;
  for (let i = 0; i < b.length; i++) {
    if (ms <= b[i]!) {
      h.counts[i]!++;
      break;
    }
  }
  h.sumMs += ms;
  h.count++;
}

/**
 * Header (fresh ID, RD, AD, CD from the client), the client's question, OPT advertising 1232 with
 * its DO bit. `framed`: after the 2-byte length of DNS over TCP/TLS, in the same buffer.
 */
export function buildUpstreamQuery(id: number, question: Buffer, query: Query, framed = false): Buffer {
  const o = framed ? 2 : 0;
  const len = 12 + question.length + 11;
  const whole = Buffer.allocUnsafe(o + len);
  if (framed) whole.writeUInt16BE(len, 0);
  const b = framed ? whole.subarray(2) : whole;
  b.writeUInt16BE(id, 0);
  b[2] = 0x01; // RD
  // AD: "tell me whether you validated" (RFC 6840 §5.7), so the cached answer can carry AD for any
  // later client that asks; CD from the client (and in the cache key).
  b[3] = 0x20 | (query.flags & 0x10);
  b.writeUInt16BE(1, 4);
  b.writeUInt32BE(0, 6);
  b.writeUInt16BE(1, 10);
  question.copy(b, 12);
  let p = 12 + question.length;
  b[p++] = 0;
  b.writeUInt16BE(TYPE.OPT, p);
  b.writeUInt16BE(EDNS_UDP_SIZE, p + 2);
  b[p + 4] = 0;
  b[p + 5] = 0;
  b[p + 6] = query.edns?.do ? 0x80 : 0;
  b[p + 7] = 0;
  b.writeUInt16BE(0, p + 8);
  return whole;
}

function tcpExchange(server: UpstreamAddress, query: Buffer, question: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (r: Buffer | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const sock = net.connect({ host: server.host, port: server.port });
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.on('connect', () => {
      const len = Buffer.allocUnsafe(2);
      len.writeUInt16BE(query.length, 0);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (buf.length < 2) return;
      const n = buf.readUInt16BE(0);
      if (buf.length < 2 + n) return;
      const reply = buf.subarray(2, 2 + n);
      const ok = n >= 12 && reply.readUInt16BE(0) === query.readUInt16BE(0) && sameQuestion(reply, question);
      finish(ok ? Buffer.from(reply) : undefined);
    });
    sock.on('error', () => finish(undefined));
    sock.on('close', () => finish(undefined));
  });
}

function normaliseHost(h: string): string {
  return h.startsWith('::ffff:') ? h.slice(7) : h;
}

// Labels are asked for on every forwarded query; the address objects live as long as their config.
const labels = new WeakMap<UpstreamAddress, string>();

export function formatServer(s: UpstreamAddress): string {
  let label = labels.get(s);
  if (label === undefined) {
    // An encrypted upstream by its URL (which names the bootstrap address when there are several).
    label = s.encrypted ? s.encrypted.url : s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
    labels.set(s, label);
  }
  return label;
}
