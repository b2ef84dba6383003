// DNS over HTTPS (RFC 8484): HTTP/2 (ALPN "h2") and HTTP/1.1 on one TLS port, GET ?dns= and POST
// application/dns-message at `doh.path`, and `doh.path`/<client id> for device groups. A DNS
// answer, REFUSED included, is a 200; only what is not a DNS query gets an HTTP error status.
// Limits: connections in total and per client address (counted before the TLS handshake), HTTP/2
// streams per connection, an idle timeout, and the request size.
//
// HTTP/2 is served with node:http2's core API ('stream', respond(), end()): its compatibility API
// (Http2ServerRequest/Response) builds two more objects and a dozen listeners per request and cost
// about a third of the CPU of a DoH answer. HTTP/1.1 arrives through node:http as 'request'.
import type http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type tls from 'node:tls';
import type { DohConfig } from '../config/schema.js';
import type { ClientInfo, RequestContext } from '../pipeline/context.js';
import { checkDohBody, dnsCacheMaxAge, DNS_MESSAGE, parseDohRequest, type DohParsed, type DohRoute } from './doh-request.js';
import { InFlight } from './in-flight.js';
import type { TlsCertificate } from './tls-certificate.js';
import type { ListenerHooks, MessageHandler } from './udp.js';

/** Where an answer goes: an HTTP/2 stream, or an HTTP/1.1 response. */
type Reply = http2.ServerHttp2Stream | http.ServerResponse;

/** The client of an HTTP/2 session, read once per connection rather than per stream. */
interface Peer {
  address: string;
  port: number;
}

/** Header objects of the bodiless error answers, built once (respond() and writeHead() copy them). */
const ERROR_HEADERS = new Map<number, http2.OutgoingHttpHeaders>();
function errorHeaders(status: number): http2.OutgoingHttpHeaders {
  let h = ERROR_HEADERS.get(status);
  if (!h) {
    h = status === 405 ? { ':status': status, allow: 'GET, POST', 'content-length': 0 } : { ':status': status, 'content-length': 0 };
    ERROR_HEADERS.set(status, h);
  }
  return h;
}
const H1_ERROR = { 'content-length': 0 };
const H1_NOT_ALLOWED = { allow: 'GET, POST', 'content-length': 0 };
const CONTINUE = { ':status': 100 };
const END_STREAM: http2.ServerStreamResponseOptions = { endStream: true };
/** A stream's 'error' (a reset, a broken session) needs a listener, or it would be thrown. */
const ignoreError = (): void => {};

export class DohListener {
  private server: http2.Http2SecureServer | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly perClient = new Map<string, number>();
  private readonly peers = new WeakMap<http2.Http2Session, Peer>();
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
    const server = http2.createSecureServer({
      ...this.certificate.options,
      allowHTTP1: true,
      ALPNProtocols: ['h2', 'http/1.1'],
      settings: { maxConcurrentStreams: s.max_concurrent_streams },
      handshakeTimeout: s.idle_timeout_ms,
    });
    this.server = server;
    // HTTP/2 sessions without a frame for this long are closed (GOAWAY); HTTP/1.1 connections below.
    server.setTimeout(s.idle_timeout_ms);
    server.on('connection', (sock: net.Socket) => this.onConnection(sock));
    server.on('secureConnection', (sock: tls.TLSSocket) => {
      if (sock.alpnProtocol !== 'h2') sock.setTimeout(this.settings().idle_timeout_ms, () => sock.destroy());
    });
    server.on('tlsClientError', (_err, sock) => sock.destroy());
    server.on('session', (session: http2.ServerHttp2Session) => {
      // session.socket is a Proxy: read through it once per connection.
      const sock = session.socket;
      this.peers.set(session, { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 });
    });
    const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onStream(stream, headers);
    server.on('stream', onStream);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      // HTTP/2 streams are onStream's; only HTTP/1.1 requests are served here.
      if (req.httpVersionMajor === 1) this.onHttp1Request(req, res);
    });
    // Adding a 'request' listener made node:http2 add its compatibility 'stream' listener, which
    // would wrap every HTTP/2 stream in an Http2ServerRequest/Response pair: only onStream stays.
    for (const l of server.listeners('stream')) if (l !== onStream) server.off('stream', l as (...args: unknown[]) => void);
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

  /** An HTTP/2 request. */
  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', ignoreError);
    // As node:http2's compatibility layer did: 100-continue is answered, other expectations are not met.
    const expectation = headers.expect;
    if (expectation !== undefined) {
      if (expectation !== '100-continue') {
        this.fail(stream, 417);
        return;
      }
      stream.additionalHeaders(CONTINUE);
    }
    const parsed = this.parse(headers[':method'], headers[':path'], headers['content-type'], headers['content-length']);
    if (!parsed.ok) {
      this.fail(stream, parsed.status);
      return;
    }
    const peer = this.peers.get(stream.session!) ?? { address: '', port: 0 };
    const client = this.clientInfo(peer.address, peer.port, parsed.pathNetwork);
    if (parsed.message) this.answer(parsed.message, client, stream);
    else this.readBody(stream, client, stream);
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

  /** A POST body, stopped as soon as it is longer than any message we accept. */
  private readBody(body: NodeJS.ReadableStream, client: ClientInfo, reply: Reply): void {
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
      // A DNS query is nearly always one DATA frame: no array, no copy.
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
        const cacheControl = maxAge === undefined ? undefined : `max-age=${maxAge}`;
        if ('respond' in reply) {
          reply.respond(
            cacheControl === undefined
              ? { ':status': 200, 'content-type': DNS_MESSAGE, 'content-length': bytes.length }
              : { ':status': 200, 'content-type': DNS_MESSAGE, 'content-length': bytes.length, 'cache-control': cacheControl },
          );
        } else {
          reply.writeHead(
            200,
            cacheControl === undefined
              ? { 'content-type': DNS_MESSAGE, 'content-length': bytes.length }
              : { 'content-type': DNS_MESSAGE, 'content-length': bytes.length, 'cache-control': cacheControl },
          );
        }
        reply.end(bytes);
      }
    } else {
      // A message sluice does not answer (a response, garbage): not a DNS query.
      this.fail(reply, 400);
    }
    this.hooks.done(ctx);
  }

  private fail(reply: Reply, status: number): void {
    if (closed(reply)) return;
    if ('respond' in reply) {
      reply.respond(errorHeaders(status), END_STREAM);
    } else {
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
    await this.inFlight.drain(timeoutMs);
    for (const s of this.sockets) s.destroy();
  }
}

/** Answered already, or gone (reset by the client, connection closed): nothing more to send. */
function closed(reply: Reply): boolean {
  if ('respond' in reply) return reply.headersSent || reply.destroyed || reply.closed;
  return reply.headersSent || reply.destroyed;
}
