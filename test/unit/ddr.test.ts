// DDR (RFC 9462): the endpoints derived from the listeners, the resolver name, and the local
// answers for resolver.arpa through the real pipeline (policy first, refused clients refused).
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { buildDdrZone, ddrEndpoints, firstDnsName } from '../../src/dns/ddr.js';
import { encodeSvcbRecords } from '../../src/dns/svcb.js';
import { DomainSet } from '../../src/match/domain-set.js';
import type { ClientInfo, RequestContext } from '../../src/pipeline/context.js';
import { Resolver } from '../../src/pipeline/resolver.js';
import { RuleSet } from '../../src/rules/rule-set.js';
import { decodeResponse, encodeQuery, RCODE, TYPE } from '../helpers/dns-client.js';

const TLS = 'tls: { cert_file: cert.pem, key_file: key.pem }';

function config(listeners: string, extra = '') {
  return parseConfig(
    `
listeners:
${listeners}
networks:
  staff: { cidrs: [10.0.0.0/24], profile: staff }
  open: { cidrs: [10.0.1.0/24], profile: open }
profiles:
  staff: { block: [apps] }
  open: {}
lists:
  apps: { file: apps.txt }
  doh-bypass: { file: doh-bypass.txt }
upstreams: { default: ["127.0.0.1:9"], timeout_ms: 100, total_timeout_ms: 300 }
${extra}
`,
    'ddr.yaml',
  ).config;
}

const both = config(`
  - { address: 192.0.2.53, protocols: [udp, tcp, dot, doh], ${TLS} }
  - { address: "2001:db8::53", protocols: [udp, dot, doh], ${TLS} }
  - { address: 0.0.0.0, port: 5353, protocols: [udp, doh], doh_port: 8443, ${TLS} }`);

describe('ddrEndpoints', () => {
  it('has one endpoint per protocol and port, in listener order, with the listeners’ own addresses (no wildcard) as hints', () => {
    expect(ddrEndpoints(both)).toEqual([
      { protocol: 'dot', port: 853, ipv4: ['192.0.2.53'], ipv6: ['2001:db8::53'] },
      { protocol: 'doh', port: 443, ipv4: ['192.0.2.53'], ipv6: ['2001:db8::53'] },
      { protocol: 'doh', port: 8443, ipv4: [], ipv6: [] },
    ]);
  });

  it('takes ddr.ipv4hint / ipv6hint instead, each family on its own', () => {
    const c = config(`  - { address: 0.0.0.0, protocols: [udp, dot], ${TLS} }`, 'ddr: { ipv4hint: [198.51.100.53] }');
    expect(ddrEndpoints(c)).toEqual([{ protocol: 'dot', port: 853, ipv4: ['198.51.100.53'], ipv6: [] }]);
  });

  it('is empty without a dot or doh listener', () => {
    expect(ddrEndpoints(config('  - { address: 192.0.2.53 }'))).toEqual([]);
  });
});

describe('firstDnsName', () => {
  it.each([
    ['DNS:*.example.org, DNS:Dns.Example.org, IP Address:192.0.2.53', 'dns.example.org'],
    ['IP Address:192.0.2.53', undefined],
    [undefined, undefined],
  ])('%s → %s', (san, name) => {
    expect(firstDnsName(san)).toBe(name);
  });
});

