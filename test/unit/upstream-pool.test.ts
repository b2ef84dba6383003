// The upstream pool: its bookkeeping per upstream without sockets (round-trip times, RFC 6298;
// back-off that doubles once per period, one probe at a time), its query IDs and pool sockets
// (RFC 5452: a random ID, a socket replaced after socket_max_queries), the query it sends, and
// exchanges with upstreams on loopback: IDs and source ports seen there, replies that must not be
// taken (wrong ID, question or source), and moving on to the next upstream after a timeout.
import dgram from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readQuery, type Query } from '../../src/dns/wire.js';
import { UpstreamPool, buildUpstreamQuery, formatServer } from '../../src/upstream/upstream-pool.js';
import { encodeQuery } from '../helpers/dns-client.js';

const A = { host: '127.0.0.1', port: 5301 };
const B = { host: '127.0.0.1', port: 5302 };
const pool = () => new UpstreamPool({ sockets: 1, socketMaxQueries: 10, timeoutMs: 1000, minTimeoutMs: 50, totalTimeoutMs: 3000, backoffMs: 5000 });

describe('round-trip times', () => {
  it('starts at Unbound’s 376 ms, learns srtt + 4·rttvar, bounded by the floor and timeout_ms', () => {
    const p = pool();
    const h = p.healthOf('127.0.0.1:5301');
    expect(h.rto).toBe(376);
    p.answered(h, 10);
    expect(h.srtt).toBe(10);
    expect(h.rto).toBe(50); // 10 + 4 × 5, raised to the floor
    for (let i = 0; i < 20; i++) p.answered(h, 400);
    expect(h.srtt).toBeGreaterThan(350);
    expect(h.rto).toBeLessThanOrEqual(1000);
    p.timedOut(h);
    p.timedOut(h);
    expect(h.rto).toBe(1000);
  });
});

describe('back-off', () => {
  it('starts after two failed queries, does not grow while backed off, and doubles once per failed probe', () => {
    const p = pool();
    const h = p.healthOf('127.0.0.1:5301');
    const t = 1_000_000;
    p.failed(h, t);
    expect(h.downUntil).toBe(0);
    p.failed(h, t);
    expect(h.downUntil).toBe(t + 5000);
    for (let i = 0; i < 100; i++) p.failed(h, t + 10);
    expect(h.downUntil).toBe(t + 5000);
    expect(h.backoffMs).toBe(10_000);
    // The period is over: one query probes it; the others do not use it while B is up.
    const later = t + 6000;
    expect(p.usable([A, B], later)).toEqual([A, B]);
    expect(h.probing).toBe(true);
    expect(p.usable([A, B], later)).toEqual([B]);
    p.failed(h, later);
    expect(h.downUntil).toBe(later + 10_000);
    expect(h.backoffMs).toBe(20_000);
    p.succeeded(h);
    expect(p.usable([A, B], later)).toEqual([A, B]);
  });

  it('when every upstream is backed off, one query at a time probes one of them at once', () => {
    const p = pool();
    const h = p.healthOf('127.0.0.1:5301');
    p.failed(h, 0);
    p.failed(h, 0);
    expect(p.usable([A], 1)).toEqual([A]);
    expect(p.usable([A], 1)).toEqual([]);
    for (let i = 0; i < 10; i++) p.failed(h, 1);
    expect(h.backoffMs).toBe(20_000); // doubled by the one failed probe, not by the ten queries
  });

  it('a failing probe doubles the period up to 60 s, and an answer brings it back to the base period', () => {
    const p = pool();
    const h = p.healthOf('127.0.0.1:5301');
    p.failed(h, 0);
    p.failed(h, 0);
    const periods: number[] = [];
    let t = 0;
    for (let i = 0; i < 8; i++) {
      t = h.downUntil;
      expect(p.usable([A, B], t)).toEqual([A, B]); // its period is over: this query probes it
      p.failed(h, t);
      periods.push(h.downUntil - t);
    }
    expect(periods).toEqual([10_000, 20_000, 40_000, 60_000, 60_000, 60_000, 60_000, 60_000]);
    expect(p.hasBackedOff).toBe(true);
    p.succeeded(h);
    expect(p.hasBackedOff).toBe(false);
    expect(h).toMatchObject({ downUntil: 0, failures: 0, backoffMs: 5000, probing: false });
  });
});

// ---------------------------------------------------------------------------------------------
// IDs and pool sockets (RFC 5452)

type PoolSocket = ReturnType<UpstreamPool['socketFor']>;

/** A stand-in for an attempt in flight, for the socket's table of pending IDs. */
const inFlight = { exchange: { abort: () => undefined } } as unknown as PoolSocket['pending'] extends Map<number, infer T> ? T : never;

