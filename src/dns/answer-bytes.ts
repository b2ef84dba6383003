// Upstream answers kept as bytes: scanned once when they arrive (where the TTLs are, which TTL
// bounds the cache entry, where the OPT record sits), then rendered for each client by copying and
// patching ID, question case, flags and TTLs. No per-hit decoding.
import { RCODE, TYPE } from './codes.js';
import { ByteSlab } from './byte-slab.js';
import { encodeOpt, skipName, type EdeInfo, type Query } from './wire.js';

// Scanned answers are kept by the cache, so their bytes go where long-lived copies go.
const LONG_LIVED = new ByteSlab();
// Scratch for scanAnswer(): a message of 65,535 bytes holds at most 5,957 records of 11 bytes.
const TTL_OFFSETS = new Int32Array(6000);
const TTLS = new Int32Array(6000);
/** The first `n` numbers of `scratch` as an array of exactly that length. */
function exactArray(scratch: Int32Array, n: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = scratch[i]!;
  return out;
}
// The OPT record of an answer without EDE (rcode < 16): one for DO clear, one for DO set.
const PLAIN_OPT = [encodeOpt({ udpSize: 0, version: 0, do: false }), encodeOpt({ udpSize: 0, version: 0, do: true })];

/** An upstream answer ready to be rendered for any client that asks the same question. */
export interface AnswerBytes {
  /** The message without its OPT record (ARCOUNT adjusted). */
  bytes: Buffer;
  /** Offsets of the TTL fields of every record in `bytes`. */
  ttlOffsets: number[];
  /** The TTL each record is served with at age 0 (after clamping). */
  ttls: number[];
  rcode: number;
  /** Seconds this answer may be cached (0: do not cache). */
  cacheTtl: number;
  answerCount: number;
  /** Targets of CNAME records in the answer section, lower case (for CNAME inspection). */
  cnames: string[] | undefined;
  /** The answer has an A/AAAA record with a private-range address (for rebinding protection). */
  privateAddress: boolean;
}

export interface TtlClamp {
  minTtl: number;
  maxTtl: number;
  negativeMaxTtl: number;
}

/**
 * Scan an upstream reply. Returns undefined when it is malformed. The reply must already have been
 * matched to its query (ID and question).
 */
export function scanAnswer(reply: Buffer, questionEnd: number, clamp: TtlClamp): AnswerBytes | undefined {
  if (reply.length < questionEnd) return undefined;
  const rcode = reply[3]! & 0xf;
  const an = reply.readUInt16BE(6);
  const ns = reply.readUInt16BE(8);
  const ar = reply.readUInt16BE(10);
  // Collected in scratch arrays and copied out at their exact length: an array grown by push()
  // reserves 17 slots, and a cache of 100,000 answers kept two such arrays each (~300 bytes).
  let records = 0;
  let minTtl = Infinity;
  let soaNegativeTtl: number | undefined;
  let p = questionEnd;
  let cut = -1;
  let kept = 0;
  let cnames: string[] | undefined;
  let privateAddress = false;
  const total = an + ns + ar;
  for (let r = 0; r < total; r++) {
    const nameEnd = skipName(reply, p);
    if (nameEnd < 0 || nameEnd + 10 > reply.length) return undefined;
    const type = reply.readUInt16BE(nameEnd);
    const rdlen = reply.readUInt16BE(nameEnd + 8);
    const end = nameEnd + 10 + rdlen;
    if (end > reply.length) return undefined;
    if (type === TYPE.OPT) {
      // Drop the upstream's OPT (and, in the rare case it is not last, the records after it, which
      // would otherwise need their compression pointers rewritten); each client gets its own OPT.
      cut = p;
      break;
    }
    const rawTtl = reply.readUInt32BE(nameEnd + 4);
    const ttl = rawTtl > 0x7fffffff ? 0 : rawTtl; // RFC 2181 §8: a TTL with the top bit set means 0
    const clamped = Math.min(Math.max(ttl, clamp.minTtl), clamp.maxTtl);
    TTL_OFFSETS[records] = nameEnd + 4;
    TTLS[records++] = clamped;
    if (r < an) {
      if (type === TYPE.CNAME) {
        const target = readName(reply, nameEnd + 10);
        if (target !== undefined) (cnames ??= []).push(target);
      } else if ((type === TYPE.A && rdlen === 4) || (type === TYPE.AAAA && rdlen === 16)) {
        if (isPrivateAddress(reply, nameEnd + 10, rdlen)) privateAddress = true;
      }
    }
    if (r >= an && r < an + ns && type === TYPE.SOA && rdlen >= 22) {
      // RFC 2308 §5: negative answers live for min(SOA TTL, SOA MINIMUM).
      const minimum = reply.readUInt32BE(end - 4);
      soaNegativeTtl = Math.min(ttl, minimum);
    }
    minTtl = Math.min(minTtl, clamped);
    kept++;
    p = end;
  }
  const bytes = LONG_LIVED.copy(reply, 0, cut >= 0 ? cut : p);
  const arKept = kept - an - ns;
  bytes.writeUInt16BE(Math.max(0, arKept), 10);

  let cacheTtl = 0;
  const negative = rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && an === 0);
  if (reply[2]! & 0x02) cacheTtl = 0; // truncated: never cache a partial answer
  else if (negative) cacheTtl = soaNegativeTtl === undefined ? 0 : Math.min(Math.max(soaNegativeTtl, clamp.minTtl), clamp.negativeMaxTtl);
  else if (rcode === RCODE.NOERROR) cacheTtl = minTtl === Infinity ? 0 : minTtl;
  return { bytes, ttlOffsets: exactArray(TTL_OFFSETS, records), ttls: exactArray(TTLS, records), rcode, cacheTtl, answerCount: an, cnames, privateAddress };
}

