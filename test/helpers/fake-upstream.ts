/**
 * A controllable upstream DNS server for end-to-end tests. It listens on
 * 127.0.0.1, with UDP and TCP on the same ephemeral port, records every query
 * it receives, and answers from a small built-in zone unless a test installs a
 * handler or switches the mode.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { CLASS_IN, RCODE, TYPE, decodeResponse, encodeName, encodeOpt, parseIPv4, parseIPv6, readName, type EdnsOption, type SoaData, type Transport } from './dns-client.js';

export const FAKE_UPSTREAM_HOST = '127.0.0.1';
/** UDP payload size the fake advertises in its own OPT RR. */
export const FAKE_EDNS_UDP_SIZE = 1232;
export const DEFAULT_A = '192.0.2.1';
export const DEFAULT_AAAA = '2001:db8::1';
export const DEFAULT_TTL = 300;
export const DEFAULT_NEGATIVE_TTL = 60;

/**
 * Record data in the decoder's readable form: A dotted, AAAA text, CNAME/NS/PTR
 * name, SOA object, TXT string[] (a single string is also accepted; strings
 * longer than 255 bytes are split into several character-strings). Other types
 * take a Buffer or a hex string.
 */
export type RrData = string | string[] | SoaData | Buffer;

export interface Rr {
  name: string;
  type: number;
  ttl: number;
  data: RrData;
  /** Default IN. */
  class?: number;
}

export interface FakeAnswer {
  rcode?: number;
  answers?: Rr[];
  authorities?: Rr[];
  additionals?: Rr[];
  /** Options for the reply's OPT RR (only sent if the query had EDNS). */
  ednsOptions?: EdnsOption[];
  /** Set the AA bit. Default false (the fake poses as a recursive resolver). */
  aa?: boolean;
  /** Set the AD bit (the fake poses as a validating resolver). */
  ad?: boolean;
  /**
   * UDP only. true: reply with header + question and TC set. false: never
   * truncate, even if oversized. undefined: truncate automatically when the
   * reply exceeds the client's limit (512, or its EDNS UDP size), like a real
   * server. Ignored over TCP, which always gets the full answer.
   */
  tc?: boolean;
  /** Wait before replying (per query; TCP replies may then arrive out of order). */
  delayMs?: number;
  /** Reply with this ID instead of the query's (spoof/mismatch tests). */
  idOverride?: number;
  /** Reply with this question (class IN) instead of echoing the query's bytes. */
  questionOverride?: { name: string; type: number };
  /** Send these bytes verbatim (length-prefixed over TCP); all else ignored except delayMs. */
  raw?: Buffer;
}

export interface FakeQuery {
  /** Question name as received (case preserved, no trailing dot). */
  name: string;
  type: number;
  qclass: number;
  id: number;
  transport: Transport;
  /** Client source IP, e.g. "127.0.0.2". */
  from: string;
  /** Client source port. */
  fromPort: number;
  opcode: number;
  rd: boolean;
  cd: boolean;
  ad: boolean;
  /** Whether the query carried an OPT RR. */
  edns: boolean;
  /** DNSSEC OK bit (false without EDNS). */
  do: boolean;
  /** Advertised EDNS UDP size; absent without EDNS. */
  udpSize?: number;
  ednsOptions?: EdnsOption[];
  /** The query exactly as received (without the TCP length prefix). */
  raw: Buffer;
}

export type FakeHandlerResult = FakeAnswer | 'drop' | undefined;
export type FakeHandler = (q: FakeQuery) => FakeHandlerResult | Promise<FakeHandlerResult>;

/**
 * answer: handler, then default behaviour. drop: ignore everything.
 * servfail/refused: reply with that rcode. Queries are recorded in every mode.
 */
export type FakeMode = 'answer' | 'drop' | 'servfail' | 'refused';

