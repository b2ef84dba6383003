// scanAnswer() on malformed input: truncated records, counts that lie, bad names and compression
// pointers, and random or damaged bytes. It must never throw, never loop, and either refuse the
// reply (undefined) or return a result whose every offset lies inside the message it describes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { answerMessage, renderAnswer, scanAnswer, type AnswerBytes, type TtlClamp } from '../../src/dns/answer-bytes.js';
import { checkReply } from '../../src/dns/reply-check.js';
import { readQuery } from '../../src/dns/wire.js';
import { CLASS_IN, RCODE, TYPE, decodeResponse, encodeQuery } from '../helpers/dns-client.js';
import { defaultSoa, encodeResponse, encodeRr, parseQuery, type FakeAnswer, type Rr } from '../helpers/fake-upstream.js';

const CLAMP: TtlClamp = { minTtl: 0, maxTtl: 86400, negativeMaxTtl: 3600 };

const Q = encodeQuery('www.example.com', 'A', { id: 0x1234, edns: {} });
const Q_END = 12 + parseQuery(Q).questionBytes.length;

/** The fake upstream's reply to `query` (uncompressed names, an OPT when the query had EDNS). */
function reply(answer: FakeAnswer, query = Q): Buffer {
  return encodeResponse(query, answer, { transport: 'tcp' });
}

const A_RR: Rr = { name: 'www.example.com', type: TYPE.A, ttl: 300, data: '192.0.2.1' };
const CNAME_RR: Rr = { name: 'www.example.com', type: TYPE.CNAME, ttl: 600, data: 'Edge.Example.NET' };
/** www CNAME edge, edge A, an authority NS and a glue A, then the OPT: every section has a record. */
const FULL = reply({
  answers: [CNAME_RR, { ...A_RR, name: 'edge.example.net', ttl: 120 }],
  authorities: [{ name: 'example.net', type: TYPE.NS, ttl: 3600, data: 'ns1.example.net' }],
  additionals: [{ name: 'ns1.example.net', type: TYPE.A, ttl: 3600, data: '192.0.2.53' }],
});
/** The same answer to the same question asked without EDNS: no OPT. */
const PLAIN = reply(
  {
    answers: [CNAME_RR, { ...A_RR, name: 'edge.example.net', ttl: 120 }],
    authorities: [{ name: 'example.net', type: TYPE.NS, ttl: 3600, data: 'ns1.example.net' }],
    additionals: [{ name: 'ns1.example.net', type: TYPE.A, ttl: 3600, data: '192.0.2.53' }],
  },
  encodeQuery('www.example.com', 'A', { id: 0x1234 }),
);

/** A record from wire parts, with an RDLENGTH that may lie. */
function rr(owner: Buffer, type: number, rdata: Buffer, opts: { ttl?: number; rdlength?: number } = {}): Buffer {
  const f = Buffer.alloc(10);
  f.writeUInt16BE(type, 0);
  f.writeUInt16BE(CLASS_IN, 2);
  f.writeUInt32BE(opts.ttl ?? 300, 4);
  f.writeUInt16BE(opts.rdlength ?? rdata.length, 8);
  return Buffer.concat([owner, f, rdata]);
}

const TO_QNAME = Buffer.from([0xc0, 12]);
const A_DATA = Buffer.from([192, 0, 2, 1]);

/** The query's header and question turned into a reply (QR, RA, `rcode`), with `counts` and `body`. */
function handMade(counts: [number, number, number], body: Buffer, rcode: number = RCODE.NOERROR): Buffer {
  const head = Buffer.from(Q.subarray(0, Q_END));
  head[2] = 0x81;
  head[3] = 0x80 | rcode;
  head.writeUInt16BE(counts[0], 6);
  head.writeUInt16BE(counts[1], 8);
  head.writeUInt16BE(counts[2], 10);
  return Buffer.concat([head, body]);
}

