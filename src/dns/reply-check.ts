// Is an upstream reply sound enough to cache and relay? Hand-written and allocation-free because
// every forwarded reply passes through it (~40k replies/s per core): it walks the bytes once with
// integer offsets and no per-call arrays, objects or strings. It never throws: every read is
// bounds-checked first, and hostile bytes only ever produce a ReplyProblem.
import { OPCODE_QUERY, TYPE } from './codes.js';

export type ReplyProblem = 'not-a-response' | 'opcode' | 'malformed' | 'compression' | 'counts' | 'opt' | 'rcode';

/** Pointers one name may follow. Each must point before the part that led to it, so this only bounds the work. */
const MAX_POINTERS = 127;
/** RFC 1035 §3.1: a name is at most 255 bytes on the wire. */
const MAX_NAME_LENGTH = 255;
/** The largest rcode a QUERY may sanely be answered with: REFUSED (higher ones are TSIG/EDNS/UPDATE codes). */
const MAX_QUERY_RCODE = 5;

// readName() results below zero. Numbers, not strings or objects, so a name costs no allocation.
/** The name runs past the end it must stay within (the message, or its RDATA). */
const NAME_OVERRUN = -1;
const NAME_MALFORMED = -2;
const NAME_COMPRESSION = -3;

/**
 * Offset just after the name at `p` in the byte stream (after its first pointer, or its root
 * label), or a NAME_* code. Labels read in place must end by `limit`; labels reached through a
 * pointer must lie within the message.
 */
function readName(msg: Uint8Array, p: number, limit: number): number {
  let pos = p;
  // Where the labels now being read began: a pointer must point before it. Each jump therefore
  // lands strictly earlier than the last one, which rules out loops of any length.
  let segmentStart = p;
  let end = -1; // set at the first pointer: the name's end in the stream
  let bound = limit;
  let pointers = 0;
  let length = 1; // the root label
  for (;;) {
    if (pos >= bound) return end < 0 ? NAME_OVERRUN : NAME_MALFORMED;
    const len = msg[pos]!;
    if (len === 0) return end < 0 ? pos + 1 : end;
    if (len >= 0xc0) {
      if (pos + 1 >= bound) return end < 0 ? NAME_OVERRUN : NAME_MALFORMED;
      const target = ((len & 0x3f) << 8) | msg[pos + 1]!;
      if (target < 12 || target >= segmentStart || ++pointers > MAX_POINTERS) return NAME_COMPRESSION;
      if (end < 0) end = pos + 2;
      pos = target;
      segmentStart = target;
      bound = msg.length;
      continue;
    }
    // 0x40 (extended label, RFC 6891 §5) and 0x80 (reserved): lengths 64-191.
    if (len > 63) return NAME_MALFORMED;
    length += len + 1;
    if (length > MAX_NAME_LENGTH) return NAME_MALFORMED;
    pos += len + 1;
  }
}

/** The problem a readName() code stands for (NAME_OVERRUN inside RDATA: the name does not fit its RDATA). */
function nameProblem(code: number): ReplyProblem {
  return code === NAME_COMPRESSION ? 'compression' : 'malformed';
}

/**
 * The names inside the RDATA of the record types whose RDATA holds names (RFC 1035 §3.3, RFC 2782,
 * RFC 1183, RFC 2230, RFC 6672): they must parse and end exactly where RDLENGTH says. A and AAAA
 * must have their exact length, TXT strings must fill the RDATA. Other types are opaque.
 */
function checkRdata(msg: Uint8Array, type: number, start: number, end: number): ReplyProblem | undefined {
  let at: number;
  switch (type) {
    case TYPE.A:
      return end - start === 4 ? undefined : 'malformed';
    case TYPE.AAAA:
      return end - start === 16 ? undefined : 'malformed';
    case 2: // NS
    case 3: // MD
    case 4: // MF
    case 5: // CNAME
    case 7: // MB
    case 8: // MG
    case 9: // MR
    case 12: // PTR
    case 39: // DNAME
      at = start;
      break;
    case 15: // MX
    case 18: // AFSDB
    case 21: // RT
    case 36: // KX
      at = start + 2;
      break;
    case 33: // SRV: priority, weight, port
      at = start + 6;
      break;
    case 6: {
      // SOA: MNAME, RNAME, then serial, refresh, retry, expire, minimum.
      const mname = readName(msg, start, end);
      if (mname < 0) return nameProblem(mname);
      const rname = readName(msg, mname, end);
      if (rname < 0) return nameProblem(rname);
      return rname + 20 === end ? undefined : 'malformed';
    }
    case TYPE.TXT: {
      // Character-strings, each a length byte and its bytes, filling the RDATA exactly.
      let q = start;
      while (q < end) q += 1 + msg[q]!;
      return q === end ? undefined : 'malformed';
    }
    default:
      return undefined;
  }
  if (at > end) return 'malformed';
  const nameEnd = readName(msg, at, end);
  if (nameEnd < 0) return nameProblem(nameEnd);
  return nameEnd === end ? undefined : 'malformed';
}

/** RFC 6891 §6.1.2: the OPT RDATA is a sequence of {code, length, data} to its last byte. */
function optionsFramed(msg: Uint8Array, start: number, end: number): boolean {
  let p = start;
  while (p < end) {
    if (p + 4 > end) return false;
    p += 4 + ((msg[p + 2]! << 8) | msg[p + 3]!);
  }
  return p === end;
}

/** Why an upstream reply (already matched to its query by ID and question) must not be cached or relayed; undefined when sound. */
export function checkReply(reply: Uint8Array, questionEnd: number): ReplyProblem | undefined {
  const length = reply.length;
  // A question end that is not an offset in the message would make every later offset meaningless.
  if (length < 12 || !Number.isInteger(questionEnd) || questionEnd < 12 || questionEnd > length) return 'malformed';
  if ((reply[2]! & 0x80) === 0) return 'not-a-response';
  if (((reply[2]! >> 3) & 0xf) !== OPCODE_QUERY) return 'opcode';
  if (((reply[4]! << 8) | reply[5]!) !== 1) return 'counts';
  const an = (reply[6]! << 8) | reply[7]!;
  const ns = (reply[8]! << 8) | reply[9]!;
  const total = an + ns + ((reply[10]! << 8) | reply[11]!);
  let extendedRcode = -1; // the OPT record's upper rcode bits; -1 while no OPT has been seen
  let p = questionEnd;
  for (let r = 0; r < total; r++) {
    const nameEnd = readName(reply, p, length);
    if (nameEnd < 0) return nameEnd === NAME_OVERRUN ? 'counts' : nameProblem(nameEnd);
    if (nameEnd + 10 > length) return 'counts';
    const type = (reply[nameEnd]! << 8) | reply[nameEnd + 1]!;
    const start = nameEnd + 10;
    const end = start + ((reply[nameEnd + 8]! << 8) | reply[nameEnd + 9]!);
    if (end > length) return 'counts';
    if (type === TYPE.OPT) {
      // RFC 6891 §6.1.1: at most one, in the additional section, owned by the root.
      if (extendedRcode >= 0 || r < an + ns || reply[p] !== 0 || !optionsFramed(reply, start, end)) return 'opt';
      extendedRcode = reply[nameEnd + 4]!;
    } else {
      const problem = checkRdata(reply, type, start, end);
      if (problem !== undefined) return problem;
    }
    p = end;
  }
  if (p !== length) return 'counts';
  const rcode = (reply[3]! & 0xf) | (extendedRcode > 0 ? extendedRcode << 4 : 0);
  return rcode > MAX_QUERY_RCODE ? 'rcode' : undefined;
}
