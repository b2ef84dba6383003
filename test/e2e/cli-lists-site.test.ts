// Site lists apart from the release, and additions that say what they overlap and refuse to undo
// an approved policy exception: the real binary against a copy of the reference config.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeWorkspace, REPO, type Workspace } from './cli-workspace.js';

const SITE = 'config/lists/local-additions.txt';
const spaces: Workspace[] = [];
/** A copy of the reference config whose comms exception does not run out while these tests are kept. */
function fresh(): Workspace {
  const ws = makeWorkspace();
  spaces.push(ws);
  const cfg = ws.read('config/sluice.yaml');
  const far = cfg.replace(/(\n {8}until: )2027-04-30/, '$12099-04-30');
  expect(far).not.toBe(cfg);
  ws.write('config/sluice.yaml', far);
  return ws;
}
afterAll(() => spaces.forEach((w) => w.remove()));

/** The lines the README shows after `$ <command>` (up to the next prompt), with "…" standing for any text. */
function readmeOutput(command: string): RegExp[] {
  const lines = readFileSync(join(REPO, 'README.md'), 'utf8').split('\n');
  const at = lines.findIndex((l) => l.startsWith(`$ ${command}`));
  expect(at, `README shows \`${command}\``).toBeGreaterThanOrEqual(0);
  const out: RegExp[] = [];
  for (const l of lines.slice(at + 1)) {
    if (l.startsWith('$ ') || l.startsWith('```')) break;
    out.push(
      new RegExp(
        `^${l
          .split('…')
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*')}$`,
      ),
    );
  }
  return out;
}

describe.concurrent('the README', () => {
  it('shows what `lists add` prints, and the refusal of its TikTok example', async () => {
    const ws = fresh();
    const ok = await ws.sluice('lists', 'add', 'local-additions', 'tracker.example.net', '--reason', 'seen in the query log, ticket 4711');
    expect(ok.code, ok.stderr).toBe(0);
    const okLines = ok.stdout.trimEnd().split('\n');
    const okShown = readmeOutput('sluice lists add local-additions tracker.example.net');
    expect(okLines).toHaveLength(okShown.length);
    okShown.forEach((re, i) => expect(okLines[i]).toMatch(re));

    const refused = await ws.sluice('lists', 'add', 'local-additions', 'tiktokv.eu');
    expect(refused.code, refused.stderr).toBe(1);
    // the README shows the reference config's date; these tests move it out of their way
    const lines = (refused.stdout + refused.stderr).trimEnd().replaceAll('2099-04-30', '2027-04-30').split('\n');
    const shown = readmeOutput('sluice lists add local-additions tiktokv.eu');
    expect(lines).toHaveLength(shown.length);
    shown.forEach((re, i) => expect(lines[i]).toMatch(re));
  });
});

describe.concurrent('an addition that overlaps', () => {
  it("refuses the README's example: a TikTok name added to a profile's list would beat the comms team's exception", async () => {
    const ws = fresh();
    const before = ws.read(SITE);
    const r = await ws.sluice('lists', 'add', 'local-additions', 'tiktokv.eu', '--reason', 'seen in the query log, ticket 4711');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe('note: tiktokv.eu is already blocked by list tiktok (rule tiktokv.eu; policy app-ban)\n');
    expect(r.stderr).toContain('sluice: nothing changed: adding to list local-additions would block what a policy exception lets through');
    expect(r.stderr).toContain(
      `tiktokv.eu on network comms: policy app-ban's exception for network comms (lists tiktok, bytedance-shared; until 2099-04-30): "The communications team runs the city's official TikTok account through a controlled channel", approved by Head of Communications and the CISO`,
    );
    expect(r.stderr).toContain('--override-exception');
    expect(ws.read(SITE)).toBe(before);
    expect(ws.audit()).toEqual([]);
  });

  it('refuses a parent of an excepted rule, and adds with --override-exception, recording the exception', async () => {
    const ws = fresh();
    const parent = await ws.sluice('lists', 'add', 'local-additions', 'tiktokcdn.com');
    expect(parent.code, parent.stderr).toBe(1);
    expect(parent.stderr).toMatch(/on network comms: policy app-ban's exception for network comms/);
    const r = await ws.sluice('lists', 'add', 'local-additions', 'tiktokv.eu', '--override-exception', '--reason', 'CISO ticket 99');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("note: overriding policy app-ban's exception for network comms (lists tiktok, bytedance-shared; until 2099-04-30)");
    expect(r.stdout).toMatch(/\n\+ tiktokv\.eu\n$/);
    expect(ws.read(SITE)).toContain('tiktokv.eu  # added ');
    const [rec] = ws.audit();
    expect(rec).toMatchObject({ command: 'lists add', list: 'local-additions', domains: ['tiktokv.eu'], reason: 'CISO ticket 99' });
    expect(rec!.overrides).toEqual([expect.stringContaining("policy app-ban's exception for network comms")]);
    // and the server would now block it for comms: the override was real
    const check = await ws.sluice('check', 'tiktokv.eu', '--client', '127.0.0.4');
    expect(check.stdout).toContain('BLOCKED');
  });

  it('says which list and rule cover a name already, and adds it', async () => {
    const ws = fresh();
    const r = await ws.sluice('lists', 'add', 'local-additions', 'cdn.temu.com', 'fresh.example');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('note: cdn.temu.com is already blocked by list temu (rule temu.com; policy app-ban)\n+ cdn.temu.com\n+ fresh.example\n');
    const json = await ws.sluice('lists', 'add', 'local-additions', 'www.temu.com', '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({
      added: ['www.temu.com'],
      covered: [{ rule: 'www.temu.com', list: 'temu', by: 'temu.com', usedBy: ['policy app-ban'] }],
    });
  });

  it('refuses an import that would beat the exception, naming a few of the names', async () => {
    const ws = fresh();
    ws.write('extra.txt', 'tiktokv.eu\nwww.tiktok.com\nharmless.example\n');
    const before = ws.read(SITE);
    const r = await ws.sluice('lists', 'import', 'local-additions', ws.path('extra.txt'));
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('tiktokv.eu, www.tiktok.com on network comms: ');
    expect(ws.read(SITE)).toBe(before);
  });
});

