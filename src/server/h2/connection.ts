// The server side of one HTTP/2 connection (RFC 9113) for DNS over HTTPS: frames read from the
// TLS socket, requests handed to the DoH listener when complete, answers written back.
//
// Why by hand: node:http2 cost ~4 of every 5 CPU seconds of a DoH answer (its per-stream
// objects, header objects and their conversion to and from nghttp2; `npm run bench:encrypted`
// measured 31-34k answers a second against dnsdist's 108-112k on the same core). DoH needs a
// small part of HTTP/2: requests of one HEADERS frame (and maybe CONTINUATION and a short DATA
// body), answers of one HEADERS and one DATA frame, no push, no priorities. Everything a client
// may send is read and answered as RFC 9113 asks; what DoH has no use for (priorities, trailers,
// unknown frames and settings) is read and ignored.
//
// Output is gathered per turn of the event loop and written as one buffer: one TLS record for
// every answer that a read of the socket produced.
import type net from 'node:net';
import { encodeAnswerHeaders, HpackDecoder, MAX_ANSWER_HEADERS, statusHeaders } from './hpack.js';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const FRAME_HEADER = 9;
const enum Type {
  DATA = 0,
  HEADERS = 1,
  PRIORITY = 2,
  RST_STREAM = 3,
  SETTINGS = 4,
  PUSH_PROMISE = 5,
  PING = 6,
  GOAWAY = 7,
  WINDOW_UPDATE = 8,
  CONTINUATION = 9,
}
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

/** Error codes (RFC 9113 §7). */
export const enum H2Error {
  NO_ERROR = 0,
  PROTOCOL_ERROR = 1,
  INTERNAL_ERROR = 2,
  FLOW_CONTROL_ERROR = 3,
  SETTINGS_TIMEOUT = 4,
  STREAM_CLOSED = 5,
  FRAME_SIZE_ERROR = 6,
  REFUSED_STREAM = 7,
  CANCEL = 8,
  COMPRESSION_ERROR = 9,
  ENHANCE_YOUR_CALM = 11,
}

/** Our frame size limit (SETTINGS_MAX_FRAME_SIZE default): a DoH request needs no more. */
const MAX_FRAME = 16384;
/** A header block over this many bytes (HEADERS and CONTINUATION) ends the connection. */
const MAX_HEADER_BLOCK = 65536;
/** The connection's receive window: opened wide once, topped up when half is used. */
const CONNECTION_WINDOW = 1 << 24;
const DEFAULT_WINDOW = 65535;
const MAX_WINDOW = 2 ** 31 - 1;
/** Stop reading a client that does not read its answers when this much waits to be sent. */
const MAX_UNSENT = 256 * 1024;

/** What a request's HEADERS said, as the DoH listener reads it. */
export interface H2RequestHead {
  method: string | undefined;
  path: string | undefined;
  contentType: string | undefined;
  contentLength: string | undefined;
  expect: string | undefined;
}

/** One request: its head, its body as it arrives, and the way to answer it. */
export class H2Stream {
  readonly head: H2RequestHead = { method: undefined, path: undefined, contentType: undefined, contentLength: undefined, expect: undefined };
  /** Body bytes, when the request has any (POST). */
  body: Buffer | undefined;
  bodyLength = 0;
  /** The client has sent END_STREAM. */
  remoteDone = false;
  /** We sent our END_STREAM, or the stream was reset by either side. */
  closed = false;
  /** Answer bytes not yet sent for want of flow-control window. */
  unsent: Buffer | undefined;
  window: number;
  /** Set when the stream's headers were not a request we could read. */
  malformed = false;
  /** A regular header field was read: no pseudo-header may follow (§8.3). */
  sawRegular = false;

  constructor(
    readonly id: number,
    private readonly connection: H2Connection,
    window: number,
  ) {
    this.window = window;
  }

  /** Answer 200 with a DNS message. */
  respondDns(message: Uint8Array, maxAge: number | undefined): void {
    this.connection.answer(this, message, maxAge);
  }

  /** Answer a bodiless status: an HTTP error, or 100 Continue (then the stream stays open). */
  respondStatus(status: number): void {
    this.connection.status(this, status);
  }
}