describe('buildDdrZone', () => {
  it('is off with ddr.enabled false', () => {
    expect(buildDdrZone(config(`  - { address: 192.0.2.53, protocols: [dot], ${TLS} }`, 'ddr: { enabled: false }'), 'dns.example.org')).toBeUndefined();
  });

  it('takes ddr.name before the certificate’s name', () => {
    const c = config(`  - { address: 192.0.2.53, protocols: [udp, dot], ${TLS} }`, 'ddr: { name: Resolver.Example.net. }');
    expect(buildDdrZone(c, 'dns.example.org')!.records.map((r) => r.target)).toEqual(['resolver.example.net']);
  });

  it('names no endpoint, and says why, without a name', () => {
    const zone = buildDdrZone(config(`  - { address: 192.0.2.53, protocols: [udp, dot], ${TLS} }`), undefined)!;
    expect(zone.records).toEqual([]);
    expect(zone.problem).toMatch(/ddr\.name/);
  });

  it('builds the records: alpn, port, hints, and dohpath for DoH only', () => {
    expect(buildDdrZone(both, 'dns.example.org')!.records).toEqual([
      { priority: 1, target: 'dns.example.org', alpn: ['dot'], port: 853, ipv4hint: ['192.0.2.53'], ipv6hint: ['2001:db8::53'] },
      { priority: 2, target: 'dns.example.org', alpn: ['h2', 'http/1.1'], port: 443, ipv4hint: ['192.0.2.53'], ipv6hint: ['2001:db8::53'], dohpath: '/dns-query{?dns}' },
      { priority: 3, target: 'dns.example.org', alpn: ['h2', 'http/1.1'], port: 8443, ipv4hint: [], ipv6hint: [], dohpath: '/dns-query{?dns}' },
    ]);
  });
});

describe('the DDR stage of the pipeline', () => {
  const lists = new Map([
    ['apps', DomainSet.from([{ domain: 'tiktok.com', subdomainsOnly: false }])],
    ['doh-bypass', DomainSet.from([{ domain: 'dns.google', subdomainsOnly: false }])],
  ]);
  const resolverFor = (c: ReturnType<typeof config>) => new Resolver(new RuleSet(c, lists, [], '.', 'dns.example.org'));
  const resolver = resolverFor(both);
  afterAll(() => resolver.close());
  const client = (address: string): ClientInfo => ({ address, port: 5000, transport: 'udp', listener: '192.0.2.53:53', listenerNetwork: undefined });
  const ask = (r: Resolver, name: string, type: string, from = '10.0.0.7') => {
    const ctx = r.handle(encodeQuery(name, type, { edns: {} }), client(from));
    expect(ctx).not.toBeInstanceOf(Promise); // answered locally: nothing is forwarded
    const done = ctx as RequestContext;
    return { ctx: done, res: decodeResponse(done.response!) };
  };

  it('answers _dns.resolver.arpa SVCB with the pre-encoded records, authoritatively, logged as allowed with no upstream', () => {
    const { ctx, res } = ask(resolver, '_dns.resolver.arpa', 'SVCB');
    expect(res.rcode).toBe(RCODE.NOERROR);
    expect(res.flags.aa).toBe(true);
    expect(res.answers.map((a) => [a.name, a.type, a.ttl])).toEqual([
      ['_dns.resolver.arpa', TYPE.SVCB, 300],
      ['_dns.resolver.arpa', TYPE.SVCB, 300],
      ['_dns.resolver.arpa', TYPE.SVCB, 300],
    ]);
    const wire = encodeSvcbRecords(12, 300, buildDdrZone(both, 'dns.example.org')!.records);
    expect(ctx.response!.subarray(ctx.query.questionEnd, ctx.query.questionEnd + wire.length)).toEqual(wire);
    expect(res.edns).toBeDefined();
    expect([ctx.outcome, ctx.upstream, ctx.cacheHit, ctx.network?.name]).toEqual(['allowed', undefined, undefined, 'staff']);
  });

  it('answers the same records at _dns.<resolver name>, in any letter case', () => {
    expect(ask(resolver, '_DNS.dns.Example.ORG', 'SVCB').res.answers).toHaveLength(3);
  });

  it.each([
    ['_dns.resolver.arpa', 'A', RCODE.NOERROR],
    ['_dns.resolver.arpa', 'HTTPS', RCODE.NOERROR],
    ['resolver.arpa', 'SVCB', RCODE.NOERROR],
    ['x._dns.resolver.arpa', 'SVCB', RCODE.NXDOMAIN],
    ['other.resolver.arpa', 'A', RCODE.NXDOMAIN],
  ])('%s %s → %i with the SOA of resolver.arpa, never forwarded', (name, type, rcode) => {
    const { res } = ask(resolver, name, type);
    expect(res.rcode).toBe(rcode);
    expect(res.answers).toEqual([]);
    expect(res.authorities.map((a) => [a.name, a.type, a.ttl])).toEqual([['resolver.arpa', TYPE.SOA, 300]]);
    expect(res.authorities[0]!.data).toMatchObject({ mname: 'resolver.arpa', rname: 'nobody.invalid', minimum: 300 });
  });

  it('answers the SOA of resolver.arpa', () => {
    expect(ask(resolver, 'resolver.arpa', 'SOA').res.answers.map((a) => a.type)).toEqual([TYPE.SOA]);
  });

  it('keeps a client in no network refused', () => {
    const { ctx, res } = ask(resolver, '_dns.resolver.arpa', 'SVCB', '203.0.113.9');
    expect(res.rcode).toBe(RCODE.REFUSED);
    expect(res.answers).toEqual([]);
    expect(ctx.outcome).toBe('refused');
  });

  it('keeps other resolvers’ designations blocked by doh-bypass for a network that blocks, and only there', async () => {
    const blocked = ask(resolver, '_dns.dns.google', 'SVCB');
    expect(blocked.ctx.outcome).toBe('blocked');
    expect(blocked.ctx.decision).toMatchObject({ kind: 'blocked', list: 'doh-bypass' });
    expect(blocked.res.answers).toEqual([]);
    // The open network blocks nothing, so gets no bypass list: the query is forwarded.
    const forwarded = resolver.handle(encodeQuery('_dns.dns.google', 'SVCB'), client('10.0.1.7'));
    expect(forwarded).toBeInstanceOf(Promise);
    expect((await forwarded).outcome).toBe('error'); // the test's upstream (port 9) does not answer
  });

  it('serves resolver.arpa locally without DoT/DoH listeners, with no records (RFC 9462 §6.5)', () => {
    const plain = resolverFor(config('  - { address: 192.0.2.53 }'));
    const { res } = ask(plain, '_dns.resolver.arpa', 'SVCB');
    expect([res.rcode, res.answers.length, res.authorities.length]).toEqual([RCODE.NOERROR, 0, 1]);
    plain.close();
  });

  it('forwards resolver.arpa as any name with ddr.enabled false', async () => {
    const off = resolverFor(config(`  - { address: 192.0.2.53, protocols: [udp, dot], ${TLS} }`, 'ddr: { enabled: false }'));
    const pending = off.handle(encodeQuery('_dns.resolver.arpa', 'SVCB'), client('10.0.0.7'));
    expect(pending).toBeInstanceOf(Promise);
    expect((await pending).outcome).toBe('error'); // forwarded: the test's upstream (port 9) does not answer
    off.close();
  });
});