describe.concurrent('the curated catalog is read-only to the CLI', () => {
  it.each([
    ['add', ['x.example'], 'add it to a site list: sluice lists add local-additions x.example'],
    ['remove', ['tiktok.com'], 'to stop blocking a name, add it to the `allow` list of the profile in the config'],
    ['import', ['./extra.txt'], 'import it into a site list: sluice lists import local-additions ./extra.txt'],
  ])('`lists %s tiktok …` is refused with what to do instead', async (verb, args, hint) => {
    const ws = fresh();
    ws.write('extra.txt', 'x.example\n');
    const before = readFileSync(ws.path('blocklists/tiktok.txt'));
    const r = await ws.sluice('lists', verb, 'tiktok', ...args);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toBe(`sluice: nothing changed: list tiktok is part of the curated catalog (blocklists/tiktok.txt), which an upgrade replaces; ${hint}\n`);
    expect(readFileSync(ws.path('blocklists/tiktok.txt')).equals(before)).toBe(true);
    expect(ws.audit()).toEqual([]);
  });

  it("refuses a local list whose file is in the catalog's directory (the old layout)", async () => {
    const ws = fresh();
    ws.write('config/sluice.yaml', ws.read('config/sluice.yaml').replace('file: lists/local-additions.txt', 'file: ../blocklists/local-additions.txt'));
    ws.write('blocklists/local-additions.txt', '# old place\n');
    const r = await ws.sluice('lists', 'add', 'local-additions', 'x.example');
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain("the file of list local-additions (blocklists/local-additions.txt) is in the curated catalog's directory, which an upgrade replaces; move it to site_dir");
    expect(ws.read('blocklists/local-additions.txt')).toBe('# old place\n');
  });
});

describe.concurrent('sluice lists new and site_dir', () => {
  it("creates the list in site_dir, and never in the catalog's directory", async () => {
    const ws = fresh();
    const inRelease = await ws.sluice('lists', 'new', 'sneaky', '--file', ws.path('blocklists/sneaky.txt'));
    expect(inRelease.code, inRelease.stderr).toBe(2);
    expect(inRelease.stderr).toContain("blocklists/sneaky.txt is in the curated catalog's directory, which an upgrade replaces; create site lists in site_dir (config/lists)");
    expect(() => readFileSync(ws.path('blocklists/sneaky.txt'))).toThrow();

    const elsewhere = join(ws.dir, 'site');
    mkdirSync(elsewhere);
    ws.write('config/sluice.yaml', `${ws.read('config/sluice.yaml')}\nsite_dir: ${join(elsewhere, 'lists')}\n`);
    const r = await ws.sluice('lists', 'new', 'review', '--description', 'ours');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('created site/lists/review.txt');
    expect(ws.read('site/lists/review.txt')).toMatch(/^# review: ours\n/);
    expect(ws.read('config/sluice.yaml')).toContain('  review: { file: ../site/lists/review.txt, description: ours }');
    const add = await ws.sluice('lists', 'add', 'review', 'ours.example');
    expect(add.code, add.stderr).toBe(0);
    expect(ws.read('site/lists/review.txt')).toContain('ours.example');
  });
});
