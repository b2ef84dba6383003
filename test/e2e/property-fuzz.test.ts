// Property-based fuzzing of the packet handling with fast-check: generated queries (valid, and
// mutated at random bytes) go to a real server over UDP. Properties: the server never throws
// (every handled message is counted, the process is fine), every answer carries the query's ID
// and question, and a valid query is always answered correctly afterwards.
import dgram from 'node:dgram';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, decodeResponse, encodeQuery, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

let upstream: FakeUpstream;
let h: Harness;
let sock: dgram.Socket;
const waiting = new Map<number, (m: Buffer) => void>();

beforeAll(async () => {
  upstream = await startFakeUpstream();
  h = await startSluice({ config: referenceConfig(), lists: referenceLists, upstream: upstream.address });
  sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  sock.on('message', (m) => {
    if (m.length >= 2) waiting.get(m.readUInt16BE(0))?.(m);
  });
});
afterAll(async () => {
  sock?.close();
  await h?.stop();
  await upstream?.close();
});

/** Send and wait briefly for a reply with the same ID (none is fine for garbage). */
function exchange(bytes: Buffer, ms = 400): Promise<Buffer | undefined> {
  const id = bytes.length >= 2 ? bytes.readUInt16BE(0) : -1;
  return new Promise((res) => {
    const t = setTimeout(() => {
      waiting.delete(id);
      res(undefined);
    }, ms);
    waiting.set(id, (m) => {
      clearTimeout(t);
      waiting.delete(id);
      res(m);
    });
    sock.send(bytes, h.udp.port, '127.0.0.1');
  });
}

const label = fc.stringMatching(/^[a-zA-Z0-9-]{1,20}$/);
const name = fc.oneof(
  fc.array(label, { minLength: 1, maxLength: 5 }).map((l) => l.join('.')),
  fc.array(label, { minLength: 0, maxLength: 3 }).map((l) => [...l, 'tiktok', 'com'].join('.')),
);
const type = fc.constantFrom('A', 'AAAA', 'HTTPS', 'TXT', 'MX', 'NS', 'CNAME', 'SVCB', 'PTR', 'SOA', 'ANY', 'TYPE999');
const query = fc.record({
  id: fc.integer({ min: 0, max: 65535 }),
  name,
  type,
  edns: fc.option(fc.record({ udpSize: fc.integer({ min: 0, max: 65535 }), do: fc.boolean() }), { nil: undefined }),
});

describe('property fuzz', () => {
  it('valid generated queries: answered, same ID and question, blocked names NXDOMAIN from the internal network', async () => {
    await fc.assert(
      fc.asyncProperty(query, async (q) => {
        const bytes = encodeQuery(q.name, q.type, { id: q.id, ...(q.edns ? { edns: q.edns } : {}) });
        const reply = await exchange(bytes, 2000);
        expect(reply).toBeDefined();
        const r = decodeResponse(reply!);
        expect(r.id).toBe(q.id);
        expect(r.flags.qr).toBe(true);
        if (!r.flags.tc) expect(r.questions[0]?.name).toBe(q.name);
        if (/(^|\.)tiktok\.com$/i.test(q.name)) expect(r.rcode).toBe(RCODE.NXDOMAIN);
      }),
      { numRuns: 300 },
    );
  });

  it('mutated queries: never a crash, any answer carries the query ID and echoes a question only if it was one', async () => {
    const mutated = fc.tuple(query, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.option(fc.nat(), { nil: undefined })).map(([q, flips, cut]) => {
      const b = encodeQuery(q.name, q.type, { id: q.id, ...(q.edns ? { edns: q.edns } : {}) });
      for (const [pos, val] of flips) if (pos % b.length >= 2) b[pos % b.length] = val; // keep the ID
      return cut === undefined ? b : b.subarray(0, Math.max(2, cut % (b.length + 1)));
    });
    await fc.assert(
      fc.asyncProperty(mutated, async (bytes) => {
        const reply = await exchange(Buffer.from(bytes), 100);
        if (!reply) return; // dropped (e.g. it looked like a response): allowed
        expect(reply.readUInt16BE(0)).toBe(bytes.readUInt16BE(0));
        expect(reply[2]! & 0x80).toBe(0x80);
        if (reply.readUInt16BE(4) === 1) {
          // the echoed question is byte for byte the question that was asked
          let end = 12;
          while (end < reply.length && reply[end] !== 0) end += reply[end]! + 1;
          end += 5;
          expect(Buffer.compare(reply.subarray(12, end), Buffer.from(bytes).subarray(12, end))).toBe(0);
        }
      }),
      { numRuns: 400 },
    );
    const after = await resolve(h.udp, 'still.alive.example', 'A', { localAddress: '127.0.0.2' });
    expect(after.answers[0]!.data).toBe('192.0.2.1');
    expect(h.server.resolver.counters.queries).toBeGreaterThan(400);
  });
});
