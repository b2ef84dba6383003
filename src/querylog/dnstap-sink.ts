// The query log as dnstap (https://dnstap.info) over Frame Streams, to a Unix socket or a TCP
// collector: what Unbound, BIND and CoreDNS send, so go-dnscollector, Vector or fstrm_capture take
// sluice's log without a parser of their own.
//
// Frame Streams (farsightsec/fstrm, the bidirectional mode): the writer sends READY naming the
// content type, the collector answers ACCEPT, the writer sends START and then data frames (a 4-byte
// big-endian length and one Dnstap protobuf each); at the end STOP, and the collector answers
// FINISH. Dnstap is lossy by design: while the collector is away or backed up, batches are refused
// (the buffer counts them) and the sink reconnects with a back-off.
//
// What is synthesised: events carry no wire bytes, so each becomes one CLIENT_RESPONSE message
// holding both a query_message (id 0, RD, the question) and a response_message (QR RD RA, the
// event's rcode, the question), with the query time and the response time (time + durationMs). One
// message instead of the CLIENT_QUERY + CLIENT_RESPONSE pair halves the bytes and the collector's
// work at 100k events/s, and a response that carries its query time is what pipelines pair up
// anyway. An event without an rcode (a malformed query that got no answer) becomes a CLIENT_QUERY.
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Config } from '../config/schema.js';
import { TYPE } from '../dns/codes.js';
import type { Logger } from '../logging/logger.js';
import type { QueryLogSink } from './buffer.js';
import type { QueryEvent } from './event.js';

export const DNSTAP_CONTENT_TYPE = 'protobuf:dnstap.Dnstap';

/** Frame Streams control frame types. */
export const FSTRM = { ACCEPT: 1, START: 2, STOP: 3, READY: 4, FINISH: 5 } as const;
const FSTRM_FIELD_CONTENT_TYPE = 1;
/** libfstrm refuses longer control frames (FSTRM_CONTROL_FRAME_LENGTH_MAX). */
const FSTRM_CONTROL_MAX = 512;

/** dnstap.proto enums. */
export const DNSTAP = {
  TYPE_MESSAGE: 1,
  CLIENT_QUERY: 5,
  CLIENT_RESPONSE: 6,
  INET: 1,
  INET6: 2,
  UDP: 1,
  TCP: 2,
  DOT: 3,
  DOH: 4,
} as const;

export type DnstapTarget = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** "host:port" or "[v6]:port" → a TCP target; undefined when it is neither. */
export function parseDnstapTcp(s: string): DnstapTarget | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { kind: 'tcp', host: m[1] ?? m[2]!, port };
}

