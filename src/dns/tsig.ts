// TSIG (RFC 8945) with HMAC-SHA256: verifying a signed request and signing the responses to it,
// the messages of a zone transfer each signed over the previous MAC (§5.3.1). Pure.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { encodeName, skipName } from './wire.js';

export const TYPE_TSIG = 250;
const CLASS_ANY = 255;
export const HMAC_SHA256 = 'hmac-sha256';
/** Allowed clock difference, seconds (the RFC's recommended fudge). */
const FUDGE = 300;

export interface TsigKey {
  /** Key name, lower case without the trailing dot. */
  name: string;
  secret: Buffer;
}

export type TsigCheck = { ok: true; mac: Buffer; timeSigned: number } | { ok: false; reason: 'unsigned' | 'badkey' | 'badsig' | 'badtime' | 'malformed' };

function nameLower(n: string): Buffer {
  return encodeName(n.toLowerCase().replace(/\.$/, ''));
}

function u48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(Math.floor(n / 2 ** 32), 0);
  b.writeUInt32BE(n >>> 0, 2);
  return b;
}

function variables(key: string, timeSigned: number, fudge: number, error: number, other: Buffer): Buffer {
  const mid = Buffer.alloc(6);
  mid.writeUInt16BE(CLASS_ANY, 0);
  mid.writeUInt32BE(0, 2);
  const tail = Buffer.alloc(6);
  tail.writeUInt16BE(fudge, 0);
  tail.writeUInt16BE(error, 2);
  tail.writeUInt16BE(other.length, 4);
  return Buffer.concat([nameLower(key), mid, nameLower(HMAC_SHA256), u48(timeSigned), tail, other]);
}

function readLabels(msg: Buffer, p: number): { name: string; end: number } | undefined {
  const labels: string[] = [];
  for (let guard = 0; guard < 128 && p < msg.length; guard++) {
    const len = msg[p]!;
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: p + 1 };
    if (len > 63 || p + 1 + len > msg.length) return undefined; // a TSIG's names are not compressed
    labels.push(msg.toString('latin1', p + 1, p + 1 + len));
    p += len + 1;
  }
  return undefined;
}

/** Offset of the last additional record (where a TSIG must be), or -1. */
function lastRecordOffset(msg: Buffer): number {
  const counts = [msg.readUInt16BE(4), msg.readUInt16BE(6), msg.readUInt16BE(8), msg.readUInt16BE(10)];
  let p = 12;
  for (let i = 0; i < counts[0]!; i++) {
    p = skipName(msg, p);
    if (p < 0) return -1;
    p += 4;
  }
  const rrs = counts[1]! + counts[2]! + counts[3]!;
  let last = -1;
  for (let i = 0; i < rrs; i++) {
    last = p;
    p = skipName(msg, p);
    if (p < 0 || p + 10 > msg.length) return -1;
    p += 10 + msg.readUInt16BE(p + 8);
    if (p > msg.length) return -1;
  }
  return last;
}

/** Verify the TSIG of a request with `key` (the one key configured). */
export function verifyRequest(msg: Buffer, key: TsigKey, nowMs: number): TsigCheck {
  if (msg.length < 12 || msg.readUInt16BE(10) === 0) return { ok: false, reason: 'unsigned' };
  const at = lastRecordOffset(msg);
  if (at < 0) return { ok: false, reason: 'malformed' };
  const owner = readLabels(msg, at);
  if (!owner || owner.end + 10 > msg.length || msg.readUInt16BE(owner.end) !== TYPE_TSIG) return { ok: false, reason: 'unsigned' };
  let p = owner.end + 10;
  const alg = readLabels(msg, p);
  if (!alg || alg.end + 10 > msg.length) return { ok: false, reason: 'malformed' };
  if (owner.name !== key.name || alg.name !== HMAC_SHA256) return { ok: false, reason: 'badkey' };
  p = alg.end;
  const timeSigned = msg.readUInt16BE(p) * 2 ** 32 + msg.readUInt32BE(p + 2);
  const fudge = msg.readUInt16BE(p + 6);
  const macLen = msg.readUInt16BE(p + 8);
  if (p + 10 + macLen + 6 > msg.length) return { ok: false, reason: 'malformed' };
  const mac = msg.subarray(p + 10, p + 10 + macLen);
  p += 10 + macLen;
  const originalId = msg.readUInt16BE(p);
  const error = msg.readUInt16BE(p + 2);
  const otherLen = msg.readUInt16BE(p + 4);
  const other = msg.subarray(p + 6, p + 6 + otherLen);
  // the message as it was before the TSIG was added: original ID, one additional record less
  const unsigned = Buffer.from(msg.subarray(0, at));
  unsigned.writeUInt16BE(originalId, 0);
  unsigned.writeUInt16BE(msg.readUInt16BE(10) - 1, 10);
  const expected = createHmac('sha256', key.secret)
    .update(unsigned)
    .update(variables(key.name, timeSigned, fudge, error, other))
    .digest();
  // a truncated MAC of at least half the length is allowed (§5.2.2.1); shorter ones are not
  if (macLen < 16 || macLen > expected.length || !timingSafeEqual(mac, expected.subarray(0, macLen))) return { ok: false, reason: 'badsig' };
  if (Math.abs(nowMs / 1000 - timeSigned) > fudge) return { ok: false, reason: 'badtime' };
  return { ok: true, mac: Buffer.from(mac), timeSigned };
}

/**
 * Sign the responses to a verified request: the first over the request's MAC, each later one
 * (the messages of a transfer) over the MAC before it, with only the timers as variables.
 */
export class TsigSigner {
  private previous: Buffer;
  private first = true;

  constructor(
    private readonly key: TsigKey,
    requestMac: Buffer,
    private readonly nowMs: () => number,
  ) {
    this.previous = requestMac;
  }

  /** `msg` with a TSIG record appended (and ARCOUNT raised). */
  sign(msg: Buffer): Buffer {
    const time = Math.floor(this.nowMs() / 1000);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(this.previous.length, 0);
    const hmac = createHmac('sha256', this.key.secret).update(len).update(this.previous).update(msg);
    if (this.first) hmac.update(variables(this.key.name, time, FUDGE, 0, Buffer.alloc(0)));
    else {
      const timers = Buffer.alloc(2);
      timers.writeUInt16BE(FUDGE, 0);
      hmac.update(u48(time)).update(timers);
    }
    const mac = hmac.digest();
    this.previous = mac;
    this.first = false;
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(TYPE_TSIG, 0);
    fixed.writeUInt16BE(CLASS_ANY, 2);
    fixed.writeUInt32BE(0, 4);
    const head = Buffer.alloc(4);
    head.writeUInt16BE(FUDGE, 0);
    head.writeUInt16BE(mac.length, 2);
    const tail = Buffer.alloc(6);
    tail.writeUInt16BE(msg.readUInt16BE(0), 0); // original ID
    const rdata = Buffer.concat([nameLower(HMAC_SHA256), u48(time), head, mac, tail]);
    fixed.writeUInt16BE(rdata.length, 8);
    const out = Buffer.concat([msg, nameLower(this.key.name), fixed, rdata]);
    out.writeUInt16BE(msg.readUInt16BE(10) + 1, 10);
    return out;
  }
}
