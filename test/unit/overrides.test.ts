// Runtime overrides (disable, allow, deny) as the policy engine applies them: precedence, scope,
// and the end of each by the injected time.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { DomainSet } from '../../src/match/domain-set.js';
import { PolicyEngine, type Decision } from '../../src/policy/policy-engine.js';
import { CompiledOverrides, DENY_LIST, parseDuration, parseOverridesFile, parseOverrideRule, type OverrideEntry } from '../../src/policy/overrides.js';
import { policyStatus } from '../../src/policy/status.js';

const lists = new Map([
  ['tiktok', DomainSet.from([{ domain: 'tiktok.com', subdomainsOnly: false }])],
  ['temu', DomainSet.from([{ domain: 'temu.com', subdomainsOnly: false }])],
]);

const config = parseConfig(
  `
listeners: [{ address: 127.0.0.1, port: 0 }]
networks:
  internal: { cidrs: [10.0.0.0/8], profile: staff }
  school: { cidrs: [172.16.0.0/12], profile: open }
profiles:
  staff: { block: [tiktok] }
  open: {}
lists:
  tiktok: { file: t.txt }
  temu: { file: t.txt }
policies:
  temu-ban:
    title: Temu
    reference: decision 12
    block: [temu]
    networks: [internal, school]
    from: 2026-01-01
`,
  'test.yaml',
).config;

const T = Date.parse('2026-12-03T10:00:00Z');
const MIN = 60_000;
const base = { reason: 'test', by: 'alice' };

function engine(entries: OverrideEntry[]): PolicyEngine {
  return new PolicyEngine(config, lists, new CompiledOverrides(entries));
}
const net = (e: PolicyEngine, n: string) => e.networks.get(n)!;
const decide = (e: PolicyEngine, network: string, name: string, now = T, client = '10.0.0.1'): Decision => e.decide(net(e, network), name, now, client);

describe('disable', () => {
  it('of a network turns its blocks, profile and policy, into "allowed, disabled", until it ends', () => {
    const e = engine([{ ...base, id: 'd1', kind: 'disable', network: 'internal', until: T + 5 * MIN, created: T }]);
    const d = decide(e, 'internal', 'www.tiktok.com');
    expect(d).toMatchObject({ kind: 'allowed', disabled: { by: { id: 'd1', scope: 'network internal', reason: 'test', until: T + 5 * MIN }, list: 'tiktok', rule: 'tiktok.com' } });
    expect(decide(e, 'internal', 'shop.temu.com')).toMatchObject({ kind: 'allowed', disabled: { list: 'temu', policy: { id: 'temu-ban' } } });
    // the other network keeps blocking
    expect(decide(e, 'school', 'shop.temu.com', T, '172.16.0.1').kind).toBe('blocked');
    // the same engine, later: the decision memo is dropped at the end
    expect(decide(e, 'internal', 'www.tiktok.com', T + 5 * MIN).kind).toBe('blocked');
    expect(decide(e, 'internal', 'www.tiktok.com', T + 5 * MIN - 1).kind).toBe('allowed');
  });

  it('of a policy leaves the profile lists blocking; with no scope, everything is let through', () => {
    const one = engine([{ ...base, id: 'd2', kind: 'disable', policy: 'temu-ban', until: T + MIN, created: T }]);
    expect(decide(one, 'internal', 'www.tiktok.com').kind).toBe('blocked');
    expect(decide(one, 'school', 'temu.com', T, '172.16.0.1')).toMatchObject({ kind: 'allowed', disabled: { by: { scope: 'policy temu-ban' } } });
    const all = engine([{ ...base, id: 'd3', kind: 'disable', until: T + MIN, created: T }]);
    expect(decide(all, 'internal', 'www.tiktok.com')).toMatchObject({ kind: 'allowed', disabled: { by: { scope: 'all blocking' } } });
    expect(policyStatus(all.policies[0]!, T, all.overrides).disabled).toEqual([{ id: 'd3', scope: 'all blocking', until: new Date(T + MIN).toISOString(), reason: 'test', by: 'alice' }]);
    expect(policyStatus(all.policies[0]!, T + MIN, all.overrides).disabled).toEqual([]);
  });
});