/** Offsets of the TTL fields of a message's records, walked by its own header counts; and where the walk ended. */
function walk(msg: Buffer, questionEnd: number): { ttlAt: number[]; end: number } {
  const total = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  const ttlAt: number[] = [];
  let p = questionEnd;
  for (let r = 0; r < total; r++) {
    for (;;) {
      const l = msg[p]!;
      if (l === 0) {
        p += 1;
        break;
      }
      if (l >= 0xc0) {
        p += 2;
        break;
      }
      p += l + 1;
    }
    ttlAt.push(p + 4);
    p += 10 + msg.readUInt16BE(p + 8);
  }
  return { ttlAt, end: p };
}

/** The TTL table of a result: where each TTL sits in the message, and the TTL served at age 0. */
function ttlTable(a: AnswerBytes): { at: number; ttl: number }[] {
  return Array.from({ length: a.records }, (_, i) => ({
    at: a.raw.readUInt16BE(a.base + a.length + i * 2),
    ttl: a.raw.readUInt32BE(a.base + a.length + a.records * 2 + i * 4),
  }));
}

/**
 * What holds of any result, whatever bytes it came from: the message is a prefix of the reply
 * (ARCOUNT aside), every TTL offset lies inside it, in order, after the question, and every TTL,
 * the cache TTL and the CNAME targets are within their bounds.
 */
function expectSound(a: AnswerBytes, bytes: Buffer, questionEnd: number, clamp: TtlClamp): void {
  const an = bytes.readUInt16BE(6);
  const counted = an + bytes.readUInt16BE(8) + bytes.readUInt16BE(10);
  expect(a.base).toBe(0);
  expect(a.length).toBeGreaterThanOrEqual(questionEnd);
  expect(a.length).toBeLessThanOrEqual(bytes.length);
  expect(a.raw.length).toBe(a.length + a.records * 6);
  expect(a.records).toBeLessThanOrEqual(counted);
  expect(a.rcode).toBe(bytes[3]! & 0xf);
  expect(a.answerCount).toBe(an);
  const msg = answerMessage(a);
  expect(msg.subarray(0, 10).equals(bytes.subarray(0, 10))).toBe(true);
  expect(msg.subarray(12).equals(bytes.subarray(12, a.length))).toBe(true);
  expect(msg.readUInt16BE(10)).toBeLessThanOrEqual(bytes.readUInt16BE(10));
  let prev = questionEnd;
  for (const { at, ttl } of ttlTable(a)) {
    expect(at).toBeGreaterThan(prev);
    expect(at + 6).toBeLessThanOrEqual(a.length); // the TTL and the RDLENGTH after it
    expect(ttl).toBeGreaterThanOrEqual(Math.min(clamp.minTtl, clamp.maxTtl));
    expect(ttl).toBeLessThanOrEqual(clamp.maxTtl);
    prev = at;
  }
  expect(Number.isInteger(a.cacheTtl)).toBe(true);
  expect(a.cacheTtl).toBeGreaterThanOrEqual(0);
  expect(a.cacheTtl).toBeLessThanOrEqual(Math.max(clamp.maxTtl, clamp.negativeMaxTtl));
  if (bytes[2]! & 0x02 || (a.rcode !== RCODE.NOERROR && a.rcode !== RCODE.NXDOMAIN)) expect(a.cacheTtl).toBe(0);
  for (const c of a.cnames ?? []) {
    expect(c).toBe(c.toLowerCase());
    expect(c.length).toBeLessThanOrEqual(254);
  }
  expect(a.storedAt).toBe(0);
  expect(a.expiresAt).toBe(0);
}

