import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DomainSet } from '../../src/match/domain-set.js';
import { PolicyEngine, type Decision } from '../../src/policy/policy-engine.js';
import { inSchedule, policyState } from '../../src/policy/policy.js';
import { zonedToEpoch } from '../../src/policy/calendar.js';

const lists = new Map([
  ['tiktok', DomainSet.from([{ domain: 'tiktok.com', subdomainsOnly: false }])],
  ['temu', DomainSet.from([{ domain: 'temu.com', subdomainsOnly: false }])],
  ['social', DomainSet.from([{ domain: 'instagram.com', subdomainsOnly: false }])],
]);

function engine(policies: string, profiles = 'staff: {}\n  comms: {}\n  open: {}'): PolicyEngine {
  const text = `
listeners: [{ address: 127.0.0.1, port: 0 }]
networks:
  internal: { cidrs: [10.0.0.0/8], profile: staff }
  comms: { cidrs: [10.20.30.0/24], profile: comms }
  school: { cidrs: [172.16.0.0/12], profile: open }
profiles:
  ${profiles}
lists:
  tiktok: { file: t.txt }
  temu: { file: t.txt }
  social: { file: t.txt }
policies:
${policies}
`;
  return new PolicyEngine(parseConfig(text, 'test.yaml').config, lists);
}

const at = (iso: string) => Date.parse(iso);
const kind = (d: Decision) => d.kind;

const ban = `  ban:
    title: App ban
    reference: CCB advice of 2023-03-08
    block: [tiktok, temu]
    networks: [internal]
    from: 2023-03-10
    review_by: 2023-09-10
    timezone: Europe/Brussels
`;

describe('policy lifecycle', () => {
  const p = engine(ban).policies[0]!;

  it.each([
    ['2023-03-09T22:59:00Z', 'scheduled'], // 23:59 in Brussels on the 9th
    ['2023-03-09T23:00:00Z', 'active'], // midnight in Brussels on the 10th
    ['2023-07-01T12:00:00Z', 'active'],
    ['2023-08-20T12:00:00Z', 'review-due'], // within 30 days of review_by
    ['2023-09-10T21:59:00Z', 'review-due'], // last minute of the review day (CEST)
    ['2023-09-10T22:00:00Z', 'review-overdue'],
    ['2025-01-01T00:00:00Z', 'review-overdue'], // no `until`: fails safe, keeps enforcing
  ])('at %s the state is %s', (when, state) => {
    expect(policyState(p, at(when)).state).toBe(state);
  });

  it('counts the days left until review', () => {
    expect(policyState(p, at('2023-09-01T12:00:00Z')).reviewInDays).toBe(10);
  });

  it('lapses after `until`', () => {
    const e = engine(ban.replace('review_by: 2023-09-10', 'until: 2023-09-10'));
    const internal = e.networks.get('internal')!;
    expect(kind(e.decide(internal, 'www.tiktok.com', at('2023-09-10T21:00:00Z')))).toBe('blocked');
    expect(kind(e.decide(internal, 'www.tiktok.com', at('2023-09-10T22:00:00Z')))).toBe('allowed');
    expect(policyState(e.policies[0]!, at('2023-09-11T00:00:00Z')).state).toBe('lapsed');
  });

  it('is not enforced before `from`, and is once the clock passes it (memo invalidated)', () => {
    const e = engine(ban);
    const internal = e.networks.get('internal')!;
    expect(kind(e.decide(internal, 'tiktok.com', at('2023-03-09T12:00:00Z')))).toBe('allowed');
    const d = e.decide(internal, 'tiktok.com', at('2023-03-10T12:00:00Z'));
    expect(d).toMatchObject({ kind: 'blocked', policy: { id: 'ban', reference: 'CCB advice of 2023-03-08' }, list: 'tiktok', rule: 'tiktok.com' });
    expect(d.kind === 'blocked' && d.reason).toContain('policy ban (CCB advice of 2023-03-08)');
    // the clock going back is honoured too
    expect(kind(e.decide(internal, 'tiktok.com', at('2023-03-09T12:00:00Z')))).toBe('allowed');
  });

  it('keeps enforcing when review is overdue', () => {
    const e = engine(ban);
    expect(kind(e.decide(e.networks.get('internal')!, 'tiktok.com', at('2024-06-01T00:00:00Z')))).toBe('blocked');
  });

  it('does not apply to networks it does not name', () => {
    const e = engine(ban);
    expect(kind(e.decide(e.networks.get('school')!, 'tiktok.com', at('2023-06-01T00:00:00Z')))).toBe('allowed');
  });
});

