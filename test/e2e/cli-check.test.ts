// `sluice check` for every banned app of the reference deployment, per client and network, and
// `sluice config validate` on a good and a broken config, run as the real binary.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { CheckResult } from '../../src/cli/check.js';
import { makeWorkspace, REPO, runSluice, type Workspace } from './cli-workspace.js';

const APPS = ['tiktok', 'lemon8', 'capcut', 'temu', 'pinduoduo', 'wechat', 'ucbrowser', 'camscanner', 'shein', 'turbovpn', 'shareit'];
const catalog = parseYaml(readFileSync(join(REPO, 'blocklists/catalog.yaml'), 'utf8')) as { lists: Record<string, { file: string; category?: string }> };

/** The first rule of a list file and its 1-based line number. */
function firstRule(file: string): { domain: string; line: number } {
  const lines = readFileSync(join(REPO, 'blocklists', file), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.replace(/#.*/, '').trim() !== '');
  return { domain: lines[i]!.replace(/#.*/, '').trim(), line: i + 1 };
}

// The JSON is the command's own result type.
type CheckJson = CheckResult;

let ws: Workspace;
beforeAll(() => {
  ws = makeWorkspace();
});
afterAll(() => ws?.remove());

describe.concurrent('sluice check for every banned app', () => {
  it('the catalog has exactly the eleven app lists of the ban', () => {
    const apps = Object.entries(catalog.lists)
      .filter(([, l]) => l.category === 'app')
      .map(([n]) => n);
    expect(apps.sort()).toEqual([...APPS].sort());
  });

  it.each(APPS)('%s: a deep subdomain is blocked from 127.0.0.1 (list, rule, file:line) and allowed from the guest 127.0.0.2', async (app) => {
    const { domain, line } = firstRule(catalog.lists[app]!.file);
    const name = `a.b.${domain}`;
    const [internal, guest] = await Promise.all([ws.sluice('check', name, '--client', '127.0.0.1'), ws.sluice('check', name, '--client', '127.0.0.2')]);

    expect(internal.code, internal.stderr).toBe(1);
    const out = internal.stdout;
    expect(out.split('\n')[0]).toBe(`${name} A: BLOCKED`);
    expect(out).toMatch(/^ {2}network +internal \(127\.0\.0\.1 in 127\.0\.0\.0\/24\)$/m);
    expect(out).toMatch(new RegExp(`^  list +${app}$`, 'm'));
    expect(out).toContain(`${domain}  (blocklists/${catalog.lists[app]!.file}:${line})`);
    expect(out).toMatch(/^ {2}answer +NXDOMAIN, TTL 60$/m);

    expect(guest.code, guest.stderr).toBe(0);
    expect(guest.stdout.split('\n')[0]).toBe(`${name} A: ALLOWED`);
    expect(guest.stdout).toMatch(/^ {2}network +guest \(127\.0\.0\.2 in 127\.0\.0\.2\/32\)$/m);
    expect(guest.stdout).not.toMatch(/^ {2}(list|rule) /m);
  });
});

describe.concurrent('sluice check', () => {
  it('--network comms allows tiktok.com but blocks temu.com', async () => {
    const [tiktok, temu] = await Promise.all([ws.sluice('check', 'tiktok.com', '--network', 'comms'), ws.sluice('check', 'www.temu.com', '--network', 'comms')]);
    expect(tiktok.code, tiktok.stderr).toBe(0);
    expect(tiktok.stdout).toMatch(/^tiktok\.com A: ALLOWED$/m);
    expect(temu.code, temu.stderr).toBe(1);
    expect(temu.stdout).toMatch(/^www\.temu\.com A: BLOCKED$/m);
    expect(temu.stdout).toMatch(/^ {2}list +temu$/m);
  });

  it('a client in no network is REFUSED (exit 3, not the 1 of a block)', async () => {
    const r = await ws.sluice('check', 'example.org', '--client', '127.9.9.9');
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toMatch(/^example\.org A: REFUSED$/m);
    expect(r.stdout).toContain('127.9.9.9 is in no network');
  });

  it('--json gives one object with the decision, list, rule and its source', async () => {
    const { domain, line } = firstRule('temu.txt');
    const r = await ws.sluice('check', `x.${domain}`, '--client', '127.0.0.1', '--type', 'aaaa', '--json');
    expect(r.code, r.stderr).toBe(1);
    const j = JSON.parse(r.stdout) as CheckJson;
    expect(j).toMatchObject({
      domain: `x.${domain}`,
      type: 'AAAA',
      network: 'internal',
      via: '127.0.0.1 in 127.0.0.0/24',
      decision: 'blocked',
      list: 'temu',
      rule: domain,
      ruleSource: `blocklists/temu.txt:${line}`,
      answer: 'NXDOMAIN, TTL 60',
    });
    expect(typeof j.profile).toBe('string');
  });

  it('without --client or --network it shows every network, and --json gives an array', async () => {
    const r = await ws.sluice('check', 'www.tiktok.com', '--json');
    expect(r.code, r.stderr).toBe(1);
    const all = JSON.parse(r.stdout) as CheckJson[];
    const byNet = new Map(all.map((x) => [x.network, x.decision]));
    expect(byNet).toEqual(
      new Map([
        ['internal', 'blocked'],
        ['guest', 'allowed'],
        ['school', 'allowed'],
        ['comms', 'allowed'],
      ]),
    );
  });

  it('the Firefox canary use-application-dns.net is blocked with NXDOMAIN', async () => {
    const r = await ws.sluice('check', 'use-application-dns.net', '--client', '127.0.0.1', '--json');
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'blocked', list: 'doh-bypass', rule: 'use-application-dns.net', answer: expect.stringMatching(/^NXDOMAIN\b/) });
  });

  it('a bad --client, network or type is a usage error (exit 2)', async () => {
    const runs = await Promise.all([
      ws.sluice('check', 'tiktok.com', '--client', '127.0.0.300'),
      ws.sluice('check', 'tiktok.com', '--network', 'nowhere'),
      ws.sluice('check', 'tiktok.com', '--type', 'BOGUS'),
    ]);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
    }
    expect(runs[0]!.stderr).toContain('--client: "127.0.0.300" is not an IP address');
    expect(runs[1]!.stderr).toContain('no network named "nowhere"');
    expect(runs[2]!.stderr).toContain('unknown query type "BOGUS"');
  });

  it('SLUICE_CONFIG names the config when --config is not given', async () => {
    const r = await runSluice(['check', 'temu.com', '--client', '127.0.0.1'], ws.dir, { SLUICE_CONFIG: ws.configFile });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^ {2}list +temu$/m);
  });
});

