// fitAnswer(): an answer larger than the client's buffer is cut at section boundaries, never inside
// what the client needs (RFC 1035 §4.2.1, RFC 2181 §9, RFC 4035 §3.1.1).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fitAnswer, readQuery, type Query } from '../../src/dns/wire.js';
import { decodeResponse, encodeQuery, RCODE, TYPE } from '../helpers/dns-client.js';
import { encodeResponse, type Rr } from '../helpers/fake-upstream.js';

const soa = { mname: 'ns.fit.example', rname: 'hostmaster.fit.example', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 };

function build(opts: { an: number; ns: number; ar: number; rcode?: number; soaFirst?: boolean; edns?: { do?: boolean; udpSize?: number } }): { query: Query; msg: Buffer; answer: Buffer } {
  const msg = encodeQuery('www.fit.example', 'A', opts.edns ? { edns: opts.edns } : {});
  const r = readQuery(msg);
  if (!r.ok) throw new Error('bad query');
  const a = (i: number): Rr => ({ name: 'www.fit.example', type: TYPE.A, ttl: 60, data: `192.0.2.${i + 1}` });
  const ns = (i: number): Rr => ({ name: 'fit.example', type: TYPE.NS, ttl: 60, data: `ns${i}.some-long-nameserver-name.example` });
  const authorities = Array.from({ length: opts.ns }, (_, i) => (i === 0 && opts.soaFirst ? { name: 'fit.example', type: TYPE.SOA, ttl: 60, data: soa } : ns(i)));
  const answer = encodeResponse(msg, {
    rcode: opts.rcode ?? RCODE.NOERROR,
    tc: false,
    answers: Array.from({ length: opts.an }, (_, i) => a(i)),
    authorities,
    additionals: Array.from({ length: opts.ar }, (_, i) => ({ name: `ns${i}.some-long-nameserver-name.example`, type: TYPE.AAAA, ttl: 60, data: '2001:db8::53' })),
  });
  return { query: r.query, msg, answer };
}

describe('fitAnswer', () => {
  it('drops the additional section first, then the authority of a positive answer, without TC', () => {
    const { query, msg, answer } = build({ an: 2, ns: 8, ar: 8 });
    expect(answer.length).toBeGreaterThan(512);
    const out = decodeResponse(fitAnswer(answer, 512, msg, query));
    expect(out.flags.tc).toBe(false);
    expect(out.answers).toHaveLength(2);
    expect(out.additionals).toHaveLength(0);
  });

  it('keeps the SOA of a negative answer and its rcode', () => {
    const { query, msg, answer } = build({ an: 0, ns: 12, ar: 4, rcode: RCODE.NXDOMAIN, soaFirst: true });
    const out = decodeResponse(fitAnswer(answer, 300, msg, query));
    expect(out.rcode).toBe(RCODE.NXDOMAIN);
    expect(out.flags.tc).toBe(false);
    expect(out.authorities[0]!.type).toBe(TYPE.SOA);
    const none = decodeResponse(fitAnswer(answer, 60, msg, query));
    expect(none.flags.tc).toBe(true);
    expect(none.rcode).toBe(RCODE.NXDOMAIN);
  });

  it('a DNSSEC client gets TC rather than an answer without its proofs', () => {
    const { query, msg, answer } = build({ an: 0, ns: 12, ar: 0, rcode: RCODE.NXDOMAIN, soaFirst: true, edns: { do: true, udpSize: 512 } });
    const out = decodeResponse(fitAnswer(answer, 512, msg, query));
    expect(out.flags.tc).toBe(true);
    expect(out.rcode).toBe(RCODE.NXDOMAIN);
    expect(out.edns?.do).toBe(true);
  });

  it('property: the result fits, parses, keeps rcode and OPT, and keeps the answer section whole unless TC', () => {
    fc.assert(
      fc.property(
        fc.record({
          an: fc.integer({ min: 0, max: 40 }),
          ns: fc.integer({ min: 0, max: 20 }),
          ar: fc.integer({ min: 0, max: 20 }),
          nx: fc.boolean(),
          edns: fc.option(fc.record({ do: fc.boolean() }), { nil: undefined }),
        }),
        fc.integer({ min: 40, max: 1400 }),
        ({ an, ns, ar, nx, edns }, limit) => {
          const { query, msg, answer } = build({ an, ns, ar, rcode: nx ? RCODE.NXDOMAIN : RCODE.NOERROR, soaFirst: true, ...(edns ? { edns } : {}) });
          if (answer.length <= limit) return;
          const fitted = fitAnswer(answer, limit, msg, query);
          const out = decodeResponse(fitted);
          const before = decodeResponse(answer);
          expect(out.rcode).toBe(before.rcode);
          expect(out.edns !== undefined).toBe(edns !== undefined);
          if (out.flags.tc) {
            expect(out.answers).toHaveLength(0);
          } else {
            expect(fitted.length).toBeLessThanOrEqual(limit);
            expect(out.answers).toEqual(before.answers);
            expect(out.additionals).toHaveLength(0);
            if (before.answers.length === 0 && ns > 0) expect(out.authorities[0]?.type).toBe(TYPE.SOA);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
