// UDP listeners: bytes in, bytes out. They know nothing about policy; they hand every datagram to
// the resolver and send what comes back. Two of them, with one behaviour:
//   - BatchedUdpListener: the native batched socket (recvmmsg/sendmmsg, native/udp-batch.c), the
//     default on Linux when it is built: one system call and one JS call per batch of datagrams;
//   - DgramUdpListener: node:dgram, one datagram at a time; everywhere else, and `udp.io: dgram`.
import cluster from 'node:cluster';
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { copyBytes } from '../bytes/copy-bytes.js';
import type { ClientInfo, RequestContext } from '../pipeline/context.js';
import { InFlight } from './in-flight.js';
import { loadBatchBinding, SourceAddresses, type BatchBinding, type BatchSocket } from '../native/udp-batch.js';

export interface MessageHandler {
  handle(msg: Buffer, client: ClientInfo): RequestContext | Promise<RequestContext>;
}

export interface ListenerHooks {
  /** Called after each answer is sent (query log, metrics). Must not throw. */
  done(ctx: RequestContext): void;
  error(err: Error, where: string): void;
}

export interface UdpListener {
  readonly io: UdpIo;
  start(): Promise<{ address: string; port: number }>;
  /** Stop receiving; resolve when the answers in flight have been sent (or `timeoutMs` passed). */
  stop(timeoutMs: number): Promise<void>;
}

export type UdpIo = 'batched' | 'dgram';
export type UdpIoSetting = 'auto' | UdpIo;

export interface UdpListenerOptions {
  address: string;
  port: number;
  listenerNetwork: string | undefined;
  handler: () => MessageHandler;
  hooks: ListenerHooks;
}

/**
 * The listener `setting` asks for. `auto` takes the batched socket when it is built, except in a
 * cluster worker asked for port 0: workers share a batched port through SO_REUSEPORT, which needs
 * a port fixed in advance, while node:dgram lets the primary hand every worker the one socket.
 * `batched` when the addon is missing throws, naming why.
 */
export function createUdpListener(setting: UdpIoSetting, opts: UdpListenerOptions): { listener: UdpListener; note?: string } {
  if (setting === 'dgram') return { listener: new DgramUdpListener(opts) };
  const load = loadBatchBinding();
  const worker = cluster.isWorker;
  if (!load.binding) {
    if (setting === 'batched') throw new Error(`udp.io is batched, but the batched UDP socket is not available: ${load.reason}`);
    return { listener: new DgramUdpListener(opts), note: load.reason };
  }
  if (worker && opts.port === 0) {
    if (setting === 'batched') throw new Error('udp.io: batched with several workers needs a fixed port (SO_REUSEPORT), not port 0');
    return { listener: new DgramUdpListener(opts), note: 'workers on port 0 share one node:dgram socket' };
  }
  return { listener: new BatchedUdpListener(load.binding, opts, worker) };
}

export class DgramUdpListener implements UdpListener {
  readonly io = 'dgram';
  private socket: dgram.Socket | undefined;
  private readonly inFlight = new InFlight();

  constructor(private readonly opts: UdpListenerOptions) {}

