// Upstream answers kept as bytes: scanned once when they arrive (where the TTLs are, which TTL
// bounds the cache entry, where the OPT record sits), then rendered for each client by copying and
// patching ID, question case, flags and TTLs. No per-hit decoding.
import { EDNS_OPTION_EDE, RCODE, TYPE } from './codes.js';
import { copyBytes } from '../bytes/copy-bytes.js';
import { encodeOpt, skipName, type EdeInfo, type Query } from './wire.js';

// Scratch for scanAnswer(): a message of 65,535 bytes holds at most 5,957 records of 11 bytes.
const TTL_OFFSETS = new Int32Array(6000);
const TTLS = new Int32Array(6000);
// The OPT record of an answer without EDE (rcode < 16): one for DO clear, one for DO set.
const PLAIN_OPT = [encodeOpt({ udpSize: 0, version: 0, do: false }), encodeOpt({ udpSize: 0, version: 0, do: true })];

/**
 * An upstream answer ready to be rendered for any client that asks the same question: a fresh one
 * from scanAnswer(), or a cache entry seen in place (src/pipeline/answer-cache.ts).
 */
export interface AnswerBytes {
  /**
   * From `base`: the message without its OPT record (ARCOUNT adjusted) in `length` bytes, then its
   * TTL table: `records` 16-bit offsets of the TTL fields, then `records` 32-bit TTLs served at
   * age 0 (after clamping).
   */
  readonly raw: Buffer;
  readonly base: number;
  readonly length: number;
  readonly records: number;
  readonly rcode: number;
  /** Seconds this answer may be cached (0: do not cache). */
  readonly cacheTtl: number;
  readonly answerCount: number;
  /** Targets of CNAME records in the answer section, lower case (for CNAME inspection). */
  readonly cnames: string[] | undefined;
  /** The answer has an A/AAAA record with a private-range address (for rebinding protection). */
  readonly privateAddress: boolean;
  /** Epoch ms: when the cache stored it and when it expires (0 for a fresh answer). */
  readonly storedAt: number;
  readonly expiresAt: number;
}

/** The message bytes of an answer (without its TTL table). */
export function answerMessage(a: AnswerBytes): Buffer {
  return a.raw.subarray(a.base, a.base + a.length);
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
export function scanAnswer(reply: Buffer, questionEnd: number, clamp: TtlClamp, trustAd = true): AnswerBytes | undefined {
  if (reply.length < questionEnd) return undefined;
  const rcode = reply[3]! & 0xf;
  const an = reply.readUInt16BE(6);
  const ns = reply.readUInt16BE(8);
  const ar = reply.readUInt16BE(10);
  // Collected in scratch arrays, then written after the message bytes.
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
  const length = cut >= 0 ? cut : p;
  const raw = Buffer.allocUnsafe(length + records * 6);
  copyBytes(reply, 0, length, raw, 0);
  for (let i = 0; i < records; i++) {
    raw.writeUInt16BE(TTL_OFFSETS[i]!, length + i * 2);
    raw.writeUInt32BE(TTLS[i]!, length + records * 2 + i * 4);
  }
  const arKept = kept - an - ns;
  raw.writeUInt16BE(Math.max(0, arKept), 10);
  // An upstream that is not trusted to validate cannot vouch for the data (RFC 6840 §5.7).
  if (!trustAd) raw[3] = raw[3]! & ~0x20;

  let cacheTtl = 0;
  const negative = rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && an === 0);
  if (reply[2]! & 0x02)
    cacheTtl = 0; // truncated: never cache a partial answer
  else if (negative) cacheTtl = soaNegativeTtl === undefined ? 0 : Math.min(Math.max(soaNegativeTtl, clamp.minTtl), clamp.negativeMaxTtl);
  else if (rcode === RCODE.NOERROR) cacheTtl = minTtl === Infinity ? 0 : minTtl;
  return { raw, base: 0, length, records, rcode, cacheTtl, answerCount: an, cnames, privateAddress, storedAt: 0, expiresAt: 0 };
}

/** The info code of the first Extended DNS Error (RFC 8914) in a reply's OPT record, if any. */
export function replyEdeCode(reply: Buffer, questionEnd: number): number | undefined {
  const total = reply.readUInt16BE(6) + reply.readUInt16BE(8) + reply.readUInt16BE(10);
  let p = questionEnd;
  for (let r = 0; r < total; r++) {
    const nameEnd = skipName(reply, p);
    if (nameEnd < 0 || nameEnd + 10 > reply.length) return undefined;
    const end = nameEnd + 10 + reply.readUInt16BE(nameEnd + 8);
    if (end > reply.length) return undefined;
    if (reply.readUInt16BE(nameEnd) === TYPE.OPT) {
      for (let o = nameEnd + 10; o + 4 <= end;) {
        const code = reply.readUInt16BE(o);
        const len = reply.readUInt16BE(o + 2);
        if (code === EDNS_OPTION_EDE && len >= 2 && o + 6 <= end) return reply.readUInt16BE(o + 4);
        o += 4 + len;
      }
      return undefined;
    }
    p = end;
  }
  return undefined;
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
    labels.push(
      Buffer.from(msg.subarray(p + 1, p + 1 + l))
        .toString('latin1')
        .toLowerCase(),
    );
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
 * its query, AA clear, RA set, AD only when it asked with AD or DO (RFC 6840 §5.7-5.8), TTLs minus
 * `ageSeconds`, and an OPT record when it sent EDNS. `note` adds an EDE (to a client that sent
 * EDNS) and, for a stale answer, sets every TTL.
 */
export function renderAnswer(a: AnswerBytes, msg: Uint8Array, query: Query, ageSeconds: number, note?: { ttl?: number; ede: EdeInfo }): Buffer {
  const opt = query.edns ? (note || a.rcode > 0xf ? encodeOpt(query.edns, a.rcode, note?.ede) : PLAIN_OPT[query.edns.do ? 1 : 0]!) : undefined;
  const len = a.length;
  const out = Buffer.allocUnsafe(len + (opt ? opt.length : 0));
  const base = a.base;
  copyBytes(a.raw, base, base + len, out, 0);
  copyBytes(msg, 12, query.questionEnd, out, 12);
  out[0] = msg[0]!;
  out[1] = msg[1]!;
  const qf = query.flags;
  // RD from the client; AA cleared: a forwarder's answers are not authoritative (RFC 1035 §4.1.1).
  let f2 = (out[2]! & ~0x05) | ((qf >> 8) & 0x01);
  let f3 = (out[3]! & ~0x10) | (qf & 0x10); // CD from the client
  if (!(qf & 0x20) && !query.edns?.do) f3 &= ~0x20; // AD
  f2 &= ~0x02; // TC is decided per transport by the caller
  out[2] = f2 | 0x80; // QR: checkReply() refused anything else, and this costs nothing
  out[3] = f3 | 0x80;
  const raw = a.raw;
  const n = a.records;
  const ttlAt = base + len + n * 2;
  // RFC 8767 §4: every record of a stale answer carries the stale TTL (30 s recommended).
  for (let i = 0; i < n; i++) {
    const ttl = note?.ttl ?? Math.max(0, raw.readUInt32BE(ttlAt + i * 4) - ageSeconds);
    out.writeUInt32BE(ttl, raw.readUInt16BE(base + len + i * 2));
  }
  if (opt) {
    opt.copy(out, len);
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  }
  return out;
}
