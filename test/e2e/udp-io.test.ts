// The two UDP listeners — the batched native socket (recvmmsg/sendmmsg, the default on Linux) and
// node:dgram (`udp.io: dgram`) — must be indistinguishable to clients: the same bytes back for the
// same query, the same client address seen by the policy and the log, nothing lost in a burst.
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, TYPE, decodeResponse, encodeQuery, queryUdp, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { loggedEvents, referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';
import { loadBatchBinding } from '../../src/native/udp-batch.js';
import { BatchedUdpListener } from '../../src/server/udp.js';

let upstream: FakeUpstream;
let batched: Harness;
let plain: Harness;
const now = 1_800_000_000_000;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  const start = (io: string) => startSluice({ config: referenceConfig(`udp: { io: ${io} }\n`), lists: referenceLists, upstream: upstream.address, clock: () => now, captureLogs: true });
  batched = await start('batched');
  plain = await start('dgram');
});
afterAll(async () => {
  await batched?.stop();
  await plain?.stop();
  await upstream?.close();
});

function listening(h: Harness): Record<string, unknown> | undefined {
  return h.logs.find((l) => l.msg === 'listening' && l.protocol === 'udp');
}

describe('UDP listeners: batched and dgram', () => {
  it('the addon is built here, and each server says which listener it runs', () => {
    // CI builds it (`npm ci` runs native/build.mjs): a missing addon must fail here, not silently fall back.
    expect(loadBatchBinding().reason).toBeUndefined();
    expect(listening(batched)).toMatchObject({ io: 'batched' });
    expect(listening(plain)).toMatchObject({ io: 'dgram' });
  });

  it('give byte-identical answers to the same queries, from every kind of client', async () => {
    const corpus: [string, string | number, string, Parameters<typeof encodeQuery>[2]][] = [
      ['www.tiktok.com', 'A', '127.0.0.1', { edns: {} }],
      ['www.tiktok.com', 'AAAA', '127.0.0.1', {}],
      ['WwW.TikTok.CoM', 'HTTPS', '127.0.0.1', { edns: { do: true } }],
      ['newsroom.tiktok.com', 'A', '127.0.0.1', {}],
      ['weixin.qq.com', 'MX', '127.0.4.9', { edns: { udpSize: 512 } }],
      ['www.tiktok.com', 'A', '127.0.0.2', {}],
      ['www.tiktok.com', 'A', '127.9.9.9', {}],
      ['allowed.example', 'A', '127.0.0.1', { edns: {} }],
      ['allowed.example', 'TXT', '127.0.0.3', {}],
      ['cached.example', 'A', '127.0.0.1', {}],
      ['cached.example', 'A', '127.0.0.1', {}],
    ];
    for (const [name, type, source, opts] of corpus) {
      const q = encodeQuery(name, type, { ...opts, id: 0x4242 });
      const a = await queryUdp(batched.udp, q, { localAddress: source });
      const b = await queryUdp(plain.udp, q, { localAddress: source });
      expect(a.toString('hex'), `${name} ${type} from ${source}`).toBe(b.toString('hex'));
      expect(a.readUInt16BE(0)).toBe(0x4242);
    }
  });

  it('see the same client address: the query log has the source of each query', async () => {
    for (const h of [batched, plain]) {
      await resolve(h.udp, 'whoami-log.example', 'A', { localAddress: '127.0.4.9' });
      const ev = (await loggedEvents(h)).find((e) => e.name === 'whoami-log.example');
      expect(ev, h === batched ? 'batched' : 'dgram').toMatchObject({ client: '127.0.4.9', network: 'comms', transport: 'udp' });
    }
  });

  it('answer a burst of 600 queries from one socket — blocked, forwarded and refused mixed — each once, ID and question matching', async () => {
    // A receive buffer for 600 answers at once: the default one would drop some before the test reads them.
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const want = new Map<number, { name: string; rcode: number }>();
    const got = new Map<number, Buffer[]>();
    sock.on('message', (m: Buffer) => {
      const id = m.readUInt16BE(0);
      got.set(id, [...(got.get(id) ?? []), m]);
    });
    try {
      for (let i = 0; i < 600; i++) {
        const kind = i % 3;
        const name = kind === 0 ? `b${i}.tiktok.com` : kind === 1 ? `f${i}.burst.example` : `x${i}.wechat.com`;
        want.set(i + 1, { name, rcode: kind === 1 ? RCODE.NOERROR : RCODE.NXDOMAIN });
        sock.send(encodeQuery(name, 'A', { id: i + 1 }), batched.udp.port, '127.0.0.1');
      }
      await until('an answer to each of the 600 queries', () => got.size >= want.size, 5000);
      expect(got.size).toBe(600);
      for (const [id, { name, rcode }] of want) {
        const replies = got.get(id)!;
        expect(replies).toHaveLength(1);
        const r = decodeResponse(replies[0]!);
        expect(r.questions[0]).toMatchObject({ name, type: TYPE.A });
        expect(r.rcode).toBe(rcode);
      }
    } finally {
      sock.close();
    }
  });

  it('listen on IPv6 too, and see IPv4 clients of a dual-stack socket as node:dgram does', async () => {
    const h = await startSluice({
      config: referenceConfig('udp: { io: batched }\n').replace('address: 127.0.0.1', 'address: "::"').replace('cidrs: [127.0.0.0/16]', 'cidrs: [127.0.0.0/16, "::1/128"]'),
      lists: referenceLists,
      upstream: upstream.address,
      captureLogs: true,
    });
    try {
      expect(listening(h)).toMatchObject({ io: 'batched', address: '::' });
      const v6 = await resolve({ host: '::1', port: h.udp.port }, 'www.tiktok.com', 'A');
      expect(v6.rcode).toBe(RCODE.NXDOMAIN);
      const v4 = await resolve({ host: '127.0.0.1', port: h.udp.port }, 'www.tiktok.com', 'A', { localAddress: '127.0.0.2' });
      expect(v4.rcode).toBe(RCODE.NOERROR); // guest: forwarded
      const clients = (await loggedEvents(h)).map((e) => e.client);
      expect(clients).toEqual(['::1', '::ffff:127.0.0.2']);
    } finally {
      await h.stop();
    }
  });

  it('drops a datagram too long for any DNS query, counts it, and goes on answering', async () => {
    const listener = (batched.server as unknown as { listeners: unknown[] }).listeners.find((l) => l instanceof BatchedUdpListener) as BatchedUdpListener;
    const before = listener.stats();
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const ids: number[] = [];
    sock.on('message', (m: Buffer) => ids.push(m.readUInt16BE(0)));
    try {
      // The huge one first, then a blocked name from the same socket: answered at once, in order,
      // so when its answer is here, an answer to the huge one would have come before it.
      sock.send(Buffer.concat([encodeQuery('www.tiktok.com', 'A', { id: 7 }), Buffer.alloc(20000)]), batched.udp.port, '127.0.0.1');
      await until('the oversized datagram to be counted', () => listener.stats()[1] === before[1] + 1);
      sock.send(encodeQuery('www.tiktok.com', 'A', { id: 8 }), batched.udp.port, '127.0.0.1');
      await until('the answer to the next query', () => ids.includes(8));
      expect(ids).toEqual([8]);
    } finally {
      sock.close();
    }
    expect(listener.stats()[1]).toBe(before[1] + 1);
    expect(await batched.server.observability.metrics.metrics()).toMatch(new RegExp(`^sluice_udp_oversized_total ${before[1] + 1}$`, 'm'));
    expect((await resolve(batched.udp, 'www.tiktok.com', 'A')).rcode).toBe(RCODE.NXDOMAIN);
  });

  it('a second server on the same port fails with EADDRINUSE (no SO_REUSEPORT outside a cluster)', async () => {
    const cfg = referenceConfig('udp: { io: batched }\n').replace('port: 0', `port: ${batched.udp.port}`);
    await expect(startSluice({ config: cfg, lists: referenceLists, upstream: upstream.address })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it.each(['batched', 'dgram'])('%s upstream sockets: a new random source port after socket_max_queries, every answer matched', async (io) => {
    const h = await startSluice({
      config: referenceConfig(`udp: { io: ${io} }\n`).replace('default: ["@UPSTREAM@"]', 'default: ["@UPSTREAM@"]\n  sockets: 2\n  socket_max_queries: 5'),
      lists: referenceLists,
      upstream: upstream.address,
    });
    try {
      upstream.clearQueries();
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => resolve(h.udp, `rot${i}.${io}.example`, 'A', { localAddress: '127.0.0.2' })));
      for (const a of answers) expect(a.answers[0]).toMatchObject({ type: TYPE.A, data: '192.0.2.1' });
      const ports = new Set(upstream.queries.filter((q) => q.name.endsWith(`.${io}.example`)).map((q) => q.fromPort));
      // 40 queries, at most 5 per socket: at least 8 sockets, each on its own port.
      expect(ports.size).toBeGreaterThanOrEqual(8);
    } finally {
      await h.stop();
    }
  });

  it('stopping sends the forwarded answers still in flight before the socket closes', async () => {
    const h = await startSluice({ config: referenceConfig('udp: { io: batched }\n'), lists: referenceLists, upstream: upstream.address });
    // The upstream holds its answer until released: the query is in flight for as long as the test wants.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let asked = false;
    upstream.setHandler(async (q) => {
      if (q.name !== 'slow.example') return undefined;
      asked = true;
      await held;
      return undefined;
    });
    try {
      const pending = resolve(h.udp, 'slow.example', 'A', { timeoutMs: 2000 });
      await until('the query to reach the upstream', () => asked);
      let stopped = false;
      const stopping = h.server.stop(5000).then(() => (stopped = true));
      // Stopping waits for the answer in flight (for up to its grace, 5 s): it has not finished yet.
      await new Promise((r) => setImmediate(r));
      expect(stopped).toBe(false);
      release();
      await stopping;
      expect((await pending).rcode).toBe(RCODE.NOERROR);
    } finally {
      release();
      upstream.setHandler(undefined);
      await h.stop().catch(() => undefined);
    }
  });
});