/** A reply the check accepts gives a result that reads back by its own counts, TTL table and all, and renders. */
function expectConsistent(a: AnswerBytes, questionEnd: number, query = Q): void {
  const msg = answerMessage(a);
  const { ttlAt, end } = walk(msg, questionEnd);
  expect(end).toBe(a.length);
  expect(ttlTable(a).map((t) => t.at)).toEqual(ttlAt);
  const read = readQuery(query);
  if (!read.ok) throw new Error('the test query does not read');
  const out = renderAnswer(a, query, read.query, 0);
  expect(out.readUInt16BE(0)).toBe(query.readUInt16BE(0));
  expect(out.length).toBe(a.length + (read.query.edns ? 11 : 0));
}

describe('a sound reply, as a baseline', () => {
  it('is scanned whole: every record but the OPT, TTLs in order, CNAME targets in lower case', () => {
    const a = scanAnswer(FULL, Q_END, CLAMP)!;
    expectSound(a, FULL, Q_END, CLAMP);
    expectConsistent(a, Q_END);
    expect(a.records).toBe(4);
    expect(ttlTable(a).map((t) => t.ttl)).toEqual([600, 120, 3600, 3600]);
    expect(a.cacheTtl).toBe(120);
    expect(a.cnames).toEqual(['edge.example.net']);
    expect(answerMessage(a).readUInt16BE(10)).toBe(1); // the glue; the OPT is gone
    expect(a.length).toBe(FULL.length - 11);
  });
});

describe('truncated records', () => {
  it('every prefix of a reply is refused, up to its last byte', () => {
    for (const whole of [FULL, PLAIN]) {
      expect(scanAnswer(whole, Q_END, CLAMP)).toBeDefined();
      for (let cut = 0; cut < whole.length; cut++) expect(scanAnswer(whole.subarray(0, cut), Q_END, CLAMP), `cut at ${cut}`).toBeUndefined();
    }
  });

  it('a record whose RDLENGTH runs past the end is refused', () => {
    expect(scanAnswer(handMade([1, 0, 0], rr(TO_QNAME, TYPE.A, A_DATA, { rdlength: 5 })), Q_END, CLAMP)).toBeUndefined();
    expect(scanAnswer(handMade([1, 0, 0], rr(TO_QNAME, TYPE.A, A_DATA, { rdlength: 0xffff })), Q_END, CLAMP)).toBeUndefined();
  });

  it('a record cut anywhere (its owner, type, class, TTL, RDLENGTH or RDATA) is refused', () => {
    const whole = rr(TO_QNAME, TYPE.A, A_DATA);
    for (let keep = 0; keep < whole.length; keep++) expect(scanAnswer(handMade([1, 0, 0], whole.subarray(0, keep)), Q_END, CLAMP), `${keep} bytes`).toBeUndefined();
  });

  it('a question end past the reply is refused', () => {
    expect(scanAnswer(FULL, FULL.length + 1, CLAMP)).toBeUndefined();
  });
});

