// DNS over HTTPS (RFC 8484): HTTP/2 (ALPN "h2") and HTTP/1.1 on one TLS port, GET ?dns= and POST
// application/dns-message at `doh.path`, and `doh.path`/<client id> for device groups. A DNS
// answer, REFUSED included, is a 200; only what is not a DNS query gets an HTTP error status.
// Limits: connections in total and per client address (counted before the TLS handshake), HTTP/2
// streams per connection, an idle timeout, and the request size.
//
// HTTP/2 is sluice's own (h2/connection.ts: node:http2 took most of the CPU of a DoH answer);
// HTTP/1.1, which only clients without ALPN h2 use, is node:http's, on the same TLS server.
import http from 'node:http';
import type net from 'node:net';
import tls from 'node:tls';
import type { DohConfig } from '../config/schema.js';
import type { ClientInfo, RequestContext } from '../pipeline/context.js';
import { checkDohBody, dnsCacheMaxAge, DNS_MESSAGE, parseDohRequest, type DohParsed, type DohRoute } from './doh-request.js';
import { H2Connection, H2Stream } from './h2/connection.js';
import { InFlight } from './in-flight.js';
import type { TlsCertificate } from './tls-certificate.js';
import type { ListenerHooks, MessageHandler } from './udp.js';

/** Where an answer goes: an HTTP/2 stream, or an HTTP/1.1 response. */
type Reply = H2Stream | http.ServerResponse;

/** The client of an HTTP/2 connection, read once per connection rather than per stream. */
interface Peer {
  address: string;
  port: number;
}

const H1_ERROR = { 'content-length': 0 };
const H1_NOT_ALLOWED = { allow: 'GET, POST', 'content-length': 0 };
const EMPTY = Buffer.alloc(0);

export class DohListener {
  private server: tls.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly perClient = new Map<string, number>();
  private readonly h2 = new Set<H2Connection>();
  private readonly inFlight = new InFlight();
  private route: DohRoute | undefined;
  private routeOf: DohConfig | undefined;
  /** Connections closed at once for a limit. */
  refused = 0;
  private listener = '';

  constructor(
    private readonly address: string,
    private readonly port: number,
    private readonly listenerNetwork: string | undefined,
    private readonly handler: () => MessageHandler,
    private readonly hooks: ListenerHooks,
    private readonly settings: () => DohConfig,
    private readonly certificate: TlsCertificate,
  ) {}

