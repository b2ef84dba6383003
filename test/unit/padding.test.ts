// EDNS padding (RFC 7830) to the RFC 8467 block length, on message bytes.
import { describe, expect, it } from 'vitest';
import { EDNS_OPTION_PADDING, RESPONSE_PADDING_BLOCK, padResponse, queryAsksPadding } from '../../src/dns/padding.js';
import { encodeAnswer, encodeRecord, readQuery } from '../../src/dns/wire.js';
import { decodeResponse, encodeQuery } from '../helpers/dns-client.js';

const PAD = { code: EDNS_OPTION_PADDING, data: Buffer.alloc(0) };
const EDE = { code: 15, data: Buffer.from([0, 15, 0x61]) };

function query(edns?: { options?: { code: number; data: Buffer }[] }) {
  const msg = encodeQuery('www.example.org', 'A', { id: 7, ...(edns ? { edns } : {}) });
  const r = readQuery(msg);
  if (!r.ok) throw new Error(r.reason);
  return { msg, q: r.query };
}

/** An answer to `msg` with `records` A records, and the OPT record when the query had EDNS. */
function answer(msg: Buffer, q: ReturnType<typeof query>['q'], records: number, ede?: { code: number; text: string }): Buffer {
  const tail = Buffer.concat(Array.from({ length: records }, (_, i) => encodeRecord(12, 1, 300, Buffer.from([192, 0, 2, i]))));
  return encodeAnswer(msg, q, 0, { an: records, ns: 0 }, tail, ede);
}

describe('queryAsksPadding', () => {
  it('sees a Padding option in the OPT record, among others', () => {
    for (const options of [[PAD], [EDE, PAD], [{ code: EDNS_OPTION_PADDING, data: Buffer.alloc(30) }]]) {
      const { msg, q } = query({ options });
      expect(queryAsksPadding(msg, q.questionEnd)).toBe(true);
    }
  });

  it('is false without EDNS, without the option, and on a truncated OPT', () => {
    const plain = query();
    expect(queryAsksPadding(plain.msg, plain.q.questionEnd)).toBe(false);
    const other = query({ options: [EDE] });
    expect(queryAsksPadding(other.msg, other.q.questionEnd)).toBe(false);
    const padded = query({ options: [PAD] });
    expect(queryAsksPadding(padded.msg.subarray(0, padded.msg.length - 3), padded.q.questionEnd)).toBe(false);
  });
});

describe('padResponse', () => {
  it('pads answers of every size to a multiple of 468 bytes and keeps the records', () => {
    const { msg, q } = query({ options: [PAD] });
    for (const n of [0, 1, 5, 20, 40]) {
      const plain = answer(msg, q, n);
      const padded = padResponse(plain);
      expect(padded.length % RESPONSE_PADDING_BLOCK).toBe(0);
      expect(padded.length).toBeGreaterThan(plain.length);
      expect(padded.length - plain.length).toBeLessThanOrEqual(RESPONSE_PADDING_BLOCK + 4);
      const d = decodeResponse(padded);
      expect(d.answers).toHaveLength(n);
      expect(d.answers.map((a) => a.data)).toEqual(decodeResponse(plain).answers.map((a) => a.data));
      const pad = d.edns!.options.find((o) => o.code === EDNS_OPTION_PADDING)!;
      expect(pad.data.equals(Buffer.alloc(pad.data.length))).toBe(true); // zero octets
    }
  });

  it('keeps an Extended DNS Error next to the padding', () => {
    const { msg, q } = query({ options: [PAD] });
    const padded = padResponse(answer(msg, q, 1, { code: 15, text: 'blocked' }));
    const d = decodeResponse(padded);
    expect(padded.length % RESPONSE_PADDING_BLOCK).toBe(0);
    expect(d.edns!.ede).toEqual({ infoCode: 15, text: 'blocked' });
  });

  it('resizes a Padding option already there instead of adding a second', () => {
    const { msg, q } = query({ options: [PAD] });
    const once = padResponse(answer(msg, q, 2), 100);
    const twice = padResponse(once);
    expect(twice.length % RESPONSE_PADDING_BLOCK).toBe(0);
    expect(decodeResponse(twice).edns!.options.filter((o) => o.code === EDNS_OPTION_PADDING)).toHaveLength(1);
  });

  it('leaves a response without OPT, a broken one, and one that would grow too large alone', () => {
    const plain = query();
    const noOpt = answer(plain.msg, plain.q, 1);
    expect(padResponse(noOpt)).toBe(noOpt);
    const { msg, q } = query({ options: [PAD] });
    const full = answer(msg, q, 3);
    expect(padResponse(full.subarray(0, full.length - 2))).toEqual(full.subarray(0, full.length - 2));
    expect(padResponse(full, 468, full.length + 10)).toBe(full);
  });
});