export interface H2Handlers {
  /** A request is complete: its head, and its body when it has one (END_STREAM received). */
  request(stream: H2Stream): void;
  /** SETTINGS_MAX_CONCURRENT_STREAMS we announce and enforce. */
  maxStreams: number;
  /** Longest request body accepted; longer ones get 413 without more reading. */
  maxBody: number;
  /** A fault of ours while reading the connection (it is then closed with INTERNAL_ERROR). */
  error(err: Error): void;
}

/** One HTTP/2 connection over an established socket: TLS with ALPN h2 (or plain TCP, in tests). */
export class H2Connection {
  private readonly decoder = new HpackDecoder();
  private readonly streams = new Map<number, H2Stream>();
  private input: Buffer | undefined;
  private prefaceSeen = false;
  private lastStreamId = 0;
  /** The stream whose header block is still arriving in CONTINUATION frames, and its fragments. */
  private continuing: { id: number; flags: number; parts: Buffer[]; length: number } | undefined;
  /** Peer settings. */
  private peerWindow = DEFAULT_WINDOW;
  private peerMaxFrame = MAX_FRAME;
  /** Flow control: what we may send on the connection; what the client sent since our last update. */
  private sendWindow = DEFAULT_WINDOW;
  private received = 0;
  /** Streams with answer bytes waiting for window, in order. */
  private readonly blocked: H2Stream[] = [];
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private goingAway = false;
  private dead = false;
  private readonly flush = (): void => this.flushNow();

