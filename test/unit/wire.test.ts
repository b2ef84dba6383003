import { describe, expect, it } from 'vitest';
import { readQuery } from '../../src/dns/wire.js';
import { renderAnswer, scanAnswer } from '../../src/dns/answer-bytes.js';
import { decodeResponse, encodeQuery, RCODE, TYPE } from '../helpers/dns-client.js';

function rcodeOf(buf: Buffer): number | undefined {
  const r = readQuery(buf);
  return r.ok ? 0 : r.rcode;
}

describe('readQuery', () => {
  it('reads id, lower-cased name, type, class and EDNS', () => {
    const r = readQuery(encodeQuery('WWW.TikTok.COM.', 'AAAA', { id: 4660, edns: { udpSize: 4096, do: true } }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.query).toMatchObject({ id: 4660, name: 'www.tiktok.com', type: TYPE.AAAA, qclass: 1, edns: { udpSize: 4096, do: true, version: 0 } });
    expect(r.query.labelOffsets).toEqual([12, 16, 23]);
  });

  it('reads the root name as ""', () => {
    const r = readQuery(encodeQuery('.', 'NS'));
    expect(r.ok && r.query.name).toBe('');
  });

  it('drops what is too short to answer and responses', () => {
    expect(rcodeOf(Buffer.alloc(5))).toBeUndefined();
    const resp = encodeQuery('a.example', 'A');
    resp[2] = resp[2]! | 0x80;
    expect(rcodeOf(resp)).toBeUndefined();
  });

  it('answers NOTIMP to opcodes other than QUERY', () => {
    const q = encodeQuery('a.example', 'A');
    q[2] = (q[2]! & 0x87) | (5 << 3); // UPDATE
    expect(rcodeOf(q)).toBe(RCODE.NOTIMP);
  });

  it.each([
    ['QDCOUNT 0', (q: Buffer) => q.writeUInt16BE(0, 4)],
    ['QDCOUNT 2', (q: Buffer) => q.writeUInt16BE(2, 4)],
    ['a label over 63 bytes', (q: Buffer) => (q[12] = 64)],
    ['a compression pointer in the question', (q: Buffer) => (q[12] = 0xc0)],
    ['a name running past the end', (q: Buffer) => (q[12] = 60)],
  ])('answers FORMERR to %s', (_name, mutate) => {
    const q = encodeQuery('abc.example', 'A');
    mutate(q);
    expect(rcodeOf(q)).toBe(RCODE.FORMERR);
  });

  it('answers FORMERR to a name over 255 bytes', () => {
    const long = Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.');
    const q = encodeQuery('x.example', 'A');
    const labels = Buffer.concat([...long.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
    expect(rcodeOf(Buffer.concat([q.subarray(0, 12), labels]))).toBe(RCODE.FORMERR);
  });

  it('answers FORMERR to a truncated OPT record and BADVERS to EDNS version 1', () => {
    const withOpt = encodeQuery('a.example', 'A', { edns: {} });
    expect(rcodeOf(withOpt.subarray(0, withOpt.length - 3))).toBe(RCODE.FORMERR);
    expect(rcodeOf(encodeQuery('a.example', 'A', { edns: { version: 1 } }))).toBe(RCODE.BADVERS);
  });
});

describe('answer bytes', () => {
  // A hand-made upstream answer: a.example A 192.0.2.1 TTL 300, plus an OPT record.
  function upstreamAnswer(): { query: Buffer; reply: Buffer } {
    const query = encodeQuery('a.example', 'A', { id: 1, edns: {} });
    const qEnd = 12 + 11 + 4;
    const rr = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 1]);
    const opt = Buffer.from([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    const reply = Buffer.concat([query.subarray(0, qEnd), rr, opt]);
    reply[2] = 0x81;
    reply[3] = 0x80;
    reply.writeUInt16BE(1, 6);
    reply.writeUInt16BE(1, 10);
    return { query, reply };
  }

  it('counts TTLs down, echoes the asker’s ID and case, and gives each client its own OPT', () => {
    const { reply } = upstreamAnswer();
    const scanned = scanAnswer(reply, 27, { minTtl: 0, maxTtl: 86400, negativeMaxTtl: 3600 })!;
    expect(scanned.cacheTtl).toBe(300);
    const asker = encodeQuery('A.EXAMPLE', 'A', { id: 999 });
    const r = readQuery(asker);
    if (!r.ok) throw new Error('bad query');
    const out = decodeResponse(renderAnswer(scanned, asker, r.query, 100));
    expect(out.id).toBe(999);
    expect(out.questions[0]!.name).toBe('A.EXAMPLE');
    expect(out.answers[0]).toMatchObject({ ttl: 200, data: '192.0.2.1' });
    expect(out.edns).toBeUndefined(); // the asker sent no EDNS
    const withEdns = encodeQuery('a.example', 'A', { id: 5, edns: { do: true } });
    const r2 = readQuery(withEdns);
    if (!r2.ok) throw new Error('bad query');
    expect(decodeResponse(renderAnswer(scanned, withEdns, r2.query, 0)).edns?.do).toBe(true);
  });

  it('clamps TTLs to the configured bounds', () => {
    const { reply } = upstreamAnswer();
    const scanned = scanAnswer(reply, 27, { minTtl: 0, maxTtl: 60, negativeMaxTtl: 3600 })!;
    expect(scanned.cacheTtl).toBe(60);
    expect(scanned.records).toBe(1);
    const asker = encodeQuery('a.example', 'A', { id: 3 });
    const r = readQuery(asker);
    if (!r.ok) throw new Error('bad query');
    expect(decodeResponse(renderAnswer(scanned, asker, r.query, 0)).answers[0]).toMatchObject({ ttl: 60 });
  });
});