describe('counts that lie', () => {
  it('more records counted than there are: refused, in any section', () => {
    for (const at of [6, 8, 10]) {
      const m = Buffer.from(PLAIN);
      m.writeUInt16BE(m.readUInt16BE(at) + 1, at);
      expect(scanAnswer(m, Q_END, CLAMP), `count at ${at}`).toBeUndefined();
    }
  });

  it('65,535 records counted in every section of a small message: refused at once', () => {
    const m = Buffer.from(PLAIN);
    for (const at of [6, 8, 10]) m.writeUInt16BE(0xffff, at);
    expect(scanAnswer(m, Q_END, CLAMP)).toBeUndefined();
  });

  it('with an OPT, the scan ends at the OPT, whatever the counts say; the reply check refuses those counts', () => {
    // The scanner frames records and leaves the counts to checkReply(), which every forwarded reply passes first.
    for (const at of [6, 8, 10]) {
      for (const lie of [FULL.readUInt16BE(at) + 1, 0xffff]) {
        const m = Buffer.from(FULL);
        m.writeUInt16BE(lie, at);
        expect(checkReply(m, Q_END), `count at ${at}: ${lie}`).toMatch(/^(opt|counts)$/);
        const a = scanAnswer(m, Q_END, CLAMP)!;
        expectSound(a, m, Q_END, CLAMP);
        expect(a.length).toBe(FULL.length - 11);
      }
    }
  });

  it('fewer records counted than there are: only the counted ones are kept, the rest is cut off', () => {
    const m = Buffer.from(FULL);
    m.writeUInt16BE(1, 6); // one answer of two; the rest of the message is not counted
    m.writeUInt16BE(0, 8);
    m.writeUInt16BE(0, 10);
    const a = scanAnswer(m, Q_END, CLAMP)!;
    expectSound(a, m, Q_END, CLAMP);
    expectConsistent(a, Q_END);
    expect(a.records).toBe(1);
    expect(a.cnames).toEqual(['edge.example.net']);
    expect(a.length).toBe(Q_END + encodeRr(CNAME_RR).length); // ends where the second record began
  });

  it('an OPT that ARCOUNT leaves out is not read: the message ends before it', () => {
    const m = reply({ answers: [A_RR] });
    m.writeUInt16BE(0, 10);
    const a = scanAnswer(m, Q_END, CLAMP)!;
    expectSound(a, m, Q_END, CLAMP);
    expect(a.length).toBe(m.length - 11);
    expect(a.records).toBe(1);
  });

  it('an OPT in the answer section stops the scan there (the reply check refuses such a reply first)', () => {
    const opt = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    const m = handMade([2, 0, 0], Buffer.concat([opt, rr(TO_QNAME, TYPE.A, A_DATA)]));
    expect(checkReply(m, Q_END)).toBe('opt');
    const a = scanAnswer(m, Q_END, CLAMP)!;
    expectSound(a, m, Q_END, CLAMP);
    expect(a.length).toBe(Q_END);
    expect(a.records).toBe(0);
  });

  it('an OPT before further additional records: they are dropped with it and ARCOUNT says so', () => {
    const opt = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    const m = handMade([1, 0, 3], Buffer.concat([rr(TO_QNAME, TYPE.A, A_DATA), rr(TO_QNAME, TYPE.TXT, Buffer.from([1, 0x61])), opt, rr(TO_QNAME, TYPE.TXT, Buffer.from([1, 0x62]))]));
    expect(checkReply(m, Q_END)).toBeUndefined();
    const a = scanAnswer(m, Q_END, CLAMP)!;
    expectSound(a, m, Q_END, CLAMP);
    expectConsistent(a, Q_END);
    expect(a.records).toBe(2);
    expect(answerMessage(a).readUInt16BE(10)).toBe(1);
  });
});

