// The check every upstream reply passes before it is cached or relayed: each problem it names, sound
// replies of many shapes (compressed, negative, with EDE, every section), and properties over
// replies built by the test encoder: all are accepted, and no damage to one makes the check throw
// or accept what a strict decoder cannot read.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkReply, type ReplyProblem } from '../../src/dns/reply-check.js';
import { scanAnswer } from '../../src/dns/answer-bytes.js';
import { CLASS_IN, EDNS_OPTION_EDE, RCODE, TYPE, decodeResponse, encodeName, encodeOpt, encodeQuery, formatIPv6 } from '../helpers/dns-client.js';
import { defaultSoa, encodeResponse, encodeRr, parseQuery, type FakeAnswer, type Rr } from '../helpers/fake-upstream.js';
import { HOSTILE_KINDS, hostileReply } from '../helpers/hostile-upstream.js';

const PROBLEMS: readonly ReplyProblem[] = ['not-a-response', 'opcode', 'malformed', 'compression', 'counts', 'opt', 'rcode'];
const CLAMP = { minTtl: 0, maxTtl: 86400, negativeMaxTtl: 3600 };

/** Offset just after the question of a query (and of the reply that echoes it). */
function questionEnd(query: Buffer): number {
  return 12 + parseQuery(query).questionBytes.length;
}

/** The fake upstream's reply to `query` (TCP: never truncated). */
function fakeReply(query: Buffer, answer?: FakeAnswer): Buffer {
  return encodeResponse(query, answer, { transport: 'tcp' });
}

function pointer(offset: number): Buffer {
  return Buffer.from([0xc0 | (offset >> 8), offset & 0xff]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** A record from its wire parts; `rdlength` may lie. */
function rr(owner: Buffer, type: number, rdata: Buffer, rdlength = rdata.length): Buffer {
  const f = Buffer.alloc(10);
  f.writeUInt16BE(type, 0);
  f.writeUInt16BE(CLASS_IN, 2);
  f.writeUInt32BE(300, 4);
  f.writeUInt16BE(rdlength, 8);
  return Buffer.concat([owner, f, rdata]);
}

/** Labels without the root: a name that a pointer may finish. */
function labels(...ls: string[]): Buffer {
  return Buffer.concat(ls.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])));
}

const OPT = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
const A_DATA = Buffer.from([192, 0, 2, 1]);

/**
 * A reply to `query` from hand-made records: its header (QR, RD, RA, `rcode`) and question, then
 * `body` with the counts given. `body` is a function of the offset where it starts, for pointers.
 */
function reply(query: Buffer, counts: [number, number, number], body: (at: number) => Buffer, opts: { rcode?: number; flags?: number } = {}): Buffer {
  const qEnd = questionEnd(query);
  const h = Buffer.from(query.subarray(0, 12));
  h[2] = opts.flags ?? 0x81;
  h[3] = 0x80 | ((opts.rcode ?? 0) & 0xf);
  h.writeUInt16BE(1, 4);
  counts.forEach((c, i) => h.writeUInt16BE(c, 6 + i * 2));
  return Buffer.concat([h, query.subarray(12, qEnd), body(qEnd)]);
}

const Q = encodeQuery('www.example.com', 'A', { id: 0x1234 });
const Q_END = questionEnd(Q);
/** Offset of "example.com" inside Q's question name. */
const EXAMPLE_COM = 12 + 4;

function check(msg: Buffer, query: Buffer = Q): ReplyProblem | undefined {
  return checkReply(msg, questionEnd(query));
}

describe('hostile replies', () => {
  it.each(HOSTILE_KINDS)('%s is refused as %s, whatever the question', (kind, problem) => {
    for (const query of [Q, encodeQuery('x.test', 'AAAA', { edns: { do: true } }), encodeQuery('.', 'NS'), encodeQuery('Mixed.Case.EXAMPLE', 'TXT')]) {
      const id = query.readUInt16BE(0);
      expect(checkReply(hostileReply(kind, { id, raw: query }), questionEnd(query))).toBe(problem);
    }
  });
});

