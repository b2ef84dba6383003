// TCP listener (RFC 7766): length-prefixed messages, pipelined queries on one connection answered
// as each is ready (possibly out of order), an idle timeout, and a cap on connections.
import net from 'node:net';
import type { ClientInfo, RequestContext } from '../pipeline/context.js';
import type { ListenerHooks, MessageHandler } from './udp.js';

export interface TcpLimits {
  idleTimeoutMs: number;
  maxConnections: number;
}

export class TcpListener {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private inFlight = 0;
  private drainWaiters: (() => void)[] = [];

  constructor(
    private readonly address: string,
    private readonly port: number,
    private readonly listenerNetwork: string | undefined,
    private readonly handler: () => MessageHandler,
    private readonly hooks: ListenerHooks,
    private readonly limits: () => TcpLimits,
  ) {}

  start(): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((sock) => this.onConnection(sock));
      this.server = server;
      server.once('error', reject);
      server.listen({ host: this.address, port: this.port, ipv6Only: false }, () => {
        server.off('error', reject);
        server.on('error', (e) => this.hooks.error(e, 'tcp server'));
        const a = server.address() as net.AddressInfo;
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  private onConnection(sock: net.Socket): void {
    const limits = this.limits();
    if (this.sockets.size >= limits.maxConnections) {
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.setNoDelay(true);
    sock.setTimeout(limits.idleTimeoutMs, () => sock.destroy());
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    const a = sock.address() as net.AddressInfo;
    const client: ClientInfo = {
      address: sock.remoteAddress ?? '',
      port: sock.remotePort ?? 0,
      transport: 'tcp',
      listener: `${a.address}:${a.port}`,
      listenerNetwork: this.listenerNetwork,
    };
    let pending: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = Buffer.from(pending.subarray(2, 2 + len));
        pending = pending.subarray(2 + len);
        this.onMessage(msg, client, sock);
      }
    });
  }

  private onMessage(msg: Buffer, client: ClientInfo, sock: net.Socket): void {
    let r: RequestContext | Promise<RequestContext>;
    try {
      r = this.handler().handle(msg, client);
    } catch (err) {
      this.hooks.error(err as Error, 'tcp handler');
      return;
    }
    if (r instanceof Promise) {
      this.inFlight++;
      r.then(
        (ctx) => this.send(ctx, sock),
        (err: Error) => this.hooks.error(err, 'tcp handler'),
      ).finally(() => {
        if (--this.inFlight === 0) for (const w of this.drainWaiters.splice(0)) w();
      });
    } else {
      this.send(r, sock);
    }
  }

  private send(ctx: RequestContext, sock: net.Socket): void {
    const res = ctx.response;
    if (res && res.length > 0 && !sock.destroyed) {
      const len = Buffer.allocUnsafe(2);
      len.writeUInt16BE(res.length, 0);
      sock.write(Buffer.concat([len, res]));
    } else if (!res && !sock.destroyed) {
      // A message we will not answer (garbage): the stream cannot be trusted any more.
      sock.destroy();
    }
    this.hooks.done(ctx);
  }

  async stop(timeoutMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.close();
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.drainWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    for (const s of this.sockets) s.end();
    for (const s of this.sockets) s.destroy();
  }
}
