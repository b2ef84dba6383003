// The dnstap sink's parts without the real tools: the protobuf encoding, decoded again by a small
// protobuf reader written here from dnstap.proto; the Frame Streams control frames, pinned
// byte-for-byte; the config block; and the sink against an in-process collector on a Unix socket.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import type { Logger } from '../../src/logging/logger.js';
import { QueryLogBuffer } from '../../src/querylog/buffer.js';
import { DNSTAP_CONTENT_TYPE, DnstapEncoder, DnstapSink, FSTRM, dnstapSinkFromConfig, dnstapVersion, encodeControlFrame, parseDnstapTcp, readControlFrame } from '../../src/querylog/dnstap-sink.js';
import type { QueryEvent } from '../../src/querylog/event.js';

const T0 = Date.parse('2026-11-01T10:00:00.123Z');

function ev(e: Partial<QueryEvent> = {}): QueryEvent {
  return {
    time: T0,
    instance: 'dns1',
    client: '10.1.2.3',
    network: 'internal',
    profile: 'staff',
    policy: null,
    list: null,
    rule: null,
    name: 'www.example.org',
    type: 'A',
    decision: 'allowed',
    wouldBlock: false,
    exception: false,
    cache: false,
    upstream: null,
    rcode: 0,
    answers: 1,
    durationMs: 2.5,
    transport: 'udp',
    ...e,
  };
}

// --- a protobuf reader: just enough of the wire format to check what the encoder wrote ---

type Value = bigint | Buffer;
type Fields = Map<number, Value[]>;

function readVarint(b: Buffer, p: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    if (p >= b.length) throw new Error('truncated varint');
    const byte = b[p++]!;
    v |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [v, p];
    shift += 7n;
  }
}

function decodeProto(b: Buffer): Fields {
  const out: Fields = new Map();
  let p = 0;
  while (p < b.length) {
    const [key, q] = readVarint(b, p);
    p = q;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    let v: Value;
    if (wire === 0) [v, p] = readVarint(b, p);
    else if (wire === 5) {
      v = BigInt(b.readUInt32LE(p));
      p += 4;
    } else if (wire === 2) {
      const [len, r] = readVarint(b, p);
      v = b.subarray(r, r + Number(len));
      if (v.length !== Number(len)) throw new Error('truncated bytes');
      p = r + Number(len);
    } else throw new Error(`wire type ${wire}`);
    out.set(field, [...(out.get(field) ?? []), v]);
  }
  return out;
}

const one = (f: Fields, n: number): Value | undefined => {
  const v = f.get(n);
  if (v && v.length !== 1) throw new Error(`field ${n} repeated`);
  return v?.[0];
};
const num = (f: Fields, n: number) => {
  const v = one(f, n);
  return v === undefined ? undefined : Number(v as bigint);
};
const bytes = (f: Fields, n: number) => one(f, n) as Buffer | undefined;

/** Data frames: 4-byte big-endian length, payload. */
function dataFrames(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < b.length;) {
    const len = b.readUInt32BE(p);
    expect(len).toBeGreaterThan(0); // a zero length would be a control frame's escape
    out.push(b.subarray(p + 4, p + 4 + len));
    p += 4 + len;
  }
  return out;
}

interface Dns {
  id: number;
  flags: number;
  counts: number[];
  name: string;
  qtype: number;
  qclass: number;
  length: number;
}

function decodeDns(b: Buffer): Dns {
  const labels: string[] = [];
  let p = 12;
  while (b[p]! !== 0) {
    labels.push(b.toString('latin1', p + 1, p + 1 + b[p]!));
    p += 1 + b[p]!;
  }
  p++;
  return {
    id: b.readUInt16BE(0),
    flags: b.readUInt16BE(2),
    counts: [b.readUInt16BE(4), b.readUInt16BE(6), b.readUInt16BE(8), b.readUInt16BE(10)],
    name: labels.join('.'),
    qtype: b.readUInt16BE(p),
    qclass: b.readUInt16BE(p + 2),
    length: p + 4,
  };
}