describe('bad names and compression pointers', () => {
  it('a pointer cut in half at the end of the message is refused', () => {
    expect(scanAnswer(handMade([1, 0, 0], Buffer.from([0xc0])), Q_END, CLAMP)).toBeUndefined();
  });

  it('an owner name that never ends, or with a reserved label type (0x40, 0x80), is refused', () => {
    expect(scanAnswer(handMade([1, 0, 0], Buffer.from([3, 0x61, 0x62, 0x63, 3, 0x64])), Q_END, CLAMP)).toBeUndefined();
    for (const bad of [0x40, 0x7f, 0x80, 0xbf]) expect(scanAnswer(handMade([1, 0, 0], rr(Buffer.from([bad, 0]), TYPE.A, A_DATA)), Q_END, CLAMP), `label 0x${bad.toString(16)}`).toBeUndefined();
  });

  it('an owner name of more labels than any name has is refused, not followed to the end', () => {
    const labels = Buffer.concat([...Array.from({ length: 200 }, () => Buffer.from([1, 0x61])), Buffer.from([0])]);
    expect(scanAnswer(handMade([1, 0, 0], rr(labels, TYPE.A, A_DATA)), Q_END, CLAMP)).toBeUndefined();
  });

  it('owner pointers are not followed (framing only): one past the end still frames, and the reply check refuses it', () => {
    const m = handMade([1, 0, 0], rr(Buffer.from([0xc3, 0xff]), TYPE.A, A_DATA));
    expect(checkReply(m, Q_END)).toBe('compression');
    const a = scanAnswer(m, Q_END, CLAMP)!;
    expectSound(a, m, Q_END, CLAMP);
    expect(a.records).toBe(1);
  });

  it('a CNAME target that loops, or points past the end, gives no target, and the scan ends', () => {
    // The target's pointer at offset `here` points at itself; the other one points far past the end.
    const here = Q_END + 12;
    const loop = handMade([1, 0, 0], rr(TO_QNAME, TYPE.CNAME, Buffer.from([0xc0 | (here >> 8), here & 0xff])));
    const past = handMade([1, 0, 0], rr(TO_QNAME, TYPE.CNAME, Buffer.from([0xff, 0xff])));
    const cutLabel = handMade([1, 0, 0], rr(TO_QNAME, TYPE.CNAME, Buffer.from([10, 0x61])));
    for (const m of [loop, past, cutLabel]) {
      const a = scanAnswer(m, Q_END, CLAMP)!;
      expectSound(a, m, Q_END, CLAMP);
      expect(a.cnames).toBeUndefined();
    }
  });

  it('a CNAME target longer than 255 bytes through pointers gives no target', () => {
    // 63-byte labels at the start of the body, chained: each name ends in a pointer to the one before.
    const label = Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)]);
    const body: Buffer[] = [];
    let at = Q_END;
    let prev = -1;
    for (let i = 0; i < 5; i++) {
      const name = Buffer.concat([label, prev < 0 ? Buffer.from([0]) : Buffer.from([0xc0 | (prev >> 8), prev & 0xff])]);
      const record = rr(TO_QNAME, TYPE.TXT, name); // carries the name as RDATA, for the pointers
      body.push(record);
      prev = at + 12;
      at += record.length;
    }
    body.push(rr(TO_QNAME, TYPE.CNAME, Buffer.from([0xc0 | (prev >> 8), prev & 0xff])));
    const m = handMade([6, 0, 0], Buffer.concat(body));
    const a = scanAnswer(m, Q_END, CLAMP)!;
    expectSound(a, m, Q_END, CLAMP);
    expect(a.records).toBe(6);
    expect(a.cnames).toBeUndefined();
  });
});