const pools: UpstreamPool[] = [];
function openPool(opts: Partial<ConstructorParameters<typeof UpstreamPool>[0]> = {}): UpstreamPool {
  const p = new UpstreamPool({ sockets: 1, socketMaxQueries: 100, timeoutMs: 1000, minTimeoutMs: 50, totalTimeoutMs: 3000, backoffMs: 5000, ...opts });
  pools.push(p);
  return p;
}
afterEach(() => {
  for (const p of pools.splice(0)) p.close();
});

describe('query IDs', () => {
  it('are random 16-bit numbers: nearly all distinct, every byte value used, no sequence', () => {
    const p = openPool();
    const ids = Array.from({ length: 20_000 }, () => p.nextId());
    for (const id of ids) expect(id >= 0 && id <= 0xffff && Number.isInteger(id)).toBe(true);
    // 20,000 random draws from 65,536 values give ~17,240 distinct ones.
    expect(new Set(ids).size).toBeGreaterThan(16_500);
    expect(new Set(ids.map((id) => id >> 8)).size).toBe(256);
    expect(new Set(ids.map((id) => id & 0xff)).size).toBe(256);
    const successive = ids.filter((id, i) => i > 0 && id === ((ids[i - 1]! + 1) & 0xffff)).length;
    expect(successive).toBeLessThan(10);
  });

  it('never reuses an ID still in flight on the same socket; none free gives -1', () => {
    const p = openPool();
    const s = p.socketFor('udp4', undefined);
    // All but 1,000 IDs in flight: a free ID is found, or -1 after a bounded search, never a taken one.
    for (let id = 0; id < 0x10000; id++) if (id % 65 !== 0) s.pending.set(id, inFlight);
    let found = 0;
    for (let i = 0; i < 2000; i++) {
      const id = p.freeId(s);
      if (id === -1) continue;
      found++;
      expect(s.pending.has(id)).toBe(false);
    }
    expect(found).toBeGreaterThan(0);
    for (let id = 0; id < 0x10000; id += 65) s.pending.set(id, inFlight);
    for (let i = 0; i < 100; i++) expect(p.freeId(s)).toBe(-1);
    s.pending.clear();
    for (let i = 0; i < 100; i++) expect(p.freeId(s)).not.toBe(-1);
  });
});

describe('pool sockets', () => {
  it('a socket carries socket_max_queries queries, then its slot gets a new socket', () => {
    const p = openPool({ sockets: 1, socketMaxQueries: 3 });
    const first = p.socketFor('udp4', undefined);
    expect(p.socketFor('udp4', undefined)).toBe(first);
    expect(p.socketFor('udp4', undefined)).toBe(first);
    const close = vi.spyOn(first, 'close');
    const second = p.socketFor('udp4', undefined);
    expect(second).not.toBe(first);
    expect(first.retired).toBe(true);
    expect(close).toHaveBeenCalledTimes(1); // nothing was in flight on it
    expect(second.used).toBe(1);
  });

  it('a retired socket stays open for the queries still in flight on it, and closes with the last', () => {
    const p = openPool({ sockets: 1, socketMaxQueries: 1 });
    const first = p.socketFor('udp4', undefined);
    first.pending.set(1, inFlight);
    first.pending.set(2, inFlight);
    const close = vi.spyOn(first, 'close');
    p.socketFor('udp4', undefined);
    expect(first.retired).toBe(true);
    expect(close).not.toHaveBeenCalled();
    first.forget(1);
    expect(close).not.toHaveBeenCalled();
    first.forget(2);
    expect(close).toHaveBeenCalledTimes(1);
  });

  it('queries are spread over every slot of the pool, IPv4 and IPv6 apart', () => {
    const p = openPool({ sockets: 4, socketMaxQueries: 1_000_000 });
    const v4 = new Map<PoolSocket, number>();
    for (let i = 0; i < 800; i++) {
      const s = p.socketFor('udp4', undefined);
      v4.set(s, (v4.get(s) ?? 0) + 1);
    }
    expect(v4.size).toBe(4);
    for (const n of v4.values()) expect(n).toBeGreaterThan(100); // 200 each on average
    const v6 = p.socketFor('udp6', undefined);
    expect(v4.has(v6)).toBe(false);
  });

  it('with one socket a retry uses it again; with several, a retry always leaves from another, spread over the rest', () => {
    const one = openPool({ sockets: 1, socketMaxQueries: 1_000_000 });
    const only = one.socketFor('udp4', undefined);
    expect(one.socketFor('udp4', only)).toBe(only);
    for (const sockets of [2, 4]) {
      const p = openPool({ sockets, socketMaxQueries: 1_000_000 });
      const last = p.socketFor('udp4', undefined);
      const seen = new Map<unknown, number>();
      for (let i = 0; i < 1000; i++) {
        const s = p.socketFor('udp4', last);
        expect(s).not.toBe(last);
        seen.set(s, (seen.get(s) ?? 0) + 1);
      }
      // Every other slot is used (a slot gets its socket when first picked).
      expect(seen.size).toBe(sockets - 1);
    }
  });
});

