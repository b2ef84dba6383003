// The byte-level fast path against a slow path built from dns2 Packet objects: for a corpus of
// queries (every block mode, with and without EDNS, mixed-case names, the common types) the answer
// sluice patches together from bytes must mean exactly what the slow path's answer means.
import dns2 from 'dns2';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DomainSet } from '../../src/match/domain-set.js';
import { Resolver } from '../../src/pipeline/resolver.js';
import { RuleSet } from '../../src/rules/rule-set.js';
import type { ClientInfo, RequestContext } from '../../src/pipeline/context.js';
import { decodeResponse, encodeQuery, TYPE } from '../helpers/dns-client.js';

const { Packet } = dns2;

const config = parseConfig(
  `
listeners: [{ address: 127.0.0.1, port: 0 }]
networks:
  nx:   { cidrs: [10.0.0.1/32], profile: nx }
  nullnet: { cidrs: [10.0.0.2/32], profile: nullmode }
  ref:  { cidrs: [10.0.0.3/32], profile: ref }
  addr: { cidrs: [10.0.0.4/32], profile: addr }
profiles:
  nx: { block: [apps] }
  nullmode: { block: [apps], block_response: { mode: "null", ttl: 30 } }
  ref: { block: [apps], block_response: { mode: refused } }
  addr: { block: [apps], block_response: { mode: address, ipv4: [192.0.2.7], ipv6: ["2001:db8::7"], ttl: 90 } }
lists:
  apps: { file: x }
upstreams: { default: ["127.0.0.1:9"] }
`,
  'fast-path.yaml',
).config;
const lists = new Map([['apps', DomainSet.from([{ domain: 'tiktok.com', subdomainsOnly: false }])]]);
const resolver = new Resolver(new RuleSet(config, lists, []));

const client = (address: string): ClientInfo => ({ address, port: 5000, transport: 'tcp', listener: 'test', listenerNetwork: undefined });

/** The slow path: what a dns2-built answer for a blocked name looks like, decoded. */
function slowPath(query: Buffer, mode: string): ReturnType<typeof decodeResponse> {
  const req = Packet.parse(query);
  const res = Packet.createResponseFromRequest(req);
  const q = req.questions[0]!;
  res.header.ra = 1;
  const soa = {
    name: '',
    type: Packet.TYPE.SOA,
    class: Packet.CLASS.IN,
    ttl: 0,
    primary: 'sluice.invalid',
    admin: 'hostmaster.sluice.invalid',
    serial: 1,
    refresh: 3600,
    retry: 600,
    expiration: 86400,
    minimum: 0,
  };
  const zone = q.name.toLowerCase().endsWith('tiktok.com') ? q.name.slice(q.name.length - 'tiktok.com'.length) : q.name;
  if (mode === 'nx') {
    res.header.rcode = 3;
    res.authorities.push({ ...soa, name: zone, ttl: 60, minimum: 60 } as never);
  } else if (mode === 'ref') {
    res.header.rcode = 5;
  } else {
    const ttl = mode === 'null' ? 30 : 90;
    const v4 = mode === 'null' ? '0.0.0.0' : '192.0.2.7';
    const v6 = mode === 'null' ? '::' : '2001:db8::7';
    if (q.type === Packet.TYPE.A) res.answers.push({ name: q.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl, address: v4 } as never);
    else if (q.type === Packet.TYPE.AAAA) res.answers.push({ name: q.name, type: Packet.TYPE.AAAA, class: Packet.CLASS.IN, ttl, address: v6 } as never);
    else res.authorities.push({ ...soa, name: zone, ttl, minimum: ttl } as never);
  }
  return decodeResponse(res.toBuffer());
}

const modes: [string, string][] = [
  ['nx', '10.0.0.1'],
  ['null', '10.0.0.2'],
  ['ref', '10.0.0.3'],
  ['addr', '10.0.0.4'],
];
const names = ['tiktok.com', 'WWW.TikTok.Com', 'a.b.c.v16-webapp.tiktok.com'];
const types = ['A', 'AAAA', 'HTTPS', 'SVCB', 'TXT', 'MX', 'CNAME', 'NS', 'SRV', 'PTR'];

describe('fast path = slow path', () => {
  for (const [mode, address] of modes) {
    for (const name of names) {
      it.each(types)(`${mode} mode, ${name}, %s, with and without EDNS`, (type) => {
        // DO set and clear alternate under one rule: the encoded OPT records kept per rule must follow.
        for (const edns of [undefined, { do: true, udpSize: 4096 }, { do: false, udpSize: 1232 }, { do: true, udpSize: 1400 }]) {
          const id = (name.length * 997 + type.length) & 0xffff;
          const q = encodeQuery(name, type, { id, ...(edns ? { edns } : {}) });
          const ctx = resolver.handle(q, client(address)) as RequestContext;
          const fast = decodeResponse(ctx.response!);
          const slow = slowPath(encodeQuery(name, type, { id }), mode);
          expect(fast.id).toBe(id);
          expect(fast.questions).toEqual([{ name, type: TYPE[type as keyof typeof TYPE], class: 1 }]);
          expect(fast.rcode).toBe(slow.rcode);
          expect({ qr: fast.flags.qr, rd: fast.flags.rd, ra: fast.flags.ra, tc: fast.flags.tc, aa: fast.flags.aa }).toEqual({ qr: true, rd: true, ra: true, tc: false, aa: false });
          expect(fast.answers.map((a) => [a.name, a.type, a.ttl, a.data])).toEqual(slow.answers.map((a) => [a.name, a.type, a.ttl, a.data]));
          expect(fast.authorities.map((a) => [a.name.toLowerCase(), a.type, a.ttl, a.data])).toEqual(slow.authorities.map((a) => [a.name.toLowerCase(), a.type, a.ttl, a.data]));
          if (edns) {
            expect(fast.edns).toMatchObject({ udpSize: 1232, do: edns.do, version: 0, ede: { infoCode: 15 } });
            expect(fast.edns?.ede?.text).toContain('list apps, rule tiktok.com');
          } else {
            expect(fast.edns).toBeUndefined();
          }
        }
      });
    }
  }
});