describe('dry-run', () => {
  it('answers normally and records what it would block', () => {
    const e = engine(ban + '    mode: dry-run\n');
    const d = e.decide(e.networks.get('internal')!, 'm.tiktok.com', at('2023-06-01T00:00:00Z'));
    expect(d).toMatchObject({ kind: 'allowed', wouldBlock: { policy: { id: 'ban' }, list: 'tiktok', rule: 'tiktok.com' } });
  });

  it('never hides a block of an enforcing policy', () => {
    const dry = ban.replace('  ban:', '  trial:') + '    mode: dry-run\n';
    const e = engine(dry + ban);
    expect(kind(e.decide(e.networks.get('internal')!, 'tiktok.com', at('2023-06-01T00:00:00Z')))).toBe('blocked');
  });
});

describe('exceptions', () => {
  const withExceptions =
    ban.replace('networks: [internal]', 'networks: [internal, comms]') +
    `    exceptions:
      - network: comms
        lists: [tiktok]
        reason: official account
        approved_by: Head of Communications
        until: 2023-06-30
      - clients: [10.9.9.9, 10.8.0.0/16]
        reason: security research
        approved_by: CISO
`;

  it('lets a network through for the excepted lists only, and expires by itself', () => {
    const e = engine(withExceptions);
    const comms = e.networks.get('comms')!;
    expect(e.decide(comms, 'tiktok.com', at('2023-06-01T00:00:00Z'))).toMatchObject({
      kind: 'allowed',
      exception: { policy: 'ban', reason: 'official account', approvedBy: 'Head of Communications', until: '2023-06-30', scope: 'network comms' },
    });
    expect(kind(e.decide(comms, 'temu.com', at('2023-06-01T00:00:00Z')))).toBe('blocked');
    expect(kind(e.decide(comms, 'tiktok.com', at('2023-06-30T21:59:00Z')))).toBe('allowed');
    expect(kind(e.decide(comms, 'tiktok.com', at('2023-06-30T22:00:00Z')))).toBe('blocked'); // midnight in Brussels
  });

  it('lets excepted clients through by address', () => {
    const e = engine(withExceptions);
    const internal = e.networks.get('internal')!;
    const t = at('2023-06-01T00:00:00Z');
    expect(e.decide(internal, 'temu.com', t, '10.9.9.9')).toMatchObject({ kind: 'allowed', exception: { approvedBy: 'CISO' } });
    expect(kind(e.decide(internal, 'temu.com', t, '10.8.1.2'))).toBe('allowed');
    expect(kind(e.decide(internal, 'temu.com', t, '10.9.9.10'))).toBe('blocked');
  });
});

describe('overlapping policies', () => {
  it('the most specific network wins: the comms /24 inside the internal /8 gets its own rules', () => {
    const social = `  social-ban:
    title: Social media
    reference: school rules
    block: [social]
    networks: [comms]
    from: 2023-01-01
`;
    const e = engine(ban + social);
    const t = at('2023-06-01T00:00:00Z');
    // 10.20.30.5 is inside 10.0.0.0/8 but classified as comms (/24), which the app ban does not name
    expect(kind(e.decide(e.networks.get('comms')!, 'tiktok.com', t))).toBe('allowed');
    expect(kind(e.decide(e.networks.get('comms')!, 'instagram.com', t))).toBe('blocked');
    expect(kind(e.decide(e.networks.get('internal')!, 'instagram.com', t))).toBe('allowed');
  });

  it('an allow exception in one policy beats another policy blocking the same list', () => {
    const second = `  second:
    title: Second ban of the same app
    reference: other circular
    block: [tiktok]
    networks: [internal]
    from: 2023-01-01
    exceptions:
      - clients: [10.1.1.1]
        reason: test device
        approved_by: CISO
`;
    const e = engine(ban + second);
    const t = at('2023-06-01T00:00:00Z');
    expect(kind(e.decide(e.networks.get('internal')!, 'tiktok.com', t, '10.1.1.1'))).toBe('allowed');
    expect(kind(e.decide(e.networks.get('internal')!, 'tiktok.com', t, '10.1.1.2'))).toBe('blocked');
  });

  it('a profile allow entry beats a policy block', () => {
    const e = engine(ban, 'staff: { allow: [newsroom.tiktok.com] }\n  comms: {}\n  open: {}');
    const t = at('2023-06-01T00:00:00Z');
    expect(e.decide(e.networks.get('internal')!, 'newsroom.tiktok.com', t)).toMatchObject({ kind: 'allowed', allowRule: 'newsroom.tiktok.com', overriddenList: 'tiktok' });
  });
});