describe('header', () => {
  it('refuses a message with QR clear', () => {
    const r = fakeReply(Q);
    r[2] = r[2]! & 0x7f;
    expect(check(r)).toBe('not-a-response');
  });

  it.each([1, 2, 4, 5, 6, 15])('refuses opcode %d', (opcode) => {
    const r = fakeReply(Q);
    r[2] = (r[2]! & 0x87) | (opcode << 3);
    expect(check(r)).toBe('opcode');
  });

  it.each([0, 2])('refuses QDCOUNT %d', (qd) => {
    const r = fakeReply(Q);
    r.writeUInt16BE(qd, 4);
    expect(check(r)).toBe('counts');
  });

  it('refuses less than a header, and a question end outside the message', () => {
    const r = fakeReply(Q);
    expect(checkReply(r.subarray(0, 11), 11)).toBe('malformed');
    expect(checkReply(new Uint8Array(0), 0)).toBe('malformed');
    expect(checkReply(r, r.length + 1)).toBe('malformed');
    expect(checkReply(r, 11)).toBe('malformed');
    for (const end of [Number.NaN, Q_END + 0.5, Infinity, -Infinity]) expect(checkReply(r, end)).toBe('malformed');
  });
});

describe('names', () => {
  it.each([
    ['0x40 (extended label)', 0x41],
    ['0x80 (reserved)', 0x81],
  ])('refuses label type %s', (_n, byte) => {
    expect(check(reply(Q, [1, 0, 0], () => rr(Buffer.from([byte, 0x61, 0]), TYPE.A, A_DATA)))).toBe('malformed');
  });

  it('accepts a name of 255 bytes and refuses one of 256, uncompressed', () => {
    const name255 = Buffer.concat([labels('a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)), Buffer.from([0])]);
    const name256 = Buffer.concat([labels('a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(62)), Buffer.from([0])]);
    expect(name255.length).toBe(255);
    expect(check(reply(Q, [1, 0, 0], () => rr(name255, TYPE.A, A_DATA)))).toBeUndefined();
    expect(check(reply(Q, [1, 0, 0], () => rr(name256, TYPE.A, A_DATA)))).toBe('malformed');
  });

  it('counts the length of a name across its pointers', () => {
    // A question name of 244 bytes; 10 more label bytes before a pointer to it make 255, 11 make 256.
    const long = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(50)].join('.');
    const q = encodeQuery(long, 'A');
    expect(questionEnd(q) - 4 - 12).toBe(244);
    const owner = (label: string) => Buffer.concat([labels(label), pointer(12)]);
    expect(
      check(
        reply(q, [1, 0, 0], () => rr(owner('x'.repeat(10)), TYPE.A, A_DATA)),
        q,
      ),
    ).toBeUndefined();
    expect(
      check(
        reply(q, [1, 0, 0], () => rr(owner('x'.repeat(11)), TYPE.A, A_DATA)),
        q,
      ),
    ).toBe('malformed');
  });

  it.each([
    ['into the header', () => pointer(4)],
    ['to offset 0', () => pointer(0)],
    ['to itself', (at: number) => pointer(at)],
    ['ahead of itself', (at: number) => pointer(at + 2)],
    ['back into its own labels', (at: number) => Buffer.concat([labels('a'), pointer(at)])],
  ])('refuses an owner pointer %s', (_n, owner) => {
    expect(check(reply(Q, [1, 0, 0], (at) => rr(owner(at), TYPE.A, A_DATA)))).toBe('compression');
  });

  it('refuses a loop of two pointers that each point backwards from where they sit', () => {
    // Opaque RDATA at R holds: a 5-byte label (R) covering a pointer to R (at R + 2). The next
    // owner name, at R + 6, points to R + 2: R + 2 -> R -> label -> R + 6 -> R + 2 -> ...
    const r = reply(Q, [2, 0, 0], (at) => {
      const R = at + 2 + 10;
      const rdata = Buffer.concat([Buffer.from([5, 0x78]), pointer(R), Buffer.from([0x78, 0x78])]);
      return Buffer.concat([rr(pointer(12), 65280, rdata), rr(pointer(R + 2), TYPE.A, A_DATA)]);
    });
    expect(check(r)).toBe('compression');
  });

  it('follows a chain of 127 pointers and refuses 128', () => {
    // An opaque record holds pointers each to the one before, the first to the question name; a
    // CNAME's target points at the last: 1 + `chain` pointers to follow.
    const withChain = (chain: number) =>
      reply(Q, [2, 0, 0], (at) => {
        const start = at + 2 + 10;
        const links = Buffer.concat(Array.from({ length: chain }, (_, i) => pointer(i === 0 ? 12 : start + 2 * (i - 1))));
        return Buffer.concat([rr(pointer(12), 65280, links), rr(pointer(12), TYPE.CNAME, pointer(start + 2 * (chain - 1)))]);
      });
    expect(check(withChain(126))).toBeUndefined();
    expect(check(withChain(127))).toBe('compression');
  });

  it('refuses a name that a pointer leads past the end of the message', () => {
    // The pointer goes backwards to opaque RDATA whose first byte, read as a label, claims 60 bytes.
    const r = reply(Q, [2, 0, 0], (at) => {
      const R = at + 2 + 10;
      return Buffer.concat([rr(pointer(12), 65280, Buffer.from([60, 0x61])), rr(pointer(12), TYPE.CNAME, pointer(R))]);
    });
    expect(check(r)).toBe('malformed');
  });
});

describe('RDATA', () => {
  it.each([
    ['A of 5 bytes', TYPE.A, Buffer.from([192, 0, 2, 1, 0])],
    ['A of 3 bytes', TYPE.A, Buffer.from([192, 0, 2])],
    ['AAAA of 4 bytes', TYPE.AAAA, A_DATA],
    ['AAAA of 17 bytes', TYPE.AAAA, Buffer.alloc(17)],
    ['CNAME with a byte after its name', TYPE.CNAME, Buffer.concat([encodeName('t.example'), Buffer.from([0])])],
    ['NS with a byte after its name', TYPE.NS, Buffer.concat([pointer(EXAMPLE_COM), Buffer.from([0])])],
    ['PTR with a byte after its name', TYPE.PTR, Buffer.concat([encodeName('t.example'), Buffer.from([0])])],
    ['DNAME with a byte after its name', 39, Buffer.concat([encodeName('t.example'), Buffer.from([0])])],
    ['MB with a byte after its name', 7, Buffer.concat([encodeName('t.example'), Buffer.from([0])])],
    ['empty CNAME', TYPE.CNAME, Buffer.alloc(0)],
    ['MX of 1 byte', TYPE.MX, Buffer.from([0])],
    ['MX of only a preference', TYPE.MX, u16(10)],
    ['MX with a byte after its name', TYPE.MX, Buffer.concat([u16(10), encodeName('mail.example'), Buffer.from([0])])],
    ['KX with a byte after its name', 36, Buffer.concat([u16(10), encodeName('kx.example'), Buffer.from([0])])],
    ['AFSDB with a byte after its name', 18, Buffer.concat([u16(1), encodeName('afs.example'), Buffer.from([0])])],
    ['RT with a byte after its name', 21, Buffer.concat([u16(1), encodeName('rt.example'), Buffer.from([0])])],
    ['SRV of 5 bytes', TYPE.SRV, Buffer.alloc(5)],
    ['SRV with a byte after its name', TYPE.SRV, Buffer.concat([Buffer.alloc(6), encodeName('sip.example'), Buffer.from([0])])],
    ['SOA with 19 bytes after its names', TYPE.SOA, Buffer.concat([encodeName('ns1.example'), encodeName('hostmaster.example'), Buffer.alloc(19)])],
    ['SOA with 21 bytes after its names', TYPE.SOA, Buffer.concat([encodeName('ns1.example'), encodeName('hostmaster.example'), Buffer.alloc(21)])],
    ['SOA with one name', TYPE.SOA, Buffer.concat([encodeName('ns1.example'), Buffer.alloc(20)])],
  ])('refuses %s', (_n, type, rdata) => {
    expect(check(reply(Q, [1, 0, 0], () => rr(pointer(12), type, rdata)))).toBe('malformed');
  });

  it('refuses a name in RDATA that runs past its RDLENGTH, though the message goes on', () => {
    const target = encodeName('target.example');
    const r = reply(Q, [2, 0, 0], () => Buffer.concat([rr(pointer(12), TYPE.CNAME, target, target.length - 3), rr(pointer(12), TYPE.A, A_DATA)]));
    expect(check(r)).toBe('malformed');
    const cut = reply(Q, [2, 0, 0], () => Buffer.concat([rr(pointer(12), TYPE.CNAME, target.subarray(0, 5)), rr(pointer(12), TYPE.A, A_DATA)]));
    expect(check(cut)).toBe('malformed');
  });

  it('refuses a compression loop inside SOA, MX and SRV names', () => {
    for (const [type, prefix] of [
      [TYPE.SOA, Buffer.alloc(0)],
      [TYPE.MX, u16(10)],
      [TYPE.SRV, Buffer.alloc(6)],
    ] as const) {
      const r = reply(Q, [1, 0, 0], (at) => {
        const nameAt = at + 2 + 10 + prefix.length;
        const name = Buffer.concat([labels('x'), pointer(nameAt)]);
        return rr(pointer(12), type, Buffer.concat([prefix, name, type === TYPE.SOA ? Buffer.concat([encodeName('h.example'), Buffer.alloc(20)]) : Buffer.alloc(0)]));
      });
      expect(check(r)).toBe('compression');
    }
  });

  it('leaves the RDATA of other types alone', () => {
    const bytes = Buffer.from([0xc0, 0xff, 0xc0, 0x00, 0x41, 0x80]); // would be nonsense as a name
    for (const type of [TYPE.HTTPS, TYPE.SVCB, 99, 65280]) {
      expect(check(reply(Q, [1, 0, 0], () => rr(pointer(12), type, bytes)))).toBeUndefined();
    }
  });

  it('TXT character-strings must fill the RDATA exactly', () => {
    const txt = (data: number[]) => check(reply(Q, [1, 0, 0], () => rr(pointer(12), TYPE.TXT, Buffer.from(data))));
    expect(txt([2, 0x61, 0x62, 0])).toBeUndefined(); // "ab", ""
    expect(txt([3, 0x61, 0x62])).toBe('malformed'); // a string running past the RDATA
  });
});

describe('counts and lengths', () => {
  it.each([
    ['a trailing zero byte', (r: Buffer) => Buffer.concat([r, Buffer.from([0])])],
    ['ANCOUNT one higher', (r: Buffer) => (r.writeUInt16BE(r.readUInt16BE(6) + 1, 6), r)],
    ['NSCOUNT one higher', (r: Buffer) => (r.writeUInt16BE(1, 8), r)],
    ['ARCOUNT 65535', (r: Buffer) => (r.writeUInt16BE(0xffff, 10), r)],
    ['the last byte cut', (r: Buffer) => r.subarray(0, r.length - 1)],
    ['the record cut inside its fixed fields', (r: Buffer) => r.subarray(0, Q_END + 2 + 5)],
    ['the record cut inside its owner name', (r: Buffer) => r.subarray(0, Q_END + 1)],
  ])('refuses %s', (_n, damage) => {
    const r = reply(Q, [1, 0, 0], () => rr(pointer(12), TYPE.A, A_DATA));
    expect(check(r)).toBeUndefined();
    expect(check(damage(Buffer.from(r)))).toBe('counts');
  });

  it('refuses an uncompressed owner name that runs off the end', () => {
    expect(check(reply(Q, [1, 0, 0], () => labels('abc', 'def')))).toBe('counts');
  });

  it('refuses an RDLENGTH past the end', () => {
    expect(check(reply(Q, [1, 0, 0], () => rr(pointer(12), TYPE.TXT, Buffer.from([3, 0x61, 0x62, 0x63]), 5)))).toBe('counts');
    expect(check(reply(Q, [1, 0, 0], () => rr(pointer(12), TYPE.A, A_DATA, 0xffff)))).toBe('counts');
  });
});

describe('OPT', () => {
  it('refuses an OPT in the authority section', () => {
    expect(check(reply(Q, [0, 1, 0], () => OPT))).toBe('opt');
  });

  it('refuses an OPT whose owner is not the root', () => {
    expect(check(reply(Q, [0, 0, 1], () => Buffer.concat([pointer(12), OPT.subarray(1)])))).toBe('opt');
    expect(check(reply(Q, [0, 0, 1], () => Buffer.concat([encodeName('example'), OPT.subarray(1)])))).toBe('opt');
  });

  it('refuses two OPT records, even after other additional records', () => {
    expect(check(reply(Q, [0, 0, 3], () => Buffer.concat([OPT, rr(pointer(12), TYPE.A, A_DATA), OPT])))).toBe('opt');
  });

  it('refuses an OPT whose options do not fill its RDATA exactly', () => {
    const withOptions = (options: Buffer) => {
      const o = Buffer.concat([OPT, options]);
      o.writeUInt16BE(options.length, 9);
      return reply(Q, [0, 0, 1], () => o);
    };
    expect(check(withOptions(Buffer.from([0, 15, 0, 2, 0, 23])))).toBeUndefined();
    expect(check(withOptions(Buffer.from([0, 15, 0, 10, 0, 23])))).toBe('opt');
    expect(check(withOptions(Buffer.from([0, 15, 0])))).toBe('opt');
  });

  it('accepts an OPT after other additional records', () => {
    expect(check(reply(Q, [1, 0, 2], () => Buffer.concat([rr(pointer(12), TYPE.A, A_DATA), rr(pointer(12), TYPE.AAAA, Buffer.alloc(16)), OPT])))).toBeUndefined();
  });
});

describe('rcode', () => {
  it.each([0, 1, 2, 3, 4, 5])('accepts rcode %d, with and without an OPT', (rcode) => {
    expect(check(reply(Q, [0, 0, 0], () => Buffer.alloc(0), { rcode }))).toBeUndefined();
    expect(check(reply(Q, [0, 0, 1], () => OPT, { rcode }))).toBeUndefined();
  });

  it.each([6, 9, 10, 11, 15])('refuses header rcode %d', (rcode) => {
    expect(check(reply(Q, [0, 0, 0], () => Buffer.alloc(0), { rcode }))).toBe('rcode');
  });

  it.each([
    [1, 0],
    [1, 2],
    [0xff, 0xf],
  ])('refuses extended rcode bits %d over header rcode %d', (ext, rcode) => {
    const o = Buffer.from(OPT);
    o[5] = ext;
    expect(check(reply(Q, [0, 0, 1], () => o, { rcode }))).toBe('rcode');
  });
});

describe('sound replies', () => {
  it('the fake upstream’s built-in answers, with and without EDNS', () => {
    for (const name of ['www.example.com', 'nx.example.com', 'nodata.example.com']) {
      for (const type of ['A', 'AAAA', 'TXT'] as const) {
        for (const edns of [undefined, {}, { do: true }]) {
          const q = encodeQuery(name, type, edns ? { edns } : {});
          expect(check(fakeReply(q), q)).toBeUndefined();
        }
      }
    }
  });

  it('a compressed CNAME chain: a target that ends in a pointer, an owner that points at it', () => {
    const r = reply(Q, [2, 0, 0], (at) => {
      const cnameTarget = at + 2 + 10;
      return Buffer.concat([rr(pointer(12), TYPE.CNAME, Buffer.concat([labels('cdn'), pointer(EXAMPLE_COM)])), rr(pointer(cnameTarget), TYPE.A, A_DATA)]);
    });
    expect(check(r)).toBeUndefined();
    expect(decodeResponse(r).answers.map((a) => [a.name, a.data])).toEqual([
      ['www.example.com', 'cdn.example.com'],
      ['cdn.example.com', '192.0.2.1'],
    ]);
  });

  it('an NXDOMAIN with a compressed SOA in the authority section and an OPT', () => {
    const q = encodeQuery('nx.example.com', 'A', { edns: {} });
    const zone = 12 + 3;
    const soa = Buffer.concat([labels('ns1'), pointer(zone), labels('hostmaster'), pointer(zone), Buffer.alloc(20, 1)]);
    const r = reply(q, [0, 1, 1], () => Buffer.concat([rr(pointer(zone), TYPE.SOA, soa), OPT]), { rcode: RCODE.NXDOMAIN });
    expect(check(r, q)).toBeUndefined();
    expect(decodeResponse(r).authorities[0]!.data).toMatchObject({ mname: 'ns1.example.com', rname: 'hostmaster.example.com' });
  });

  it('a NODATA from the fake’s encoder', () => {
    const q = encodeQuery('nodata.example.com', 'AAAA', { edns: {} });
    expect(check(fakeReply(q, { authorities: [defaultSoa('nodata.example.com')] }), q)).toBeUndefined();
  });

  it('MX, SRV, KX, AFSDB and RT with compressed and plain names', () => {
    const r = reply(Q, [6, 0, 0], () =>
      Buffer.concat([
        rr(pointer(12), TYPE.MX, Buffer.concat([u16(10), labels('mail'), pointer(EXAMPLE_COM)])),
        rr(pointer(12), TYPE.MX, Buffer.concat([u16(20), encodeName('mx2.example.net')])),
        rr(pointer(12), TYPE.SRV, Buffer.concat([u16(0), u16(5), u16(5060), encodeName('sip.example.com')])),
        rr(pointer(12), 36, Buffer.concat([u16(1), pointer(12)])),
        rr(pointer(12), 18, Buffer.concat([u16(1), pointer(EXAMPLE_COM)])),
        rr(pointer(12), 21, Buffer.concat([u16(1), encodeName('.')])),
      ]),
    );
    expect(check(r)).toBeUndefined();
  });

  it('NS, PTR, DNAME and the RFC 1035 mailbox types with a root, plain and compressed name', () => {
    const types = [TYPE.NS, TYPE.PTR, 39, 3, 4, 7, 8, 9];
    const names = [encodeName('.'), encodeName('ns.example.org'), pointer(EXAMPLE_COM), Buffer.concat([labels('x'), pointer(12)])];
    const records = types.flatMap((t) => names.map((n) => rr(pointer(12), t, n)));
    expect(check(reply(Q, [records.length, 0, 0], () => Buffer.concat(records)))).toBeUndefined();
  });

  it('a SERVFAIL with an OPT carrying an EDE', () => {
    const q = encodeQuery('www.example.com', 'A', { edns: {} });
    const ede = Buffer.concat([u16(23), Buffer.from('upstream unreachable')]);
    const r = fakeReply(q, {
      rcode: RCODE.SERVFAIL,
      ednsOptions: [
        { code: EDNS_OPTION_EDE, data: ede },
        { code: 12, data: Buffer.alloc(8) },
      ],
    });
    expect(check(r, q)).toBeUndefined();
    expect(decodeResponse(r).edns?.ede).toEqual({ infoCode: 23, text: 'upstream unreachable' });
  });

  it('all three sections: answer, authority NS and glue, with an OPT last', () => {
    const q = encodeQuery('www.example.com', 'A', { edns: { do: true } });
    const answer: FakeAnswer = {
      aa: true,
      answers: [
        { name: 'www.example.com', type: TYPE.CNAME, ttl: 60, data: 'web.example.com' },
        { name: 'web.example.com', type: TYPE.A, ttl: 60, data: '192.0.2.7' },
        { name: 'web.example.com', type: TYPE.A, ttl: 60, data: '192.0.2.8' },
      ],
      authorities: [
        { name: 'example.com', type: TYPE.NS, ttl: 3600, data: 'ns1.example.com' },
        { name: 'example.com', type: TYPE.NS, ttl: 3600, data: 'ns2.example.com' },
      ],
      additionals: [
        { name: 'ns1.example.com', type: TYPE.A, ttl: 3600, data: '192.0.2.53' },
        { name: 'ns1.example.com', type: TYPE.AAAA, ttl: 3600, data: '2001:db8::53' },
        { name: 'example.com', type: TYPE.TXT, ttl: 3600, data: ['v=spf1 -all', ''] },
      ],
    };
    expect(check(fakeReply(q, answer), q)).toBeUndefined();
  });

  it('a question for the root name', () => {
    const q = encodeQuery('.', 'NS', { edns: {} });
    expect(questionEnd(q)).toBe(12 + 5);
    const answer: FakeAnswer = {
      answers: ['a', 'b', 'c'].map((l) => ({ name: '.', type: TYPE.NS, ttl: 518400, data: `${l}.root-servers.net` })),
      additionals: [{ name: 'a.root-servers.net', type: TYPE.A, ttl: 518400, data: '198.41.0.4' }],
    };
    expect(check(fakeReply(q, answer), q)).toBeUndefined();
    // Hand-compressed: owners are the root in the question; glue points into the first NS target.
    const r = reply(q, [2, 0, 1], (at) => {
      const first = rr(Buffer.from([0]), TYPE.NS, encodeName('a.root-servers.net'));
      const second = rr(Buffer.from([0]), TYPE.NS, Buffer.concat([labels('b'), pointer(at + 1 + 10 + 2)]));
      return Buffer.concat([first, second, rr(pointer(at + 1 + 10), TYPE.A, Buffer.from([198, 41, 0, 4]))]);
    });
    expect(check(r, q)).toBeUndefined();
    expect(decodeResponse(r).answers.map((a) => a.data)).toEqual(['a.root-servers.net', 'b.root-servers.net']);
  });

  it('a truncated reply of header and question, and TC on a full reply', () => {
    const q = encodeQuery('big.example', 'TXT', { edns: { udpSize: 512 } });
    expect(check(encodeResponse(q, { tc: true }), q)).toBeUndefined();
    const full = fakeReply(q, { answers: [{ name: 'big.example', type: TYPE.TXT, ttl: 1, data: ['x'] }] });
    full[2] = full[2]! | 0x02;
    expect(check(full, q)).toBeUndefined();
  });

  it('a reply of the class CH and a record with a TTL of 2^31 and more', () => {
    const q = encodeQuery('version.bind', 'TXT', { qclass: 3 });
    const r = reply(q, [1, 0, 0], () => {
      const rec = rr(pointer(12), TYPE.TXT, Buffer.from([4, 0x39, 0x2e, 0x31, 0x38]));
      rec.writeUInt16BE(3, 4);
      rec.writeUInt32BE(0xffffffff, 6);
      return rec;
    });
    expect(check(r, q)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// Properties over replies built by the fake upstream's encoder
// ---------------------------------------------------------------------------

/** A label: letters, digits and hyphen, or any bytes (as \DDD escapes). */
const label = fc.oneof(
  { weight: 3, arbitrary: fc.stringMatching(/^[a-zA-Z0-9_-]{1,20}$/) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 63 }).map((bytes) => Array.from(bytes, (b) => `\\${String(b).padStart(3, '0')}`).join('')) },
);
/** A name of at most 4 labels (at most 257 bytes: encodeName refuses those over 255, which are filtered). */
const name = fc
  .array(label, { maxLength: 4 })
  .map((ls) => (ls.length === 0 ? '.' : ls.join('.')))
  .filter((n) => {
    try {
      encodeName(n);
      return true;
    } catch {
      return false;
    }
  });

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => formatIPv6(Buffer.from(b)));

/** A record of a type the check reads (A, AAAA, the name types, SOA, MX, SRV) or leaves opaque. */
function record(owner: fc.Arbitrary<string>, target: fc.Arbitrary<string>): fc.Arbitrary<Rr> {
  const ttl = fc.oneof(fc.nat(86400), fc.constant(0xffffffff));
  const of = (type: number, data: fc.Arbitrary<Rr['data']>) => fc.record({ name: owner, type: fc.constant(type), ttl, data });
  return fc.oneof(
    of(TYPE.A, ipv4),
    of(TYPE.AAAA, ipv6),
    of(TYPE.CNAME, target),
    of(TYPE.NS, target),
    of(TYPE.PTR, target),
    of(TYPE.SOA, fc.record({ mname: target, rname: target, serial: fc.nat(), refresh: fc.nat(), retry: fc.nat(), expire: fc.nat(), minimum: fc.nat() })),
    of(TYPE.TXT, fc.array(fc.string({ maxLength: 300 }), { minLength: 1, maxLength: 3 })),
    of(
      TYPE.MX,
      fc.tuple(fc.nat(0xffff), target).map(([pref, n]) => Buffer.concat([u16(pref), encodeName(n)])),
    ),
    of(
      TYPE.SRV,
      fc.tuple(fc.uint8Array({ minLength: 6, maxLength: 6 }), target).map(([head, n]) => Buffer.concat([Buffer.from(head), encodeName(n)])),
    ),
    fc.record({
      name: owner,
      type: fc.oneof(fc.constantFrom(TYPE.HTTPS, TYPE.SVCB, 13, 99), fc.integer({ min: 256, max: 65535 })),
      ttl,
      data: fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)),
    }),
  );
}

interface Case {
  query: Buffer;
  answer: FakeAnswer;
}

/** A query (any name, common types, EDNS or not) and an answer to it that the fake can encode. */
const anyCase: fc.Arbitrary<Case> = fc
  .record({
    qname: name,
    qtype: fc.constantFrom('A', 'AAAA', 'CNAME', 'MX', 'TXT', 'SRV', 'HTTPS', 'NS', 'SOA', 'PTR'),
    edns: fc.option(fc.record({ do: fc.boolean() }), { nil: undefined }),
  })
  .chain(({ qname, qtype, edns }) => {
    const owner = fc.oneof(fc.constant(qname), name);
    const rrs = fc.array(record(owner, owner), { maxLength: 4 });
    return fc
      .record({
        rcode: fc.integer({ min: 0, max: 5 }),
        aa: fc.boolean(),
        answers: rrs,
        authorities: rrs,
        additionals: rrs,
        ednsOptions: fc.array(fc.record({ code: fc.nat(0xffff), data: fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)) }), { maxLength: 3 }),
      })
      .map((answer) => ({ query: encodeQuery(qname, qtype, edns ? { edns } : {}), answer }));
  });

/**
 * The fake's encoding of a case, but with every owner name, and every CNAME/NS/PTR target, that
 * equals the question name written as a pointer to it: what a compressing server sends.
 */
function compressedReply({ query, answer }: Case): Buffer {
  const plain = fakeReply(query, answer);
  const qEnd = questionEnd(query);
  const qname = parseQuery(query).fields.name.toLowerCase();
  const same = (n: string) => n.toLowerCase() === qname;
  const encode = (r: Rr): Buffer => {
    const full = encodeRr(r);
    const ownerLength = encodeName(r.name).length;
    const owner = same(r.name) ? pointer(12) : full.subarray(0, ownerLength);
    const fixedPart = Buffer.from(full.subarray(ownerLength, ownerLength + 10));
    let rdata = full.subarray(ownerLength + 10);
    if ((r.type === TYPE.CNAME || r.type === TYPE.NS || r.type === TYPE.PTR) && typeof r.data === 'string' && same(r.data)) rdata = pointer(12);
    fixedPart.writeUInt16BE(rdata.length, 8);
    return Buffer.concat([owner, fixedPart, rdata]);
  };
  const records = [...(answer.answers ?? []), ...(answer.authorities ?? []), ...(answer.additionals ?? [])].map(encode);
  const edns = parseQuery(query).fields.edns;
  const opt = edns ? [encodeOpt({ udpSize: 1232, do: parseQuery(query).fields.do, extendedRcode: 0, options: answer.ednsOptions ?? [] })] : [];
  return Buffer.concat([plain.subarray(0, qEnd), ...records, ...opt]);
}

/**
 * Damage to a message: a few bytes overwritten (often with values that mean something in names and
 * counts), sometimes then cut or extended. Mostly small, so that some damaged replies stay sound.
 */
const damage: fc.Arbitrary<Damage> = fc.record({
  writes: fc.array(fc.tuple(fc.nat(), fc.oneof(fc.nat(255), fc.constantFrom(0, 1, 2, 4, 12, 16, 41, 63, 64, 0x80, 0xc0, 0xff))), { minLength: 1, maxLength: 4 }),
  cut: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.nat() }),
  append: fc.oneof({ weight: 4, arbitrary: fc.constant(new Uint8Array(0)) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
});

interface Damage {
  writes: [number, number][];
  cut: number | undefined;
  append: Uint8Array;
}

/** `msg` with `d` done to it, but for bytes [keep[0], keep[1]). */
function damaged(msg: Buffer, d: Damage, keep: [number, number] = [0, 0]): Buffer {
  let m = Buffer.from(msg);
  const free = m.length - (keep[1] - keep[0]);
  for (const [at, value] of d.writes) {
    if (free <= 0) break;
    let i = at % free;
    if (i >= keep[0]) i += keep[1] - keep[0];
    m[i] = value;
  }
  if (d.cut !== undefined) m = m.subarray(0, Math.max(keep[1], m.length - (d.cut % (m.length + 1))));
  return Buffer.concat([m, d.append]);
}

describe('properties', () => {
  it('accepts every reply the fake upstream encodes, plain or compressed', () => {
    fc.assert(
      fc.property(anyCase, (c) => {
        const qEnd = questionEnd(c.query);
        expect(checkReply(fakeReply(c.query, c.answer), qEnd)).toBeUndefined();
        expect(checkReply(compressedReply(c), qEnd)).toBeUndefined();
      }),
      { numRuns: 400 },
    );
  });

  it('never throws on a damaged reply or any question end, and names a known problem', () => {
    fc.assert(
      fc.property(anyCase, damage, fc.integer({ min: -3, max: 70000 }), (c, d, anyEnd) => {
        for (const msg of [damaged(fakeReply(c.query, c.answer), d), damaged(compressedReply(c), d)]) {
          const qEnd = questionEnd(c.query);
          for (const end of [qEnd, anyEnd]) {
            const problem = checkReply(msg, end);
            if (problem !== undefined) expect(PROBLEMS).toContain(problem);
          }
        }
      }),
      { numRuns: 600 },
    );
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(600), (bytes, end) => {
        const problem = checkReply(bytes, end);
        if (problem !== undefined) expect(PROBLEMS).toContain(problem);
      }),
      { numRuns: 1000 },
    );
  });

  it('accepts a damaged reply only if a strict decoder and the answer scanner can read it', () => {
    // The question is kept intact, as in sluice, where a reply is checked only after its question
    // matched. TXT strings and EDNS options other than their framing are not the check's concern
    // (sluice relays record data it does not read as is, and replaces the OPT).
    const outsideTheCheck = /TXT string overruns RDATA|EDE option shorter than 2 bytes/;
    fc.assert(
      fc.property(anyCase, damage, (c, d) => {
        const qEnd = questionEnd(c.query);
        for (const msg of [damaged(fakeReply(c.query, c.answer), d, [12, qEnd]), damaged(compressedReply(c), d, [12, qEnd])]) {
          if (checkReply(msg, qEnd) !== undefined) continue;
          expect(scanAnswer(msg, qEnd, CLAMP)).toBeDefined();
          try {
            const decoded = decodeResponse(msg);
            expect(decoded.flags.qr).toBe(true);
            expect(decoded.rcode).toBeLessThanOrEqual(5);
          } catch (err) {
            expect(String(err)).toMatch(outsideTheCheck);
          }
        }
      }),
      { numRuns: 600 },
    );
  });

  it('finds damage often enough to matter: almost any write to a count, a pointer or an RDLENGTH is refused', () => {
    // Guards the property above against passing because damage never reaches anything checked.
    const r = reply(Q, [1, 0, 1], () => Buffer.concat([rr(pointer(12), TYPE.A, A_DATA), OPT]));
    expect(check(r)).toBeUndefined();
    const at = [6, 7, 8, 9, 10, 11, Q_END, Q_END + 1, Q_END + 10, Q_END + 11];
    const accepted: [number, number][] = [];
    for (const i of at) {
      for (let v = 0; v < 256; v++) {
        if (r[i] === v) continue;
        const m = Buffer.from(r);
        m[i] = v;
        if (check(m) === undefined) accepted.push([i, v]);
      }
    }
    // Only an owner pointer to another name stays sound: the question name's suffixes
    // "example.com", "com" and the root, and the zero bytes of its type and class, read as the root.
    expect(accepted).toEqual([16, 24, 28, 29, 31].map((target) => [Q_END + 1, target]));
  });
});