describe('allow and deny entries', () => {
  const allow = (over: Partial<OverrideEntry>): OverrideEntry => ({ ...base, id: 'a', kind: 'allow', domain: 'www.tiktok.com', created: T, ...over }) as OverrideEntry;

  it('an allow lets one client (or one network) through, the name and below only, until its end', () => {
    const e = engine([allow({ id: 'a1', client: '10.0.0.5', until: T + MIN, approvedBy: 'CISO' })]);
    expect(decide(e, 'internal', 'cdn.www.tiktok.com', T, '10.0.0.5')).toMatchObject({
      kind: 'allowed',
      allowEntry: { by: { id: 'a1', scope: 'client 10.0.0.5', approvedBy: 'CISO' }, list: 'tiktok', rule: 'tiktok.com' },
    });
    expect(decide(e, 'internal', 'www.tiktok.com', T, '10.0.0.6').kind).toBe('blocked');
    expect(decide(e, 'internal', 'api.tiktok.com', T, '10.0.0.5').kind).toBe('blocked');
    expect(decide(e, 'internal', 'www.tiktok.com', T + MIN, '10.0.0.5').kind).toBe('blocked');
    const range = engine([allow({ id: 'a2', client: '10.1.0.0/16' })]);
    expect(decide(range, 'internal', 'www.tiktok.com', T, '10.1.2.3').kind).toBe('allowed');
    expect(decide(range, 'internal', 'www.tiktok.com', T, '10.2.0.1').kind).toBe('blocked');
  });

  it('a deny blocks with its own list and text; a client entry beats a network entry, and of two the newer wins', () => {
    const e = engine([{ ...base, id: 'n1', kind: 'deny', domain: 'example.org', network: 'school', created: T }, allow({ id: 'c1', domain: 'www.example.org', client: '172.16.0.9' })]);
    const d = decide(e, 'school', 'a.example.org', T, '172.16.0.1');
    expect(d).toMatchObject({ kind: 'blocked', list: DENY_LIST, rule: 'example.org', ruleLabels: 2, reason: 'sluice: blocked by a deny entry for network school: test' });
    // shared by every name under the entry, as a rule's decision is
    expect(decide(e, 'school', 'b.example.org', T, '172.16.0.1')).toBe(d);
    expect(decide(e, 'internal', 'a.example.org').kind).toBe('allowed');
    // the client's allow of www.example.org beats the network's deny of example.org
    expect(decide(e, 'school', 'www.example.org', T, '172.16.0.9').kind).toBe('allowed');
    // and a client's entry beats a network's even for a less specific name; at one level the more specific wins
    const levels = engine([
      { ...base, id: 'net-deny', kind: 'deny', domain: 'cdn.example.org', network: 'school', created: T },
      { ...base, id: 'cli-allow', kind: 'allow', domain: 'example.org', client: '172.16.0.9', created: T - 10 },
      { ...base, id: 'net-allow', kind: 'allow', domain: 'www.tiktok.com', network: 'internal', created: T - 10 },
      { ...base, id: 'net-deny2', kind: 'deny', domain: 'tiktok.com', network: 'internal', created: T },
    ]);
    expect(decide(levels, 'school', 'a.cdn.example.org', T, '172.16.0.9').kind).toBe('allowed');
    expect(decide(levels, 'school', 'a.cdn.example.org', T, '172.16.0.1')).toMatchObject({ kind: 'blocked', list: DENY_LIST, rule: 'cdn.example.org', ruleLabels: 3 });
    expect(decide(levels, 'internal', 'x.www.tiktok.com')).toMatchObject({ kind: 'allowed', allowEntry: { by: { id: 'net-allow' } } });
    const two = engine([
      { ...base, id: 'old', kind: 'allow', domain: 'tiktok.com', network: 'internal', created: T - 2 },
      { ...base, id: 'new', kind: 'deny', domain: 'tiktok.com', network: 'internal', created: T - 1 },
      { ...base, id: 'cli', kind: 'allow', domain: 'tiktok.com', client: '10.0.0.7', created: T - 3 },
    ]);
    expect(decide(two, 'internal', 'tiktok.com').kind).toBe('blocked');
    expect(decide(two, 'internal', 'tiktok.com', T, '10.0.0.7')).toMatchObject({ kind: 'allowed', allowEntry: { by: { id: 'cli' } } });
  });

  it('CNAME targets and names with no entry cost nothing new: decisions without entries are unchanged', () => {
    const e = engine([allow({ client: '10.0.0.5' })]);
    const plain = new PolicyEngine(config, lists);
    for (const n of ['example.net', 'www.tiktok.com', 'temu.com']) expect(decide(e, 'internal', n)).toEqual(decide(plain, 'internal', n));
  });
});

describe('the overrides file and the shared log entries', () => {
  it('parses what the CLI writes and names the field of a bad entry', () => {
    const entry = { id: 'x', kind: 'disable', until: T, reason: 'r', by: 'b', created: T };
    expect(parseOverridesFile(JSON.stringify({ overrides: [entry] }), 'f.json')).toEqual([entry]);
    expect(parseOverridesFile('', 'f.json')).toEqual([]);
    expect(() => parseOverridesFile('{"overrides":[{"kind":"allow","id":"a","reason":"r","by":"b","created":1}]}', 'f.json')).toThrow(/^f\.json: overrides\.0\.domain: /);
    expect(() => parseOverridesFile('{"overrides":[{"kind":"pause"}]}', 'f.json')).toThrow(/^f\.json: overrides\.0\.kind: /);
    expect(() => parseOverridesFile('{', 'f.json')).toThrow(/^f\.json: not JSON/);
    expect(parseOverrideRule(JSON.stringify(entry))).toEqual(entry);
    expect(parseOverrideRule('not json')).toBeUndefined();
  });

  it.each([
    ['30s', 30_000],
    ['15m', 900_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['0m', undefined],
    ['5', undefined],
    ['5 minutes', undefined],
    ['', undefined],
  ])('the duration %j is %j ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
});
