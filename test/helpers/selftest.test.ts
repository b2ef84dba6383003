/**
 * Checks the e2e helpers against each other so a failing end-to-end test can
 * be trusted to point at sluice, not at its test scaffolding.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EDNS_OPTION_EDE, QueryTimeoutError, RCODE, TYPE, decodeResponse, encodeName, encodeQuery, formatIPv6, parseIPv6, queryTcp, queryUdp, readName, resolve } from './dns-client.js';
import { encodeResponse, startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

const SOA = { mname: 'ns1.example.com', rname: 'hostmaster.example.com', serial: 7, refresh: 1, retry: 2, expire: 3, minimum: 4 };

describe('wire encoding and decoding', () => {
  it('encodes a query byte for byte', () => {
    const q = encodeQuery('Ab.c', 'AAAA', { id: 0x1234, rd: false });
    expect(q.toString('hex')).toBe('123400000001000000000000' + '024162' + '0163' + '00' + '001c0001');
    const withOpt = encodeQuery('a', TYPE.A, { id: 1, edns: { udpSize: 4096, do: true } });
    // ARCOUNT 1, then OPT: root, type 41, class 4096, ttl 0x00008000, rdlen 0
    expect(withOpt.readUInt16BE(10)).toBe(1);
    expect(withOpt.subarray(-11).toString('hex')).toBe('00' + '0029' + '1000' + '00008000' + '0000');
  });

  it('round-trips A, AAAA, TXT and SOA through encodeResponse/decodeResponse', () => {
    const query = encodeQuery('WwW.Example.COM', TYPE.A, { id: 4242 });
    const reply = encodeResponse(query, {
      aa: true,
      answers: [
        { name: 'WwW.Example.COM', type: TYPE.A, ttl: 10, data: '10.1.2.3' },
        { name: 'WwW.Example.COM', type: TYPE.AAAA, ttl: 20, data: '2001:DB8:0:0:1::1' },
        { name: 'WwW.Example.COM', type: TYPE.TXT, ttl: 30, data: ['hello', 'wörld', ''] },
      ],
      authorities: [{ name: 'example.com', type: TYPE.SOA, ttl: 40, data: SOA }],
    });
    const d = decodeResponse(reply);
    expect(d.id).toBe(4242);
    expect(d.flags).toEqual({ qr: true, opcode: 0, aa: true, tc: false, rd: true, ra: true, ad: false, cd: false });
    expect(d.rcode).toBe(RCODE.NOERROR);
    expect(d.questions).toEqual([{ name: 'WwW.Example.COM', type: TYPE.A, class: 1 }]);
    expect(d.answers.map((r) => r.data)).toEqual(['10.1.2.3', '2001:db8::1:0:0:1', ['hello', 'wörld', '']]);
    expect(d.answers.map((r) => r.ttl)).toEqual([10, 20, 30]);
    expect(d.authorities).toEqual([{ name: 'example.com', type: TYPE.SOA, class: 1, ttl: 40, data: SOA }]);
    expect(d.edns).toBeUndefined();
  });

  it('decodes EDNS with an EDE option and folds the extended rcode', () => {
    const query = encodeQuery('blocked.test', TYPE.A, { edns: { do: true } });
    const ede = Buffer.concat([Buffer.from([0, 15]), Buffer.from('Blocked by policy', 'utf8')]);
    const d = decodeResponse(encodeResponse(query, { rcode: RCODE.BADVERS, ednsOptions: [{ code: EDNS_OPTION_EDE, data: ede }] }));
    expect(d.rcode).toBe(RCODE.BADVERS);
    expect(d.edns).toMatchObject({ udpSize: 1232, version: 0, do: true, extendedRcode: 1 });
    expect(d.edns?.ede).toEqual({ infoCode: 15, text: 'Blocked by policy' });
    expect(d.additionals).toEqual([]); // OPT is reported in edns only
  });

  it('follows compression pointers and rejects loops', () => {
    // Header, question "a.b", then an answer whose owner is a pointer to it and
    // whose CNAME target is "x" + pointer.
    const q = encodeQuery('a.b', TYPE.CNAME, { id: 1 });
    q.writeUInt16BE(1, 6); // ANCOUNT
    const rr = Buffer.from('c00c' + '0005' + '0001' + '0000003c' + '0004' + '0178' + 'c00c', 'hex');
    const d = decodeResponse(Buffer.concat([q, rr]));
    expect(d.answers[0]).toMatchObject({ name: 'a.b', data: 'x.a.b' });

    const loop = Buffer.concat([Buffer.alloc(12), Buffer.from('0161c00c', 'hex')]);
    expect(() => readName(loop, 12)).toThrow(/loop/);
    const forward = Buffer.concat([Buffer.alloc(12), Buffer.from('c00e00', 'hex')]);
    expect(() => readName(forward, 12)).toThrow(/forward/);
  });

  it('handles name escapes and IPv6 text forms', () => {
    expect(readName(encodeName('a\\.b.c.'), 0).name).toBe('a\\.b.c');
    expect(readName(encodeName('\\000x'), 0).name).toBe('\\000x');
    expect(readName(encodeName('.'), 0).name).toBe('.');
    expect(() => encodeName('a..b')).toThrow();
    expect(formatIPv6(parseIPv6('::'))).toBe('::');
    expect(formatIPv6(parseIPv6('2001:db8:0:1:0:0:0:1'))).toBe('2001:db8:0:1::1');
    expect(formatIPv6(parseIPv6('::ffff:192.0.2.1'))).toBe('::ffff:c000:201');
  });
});

describe('fake upstream over the network', () => {
  let up: FakeUpstream;

  beforeAll(async () => {
    up = await startFakeUpstream();
  });
  afterAll(async () => {
    await up.close();
  });
  beforeEach(() => {
    up.setHandler(undefined);
    up.setMode('answer');
    up.clearQueries();
  });

  it('answers the built-in zone over UDP and records queries', async () => {
    expect(up.address).toBe(`127.0.0.1:${up.port}`);
    const a = await resolve(up, 'Host.Example.com', TYPE.A, { id: 77 });
    expect(a.id).toBe(77);
    expect(a.flags).toMatchObject({ qr: true, ra: true, rd: true });
    expect(a.questions[0]?.name).toBe('Host.Example.com');
    expect(a.answers).toEqual([{ name: 'Host.Example.com', type: TYPE.A, class: 1, ttl: 300, data: '192.0.2.1' }]);

    const aaaa = await resolve(up, 'host.example.com', 'AAAA', { rd: false, edns: { do: true, udpSize: 4096 } });
    expect(aaaa.flags.rd).toBe(false);
    expect(aaaa.answers[0]?.data).toBe('2001:db8::1');
    expect(aaaa.edns).toMatchObject({ udpSize: 1232, do: true });

    const nx = await resolve(up, 'nxthing.sub.example.org', TYPE.A);
    expect(nx.rcode).toBe(RCODE.NXDOMAIN);
    expect(nx.authorities[0]).toMatchObject({ name: 'example.org', type: TYPE.SOA, ttl: 60, data: { minimum: 60 } });

    const nodata = await resolve(up, 'nodata.example.net', TYPE.A);
    expect(nodata.rcode).toBe(RCODE.NOERROR);
    expect(nodata.answers).toEqual([]);
    expect(nodata.authorities[0]?.name).toBe('example.net');

    const mx = await resolve(up, 'example.com', TYPE.MX);
    expect(mx.rcode).toBe(RCODE.NOERROR);
    expect(mx.answers).toEqual([]);

    expect(up.queries.map((q) => [q.name, q.type, q.transport, q.do, q.udpSize])).toEqual([
      ['Host.Example.com', TYPE.A, 'udp', false, undefined],
      ['host.example.com', TYPE.AAAA, 'udp', true, 4096],
      ['nxthing.sub.example.org', TYPE.A, 'udp', false, undefined],
      ['nodata.example.net', TYPE.A, 'udp', false, undefined],
      ['example.com', TYPE.MX, 'udp', false, undefined],
    ]);
    expect(up.queries[0]?.id).toBe(77);
  });

  it('binds the client to another loopback source address', async () => {
    const reply = decodeResponse(await queryUdp(up, encodeQuery('src.test', TYPE.A), { localAddress: '127.0.0.2' }));
    expect(reply.answers).toHaveLength(1);
    await resolve(up, 'src.test', TYPE.A, { transport: 'tcp', localAddress: '127.0.0.3' });
    await resolve(up, 'src.test', TYPE.A);
    expect(up.queries.map((q) => q.from)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.1']);
  });

  it('serves a pipelined TCP batch on one connection', async () => {
    const ids = [11, 12, 13];
    const replies = await queryTcp(
      up,
      ids.map((id, i) => encodeQuery(`tcp${i}.example.com`, TYPE.A, { id })),
    );
    expect(replies.map((r) => decodeResponse(r).id).sort()).toEqual(ids);
    expect(up.queries.every((q) => q.transport === 'tcp')).toBe(true);
    expect(up.queries).toHaveLength(3);
  });

  it('returns TCP replies in completion order when the handler delays', async () => {
    up.setHandler((q) => (q.name.startsWith('slow') ? { delayMs: 100 } : undefined));
    const replies = await queryTcp(up, [encodeQuery('slow.example.com', TYPE.A, { id: 1 }), encodeQuery('fast.example.com', TYPE.A, { id: 2 })]);
    expect(replies.map((r) => decodeResponse(r).id)).toEqual([2, 1]);
  });

  it('truncates over UDP and sends the full answer over TCP', async () => {
    const big = 'x'.repeat(1000);
    up.setHandler((q) => (q.type === TYPE.TXT ? { answers: [{ name: q.name, type: TYPE.TXT, ttl: 5, data: [big, big] }] } : undefined));
    // Automatic: 2000+ bytes exceed the 512-byte limit of a non-EDNS query.
    const udp = await resolve(up, 'big.example.com', TYPE.TXT);
    expect(udp.flags.tc).toBe(true);
    expect(udp.answers).toEqual([]);
    expect(udp.questions[0]?.name).toBe('big.example.com');

    const tcp = await resolve(up, 'big.example.com', TYPE.TXT, { transport: 'tcp' });
    expect(tcp.flags.tc).toBe(false);
    expect((tcp.answers[0]?.data as string[]).join('')).toBe(big + big);

    // Forced: tc true truncates even a tiny answer over UDP, not over TCP.
    up.setHandler(() => ({ tc: true }));
    expect((await resolve(up, 'small.example.com', TYPE.A)).flags.tc).toBe(true);
    expect((await resolve(up, 'small.example.com', TYPE.A, { transport: 'tcp' })).flags.tc).toBe(false);
  });

  it('can spoof the ID and question, or send raw bytes', async () => {
    up.setHandler(() => ({ idOverride: 999, questionOverride: { name: 'other.test', type: TYPE.AAAA } }));
    const spoofed = await resolve(up, 'real.test', TYPE.A, { id: 5 });
    expect(spoofed.id).toBe(999);
    expect(spoofed.questions[0]).toEqual({ name: 'other.test', type: TYPE.AAAA, class: 1 });

    up.setHandler(() => ({ raw: Buffer.from('garbage') }));
    const raw = await queryUdp(up, encodeQuery('raw.test', TYPE.A));
    expect(raw.toString()).toBe('garbage');
  });

  it('goes silent in drop mode, so queries time out', async () => {
    up.setMode('drop');
    const started = Date.now();
    await expect(queryUdp(up, encodeQuery('drop.test', TYPE.A), { timeoutMs: 200 })).rejects.toBeInstanceOf(QueryTimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    await expect(resolve(up, 'drop.test', TYPE.A, { transport: 'tcp', timeoutMs: 200 })).rejects.toThrow(/timed out/);
    expect(up.queries).toHaveLength(2); // still recorded
  });

  it('handler "drop" drops only the chosen queries', async () => {
    up.setHandler((q) => (q.name === 'ignored.test' ? 'drop' : undefined));
    await expect(resolve(up, 'ignored.test', TYPE.A, { timeoutMs: 150 })).rejects.toThrow(/timed out/);
    expect((await resolve(up, 'kept.test', TYPE.A)).answers).toHaveLength(1);
  });

  it('answers SERVFAIL / REFUSED in those modes', async () => {
    up.setMode('servfail');
    const sf = await resolve(up, 'example.com', TYPE.A, { edns: {} });
    expect(sf.rcode).toBe(RCODE.SERVFAIL);
    expect(sf.answers).toEqual([]);
    expect(sf.edns).toBeDefined();
    up.setMode('refused');
    expect((await resolve(up, 'example.com', TYPE.A, { transport: 'tcp' })).rcode).toBe(RCODE.REFUSED);
  });

  it('answers FORMERR to an unparseable query', async () => {
    const bad = encodeQuery('x.test', TYPE.A, { id: 321 }).subarray(0, 15); // question cut short
    const reply = decodeResponse(await queryUdp(up, bad));
    expect(reply.id).toBe(321);
    expect(reply.rcode).toBe(RCODE.FORMERR);
    expect(up.queries).toHaveLength(0);
  });
});
