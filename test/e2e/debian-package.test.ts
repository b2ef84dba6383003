// `npm run package:deb`: the Debian package is lintian-clean, lays out where admins look (/usr/bin,
// /etc/sluice as conffiles, a systemd unit), its unit passes `systemd-analyze verify`, and what it
// installs runs: in a private mount namespace its /usr/lib/sluice and /etc/sluice are mounted where
// the package puts them, and the packaged command validates the packaged config.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '../..');
let out: string;
let deb: string;
let root: string;

beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), 'sluice-deb-test-'));
  execFileSync(process.execPath, [join(REPO, 'deploy/debian/build-deb.mjs'), '--out', out, '--fast'], { stdio: ['ignore', 'ignore', 'inherit'] });
  deb = join(
    out,
    readdirSync(out).find((f) => f.endsWith('.deb'))!,
  );
  root = join(out, 'root');
  execFileSync('dpkg-deb', ['-x', deb, root]);
}, 120_000);

afterAll(() => {
  execFileSync('rm', ['-rf', out]);
});

describe('the Debian package', () => {
  it('is lintian-clean', () => {
    const r = spawnSync('lintian', ['--tag-display-limit', '0', deb], { encoding: 'utf8' });
    expect(r.error, 'lintian is needed: apt-get install lintian').toBeUndefined();
    const tags = `${r.stdout}${r.stderr}`.split('\n').filter((l) => /^[EWIXP]: /.test(l));
    expect(tags).toEqual([]);
    expect(r.status).toBe(0);
  }, 120_000);

  it('installs the command, the code, a conffile config and a Type=notify unit', () => {
    const contents = execFileSync('dpkg-deb', ['--contents', deb], { encoding: 'utf8' });
    for (const p of [
      './usr/bin/sluice -> ../lib/sluice/bin/sluice.js',
      './usr/lib/sluice/dist/cli/main.js',
      './usr/lib/sluice/blocklists/catalog.yaml',
      './etc/sluice/sluice.yaml',
      './lib/systemd/system/sluice.service',
      './usr/share/man/man1/sluice.1.gz',
    ]) {
      expect(contents).toContain(p);
    }
    // Production dependencies only.
    expect(contents).toContain('./usr/lib/sluice/node_modules/better-sqlite3/');
    expect(contents).not.toContain('node_modules/vitest/');
    expect(contents).not.toContain('node_modules/typescript/');
    expect(execFileSync('dpkg-deb', ['-f', deb, 'Depends'], { encoding: 'utf8' })).toMatch(/nodejs \(>= 20\)/);
    execFileSync('dpkg-deb', ['-e', deb, join(out, 'control')]);
    expect(readFileSync(join(out, 'control/conffiles'), 'utf8').split('\n')).toEqual(['/etc/sluice/sluice.yaml', '/etc/sluice/lists/local-additions.txt', '']);
    const unit = readFileSync(join(root, 'lib/systemd/system/sluice.service'), 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node .*\/usr\/lib\/sluice\/bin\/sluice\.js serve$/m);
    expect(unit).not.toContain('/opt/sluice');
    const config = readFileSync(join(root, 'etc/sluice/sluice.yaml'), 'utf8');
    expect(config).toContain('state_dir: "/var/lib/sluice"');
  });

  it('has a unit that passes `systemd-analyze verify`', () => {
    const copy = join(out, 'sluice.service');
    writeFileSync(copy, readFileSync(join(root, 'lib/systemd/system/sluice.service'), 'utf8').replaceAll('/usr/bin/node', process.execPath));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it('runs as installed: the packaged command validates the packaged config at /etc/sluice', () => {
    // In a private mount namespace, /etc and /usr/lib are overlays (so the mount points never
    // appear on the host), with the package's /etc/sluice and /usr/lib/sluice mounted in them.
    const ovl = join(out, 'overlay');
    for (const d of ['etc-up', 'etc-work', 'lib-up', 'lib-work']) mkdirSync(join(ovl, d), { recursive: true });
    const script = [
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${ovl}/etc-up,workdir=${ovl}/etc-work /etc`,
      `mount -t overlay overlay -o lowerdir=/usr/lib,upperdir=${ovl}/lib-up,workdir=${ovl}/lib-work /usr/lib`,
      'mkdir /etc/sluice /usr/lib/sluice',
      `mount --bind ${root}/usr/lib/sluice /usr/lib/sluice`,
      `mount --bind ${root}/etc/sluice /etc/sluice`,
      'cd /',
      `PATH=${join(process.execPath, '..')}:$PATH`,
      `${root}/usr/bin/sluice --version`,
      // No --config: an installed sluice reads /etc/sluice/sluice.yaml.
      '/usr/lib/sluice/bin/sluice.js config validate',
      '/usr/lib/sluice/bin/sluice.js check www.tiktok.com --network internal >/dev/null; echo "check exit $?"',
    ].join(' && ');
    const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect(r.stdout).toBe(`${pkg.version}\n/etc/sluice/sluice.yaml: OK (1 listeners, 2 networks, 2 profiles, 1 lists)\ncheck exit 0\n`);
    expect(r.status).toBe(0);
  });
});