describe.concurrent('sluice config validate', () => {
  it('passes the reference config (exit 0)', async () => {
    const r = await ws.sluice('config', 'validate');
    expect(r.stderr).toBe('');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^.*config\/sluice\.yaml: OK \(\d+ listeners, \d+ networks, \d+ profiles, \d+ lists\)\n$/);
  });

  it('reports every error of a broken config with file:line and field path (exit 1)', async () => {
    const good = ws.read('config/sluice.yaml');
    const broken = good.replace('cidrs: [127.0.0.2/32]', 'cidrs: [127.0.0.300/32]').replace(/^( {4}profile: open\n)/m, '$1    colour: blue\n');
    expect(broken).not.toBe(good);
    ws.write('config/broken.yaml', broken);
    const lines = broken.split('\n');
    const cidrLine = lines.findIndex((l) => l.includes('127.0.0.300/32')) + 1;
    const colourLine = lines.findIndex((l) => l.includes('colour: blue')) + 1;
    const net = /^ {2}(\w+):\n(?: {4}.*\n)*? {4}profile: open\n {4}colour: blue/m.exec(broken)![1];

    const r = await ws.sluice('config', 'validate', 'config/broken.yaml');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`config/broken.yaml:${cidrLine} networks.guest.cidrs[0]: "127.0.0.300/32" is not a CIDR`);
    expect(r.stderr).toContain(`config/broken.yaml:${colourLine} networks.${net}.colour: unknown key "colour"`);

    // other commands refuse to work on it with exit 2 and the same messages
    const check = await runSluice(['--config', ws.path('config/broken.yaml'), 'check', 'tiktok.com'], ws.dir);
    expect(check.code, check.stderr).toBe(2);
    expect(check.stderr).toContain(`broken.yaml:${cidrLine} networks.guest.cidrs[0]`);
  });

  it('reports a profile that names an unknown list, and a list file that is missing', async () => {
    const good = ws.read('config/sluice.yaml');
    ws.write('config/unknown-list.yaml', good.replace('local-additions.txt', 'no-such-file.txt').replace(/block: \[([^\]\n]*)\]/, 'block: [$1, no-such-list]'));
    const r = await ws.sluice('config', 'validate', 'config/unknown-list.yaml');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/unknown-list\.yaml:\d+ \w+\.[\w-]+\.block\[\d+\]: unknown list "no-such-list"/);
    expect(r.stderr).toContain('no-such-file.txt');
  });
});