function decodeBatch(frames: Buffer) {
  return dataFrames(frames).map((f) => {
    const d = decodeProto(f);
    const m = decodeProto(bytes(d, 14)!);
    return { d, m };
  });
}

describe('dnstap encoding', () => {
  const enc = new DnstapEncoder('dns1', 'sluice 0.1.0');

  it('a blocked IPv4 UDP query becomes a CLIENT_RESPONSE with its question, rcode, address and times', () => {
    const [{ d, m }] = decodeBatch(enc.encode([ev({ name: 'www.tiktok.com', rcode: 3, decision: 'blocked', durationMs: 0.05 })])) as [ReturnType<typeof decodeBatch>[0]];
    expect(bytes(d, 1)!.toString()).toBe('dns1'); // identity
    expect(bytes(d, 2)!.toString()).toBe('sluice 0.1.0'); // version
    expect(num(d, 15)).toBe(1); // Dnstap.Type MESSAGE
    expect([...d.keys()].sort((a, b) => a - b)).toEqual([1, 2, 14, 15]);

    expect(num(m, 1)).toBe(6); // CLIENT_RESPONSE
    expect(num(m, 2)).toBe(1); // INET
    expect(num(m, 3)).toBe(1); // UDP
    expect([...bytes(m, 4)!]).toEqual([10, 1, 2, 3]);
    expect(num(m, 8)).toBe(Math.floor(T0 / 1000));
    expect(num(m, 9)).toBe(123_000_000);
    expect(num(m, 12)).toBe(Math.floor(T0 / 1000));
    expect(num(m, 13)).toBe(123_050_000);

    const q = decodeDns(bytes(m, 10)!);
    expect(q).toEqual({ id: 0, flags: 0x0100, counts: [1, 0, 0, 0], name: 'www.tiktok.com', qtype: 1, qclass: 1, length: bytes(m, 10)!.length });
    const r = decodeDns(bytes(m, 14)!);
    expect(r).toEqual({ id: 0, flags: 0x8000 | 0x0100 | 0x0080 | 3, counts: [1, 0, 0, 0], name: 'www.tiktok.com', qtype: 1, qclass: 1, length: bytes(m, 14)!.length });
  });

  it.each([
    ['2001:db8::53', 2, [0x20, 0x01, 0x0d, 0xb8, ...Array<number>(11).fill(0), 0x53]],
    ['::ffff:192.0.2.7', 1, [192, 0, 2, 7]],
    ['fe80::1%eth0', 2, [0xfe, 0x80, ...Array<number>(13).fill(0), 1]],
    ['0.0.0.0', 1, [0, 0, 0, 0]],
    ['255.255.255.255', 1, [255, 255, 255, 255]],
  ])('client %s → socket_family %i and its address bytes', (client, family, addr) => {
    const [{ m }] = decodeBatch(enc.encode([ev({ client })])) as [ReturnType<typeof decodeBatch>[0]];
    expect(num(m, 2)).toBe(family);
    expect([...bytes(m, 4)!]).toEqual(addr);
  });

  it.each(['p:3f9a0c1d22e4b780', '1.2.3', '1.2.3.4.5', '1.2.3.256', '1..2.3', 'not-an-address', ''])('client %j has neither address nor family; TCP is TCP', (client) => {
    const [{ m }] = decodeBatch(enc.encode([ev({ client, transport: 'tcp' })])) as [ReturnType<typeof decodeBatch>[0]];
    expect(m.has(4)).toBe(false);
    expect(m.has(2)).toBe(false);
    expect(num(m, 3)).toBe(2);
  });

  it('an event without an rcode (no answer was sent) becomes a CLIENT_QUERY without a response', () => {
    const [{ m }] = decodeBatch(enc.encode([ev({ name: '', type: 'TYPE0', rcode: null, decision: 'malformed' })])) as [ReturnType<typeof decodeBatch>[0]];
    expect(num(m, 1)).toBe(5);
    expect([12, 13, 14].some((f) => m.has(f))).toBe(false);
    expect(decodeDns(bytes(m, 10)!)).toMatchObject({ name: '', qtype: 0, length: 17 });
  });

  it.each([
    ['AAAA', 28],
    ['HTTPS', 65],
    ['TYPE99', 99],
    ['TYPE70000', 0],
    ['nonsense', 0],
  ])('type %s is written as %i', (type, qtype) => {
    const [{ m }] = decodeBatch(enc.encode([ev({ type })])) as [ReturnType<typeof decodeBatch>[0]];
    expect(decodeDns(bytes(m, 10)!).qtype).toBe(qtype);
  });

  it('response time carries across a second; rcodes above 15 keep their low bits', () => {
    const time = Date.parse('2026-11-01T10:00:00.999Z');
    const [{ m }] = decodeBatch(enc.encode([ev({ time, durationMs: 1.5, rcode: 16 })])) as [ReturnType<typeof decodeBatch>[0]];
    expect(num(m, 12)).toBe(Math.floor(time / 1000) + 1);
    expect(num(m, 13)).toBe(500_000);
    expect(decodeDns(bytes(m, 14)!).flags & 0x0f).toBe(0);
  });

  it('seconds past 32 bits and an identity over 127 bytes take multi-byte varints', () => {
    const time = Date.parse('2200-01-01T00:00:00.250Z');
    const identity = 'r'.repeat(300);
    const [{ d, m }] = decodeBatch(new DnstapEncoder(identity, 'v').encode([ev({ time })])) as [ReturnType<typeof decodeBatch>[0]];
    expect(Math.floor(time / 1000)).toBeGreaterThan(2 ** 32);
    expect(num(m, 8)).toBe(Math.floor(time / 1000));
    expect(num(m, 9)).toBe(250_000_000);
    expect(bytes(d, 1)!.toString()).toBe(identity);
  });

  it('a name without a wire form (an empty label, a label over 63) is written as the root, not broken', () => {
    for (const name of ['a..b', `${'x'.repeat(64)}.com`, 'trailing.']) {
      const [{ m }] = decodeBatch(enc.encode([ev({ name })])) as [ReturnType<typeof decodeBatch>[0]];
      expect(decodeDns(bytes(m, 10)!).name).toBe('');
    }
  });

  it('a batch is its events in order, each a frame of its own, past the first scratch size', () => {
    const names = Array.from({ length: 2000 }, (_, i) => `host-${i}.${'sub.'.repeat(i % 40)}example.org`);
    const out = decodeBatch(enc.encode(names.map((name, i) => ev({ name, client: `10.0.${i >> 8}.${i & 255}` }))));
    expect(out.map(({ m }) => decodeDns(bytes(m, 10)!).name)).toEqual(names);
    expect([...bytes(out[1999]!.m, 4)!]).toEqual([10, 0, 7, 207]);
    const again = enc.encode([ev()]);
    expect(decodeBatch(again)).toHaveLength(1); // the scratch is reused; the result is a copy
  });

  it('an earlier batch is not overwritten by the next', () => {
    const a = enc.encode([ev({ name: 'first.example' })]);
    enc.encode([ev({ name: 'second.example' })]);
    expect(decodeDns(bytes(decodeBatch(a)[0]!.m, 10)!).name).toBe('first.example');
  });
});