describe('the query sent upstream', () => {
  it('has the fresh ID, RD and AD set, CD and DO from the client, its question, and an OPT for 1232 bytes', () => {
    for (const [opts, cd, dnssecOk] of [
      [{}, false, false],
      [{ cd: true, edns: { do: true, udpSize: 4096 } }, true, true],
    ] as const) {
      const msg = encodeQuery('Www.Example.COM', 'AAAA', { id: 0x4242, ...opts });
      const r = readQuery(msg);
      if (!r.ok) throw new Error('the test query does not read');
      const question = msg.subarray(12, r.query.questionEnd);
      const out = buildUpstreamQuery(0xbeef, question, r.query);
      expect(out.readUInt16BE(0)).toBe(0xbeef);
      expect(out[2]).toBe(0x01); // a query, opcode QUERY, RD
      expect(out[3]! & 0x20).toBe(0x20); // AD: tell me whether you validated
      expect((out[3]! & 0x10) === 0x10).toBe(cd);
      expect([out.readUInt16BE(4), out.readUInt16BE(6), out.readUInt16BE(8), out.readUInt16BE(10)]).toEqual([1, 0, 0, 1]);
      expect(out.subarray(12, 12 + question.length).equals(question)).toBe(true); // case kept, as asked
      const opt = out.subarray(12 + question.length);
      expect(opt.length).toBe(11);
      expect(opt[0]).toBe(0); // root owner
      expect(opt.readUInt16BE(1)).toBe(41);
      expect(opt.readUInt16BE(3)).toBe(1232);
      expect((opt[7]! & 0x80) === 0x80).toBe(dnssecOk);
      expect(opt.readUInt16BE(9)).toBe(0); // no options
    }
  });

  it('names upstreams host:port, IPv6 in brackets', () => {
    expect(formatServer({ host: '192.0.2.1', port: 53 })).toBe('192.0.2.1:53');
    expect(formatServer({ host: '2001:db8::1', port: 5353 })).toBe('[2001:db8::1]:5353');
  });
});

// ---------------------------------------------------------------------------------------------
// Exchanges with upstreams on loopback

interface Seen {
  id: number;
  port: number;
  msg: Buffer;
}

/** An upstream on 127.0.0.1 that records each query and replies as `answer` says (nothing: silent). */
async function upstream(answer: (q: Buffer, from: dgram.RemoteInfo, sock: dgram.Socket) => void = () => undefined) {
  const sock = dgram.createSocket('udp4');
  const seen: Seen[] = [];
  sock.on('message', (msg, from) => {
    seen.push({ id: msg.readUInt16BE(0), port: from.port, msg });
    answer(msg, from, sock);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const server = { host: '127.0.0.1', port: sock.address().port };
  return { server, seen, label: formatServer(server), close: () => new Promise<void>((r) => sock.close(() => r())) };
}

/** An answer to upstream query `q` (header, question, OPT): its ID and question, or others; one A record with `data`, no OPT. */
function answerTo(q: Buffer, data: [number, number, number, number], opts: { id?: number; name?: Buffer } = {}): Buffer {
  const head = Buffer.from(q.subarray(0, 12));
  head.writeUInt16BE(opts.id ?? q.readUInt16BE(0), 0);
  head[2] = 0x81;
  head[3] = 0x80;
  head.writeUInt16BE(1, 6);
  head.writeUInt16BE(0, 10);
  const typeAndClass = q.subarray(q.length - 11 - 4, q.length - 11);
  const question = opts.name ? Buffer.concat([opts.name, typeAndClass]) : q.subarray(12, q.length - 11);
  return Buffer.concat([head, question, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...data])]);
}

