// Forwarding to upstream servers. A pool of UDP sockets carries many queries at once; each query
// gets a fresh random ID on a randomly chosen socket, and each socket is replaced by one on a new
// random port after a number of queries, so the (ID, port) pair stays hard to guess (RFC 5452)
// without creating a socket per query. A reply is accepted only from the server asked, with the
// ID and question that were sent.
import dgram from 'node:dgram';
import net from 'node:net';
import { randomFillSync } from 'node:crypto';
import type { UpstreamAddress } from '../config/schema.js';
import { EDNS_UDP_SIZE, RCODE, TYPE } from '../dns/codes.js';
import { copyBytes, type Query } from '../dns/wire.js';
import { SourceAddresses, type BatchBinding, type BatchSocket } from '../native/udp-batch.js';

export interface UpstreamOptions {
  /** A failing upstream is skipped for this long (doubling up to 60 s), then probed again. */
  backoffMs?: number;
  sockets: number;
  socketMaxQueries: number;
  timeoutMs: number;
  totalTimeoutMs: number;
  /** The batched native socket for upstream queries (see src/native/udp-batch.ts); node:dgram without it. */
  batch?: BatchBinding | undefined;
}

export type UpstreamResult =
  | { ok: true; reply: Buffer; server: string; transport: 'udp' | 'tcp' }
  | { ok: false; reason: string; server?: string };

interface Pending {
  resolve: (reply: Buffer | undefined) => void;
  host: string;
  port: number;
  question: Buffer;
  timer: NodeJS.Timeout;
}

/** One UDP port of the pool. Two kinds, one behaviour: node:dgram, and the batched native socket. */
abstract class PoolSocket {
  readonly pending = new Map<number, Pending>();
  used = 0;
  retired = false;

  /** Send `out` to host:port; `failed` runs (at once or later) when it cannot go. */
  abstract send(out: Buffer, host: string, port: number, failed: () => void): void;
  abstract close(): void;

