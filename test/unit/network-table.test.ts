import { describe, expect, it } from 'vitest';
import { NetworkTable } from '../../src/match/network-table.js';

const table = new NetworkTable([
  { cidr: '10.0.0.0/8', network: 'internal' },
  { cidr: '10.20.30.0/24', network: 'comms' },
  { cidr: '10.20.30.7', network: 'one-host' },
  { cidr: '192.168.0.0/16', network: 'guest' },
  { cidr: '2001:db8::/32', network: 'internal-v6' },
  { cidr: '2001:db8:aa::/48', network: 'school-v6' },
]);

describe('NetworkTable', () => {
  it.each([
    ['10.1.2.3', 'internal'],
    ['10.20.30.1', 'comms'],
    ['10.20.30.7', 'one-host'],
    ['10.20.31.1', 'internal'],
    ['192.168.5.5', 'guest'],
    ['172.16.0.1', undefined],
    ['::ffff:10.20.30.9', 'comms'],
    ['2001:db8::1', 'internal-v6'],
    ['2001:db8:aa::1', 'school-v6'],
    ['2001:db8:ab::1', 'internal-v6'],
    ['2001:db9::1', undefined],
    ['fe80::1%eth0', undefined],
    ['not-an-address', undefined],
  ])('%s → %s (longest prefix wins)', (addr, expected) => {
    expect(table.lookup(addr)).toBe(expected);
    expect(table.lookup(addr)).toBe(expected); // memoised answer is the same
  });
});
