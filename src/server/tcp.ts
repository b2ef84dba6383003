// TCP listener (RFC 7766): length-prefixed messages, pipelined queries on one connection answered
// as each is ready (possibly out of order), an idle timeout, and a cap on connections. DNS over TLS
// (RFC 7858) is the same stream inside TLS: src/server/dot-listener.ts gives it a TLS server.
import net from 'node:net';
import type { ClientInfo, RequestContext } from '../pipeline/context.js';
import type { ListenerHooks, MessageHandler } from './udp.js';
import { InFlight } from './in-flight.js';

export interface TcpLimits {
  idleTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerClient: number;
}

// A client that pipelines faster than it reads its answers is paused, not buffered without bound.
const MAX_PENDING_WRITE = 256 * 1024;
const MAX_IN_FLIGHT_PER_CONNECTION = 128;

/**
 * What carries the stream: plain TCP, or a TLS server that calls `onSecure` with each socket after
 * its handshake. Connections are admitted (limits) as TCP connections, before any TLS work.
 */
export interface StreamServer {
  transport: 'tcp' | 'dot';
  create(onSecure: (sock: net.Socket) => void): net.Server;
}

const PLAIN_TCP: StreamServer = { transport: 'tcp', create: () => net.createServer() };

export class TcpListener {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly perClient = new Map<string, number>();
  refused = 0;
  private readonly inFlight = new InFlight();
  private readonly inFlightOn = new WeakMap<net.Socket, number>();

  constructor(
    private readonly address: string,
    private readonly port: number,
    private readonly listenerNetwork: string | undefined,
    private readonly handler: () => MessageHandler,
    private readonly hooks: ListenerHooks,
    private readonly limits: () => TcpLimits,
    private readonly stream: StreamServer = PLAIN_TCP,
  ) {}

  start(): Promise<{ address: string; port: number }> {
    return new Promise((resolve, reject) => {
      const plain = this.stream.transport === 'tcp';
      const server = this.stream.create((sock) => this.onConnection(sock));
      server.on('connection', (sock: net.Socket) => {
        if (this.admit(sock) && plain) this.onConnection(sock);
      });
      this.server = server;
      server.once('error', reject);
      server.listen({ host: this.address, port: this.port, ipv6Only: false }, () => {
        server.off('error', reject);
        server.on('error', (e) => this.hooks.error(e, `${this.stream.transport} server`));
        const a = server.address() as net.AddressInfo;
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  /** A new TCP connection within the limits is counted until it closes; beyond them it is closed at once. */
  private admit(sock: net.Socket): boolean {
    const limits = this.limits();
    const remote = sock.remoteAddress ?? '';
    const mine = this.perClient.get(remote) ?? 0;
    if (this.sockets.size >= limits.maxConnections || mine >= limits.maxConnectionsPerClient) {
      this.refused++;
      sock.destroy();
      return false;
    }
    this.sockets.add(sock);
    this.perClient.set(remote, mine + 1);
    sock.setNoDelay(true);
    sock.on('close', () => {
      this.sockets.delete(sock);
      const n = (this.perClient.get(remote) ?? 1) - 1;
      if (n <= 0) this.perClient.delete(remote);
      else this.perClient.set(remote, n);
    });
    return true;
  }

  /** A connection ready for DNS messages (for DoT: after the TLS handshake). */
  private onConnection(sock: net.Socket): void {
    const limits = this.limits();
    // RFC 7766 §6.2.3: the idle timer runs while no query is in progress; a half-sent length prefix
    // followed by silence is idle too, so a stalled client cannot hold a connection open.
    sock.setTimeout(limits.idleTimeoutMs, () => sock.destroy());
    sock.on('drain', () => {
      if (sock.isPaused() && (this.inFlightOn.get(sock) ?? 0) < MAX_IN_FLIGHT_PER_CONNECTION) sock.resume();
    });
    sock.on('error', () => sock.destroy());
    const a = sock.address() as net.AddressInfo;
    const client: ClientInfo = {
      address: sock.remoteAddress ?? '',
      port: sock.remotePort ?? 0,
      transport: this.stream.transport,
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
      if (pending.length > 65537) sock.destroy(); // cannot happen with valid framing
    });
  }

  private onMessage(msg: Buffer, client: ClientInfo, sock: net.Socket): void {
    let r: RequestContext | Promise<RequestContext>;
    try {
      r = this.handler().handle(msg, client);
    } catch (err) {
      this.hooks.error(err as Error, `${this.stream.transport} handler`);
      return;
    }
    // Most answers (blocked, cached, refused) are synchronous: sent at once, no closures made.
    if (!(r instanceof Promise)) {
      this.send(r, sock);
      return;
    }
    const n = (this.inFlightOn.get(sock) ?? 0) + 1;
    this.inFlightOn.set(sock, n);
    if (n >= MAX_IN_FLIGHT_PER_CONNECTION) sock.pause();
    this.inFlight.track(
      r,
      (ctx) => this.send(ctx, sock),
      (err) => this.hooks.error(err, `${this.stream.transport} handler`),
      () => {
        const left = (this.inFlightOn.get(sock) ?? 1) - 1;
        if (left <= 0) this.inFlightOn.delete(sock);
        else this.inFlightOn.set(sock, left);
        if (sock.isPaused() && left < MAX_IN_FLIGHT_PER_CONNECTION && sock.writableLength < MAX_PENDING_WRITE) sock.resume();
      },
    );
  }

  private send(ctx: RequestContext, sock: net.Socket): void {
    const res = ctx.response;
    if (res && res.length > 0 && !sock.destroyed) {
      const framed = Buffer.allocUnsafe(2 + res.length); // RFC 1035 §4.2.2 length prefix
      framed.writeUInt16BE(res.length, 0);
      res.copy(framed, 2);
      if (!sock.write(framed) && sock.writableLength > MAX_PENDING_WRITE) sock.pause();
    } else if (!res && !sock.destroyed) {
      // A message we will not answer (garbage): the stream cannot be trusted any more.
      sock.destroy();
    }
    this.hooks.done(ctx);
  }

  get transport(): 'tcp' | 'dot' {
    return this.stream.transport;
  }

  get connections(): number {
    return this.sockets.size;
  }

  async stop(timeoutMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.close();
    await this.inFlight.drain(timeoutMs);
    for (const s of this.sockets) s.end();
    for (const s of this.sockets) s.destroy();
  }
}