  start(): Promise<{ address: string; port: number }> {
    const { address, port } = this.opts;
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, ipv6Only: isIPv6(address) ? false : undefined });
      this.socket = s;
      s.once('error', reject);
      s.bind(port, address, () => {
        s.off('error', reject);
        s.on('error', (e) => this.opts.hooks.error(e, 'udp socket'));
        const a = s.address();
        const listener = `${a.address}:${a.port}`;
        s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo, listener));
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo, listener: string): void {
    const client: ClientInfo = { address: rinfo.address, port: rinfo.port, transport: 'udp', listener, listenerNetwork: this.opts.listenerNetwork };
    let r: RequestContext | Promise<RequestContext>;
    try {
      r = this.opts.handler().handle(msg, client);
    } catch (err) {
      this.opts.hooks.error(err as Error, 'udp handler');
      return;
    }
    // Most answers (blocked, cached, refused) are synchronous: sent at once, no closures made.
    if (!(r instanceof Promise)) {
      this.send(r, rinfo);
      return;
    }
    this.inFlight.track(
      r,
      (ctx) => this.send(ctx, rinfo),
      (err) => this.opts.hooks.error(err, 'udp handler'),
    );
  }

  private send(ctx: RequestContext, rinfo: dgram.RemoteInfo): void {
    if (ctx.response && ctx.response.length > 0 && this.socket) {
      this.socket.send(ctx.response, rinfo.port, rinfo.address);
    }
    this.opts.hooks.done(ctx);
  }

  async stop(timeoutMs: number): Promise<void> {
    const s = this.socket;
    if (!s) return;
    s.removeAllListeners('message');
    await this.inFlight.drain(timeoutMs);
    this.socket = undefined;
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

export class BatchedUdpListener implements UdpListener {
  readonly io = 'batched';
  private socket: BatchSocket | undefined;
  private receiving = false;
  private listener = '';
  private readonly inFlight = new InFlight();
  // Views of the memory shared with the addon, made once.
  private rx!: Buffer;
  private meta!: Int32Array;
  private addresses!: SourceAddresses;
  private tx!: Buffer;
  private txMeta!: Int32Array;

  constructor(
    private readonly binding: BatchBinding,
    private readonly opts: UdpListenerOptions,
    private readonly reusePort: boolean,
  ) {}

  start(): Promise<{ address: string; port: number }> {
    const { address, port } = this.opts;
    try {
      const s = this.binding.open(isIPv6(address) ? 6 : 4, address, port, this.reusePort, 4 << 20, (n) => this.onBatch(n));
      this.socket = s;
      this.rx = Buffer.from(s.rx);
      this.meta = new Int32Array(s.rxmeta);
      this.addresses = new SourceAddresses(this.binding, s);
      this.tx = Buffer.from(s.tx!);
      this.txMeta = new Int32Array(s.txmeta!);
      this.listener = `${address}:${s.port}`;
      this.receiving = true;
      return Promise.resolve({ address, port: s.port });
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** [answers the kernel would not take, datagrams too long for a slot (dropped)] */
  stats(): [number, number] {
    return this.socket ? this.binding.stats(this.socket.handle) : [0, 0];
  }

  /** One batch: handle `n` datagrams, write the synchronous answers into tx slots, return how many. */
  private onBatch(n: number): number {
    const s = this.socket;
    if (!s || !this.receiving) return 0;
    let filled = 0;
    try {
      const handler = this.opts.handler();
      const { meta, rx, tx, txMeta } = this;
      const stride = s.meta;
      for (let i = 0; i < n; i++) {
        const m = i * stride;
        const len = meta[m]!;
        if (len < 0) continue; // longer than a slot: no DNS query is, dropped and counted
        const port = meta[m + 1]!;
        const address = this.addresses.of(i);
        // The message outlives the batch when it is forwarded: it gets its own bytes.
        const msg = Buffer.allocUnsafe(len);
        const off = i * s.rxSlot;
        copyBytes(rx, off, off + len, msg, 0);
        const client: ClientInfo = { address, port, transport: 'udp', listener: this.listener, listenerNetwork: this.opts.listenerNetwork };
        let r: RequestContext | Promise<RequestContext>;
        try {
          r = handler.handle(msg, client);
        } catch (err) {
          this.opts.hooks.error(err as Error, 'udp handler');
          continue;
        }
        if (r instanceof Promise) {
          this.inFlight.track(
            r,
            (ctx) => this.sendNow(ctx, address, port),
            (err) => this.opts.hooks.error(err, 'udp handler'),
          );
          continue;
        }
        const resp = r.response;
        if (resp && resp.length > 0) {
          if (resp.length <= s.txSlot) {
            resp.copy(tx, filled * s.txSlot);
            txMeta[filled * 2] = resp.length;
            txMeta[filled * 2 + 1] = i;
            filled++;
          } else this.binding.sendTo(s.handle, resp, resp.length, address, port);
        }
        this.opts.hooks.done(r);
      }
    } catch (err) {
      this.opts.hooks.error(err as Error, 'udp batch');
    }
    return filled;
  }

  private sendNow(ctx: RequestContext, address: string, port: number): void {
    const s = this.socket;
    if (ctx.response && ctx.response.length > 0 && s) this.binding.sendTo(s.handle, ctx.response, ctx.response.length, address, port);
    this.opts.hooks.done(ctx);
  }

  async stop(timeoutMs: number): Promise<void> {
    const s = this.socket;
    if (!s) return;
    // Datagrams that still arrive are read and dropped until the socket closes.
    this.receiving = false;
    await this.inFlight.drain(timeoutMs);
    this.socket = undefined;
    this.binding.close(s.handle);
  }
}