describe('schedules', () => {
  const lessons =
    ban.replace('networks: [internal]', 'networks: [school]').replace('block: [tiktok, temu]', 'block: [social]') +
    `    schedule:
      windows:
        - { days: [mon, tue, wed, thu, fri], from: "08:30", to: "16:00" }
        - { days: [sat], from: "22:00", to: "02:00" }
`;

  it.each([
    // Friday 27 March 2026: Brussels is UTC+1
    ['2026-03-27T07:29:00Z', false],
    ['2026-03-27T07:30:00Z', true],
    ['2026-03-27T14:59:00Z', true],
    ['2026-03-27T15:00:00Z', false],
    // Monday 30 March 2026, after the switch to summer time: UTC+2
    ['2026-03-30T06:29:00Z', false],
    ['2026-03-30T06:30:00Z', true],
    ['2026-03-30T13:59:00Z', true],
    ['2026-03-30T14:00:00Z', false],
    // Sunday 29 March, the DST night: the Saturday 22:00–02:00 window runs past midnight
    ['2026-03-28T20:59:00Z', false],
    ['2026-03-28T21:00:00Z', true],
    ['2026-03-28T23:59:00Z', true], // 00:59 local
    ['2026-03-29T00:59:00Z', true], // 01:59 CET, just before the clocks jump
    ['2026-03-29T01:00:00Z', false], // 03:00 CEST: the window ended at 02:00, which never came
  ])('at %s the school social-media block applies: %s', (when, inside) => {
    const e = engine(lessons);
    const p = e.policies[0]!;
    const expected = inside;
    expect(inSchedule(p, at(when))).toBe(expected);
    const d = e.decide(e.networks.get('school')!, 'instagram.com', at(when));
    expect(d.kind).toBe(expected ? 'blocked' : 'allowed');
    if (!expected) expect(d).toMatchObject({ outsideSchedule: { id: 'ban' } });
  });
});

describe('calendar', () => {
  it('converts wall-clock times across the DST change', () => {
    expect(new Date(zonedToEpoch(2026, 3, 29, 1, 30, 'Europe/Brussels')).toISOString()).toBe('2026-03-29T00:30:00.000Z');
    expect(new Date(zonedToEpoch(2026, 3, 29, 3, 30, 'Europe/Brussels')).toISOString()).toBe('2026-03-29T01:30:00.000Z');
    expect(new Date(zonedToEpoch(2026, 10, 25, 12, 0, 'Europe/Brussels')).toISOString()).toBe('2026-10-25T11:00:00.000Z');
  });
});

describe('resolver-bypass list by default', () => {
  const bypassLists = new Map([...lists, ['doh-bypass', DomainSet.from([{ domain: 'dns.google', subdomainsOnly: false }])]]);
  const make = (profiles: string, policies = '  {}') =>
    new PolicyEngine(
      parseConfig(
        `
listeners: [{ address: 127.0.0.1, port: 0 }]
networks:
  internal: { cidrs: [10.0.0.0/8], profile: staff }
  school: { cidrs: [172.16.0.0/12], profile: open }
  lab: { cidrs: [192.168.0.0/16], profile: lab }
profiles:
  ${profiles}
lists:
  tiktok: { file: t.txt }
  doh-bypass: { file: d.txt }
policies:
${policies}
`,
        'bypass.yaml',
      ).config,
      bypassLists,
    );

  it('is blocked on a profile that blocks anything, not on an open one, and not when a profile opts out', () => {
    const e = make('staff: { block: [tiktok] }\n  open: {}\n  lab: { block: [tiktok], block_bypass: false }');
    expect(kind(e.decide(e.networks.get('internal')!, 'dns.google', 0))).toBe('blocked');
    expect(kind(e.decide(e.networks.get('school')!, 'dns.google', 0))).toBe('allowed');
    expect(kind(e.decide(e.networks.get('lab')!, 'dns.google', 0))).toBe('allowed');
  });

  it('is blocked on a profile whose networks a policy names, even if the profile blocks nothing itself', () => {
    const e = make('staff: {}\n  open: {}\n  lab: {}', `  ban:\n    title: t\n    reference: r\n    block: [tiktok]\n    networks: [internal]\n    from: 2020-01-01\n`);
    expect(e.decide(e.networks.get('internal')!, 'x.dns.google', 0)).toMatchObject({ kind: 'blocked', list: 'doh-bypass' });
    expect(kind(e.decide(e.networks.get('lab')!, 'x.dns.google', 0))).toBe('allowed');
  });
});
