// RPZ zones (src/rpz/) and the list exports of subdomain-only rules (list-editor.ts exportRules).
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { TYPE } from '../../src/dns/codes.js';
import { TsigSigner, verifyRequest } from '../../src/dns/tsig.js';
import { encodeName } from '../../src/dns/wire.js';
import { parseList } from '../../src/lists/formats.js';
import { exportRules } from '../../src/lists/list-editor.js';
import { DomainSet } from '../../src/match/domain-set.js';
import { RuleSet } from '../../src/rules/rule-set.js';
import { networkRules } from '../../src/rpz/network-rules.js';
import { nextSerial, policyNames, zoneRecords, zoneText } from '../../src/rpz/zone.js';

describe('exportRules: subdomain-only rules', () => {
  const rules = ['plain.example', '*.wild.example'];
  it('hosts: a hosts file cannot say "subdomains only": a comment line, and the rule in skipped', () => {
    const out = exportRules(rules, 'hosts', ['h']);
    expect(out.text).toBe('# h\n0.0.0.0 plain.example\n# not exported: *.wild.example (subdomains of wild.example only; a hosts file cannot express that)\n');
    expect(out.skipped).toEqual(['*.wild.example']);
    expect(out.text).not.toMatch(/^0\.0\.0\.0 .*\*/m);
    // what is written is exactly the rules that a hosts file can carry
    expect(parseList(out.text, 'hosts').entries.map((e) => e.domain)).toEqual(['plain.example']);
  });
  it('adblock: `||*.d^` (the wildcard matches below d only), never `||d^`, which would block d too', () => {
    const out = exportRules(rules, 'adblock', ['h']);
    expect(out.text).toBe('! h\n||plain.example^\n||*.wild.example^\n');
    expect(out.skipped).toEqual([]);
    expect(parseList(out.text, 'adblock').entries).toEqual([
      { domain: 'plain.example', subdomainsOnly: false, line: 2 },
      { domain: 'wild.example', subdomainsOnly: true, line: 3 },
    ]);
  });
  it('plain keeps sluice syntax', () => {
    expect(exportRules(rules, 'plain', []).text).toBe('plain.example\n*.wild.example\n');
  });
});