describe('Frame Streams control frames', () => {
  const ct = Buffer.from(DNSTAP_CONTENT_TYPE);

  it('READY and START carry the content type; STOP is escape, length 4, type 3', () => {
    const field = Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 22]), ct]);
    expect(encodeControlFrame(FSTRM.READY, [DNSTAP_CONTENT_TYPE])).toEqual(Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 4]), field]));
    expect(encodeControlFrame(FSTRM.START, [DNSTAP_CONTENT_TYPE])).toEqual(Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 2]), field]));
    expect(encodeControlFrame(FSTRM.STOP)).toEqual(Buffer.from([0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3]));
  });

  it('reads an ACCEPT with its content types, and waits for the rest of a split frame', () => {
    const accept = encodeControlFrame(FSTRM.ACCEPT, ['x:other', DNSTAP_CONTENT_TYPE]);
    expect(readControlFrame(Buffer.concat([accept, Buffer.from([9])]))).toEqual({ frame: { type: FSTRM.ACCEPT, contentTypes: ['x:other', DNSTAP_CONTENT_TYPE] }, size: accept.length });
    expect(readControlFrame(accept.subarray(0, accept.length - 1))).toEqual({ incomplete: true });
    expect(readControlFrame(accept.subarray(0, 5))).toEqual({ incomplete: true });
    expect(readControlFrame(encodeControlFrame(FSTRM.FINISH))).toEqual({ frame: { type: FSTRM.FINISH, contentTypes: [] }, size: 12 });
  });

  it.each([
    ['a data frame', Buffer.from([0, 0, 0, 5, 1, 2, 3, 4, 5])],
    ['a control frame over 512 bytes', Buffer.from([0, 0, 0, 0, 0, 0, 2, 1])],
    ['a field longer than its frame', Buffer.from([0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9])],
  ])('refuses %s', (_what, b) => {
    expect(readControlFrame(b)).toHaveProperty('error');
  });
});

