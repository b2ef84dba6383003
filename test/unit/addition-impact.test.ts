import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { coverage, defeatedExceptions, describeCoverage, describeDefeats } from '../../src/policy/addition-impact.js';
import { DomainSet } from '../../src/match/domain-set.js';

const NOW = Date.parse('2026-12-02T12:00:00Z');

interface Opts {
  exception?: string;
  policy?: string;
  policyLists?: string;
}

/** The reference layout: staff profile blocks the site list; the ban is a policy with an exception for comms. */
function setup(o: Opts = {}) {
  const text = `
listeners: [{ address: 127.0.0.1, port: 0 }]
networks:
  internal: { cidrs: [127.0.0.0/24], profile: staff }
  comms: { cidrs: [127.0.0.4/32], profile: staff }
  guest: { cidrs: [127.0.0.2/32], profile: open }
profiles:
  staff: { block: [local-additions] }
  open: { block: [] }
policies:
  app-ban:
    title: Ban
    reference: Decision 1
    block: ${o.policyLists ?? '[tiktok]'}
    networks: [internal, comms]
    from: 2026-11-01
${o.policy ?? ''}
    exceptions:
${o.exception ?? '      - { network: comms, lists: [tiktok], reason: Official account, approved_by: CISO, until: 2099-04-30 }'}
lists:
  local-additions: { file: local.txt }
  tiktok: { file: tiktok.txt }
  extra: { file: extra.txt }
  unused: { file: unused.txt }
`;
  const config = parseConfig(text, 'test.yaml').config;
  const set = (...rules: string[]) => {
    const s = new DomainSet();
    for (const r of rules) {
      if (r.startsWith('*.')) s.add(r.slice(2), true);
      else s.add(r);
    }
    return s;
  };
  const sets = new Map([
    ['extra', set()],
    ['local-additions', set('local.example')],
    ['tiktok', set('tiktok.com', 'tiktokv.eu', '*.tiktokcdn.com', 'sf16.bytedance.example')],
    ['unused', set('unused.example')],
  ]);
  return { config, sets };
}

describe('coverage', () => {
  const { config, sets } = setup();
  it.each([
    ['tiktokv.eu', 'tiktok', 'tiktokv.eu'],
    ['www.tiktok.com', 'tiktok', 'tiktok.com'],
    ['*.tiktok.com', 'tiktok', 'tiktok.com'],
    ['a.tiktokcdn.com', 'tiktok', '*.tiktokcdn.com'],
    ['*.tiktokcdn.com', 'tiktok', '*.tiktokcdn.com'],
    ['*.x.tiktokcdn.com', 'tiktok', '*.tiktokcdn.com'],
    ['sub.local.example', 'local-additions', 'local.example'],
  ])('%s is covered by list %s (rule %s)', (rule, list, by) => {
    expect(coverage(config, sets, 'local-additions', [rule])).toEqual([{ rule, list, by, usedBy: list === 'tiktok' ? ['policy app-ban'] : ['profile staff'] }]);
  });

  it.each(['tiktokcdn.com', 'bytedance.example', 'new.example'])('%s is not covered (a *.x rule does not cover x, a child rule not its parent)', (rule) => {
    expect(coverage(config, sets, 'local-additions', [rule])).toEqual([]);
  });

  it('leaves out the same rule in the list itself (the edit reports it as already listed)', () => {
    expect(coverage(config, sets, 'local-additions', ['local.example'])).toEqual([]);
  });

  it('says when the covering list blocks nothing', () => {
    const [c] = coverage(config, sets, 'local-additions', ['www.unused.example']);
    expect(c).toEqual({ rule: 'www.unused.example', list: 'unused', by: 'unused.example', usedBy: [] });
    expect(describeCoverage(c!)).toBe('www.unused.example is already in list unused (rule unused.example), which no profile or policy uses');
    expect(describeCoverage(coverage(config, sets, 'local-additions', ['tiktokv.eu'])[0]!)).toBe('tiktokv.eu is already blocked by list tiktok (rule tiktokv.eu; policy app-ban)');
  });
});