describe('RPZ zone text', () => {
  it('a rule blocks the name and its subdomains; `*.d` only the subdomains; passthru wins over a block', () => {
    const text = zoneText({ block: ['tiktok.com', '*.wild.example', 'x.example'], passthru: ['x.example'] }, { origin: 'rpz.sluice.', serial: 1700000000 }, ['hdr']);
    expect(text).toBe(
      [
        '; hdr',
        '$ORIGIN rpz.sluice.',
        '$TTL 300',
        '@ SOA localhost. hostmaster (1700000000 3600 600 604800 300)',
        '@ NS localhost.',
        '*.tiktok.com CNAME .',
        '*.wild.example CNAME .',
        '*.x.example CNAME rpz-passthru.',
        'tiktok.com CNAME .',
        'x.example CNAME rpz-passthru.',
        '',
      ].join('\n'),
    );
    expect(text).not.toMatch(/^wild\.example /m);
  });
  it('records carry absolute names and wire rdata', () => {
    const rs = zoneRecords({ block: ['a.example'] }, { origin: 'rpz.sluice', serial: 7, ttl: 60 });
    expect(rs.map((r) => [r.name, r.type, r.ttl])).toEqual([
      ['rpz.sluice', TYPE.SOA, 60],
      ['rpz.sluice', TYPE.NS, 60],
      ['*.a.example.rpz.sluice', TYPE.CNAME, 60],
      ['a.example.rpz.sluice', TYPE.CNAME, 60],
    ]);
    expect(rs[2]!.rdata).toEqual(Buffer.from([0]));
    // SOA rdata: mname, rname, then serial
    const soa = rs[0]!.rdata;
    expect(soa.readUInt32BE(soa.length - 20)).toBe(7);
  });
  it('leaves out a name too long to be below the zone, keeping the zone loadable', () => {
    const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(50)}.example`;
    const names = zoneRecords({ block: [long, 'short.example'] }, { origin: 'rpz.sluice', serial: 1 }).map((r) => r.name);
    expect(names).toContain('short.example.rpz.sluice');
    expect(names.some((n) => n.includes('aaaa'))).toBe(false);
    expect(names.every((n) => n.length <= 253)).toBe(true);
  });
  it('policyNames dedupes', () => {
    expect([...policyNames({ block: ['a.example', 'a.example', '*.a.example'] })]).toEqual([
      ['*.a.example', 'block'],
      ['a.example', 'block'],
    ]);
  });
  it('serials: seconds since 1970, always ahead of the previous one', () => {
    expect(nextSerial(1_700_000_000_500)).toBe(1_700_000_000);
    expect(nextSerial(1_700_000_000_500, 1_600_000_000)).toBe(1_700_000_000);
    expect(nextSerial(1_700_000_000_500, 1_700_000_000)).toBe(1_700_000_001);
    expect(nextSerial(1_700_000_000_500, 1_800_000_000)).toBe(1_800_000_001);
    expect(nextSerial(0, 0xffffffff)).toBe(0);
  });
});

describe('networkRules: what a network enforces now', () => {
  const NOW = Date.parse('2026-06-01T12:00:00Z');
  const cfg = parseConfig(
    `
listeners: [{ address: 127.0.0.1, port: 0 }]
networks:
  staff: { cidrs: [10.0.0.0/16], profile: staff }
  lab: { cidrs: [10.1.0.0/16], profile: staff }
profiles:
  staff: { block: [ads], allow: [ok.ads.example] }
lists:
  ads: { file: ads.txt }
  apps: { file: apps.txt }
  trial: { file: trial.txt }
  later: { file: later.txt }
policies:
  apps-ban:
    title: apps
    reference: ref-1
    block: [apps]
    networks: [staff, lab]
    from: 2026-01-01
    exceptions:
      - { network: lab, reason: research, approved_by: ciso }
      - { clients: [10.0.0.5], reason: one client, approved_by: ciso }
  trial-ban:
    title: trial
    reference: ref-2
    mode: dry-run
    block: [trial]
    networks: [staff]
    from: 2026-01-01
  later-ban:
    title: later
    reference: ref-3
    block: [later]
    networks: [staff]
    from: 2027-01-01
`,
    '/tmp/sluice.yaml',
  ).config;
  const set = (...rules: string[]) => DomainSet.from(rules.map((r) => (r.startsWith('*.') ? { domain: r.slice(2), subdomainsOnly: true } : { domain: r, subdomainsOnly: false })));
  const sets = new Map([
    ['ads', set('ads.example', '*.track.example')],
    ['apps', set('tiktok.com', 'ads.example', 'sub.ads.example', '*.wild.apps')],
    ['trial', set('trial.example')],
    ['later', set('later.example')],
  ]);
  const rules = new RuleSet(cfg, sets);
  it('profile lists and enforced policies in force; dry-run and future policies left out; allow entries as passthru', () => {
    const r = networkRules(rules.engine, sets, 'staff', NOW)!;
    expect(r.block.sort()).toEqual(['*.track.example', '*.wild.apps', 'ads.example', 'sub.ads.example', 'tiktok.com']);
    expect(r.passthru).toEqual(['ok.ads.example']);
  });
  it('a network exception becomes passthru, except where a list that still blocks covers the rule', () => {
    const r = networkRules(rules.engine, sets, 'lab', NOW)!;
    expect(r.block.sort()).toEqual(['*.track.example', 'ads.example']);
    expect(r.passthru.sort()).toEqual(['*.wild.apps', 'ok.ads.example', 'tiktok.com']);
  });
  it('a policy starts being in the zone on its from date', () => {
    const r = networkRules(rules.engine, sets, 'staff', Date.parse('2027-01-02T00:00:00Z'))!;
    expect(r.block).toContain('later.example');
    expect(networkRules(rules.engine, sets, 'nope', NOW)).toBeUndefined();
  });
});

describe('TSIG (HMAC-SHA256)', () => {
  const key = { name: 'xfr-key', secret: Buffer.alloc(32, 7) };
  const NOW = 1_700_000_000_000;
  /** A query for rpz.sluice AXFR, signed as RFC 8945 §4.3.3 says (written here independently of tsig.ts). */
  function signedQuery(secret: Buffer, keyName = 'xfr-key', time = NOW / 1000): Buffer {
    const q = Buffer.concat([Buffer.from([0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), encodeName('rpz.sluice'), Buffer.from([0, 252, 0, 1])]);
    const t = Buffer.alloc(6);
    t.writeUIntBE(time, 0, 6);
    const vars = Buffer.concat([encodeName(keyName), Buffer.from([0, 255, 0, 0, 0, 0]), encodeName('hmac-sha256'), t, Buffer.from([1, 44, 0, 0, 0, 0])]);
    const mac = createHmac('sha256', secret).update(q).update(vars).digest();
    const rdata = Buffer.concat([encodeName('hmac-sha256'), t, Buffer.from([1, 44, 0, 32]), mac, Buffer.from([0x12, 0x34, 0, 0, 0, 0])]);
    const rr = Buffer.concat([encodeName(keyName), Buffer.from([0, 250, 0, 255, 0, 0, 0, 0, rdata.length >> 8, rdata.length & 0xff]), rdata]);
    const out = Buffer.concat([q, rr]);
    out.writeUInt16BE(1, 10);
    return out;
  }
  it('verifies a request signed with the key, and names what is wrong with others', () => {
    const ok = verifyRequest(signedQuery(key.secret), key, NOW);
    expect(ok.ok).toBe(true);
    expect(verifyRequest(signedQuery(Buffer.alloc(32, 8)), key, NOW)).toEqual({ ok: false, reason: 'badsig' });
    expect(verifyRequest(signedQuery(key.secret, 'other-key'), key, NOW)).toEqual({ ok: false, reason: 'badkey' });
    expect(verifyRequest(signedQuery(key.secret), key, NOW + 301_000)).toEqual({ ok: false, reason: 'badtime' });
    const unsigned = signedQuery(key.secret).subarray(0, 12 + 12 + 4);
    const u = Buffer.from(unsigned);
    u.writeUInt16BE(0, 10);
    expect(verifyRequest(u, key, NOW)).toEqual({ ok: false, reason: 'unsigned' });
  });
  it('signs responses in a chain: each MAC covers the one before', () => {
    const check = verifyRequest(signedQuery(key.secret), key, NOW);
    if (!check.ok) throw new Error('not verified');
    const signer = new TsigSigner(key, check.mac, () => NOW);
    const msg = Buffer.from([0x12, 0x34, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const first = signer.sign(msg);
    const second = signer.sign(msg);
    expect(first.readUInt16BE(10)).toBe(1);
    // same message, different MACs: the second is chained to the first
    expect(first.subarray(-38, -6)).not.toEqual(second.subarray(-38, -6));
    const len = Buffer.from([0, 32]);
    const expected = createHmac('sha256', key.secret)
      .update(len)
      .update(first.subarray(-38, -6))
      .update(msg)
      .update(Buffer.from([0, 0, 0x65, 0x53, 0xf1, 0x00, 1, 44]))
      .digest();
    expect(second.subarray(-38, -6)).toEqual(expected);
  });
});

describe('rpz: in the config', () => {
  const base = `
listeners: [{ address: 127.0.0.1, port: 0 }]
networks: { staff: { cidrs: [10.0.0.0/16], profile: staff } }
profiles: { staff: { block: [] } }
`;
  it('takes a zone with defaults', () => {
    const c = parseConfig(`${base}rpz: [{ name: rpz.sluice., network: staff, listen: "127.0.0.1:5300" }]\n`, '/tmp/s.yaml').config;
    expect(c.rpz).toEqual([{ name: 'rpz.sluice.', network: 'staff', listen: '127.0.0.1:5300', allow_transfer: ['127.0.0.1/32', '::1/128'], notify: [], ttl: 300 }]);
  });
  it.each([
    ['an unknown network', '{ name: rpz.sluice., network: nope, listen: "127.0.0.1:5300" }', 'unknown network "nope"'],
    ['a host name for the listen address', '{ name: rpz.sluice., network: staff, listen: "localhost:5300" }', 'an address and port'],
    ['a TSIG key without its secret', '{ name: rpz.sluice., network: staff, listen: "127.0.0.1:5300", tsig: { name: k. } }', 'either secret or secret_env'],
  ])('refuses %s', (_what, zone, message) => {
    expect(() => parseConfig(`${base}rpz: [${zone}]\n`, '/tmp/s.yaml')).toThrow(message);
  });
});