/** A (possibly compressed) name at `p`, lower case without trailing dot; undefined if malformed. */
export function readName(msg: Uint8Array, p: number): string | undefined {
  const labels: string[] = [];
  let jumps = 0;
  let len = 0;
  for (;;) {
    if (p >= msg.length) return undefined;
    const l = msg[p]!;
    if (l === 0) break;
    if ((l & 0xc0) === 0xc0) {
      if (p + 1 >= msg.length || ++jumps > 32) return undefined; // compression loop
      p = ((l & 0x3f) << 8) | msg[p + 1]!;
      continue;
    }
    if (l > 63 || p + 1 + l > msg.length) return undefined;
    len += l + 1;
    if (len > 255) return undefined;
    labels.push(Buffer.from(msg.subarray(p + 1, p + 1 + l)).toString('latin1').toLowerCase());
    p += l + 1;
  }
  return labels.join('.');
}

/** RFC 1918, loopback, link-local, CGNAT, unspecified (IPv4); loopback, link-local, ULA, mapped private (IPv6). */
export function isPrivateAddress(msg: Uint8Array, p: number, len: number): boolean {
  if (len === 4) {
    const a = msg[p]!;
    const b = msg[p + 1]!;
    return a === 10 || a === 127 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254) || (a === 100 && b >= 64 && b <= 127);
  }
  const first = msg[p]!;
  if ((first & 0xfe) === 0xfc) return true; // fc00::/7
  if (first === 0xfe && (msg[p + 1]! & 0xc0) === 0x80) return true; // fe80::/10
  let zero = true;
  for (let i = 0; i < 15; i++) if (msg[p + i] !== 0) zero = false;
  if (zero && (msg[p + 15] === 1 || msg[p + 15] === 0)) return true; // ::1, ::
  const mapped = msg.subarray(p, p + 12).every((v, i) => (i < 10 ? v === 0 : v === 0xff));
  return mapped && isPrivateAddress(msg, p + 12, 4);
}

/**
 * Render an answer for one client: its ID, its question bytes (so 0x20 case is echoed), RD/CD from
 * its query, AD only when it asked with AD or DO (RFC 6840 §5.8), TTLs minus `ageSeconds`, and an
 * OPT record when it sent EDNS.
 */
export function renderAnswer(a: AnswerBytes, msg: Uint8Array, query: Query, ageSeconds: number, stale?: { ttl: number; ede: EdeInfo }): Buffer {
  const opt = query.edns ? (stale || a.rcode > 0xf ? encodeOpt(query.edns, a.rcode, stale?.ede) : PLAIN_OPT[query.edns.do ? 1 : 0]!) : undefined;
  const len = a.bytes.length;
  const out = Buffer.allocUnsafe(len + (opt ? opt.length : 0));
  a.bytes.copy(out, 0);
  out.set(msg.subarray(12, query.questionEnd), 12);
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  const qf = query.flags;
  let f2 = (out[2]! & ~0x01) | ((qf >> 8) & 0x01); // RD from the client
  let f3 = (out[3]! & ~0x10) | (qf & 0x10); // CD from the client
  if (!(qf & 0x20) && !query.edns?.do) f3 &= ~0x20; // AD
  f2 &= ~0x02; // TC is decided per transport by the caller
  out[2] = f2;
  out[3] = f3 | 0x80;
  if (stale) {
    // RFC 8767 §4: stale answers carry a short TTL (30 s recommended).
    for (let i = 0; i < a.ttlOffsets.length; i++) out.writeUInt32BE(Math.min(stale.ttl, a.ttls[i]!), a.ttlOffsets[i]!);
  } else if (ageSeconds > 0) {
    for (let i = 0; i < a.ttlOffsets.length; i++) {
      out.writeUInt32BE(Math.max(0, a.ttls[i]! - ageSeconds), a.ttlOffsets[i]!);
    }
  } else {
    for (let i = 0; i < a.ttlOffsets.length; i++) out.writeUInt32BE(a.ttls[i]!, a.ttlOffsets[i]!);
  }
  if (opt) {
    opt.copy(out, len);
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  }
  return out;
}
