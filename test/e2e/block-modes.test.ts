// Every block response mode, each on its own network of one server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, TYPE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startSluice, type Harness } from '../helpers/sluice-harness.js';

const config = `
listeners:
  - { address: 127.0.0.1, port: 0 }
networks:
  nx:      { cidrs: [127.0.1.1/32], profile: nx }
  nullnet: { cidrs: [127.0.1.2/32], profile: nullmode }
  ref:     { cidrs: [127.0.1.3/32], profile: ref }
  addr:    { cidrs: [127.0.1.4/32], profile: addr }
  addr4:   { cidrs: [127.0.1.5/32], profile: addr4 }
profiles:
  nx:       { block: [apps] }
  nullmode: { block: [apps], block_response: { mode: "null", ttl: 30 } }
  ref:      { block: [apps], block_response: { mode: refused } }
  addr:     { block: [apps], block_response: { mode: address, ipv4: [192.0.2.99, 192.0.2.98], ipv6: ["2001:db8::99"], ttl: 120 } }
  addr4:    { block: [apps], block_response: { mode: address, ipv4: [192.0.2.99] } }
lists:
  apps: { file: lists/apps.txt }
upstreams:
  default: ["@UPSTREAM@"]
`;

let upstream: FakeUpstream;
let h: Harness;
beforeAll(async () => {
  upstream = await startFakeUpstream();
  h = await startSluice({ config, lists: { apps: 'tiktok.com\nuse-application-dns.net\nmask.icloud.com\nmask-h2.icloud.com\n' }, upstream: upstream.address });
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});

const ask = (source: string, type: string) => resolve(h.udp, 'www.tiktok.com', type, { localAddress: source, edns: {} });

describe('block response modes', () => {
  it('nxdomain: NXDOMAIN with an SOA whose minimum is the block TTL (RFC 2308)', async () => {
    const r = await ask('127.0.1.1', 'A');
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
    expect(r.authorities[0]).toMatchObject({ type: TYPE.SOA, ttl: 60, data: { mname: 'sluice.invalid', minimum: 60 } });
    expect(r.edns?.ede?.infoCode).toBe(15);
  });

  it('null: A 0.0.0.0, AAAA ::, other types an empty NOERROR', async () => {
    const a = await ask('127.0.1.2', 'A');
    expect(a.rcode).toBe(RCODE.NOERROR);
    expect(a.answers).toEqual([expect.objectContaining({ name: 'www.tiktok.com', type: TYPE.A, ttl: 30, data: '0.0.0.0' })]);
    const aaaa = await ask('127.0.1.2', 'AAAA');
    expect(aaaa.answers[0]).toMatchObject({ type: TYPE.AAAA, data: '::' });
    const https = await ask('127.0.1.2', 'HTTPS');
    expect(https.rcode).toBe(RCODE.NOERROR);
    expect(https.answers).toHaveLength(0);
    expect(https.authorities[0]!.type).toBe(TYPE.SOA);
  });

  it('refused: REFUSED with the EDE', async () => {
    const r = await ask('127.0.1.3', 'A');
    expect(r.rcode).toBe(RCODE.REFUSED);
    expect(r.edns?.ede?.text).toContain('tiktok');
  });

  it('address: the configured addresses per family', async () => {
    const a = await ask('127.0.1.4', 'A');
    expect(a.answers.map((x) => x.data)).toEqual(['192.0.2.99', '192.0.2.98']);
    expect(a.answers[0]!.ttl).toBe(120);
    const aaaa = await ask('127.0.1.4', 'AAAA');
    expect(aaaa.answers.map((x) => x.data)).toEqual(['2001:db8::99']);
    const aaaaNone = await ask('127.0.1.5', 'AAAA');
    expect(aaaaNone.rcode).toBe(RCODE.NOERROR);
    expect(aaaaNone.answers).toHaveLength(0);
  });

  it('the Firefox canary and iCloud Private Relay get NXDOMAIN whatever the block mode', async () => {
    for (const source of ['127.0.1.2', '127.0.1.4']) {
      for (const name of ['use-application-dns.net', 'mask.icloud.com', 'mask-h2.icloud.com']) {
        const r = await resolve(h.udp, name, 'A', { localAddress: source });
        expect(r.rcode).toBe(RCODE.NXDOMAIN);
        expect(r.answers).toHaveLength(0);
      }
    }
  });

  it('no blocked query reached the upstream', () => {
    expect(upstream.queries.filter((q) => q.name.includes('tiktok'))).toHaveLength(0);
  });
});
