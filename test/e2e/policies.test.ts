// Policies over real sockets, with the clock set by the test instead of sleeping.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

const policies = `
policies:
  app-ban:
    title: App ban on the internal network
    reference: CCB advice of 2023-03-08; regional circular of 2023-03-17
    block: [tiktok]
    networks: [internal, comms]
    from: 2026-11-01
    review_by: 2027-04-30
    timezone: Europe/Brussels
    exceptions:
      - network: comms
        reason: official account
        approved_by: Head of Communications
        until: 2027-01-31
  wechat-trial:
    title: WeChat ban, trial
    reference: draft circular
    block: [wechat]
    networks: [guest]
    mode: dry-run
    from: 2026-01-01
`;

// The staff profile blocks nothing itself here: the policies do.
const config = referenceConfig(policies).replace('block: [tiktok, wechat]', 'block: []');

let upstream: FakeUpstream;
let h: Harness;
let now = Date.parse('2026-10-31T12:00:00Z');

beforeAll(async () => {
  upstream = await startFakeUpstream();
  h = await startSluice({ config, lists: referenceLists, upstream: upstream.address, clock: () => now, captureLogs: true });
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});

const ask = (name: string, source: string) => resolve(h.udp, name, 'A', { localAddress: source, edns: {} });

describe('policies end to end', () => {
  it('is not enforced before `from`, enforced after, with the policy and reference in the EDE', async () => {
    expect((await ask('before.tiktok.com', '127.0.0.1')).rcode).toBe(RCODE.NOERROR);
    now = Date.parse('2026-11-01T12:00:00Z');
    const r = await ask('after.tiktok.com', '127.0.0.1');
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
    expect(r.edns?.ede?.text).toBe('sluice: blocked by policy app-ban (CCB advice of 2023-03-08; regional circular of 2023-03-17): list tiktok, rule tiktok.com');
  });

  it('lets the excepted network through until the exception expires', async () => {
    now = Date.parse('2027-01-15T12:00:00Z');
    expect((await ask('www.tiktok.com', '127.0.4.1')).rcode).toBe(RCODE.NOERROR);
    now = Date.parse('2027-02-01T12:00:00Z');
    expect((await ask('www.tiktok.com', '127.0.4.1')).rcode).toBe(RCODE.NXDOMAIN);
  });

  it('dry-run answers normally and logs what it would block, once per client and name', async () => {
    const r1 = await ask('web.wechat.com', '127.0.0.2');
    const r2 = await ask('web.wechat.com', '127.0.0.2');
    expect([r1.rcode, r2.rcode]).toEqual([RCODE.NOERROR, RCODE.NOERROR]);
    const lines = h.logs.filter((l) => l.policy === 'wechat-trial' && typeof l.msg === 'string' && l.msg.includes('would block'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ network: 'guest', client: '127.0.0.2', name: 'web.wechat.com', list: 'wechat' });
  });

  it('keeps enforcing past the review date and warns once a day', async () => {
    now = Date.parse('2027-05-10T12:00:00Z');
    expect((await ask('late.tiktok.com', '127.0.0.1')).rcode).toBe(RCODE.NXDOMAIN);
    await h.server.reload();
    await h.server.reload();
    const warnings = h.logs.filter((l) => l.level === 40 && typeof l.msg === 'string' && l.msg.includes('overdue for review'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ policy: 'app-ban', review_by: '2027-04-30' });
  });
});

describe('sluice policy status', () => {
  const bin = join(import.meta.dirname, '../../bin/sluice.js');
  const status = (at: string) => {
    try {
      return { code: 0, out: execFileSync(process.execPath, [bin, '--config', h.configFile, 'policy', 'status', '--at', at], { encoding: 'utf8' }) };
    } catch (err) {
      const e = err as { status: number; stdout: string };
      return { code: e.status, out: e.stdout };
    }
  };

  it.each([
    ['2026-10-01', /app-ban\s+scheduled from 2026-11-01/, 0],
    ['2026-12-01', /app-ban\s+active, review in 151 days/, 0],
    ['2027-04-20', /app-ban\s+review due in 1[01] days/, 0],
    ['2027-06-01', /app-ban\s+REVIEW OVERDUE \(3[12] days\), still enforced/, 1],
  ])('at %s', (at, pattern, code) => {
    const r = status(at);
    expect(r.out).toMatch(pattern);
    expect(r.code).toBe(code);
    expect(r.out).toContain('reference  CCB advice of 2023-03-08');
    expect(r.out).toMatch(/exception {2}network comms \(lists: all\): official account; approved by Head of Communications; (until|EXPIRED) 2027-01-31/);
    expect(r.out).toMatch(/wechat-trial\s+active\s+dry-run/);
  });

  it('prints JSON for scripts', () => {
    const out = execFileSync(process.execPath, [bin, '--config', h.configFile, 'policy', 'status', '--json', '--at', '2027-03-01'], { encoding: 'utf8' });
    const json = JSON.parse(out) as { id: string; state: string; exceptions: { expired: boolean }[] }[];
    expect(json.map((p) => [p.id, p.state])).toEqual([
      ['app-ban', 'active'],
      ['wechat-trial', 'active'],
    ]);
    expect(json[0]!.exceptions[0]!.expired).toBe(true);
  });

  it('sluice check names the policy, and the exception that let a query through', () => {
    const blocked = (() => {
      try {
        execFileSync(process.execPath, [bin, '--config', h.configFile, 'check', 'x.tiktok.com', '--client', '127.0.0.1', '--at', '2026-12-01'], { encoding: 'utf8' });
        return { code: 0, out: '' };
      } catch (err) {
        const e = err as { status: number; stdout: string };
        return { code: e.status, out: e.stdout };
      }
    })();
    expect(blocked.code).toBe(1);
    expect(blocked.out).toMatch(/policy\s+app-ban: App ban on the internal network \(CCB advice/);
    const allowed = execFileSync(process.execPath, [bin, '--config', h.configFile, 'check', 'x.tiktok.com', '--client', '127.0.4.1', '--at', '2026-12-01'], { encoding: 'utf8' });
    expect(allowed).toMatch(/exception\s+network comms excepted from policy app-ban: official account \(approved by Head of Communications, until 2027-01-31\)/);
    const dry = execFileSync(process.execPath, [bin, '--config', h.configFile, 'check', 'wechat.com', '--network', 'guest'], { encoding: 'utf8' });
    expect(dry).toMatch(/dry run\s+policy wechat-trial \(dry-run\) would block: list wechat, rule wechat.com/);
  });
});
