// DNS over HTTPS to one upstream (RFC 8484): one HTTP/2 session, opened on the first query, each
// query a stream of its own (POST application/dns-message, or GET ?dns= when configured). The query
// keeps its random ID (RFC 8484 allows 0, but a matching ID and question is what tells a genuine
// answer). A GOAWAY lets the streams under way finish while new queries open a new session.
import http2 from 'node:http2';
import tls from 'node:tls';
import { closedError, sameQuestion, StreamUpstream, type InFlight } from './stream-upstream.js';
import { tlsOptions } from './tls-verify.js';

const DNS_MESSAGE = 'application/dns-message';
/** Longest DNS message: a longer body is not an answer. */
const MAX_BODY = 65535;

export class DohUpstream extends StreamUpstream {
  private session: http2.ClientHttp2Session | undefined;
  private ready = false;
  private readonly streams = new Map<number, http2.ClientHttp2Stream>();
  /** Sessions still open, the current one and any draining after a GOAWAY (to close them all). */
  private readonly sessions = new Set<http2.ClientHttp2Session>();

  protected isConnected(): boolean {
    return this.ready;
  }

  send(out: Buffer, q: InFlight): void {
    if (this.ready && this.session) return this.request(this.session, out, q);
    this.queue.push({ out, q });
    if (!this.session) this.open();
  }

  private open(): void {
    const s = this.server;
    const e = s.encrypted;
    let options: tls.ConnectionOptions;
    try {
      options = tlsOptions(e, s.host, s.port, 'h2', this.tlsSession);
    } catch (err) {
      process.nextTick(() => this.connectFailed(err as Error));
      return;
    }
    let lastError: Error | undefined;
    const session = http2.connect(`https://${e.authority}`, {
      createConnection: () => {
        const socket = tls.connect(options);
        socket.on('session', (t: Buffer) => (this.tlsSession = t));
        return socket;
      },
    });
    this.session = session;
    this.sessions.add(session);
    let wasReady = false;
    const timer = setTimeout(
      () => session.destroy(Object.assign(new Error(`no HTTP/2 connection within ${this.opts.connectTimeoutMs} ms`), { code: 'ERR_SLUICE_CONNECT_TIMEOUT' })),
      this.opts.connectTimeoutMs,
    );
    timer.unref();
    session.once('connect', () => {
      clearTimeout(timer);
      if (this.closed) return void session.destroy();
      wasReady = true;
      this.ready = this.session === session;
      this.connected();
      session.setTimeout(this.opts.idleMs, () => {
        if (this.openStreams(session) > 0) return;
        this.retire(session);
        session.close();
        // Busy: setTimeout keeps running; the next idle period closes it.
      });
      for (let w = this.dequeue(); w; w = this.dequeue()) this.request(session, w.out, w.q);
    });
    session.on('error', (err) => (lastError ??= err));
    session.on('goaway', () => this.retire(session));
    session.on('close', () => {
      clearTimeout(timer);
      this.sessions.delete(session);
      this.retire(session);
      if (this.closed) return;
      if (!wasReady) this.connectFailed(lastError ?? closedError('connection closed before HTTP/2 was set up'));
      else if (lastError) this.opts.onFailure('closed', `HTTP/2 session lost: ${lastError.message}`);
      // Queries queued after a GOAWAY wait for a new session.
      if (this.queue.length > 0 && !this.session) this.open();
    });
    session.unref();
  }

  /** `session` takes no new streams: the next query opens a new one. */
  private retire(session: http2.ClientHttp2Session): void {
    if (this.session !== session) return;
    this.session = undefined;
    this.ready = false;
  }

  private openStreams(session: http2.ClientHttp2Session): number {
    let n = 0;
    for (const st of this.streams.values()) if (st.session === session) n++;
    return n;
  }

  private request(session: http2.ClientHttp2Session, out: Buffer, q: InFlight): void {
    const e = this.server.encrypted;
    const get = e.method === 'get';
    const headers: http2.OutgoingHttpHeaders = get
      ? { ':method': 'GET', ':path': `${e.path}?dns=${out.toString('base64url')}`, ':authority': e.authority, accept: DNS_MESSAGE }
      : { ':method': 'POST', ':path': e.path, ':authority': e.authority, accept: DNS_MESSAGE, 'content-type': DNS_MESSAGE, 'content-length': out.length };
    let st: http2.ClientHttp2Stream;
    try {
      st = session.request(headers, { endStream: get });
    } catch {
      // The session went away between the check and the request.
      this.retire(session);
      process.nextTick(() => this.lost(q));
      return;
    }
    this.streams.set(q.id, st);
    if (!get) st.end(out);
    let status = 0;
    let body: Buffer[] = [];
    let size = 0;
    st.on('response', (h) => (status = Number(h[':status'])));
    st.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY) st.close(http2.constants.NGHTTP2_CANCEL);
      else body.push(d);
    });
    st.on('error', () => {});
    st.on('close', () => {
      if (this.streams.get(q.id) === st) this.streams.delete(q.id);
      if (this.pending.get(q.id) !== q) return;
      const msg = status === 200 && size <= MAX_BODY ? (body.length === 1 ? body[0]! : Buffer.concat(body)) : undefined;
      body = [];
      // The stream carries one answer only: a wrong ID or question ends this attempt as a lost one.
      if (msg && msg.length >= 12 && msg.readUInt16BE(0) === q.id && sameQuestion(msg, q.question)) {
        this.pending.delete(q.id);
        q.answer(msg);
      } else this.lost(q);
    });
  }

  private lost(q: InFlight): void {
    if (this.pending.get(q.id) !== q) return;
    this.pending.delete(q.id);
    q.drop();
  }

  forget(id: number): void {
    if (!this.pending.delete(id)) return;
    const st = this.streams.get(id);
    if (st) {
      this.streams.delete(id);
      st.close(http2.constants.NGHTTP2_CANCEL);
    }
  }

  close(): void {
    this.closed = true;
    this.queue.length = 0;
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
    this.session = undefined;
    this.ready = false;
  }
}