describe('dnstap config', () => {
  const base = `
listeners: [{ address: 127.0.0.1, port: 5353 }]
networks: { internal: { cidrs: [10.0.0.0/8], profile: staff } }
profiles: { staff: { block: [] } }
`;
  const problems = (dnstap: string): string[] => {
    try {
      parseConfig(`${base}query_log: { dnstap: ${dnstap} }\n`, 'sluice.yaml');
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.message.split('\n');
      throw err;
    }
  };

  it('takes a socket or a tcp address, with a 4 MiB default buffer', () => {
    expect(problems('{ socket: /run/dnstap.sock }')).toEqual([]);
    expect(problems('{ tcp: "[::1]:6000", identity: resolver-a }')).toEqual([]);
    const { config } = parseConfig(`${base}query_log: { dnstap: { tcp: "collector.example:6000" } }\n`, 'sluice.yaml');
    expect(config.query_log.dnstap).toEqual({ tcp: 'collector.example:6000', buffer_bytes: 4 * 1024 * 1024 });
  });

  it.each([
    ['{ socket: /run/dnstap.sock, tcp: "127.0.0.1:6000" }', 'query_log.dnstap.socket', 'exactly one of `socket` or `tcp`'],
    ['{ identity: x }', 'query_log.dnstap.socket', 'exactly one of `socket` or `tcp`'],
    ['{ tcp: "127.0.0.1" }', 'query_log.dnstap.tcp', 'host:port'],
    ['{ tcp: "127.0.0.1:70000" }', 'query_log.dnstap.tcp', 'host:port'],
    ['{ socket: /s, buffer_bytes: 10 }', 'query_log.dnstap.buffer_bytes', ''],
    ['{ socket: /s, sokcet: /t }', 'query_log.dnstap', 'sokcet'],
  ])('%s is refused at %s', (dnstap, path, message) => {
    const p = problems(dnstap);
    expect(
      p.some((l) => l.includes(path) && l.includes(message)),
      p.join('\n'),
    ).toBe(true);
  });

  it.each([
    ['127.0.0.1:6000', { kind: 'tcp', host: '127.0.0.1', port: 6000 }],
    ['[::1]:6000', { kind: 'tcp', host: '::1', port: 6000 }],
    ['vector:9000', { kind: 'tcp', host: 'vector', port: 9000 }],
    ['::1:6000', undefined],
    ['host:0', undefined],
    ['host', undefined],
  ])('tcp %s → %j', (s, target) => {
    expect(parseDnstapTcp(s)).toEqual(target);
  });
});

// --- an in-process collector: the reader side of bidirectional Frame Streams ---