function describeTarget(t: DnstapTarget): string {
  return t.kind === 'unix' ? `unix:${t.path}` : `tcp:${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}

// ---------------------------------------------------------------------------------------------
// Frame Streams control frames

/** A control frame: the escape (a zero length), its length, its type, then CONTENT_TYPE fields. */
export function encodeControlFrame(type: number, contentTypes: readonly string[] = []): Buffer {
  const fields = contentTypes.map((c) => Buffer.from(c, 'utf8'));
  const len = 4 + fields.reduce((n, f) => n + 8 + f.length, 0);
  const b = Buffer.alloc(8 + len);
  b.writeUInt32BE(0, 0);
  b.writeUInt32BE(len, 4);
  b.writeUInt32BE(type, 8);
  let p = 12;
  for (const f of fields) {
    b.writeUInt32BE(FSTRM_FIELD_CONTENT_TYPE, p);
    b.writeUInt32BE(f.length, p + 4);
    f.copy(b, p + 8);
    p += 8 + f.length;
  }
  return b;
}

export interface ControlFrame {
  type: number;
  contentTypes: string[];
}

export type ControlRead = { frame: ControlFrame; size: number } | { incomplete: true } | { error: string };

/** The control frame at the start of `b` (what a collector sends: ACCEPT, FINISH). Never throws. */
export function readControlFrame(b: Buffer): ControlRead {
  if (b.length < 8) return { incomplete: true };
  if (b.readUInt32BE(0) !== 0) return { error: 'a data frame from the collector' };
  const len = b.readUInt32BE(4);
  if (len < 4 || len > FSTRM_CONTROL_MAX) return { error: `control frame of ${len} bytes` };
  if (b.length < 8 + len) return { incomplete: true };
  const end = 8 + len;
  const frame: ControlFrame = { type: b.readUInt32BE(8), contentTypes: [] };
  let p = 12;
  while (p < end) {
    if (p + 8 > end) return { error: 'truncated control field' };
    const fieldType = b.readUInt32BE(p);
    const fieldLen = b.readUInt32BE(p + 4);
    if (p + 8 + fieldLen > end) return { error: 'truncated control field' };
    if (fieldType === FSTRM_FIELD_CONTENT_TYPE) frame.contentTypes.push(b.toString('utf8', p + 8, p + 8 + fieldLen));
    p += 8 + fieldLen;
  }
  return { frame, size: end };
}

// ---------------------------------------------------------------------------------------------
// Dnstap protobuf
//
// Encoded by hand: the schema is small and fixed (a dozen scalar and bytes fields of dnstap.proto,
// never repeated, one nested message), so exact sizes can be computed up front and every event is
// written straight into one scratch buffer per batch — no per-event objects, which a generated
// protobuf library would build, and no dependency for ~100 lines.

// Field keys: (field number << 3) | wire type (0 varint, 2 length-delimited, 5 fixed32).
const K_IDENTITY = (1 << 3) | 2;
const K_VERSION = (2 << 3) | 2;
const K_MESSAGE = (14 << 3) | 2;
const K_TYPE = (15 << 3) | 0;
const M_TYPE = (1 << 3) | 0;
const M_SOCKET_FAMILY = (2 << 3) | 0;
const M_SOCKET_PROTOCOL = (3 << 3) | 0;
const M_QUERY_ADDRESS = (4 << 3) | 2;
const M_QUERY_TIME_SEC = (8 << 3) | 0;
const M_QUERY_TIME_NSEC = (9 << 3) | 5;
const M_QUERY_MESSAGE = (10 << 3) | 2;
const M_RESPONSE_TIME_SEC = (12 << 3) | 0;
const M_RESPONSE_TIME_NSEC = (13 << 3) | 5;
const M_RESPONSE_MESSAGE = (14 << 3) | 2;

// Seconds since the epoch fit 32 bits until 2106; past 32 bits, division instead of shifts.
function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 5;
  for (v = Math.floor(v / 0x800000000); v >= 1; v = Math.floor(v / 0x80)) n++;
  return n;
}

function writeVarint(b: Buffer, p: number, v: number): number {
  while (v > 0xffffffff) {
    b[p++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  while (v >= 0x80) {
    b[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[p++] = v;
  return p;
}

/** Length of `name` (lower case, no trailing dot, "" for the root) in wire format; -1 if it has no valid one. */
function nameWireLength(name: string): number {
  if (name === '') return 1;
  let label = 0;
  for (let i = 0; i < name.length; i++) {
    if (name.charCodeAt(i) === 0x2e) {
      if (label === 0) return -1;
      label = 0;
    } else if (++label > 63) return -1;
  }
  if (label === 0) return -1;
  const len = name.length + 2;
  return len > 255 ? -1 : len;
}

// Names in events come from readQuery, which decodes label bytes as latin1: write them back so.
function writeName(b: Buffer, p: number, name: string): number {
  let lenAt = p++;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x2e) {
      b[lenAt] = p - lenAt - 1;
      lenAt = p++;
    } else {
      b[p++] = c & 0xff;
    }
  }
  if (name !== '') {
    b[lenAt] = p - lenAt - 1;
    b[p++] = 0;
  } else {
    b[lenAt] = 0;
  }
  return p;
}

const QUERY_FLAGS = 0x0100; // RD
const RESPONSE_FLAGS = 0x8000 | 0x0100 | 0x0080; // QR RD RA: sluice answers as a recursive resolver

// A header (id 0: the event does not keep the client's id) and one question, byte by byte: for
// these few bytes that is faster than Buffer's write methods. ANCOUNT stays 0: the event counts
// the answers but keeps no records, and a count without its records would make the message
// unparseable (dnstap-ldns, dnscollector). Rcodes above 15 (BADVERS) keep only their low 4 bits:
// the rest would live in an OPT record.
function writeDns(b: Buffer, p: number, flags: number, name: string, qtype: number): number {
  b[p] = 0;
  b[p + 1] = 0;
  b[p + 2] = flags >>> 8;
  b[p + 3] = flags & 0xff;
  b[p + 4] = 0;
  b[p + 5] = 1; // QDCOUNT
  for (let i = 6; i < 12; i++) b[p + i] = 0;
  p = writeName(b, p + 12, name);
  b[p] = qtype >>> 8;
  b[p + 1] = qtype & 0xff;
  b[p + 2] = 0;
  b[p + 3] = 1; // class IN
  return p + 4;
}

function writeFixed32(b: Buffer, p: number, v: number): number {
  b[p] = v & 0xff;
  b[p + 1] = (v >>> 8) & 0xff;
  b[p + 2] = (v >>> 16) & 0xff;
  b[p + 3] = v >>> 24;
  return p + 4;
}

function writeBytes(b: Buffer, p: number, src: Buffer): number {
  for (let i = 0; i < src.length; i++) b[p + i] = src[i]!;
  return p + src.length;
}

const TYPE_NUMBERS = new Map<string, number>(Object.entries(TYPE));

/** "AAAA" → 28, "TYPE65" → 65 (typeName's fallback), anything else → 0. */
function typeNumber(t: string): number {
  const known = TYPE_NUMBERS.get(t);
  if (known !== undefined) return known;
  const m = /^TYPE(\d{1,5})$/.exec(t);
  const n = m ? Number(m[1]) : 0;
  return n <= 0xffff ? n : 0;
}

/** A length-delimited field on its own (for the per-sink prefix, not the per-event path). */
function fieldBytes(key: number, value: Buffer): Buffer {
  const b = Buffer.alloc(1 + varintSize(value.length) + value.length);
  b[0] = key;
  value.copy(b, writeVarint(b, 1, value.length));
  return b;
}

const ADDRESS_CACHE_MAX = 16384;

/** Batches of events → Frame Streams data frames of Dnstap messages, in one buffer per batch. */
export class DnstapEncoder {
  /** identity and version: the same in every frame, so encoded once. */
  private readonly prefix: Buffer;
  private scratch = Buffer.allocUnsafe(64 * 1024);
  // Clients repeat: parse each address once. Bounded by clearing; a miss only costs a parse.
  private readonly addresses = new Map<string, Buffer | null>();
  private readonly types = new Map<string, number>();

  constructor(identity: string, version: string) {
    this.prefix = Buffer.concat([fieldBytes(K_IDENTITY, Buffer.from(identity, 'utf8')), fieldBytes(K_VERSION, Buffer.from(version, 'utf8'))]);
  }

  /** The frames of `batch`, concatenated, in a buffer of their own (it outlives the next call). */
  encode(batch: readonly QueryEvent[]): Buffer {
    let p = 0;
    for (const e of batch) p = this.encodeEvent(e, p);
    const out = Buffer.allocUnsafe(p);
    this.scratch.copy(out, 0, 0, p);
    return out;
  }

  private encodeEvent(e: QueryEvent, p: number): number {
    const nameLen = nameWireLength(e.name);
    const name = nameLen < 0 ? '' : e.name; // a name with no wire form (never from readQuery): the root
    const dnsLen = 12 + (nameLen < 0 ? 1 : nameLen) + 4;
    const qtype = this.typeOf(e.type);
    const addr = this.addressOf(e.client);
    const hasResponse = e.rcode !== null;

    const time = Number.isFinite(e.time) && e.time > 0 ? Math.round(e.time) : 0;
    const qsec = Math.floor(time / 1000);
    const qnsec = (time - qsec * 1000) * 1_000_000;
    const dur = Number.isFinite(e.durationMs) && e.durationMs > 0 ? Math.round(e.durationMs * 1_000_000) : 0;
    const rsec = qsec + Math.floor((qnsec + dur) / 1e9);
    const rnsec = (qnsec + dur) % 1e9;

    const dnsField = 1 + varintSize(dnsLen) + dnsLen;
    // Every key is one byte; type, family and protocol values too; the address is at most 16 bytes.
    const msgLen =
      2 + // type
      (addr ? 2 + 2 + addr.length : 0) + // socket_family, query_address
      2 + // socket_protocol
      (1 + varintSize(qsec)) +
      5 + // query_time_sec, query_time_nsec
      dnsField + // query_message
      (hasResponse ? 1 + varintSize(rsec) + 5 + dnsField : 0); // response_time_*, response_message
    const dnstapLen = this.prefix.length + 1 + varintSize(msgLen) + msgLen + 2;
    this.reserve(p + 4 + dnstapLen);
    const b = this.scratch;

    b[p] = dnstapLen >>> 24;
    b[p + 1] = (dnstapLen >>> 16) & 0xff;
    b[p + 2] = (dnstapLen >>> 8) & 0xff;
    b[p + 3] = dnstapLen & 0xff;
    p = writeBytes(b, p + 4, this.prefix);
    b[p++] = K_MESSAGE;
    p = writeVarint(b, p, msgLen);
    b[p++] = M_TYPE;
    b[p++] = hasResponse ? DNSTAP.CLIENT_RESPONSE : DNSTAP.CLIENT_QUERY;
    if (addr) {
      b[p++] = M_SOCKET_FAMILY;
      b[p++] = addr.length === 4 ? DNSTAP.INET : DNSTAP.INET6;
    }
    b[p++] = M_SOCKET_PROTOCOL;
    b[p++] = e.transport === 'tcp' ? DNSTAP.TCP : e.transport === 'dot' ? DNSTAP.DOT : e.transport === 'doh' ? DNSTAP.DOH : DNSTAP.UDP;
    if (addr) {
      b[p++] = M_QUERY_ADDRESS;
      b[p++] = addr.length;
      p = writeBytes(b, p, addr);
    }
    b[p++] = M_QUERY_TIME_SEC;
    p = writeVarint(b, p, qsec);
    b[p++] = M_QUERY_TIME_NSEC;
    p = writeFixed32(b, p, qnsec);
    b[p++] = M_QUERY_MESSAGE;
    p = writeVarint(b, p, dnsLen);
    p = writeDns(b, p, QUERY_FLAGS, name, qtype);
    if (hasResponse) {
      b[p++] = M_RESPONSE_TIME_SEC;
      p = writeVarint(b, p, rsec);
      b[p++] = M_RESPONSE_TIME_NSEC;
      p = writeFixed32(b, p, rnsec);
      b[p++] = M_RESPONSE_MESSAGE;
      p = writeVarint(b, p, dnsLen);
      p = writeDns(b, p, RESPONSE_FLAGS | (e.rcode! & 0x0f), name, qtype);
    }
    b[p++] = K_TYPE;
    b[p++] = DNSTAP.TYPE_MESSAGE;
    return p;
  }

  private reserve(n: number): void {
    if (n <= this.scratch.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(n, this.scratch.length * 2));
    this.scratch.copy(bigger);
    this.scratch = bigger;
  }

  private typeOf(t: string): number {
    let n = this.types.get(t);
    if (n === undefined) {
      n = typeNumber(t);
      if (this.types.size < 1024) this.types.set(t, n);
    }
    return n;
  }

  /** 4 or 16 bytes; null for a pseudonym token (`p:…`) or anything that is not an address. */
  private addressOf(client: string): Buffer | null {
    if (client.startsWith('p:')) return null;
    let a = this.addresses.get(client);
    if (a === undefined) {
      a = parseAddress(client);
      if (this.addresses.size >= ADDRESS_CACHE_MAX) this.addresses.clear();
      this.addresses.set(client, a);
    }
    return a;
  }
}

// An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d: it is logged as the IPv4 client it is.
function parseAddress(s: string): Buffer | null {
  const v4 = parseIPv4(s);
  if (v4) return v4;
  const zone = s.indexOf('%');
  const text = zone >= 0 ? s.slice(0, zone) : s;
  if (!ipaddr.IPv6.isValid(text)) return null;
  const a = ipaddr.IPv6.parse(text);
  return Buffer.from(a.isIPv4MappedAddress() ? a.toIPv4Address().toByteArray() : a.toByteArray());
}

// By hand: most clients are IPv4, and ipaddr.js's regular expressions took ~15 µs an address,
// which a network with more active clients than the cache holds would pay on every event.
function parseIPv4(s: string): Buffer | null {
  const out = Buffer.allocUnsafe(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || part > 3) return null;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && digits < 3) {
      value = value * 10 + (c - 0x30);
      if (value > 255) return null;
      digits++;
    } else return null;
  }
  return part === 4 ? out : null;
}

// ---------------------------------------------------------------------------------------------
// The sink

export interface DnstapSinkOptions {
  target: DnstapTarget;
  identity: string;
  version: string;
  log: Logger;
  /** Bytes queued on the socket beyond which batches are refused. */
  bufferBytes?: number;
  /** Reconnect delay: doubles from min to max, back to min after a handshake. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** From dialing to ACCEPT; a listener that does not speak Frame Streams is given up on after this. */
  handshakeTimeoutMs?: number;
  /** How long close() waits for FINISH after STOP. */
  finishTimeoutMs?: number;
  /** At most one warning per interval about drops, and one about failed connections. */
  logIntervalMs?: number;
  now?: () => number;
}

type State = 'waiting' | 'connecting' | 'ready' | 'stopping' | 'closed';

export class DnstapSink implements QueryLogSink {
  readonly name = 'dnstap';
  /** Events handed to the socket, and events refused (also counted by the buffer, per sink). */
  sent = 0;
  dropped = 0;
  /** Completed handshakes. */
  connections = 0;
  private state: State = 'waiting';
  private socket: Socket | undefined;
  private inbound: Buffer = Buffer.alloc(0);
  private retry: NodeJS.Timeout | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private backoff: number;
  private onFinish: (() => void) | undefined;
  private readyWaiters: { handshakes: number; resolve: () => void }[] = [];
  private lastDropLog = -Infinity;
  private unloggedDrops = 0;
  private lastFailLog = -Infinity;
  private unloggedFails = 0;
  /** A failure was logged: say so when the collector is back. */
  private lossLogged = false;
  private droppedAtConnect = 0;
  private readonly encoder: DnstapEncoder;
  private readonly where: string;
  private readonly bufferBytes: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly finishTimeoutMs: number;
  private readonly logIntervalMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: DnstapSinkOptions) {
    this.encoder = new DnstapEncoder(opts.identity, opts.version);
    this.where = describeTarget(opts.target);
    this.bufferBytes = opts.bufferBytes ?? 4 * 1024 * 1024;
    this.backoffMinMs = opts.backoffMinMs ?? 500;
    this.backoffMaxMs = opts.backoffMaxMs ?? 30_000;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000;
    this.finishTimeoutMs = opts.finishTimeoutMs ?? 1000;
    this.logIntervalMs = opts.logIntervalMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.backoff = this.backoffMinMs;
    this.dial();
  }

  get connected(): boolean {
    return this.state === 'ready';
  }

  /** Resolves when connected after at least `handshakes` handshakes in all (now, if so already). */
  whenConnected(handshakes = 1): Promise<void> {
    if (this.state === 'ready' && this.connections >= handshakes) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push({ handshakes, resolve }));
  }

  write(batch: QueryEvent[]): boolean {
    if (batch.length === 0) return true;
    const s = this.socket;
    if (this.state !== 'ready' || !s) return this.drop(batch.length, 'not connected');
    // A batch larger than the whole bound still goes when nothing is queued, or it never would.
    if (s.writableLength >= this.bufferBytes) return this.drop(batch.length, 'collector backed up');
    let frames: Buffer;
    try {
      frames = this.encoder.encode(batch);
    } catch (err) {
      return this.drop(batch.length, `encoding failed: ${(err as Error).message}`);
    }
    if (s.writableLength > 0 && s.writableLength + frames.length > this.bufferBytes) return this.drop(batch.length, 'collector backed up');
    s.write(frames);
    this.sent += batch.length;
    return true;
  }

  /** STOP, then wait briefly for FINISH so the collector knows the stream ended cleanly. */
  close(): Promise<void> {
    clearTimeout(this.retry);
    const s = this.socket;
    if (this.state !== 'ready' || !s) {
      this.state = 'closed';
      this.teardown();
      return Promise.resolve();
    }
    this.state = 'stopping';
    return new Promise((resolve) => {
      const deadline = setTimeout(() => done(), this.finishTimeoutMs);
      const done = () => {
        clearTimeout(deadline);
        this.onFinish = undefined;
        this.state = 'closed';
        this.teardown(true);
        resolve();
      };
      this.onFinish = done;
      s.write(encodeControlFrame(FSTRM.STOP));
    });
  }

  private dial(): void {
    if (this.state === 'closed' || this.state === 'stopping') return;
    this.state = 'connecting';
    this.inbound = Buffer.alloc(0);
    const t = this.opts.target;
    const s = t.kind === 'unix' ? connect({ path: t.path }) : connect({ host: t.host, port: t.port });
    this.socket = s;
    this.handshakeTimer = setTimeout(() => this.fail(s, `no ACCEPT within ${this.handshakeTimeoutMs} ms`), this.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    s.on('connect', () => s.write(encodeControlFrame(FSTRM.READY, [DNSTAP_CONTENT_TYPE])));
    s.on('data', (chunk: Buffer) => this.received(s, chunk));
    s.on('error', (err: NodeJS.ErrnoException) => this.fail(s, err.code ?? err.message));
    s.on('close', () => this.fail(s, 'connection closed'));
  }

  private received(s: Socket, chunk: Buffer): void {
    if (s !== this.socket) return;
    this.inbound = this.inbound.length === 0 ? chunk : Buffer.concat([this.inbound, chunk]);
    while (this.inbound.length > 0) {
      const r = readControlFrame(this.inbound);
      if ('incomplete' in r) return;
      if ('error' in r) return this.fail(s, `protocol error: ${r.error}`);
      this.inbound = this.inbound.subarray(r.size);
      const f = r.frame;
      if (f.type === FSTRM.ACCEPT && this.state === 'connecting') {
        if (!f.contentTypes.includes(DNSTAP_CONTENT_TYPE)) return this.fail(s, `collector does not accept ${DNSTAP_CONTENT_TYPE}`);
        this.started(s);
      } else if (f.type === FSTRM.FINISH && this.state === 'stopping') {
        this.onFinish?.();
        return;
      } else {
        return this.fail(s, `unexpected control frame ${f.type}`);
      }
    }
  }

  private started(s: Socket): void {
    clearTimeout(this.handshakeTimer);
    s.write(encodeControlFrame(FSTRM.START, [DNSTAP_CONTENT_TYPE]));
    this.state = 'ready';
    this.connections++;
    this.backoff = this.backoffMinMs;
    this.unloggedFails = 0;
    if (this.connections === 1 || this.lossLogged) {
      this.opts.log.info({ dnstap: this.where, droppedSinceLastConnect: this.dropped - this.droppedAtConnect }, 'dnstap: connected to the collector');
      this.lossLogged = false;
    }
    this.droppedAtConnect = this.dropped;
    const due = this.readyWaiters.filter((w) => w.handshakes <= this.connections);
    this.readyWaiters = this.readyWaiters.filter((w) => w.handshakes > this.connections);
    for (const w of due) w.resolve();
  }

  private fail(s: Socket, reason: string): void {
    if (s !== this.socket) return; // an earlier connection's late event
    const wasReady = this.state === 'ready';
    this.teardown();
    if (this.state === 'stopping') return this.onFinish?.();
    if (this.state === 'closed') return;
    this.state = 'waiting';
    this.unloggedFails++;
    const now = this.now();
    // Throttled like the drops: a collector that accepts and hangs up at once must not flood the log.
    if (now - this.lastFailLog >= this.logIntervalMs) {
      this.opts.log.warn(
        { dnstap: this.where, reason, failures: this.unloggedFails, retryMs: this.backoff },
        wasReady ? 'dnstap: lost the collector; reconnecting' : 'dnstap: cannot reach the collector; retrying',
      );
      this.lastFailLog = now;
      this.unloggedFails = 0;
      this.lossLogged = true;
    }
    this.retry = setTimeout(() => this.dial(), this.backoff);
    this.retry.unref();
    this.backoff = Math.min(this.backoff * 2, this.backoffMaxMs);
  }

  /** Forget the socket: ended after STOP (`graceful`), else cut off. */
  private teardown(graceful = false): void {
    clearTimeout(this.handshakeTimer);
    const s = this.socket;
    this.socket = undefined;
    if (!s) return;
    if (!graceful || !s.writable) return void s.destroy();
    s.end(() => s.destroy());
    setTimeout(() => s.destroy(), this.finishTimeoutMs).unref(); // a collector that stopped reading
  }

  private drop(n: number, reason: string): false {
    this.dropped += n;
    this.unloggedDrops += n;
    const now = this.now();
    if (now - this.lastDropLog >= this.logIntervalMs) {
      this.opts.log.warn({ dnstap: this.where, reason, dropped: this.unloggedDrops, droppedTotal: this.dropped }, 'dnstap: dropping query log events');
      this.lastDropLog = now;
      this.unloggedDrops = 0;
    }
    return false;
  }
}

let packageVersion: string | undefined;

/** "sluice 0.1.0". src/querylog/ and dist/querylog/ are both two levels below the package root. */
export function dnstapVersion(): string {
  if (packageVersion === undefined) {
    try {
      packageVersion = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      packageVersion = 'unknown';
    }
  }
  return `sluice ${packageVersion}`;
}

/** The dnstap sink of `query_log.dnstap`, or undefined when it is not configured. Connects at once. */
export function dnstapSinkFromConfig(config: Config, instance: string, log: Logger): DnstapSink | undefined {
  const d = config.query_log.dnstap;
  if (!d) return undefined;
  const target: DnstapTarget | undefined = d.socket !== undefined ? { kind: 'unix', path: d.socket } : parseDnstapTcp(d.tcp ?? '');
  if (!target) return undefined; // the schema refuses such a config; nothing to connect to
  return new DnstapSink({ target, identity: d.identity ?? instance, version: dnstapVersion(), log, bufferBytes: d.buffer_bytes });
}
