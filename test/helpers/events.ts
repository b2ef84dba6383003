// Query log events for property tests: every field over its whole range, with the strings drawn
// from `text` (and the name from `name`, by default the same).
import fc from 'fast-check';
import type { QueryEvent } from '../../src/querylog/event.js';

export function anyEvent(text: fc.Arbitrary<string>, name: fc.Arbitrary<string> = text): fc.Arbitrary<QueryEvent> {
  const nullable = fc.option(text, { nil: null });
  return fc.record({
    time: fc.integer({ min: 0, max: 4_102_444_800_000 }),
    instance: text,
    client: text,
    network: nullable,
    profile: nullable,
    policy: nullable,
    list: nullable,
    rule: nullable,
    name,
    type: text,
    decision: fc.constantFrom('allowed', 'blocked', 'refused', 'error', 'malformed'),
    wouldBlock: fc.boolean(),
    exception: fc.boolean(),
    cache: fc.boolean(),
    upstream: nullable,
    rcode: fc.option(fc.integer({ min: 0, max: 4095 }), { nil: null }),
    answers: fc.integer({ min: 0, max: 65535 }),
    durationMs: fc.oneof(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.constantFrom(0.001, 1.5, 12)),
    transport: fc.constantFrom('udp', 'tcp', 'dot', 'doh'),
  }) as fc.Arbitrary<QueryEvent>;
}

/** One ordinary allowed event, with `fields` changed: for tests that need an event, not a range of them. */
export function anEvent(fields: Partial<QueryEvent> = {}): QueryEvent {
  return {
    time: Date.parse('2026-03-01T12:00:00Z'),
    instance: 'test',
    client: '127.0.0.1',
    network: 'internal',
    profile: 'staff',
    policy: null,
    list: null,
    rule: null,
    name: 'example.org',
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
    ...fields,
  };
}