interface Collector {
  server: Server;
  path: string;
  /** Control frame types received, in order, over all connections. */
  control: number[];
  /** Data frame payloads received. */
  data: Buffer[];
  connections: number;
  sockets: Socket[];
  /** Resolves when a frame of `type` arrived (or data frames reach `n`). */
  waitControl(type: number): Promise<void>;
  waitData(n: number): Promise<void>;
  waitConnections(n: number): Promise<void>;
}

function startCollector(dir: string, opts: { accept?: string[]; silent?: boolean; noRead?: boolean; hangUp?: boolean } = {}): Promise<Collector> {
  const path = join(dir, `c${Math.random().toString(36).slice(2, 8)}.sock`);
  const waiters: (() => void)[] = [];
  const notify = () => {
    for (const w of waiters.splice(0)) w();
  };
  const c: Collector = {
    server: createServer((s) => {
      c.connections++;
      c.sockets.push(s);
      notify();
      if (opts.hangUp) return void s.destroy();
      if (opts.silent) return;
      let buf = Buffer.alloc(0);
      s.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 4) {
          const len = buf.readUInt32BE(0);
          if (len === 0) {
            if (buf.length < 8) break;
            const clen = buf.readUInt32BE(4);
            if (buf.length < 8 + clen) break;
            const type = buf.readUInt32BE(8);
            buf = buf.subarray(8 + clen);
            c.control.push(type);
            if (type === FSTRM.READY) {
              s.write(encodeControlFrame(FSTRM.ACCEPT, opts.accept ?? [DNSTAP_CONTENT_TYPE]));
              if (opts.noRead) s.pause();
            }
            if (type === FSTRM.STOP) s.write(encodeControlFrame(FSTRM.FINISH));
          } else {
            if (buf.length < 4 + len) break;
            c.data.push(buf.subarray(4, 4 + len));
            buf = buf.subarray(4 + len);
          }
        }
        notify();
      });
      s.on('error', () => {});
    }),
    path,
    control: [],
    data: [],
    connections: 0,
    sockets: [],
    waitControl: (type) =>
      new Promise((resolve) => {
        const check = () => (c.control.includes(type) ? resolve() : waiters.push(check));
        check();
      }),
    waitData: (n) =>
      new Promise((resolve) => {
        const check = () => (c.data.length >= n ? resolve() : waiters.push(check));
        check();
      }),
    waitConnections: (n) =>
      new Promise((resolve) => {
        const check = () => (c.connections >= n ? resolve() : waiters.push(check));
        check();
      }),
  };
  return new Promise((resolve) => c.server.listen(path, () => resolve(c)));
}