describe('docs/deployment.md, encrypted DNS', () => {
  const doc = readFileSync(new URL('../../docs/deployment.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Encrypted DNS for managed devices'), doc.indexOf('## Before you switch'));
  const blocks = (lang: string) => [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);

  it('has config examples that are valid configs', () => {
    const yaml = blocks('yaml');
    expect(yaml).toHaveLength(2);
    const base = 'networks: { internal: { cidrs: [10.10.0.0/16], profile: staff } }\nprofiles: { staff: {} }\n';
    for (const text of yaml) {
      const listeners = text.includes('listeners:') ? '' : 'listeners: [{ address: 10.0.53.11 }]\n';
      expect(() => parseConfig(base + listeners + text, 'deployment.md'), text).not.toThrow();
    }
    const c = parseConfig(base + yaml[0]!, 'deployment.md').config;
    expect(buildDdrZone(c, undefined)!.records.map((r) => [r.target, r.port, r.dohpath])).toEqual([
      ['dns.example.org', 853, undefined],
      ['dns.example.org', 443, '/dns-query{?dns}'],
    ]);
  });

  it('has a Firefox policy that is JSON', () => {
    const [json] = blocks('json');
    expect(JSON.parse(json!)).toEqual({ policies: { DNSOverHTTPS: { Enabled: true, ProviderURL: 'https://dns.example.org/dns-query', Locked: true, Fallback: false } } });
  });
});
