// The binary batch that carries query log events to the SQLite writer thread: every event comes
// back field for field (nulls, flags, unicode in configured names, long names), and a damaged
// buffer is refused rather than decoded into nonsense.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { anyEvent } from '../helpers/events.js';
import { binaryEventCount, decodeEventBinary, encodeEventBinary } from '../../src/querylog/event-binary.js';
import { decodeEventBatch, encodeEventBatch } from '../../src/querylog/event-batch.js';

const text = fc.oneof(fc.constantFrom('internal', 'guest', 'app-ban', 'tiktok', 'p:3f9a', '127.0.0.1', '::1'), fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 12 }));
// Names are wire text read as latin1; the other strings are any text but lone surrogates (UTF-8).
const latin1Name = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 255 }).map((codes) => String.fromCharCode(...codes));
const event = anyEvent(text, latin1Name);

describe('binary event batches', () => {
  it('decode to the events that were encoded', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        const data = encodeEventBinary(events);
        expect(binaryEventCount(data)).toBe(events.length);
        expect(decodeEventBinary(data)).toEqual(events);
      }),
      { numRuns: 300 },
    );
  });

  it('refuse a cut or damaged buffer instead of decoding it', () => {
    const events = fc.sample(event, { numRuns: 20, seed: 42 });
    const data = encodeEventBinary(events);
    for (let cut = 1; cut < data.byteLength; cut += Math.max(1, Math.floor(data.byteLength / 97))) expect(decodeEventBinary(data.slice(0, data.byteLength - cut))).toBeUndefined();
    // The names at the end may be empty (one length byte each): cutting them must be seen too.
    const empties = encodeEventBinary(events.map((e) => ({ ...e, name: '' })));
    for (let cut = 1; cut <= 3; cut++) expect(decodeEventBinary(empties.slice(0, empties.byteLength - cut))).toBeUndefined();
    expect(decodeEventBinary(empties)).toHaveLength(20);
    expect(decodeEventBinary(new ArrayBuffer(2))).toBeUndefined();
    // A code that points past the dictionary: the first event's instance code, after the header
    // (16 bytes) and the time and duration columns (8 bytes an event each).
    const bad = data.slice(0);
    new Int32Array(bad, 16 + events.length * 16, 1)[0] = 1_000_000;
    expect(decodeEventBinary(bad)).toBeUndefined();
    // A rule that would start past the end of its name.
    const suffixed = encodeEventBinary([{ ...events[0]!, name: 'www.tiktok.com', rule: 'tiktok.com' }]);
    expect(decodeEventBinary(suffixed)![0]!.rule).toBe('tiktok.com');
    new Int32Array(suffixed, 16 + 16 + 6 * 4, 1)[0] = -2 - 15;
    expect(decodeEventBinary(suffixed)).toBeUndefined();
  });

  it('keep the columns when a large dictionary makes the batch outgrow its buffer', () => {
    const base = fc.sample(event, { numRuns: 1, seed: 5 })[0]!;
    const small = encodeEventBinary([base]);
    // Long distinct clients: the dictionary alone is several times what the columns needed.
    const events = Array.from({ length: 60 }, (_, i) => ({ ...base, time: i, name: `n${i}.example`, client: `${i}:${'é'.repeat(20_000)}` }));
    expect(decodeEventBinary(encodeEventBinary(events))).toEqual(events.map((e) => ({ ...e, client: e.client.slice(0, 16_000) })));
    expect(decodeEventBinary(small)).toEqual([base]);
  });

  it('carry a rule that is a suffix of the name, or the whole name, as a place in it', () => {
    const base = fc.sample(event, { numRuns: 1, seed: 3 })[0]!;
    const cases = [
      { name: 'www.tiktok.com', rule: 'tiktok.com' },
      { name: 'tiktok.com', rule: 'tiktok.com' },
      { name: 'tiktok.com', rule: '' },
      { name: 'a.tiktok.com', rule: 'b.tiktok.com' },
      { name: 'x'.repeat(300), rule: 'x'.repeat(10) },
      { name: 'tiktok.com', rule: null },
    ];
    const events = cases.map((c) => ({ ...base, ...c }));
    expect(decodeEventBinary(encodeEventBinary(events))).toEqual(events.map((e) => ({ ...e, name: e.name.slice(0, 255) })));
  });

  it('and the column batches from workers to the primary keep every transport', () => {
    const events = fc.sample(event, { numRuns: 40, seed: 7 }).map((e, i) => ({ ...e, transport: (['udp', 'tcp', 'dot', 'doh'] as const)[i % 4]! }));
    const batch = JSON.parse(JSON.stringify(encodeEventBatch(events))) as unknown;
    expect(decodeEventBatch(batch)).toEqual(events);
  });
});