/** A logger whose lines the test can read. */
function capturingLogger(): { log: Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      cb();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

describe('DnstapSink', () => {
  const dirs: string[] = [];
  const cleanup: (() => Promise<void> | void)[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'sluice-dnstap-'));
    dirs.push(d);
    return d;
  };
  afterEach(async () => {
    for (const f of cleanup.splice(0)) await f();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const sink = (path: string, extra: Partial<ConstructorParameters<typeof DnstapSink>[0]> = {}) => {
    const s = new DnstapSink({ target: { kind: 'unix', path }, identity: 'dns1', version: 'sluice test', log: capturingLogger().log, backoffMinMs: 20, backoffMaxMs: 100, ...extra });
    cleanup.push(() => s.close());
    return s;
  };
  const serve = async (opts?: Parameters<typeof startCollector>[1]) => {
    const c = await startCollector(tempDir(), opts);
    cleanup.push(
      () =>
        new Promise<void>((r) => {
          for (const s of c.sockets) s.destroy();
          c.server.close(() => r());
        }),
    );
    return c;
  };

  it('says READY, waits for ACCEPT, says START, sends data frames, and ends with STOP after which FINISH came', async () => {
    const c = await serve();
    const s = sink(c.path);
    expect(s.write([ev()])).toBe(false); // before ACCEPT nothing is sent
    await s.whenConnected();
    expect(s.write([ev({ name: 'a.example' }), ev({ name: 'b.example' })])).toBe(true);
    await c.waitData(2);
    await s.close();
    expect(c.control).toEqual([FSTRM.READY, FSTRM.START, FSTRM.STOP]);
    expect(c.data.map((d) => decodeDns(bytes(decodeProto(bytes(decodeProto(d), 14)!), 10)!).name)).toEqual(['a.example', 'b.example']);
    expect(s.connected).toBe(false);
    expect(s.write([ev()])).toBe(false);
    expect({ sent: s.sent, dropped: s.dropped }).toEqual({ sent: 2, dropped: 2 });
  });

  it('refuses batches (counted by the buffer) and logs once per interval, not per batch, while no collector listens', () => {
    const { log, lines } = capturingLogger();
    let now = 1_000_000;
    const s = sink(join(tempDir(), 'nobody.sock'), { log, now: () => now });
    const buffer = new QueryLogBuffer(1000, [s]);
    for (let i = 0; i < 50; i++) {
      buffer.push(ev());
      buffer.flush();
    }
    expect(buffer.sinkDropped.get('dnstap')).toBe(50);
    expect(lines.filter((l) => l.msg.includes('dropping'))).toHaveLength(1);
    now += 60_000;
    expect(s.write([ev()])).toBe(false);
    expect(lines.filter((l) => l.msg.includes('dropping'))).toHaveLength(2);
  });

  it('reconnects with back-off when the collector comes back, and sends again', async () => {
    const c = await serve();
    const s = sink(c.path);
    await s.whenConnected();
    for (const sock of c.sockets) sock.destroy(); // the collector restarts
    await s.whenConnected(2);
    expect(c.connections).toBe(2);
    expect(s.write([ev({ name: 'after.example' })])).toBe(true);
    await c.waitData(1);
    expect(c.control.filter((t) => t === FSTRM.READY)).toHaveLength(2);
  });

  it('logs failing connections once per interval, however often it retries', async () => {
    const { log, lines } = capturingLogger();
    const c = await serve({ hangUp: true });
    sink(c.path, { log, backoffMinMs: 1, backoffMaxMs: 2, now: () => 5_000_000 });
    await c.waitConnections(10);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual(['dnstap: cannot reach the collector; retrying']);
  });

  it('gives up on a listener that never says ACCEPT, and tries again', async () => {
    const c = await serve({ silent: true });
    const s = sink(c.path, { handshakeTimeoutMs: 50 });
    await c.waitConnections(2);
    expect(s.connected).toBe(false);
    expect(s.write([ev()])).toBe(false);
  });

  it('does not start a stream with a collector that accepts another content type', async () => {
    const c = await serve({ accept: ['protobuf:other'] });
    const s = sink(c.path, { backoffMinMs: 10_000 });
    await c.waitControl(FSTRM.READY);
    await new Promise<void>((r) => c.sockets[0]!.once('close', () => r()));
    expect(c.control).toEqual([FSTRM.READY]);
    expect(s.connected).toBe(false);
  });

  it('refuses batches once buffer_bytes are queued for a collector that stopped reading', async () => {
    const c = await serve({ noRead: true });
    const s = sink(c.path, { bufferBytes: 256 * 1024, finishTimeoutMs: 50 });
    await s.whenConnected();
    const batch = Array.from({ length: 1000 }, (_, i) => ev({ name: `n${i}.example.org` }));
    let accepted = 0;
    for (let i = 0; i < 200 && s.write(batch); i++) accepted++;
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(200);
    expect(s.dropped).toBe(1000);
    await s.close(); // FINISH never comes: close returns after finishTimeoutMs
  });
});

describe('dnstapSinkFromConfig', () => {
  it('is undefined without query_log.dnstap, and names itself "sluice <version>"', () => {
    const { config } = parseConfig('listeners: [{ address: 127.0.0.1 }]\nnetworks: {}\nprofiles: {}\n', 'sluice.yaml');
    expect(dnstapSinkFromConfig(config, 'dns1', capturingLogger().log)).toBeUndefined();
    expect(dnstapVersion()).toMatch(/^sluice \d+\.\d+\.\d+/);
  });
});
