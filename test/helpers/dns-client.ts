/**
 * Test-only DNS client: hand-rolled wire encoding/decoding plus UDP/TCP
 * transports. Everything is done by hand (no dns2) so end-to-end tests control
 * and can inspect every byte, including malformed or unusual messages.
 *
 * Name convention: presentation names carry no trailing dot ("example.com"),
 * the root is ".". Case is preserved in both directions. Label bytes that are
 * not printable ASCII, plus "." and "\" inside a label, use the usual
 * zone-file escapes (\DDD, \., \\) so decoding is lossless.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  SVCB: 64,
  HTTPS: 65,
  ANY: 255,
} as const;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;

export const CLASS_IN = 1;
/** EDNS option code for Extended DNS Errors (RFC 8914). */
export const EDNS_OPTION_EDE = 15;

const DEFAULT_TIMEOUT_MS = 2000;
const MAX_NAME_WIRE_LENGTH = 255;
/** Upper bound on compression pointers followed while reading one name. */
const MAX_POINTER_JUMPS = 64;

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

export interface EdnsOption {
  code: number;
  data: Buffer;
}

export interface EdnsQueryOptions {
  /** Advertised UDP payload size (OPT CLASS). Default 1232. */
  udpSize?: number;
  /** DNSSEC OK bit. Default false. */
  do?: boolean;
  /** EDNS version. Default 0. */
  version?: number;
  options?: EdnsOption[];
}

export interface EncodeQueryOptions {
  /** Message ID; random when omitted. */
  id?: number;
  /** Recursion desired. Default true. */
  rd?: boolean;
  /** Checking disabled / authentic data header bits. Default false. */
  cd?: boolean;
  ad?: boolean;
  /** When present an OPT RR is appended to the additional section. */
  edns?: EdnsQueryOptions;
  /** Question class. Default IN (1). */
  qclass?: number;
}

export interface SoaData {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/**
 * Readable record data: dotted IPv4 (A), compressed IPv6 (AAAA), a name
 * (CNAME/NS/PTR), an object (SOA), strings (TXT), otherwise lowercase hex.
 */
export type RData = string | string[] | SoaData;

export interface DecodedQuestion {
  name: string;
  type: number;
  class: number;
}

export interface DecodedRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: RData;
}

export interface DecodedEdns {
  udpSize: number;
  version: number;
  do: boolean;
  /** The 8 upper rcode bits carried in the OPT TTL (already folded into `rcode`). */
  extendedRcode: number;
  options: EdnsOption[];
  /** First Extended DNS Error option, if any. */
  ede?: { infoCode: number; text: string };
}

export interface DecodedFlags {
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
}

export interface DecodedResponse {
  id: number;
  flags: DecodedFlags;
  /** Full rcode: header rcode combined with the OPT extended rcode bits. */
  rcode: number;
  questions: DecodedQuestion[];
  answers: DecodedRecord[];
  authorities: DecodedRecord[];
  /**
   * Additional records *excluding* the first OPT RR, which is reported in
   * `edns`. Any further OPT RRs (a protocol error) stay here, hex-encoded, so
   * tests can detect them.
   */
  additionals: DecodedRecord[];
  edns?: DecodedEdns;
}

export interface ServerAddress {
  host: string;
  port: number;
}

export interface TransportOptions {
  /** Source address to bind, e.g. "127.0.0.2" to act as a different client. */
  localAddress?: string;
  /** Default 2000 ms. */
  timeoutMs?: number;
}

export type Transport = 'udp' | 'tcp';

export class QueryTimeoutError extends Error {
  override name = 'QueryTimeoutError';
}

