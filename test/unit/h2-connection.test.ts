// sluice's HTTP/2 server connection (src/server/h2/connection.ts), spoken to frame by frame over
// plain TCP on loopback: settings and PING, a header block in CONTINUATION frames, the stream
// limit, flow control of a long answer, a body over the limit, malformed requests (the stream's
// error) and broken framing (the connection's), shutdown with a request still open, and arbitrary
// bytes after the preface never throwing.
import fc from 'fast-check';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H2Connection, PREFACE, type H2Stream } from '../../src/server/h2/connection.js';
import { HpackDecoder } from '../../src/server/h2/hpack.js';
import { until } from '../helpers/until.js';

const DATA = 0;
const HEADERS = 1;
const RST_STREAM = 3;
const SETTINGS = 4;
const PING = 6;
const GOAWAY = 7;
const WINDOW_UPDATE = 8;
const CONTINUATION = 9;
const END_STREAM = 1;
const END_HEADERS = 4;

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

function frame(type: number, flags: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** A header block of literals without indexing, plain strings. */
function block(headers: [string, string][]): Buffer {
  return Buffer.concat(headers.flatMap(([n, v]) => [Buffer.from([0, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v)]));
}
const request = (path: string, method = 'GET'): [string, string][] => [
  [':method', method],
  [':scheme', 'https'],
  [':authority', 'doh.test'],
  [':path', path],
];

/** Requests the server was handed; answers by path: /big gets 100 bytes, /hold waits in `held`. */
const handed: H2Stream[] = [];
const held: H2Stream[] = [];
const connections: H2Connection[] = [];
const faults: string[] = [];
let server: net.Server;
let port: number;

beforeAll(async () => {
  server = net.createServer((sock) => {
    const conn = new H2Connection(sock, {
      maxStreams: 2,
      maxBody: 100,
      error: (err) => faults.push(err.message),
      request: (s) => {
        handed.push(s);
        if (s.head.path === '/throw') throw new Error('a bug in the handler');
        if (s.head.path === '/hold') held.push(s);
        else if (s.head.path === '/big') s.respondDns(Buffer.alloc(100, 0x61), 30);
        else s.respondDns(Buffer.from(`${s.head.method} ${s.head.path} ${s.bodyLength}`), undefined);
      },
    });
    connections.push(conn);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** A raw client: frames it has read, in order, and whether the server closed. */
class RawClient {
  readonly frames: Frame[] = [];
  ended = false;
  private input = Buffer.alloc(0);
  readonly sock: net.Socket;
  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (c: Buffer) => {
      this.input = Buffer.concat([this.input, c]);
      while (this.input.length >= 9) {
        const length = this.input.readUIntBE(0, 3);
        if (this.input.length < 9 + length) break;
        this.frames.push({ type: this.input[3]!, flags: this.input[4]!, id: this.input.readUInt32BE(5) & 0x7fffffff, payload: this.input.subarray(9, 9 + length) });
        this.input = this.input.subarray(9 + length);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => (this.ended = true));
  }
  static async open(settings: Buffer = Buffer.alloc(0), preface = PREFACE): Promise<RawClient> {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const c = new RawClient(sock);
    sock.write(Buffer.concat([preface, frame(SETTINGS, 0, 0, settings)]));
    return c;
  }
  send(...frames: Buffer[]): void {
    this.sock.write(Buffer.concat(frames));
  }
  async next(what: string, match: (f: Frame) => boolean, from = 0): Promise<Frame> {
    await until(what, () => this.frames.slice(from).some(match));
    return this.frames.slice(from).find(match)!;
  }
  on(id: number): Frame[] {
    return this.frames.filter((f) => f.id === id);
  }
  close(): void {
    this.sock.destroy();
  }
}

function statusOf(f: Frame): string | undefined {
  let status: string | undefined;
  new HpackDecoder().decode(f.payload, (n, v) => {
    if (n === ':status') status = v;
  });
  return status;
}

describe('H2Connection', () => {
  it('sends its settings first, acknowledges the client’s, echoes a PING and answers a GET in one HEADERS and one DATA frame', async () => {
    const c = await RawClient.open();
    const settings = await c.next('the server SETTINGS', (f) => f.type === SETTINGS && f.flags === 0);
    expect(settings.payload.toString('hex')).toBe('000300000002' + '000200000000');
    await c.next('the SETTINGS ack', (f) => f.type === SETTINGS && f.flags === 1);
    c.send(frame(PING, 0, 0, Buffer.from('sluice!!')), frame(HEADERS, END_HEADERS | END_STREAM, 1, block(request('/a'))));
    const pong = await c.next('the PING ack', (f) => f.type === PING);
    expect([pong.flags, pong.payload.toString()]).toEqual([1, 'sluice!!']);
    await c.next('the answer', (f) => f.type === DATA && f.id === 1);
    const [h, d] = c.on(1);
    expect([h!.type, h!.flags, statusOf(h!)]).toEqual([HEADERS, END_HEADERS, '200']);
    expect([d!.flags, d!.payload.toString()]).toEqual([END_STREAM, 'GET /a 0']);
    c.close();
  });

  it('takes a header block split over HEADERS and CONTINUATION frames as one request', async () => {
    const c = await RawClient.open();
    const b = block(request('/continued'));
    c.send(frame(HEADERS, END_STREAM, 1, b.subarray(0, 5)), frame(CONTINUATION, 0, 1, b.subarray(5, 20)), frame(CONTINUATION, END_HEADERS, 1, b.subarray(20)));
    const d = await c.next('the answer', (f) => f.type === DATA && f.id === 1);
    expect(d.payload.toString()).toBe('GET /continued 0');
    c.close();
  });

  it('ends the connection with PROTOCOL_ERROR when another frame comes between HEADERS and its CONTINUATION', async () => {
    const c = await RawClient.open();
    c.send(frame(HEADERS, END_STREAM, 1, block(request('/x')).subarray(0, 4)), frame(PING, 0, 0, Buffer.alloc(8)));
    const away = await c.next('GOAWAY', (f) => f.type === GOAWAY);
    expect(away.payload.readUInt32BE(4)).toBe(1);
    await until('the connection to close', () => c.ended);
  });

  it('refuses streams past its limit with REFUSED_STREAM and takes new ones once the open ones are answered', async () => {
    const c = await RawClient.open();
    c.send(
      frame(HEADERS, END_HEADERS | END_STREAM, 1, block(request('/hold'))),
      frame(HEADERS, END_HEADERS | END_STREAM, 3, block(request('/hold'))),
      frame(HEADERS, END_HEADERS | END_STREAM, 5, block(request('/hold'))),
    );
    const rst = await c.next('the third stream refused', (f) => f.type === RST_STREAM);
    expect([rst.id, rst.payload.readUInt32BE(0)]).toEqual([5, 7]);
    await until('two requests held', () => held.length === 2);
    for (const s of held.splice(0)) s.respondDns(Buffer.from('late'), undefined);
    await c.next('the held answers', (f) => f.type === DATA && f.id === 3);
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 7, block(request('/after'))));
    const d = await c.next('a new stream answered', (f) => f.type === DATA && f.id === 7);
    expect(d.payload.toString()).toBe('GET /after 0');
    c.close();
  });

  it('sends a long answer only as far as the stream window allows, and the rest on WINDOW_UPDATE', async () => {
    // SETTINGS_INITIAL_WINDOW_SIZE = 10.
    const c = await RawClient.open(Buffer.from('00040000000a', 'hex'));
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block(request('/big'))));
    await c.next('the first DATA', (f) => f.type === DATA);
    const dataOn1 = () => c.on(1).filter((f) => f.type === DATA);
    expect(dataOn1().map((f) => [f.payload.length, f.flags])).toEqual([[10, 0]]);
    c.send(frame(WINDOW_UPDATE, 0, 1, u32(40)));
    await until('the second DATA', () => dataOn1().length === 2);
    c.send(frame(WINDOW_UPDATE, 0, 1, u32(1000)));
    await until('the last DATA', () => dataOn1().length === 3);
    expect(dataOn1().map((f) => [f.payload.length, f.flags])).toEqual([
      [10, 0],
      [40, 0],
      [50, END_STREAM],
    ]);
    expect(Buffer.concat(dataOn1().map((f) => f.payload)).equals(Buffer.alloc(100, 0x61))).toBe(true);
    c.close();
  });

  it('reads a POST body in several DATA frames, and answers a longer one 413 and stops its upload', async () => {
    const c = await RawClient.open();
    c.send(frame(HEADERS, END_HEADERS, 1, block(request('/post', 'POST'))), frame(DATA, 0, 1, Buffer.alloc(30)), frame(DATA, END_STREAM, 1, Buffer.alloc(12)));
    const ok = await c.next('the POST answer', (f) => f.type === DATA && f.id === 1);
    expect(ok.payload.toString()).toBe('POST /post 42');
    c.send(frame(HEADERS, END_HEADERS, 3, block(request('/post', 'POST'))), frame(DATA, 0, 3, Buffer.alloc(60)), frame(DATA, 0, 3, Buffer.alloc(60)));
    const rst = await c.next('the upload stopped', (f) => f.type === RST_STREAM && f.id === 3);
    expect(rst.payload.readUInt32BE(0)).toBe(0);
    expect(statusOf(c.on(3)[0]!)).toBe('413');
    // The rest of the body, sent before the client read the reset, is ignored.
    c.send(frame(DATA, END_STREAM, 3, Buffer.alloc(10)), frame(HEADERS, END_HEADERS | END_STREAM, 5, block(request('/still'))));
    await c.next('the next request answered', (f) => f.type === DATA && f.id === 5);
    c.close();
  });

  it('resets a malformed request with PROTOCOL_ERROR and keeps the connection', async () => {
    const c = await RawClient.open();
    const bad: [string, string][][] = [
      [[':method', 'GET']], // no :path
      [...request('/x'), ['Upper', 'x']],
      [...request('/x'), ['connection', 'close']],
      [['x-first', '1'], ...request('/x')], // a pseudo-header after a regular one
      [...request('/x'), [':weird', '1']],
    ];
    bad.forEach((h, i) => c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, block(h))));
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 11, block(request('/fine'))));
    await c.next('the good request answered', (f) => f.type === DATA && f.id === 11);
    const resets = c.frames.filter((f) => f.type === RST_STREAM);
    expect(resets.map((f) => [f.id, f.payload.readUInt32BE(0)])).toEqual(bad.map((_, i) => [1 + 2 * i, 1]));
    c.close();
  });

  it('ends the connection on a wrong preface, a frame over 16 KB, an even stream id or bad HPACK', async () => {
    const wrong = await RawClient.open(Buffer.alloc(0), Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await until('a wrong preface to close the connection', () => wrong.ended);
    const cases: [Buffer, number][] = [
      [frame(DATA, 0, 1, Buffer.alloc(16385)), 6],
      [frame(HEADERS, END_HEADERS, 2, block(request('/x'))), 1],
      [frame(HEADERS, END_HEADERS, 1, Buffer.from([0x80])), 9],
    ];
    for (const [bad, code] of cases) {
      const c = await RawClient.open();
      c.send(bad);
      const away = await c.next('GOAWAY', (f) => f.type === GOAWAY);
      expect(away.payload.readUInt32BE(4)).toBe(code);
      await until('the connection to close', () => c.ended);
    }
  });

  it('on shutdown sends GOAWAY, refuses new streams, answers the open one and then closes', async () => {
    const c = await RawClient.open();
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block(request('/hold'))));
    await until('the request held', () => held.length === 1);
    connections.at(-1)!.shutdown();
    const away = await c.next('GOAWAY', (f) => f.type === GOAWAY);
    expect([away.payload.readUInt32BE(0), away.payload.readUInt32BE(4)]).toEqual([1, 0]);
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, block(request('/late'))));
    await c.next('the late stream refused', (f) => f.type === RST_STREAM && f.id === 3);
    held.shift()!.respondDns(Buffer.from('done'), undefined);
    const d = await c.next('the open request answered', (f) => f.type === DATA && f.id === 1);
    expect(d.payload.toString()).toBe('done');
    await until('the connection to close', () => c.ended);
  });

  it('when idle sends GOAWAY, and when idle again closes a connection whose request never ends', async () => {
    const c = await RawClient.open();
    // A POST whose body never comes: the stream stays open.
    c.send(frame(HEADERS, END_HEADERS, 1, block(request('/post', 'POST'))));
    await c.next('the server SETTINGS', (f) => f.type === SETTINGS && f.flags === 0);
    const conn = connections.at(-1)!;
    conn.idle();
    await c.next('GOAWAY', (f) => f.type === GOAWAY);
    expect(c.ended).toBe(false);
    conn.idle();
    await until('the connection to close', () => c.ended);
  });

  it('ends only its own connection, with INTERNAL_ERROR, when handling a request throws', async () => {
    const c = await RawClient.open();
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block(request('/throw'))));
    const away = await c.next('GOAWAY', (f) => f.type === GOAWAY);
    expect(away.payload.readUInt32BE(4)).toBe(2);
    expect(faults.splice(0)).toEqual(['a bug in the handler']);
    await until('the connection to close', () => c.ended);
    const next = await RawClient.open();
    next.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block(request('/fine'))));
    await next.next('an answer on a new connection', (f) => f.type === DATA);
    next.close();
  });

  it('never throws on arbitrary frames after the preface', async () => {
    const errors: unknown[] = [];
    const onError = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onError);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 9 }), fc.uint8Array({ maxLength: 40 })), { maxLength: 8 }),
          async (frames) => {
            const c = await RawClient.open();
            c.send(...frames.map(([type, flags, id, payload]) => frame(type, flags, id, Buffer.from(payload))));
            // Whatever the frames did, the server still reads: a PING is answered or the connection is closed.
            c.send(frame(PING, 0, 0, Buffer.from('probe!!!')));
            await until('a PING answer or the close', () => c.ended || c.frames.some((f) => f.type === PING && f.payload.toString() === 'probe!!!'));
            c.close();
          },
        ),
        { numRuns: 150 },
      );
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(errors).toEqual([]);
    expect(faults).toEqual([]);
  });
});