describe('TTLs and negative answers from odd records', () => {
  it('a TTL with the top bit set counts as 0, then is clamped (RFC 2181 §8)', () => {
    const m = handMade([1, 0, 0], rr(TO_QNAME, TYPE.A, A_DATA, { ttl: 0x80000001 }));
    expect(scanAnswer(m, Q_END, CLAMP)!.cacheTtl).toBe(0);
    const floored = scanAnswer(m, Q_END, { ...CLAMP, minTtl: 30 })!;
    expect(floored.cacheTtl).toBe(30);
    expect(ttlTable(floored)[0]!.ttl).toBe(30);
  });

  it('an NXDOMAIN whose SOA is too short to hold MINIMUM is not cached', () => {
    const soa = reply({ rcode: RCODE.NXDOMAIN, authorities: [defaultSoa('www.example.com')] });
    expect(scanAnswer(soa, Q_END, CLAMP)!.cacheTtl).toBe(60);
    const short = handMade([0, 1, 0], rr(TO_QNAME, TYPE.SOA, Buffer.alloc(21)), RCODE.NXDOMAIN);
    const a = scanAnswer(short, Q_END, CLAMP)!;
    expectSound(a, short, Q_END, CLAMP);
    expect(a.cacheTtl).toBe(0);
  });

  it('a truncated reply (TC) is never cached; an error rcode is never cached', () => {
    const tc = Buffer.from(reply({ answers: [A_RR] }));
    tc[2] = tc[2]! | 0x02;
    expect(scanAnswer(tc, Q_END, CLAMP)!.cacheTtl).toBe(0);
    const refused = reply({ rcode: RCODE.REFUSED, answers: [A_RR] });
    expect(scanAnswer(refused, Q_END, CLAMP)!.cacheTtl).toBe(0);
  });

  it('an A record of the wrong length is not read as an address', () => {
    const m = handMade([1, 0, 0], rr(TO_QNAME, TYPE.A, Buffer.from([10, 0, 0])));
    const a = scanAnswer(m, Q_END, CLAMP)!;
    expectSound(a, m, Q_END, CLAMP);
    expect(a.privateAddress).toBe(false);
    expect(scanAnswer(handMade([1, 0, 0], rr(TO_QNAME, TYPE.A, Buffer.from([10, 0, 0, 1]))), Q_END, CLAMP)!.privateAddress).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const anyClamp: fc.Arbitrary<TtlClamp> = fc
  .record({ a: fc.nat(100_000), b: fc.nat(100_000), neg: fc.nat(100_000) })
  .map(({ a, b, neg }) => ({ minTtl: Math.min(a, b), maxTtl: Math.max(a, b), negativeMaxTtl: neg }));

const anyRr: fc.Arbitrary<Rr> = fc.oneof(
  fc.record({ name: fc.constant('www.example.com'), type: fc.constant(TYPE.A), ttl: fc.nat(), data: fc.ipV4() }),
  fc.record({ name: fc.constantFrom('www.example.com', 'Edge.Example.Net'), type: fc.constant(TYPE.CNAME), ttl: fc.nat(), data: fc.domain() }),
  fc.record({ name: fc.constant('example.com'), type: fc.constant(TYPE.TXT), ttl: fc.nat(), data: fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 3 }) }),
  fc.constant(defaultSoa('www.example.com')),
);

/** A sound reply the fake upstream encodes, to a query with or without EDNS. */
const anyReply = fc
  .record({
    edns: fc.boolean(),
    rcode: fc.constantFrom(RCODE.NOERROR, RCODE.NXDOMAIN, RCODE.SERVFAIL),
    answers: fc.array(anyRr, { maxLength: 4 }),
    authorities: fc.array(anyRr, { maxLength: 2 }),
    additionals: fc.array(anyRr, { maxLength: 2 }),
  })
  .map(({ edns, ...answer }) => {
    const query = encodeQuery('www.example.com', 'A', { id: 7, ...(edns ? { edns: {} } : {}) });
    return { query, bytes: reply(answer, query) };
  });

/** Damage: writes at random offsets after the question (kept: sluice matches it first), a cut, bytes appended. */
const damage = fc.record({
  writes: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
  cut: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: fc.nat(), weight: 1 }),
  append: fc.oneof({ arbitrary: fc.constant(new Uint8Array(0)), weight: 3 }, { arbitrary: fc.uint8Array({ maxLength: 24 }), weight: 1 }),
});

function damaged(bytes: Buffer, d: { writes: [number, number][]; cut: number | undefined; append: Uint8Array }, from: number): Buffer {
  let m = Buffer.from(bytes);
  const span = m.length - from;
  if (span > 0) for (const [at, v] of d.writes) m[from + (at % span)] = v;
  if (d.cut !== undefined) m = m.subarray(0, from + (d.cut % (span + 1)));
  return Buffer.concat([m, d.append]);
}

