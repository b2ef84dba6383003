// SVCB RDATA (RFC 9460 §2.2) byte by byte, for the DNS-server designations DDR sends (RFC 9461).
import { describe, expect, it } from 'vitest';
import { SVC_PARAM, encodeSvcbRdata, encodeSvcbRecords } from '../../src/dns/svcb.js';

const ascii = (s: string) => [...Buffer.from(s, 'latin1')];
const name = (...labels: string[]) => [...labels.flatMap((l) => [l.length, ...ascii(l)]), 0];
const u16 = (n: number) => [n >> 8, n & 0xff];

describe('encodeSvcbRdata', () => {
  it('encodes a DoT designation: priority, uncompressed target, alpn, port, ipv4hint', () => {
    const rdata = encodeSvcbRdata({ priority: 1, target: 'dns.example.org', alpn: ['dot'], port: 853, ipv4hint: ['192.0.2.53', '198.51.100.1'] });
    expect([...rdata]).toEqual([...u16(1), ...name('dns', 'example', 'org'), ...[0, 1, 0, 4, 3, ...ascii('dot')], ...[0, 3, 0, 2, 0x03, 0x55], ...[0, 4, 0, 8, 192, 0, 2, 53, 198, 51, 100, 1]]);
  });

  it('encodes a DoH designation with two ALPN ids, ipv6hint and dohpath (key 7, RFC 9461 §5)', () => {
    const rdata = encodeSvcbRdata({ priority: 2, target: 'dns.example.org', alpn: ['h2', 'http/1.1'], port: 443, ipv6hint: ['2001:db8::53'], dohpath: '/dns-query{?dns}' });
    expect([...rdata]).toEqual([
      ...u16(2),
      ...name('dns', 'example', 'org'),
      ...[0, 1, 0, 12, 2, ...ascii('h2'), 8, ...ascii('http/1.1')],
      ...[0, 3, 0, 2, 0x01, 0xbb],
      ...[0, 6, 0, 16, 0x20, 0x01, 0x0d, 0xb8, ...Array<number>(10).fill(0), 0x00, 0x53],
      ...[0, 7, 0, 16, ...ascii('/dns-query{?dns}')],
    ]);
  });

  it('writes the keys in strictly ascending order whatever the field order', () => {
    const rdata = encodeSvcbRdata({ dohpath: '/q{?dns}', ipv6hint: ['::1'], ipv4hint: ['127.0.0.1'], port: 1, alpn: ['h2'], target: 'a', priority: 9 });
    const keys: number[] = [];
    for (let p = 2 + name('a').length; p < rdata.length; p += 4 + rdata.readUInt16BE(p + 2)) keys.push(rdata.readUInt16BE(p));
    expect(keys).toEqual([SVC_PARAM.ALPN, SVC_PARAM.PORT, SVC_PARAM.IPV4HINT, SVC_PARAM.IPV6HINT, SVC_PARAM.DOHPATH]);
  });

  it('leaves out empty hint lists and writes the root target as one zero byte', () => {
    expect([...encodeSvcbRdata({ priority: 1, target: '', ipv4hint: [], ipv6hint: [] })]).toEqual([0, 1, 0]);
  });

  it.each([
    ['AliasMode priority 0', { priority: 0, target: 'a' }],
    ['an empty ALPN id', { priority: 1, target: 'a', alpn: [''] }],
    ['an IPv6 address as ipv4hint', { priority: 1, target: 'a', ipv4hint: ['2001:db8::1'] }],
    ['an IPv4 address as ipv6hint', { priority: 1, target: 'a', ipv6hint: ['192.0.2.1'] }],
    ['a dohpath without the dns variable', { priority: 1, target: 'a', dohpath: '/dns-query' }],
    ['an absolute dohpath', { priority: 1, target: 'a', dohpath: 'https://x/dns-query{?dns}' }],
  ])('refuses %s', (_label, record) => {
    expect(() => encodeSvcbRdata(record)).toThrow();
  });
});

describe('encodeSvcbRecords', () => {
  it('writes each record with the owner as a compression pointer, type SVCB, class IN, the TTL and RDLENGTH', () => {
    const records = [
      { priority: 1, target: 'a', port: 853 },
      { priority: 2, target: 'a', port: 443 },
    ];
    const bytes = encodeSvcbRecords(12, 300, records);
    const rdata = [...records.map((r) => encodeSvcbRdata(r))];
    expect([...bytes]).toEqual([...[0xc0, 12, 0, 64, 0, 1, 0, 0, 1, 0x2c, ...u16(rdata[0]!.length), ...rdata[0]!], ...[0xc0, 12, 0, 64, 0, 1, 0, 0, 1, 0x2c, ...u16(rdata[1]!.length), ...rdata[1]!]]);
  });
});