  /** A datagram from host:port: it settles the query it answers, if it is a genuine answer to one. */
  protected reply(msg: Buffer, host: string, port: number): void {
    if (msg.length < 12) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    if (!p) return;
    if (port !== p.port || normaliseHost(host) !== normaliseHost(p.host)) return;
    if (!sameQuestion(msg, p.question)) return; // a spoofed or stray reply: keep waiting
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(msg);
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

  send(out: Buffer, host: string, port: number, failed: () => void): void {
    this.socket.send(out, port, host, (err) => {
      if (err) failed();
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

  send(out: Buffer, host: string, port: number, failed: () => void): void {
    if (this.closed || this.binding.sendTo(this.socket.handle, out, out.length, host, port) !== 0) failed();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.binding.close(this.socket.handle);
  }
}

export class UpstreamPool {
  private readonly pools: Record<'udp4' | 'udp6', (PoolSocket | undefined)[]> = { udp4: [], udp6: [] };
  private ids = Buffer.alloc(0);
  private idPos = 0;
  private closed = false;
  errors = 0;
  /** Per upstream: consecutive failures and until when it is skipped. */
  readonly health = new Map<string, { failures: number; downUntil: number; backoffMs: number }>();

  constructor(
    private readonly opts: UpstreamOptions,
    private readonly onSocketError: (e: Error) => void = () => {},
  ) {}

  /**
   * Ask `servers` in order, each for at most `timeoutMs`, all within `totalTimeoutMs`. A truncated
   * UDP answer is asked again over TCP. SERVFAIL/REFUSED from one server moves on to the next.
   */
  resolve(servers: readonly UpstreamAddress[], msg: Buffer, query: Query): Promise<UpstreamResult> {
    const deadline = Date.now() + this.opts.totalTimeoutMs;
    const question = msg.subarray(12, query.questionEnd);
    return this.attempt(this.order(servers), 0, deadline, question, query, { ok: false, reason: 'no upstream' });
  }

  // One server after the other, as a promise chain rather than an async loop: this runs for every
  // forwarded query, and an async function keeps its whole frame on the heap while it waits.
  private attempt(order: readonly UpstreamAddress[], i: number, deadline: number, question: Buffer, query: Query, last: UpstreamResult): Promise<UpstreamResult> {
    const remaining = deadline - Date.now();
    if (i >= order.length || remaining <= 0) return Promise.resolve(last);
    const server = order[i]!;
    const next = (result: UpstreamResult) => this.attempt(order, i + 1, deadline, question, query, result);
    return this.udp(server, question, query, Math.min(this.opts.timeoutMs, remaining)).then((reply) => {
      if (reply && reply[2]! & 0x02) {
        // Truncated: the same server again over TCP.
        const left = deadline - Date.now();
        if (left <= 0) return this.settle(server, undefined, 'tcp', next);
        return tcpExchange(server, buildUpstreamQuery(this.nextId(), question, query), question, Math.min(this.opts.timeoutMs, left)).then((r) => this.settle(server, r, 'tcp', next));
      }
      return this.settle(server, reply, 'udp', next);
    });
  }

  /** A server's reply (or none): the result, or the next server's when it failed or answered SERVFAIL/REFUSED. */
  private settle(server: UpstreamAddress, reply: Buffer | undefined, transport: 'udp' | 'tcp', next: (last: UpstreamResult) => Promise<UpstreamResult>): UpstreamResult | Promise<UpstreamResult> {
    const label = formatServer(server);
    if (!reply) {
      this.errors++;
      this.failed(label);
      return next({ ok: false, reason: 'timeout', server: label });
    }
    const rcode = reply[3]! & 0xf;
    const result: UpstreamResult = { ok: true, reply, server: label, transport };
    if (rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED) {
      this.errors++;
      this.failed(label);
      return next(result);
    }
    this.health.delete(label);
    return result;
  }

  /** Healthy upstreams in configured order, then those in back-off (tried only when the others fail: the probe). */
  private order(servers: readonly UpstreamAddress[]): readonly UpstreamAddress[] {
    if (this.health.size === 0) return servers;
    const now = Date.now();
    const up: UpstreamAddress[] = [];
    const down: UpstreamAddress[] = [];
    for (const s of servers) ((this.health.get(formatServer(s))?.downUntil ?? 0) > now ? down : up).push(s);
    return down.length === 0 ? servers : [...up, ...down];
  }

  private failed(label: string): void {
    const base = this.opts.backoffMs ?? 5000;
    const h = this.health.get(label) ?? { failures: 0, downUntil: 0, backoffMs: base };
    h.failures++;
    if (h.failures >= 2) {
      h.downUntil = Date.now() + h.backoffMs;
      h.backoffMs = Math.min(h.backoffMs * 2, 60_000);
    }
    this.health.set(label, h);
  }

  private udp(server: UpstreamAddress, question: Buffer, query: Query, timeoutMs: number): Promise<Buffer | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    // Upstream hosts are IP literals (the config schema checks): a colon means IPv6.
    const family = server.host.includes(':') ? 'udp6' : 'udp4';
    const sock = this.pick(family);
    let id = this.nextId();
    for (let tries = 0; sock.pending.has(id) && tries < 16; tries++) id = this.nextId();
    if (sock.pending.has(id)) return Promise.resolve(undefined); // 65k queries in flight on one socket
    const out = buildUpstreamQuery(id, question, query);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        sock.pending.delete(id);
        resolve(undefined);
        if (sock.retired && sock.pending.size === 0) sock.close();
      }, timeoutMs);
      // `question` is a view into the query, which no one writes to again (a datagram has its own
      // buffer; TCP copies each message out of its stream), so it is kept without a copy.
      sock.pending.set(id, { resolve, host: server.host, port: server.port, question, timer });
      sock.send(out, server.host, server.port, () => {
        clearTimeout(timer);
        sock.pending.delete(id);
        resolve(undefined);
      });
    });
  }

  private pick(family: 'udp4' | 'udp6'): PoolSocket {
    const pool = this.pools[family];
    const i = (this.randomByte() * this.opts.sockets) >> 8;
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

  private nextId(): number {
    if (this.idPos + 2 > this.ids.length) this.refill();
    const id = this.ids.readUInt16BE(this.idPos);
    this.idPos += 2;
    return id;
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
        for (const p of s.pending.values()) {
          clearTimeout(p.timer);
          p.resolve(undefined);
        }
        s.close();
      }
      pool.length = 0;
    }
  }
}

/** Header (fresh ID, RD, CD from the client), the client's question, OPT advertising 1232 with its DO bit. */
export function buildUpstreamQuery(id: number, question: Buffer, query: Query): Buffer {
  const b = Buffer.allocUnsafe(12 + question.length + 11);
  b.writeUInt16BE(id, 0);
  b[2] = 0x01; // RD
  b[3] = query.flags & 0x10; // CD
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
  return b;
}

/** The reply's question equals ours (name compared case-insensitively, RFC 5452 §9.1). */
function sameQuestion(reply: Buffer, question: Buffer): boolean {
  if (reply.readUInt16BE(4) !== 1 || reply.length < 12 + question.length) return false;
  for (let i = 0; i < question.length; i++) {
    let a = reply[12 + i]!;
    let b = question[i]!;
    if (a >= 0x41 && a <= 0x5a) a |= 0x20;
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    if (a !== b) return false;
  }
  return true;
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
    label = s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
    labels.set(s, label);
  }
  return label;
}
