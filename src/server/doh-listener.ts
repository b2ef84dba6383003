// DNS over HTTPS (RFC 8484): HTTP/2 (ALPN "h2") and HTTP/1.1 on one TLS port, GET ?dns= and POST
// application/dns-message at `doh.path`, and `doh.path`/<client id> for device groups. A DNS
// answer, REFUSED included, is a 200; only what is not a DNS query gets an HTTP error status.
// Limits: connections in total and per client address (counted before the TLS handshake), HTTP/2
// streams per connection, an idle timeout, and the request size.
import http2 from 'node:http2';
import type net from 'node:net';
import type tls from 'node:tls';
import type { DohConfig } from '../config/schema.js';
import type { ClientInfo, RequestContext } from '../pipeline/context.js';
import { checkDohBody, dnsCacheMaxAge, DNS_MESSAGE, parseDohRequest } from './doh-request.js';
import { InFlight } from './in-flight.js';
import type { TlsCertificate } from './tls-certificate.js';
import type { ListenerHooks, MessageHandler } from './udp.js';

type Request = http2.Http2ServerRequest;
type Response = http2.Http2ServerResponse;

export class DohListener {
  private server: http2.Http2SecureServer | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly perClient = new Map<string, number>();
  private readonly inFlight = new InFlight();
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
    server.on('request', (req: Request, res: Response) => this.onRequest(req, res));
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

  private onRequest(req: Request, res: Response): void {
    const s = this.settings();
    const parsed = parseDohRequest(
      { method: req.method, url: req.url, contentType: req.headers['content-type'], contentLength: req.headers['content-length'] },
      { path: s.path, clientIds: s.client_ids, maxBytes: s.max_request_bytes },
    );
    if (!parsed.ok) {
      if (parsed.status === 405) res.setHeader('allow', 'GET, POST');
      this.fail(res, parsed.status);
      return;
    }
    const client: ClientInfo = {
      address: req.socket.remoteAddress ?? '',
      port: req.socket.remotePort ?? 0,
      transport: 'doh',
      listener: this.listener,
      listenerNetwork: this.listenerNetwork,
      pathNetwork: parsed.pathNetwork,
    };
    if (parsed.message) {
      this.answer(parsed.message, client, res);
      return;
    }
    // POST: the body, stopped as soon as it is longer than any message we accept.
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > s.max_request_bytes) {
        req.off('data', onData);
        this.fail(res, 413);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => {
      if (length > s.max_request_bytes) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const status = checkDohBody(body, s.max_request_bytes);
      if (status !== undefined) this.fail(res, status);
      else this.answer(body, client, res);
    });
    req.on('error', () => res.destroy());
  }

  private answer(msg: Buffer, client: ClientInfo, res: Response): void {
    let r: RequestContext | Promise<RequestContext>;
    try {
      r = this.handler().handle(msg, client);
    } catch (err) {
      this.hooks.error(err as Error, 'doh handler');
      this.fail(res, 500);
      return;
    }
    if (!(r instanceof Promise)) {
      this.send(r, res);
      return;
    }
    this.inFlight.track(
      r,
      (ctx) => this.send(ctx, res),
      (err) => {
        this.hooks.error(err, 'doh handler');
        this.fail(res, 500);
      },
    );
  }

  private send(ctx: RequestContext, res: Response): void {
    const bytes = ctx.response;
    if (bytes && bytes.length > 0) {
      if (!res.writableEnded && !res.destroyed) {
        const maxAge = dnsCacheMaxAge(bytes);
        res.writeHead(200, {
          'content-type': DNS_MESSAGE,
          'content-length': bytes.length,
          ...(maxAge !== undefined ? { 'cache-control': `max-age=${maxAge}` } : {}),
        });
        res.end(bytes);
      }
    } else {
      // A message sluice does not answer (a response, garbage): not a DNS query.
      this.fail(res, 400);
    }
    this.hooks.done(ctx);
  }

  private fail(res: Response, status: number): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-length': 0 });
    res.end();
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
