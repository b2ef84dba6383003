// Thousands of random and mutated packets over UDP and TCP; the server must keep answering.
import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, encodeQuery, resolve, decodeResponse } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

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
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const sent = packets(5000, 42);
    const replies: Buffer[] = [];
    sock.on('message', (m) => replies.push(m));
    for (let i = 0; i < sent.length; i++) {
      sock.send(sent[i]!, h.udp.port, '127.0.0.1');
      if (i % 200 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 1500));
    sock.close();
    const sentIds = new Set(sent.filter((p) => p.length >= 2).map((p) => p.readUInt16BE(0)));
    expect(replies.length).toBeGreaterThan(1000);
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
    for (const p of packets(300, 7)) {
      await new Promise<void>((resolveConn) => {
        const c = net.connect(h.tcp.port, '127.0.0.1', () => {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(p.length);
          c.end(Buffer.concat([len, p]));
        });
        c.on('error', () => resolveConn());
        c.on('close', () => resolveConn());
        c.resume();
      });
    }
    const r = await resolve(h.tcp, 'www.tiktok.com', 'A', { transport: 'tcp', localAddress: '127.0.0.1' });
    expect(decodeResponse).toBeDefined();
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
  });
});