describe('defeatedExceptions', () => {
  it("finds the README's example: a name of an excepted list added to a profile's list", () => {
    const { config, sets } = setup();
    const d = defeatedExceptions(config, sets, 'local-additions', ['tiktokv.eu'], NOW);
    expect(d).toEqual([
      {
        policy: 'app-ban',
        index: 0,
        scope: 'network comms',
        lists: ['tiktok'],
        reason: 'Official account',
        approvedBy: 'CISO',
        until: '2099-04-30',
        networks: ['comms'],
        names: ['tiktokv.eu'],
        from: NOW,
      },
    ]);
    const text = describeDefeats('local-additions', d, NOW);
    expect(text).toContain(`tiktokv.eu on network comms: policy app-ban's exception for network comms (lists tiktok; until 2099-04-30): "Official account", approved by CISO`);
    expect(text).toContain('--override-exception');
  });

  it('finds rules of the excepted list below an added parent, and names below an added *.x', () => {
    const { config, sets } = setup();
    expect(defeatedExceptions(config, sets, 'local-additions', ['bytedance.example'], NOW)[0]?.names).toEqual(['sf16.bytedance.example']);
    expect(defeatedExceptions(config, sets, 'local-additions', ['*.tiktok.com'], NOW)[0]?.names).toEqual(['*.tiktok.com']);
    expect(defeatedExceptions(config, sets, 'local-additions', ['*.tiktokcdn.com'], NOW)[0]?.names).toEqual(['*.tiktokcdn.com']);
    // tiktokcdn.com itself is not excepted (only what is below it), but adding it blocks what is below
    expect(defeatedExceptions(config, sets, 'local-additions', ['tiktokcdn.com'], NOW)[0]?.names).toEqual(['*.tiktokcdn.com']);
  });

  it('finds nothing for a name no exception lets through, for an addition to the excepted list itself, or for an expired exception', () => {
    const { config, sets } = setup();
    expect(defeatedExceptions(config, sets, 'local-additions', ['new.example', 'notiktok.com', 'com.tiktok.com.example'], NOW)).toEqual([]);
    expect(defeatedExceptions(config, sets, 'tiktok', ['tiktokv.eu', 'more.tiktok.example'], NOW)).toEqual([]);
    const expired = setup({ exception: '      - { network: comms, lists: [tiktok], reason: Old, approved_by: CISO, until: 2026-01-31 }' });
    expect(defeatedExceptions(expired.config, expired.sets, 'local-additions', ['tiktokv.eu'], NOW)).toEqual([]);
  });

  it('finds a client exception, on the network of those clients', () => {
    const { config, sets } = setup({ exception: '      - { clients: [127.0.0.9, 127.0.0.10], reason: Press office, approved_by: CISO }' });
    const [d] = defeatedExceptions(config, sets, 'local-additions', ['tiktokv.eu'], NOW);
    expect(d).toMatchObject({ scope: 'clients 127.0.0.9, 127.0.0.10', lists: undefined, until: undefined, networks: ['internal', 'comms'] });
    expect(describeDefeats('local-additions', [d!], NOW)).toContain("policy app-ban's exception for clients 127.0.0.9, 127.0.0.10 (all its lists; no end date)");
  });

  it('finds an exception of a policy that comes into force later, from that date', () => {
    const { sets } = setup();
    const { config } = setup({ policy: '    review_by: 2099-12-31' });
    const scheduled = parseConfig(JSON.stringify({ ...config, policies: { 'app-ban': { ...config.policies['app-ban'], from: '2098-01-01' } } }), 'test.yaml').config;
    const [d] = defeatedExceptions(scheduled, sets, 'local-additions', ['tiktokv.eu'], NOW);
    expect(d?.from).toBe(Date.parse('2098-01-01T00:00:00Z'));
    expect(describeDefeats('local-additions', [d!], NOW)).toContain('tiktokv.eu on network comms from 2098-01-01: ');
  });

  it('names at most five of the names an import would block', () => {
    const { config, sets } = setup();
    const rules = Array.from({ length: 7 }, (_, i) => `n${i}.tiktok.com`);
    const d = defeatedExceptions(config, sets, 'local-additions', rules, NOW);
    expect(d[0]?.names).toEqual(rules);
    expect(describeDefeats('local-additions', d, NOW)).toContain('n0.tiktok.com, n1.tiktok.com, n2.tiktok.com, n3.tiktok.com, n4.tiktok.com and 2 more on network comms: ');
  });

  it('finds an exception outside its schedule: the addition blocks at every hour', () => {
    const { config, sets } = setup({ policy: '    schedule: { windows: [{ days: [sun], from: "00:00", to: "00:01" }] }' });
    expect(defeatedExceptions(config, sets, 'local-additions', ['tiktokv.eu'], NOW)).toHaveLength(1);
  });

  it('finds an exception defeated by another list of the same policy that the exception does not name', () => {
    const { config, sets } = setup({ policyLists: '[tiktok, extra]' });
    const [d] = defeatedExceptions(config, sets, 'extra', ['tiktokv.eu'], NOW);
    expect(d).toMatchObject({ policy: 'app-ban', networks: ['comms'], names: ['tiktokv.eu'] });
  });
});
