// The compliance reports on a known sequence of events.
import { describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { bypassReport, devicesReport } from '../../src/querylog/reports.js';

const T0 = Date.parse('2026-11-02T08:00:00Z');
const min = 60_000;

function ev(minute: number, client: string, network: string | null, name: string, e: Partial<QueryEvent> = {}): QueryEvent {
  return {
    time: T0 + minute * min,
    instance: 'test',
    client,
    network,
    profile: 'staff',
    policy: null,
    list: null,
    rule: null,
    name,
    type: 'A',
    decision: 'allowed',
    wouldBlock: false,
    exception: false,
    cache: false,
    upstream: '192.0.2.53:53',
    rcode: 0,
    answers: 1,
    durationMs: 1,
    transport: 'udp',
    ...e,
  };
}

const banned = (list: string, rule: string, policy = 'app-ban'): Partial<QueryEvent> => ({ decision: 'blocked', policy, list, rule, upstream: null, rcode: 3, answers: 0 });

// Two staff laptops keep asking for TikTok after the ban; one also for Temu; a comms phone is
// excepted; a dry-run policy would block WeChat on the guest network; one laptop tries DoH.
const events: QueryEvent[] = [
  ev(0, '10.0.0.5', 'internal', 'www.tiktok.com', banned('tiktok', 'tiktok.com')),
  ev(1, '10.0.0.5', 'internal', 'example.org'),
  ev(2, '10.0.0.6', 'internal', 'v16.tiktokcdn.com', banned('tiktok', 'tiktokcdn.com')),
  ev(3, '10.0.0.5', 'internal', 'api.tiktok.com', banned('tiktok', 'tiktok.com')),
  ev(4, '10.0.0.5', 'internal', 'temu.com', banned('temu', 'temu.com')),
  ev(5, '10.0.4.9', 'comms', 'www.tiktok.com', { policy: 'app-ban', exception: true }),
  ev(6, 'p:0123456789abcdef', 'guest', 'web.wechat.com', { policy: 'wechat-trial', list: 'wechat', rule: 'wechat.com', wouldBlock: true }),
  ev(7, '10.0.0.5', 'internal', 'dns.google', banned('doh-bypass', 'dns.google', 'no-such')),
  ev(8, '10.0.0.5', 'internal', 'use-application-dns.net', { decision: 'blocked', list: 'doh-bypass', rule: 'use-application-dns.net' }),
  ev(9, 'p:0123456789abcdef', 'guest', 'cloudflare-dns.com'),
  ev(10, 'p:0123456789abcdef', 'guest', 'www.turbovpn.com'),
  ev(11, '10.0.0.6', 'internal', 'www.tiktok.com', banned('tiktok', 'tiktok.com')),
  ev(12, '10.0.0.6', 'internal', 'turbovpn.co', banned('turbovpn', 'turbovpn.co')),
  ev(13, '127.9.0.1', null, 'example.org', { decision: 'refused', profile: null, upstream: null, rcode: 5, answers: 0 }),
];

describe('devicesReport', () => {
  it('lists every device a policy blocked, per app, with counts and first and last seen', () => {
    const rows = devicesReport(events, { policy: 'app-ban' });
    expect(rows.map((r) => [r.network, r.client, r.list, r.count, (r.firstSeen - T0) / min, (r.lastSeen - T0) / min, r.names])).toEqual([
      ['internal', '10.0.0.5', 'temu', 1, 4, 4, ['temu.com']],
      ['internal', '10.0.0.5', 'tiktok', 2, 0, 3, ['api.tiktok.com', 'www.tiktok.com']],
      ['internal', '10.0.0.6', 'tiktok', 2, 2, 11, ['v16.tiktokcdn.com', 'www.tiktok.com']],
      ['internal', '10.0.0.6', 'turbovpn', 1, 12, 12, ['turbovpn.co']],
    ]);
  });

  it('leaves out exceptions, dry-run would-blocks and blocks without a policy', () => {
    const all = devicesReport(events);
    expect(all.some((r) => r.network === 'comms' || r.network === 'guest')).toBe(false);
    expect(all.some((r) => r.names.includes('use-application-dns.net'))).toBe(false);
    // without --policy every policy counts, and the row says which
    expect(all.filter((r) => r.policy === 'no-such').map((r) => r.names)).toEqual([['dns.google']]);
  });

  it.each([
    [
      { since: T0 + 3 * min },
      [
        ['10.0.0.5', 'temu', 1],
        ['10.0.0.5', 'tiktok', 1],
        ['10.0.0.6', 'tiktok', 1],
        ['10.0.0.6', 'turbovpn', 1],
      ],
    ],
    [
      { until: T0 + 3 * min },
      [
        ['10.0.0.5', 'tiktok', 1],
        ['10.0.0.6', 'tiktok', 1],
      ],
    ],
    [{ network: 'guest' }, []],
  ])('narrows to %o', (o, expected) => {
    expect(devicesReport(events, { policy: 'app-ban', ...o }).map((r) => [r.client, r.list, r.count])).toEqual(expected);
  });
});

describe('bypassReport', () => {
  it('lists clients that asked for bypass endpoints or VPN apps, blocked by a profile or a policy', () => {
    const rows = bypassReport(events);
    expect(rows.map((r) => [r.network, r.client, r.list, r.count, r.blocked, (r.firstSeen - T0) / min, (r.lastSeen - T0) / min, r.endpoints])).toEqual([
      ['internal', '10.0.0.5', 'doh-bypass', 2, 2, 7, 8, ['dns.google', 'use-application-dns.net']],
      ['internal', '10.0.0.6', 'turbovpn', 1, 1, 12, 12, ['turbovpn.co']],
    ]);
  });

  it('finds queries nothing blocked with a classifier of the bypass lists', () => {
    const classify = (name: string) => (name === 'cloudflare-dns.com' ? 'doh-bypass' : name.endsWith('turbovpn.com') ? 'turbovpn' : undefined);
    const rows = bypassReport(events, { network: 'guest', classify });
    expect(rows.map((r) => [r.client, r.list, r.count, r.blocked, r.endpoints])).toEqual([
      ['p:0123456789abcdef', 'doh-bypass', 1, 0, ['cloudflare-dns.com']],
      ['p:0123456789abcdef', 'turbovpn', 1, 0, ['www.turbovpn.com']],
    ]);
  });

  it('respects the time range and the lists asked for', () => {
    expect(bypassReport(events, { since: T0 + 8 * min }).map((r) => [r.client, r.list, r.count])).toEqual([
      ['10.0.0.5', 'doh-bypass', 1],
      ['10.0.0.6', 'turbovpn', 1],
    ]);
    expect(bypassReport(events, { lists: ['turbovpn'] }).map((r) => r.list)).toEqual(['turbovpn']);
  });
});