function clientQuery(name: string, id = 0x4242): { msg: Buffer; query: Query } {
  const msg = encodeQuery(name, 'A', { id });
  const r = readQuery(msg);
  if (!r.ok) throw new Error('the test query does not read');
  return { msg, query: r.query };
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function answering(answer?: Parameters<typeof upstream>[0]) {
  const u = await upstream(answer);
  closers.push(u.close);
  return u;
}

describe('exchanges', () => {
  const genuine = (q: Buffer, from: dgram.RemoteInfo, sock: dgram.Socket) => sock.send(answerTo(q, [192, 0, 2, 1]), from.port, from.address);

  it('each query leaves with its own random ID, never the client’s, from ports that change every socket_max_queries', async () => {
    const u = await answering(genuine);
    const p = openPool({ sockets: 2, socketMaxQueries: 2, timeoutMs: 500, totalTimeoutMs: 1000 });
    for (let i = 0; i < 12; i++) {
      const { msg, query } = clientQuery(`q${i}.example`);
      const r = await p.resolve([u.server], msg, query);
      expect(r.ok).toBe(true);
    }
    expect(u.seen).toHaveLength(12);
    expect(new Set(u.seen.map((s) => s.id)).size).toBeGreaterThanOrEqual(11);
    expect(u.seen.filter((s) => s.id === 0x4242).length).toBeLessThanOrEqual(1);
    // At most 2 queries per socket: 12 queries need 6 sockets, each on a port of its own (a
    // port the kernel hands out again may repeat one).
    expect(new Set(u.seen.map((s) => s.port)).size).toBeGreaterThanOrEqual(5);
  });

  it('takes only a reply with the ID and question it sent, from the server and port it asked', async () => {
    const other = dgram.createSocket('udp4');
    await new Promise<void>((r) => other.bind(0, '127.0.0.1', () => r()));
    closers.push(() => new Promise<void>((r) => other.close(() => r())));
    const u = await answering((q, from, sock) => {
      const to = (b: Buffer, s = sock) => s.send(b, from.port, from.address);
      to(answerTo(q, [203, 0, 113, 1], { id: (q.readUInt16BE(0) + 1) & 0xffff })); // wrong ID
      to(answerTo(q, [203, 0, 113, 2], { name: Buffer.from([4, 0x65, 0x76, 0x69, 0x6c, 7, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0]) })); // evil.example
      to(answerTo(q, [203, 0, 113, 3]), other); // right ID and question, another source port
      to(answerTo(q, [192, 0, 2, 99]));
    });
    const p = openPool({ timeoutMs: 500, totalTimeoutMs: 1000 });
    const { msg, query } = clientQuery('spoof.example');
    const r = await p.resolve([u.server], msg, query);
    if (!r.ok) throw new Error(`no answer: ${r.reason}`);
    expect([...r.reply.subarray(r.reply.length - 4)]).toEqual([192, 0, 2, 99]);
    expect(r.server).toBe(u.label);
    expect(u.seen).toHaveLength(1); // the spoofed replies were ignored, not retried over
  });

  it('moves on to the next upstream when one times out, and backs the silent one off after two such queries', async () => {
    const silent = await answering();
    const live = await answering(genuine);
    const p = openPool({ timeoutMs: 100, minTimeoutMs: 20, totalTimeoutMs: 2000, backoffMs: 60_000 });
    for (let i = 0; i < 2; i++) {
      const { msg, query } = clientQuery(`rot${i}.example`);
      const r = await p.resolve([silent.server, live.server], msg, query);
      if (!r.ok) throw new Error(`no answer: ${r.reason}`);
      expect(r.server).toBe(live.label);
    }
    expect(silent.seen).toHaveLength(2); // asked first each time
    expect(live.seen).toHaveLength(2);
    expect(p.health.get(silent.label)!.downUntil).toBeGreaterThan(Date.now());
    expect(p.health.get(live.label)!.failures).toBe(0);
    // Backed off: the next query goes straight to the live one, and the silent one is not asked.
    const { msg, query } = clientQuery('after.example');
    const r = await p.resolve([silent.server, live.server], msg, query);
    expect(r.ok && r.server).toBe(live.label);
    expect(silent.seen).toHaveLength(2);
    expect(live.seen).toHaveLength(3);
  });

  it('asks the only upstream again, with a fresh ID, when an attempt times out', async () => {
    let dropped = false;
    const u = await answering((q, from, sock) => {
      if (!dropped)
        dropped = true; // the first attempt gets no answer
      else genuine(q, from, sock);
    });
    const p = openPool({ sockets: 4, timeoutMs: 100, minTimeoutMs: 20, totalTimeoutMs: 2000 });
    const { msg, query } = clientQuery('retry.example');
    const r = await p.resolve([u.server], msg, query);
    expect(r.ok).toBe(true);
    expect(u.seen).toHaveLength(2);
    expect(u.seen[1]!.id).not.toBe(u.seen[0]!.id);
    expect(p.health.get(u.label)!.retries).toBe(1);
  });

  it('gives up at total_timeout_ms when no upstream answers, and says so', async () => {
    const silent = await answering();
    const p = openPool({ timeoutMs: 50, minTimeoutMs: 20, totalTimeoutMs: 300 });
    const { msg, query } = clientQuery('nobody.example');
    const t0 = performance.now();
    const r = await p.resolve([silent.server], msg, query);
    expect(r).toMatchObject({ ok: false, reason: 'timeout' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290); // not before the deadline
    expect(silent.seen.length).toBeGreaterThanOrEqual(2); // retried within it
    expect(p.errors).toBe(1);
  });
});
