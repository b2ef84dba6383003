/**
 * Replies an upstream must never get relayed or cached: each one answers the
 * received query (its ID and question bytes, so it passes sluice's matching)
 * and breaks exactly one rule that src/dns/reply-check.ts enforces. Built byte
 * by byte, since the fake's encoder only writes well-formed messages.
 */
import type { ReplyProblem } from '../../src/dns/reply-check.js';
import { CLASS_IN, TYPE } from './dns-client.js';
import { parseQuery, type FakeHandler, type FakeQuery } from './fake-upstream.js';

/** Every hostile reply kind, with the problem the reply check must name for it. */
export const HOSTILE_REPLIES = {
  qr0: 'not-a-response',
  'owner-pointer-loop': 'compression',
  'cname-rdata-loop': 'compression',
  'forward-pointer': 'compression',
  'ancount-lie': 'counts',
  'trailing-record': 'counts',
  'double-opt': 'opt',
  'opt-in-answer': 'opt',
  'rcode-out-of-range': 'rcode',
  'extended-rcode': 'rcode',
  'truncated-rdata': 'counts',
  'bad-a-length': 'malformed',
} as const satisfies Record<string, ReplyProblem>;

export type HostileKind = keyof typeof HOSTILE_REPLIES;

/** [kind, problem] pairs, for it.each. */
export const HOSTILE_KINDS = Object.entries(HOSTILE_REPLIES) as [HostileKind, ReplyProblem][];

/** The A record data the hostile replies carry (never what the good upstream answers). */
export const HOSTILE_A = [203, 0, 113, 66];

const TTL = 300;
/** Offset of the question name: the target of a pointer meaning "the name asked for". */
const QNAME = 12;

function pointer(offset: number): Buffer {
  return Buffer.from([0xc0 | (offset >> 8), offset & 0xff]);
}

/** Type, class IN, TTL and RDLENGTH. */
function fixed(type: number, rdataLength: number): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(CLASS_IN, 2);
  b.writeUInt32BE(TTL, 4);
  b.writeUInt16BE(rdataLength, 8);
  return b;
}

/** A record; `rdlength` may lie about the data's length. */
function record(owner: Buffer, type: number, rdata: Buffer, rdlength = rdata.length): Buffer {
  return Buffer.concat([owner, fixed(type, rdlength), rdata]);
}

/** An A record for the question name, with HOSTILE_A. */
function aRecord(): Buffer {
  return record(pointer(QNAME), TYPE.A, Buffer.from(HOSTILE_A));
}

/** An OPT record: root owner, UDP size 1232, the given upper rcode bits. */
function opt(extendedRcode = 0): Buffer {
  const b = Buffer.alloc(11);
  b.writeUInt16BE(TYPE.OPT, 1);
  b.writeUInt16BE(1232, 3);
  b[5] = extendedRcode;
  return b;
}

interface Shape {
  qr?: boolean;
  rcode?: number;
  /** The counts the header claims: answer, authority, additional. */
  counts: [number, number, number];
  /** Everything after the question, given the offset where it starts. */
  body: (at: number) => Buffer;
}

const SHAPES: Record<HostileKind, Shape> = {
  qr0: { qr: false, counts: [1, 0, 0], body: () => aRecord() },
  // The owner name is a pointer to the pointer itself.
  'owner-pointer-loop': { counts: [1, 0, 0], body: (at) => record(pointer(at), TYPE.A, Buffer.from(HOSTILE_A)) },
  // The CNAME target is a label and then a pointer back to that label: a loop of one jump.
  'cname-rdata-loop': {
    counts: [1, 0, 0],
    body: (at) => {
      const rdataAt = at + 2 + 10;
      return record(pointer(QNAME), TYPE.CNAME, Buffer.concat([Buffer.from([4]), Buffer.from('loop'), pointer(rdataAt)]));
    },
  },
  // The owner name points ahead, at the CNAME target in its own RDATA.
  'forward-pointer': {
    counts: [1, 0, 0],
    body: (at) => record(pointer(at + 2 + 10), TYPE.CNAME, Buffer.from('\x06target\x07example\x00', 'latin1')),
  },
  'ancount-lie': { counts: [2, 0, 0], body: () => aRecord() },
  'trailing-record': { counts: [1, 0, 0], body: () => Buffer.concat([aRecord(), aRecord()]) },
  'double-opt': { counts: [1, 0, 2], body: () => Buffer.concat([aRecord(), opt(), opt()]) },
  'opt-in-answer': { counts: [2, 0, 0], body: () => Buffer.concat([aRecord(), opt()]) },
  'rcode-out-of-range': { rcode: 11, counts: [0, 0, 0], body: () => Buffer.alloc(0) },
  // Header rcode 0 with upper bits 1: rcode 16.
  'extended-rcode': { counts: [1, 0, 1], body: () => Buffer.concat([aRecord(), opt(1)]) },
  'truncated-rdata': { counts: [1, 0, 0], body: () => record(pointer(QNAME), TYPE.A, Buffer.from(HOSTILE_A), 40) },
  'bad-a-length': { counts: [1, 0, 0], body: () => record(pointer(QNAME), TYPE.A, Buffer.from([...HOSTILE_A, 0])) },
};

/** The hostile reply of `kind` to a query (as the fake upstream received it). */
export function hostileReply(kind: HostileKind, q: Pick<FakeQuery, 'id' | 'raw'>): Buffer {
  const shape = SHAPES[kind];
  const question = parseQuery(q.raw).questionBytes;
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  header[2] = (shape.qr === false ? 0 : 0x80) | 0x01; // QR, RD
  header[3] = 0x80 | ((shape.rcode ?? 0) & 0xf); // RA, rcode
  header.writeUInt16BE(1, 4);
  shape.counts.forEach((c, i) => header.writeUInt16BE(c, 6 + i * 2));
  return Buffer.concat([header, question, shape.body(12 + question.length)]);
}

/** A fake upstream handler that answers every query with the hostile reply of `kind`. */
export function hostileHandler(kind: HostileKind): FakeHandler {
  return (q) => ({ raw: hostileReply(kind, q) });
}
