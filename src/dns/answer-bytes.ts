// Upstream answers kept as bytes: scanned once when they arrive (where the TTLs are, which TTL
// bounds the cache entry, where the OPT record sits), then rendered for each client by copying and
// patching ID, question case, flags and TTLs. No per-hit decoding.
import { RCODE, TYPE } from './codes.js';
import { encodeOpt, skipName, type Query } from './wire.js';

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
  const ttlOffsets: number[] = [];
  const ttls: number[] = [];
  let minTtl = Infinity;
  let soaNegativeTtl: number | undefined;
  let p = questionEnd;
  let cut = -1;
  let kept = 0;
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
    ttlOffsets.push(nameEnd + 4);
    ttls.push(clamped);
    if (r >= an && r < an + ns && type === TYPE.SOA && rdlen >= 22) {
      // RFC 2308 §5: negative answers live for min(SOA TTL, SOA MINIMUM).
      const minimum = reply.readUInt32BE(end - 4);
      soaNegativeTtl = Math.min(ttl, minimum);
    }
    minTtl = Math.min(minTtl, clamped);
    kept++;
    p = end;
  }
  const bytes = cut >= 0 ? Buffer.from(reply.subarray(0, cut)) : Buffer.from(reply.subarray(0, p));
  const arKept = kept - an - ns;
  bytes.writeUInt16BE(Math.max(0, arKept), 10);

  let cacheTtl = 0;
  const negative = rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && an === 0);
  if (reply[2]! & 0x02) cacheTtl = 0; // truncated: never cache a partial answer
  else if (negative) cacheTtl = soaNegativeTtl === undefined ? 0 : Math.min(Math.max(soaNegativeTtl, clamp.minTtl), clamp.negativeMaxTtl);
  else if (rcode === RCODE.NOERROR) cacheTtl = minTtl === Infinity ? 0 : minTtl;
  return { bytes, ttlOffsets, ttls, rcode, cacheTtl, answerCount: an };
}

/**
 * Render an answer for one client: its ID, its question bytes (so 0x20 case is echoed), RD/CD from
 * its query, AD only when it asked with AD or DO (RFC 6840 §5.8), TTLs minus `ageSeconds`, and an
 * OPT record when it sent EDNS.
 */
export function renderAnswer(a: AnswerBytes, msg: Uint8Array, query: Query, ageSeconds: number): Buffer {
  const opt = query.edns ? encodeOpt(query.edns, a.rcode) : undefined;
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
  if (ageSeconds > 0) {
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