  constructor(
    private readonly socket: net.Socket,
    private readonly handlers: H2Handlers,
  ) {
    socket.on('data', (chunk: Buffer) => {
      // Whatever a client sends must not take the server down: a bug here ends this connection only.
      try {
        this.onData(chunk);
      } catch (err) {
        handlers.error(err as Error);
        this.fatal(H2Error.INTERNAL_ERROR);
      }
    });
    socket.on('drain', () => socket.resume());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onClose());
    // Our settings, and the connection window opened wide (§6.9.2: it starts at 65,535).
    const settings = Buffer.allocUnsafe(FRAME_HEADER + 12 + FRAME_HEADER + 4);
    let at = frameHeader(settings, 0, 12, Type.SETTINGS, 0, 0);
    settings.writeUInt16BE(0x3, at); // MAX_CONCURRENT_STREAMS
    settings.writeUInt32BE(handlers.maxStreams, at + 2);
    settings.writeUInt16BE(0x2, at + 6); // ENABLE_PUSH: 0
    settings.writeUInt32BE(0, at + 8);
    at = frameHeader(settings, at + 12, 4, Type.WINDOW_UPDATE, 0, 0);
    settings.writeUInt32BE(CONNECTION_WINDOW - DEFAULT_WINDOW, at);
    this.send(settings);
  }

  /** Open streams (requests not yet answered). */
  get openStreams(): number {
    return this.streams.size;
  }

  /** Tell the client no new requests will be taken (GOAWAY); the open ones are still answered. */
  shutdown(): void {
    if (this.dead || this.goingAway) return;
    this.goingAway = true;
    this.goAway(H2Error.NO_ERROR);
    if (this.streams.size === 0) this.endSoon();
  }

  /**
   * The connection was idle for the listener's timeout: GOAWAY the first time (it closes once its
   * open requests are answered), and closed outright the second, for a client that neither
   * finishes its requests nor closes its side.
   */
  idle(): void {
    if (this.goingAway || this.dead) this.socket.destroy();
    else this.shutdown();
  }

  private onClose(): void {
    this.dead = true;
    for (const s of this.streams.values()) s.closed = true;
    this.streams.clear();
    this.blocked.length = 0;
    this.out = [];
  }

  // ----- input ---------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    let buf = this.input ? Buffer.concat([this.input, chunk]) : chunk;
    let at = 0;
    if (!this.prefaceSeen) {
      if (buf.length < PREFACE.length) {
        if (!PREFACE.subarray(0, buf.length).equals(buf)) return this.fatal(H2Error.PROTOCOL_ERROR);
        this.input = buf;
        return;
      }
      if (!buf.subarray(0, PREFACE.length).equals(PREFACE)) return this.fatal(H2Error.PROTOCOL_ERROR);
      this.prefaceSeen = true;
      at = PREFACE.length;
    }
    while (buf.length - at >= FRAME_HEADER) {
      const length = (buf[at]! << 16) | (buf[at + 1]! << 8) | buf[at + 2]!;
      if (length > MAX_FRAME) return this.fatal(H2Error.FRAME_SIZE_ERROR);
      if (buf.length - at < FRAME_HEADER + length) break;
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const id = buf.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = at + FRAME_HEADER;
      at = payload + length;
      const err = this.frame(type, flags, id, buf, payload, at);
      if (err !== undefined) return this.fatal(err);
      if (this.dead) return;
    }
    if (at === buf.length) this.input = undefined;
    else {
      // A partial frame waits for the rest; copied, so that the chunk it came in can go.
      buf = buf.subarray(at);
      this.input = this.input === undefined || buf.buffer !== this.input.buffer ? Buffer.from(buf) : buf;
    }
  }

  /** One frame of the given type; a connection error code, or undefined. */
  private frame(type: number, flags: number, id: number, buf: Buffer, start: number, end: number): H2Error | undefined {
    const length = end - start;
    if (this.continuing && type !== Type.CONTINUATION) return H2Error.PROTOCOL_ERROR;
    switch (type) {
      case Type.DATA:
        return this.data(flags, id, buf, start, end);
      case Type.HEADERS:
        return this.headers(flags, id, buf, start, end);
      case Type.CONTINUATION: {
        const c = this.continuing;
        if (!c || c.id !== id) return H2Error.PROTOCOL_ERROR;
        c.length += length;
        if (c.length > MAX_HEADER_BLOCK) return H2Error.ENHANCE_YOUR_CALM;
        c.parts.push(Buffer.from(buf.subarray(start, end)));
        if (!(flags & END_HEADERS)) return undefined;
        this.continuing = undefined;
        return this.headerBlock(c.id, c.flags, Buffer.concat(c.parts, c.length));
      }
      case Type.PRIORITY:
        if (id === 0) return H2Error.PROTOCOL_ERROR;
        if (length !== 5) this.reset(id, H2Error.FRAME_SIZE_ERROR);
        return undefined;
      case Type.RST_STREAM: {
        if (id === 0 || id > this.lastStreamId) return H2Error.PROTOCOL_ERROR;
        if (length !== 4) return H2Error.FRAME_SIZE_ERROR;
        const s = this.streams.get(id);
        if (s) this.close(s);
        return undefined;
      }
      case Type.SETTINGS:
        return this.settings(flags, id, buf, start, end);
      case Type.PUSH_PROMISE:
        return H2Error.PROTOCOL_ERROR; // a client cannot push (§8.4)
      case Type.PING: {
        if (id !== 0) return H2Error.PROTOCOL_ERROR;
        if (length !== 8) return H2Error.FRAME_SIZE_ERROR;
        if (flags & ACK) return undefined;
        const pong = Buffer.allocUnsafe(FRAME_HEADER + 8);
        buf.copy(pong, frameHeader(pong, 0, 8, Type.PING, ACK, 0), start, end);
        this.send(pong);
        return undefined;
      }
      case Type.GOAWAY:
        if (id !== 0) return H2Error.PROTOCOL_ERROR;
        // The client leaves: answer what it asked, then close.
        this.goingAway = true;
        if (this.streams.size === 0) this.endSoon();
        return undefined;
      case Type.WINDOW_UPDATE:
        return this.windowUpdate(id, buf, start, length);
      default:
        return undefined; // unknown frame types are ignored (§5.5)
    }
  }

  private settings(flags: number, id: number, buf: Buffer, start: number, end: number): H2Error | undefined {
    if (id !== 0) return H2Error.PROTOCOL_ERROR;
    if (flags & ACK) return end === start ? undefined : H2Error.FRAME_SIZE_ERROR;
    if ((end - start) % 6 !== 0) return H2Error.FRAME_SIZE_ERROR;
    for (let p = start; p < end; p += 6) {
      const key = buf.readUInt16BE(p);
      const value = buf.readUInt32BE(p + 2);
      if (key === 0x2 && value > 1) return H2Error.PROTOCOL_ERROR;
      if (key === 0x4) {
        if (value > MAX_WINDOW) return H2Error.FLOW_CONTROL_ERROR;
        // A new initial window changes every open stream's by the difference (§6.9.2).
        const delta = value - this.peerWindow;
        this.peerWindow = value;
        for (const s of this.streams.values()) {
          s.window += delta;
          if (s.window > MAX_WINDOW) return H2Error.FLOW_CONTROL_ERROR;
        }
      }
      if (key === 0x5) {
        if (value < 16384 || value > 16777215) return H2Error.PROTOCOL_ERROR;
        this.peerMaxFrame = value;
      }
      // HEADER_TABLE_SIZE: our answers use no dynamic table. Others do not concern a server.
    }
    const ack = Buffer.allocUnsafe(FRAME_HEADER);
    frameHeader(ack, 0, 0, Type.SETTINGS, ACK, 0);
    this.send(ack);
    this.sendBlocked();
    return undefined;
  }

  private windowUpdate(id: number, buf: Buffer, start: number, length: number): H2Error | undefined {
    if (length !== 4) return H2Error.FRAME_SIZE_ERROR;
    const increment = buf.readUInt32BE(start) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0) return H2Error.PROTOCOL_ERROR;
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) return H2Error.FLOW_CONTROL_ERROR;
    } else {
      const s = this.streams.get(id);
      if (increment === 0) {
        if (s) this.reset(id, H2Error.PROTOCOL_ERROR, s);
        return undefined;
      }
      if (!s) return id > this.lastStreamId ? H2Error.PROTOCOL_ERROR : undefined;
      s.window += increment;
      if (s.window > MAX_WINDOW) {
        this.reset(id, H2Error.FLOW_CONTROL_ERROR, s);
        return undefined;
      }
    }
    this.sendBlocked();
    return undefined;
  }

  private headers(flags: number, id: number, buf: Buffer, start: number, end: number): H2Error | undefined {
    if (id === 0 || (id & 1) === 0) return H2Error.PROTOCOL_ERROR;
    let p = start;
    let padding = 0;
    if (flags & PADDED) {
      if (p >= end) return H2Error.FRAME_SIZE_ERROR;
      padding = buf[p++]!;
    }
    if (flags & PRIORITY_FLAG) p += 5;
    if (p + padding > end) return p > end ? H2Error.FRAME_SIZE_ERROR : H2Error.PROTOCOL_ERROR;
    const fragment = buf.subarray(p, end - padding);
    if (!(flags & END_HEADERS)) {
      this.continuing = { id, flags, parts: [Buffer.from(fragment)], length: fragment.length };
      return undefined;
    }
    return this.headerBlock(id, flags, fragment);
  }

  /** A complete header block: a new request, trailers of an open one, or one we no longer track. */
  private headerBlock(id: number, flags: number, block: Buffer): H2Error | undefined {
    const existing = this.streams.get(id);
    if (existing || id <= this.lastStreamId) {
      // Trailers (or a stream already answered and forgotten): read for the table, then ignored.
      if (this.decoder.decode(block, ignoreHeader) === 'compression') return H2Error.COMPRESSION_ERROR;
      if (!existing) return id <= this.lastStreamId ? undefined : H2Error.PROTOCOL_ERROR;
      if (!(flags & END_STREAM)) return H2Error.PROTOCOL_ERROR; // trailers must end the stream
      existing.remoteDone = true;
      this.handlers.request(existing);
      return undefined;
    }
    this.lastStreamId = id;
    const stream = new H2Stream(id, this, this.peerWindow);
    const failure = this.decoder.decode(block, (name, value) => readHeader(stream, name, value));
    if (failure === 'compression') return H2Error.COMPRESSION_ERROR;
    if (this.goingAway) {
      this.reset(id, H2Error.REFUSED_STREAM);
      return undefined;
    }
    if (this.streams.size >= this.handlers.maxStreams) {
      this.reset(id, H2Error.REFUSED_STREAM);
      return undefined;
    }
    if (failure === 'too-large') {
      this.streams.set(id, stream);
      stream.remoteDone = (flags & END_STREAM) !== 0;
      this.status(stream, 431);
      return undefined;
    }
    const h = stream.head;
    if (stream.malformed || h.method === undefined || h.path === undefined) {
      this.reset(id, H2Error.PROTOCOL_ERROR);
      return undefined;
    }
    this.streams.set(id, stream);
    stream.remoteDone = (flags & END_STREAM) !== 0;
    // As node:http2 did: 100-continue is answered (when a body is to come), other expectations are not met.
    const expect = h.expect?.toLowerCase();
    if (expect !== undefined && expect !== '100-continue') this.status(stream, 417);
    else if (stream.remoteDone) this.handlers.request(stream);
    else if (expect !== undefined) this.status(stream, 100);
    return undefined;
  }

  private data(flags: number, id: number, buf: Buffer, start: number, end: number): H2Error | undefined {
    if (id === 0) return H2Error.PROTOCOL_ERROR;
    // Flow control counts the whole payload, padding included (§6.9.1).
    this.received += end - start;
    if (this.received >= CONNECTION_WINDOW / 2) {
      const wu = Buffer.allocUnsafe(FRAME_HEADER + 4);
      wu.writeUInt32BE(this.received, frameHeader(wu, 0, 4, Type.WINDOW_UPDATE, 0, 0));
      this.received = 0;
      this.send(wu);
    }
    const s = this.streams.get(id);
    if (!s) return id > this.lastStreamId ? H2Error.PROTOCOL_ERROR : undefined; // after our answer or a reset: ignored
    if (s.remoteDone) {
      this.reset(id, H2Error.STREAM_CLOSED, s);
      return undefined;
    }
    let p = start;
    let padding = 0;
    if (flags & PADDED) {
      if (p >= end) return H2Error.FRAME_SIZE_ERROR;
      padding = buf[p++]!;
      if (p + padding > end) return H2Error.PROTOCOL_ERROR;
    }
    const n = end - padding - p;
    if (n > 0 && !s.closed) {
      s.bodyLength += n;
      if (s.bodyLength > this.handlers.maxBody) {
        this.status(s, 413);
        return undefined;
      }
      const part = buf.subarray(p, p + n);
      s.body = s.body === undefined ? Buffer.from(part) : Buffer.concat([s.body, part]);
    }
    if (flags & END_STREAM) {
      s.remoteDone = true;
      if (!s.closed) this.handlers.request(s);
      else this.forget(s);
    }
    return undefined;
  }

  // ----- output --------------------------------------------------------------------------------

  /** A 200 with the DNS message: HEADERS and DATA with END_STREAM, as the windows allow. */
  answer(s: H2Stream, message: Uint8Array, maxAge: number | undefined): void {
    if (s.closed || this.dead) return;
    const out = Buffer.allocUnsafe(FRAME_HEADER + MAX_ANSWER_HEADERS + FRAME_HEADER + message.length);
    const blockEnd = encodeAnswerHeaders(out, FRAME_HEADER, message.length, maxAge);
    frameHeader(out, 0, blockEnd - FRAME_HEADER, Type.HEADERS, END_HEADERS, s.id);
    s.closed = true;
    const n = message.length;
    if (n <= this.sendWindow && n <= s.window && n <= this.peerMaxFrame) {
      // Nearly always: a DNS answer fits one DATA frame and the windows.
      frameHeader(out, blockEnd, n, Type.DATA, END_STREAM, s.id);
      out.set(message, blockEnd + FRAME_HEADER);
      this.sendWindow -= n;
      s.window -= n;
      this.send(out.subarray(0, blockEnd + FRAME_HEADER + n));
      this.finished(s);
      return;
    }
    this.send(out.subarray(0, blockEnd));
    s.unsent = Buffer.from(message);
    this.blocked.push(s);
    this.sendBlocked();
  }

  /** A bodiless status; 1xx keeps the stream open. */
  status(s: H2Stream, code: number): void {
    if (s.closed || this.dead) return;
    const block = statusHeaders(code);
    const out = Buffer.allocUnsafe(FRAME_HEADER + block.length);
    const informational = code < 200;
    block.copy(out, frameHeader(out, 0, block.length, Type.HEADERS, END_HEADERS | (informational ? 0 : END_STREAM), s.id));
    this.send(out);
    if (informational) return;
    s.closed = true;
    this.finished(s);
  }

  /** Our side of the stream is done: forget it once the client's is too, else tell it to stop sending. */
  private finished(s: H2Stream): void {
    if (s.unsent) return;
    if (!s.remoteDone) {
      // An answer before the whole request (413): RST_STREAM NO_ERROR ends the upload (§8.1).
      this.reset(s.id, H2Error.NO_ERROR, s);
      return;
    }
    this.forget(s);
  }

  private forget(s: H2Stream): void {
    this.streams.delete(s.id);
    if (this.goingAway && this.streams.size === 0) this.endSoon();
  }

  /** Send what waits for window, in order, as far as the windows go. */
  private sendBlocked(): void {
    while (this.blocked.length > 0 && this.sendWindow > 0) {
      const s = this.blocked[0]!;
      const unsent = s.unsent;
      if (!unsent || this.streams.get(s.id) !== s) {
        this.blocked.shift();
        continue;
      }
      const n = Math.min(unsent.length, this.sendWindow, s.window, this.peerMaxFrame);
      if (n <= 0) return; // this stream waits for its own window; keep the order
      const last = n === unsent.length;
      const frame = Buffer.allocUnsafe(FRAME_HEADER + n);
      unsent.copy(frame, frameHeader(frame, 0, n, Type.DATA, last ? END_STREAM : 0, s.id), 0, n);
      this.sendWindow -= n;
      s.window -= n;
      this.send(frame);
      if (last) {
        s.unsent = undefined;
        this.blocked.shift();
        this.finished(s);
      } else s.unsent = unsent.subarray(n);
    }
  }

  private close(s: H2Stream): void {
    s.closed = true;
    s.unsent = undefined;
    this.forget(s);
  }

  private reset(id: number, code: H2Error, s?: H2Stream): void {
    const rst = Buffer.allocUnsafe(FRAME_HEADER + 4);
    rst.writeUInt32BE(code, frameHeader(rst, 0, 4, Type.RST_STREAM, 0, id));
    this.send(rst);
    if (s) this.close(s);
  }

  private goAway(code: H2Error): void {
    const frame = Buffer.allocUnsafe(FRAME_HEADER + 8);
    const at = frameHeader(frame, 0, 8, Type.GOAWAY, 0, 0);
    frame.writeUInt32BE(this.lastStreamId, at);
    frame.writeUInt32BE(code, at + 4);
    this.send(frame);
  }

  /** A connection error (§5.4.1): GOAWAY with the code, then the connection is closed. */
  private fatal(code: H2Error): void {
    if (this.dead) return;
    this.goAway(code);
    this.flushNow();
    this.dead = true;
    this.socket.end();
    this.socket.destroySoon();
  }

  private endSoon(): void {
    this.flushNow();
    this.socket.end();
  }

  private send(frame: Buffer): void {
    if (this.dead) return;
    this.out.push(frame);
    this.outBytes += frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flush);
    }
  }

  private flushNow(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.socket.destroyed) return;
    const data = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.socket.write(data);
    // A client that sends requests but does not read its answers is not read either.
    if (this.socket.writableLength > MAX_UNSENT) this.socket.pause();
  }
}

