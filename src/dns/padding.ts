// EDNS(0) Padding (RFC 7830) with the block-length policy of RFC 8467 §4.1: over an encrypted
// transport a response is padded to a multiple of 468 bytes when the query carried a Padding
// option, so that its length says less about the name asked. Pure functions on message bytes.
import { TYPE } from './codes.js';
import { skipName } from './wire.js';

export const EDNS_OPTION_PADDING = 12;
/** RFC 8467 §4.1: servers pad responses to a multiple of 468 octets. */
export const RESPONSE_PADDING_BLOCK = 468;

/**
 * Whether the query's OPT record (its additional section, from `questionEnd`: readQuery() allows
 * nothing else there) carries a Padding option, i.e. the client asks for padded responses.
 */
export function queryAsksPadding(msg: Uint8Array, questionEnd: number): boolean {
  const arcount = (msg[10]! << 8) | msg[11]!;
  let p = questionEnd;
  for (let r = 0; r < arcount; r++) {
    const nameEnd = skipName(msg, p);
    if (nameEnd < 0 || nameEnd + 10 > msg.length) return false;
    const rdEnd = nameEnd + 10 + ((msg[nameEnd + 8]! << 8) | msg[nameEnd + 9]!);
    if (rdEnd > msg.length) return false;
    if (((msg[nameEnd]! << 8) | msg[nameEnd + 1]!) === TYPE.OPT) return findOption(msg, nameEnd + 10, rdEnd, EDNS_OPTION_PADDING) >= 0;
    p = rdEnd;
  }
  return false;
}

/** Offset of the first option `code` in the OPT RDATA between `start` and `end`, or -1. */
function findOption(msg: Uint8Array, start: number, end: number, code: number): number {
  for (let o = start; o + 4 <= end;) {
    const len = (msg[o + 2]! << 8) | msg[o + 3]!;
    if (((msg[o]! << 8) | msg[o + 1]!) === code) return o;
    o += 4 + len;
  }
  return -1;
}

/**
 * `response` padded to a multiple of `block` bytes with a Padding option in its OPT record (an
 * existing one is resized). Unchanged when it has no OPT record (the query had no EDNS), is not a
 * well-formed message, or padding would take it beyond `maxLength` (RFC 8467 §4.6: then unpadded).
 */
export function padResponse(response: Buffer, block = RESPONSE_PADDING_BLOCK, maxLength = 0xffff): Buffer {
  const opt = findOpt(response);
  if (!opt) return response;
  const { rdlenAt, rdEnd } = opt;
  const existing = findOption(response, rdlenAt + 2, rdEnd, EDNS_OPTION_PADDING);
  // Without the existing padding option (a forwarded OPT is never kept, so this is rare).
  const removed = existing >= 0 ? 4 + response.readUInt16BE(existing + 2) : 0;
  const unpadded = response.length - removed;
  const padLength = (block - ((unpadded + 4) % block)) % block;
  const total = unpadded + 4 + padLength;
  if (total > maxLength) return response;
  const out = Buffer.alloc(total); // zero-filled: RFC 7830 §3 padding octets are 0x00
  const rdlen = response.readUInt16BE(rdlenAt) - removed + 4 + padLength;
  if (existing >= 0) {
    response.copy(out, 0, 0, existing);
    response.copy(out, existing, existing + removed, rdEnd);
  } else {
    response.copy(out, 0, 0, rdEnd);
  }
  let p = rdEnd - removed;
  out.writeUInt16BE(EDNS_OPTION_PADDING, p);
  out.writeUInt16BE(padLength, p + 2);
  p += 4 + padLength;
  response.copy(out, p, rdEnd); // records after the OPT, if any (sluice puts it last)
  out.writeUInt16BE(rdlen, rdlenAt);
  return out;
}

/** Where the OPT record's RDLENGTH field and RDATA end are, walking every section; undefined without one. */
function findOpt(msg: Buffer): { rdlenAt: number; rdEnd: number } | undefined {
  if (msg.length < 12) return undefined;
  let p = 12;
  for (let q = msg.readUInt16BE(4); q > 0; q--) {
    p = skipName(msg, p);
    if (p < 0 || p + 4 > msg.length) return undefined;
    p += 4;
  }
  const records = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  for (let r = 0; r < records; r++) {
    const nameEnd = skipName(msg, p);
    if (nameEnd < 0 || nameEnd + 10 > msg.length) return undefined;
    const rdEnd = nameEnd + 10 + msg.readUInt16BE(nameEnd + 8);
    if (rdEnd > msg.length) return undefined;
    if (msg.readUInt16BE(nameEnd) === TYPE.OPT) return { rdlenAt: nameEnd + 8, rdEnd };
    p = rdEnd;
  }
  return undefined;
}