  start(): Promise<{ address: string; port: number }> {
    const s = this.settings();
    const server = tls.createServer({ ...this.certificate.options, ALPNProtocols: ['h2', 'http/1.1'], handshakeTimeout: s.idle_timeout_ms });
    this.server = server;
    // HTTP/1.1 through node:http, given the TLS socket as https.Server does.
    const http1 = http.createServer((req, res) => this.onHttp1Request(req, res));
    server.on('connection', (sock: net.Socket) => this.onConnection(sock));
    server.on('secureConnection', (sock: tls.TLSSocket) => {
      const idle = this.settings().idle_timeout_ms;
      if (sock.alpnProtocol === 'h2') {
        this.onHttp2Connection(sock, idle);
        return;
      }
      sock.setTimeout(idle, () => sock.destroy());
      http1.emit('connection', sock);
    });
    server.on('tlsClientError', (_err, sock) => sock.destroy());
    this.certificate.attach(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.address, port: this.port, ipv6Only: false }, () => {
        server.off('error', reject);
        server.on('error', (e) => this.hooks.error(e, 'doh server'));
        const a = server.address() as net.AddressInfo;
        this.listener = `${a.address}:${a.port}`;
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  /** An HTTP/2 connection: requests come from its complete streams. */
  private onHttp2Connection(sock: tls.TLSSocket, idleMs: number): void {
    const s = this.settings();
    const peer: Peer = { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 };
    const conn = new H2Connection(sock, {
      maxStreams: s.max_concurrent_streams,
      maxBody: s.max_request_bytes,
      request: (stream) => this.onStream(stream, peer),
      error: (err) => this.hooks.error(err, 'doh http/2'),
    });
    this.h2.add(conn);
    sock.on('close', () => this.h2.delete(conn));
    // Idle: GOAWAY, and the connection closes once its open requests are answered (or at the next timeout).
    sock.setTimeout(idleMs, () => conn.idle());
  }

  /** Every TCP connection, before TLS: over a limit it is closed without a handshake. */
  private onConnection(sock: net.Socket): void {
    const s = this.settings();
    const remote = sock.remoteAddress ?? '';
    const mine = this.perClient.get(remote) ?? 0;
    if (this.sockets.size >= s.max_connections || mine >= s.max_connections_per_client) {
      this.refused++;
      sock.destroy();
      return;
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
  }

  private parse(method: string | undefined, url: string | undefined, contentType: string | undefined, contentLength: string | undefined): DohParsed {
    const s = this.settings();
    // The route is rebuilt only when the settings are (a reload): not once per request.
    if (this.routeOf !== s) {
      this.routeOf = s;
      this.route = { path: s.path, clientIds: s.client_ids, maxBytes: s.max_request_bytes };
    }
    return parseDohRequest({ method, url, contentType, contentLength }, this.route!);
  }

  private clientInfo(address: string, port: number, pathNetwork: string | undefined): ClientInfo {
    return { address, port, transport: 'doh', listener: this.listener, listenerNetwork: this.listenerNetwork, pathNetwork };
  }

  /** An HTTP/2 request, complete. */
  private onStream(stream: H2Stream, peer: Peer): void {
    const h = stream.head;
    const parsed = this.parse(h.method, h.path, h.contentType, h.contentLength);
    if (!parsed.ok) {
      this.fail(stream, parsed.status);
      return;
    }
    const client = this.clientInfo(peer.address, peer.port, parsed.pathNetwork);
    if (parsed.message) {
      this.answer(parsed.message, client, stream);
      return;
    }
    const body = stream.body ?? EMPTY;
    const status = checkDohBody(body, this.settings().max_request_bytes);
    if (status !== undefined) this.fail(stream, status);
    else this.answer(body, client, stream);
  }

  /** An HTTP/1.1 request (node:http's objects). */
  private onHttp1Request(req: http.IncomingMessage, res: http.ServerResponse): void {
    const parsed = this.parse(req.method, req.url, req.headers['content-type'], req.headers['content-length']);
    if (!parsed.ok) {
      this.fail(res, parsed.status);
      return;
    }
    const client = this.clientInfo(req.socket.remoteAddress ?? '', req.socket.remotePort ?? 0, parsed.pathNetwork);
    if (parsed.message) this.answer(parsed.message, client, res);
    else this.readBody(req, client, res);
  }

  /** An HTTP/1.1 POST body, stopped as soon as it is longer than any message we accept. */
  private readBody(body: http.IncomingMessage, client: ClientInfo, reply: http.ServerResponse): void {
    const max = this.settings().max_request_bytes;
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    let length = 0;
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > max) {
        body.off('data', onData);
        this.fail(reply, 413);
        return;
      }
      // A DNS query nearly always comes in one chunk: no array, no copy.
      if (first === undefined) first = chunk;
      else (more ??= [first]).push(chunk);
    };
    body.on('data', onData);
    body.on('end', () => {
      if (length > max) return;
      const msg = more ? Buffer.concat(more) : (first ?? Buffer.alloc(0));
      const status = checkDohBody(msg, max);
      if (status !== undefined) this.fail(reply, status);
      else this.answer(msg, client, reply);
    });
    body.on('error', () => reply.destroy());
  }

  private answer(msg: Buffer, client: ClientInfo, reply: Reply): void {
    let r: RequestContext | Promise<RequestContext>;
    try {
      r = this.handler().handle(msg, client);
    } catch (err) {
      this.hooks.error(err as Error, 'doh handler');
      this.fail(reply, 500);
      return;
    }
    if (!(r instanceof Promise)) {
      this.send(r, reply);
      return;
    }
    this.inFlight.track(
      r,
      (ctx) => this.send(ctx, reply),
      (err) => {
        this.hooks.error(err, 'doh handler');
        this.fail(reply, 500);
      },
    );
  }

  private send(ctx: RequestContext, reply: Reply): void {
    const bytes = ctx.response;
    if (bytes && bytes.length > 0) {
      if (!closed(reply)) {
        const maxAge = dnsCacheMaxAge(bytes);
        if (reply instanceof H2Stream) reply.respondDns(bytes, maxAge);
        else {
          reply.writeHead(
            200,
            maxAge === undefined
              ? { 'content-type': DNS_MESSAGE, 'content-length': bytes.length }
              : { 'content-type': DNS_MESSAGE, 'content-length': bytes.length, 'cache-control': `max-age=${maxAge}` },
          );
          reply.end(bytes);
        }
      }
    } else {
      // A message sluice does not answer (a response, garbage): not a DNS query.
      this.fail(reply, 400);
    }
    this.hooks.done(ctx);
  }

  private fail(reply: Reply, status: number): void {
    if (closed(reply)) return;
    if (reply instanceof H2Stream) reply.respondStatus(status);
    else {
      reply.writeHead(status, status === 405 ? H1_NOT_ALLOWED : H1_ERROR);
      reply.end();
    }
  }

  get connections(): number {
    return this.sockets.size;
  }

  async stop(timeoutMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.close();
    for (const c of this.h2) c.shutdown();
    await this.inFlight.drain(timeoutMs);
    for (const s of this.sockets) s.destroy();
  }
}

/** Answered already, or gone (reset by the client, connection closed): nothing more to send. */
function closed(reply: Reply): boolean {
  if (reply instanceof H2Stream) return reply.closed;
  return reply.headersSent || reply.destroyed;
}
