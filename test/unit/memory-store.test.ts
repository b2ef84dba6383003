// The in-memory ring behind the dashboard and `sluice log`: names live in a ring of bytes beside
// the columns, so what it returns must always be the newest events, whole and in order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { MemoryStore } from '../../src/querylog/memory-store.js';
import { parseFilter } from '../../src/querylog/filter.js';

function ev(i: number, name: string, client = '10.0.0.1'): QueryEvent {
  return {
    time: 1_790_000_000_000 + i,
    instance: 't',
    client,
    network: 'internal',
    profile: 'staff',
    policy: null,
    list: null,
    rule: null,
    name,
    type: 'A',
    decision: 'allowed',
    wouldBlock: false,
    exception: false,
    cache: false,
    upstream: null,
    rcode: 0,
    answers: 1,
    durationMs: 1,
    transport: 'udp',
  };
}

describe('MemoryStore', () => {
  it('always holds the newest events, names intact, and all but at most one of the last `capacity` when names are under 64 characters', () => {
    const name = fc.oneof(
      { weight: 8, arbitrary: fc.stringMatching(/^[a-z0-9.-]{0,63}$/) },
      { weight: 1, arbitrary: fc.stringMatching(/^[a-z]{200,255}$/) }, // long: evicts more than one event
      { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 20, unit: 'grapheme' }) }, // not latin1: kept as a string
      { weight: 1, arbitrary: fc.stringMatching(/^[a-z]{256,300}$/) }, // too long for a length byte
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.array(name, { minLength: 1, maxLength: 6 }), { maxLength: 40 }), (capacity, batches) => {
        const store = new MemoryStore(capacity);
        const written: string[] = [];
        for (const batch of batches) {
          store.write(batch.map((n) => ev(written.length, n)));
          written.push(...batch);
          const got = [...store.all()].map((e) => e.name);
          expect(got.length).toBeLessThanOrEqual(Math.min(capacity, written.length));
          expect(got).toEqual(written.slice(written.length - got.length));
          const recent = written.slice(-capacity);
          if (recent.every((n) => n.length <= 63)) expect(got.length).toBeGreaterThanOrEqual(Math.min(capacity, written.length) - 1);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps every field of an event, and finds it by name and by client', () => {
    const store = new MemoryStore(100);
    for (let i = 0; i < 250; i++) store.write([ev(i, `host${i}.example.org`, `10.0.0.${i % 7}`)]);
    expect(store.size).toBe(100);
    const page = store.query(parseFilter({ domain: 'host249.example.org' }));
    expect(page.total).toBe(1);
    expect(page.events[0]).toEqual(ev(249, 'host249.example.org', '10.0.0.4'));
    expect(store.query(parseFilter({ client: '10.0.0.3' })).total).toBe(15);
    expect(store.query(parseFilter({ domain: 'host100.example.org' })).total).toBe(0); // fell off
  });
});