describe('properties', () => {
  it('random bytes: never throws; undefined or sound', () => {
    // Half the time with small counts and a question end inside the message, so that some of them scan.
    let scanned = 0;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 12, maxLength: 700 }), fc.nat(720), fc.boolean(), anyClamp, (raw, end, tame, clamp) => {
        const bytes = Buffer.from(raw);
        let qEnd = 12 + end;
        if (tame) {
          for (const at of [6, 8, 10]) bytes.writeUInt16BE(bytes[at]! % 3, at);
          qEnd = 12 + (end % (bytes.length - 11));
        }
        const a = scanAnswer(bytes, qEnd, clamp);
        if (a) {
          scanned++;
          expectSound(a, bytes, qEnd, clamp);
        }
      }),
      { numRuns: 3000 },
    );
    expect(scanned).toBeGreaterThan(20);
  });

  it('a real question followed by random records: never throws; undefined or sound', () => {
    // Small counts and record-shaped bytes, so the scan gets past the first record more often.
    const body = fc.array(
      fc.oneof(
        { arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)), weight: 1 },
        { arbitrary: fc.constant(rr(TO_QNAME, TYPE.A, A_DATA)), weight: 2 },
        { arbitrary: fc.constant(Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0])), weight: 1 },
        fc.tuple(fc.constantFrom(TYPE.A, TYPE.CNAME, TYPE.SOA, TYPE.OPT, TYPE.TXT), fc.uint8Array({ maxLength: 30 }), fc.nat()).map(([t, d, ttl]) => rr(TO_QNAME, t, Buffer.from(d), { ttl })),
      ),
      { maxLength: 6 },
    );
    let scanned = 0;
    let checked = 0;
    fc.assert(
      fc.property(fc.option(fc.tuple(fc.nat(4), fc.nat(3), fc.nat(3)), { nil: undefined }), fc.nat(5), fc.nat(0xff), body, anyClamp, (lying, rcode, bits, parts, clamp) => {
        // Counts at random, or (one time in five) the number of parts, the last in the additional section.
        const counts: [number, number, number] = lying ?? [Math.max(0, parts.length - 1), 0, Math.min(1, parts.length)];
        // A response to a QUERY with rcode 0-5 (what the check lets through); AA, TC, RD, RA, AD, CD at random.
        const m = handMade(counts, Buffer.concat(parts), rcode);
        m[2] = 0x80 | (bits & 0x07);
        m[3] = (bits & 0xf0) | rcode;
        const a = scanAnswer(m, Q_END, clamp);
        if (a) {
          scanned++;
          expectSound(a, m, Q_END, clamp);
          if (checkReply(m, Q_END) === undefined) {
            checked++;
            expectConsistent(a, Q_END);
          }
        }
      }),
      { numRuns: 2000 },
    );
    expect(scanned).toBeGreaterThan(200);
    expect(checked).toBeGreaterThan(50);
  });

  it('every sound reply is scanned, and reads back consistently', () => {
    fc.assert(
      fc.property(anyReply, anyClamp, ({ query, bytes }, clamp) => {
        const qEnd = 12 + parseQuery(query).questionBytes.length;
        expect(checkReply(bytes, qEnd)).toBeUndefined();
        const a = scanAnswer(bytes, qEnd, clamp);
        expect(a).toBeDefined();
        expectSound(a!, bytes, qEnd, clamp);
        expectConsistent(a!, qEnd, query);
        expect(decodeResponse(answerMessage(a!)).answers).toHaveLength(bytes.readUInt16BE(6));
      }),
      { numRuns: 500 },
    );
  });

  it('a damaged reply: never throws; undefined or sound; and whatever the reply check accepts is scanned consistently', () => {
    let scanned = 0;
    let accepted = 0;
    fc.assert(
      fc.property(anyReply, damage, anyClamp, ({ query, bytes }, d, clamp) => {
        const qEnd = 12 + parseQuery(query).questionBytes.length;
        const m = damaged(bytes, d, qEnd);
        const a = scanAnswer(m, qEnd, clamp);
        if (a) {
          scanned++;
          expectSound(a, m, qEnd, clamp);
        }
        if (checkReply(m, qEnd) === undefined) {
          accepted++;
          expect(a).toBeDefined();
          expectConsistent(a!, qEnd, query);
        }
      }),
      { numRuns: 1500 },
    );
    // Guards against damage that never leaves anything to scan, or never anything the check accepts.
    expect(scanned).toBeGreaterThan(300);
    expect(accepted).toBeGreaterThan(200);
  });
});