/** Write a frame header into `b` at `at`; the offset of its payload. */
function frameHeader(b: Buffer, at: number, length: number, type: number, flags: number, id: number): number {
  b[at] = length >>> 16;
  b[at + 1] = (length >>> 8) & 0xff;
  b[at + 2] = length & 0xff;
  b[at + 3] = type;
  b[at + 4] = flags;
  b.writeUInt32BE(id, at + 5);
  return at + FRAME_HEADER;
}

const ignoreHeader = (): void => undefined;

/**
 * Keep what the DoH listener reads of a request header; mark the request malformed where RFC 9113
 * §8.2-8.3 says so: an unknown or late pseudo-header, an uppercase name, a connection-specific field.
 */
function readHeader(s: H2Stream, name: string, value: string): void {
  const h = s.head;
  if (name.charCodeAt(0) === 0x3a /* : */) {
    if (s.sawRegular) s.malformed = true;
    if (name === ':method') h.method = value;
    else if (name === ':path') h.path = value;
    else if (name !== ':scheme' && name !== ':authority') s.malformed = true;
    return;
  }
  s.sawRegular = true;
  switch (name) {
    case 'content-type':
      h.contentType = value;
      return;
    case 'content-length':
      h.contentLength = value;
      return;
    case 'expect':
      h.expect = value;
      return;
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'transfer-encoding':
    case 'upgrade':
      s.malformed = true;
      return;
    case 'te':
      if (value !== 'trailers') s.malformed = true;
      return;
  }
  if (/[A-Z]/.test(name)) s.malformed = true;
}
