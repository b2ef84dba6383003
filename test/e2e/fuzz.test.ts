// Thousands of random and mutated packets over UDP and TCP; the server must keep answering.
import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, TYPE, encodeQuery, resolve, decodeResponse } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';

const SENTINEL_ID = 0x5e17;

let upstream: FakeUpstream;
let h: Harness;
beforeAll(async () => {
  upstream = await startFakeUpstream();
  h = await startSluice({ config: referenceConfig(), lists: referenceLists, upstream: upstream.address });
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});

// A small seeded PRNG so a failure can be reproduced.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function packets(count: number, seed: number): Buffer[] {
  const rand = rng(seed);
  const seeds = [encodeQuery('www.tiktok.com', 'A', { edns: { do: true } }), encodeQuery('example.org', 'AAAA'), encodeQuery('a.b.c.wechat.com', 'HTTPS', { edns: { udpSize: 4096 } })];
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 4 === 0) {
      out.push(Buffer.from(Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256))));
      continue;
    }
    const p = Buffer.from(seeds[i % seeds.length]!);
    const flips = 1 + Math.floor(rand() * 4);
    for (let f = 0; f < flips; f++) p[Math.floor(rand() * p.length)] = Math.floor(rand() * 256);
    out.push(rand() < 0.2 ? p.subarray(0, Math.floor(rand() * p.length)) : p);
  }
  return out;
}

describe('fuzz', () => {
  it('survives 5000 random and mutated UDP packets and still answers; every answer carries the query ID', async () => {
    const counters = h.server.resolver.counters;
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const sent = packets(5000, 42);
    const replies: Buffer[] = [];
    let sentinel: Buffer | undefined;
    const isSentinel = (m: Buffer) => {
      try {
        return m.readUInt16BE(0) === SENTINEL_ID && decodeResponse(m).questions[0]?.name === 'sentinel.tiktok.com';
      } catch {
        return false; // a fuzz reply that happens to carry the same ID
      }
    };
    sock.on('message', (m) => {
      if (isSentinel(m)) sentinel = m;
      else replies.push(m);
    });
    const before = counters.queries;
    const droppedBefore = counters.dropped;
    const handled = () => counters.queries - before;
    for (let i = 0; i < sent.length; i++) {
      // Never more than 400 datagrams ahead of the server, so none is lost to a full socket buffer.
      if (i % 200 === 0) await until(`the server to handle ${i - 200} packets`, () => handled() >= i - 200, 10_000);
      sock.send(sent[i]!, h.udp.port, '127.0.0.1');
    }
    // All handled, no answer still being forwarded; then a blocked name, answered at once: its
    // reply leaves the server's socket after every earlier one, so when it is here they all are.
    await until('the server to handle every packet', () => handled() >= sent.length && h.server.resolver.forwardsInFlight === 0, 10_000);
    sock.send(encodeQuery('sentinel.tiktok.com', 'A', { id: SENTINEL_ID }), h.udp.port, '127.0.0.1');
    await until('the answer to the last query', () => sentinel !== undefined, 5000);
    sock.close();
    expect(decodeResponse(sentinel!).rcode).toBe(RCODE.NXDOMAIN);
    const sentIds = new Set(sent.filter((p) => p.length >= 2).map((p) => p.readUInt16BE(0)));
    expect(replies.length).toBeGreaterThan(1000);
    // Nothing lost on the way: every packet was answered, except those the server chose to drop.
    expect(replies.length).toBe(sent.length - (counters.dropped - droppedBefore));
    for (const r of replies) {
      expect(r.length).toBeGreaterThanOrEqual(12);
      expect(sentIds.has(r.readUInt16BE(0))).toBe(true);
      expect(r[2]! & 0x80).toBe(0x80);
    }
    const ok = await resolve(h.udp, 'www.tiktok.com', 'A', { localAddress: '127.0.0.1' });
    expect(ok.rcode).toBe(RCODE.NXDOMAIN);
    const fwd = await resolve(h.udp, 'after-fuzz.example', 'A', { localAddress: '127.0.0.2' });
    expect(fwd.answers[0]!.data).toBe('192.0.2.1');
    expect(h.server.resolver.counters.malformed).toBeGreaterThan(0);
  });

  it('survives garbage over TCP and still answers on a new connection', async () => {
    // What each garbage connection got back: whole length-prefixed messages only.
    const answered: { sent: Buffer; frames: Buffer[] }[] = [];
    for (const p of packets(300, 7)) {
      const frames: Buffer[] = [];
      await new Promise<void>((resolveConn) => {
        let buf = Buffer.alloc(0);
        const c = net.connect(h.tcp.port, '127.0.0.1', () => {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(p.length);
          c.end(Buffer.concat([len, p]));
        });
        c.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            frames.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
            buf = buf.subarray(2 + buf.readUInt16BE(0));
          }
        });
        c.on('error', () => resolveConn());
        c.on('close', () => resolveConn());
      });
      answered.push({ sent: p, frames });
    }
    // At most one answer per message, and each one a response to it: QR set, the ID it was sent with.
    const withAnswer = answered.filter((a) => a.frames.length > 0);
    expect(withAnswer.length).toBeGreaterThan(50);
    for (const { sent, frames } of withAnswer) {
      expect(frames).toHaveLength(1);
      expect(frames[0]!.length).toBeGreaterThanOrEqual(12);
      expect(frames[0]![2]! & 0x80).toBe(0x80);
      expect(frames[0]!.readUInt16BE(0)).toBe(sent.readUInt16BE(0));
    }
    // No connection is left behind by the garbage.
    await until('the garbage connections to close', () => h.server.tcpConnections() === 0);
    const r = await resolve(h.tcp, 'www.tiktok.com', 'A', { transport: 'tcp', localAddress: '127.0.0.1' });
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
    expect(r.questions[0]).toMatchObject({ name: 'www.tiktok.com', type: TYPE.A });
  });
});