/** TCP connection ended before all replies arrived; carries what did arrive. */
export class IncompleteTcpError extends Error {
  override name = 'IncompleteTcpError';
  constructor(
    message: string,
    readonly replies: Buffer[],
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

function isDigit(code: number | undefined): boolean {
  return code !== undefined && code >= 0x30 && code <= 0x39;
}

/** Split a presentation name into raw label bytes, honouring \DDD, \X escapes. */
function nameToLabels(name: string): Buffer[] {
  if (name === '' || name === '.') return [];
  const labels: Buffer[] = [];
  let current: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code === 0x5c /* \ */) {
      if (isDigit(name.charCodeAt(i + 1)) && isDigit(name.charCodeAt(i + 2)) && isDigit(name.charCodeAt(i + 3))) {
        const value = Number(name.slice(i + 1, i + 4));
        if (value > 255) throw new Error(`bad escape in name ${JSON.stringify(name)}`);
        current.push(value);
        i += 3;
      } else if (i + 1 < name.length) {
        current.push(name.charCodeAt(i + 1));
        i += 1;
      } else {
        throw new Error(`dangling escape in name ${JSON.stringify(name)}`);
      }
    } else if (code === 0x2e /* . */) {
      labels.push(Buffer.from(current));
      current = [];
    } else {
      // Names are bytes on the wire; callers must pass punycode for IDNs.
      if (code > 0xff) throw new Error(`non-latin1 character in name ${JSON.stringify(name)}`);
      current.push(code);
    }
  }
  // A trailing dot leaves `current` empty: the root label is implicit.
  if (current.length > 0) labels.push(Buffer.from(current));
  return labels;
}

/** Encode a name uncompressed. Case is preserved. */
export function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of nameToLabels(name)) {
    if (label.length === 0) throw new Error(`empty label in name ${JSON.stringify(name)}`);
    if (label.length > 63) throw new Error(`label longer than 63 bytes in name ${JSON.stringify(name)}`);
    parts.push(Buffer.from([label.length]), label);
  }
  parts.push(Buffer.from([0]));
  const wire = Buffer.concat(parts);
  if (wire.length > MAX_NAME_WIRE_LENGTH) throw new Error(`name longer than 255 bytes: ${JSON.stringify(name)}`);
  return wire;
}

