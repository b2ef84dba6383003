import { describe, expect, it } from 'vitest';
import { ClientNames, parseHostsText } from '../../src/match/client-names.js';
import { reverseName } from '../../src/upstream/reverse-names.js';

describe('hosts files', () => {
  it('name each address by the first name of its first line, and report the lines they skip', () => {
    const r = parseHostsText('# leases\n10.0.0.5  laptop-5 alias # desk 12\n10.0.0.5 second\n2001:DB8:0:0::7 v6-host\n::ffff:10.0.0.9 mapped\nbogus name\n10.0.0.8\n10.0.0.10 bad/name\n');
    expect([...r.names]).toEqual([
      ['10.0.0.5', 'laptop-5'],
      ['2001:db8::7', 'v6-host'],
      ['10.0.0.9', 'mapped'],
    ]);
    expect(r.problems).toEqual([
      { line: 6, message: '"bogus" is not an IP address' },
      { line: 7, message: 'an address without a name' },
      { line: 8, message: '"bad/name" is not a host name' },
    ]);
  });
});

describe('ClientNames', () => {
  const names = new ClientNames([new Map([['10.0.0.5', 'static-5']]), parseHostsText('10.0.0.5 hosts-5\n10.0.0.6 hosts-6\n2001:db8::7 v6\n').names]);

  it('puts the first source first, finds IPv6 in any spelling, and never names a pseudonym token', () => {
    expect(names.name('10.0.0.5')).toBe('static-5');
    expect(names.name('10.0.0.6')).toBe('hosts-6');
    expect(names.name('2001:db8:0::7')).toBe('v6');
    expect(names.name('p:0123456789abcdef')).toBeUndefined();
    expect(names.addresses('HOSTS-6')).toEqual(['10.0.0.6']);
  });

  it('labels rows with clientName only where a name is known, leaving the rows as they were', () => {
    const rows = [
      { client: '10.0.0.6', n: 1 },
      { client: '10.9.9.9', n: 2 },
    ];
    expect(names.label(rows)).toEqual([
      { client: '10.0.0.6', n: 1, clientName: 'hosts-6' },
      { client: '10.9.9.9', n: 2 },
    ]);
    expect(rows[0]).toEqual({ client: '10.0.0.6', n: 1 });
    expect(new ClientNames().label(rows)).toBe(rows);
  });
});

describe('reverse names', () => {
  it('are in-addr.arpa for IPv4 (and IPv4-mapped) and nibbles under ip6.arpa for IPv6', () => {
    expect(reverseName('10.1.2.3')).toBe('3.2.1.10.in-addr.arpa');
    expect(reverseName('::ffff:10.1.2.3')).toBe('3.2.1.10.in-addr.arpa');
    expect(reverseName('2001:db8::1')).toBe('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    expect(reverseName('p:0123456789abcdef')).toBeUndefined();
  });
});
