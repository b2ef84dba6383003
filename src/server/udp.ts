// UDP listener: bytes in, bytes out. Knows nothing about policy; hands every datagram to the
// resolver and sends what comes back.
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { ClientInfo, RequestContext } from '../pipeline/context.js';
import { InFlight } from './in-flight.js';

export interface MessageHandler {
  handle(msg: Buffer, client: ClientInfo): RequestContext | Promise<RequestContext>;
}

export interface ListenerHooks {
  /** Called after each answer is sent (query log, metrics). Must not throw. */
  done(ctx: RequestContext): void;
  error(err: Error, where: string): void;
}

export class UdpListener {
  private socket: dgram.Socket | undefined;
  private readonly inFlight = new InFlight();

  constructor(
    private readonly address: string,
    private readonly port: number,
    private readonly listenerNetwork: string | undefined,
    private readonly handler: () => MessageHandler,
    private readonly hooks: ListenerHooks,
  ) {}

  start(): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket({ type: isIPv6(this.address) ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, ipv6Only: isIPv6(this.address) ? false : undefined });
      this.socket = s;
      s.once('error', reject);
      s.bind(this.port, this.address, () => {
        s.off('error', reject);
        s.on('error', (e) => this.hooks.error(e, 'udp socket'));
        const a = s.address();
        const listener = `${a.address}:${a.port}`;
        s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo, listener));
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo, listener: string): void {
    const client: ClientInfo = { address: rinfo.address, port: rinfo.port, transport: 'udp', listener, listenerNetwork: this.listenerNetwork };
    let r: RequestContext | Promise<RequestContext>;
    try {
      r = this.handler().handle(msg, client);
    } catch (err) {
      this.hooks.error(err as Error, 'udp handler');
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
      (err) => this.hooks.error(err, 'udp handler'),
    );
  }

  private send(ctx: RequestContext, rinfo: dgram.RemoteInfo): void {
    if (ctx.response && ctx.response.length > 0 && this.socket) {
      this.socket.send(ctx.response, rinfo.port, rinfo.address);
    }
    this.hooks.done(ctx);
  }

  /** Stop receiving; resolve when the answers in flight have been sent (or `timeoutMs` passed). */
  async stop(timeoutMs: number): Promise<void> {
    const s = this.socket;
    if (!s) return;
    s.removeAllListeners('message');
    await this.inFlight.drain(timeoutMs);
    this.socket = undefined;
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