function labelToText(label: Buffer): string {
  let out = '';
  for (const byte of label) {
    if (byte === 0x2e || byte === 0x5c) out += '\\' + String.fromCharCode(byte);
    else if (byte > 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += '\\' + byte.toString().padStart(3, '0');
  }
  return out;
}

/**
 * Read a possibly compressed name at `offset`. Returns the name and the offset
 * just past it in the original (non-jumped) byte stream.
 */
export function readName(buf: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next = -1; // set at the first pointer: where the caller resumes
  let jumps = 0;
  let wireLength = 1; // the terminating root label
  for (;;) {
    const len = buf[pos];
    if (len === undefined) throw new Error(`name at ${offset} runs past end of message`);
    if ((len & 0xc0) === 0xc0) {
      const low = buf[pos + 1];
      if (low === undefined) throw new Error(`truncated compression pointer at ${pos}`);
      // Pointers must go strictly backwards and their count is capped: together
      // these bound the work on hostile input (a backwards pointer alone can
      // still cycle via labels read forward after the jump).
      const target = ((len & 0x3f) << 8) | low;
      if (target >= pos) throw new Error(`forward compression pointer at ${pos}`);
      if (++jumps > MAX_POINTER_JUMPS) throw new Error(`compression pointer loop at ${offset}`);
      if (next < 0) next = pos + 2;
      pos = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new Error(`unsupported label type 0x${len.toString(16)} at ${pos}`);
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if (pos + 1 + len > buf.length) throw new Error(`label at ${pos} runs past end of message`);
    wireLength += len + 1;
    if (wireLength > MAX_NAME_WIRE_LENGTH) throw new Error(`name at ${offset} longer than 255 bytes`);
    labels.push(labelToText(buf.subarray(pos + 1, pos + 1 + len)));
    pos += 1 + len;
  }
  return { name: labels.length === 0 ? '.' : labels.join('.'), next };
}

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

export function parseIPv4(text: string): Buffer {
  if (!net.isIPv4(text)) throw new Error(`not an IPv4 address: ${text}`);
  return Buffer.from(text.split('.').map(Number));
}

export function parseIPv6(text: string): Buffer {
  if (!net.isIPv6(text)) throw new Error(`not an IPv6 address: ${text}`);
  const out = Buffer.alloc(16);
  let str = text;
  // An embedded dotted-quad tail stands in for the last two groups.
  let v4Tail: Buffer | undefined;
  const lastColon = str.lastIndexOf(':');
  if (str.indexOf('.', lastColon) !== -1) {
    v4Tail = parseIPv4(str.slice(lastColon + 1));
    str = str.slice(0, lastColon + 1) + '0:0';
  }
  const toGroups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const halves = str.split('::');
  const head = toGroups(halves[0] ?? '');
  const tail = halves.length > 1 ? toGroups(halves[1] ?? '') : [];
  const zeros = halves.length > 1 ? new Array<number>(8 - head.length - tail.length).fill(0) : [];
  [...head, ...zeros, ...tail].forEach((g, i) => out.writeUInt16BE(g, i * 2));
  v4Tail?.copy(out, 12);
  return out;
}

/** RFC 5952 text form: lowercase, longest zero run (>= 2 groups) as "::". */
export function formatIPv6(bytes: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(bytes.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

export function typeCode(type: number | string): number {
  if (typeof type === 'number') return type;
  const upper = type.toUpperCase();
  if (upper in TYPE) return TYPE[upper as keyof typeof TYPE];
  const generic = /^TYPE(\d+)$/.exec(upper); // RFC 3597 form, e.g. "TYPE65280"
  if (generic?.[1] !== undefined) return Number(generic[1]);
  throw new Error(`unknown RR type ${type}`);
}

/** Encode an OPT RR (owner root, type 41). */
export function encodeOpt(edns: EdnsQueryOptions & { extendedRcode?: number }): Buffer {
  const options = edns.options ?? [];
  const rdata = Buffer.concat(
    options.map((o) => {
      const head = Buffer.alloc(4);
      head.writeUInt16BE(o.code, 0);
      head.writeUInt16BE(o.data.length, 2);
      return Buffer.concat([head, o.data]);
    }),
  );
  const rr = Buffer.alloc(11);
  rr.writeUInt8(0, 0); // root owner name
  rr.writeUInt16BE(TYPE.OPT, 1);
  rr.writeUInt16BE(edns.udpSize ?? 1232, 3);
  rr.writeUInt8(edns.extendedRcode ?? 0, 5);
  rr.writeUInt8(edns.version ?? 0, 6);
  rr.writeUInt16BE(edns.do ? 0x8000 : 0, 7);
  rr.writeUInt16BE(rdata.length, 9);
  return Buffer.concat([rr, rdata]);
}

export function encodeQuery(name: string, type: number | string, opts: EncodeQueryOptions = {}): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(opts.id ?? Math.floor(Math.random() * 0x10000), 0);
  header.writeUInt8(opts.rd === false ? 0 : 0x01, 2);
  header.writeUInt8((opts.ad ? 0x20 : 0) | (opts.cd ? 0x10 : 0), 3);
  header.writeUInt16BE(1, 4); // QDCOUNT
  header.writeUInt16BE(opts.edns ? 1 : 0, 10); // ARCOUNT
  const question = Buffer.alloc(4);
  question.writeUInt16BE(typeCode(type), 0);
  question.writeUInt16BE(opts.qclass ?? CLASS_IN, 2);
  const parts = [header, encodeName(name), question];
  if (opts.edns) parts.push(encodeOpt(opts.edns));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

function decodeRdata(buf: Buffer, type: number, start: number, end: number): RData {
  const rdata = buf.subarray(start, end);
  // Names inside RDATA may be compressed against the whole message.
  const nameWithin = (at: number): { name: string; next: number } => {
    const r = readName(buf, at);
    if (r.next > end) throw new Error(`name in RDATA at ${at} overruns RDLENGTH`);
    return r;
  };
  switch (type) {
    case TYPE.A:
      if (rdata.length !== 4) throw new Error(`A RDATA must be 4 bytes, got ${rdata.length}`);
      return Array.from(rdata).join('.');
    case TYPE.AAAA:
      if (rdata.length !== 16) throw new Error(`AAAA RDATA must be 16 bytes, got ${rdata.length}`);
      return formatIPv6(rdata);
    case TYPE.CNAME:
    case TYPE.NS:
    case TYPE.PTR:
      return nameWithin(start).name;
    case TYPE.SOA: {
      const m = nameWithin(start);
      const r = nameWithin(m.next);
      if (r.next + 20 > end) throw new Error('SOA RDATA too short');
      return {
        mname: m.name,
        rname: r.name,
        serial: buf.readUInt32BE(r.next),
        refresh: buf.readUInt32BE(r.next + 4),
        retry: buf.readUInt32BE(r.next + 8),
        expire: buf.readUInt32BE(r.next + 12),
        minimum: buf.readUInt32BE(r.next + 16),
      };
    }
    case TYPE.TXT: {
      const strings: string[] = [];
      for (let p = 0; p < rdata.length;) {
        const len = rdata[p] ?? 0;
        if (p + 1 + len > rdata.length) throw new Error('TXT string overruns RDATA');
        strings.push(rdata.subarray(p + 1, p + 1 + len).toString('utf8'));
        p += 1 + len;
      }
      return strings;
    }
    default:
      return rdata.toString('hex');
  }
}

function decodeOptions(rdata: Buffer): EdnsOption[] {
  const options: EdnsOption[] = [];
  for (let p = 0; p < rdata.length;) {
    if (p + 4 > rdata.length) throw new Error('truncated EDNS option header');
    const code = rdata.readUInt16BE(p);
    const len = rdata.readUInt16BE(p + 2);
    if (p + 4 + len > rdata.length) throw new Error(`EDNS option ${code} overruns OPT RDATA`);
    options.push({ code, data: Buffer.from(rdata.subarray(p + 4, p + 4 + len)) });
    p += 4 + len;
  }
  return options;
}

/**
 * Decode any DNS message (works for queries too). Throws on malformed input;
 * tests that expect garbage should assert on the throw.
 */
export function decodeResponse(buf: Buffer): DecodedResponse {
  if (buf.length < 12) throw new Error(`message shorter than header: ${buf.length} bytes`);
  const b2 = buf.readUInt8(2);
  const b3 = buf.readUInt8(3);
  const counts = [4, 6, 8, 10].map((o) => buf.readUInt16BE(o));
  let pos = 12;

  const questions: DecodedQuestion[] = [];
  for (let i = 0; i < (counts[0] ?? 0); i++) {
    const { name, next } = readName(buf, pos);
    if (next + 4 > buf.length) throw new Error('truncated question');
    questions.push({ name, type: buf.readUInt16BE(next), class: buf.readUInt16BE(next + 2) });
    pos = next + 4;
  }

  let edns: DecodedEdns | undefined;
  const readSection = (count: number, isAdditional: boolean): DecodedRecord[] => {
    const records: DecodedRecord[] = [];
    for (let i = 0; i < count; i++) {
      const { name, next } = readName(buf, pos);
      if (next + 10 > buf.length) throw new Error(`truncated RR header at ${next}`);
      const type = buf.readUInt16BE(next);
      const klass = buf.readUInt16BE(next + 2);
      const ttl = buf.readUInt32BE(next + 4);
      const rdlength = buf.readUInt16BE(next + 8);
      const start = next + 10;
      const end = start + rdlength;
      if (end > buf.length) throw new Error(`RDATA of ${name} type ${type} overruns message`);
      pos = end;
      if (isAdditional && type === TYPE.OPT && edns === undefined) {
        const options = decodeOptions(buf.subarray(start, end));
        const edeOpt = options.find((o) => o.code === EDNS_OPTION_EDE);
        edns = {
          udpSize: klass,
          extendedRcode: ttl >>> 24,
          version: (ttl >>> 16) & 0xff,
          do: (ttl & 0x8000) !== 0,
          options,
        };
        if (edeOpt) {
          if (edeOpt.data.length < 2) throw new Error('EDE option shorter than 2 bytes');
          edns.ede = { infoCode: edeOpt.data.readUInt16BE(0), text: edeOpt.data.subarray(2).toString('utf8') };
        }
        continue;
      }
      const data = type === TYPE.OPT ? buf.subarray(start, end).toString('hex') : decodeRdata(buf, type, start, end);
      records.push({ name, type, class: klass, ttl, data });
    }
    return records;
  };
  const answers = readSection(counts[1] ?? 0, false);
  const authorities = readSection(counts[2] ?? 0, false);
  const additionals = readSection(counts[3] ?? 0, true);

  // `edns` is assigned inside a closure, which TS flow analysis cannot see.
  const opt = edns as DecodedEdns | undefined;
  const result: DecodedResponse = {
    id: buf.readUInt16BE(0),
    flags: {
      qr: (b2 & 0x80) !== 0,
      opcode: (b2 >> 3) & 0x0f,
      aa: (b2 & 0x04) !== 0,
      tc: (b2 & 0x02) !== 0,
      rd: (b2 & 0x01) !== 0,
      ra: (b3 & 0x80) !== 0,
      ad: (b3 & 0x20) !== 0,
      cd: (b3 & 0x10) !== 0,
    },
    rcode: ((opt?.extendedRcode ?? 0) << 4) | (b3 & 0x0f),
    questions,
    answers,
    authorities,
    additionals,
  };
  if (opt) result.edns = opt;
  return result;
}

/** Alias: the decoder is not response-specific. */
export const decodeMessage = decodeResponse;

// ---------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------

/** Send one datagram from a fresh socket and resolve with the first reply. */
export function queryUdp(server: ServerAddress, query: Buffer, opts: TransportOptions = {}): Promise<Buffer> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    let settled = false;
    const finish = (err: Error | undefined, reply?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // already closed after an error
      }
      if (err) reject(err);
      else resolve(reply as Buffer);
    };
    const timer = setTimeout(() => finish(new QueryTimeoutError(`UDP query to ${server.host}:${server.port} timed out after ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => finish(err));
    socket.on('message', (msg) => finish(undefined, msg));
    const send = (): void => {
      socket.send(query, server.port, server.host, (err) => {
        if (err) finish(err);
      });
    };
    if (opts.localAddress !== undefined) socket.bind({ address: opts.localAddress, port: 0 }, send);
    else send();
  });
}

function frame(message: Buffer): Buffer {
  if (message.length > 0xffff) throw new Error(`message too large for TCP framing: ${message.length} bytes`);
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length, 0);
  return Buffer.concat([prefix, message]);
}

/**
 * One TCP connection: all queries pipelined in a single write, then collect as
 * many length-prefixed replies (in arrival order, which may differ from query
 * order) and close.
 */
export function queryTcp(server: ServerAddress, queries: Buffer[], opts: TransportOptions = {}): Promise<Buffer[]> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (queries.length === 0) return Promise.resolve([]);
  const payload = Buffer.concat(queries.map(frame));
  return new Promise((resolve, reject) => {
    const replies: Buffer[] = [];
    let pending = Buffer.alloc(0);
    let settled = false;
    const connectOpts: net.NetConnectOpts = { host: server.host, port: server.port };
    if (opts.localAddress !== undefined) connectOpts.localAddress = opts.localAddress;
    const socket = net.connect(connectOpts);
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(replies);
    };
    const timer = setTimeout(
      () => finish(new QueryTimeoutError(`TCP query to ${server.host}:${server.port} timed out after ${timeoutMs} ms ` + `(${replies.length}/${queries.length} replies)`)),
      timeoutMs,
    );
    socket.setNoDelay(true);
    socket.once('connect', () => socket.write(payload));
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        replies.push(Buffer.from(pending.subarray(2, 2 + len)));
        pending = pending.subarray(2 + len);
      }
      if (replies.length >= queries.length) finish();
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(new IncompleteTcpError(`TCP connection closed after ${replies.length}/${queries.length} replies`, replies)));
  });
}

export interface ResolveOptions extends TransportOptions {
  transport?: Transport;
  edns?: EdnsQueryOptions;
  id?: number;
  rd?: boolean;
  cd?: boolean;
  ad?: boolean;
  qclass?: number;
}

/** Encode, send over UDP (default) or TCP, and decode the reply. */
export async function resolve(server: ServerAddress, name: string, type: number | string, opts: ResolveOptions = {}): Promise<DecodedResponse> {
  const { transport = 'udp', localAddress, timeoutMs, ...queryOpts } = opts;
  const transportOpts: TransportOptions = {};
  if (localAddress !== undefined) transportOpts.localAddress = localAddress;
  if (timeoutMs !== undefined) transportOpts.timeoutMs = timeoutMs;
  const query = encodeQuery(name, type, queryOpts);
  if (transport === 'tcp') {
    const [reply] = await queryTcp(server, [query], transportOpts);
    return decodeResponse(reply as Buffer);
  }
  return decodeResponse(await queryUdp(server, query, transportOpts));
}