export interface FakeUpstream {
  readonly host: string;
  readonly port: number;
  /** "127.0.0.1:PORT" */
  readonly address: string;
  /** Every parseable query received, in arrival order. */
  readonly queries: FakeQuery[];
  /** Exceptions thrown by the handler (the query was answered SERVFAIL). */
  readonly handlerErrors: unknown[];
  readonly mode: FakeMode;
  setHandler(fn: FakeHandler | undefined): void;
  setMode(mode: FakeMode): void;
  clearQueries(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Parsing queries
// ---------------------------------------------------------------------------

export interface ParsedQuery {
  fields: Omit<FakeQuery, 'transport' | 'from' | 'fromPort'>;
  /** Raw question section bytes, echoed verbatim in replies. */
  questionBytes: Buffer;
}

/** Parse the parts of a query the fake needs. Throws on malformed input. */
export function parseQuery(raw: Buffer): ParsedQuery {
  const msg = decodeResponse(raw); // validates the whole message, incl. OPT
  const question = msg.questions[0];
  if (msg.questions.length !== 1 || question === undefined) {
    throw new Error(`expected exactly one question, got ${msg.questions.length}`);
  }
  const { next } = readName(raw, 12);
  const fields: ParsedQuery['fields'] = {
    name: question.name,
    type: question.type,
    qclass: question.class,
    id: msg.id,
    opcode: msg.flags.opcode,
    rd: msg.flags.rd,
    cd: msg.flags.cd,
    ad: msg.flags.ad,
    edns: msg.edns !== undefined,
    do: msg.edns?.do ?? false,
    raw,
  };
  if (msg.edns) {
    fields.udpSize = msg.edns.udpSize;
    fields.ednsOptions = msg.edns.options;
  }
  return { fields, questionBytes: Buffer.from(raw.subarray(12, next + 4)) };
}

// ---------------------------------------------------------------------------
// Encoding replies
// ---------------------------------------------------------------------------

function isSoa(data: RrData): data is SoaData {
  return typeof data === 'object' && !Array.isArray(data) && !Buffer.isBuffer(data);
}

function expectString(rr: Rr): string {
  if (typeof rr.data !== 'string') throw new Error(`type ${rr.type} record ${rr.name} needs string data`);
  return rr.data;
}

export function encodeRdata(rr: Rr): Buffer {
  const { type, data } = rr;
  switch (type) {
    case TYPE.A:
      return parseIPv4(expectString(rr));
    case TYPE.AAAA:
      return parseIPv6(expectString(rr));
    case TYPE.CNAME:
    case TYPE.NS:
    case TYPE.PTR:
      return encodeName(expectString(rr));
    case TYPE.SOA: {
      if (!isSoa(data)) throw new Error(`SOA record ${rr.name} needs an SOA object`);
      const nums = Buffer.alloc(20);
      [data.serial, data.refresh, data.retry, data.expire, data.minimum].forEach((n, i) => nums.writeUInt32BE(n >>> 0, i * 4));
      return Buffer.concat([encodeName(data.mname), encodeName(data.rname), nums]);
    }
    case TYPE.TXT: {
      const strings = typeof data === 'string' ? [data] : data;
      if (!Array.isArray(strings)) throw new Error(`TXT record ${rr.name} needs string[] data`);
      const parts: Buffer[] = [];
      for (const s of strings) {
        const bytes = Buffer.from(s, 'utf8');
        // A character-string holds at most 255 bytes; split longer ones so
        // tests can build big answers from a single long string.
        for (let p = 0; p === 0 || p < bytes.length; p += 255) {
          const chunk = bytes.subarray(p, p + 255);
          parts.push(Buffer.from([chunk.length]), chunk);
        }
      }
      return Buffer.concat(parts);
    }
    default:
      if (Buffer.isBuffer(data)) return data;
      if (typeof data === 'string' && /^(?:[0-9a-f]{2})*$/i.test(data)) return Buffer.from(data, 'hex');
      throw new Error(`type ${type} record ${rr.name} needs Buffer or hex string data`);
  }
}

/** Encode one resource record, owner name uncompressed. */
export function encodeRr(rr: Rr): Buffer {
  const rdata = encodeRdata(rr);
  if (rdata.length > 0xffff) throw new Error(`RDATA of ${rr.name} exceeds 65535 bytes`);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(rr.type, 0);
  fixed.writeUInt16BE(rr.class ?? CLASS_IN, 2);
  fixed.writeUInt32BE(rr.ttl >>> 0, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([encodeName(rr.name), fixed, rdata]);
}

/** SOA used for negative answers: owner is the last two labels of `name`. */
export function defaultSoa(name: string): Rr {
  const labels = name.split('.').filter((l) => l !== '');
  const zone = labels.length <= 2 ? labels.join('.') || '.' : labels.slice(-2).join('.');
  const prefix = zone === '.' ? '' : `.${zone}`;
  return {
    name: zone,
    type: TYPE.SOA,
    ttl: DEFAULT_NEGATIVE_TTL,
    data: {
      mname: `ns1${prefix}`,
      rname: `hostmaster${prefix}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: DEFAULT_NEGATIVE_TTL,
    },
  };
}

/** The built-in zone: nx* → NXDOMAIN, nodata* → NODATA, A/AAAA fixed, else empty. */
export function defaultAnswer(q: Pick<FakeQuery, 'name' | 'type'>): FakeAnswer {
  const lower = q.name.toLowerCase();
  if (lower.startsWith('nx')) return { rcode: RCODE.NXDOMAIN, authorities: [defaultSoa(q.name)] };
  if (lower.startsWith('nodata')) return { authorities: [defaultSoa(q.name)] };
  if (q.type === TYPE.A) return { answers: [{ name: q.name, type: TYPE.A, ttl: DEFAULT_TTL, data: DEFAULT_A }] };
  if (q.type === TYPE.AAAA) {
    return { answers: [{ name: q.name, type: TYPE.AAAA, ttl: DEFAULT_TTL, data: DEFAULT_AAAA }] };
  }
  return {};
}

function header(q: ParsedQuery['fields'], a: FakeAnswer, tc: boolean, counts: [number, number, number, number]): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE((a.idOverride ?? q.id) & 0xffff, 0);
  h.writeUInt8(0x80 | ((q.opcode & 0x0f) << 3) | (a.aa ? 0x04 : 0) | (tc ? 0x02 : 0) | (q.rd ? 0x01 : 0), 2);
  h.writeUInt8(0x80 | (a.ad ? 0x20 : 0) | (q.cd ? 0x10 : 0) | ((a.rcode ?? 0) & 0x0f), 3);
  counts.forEach((c, i) => h.writeUInt16BE(c, 4 + i * 2));
  return h;
}

/**
 * Build the reply to `query` (raw bytes or already parsed). Without `answer`
 * the built-in zone answers. `raw` and `delayMs` are not applied here.
 */
export function encodeResponse(query: Buffer | ParsedQuery, answer?: FakeAnswer, opts: { transport?: Transport } = {}): Buffer {
  const parsed = Buffer.isBuffer(query) ? parseQuery(query) : query;
  const q = parsed.fields;
  const a = answer ?? defaultAnswer(q);
  const transport = opts.transport ?? 'udp';

  let question = parsed.questionBytes;
  if (a.questionOverride) {
    const tail = Buffer.alloc(4);
    tail.writeUInt16BE(a.questionOverride.type, 0);
    tail.writeUInt16BE(CLASS_IN, 2);
    question = Buffer.concat([encodeName(a.questionOverride.name), tail]);
  }

  const answers = (a.answers ?? []).map(encodeRr);
  const authorities = (a.authorities ?? []).map(encodeRr);
  const additionals = (a.additionals ?? []).map(encodeRr);
  if (q.edns) {
    additionals.push(
      encodeOpt({
        udpSize: FAKE_EDNS_UDP_SIZE,
        do: q.do,
        extendedRcode: (a.rcode ?? 0) >> 4,
        options: a.ednsOptions ?? [],
      }),
    );
  }
  const full = Buffer.concat([header(q, a, false, [1, answers.length, authorities.length, additionals.length]), question, ...answers, ...authorities, ...additionals]);

  if (transport === 'udp') {
    const limit = q.edns ? Math.max(512, q.udpSize ?? 512) : 512;
    if (a.tc === true || (a.tc === undefined && full.length > limit)) {
      // Deliberately minimal (no OPT): tests want a bare TC reply.
      return Buffer.concat([header(q, a, true, [1, 0, 0, 0]), question]);
    }
  } else if (full.length > 0xffff) {
    throw new Error(`reply of ${full.length} bytes does not fit TCP framing`);
  }
  return full;
}

/** Header-only FORMERR for queries too broken to parse; undefined if hopeless. */
function formerr(raw: Buffer): Buffer | undefined {
  if (raw.length < 12) return undefined;
  const h = Buffer.alloc(12);
  raw.copy(h, 0, 0, 2);
  h.writeUInt8(0x80 | (raw.readUInt8(2) & 0x79), 2); // QR + opcode + RD from the query
  h.writeUInt8(0x80 | RCODE.FORMERR, 3);
  return h;
}

function frame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length, 0);
  return Buffer.concat([prefix, message]);
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

class FakeUpstreamServer implements FakeUpstream {
  readonly host = FAKE_UPSTREAM_HOST;
  readonly queries: FakeQuery[] = [];
  readonly handlerErrors: unknown[] = [];
  mode: FakeMode = 'answer';
  private handler: FakeHandler | undefined;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sockets = new Set<net.Socket>();

  constructor(
    readonly port: number,
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
  ) {
    udp.on('message', (msg, rinfo) => {
      void this.handle(msg, 'udp', rinfo.address, rinfo.port).then((reply) => {
        if (reply && !this.closed) udp.send(reply, rinfo.port, rinfo.address, () => undefined);
      });
    });
    // Oversized replies (tc: false) can fail with EMSGSIZE; nothing to do.
    udp.on('error', () => undefined);
    tcp.on('connection', (socket) => this.serveTcp(socket));
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  setHandler(fn: FakeHandler | undefined): void {
    this.handler = fn;
  }

  setMode(mode: FakeMode): void {
    this.mode = mode;
  }

  clearQueries(): void {
    this.queries.length = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Pending delayed replies are abandoned: their promises simply never settle.
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    await Promise.all([new Promise<void>((res) => this.udp.close(() => res())), new Promise<void>((res) => this.tcp.close(() => res()))]);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((res) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        res();
      }, ms);
      this.timers.add(t);
    });
  }

  private serveTcp(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined); // client resets are expected in tests
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = Buffer.from(pending.subarray(2, 2 + len));
        pending = pending.subarray(2 + len);
        // Handled concurrently so a delayed query does not block later ones.
        void this.handle(msg, 'tcp', socket.remoteAddress ?? '', socket.remotePort ?? 0).then((reply) => {
          if (reply && !this.closed && !socket.destroyed) socket.write(frame(reply));
        });
      }
    });
  }

  private async handle(raw: Buffer, transport: Transport, from: string, fromPort: number): Promise<Buffer | undefined> {
    let parsed: ParsedQuery;
    try {
      parsed = parseQuery(raw);
    } catch {
      return this.mode === 'drop' ? undefined : formerr(raw);
    }
    const query: FakeQuery = { ...parsed.fields, transport, from, fromPort };
    this.queries.push(query);

    switch (this.mode) {
      case 'drop':
        return undefined;
      case 'servfail':
        return encodeResponse(parsed, { rcode: RCODE.SERVFAIL }, { transport });
      case 'refused':
        return encodeResponse(parsed, { rcode: RCODE.REFUSED }, { transport });
      case 'answer':
        break;
    }

    let result: FakeHandlerResult;
    try {
      result = this.handler ? await this.handler(query) : undefined;
    } catch (err) {
      this.handlerErrors.push(err);
      return encodeResponse(parsed, { rcode: RCODE.SERVFAIL }, { transport });
    }
    if (result === 'drop') return undefined;
    const answer = result ?? defaultAnswer(query);
    if (answer.delayMs !== undefined && answer.delayMs > 0) await this.sleep(answer.delayMs);
    if (answer.raw) return answer.raw;
    try {
      return encodeResponse(parsed, answer, { transport });
    } catch (err) {
      // A bad FakeAnswer (e.g. malformed address) is a test bug: surface it.
      this.handlerErrors.push(err);
      return encodeResponse(parsed, { rcode: RCODE.SERVFAIL }, { transport });
    }
  }
}

function bindUdp(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', reject);
    socket.bind(port, FAKE_UPSTREAM_HOST, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

function listenTcp(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, FAKE_UPSTREAM_HOST, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * Start a fake upstream. With no port, UDP takes an ephemeral port and TCP
 * tries the same number; if that TCP port is taken we retry with a new one.
 */
export async function startFakeUpstream(opts: { port?: number } = {}): Promise<FakeUpstream> {
  const requested = opts.port ?? 0;
  for (let attempt = 0; ; attempt++) {
    const udp = await bindUdp(requested);
    const port = udp.address().port;
    try {
      const tcp = await listenTcp(port);
      return new FakeUpstreamServer(port, udp, tcp);
    } catch (err) {
      udp.close();
      const code = (err as NodeJS.ErrnoException).code;
      if (requested !== 0 || code !== 'EADDRINUSE' || attempt >= 20) throw err;
    }
  }
}
