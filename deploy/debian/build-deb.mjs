// `npm run package:deb`: a Debian package of sluice, built with dpkg-deb from this checkout (after
// `npm run build`), for hosts that install software with apt rather than containers.
//
//   /usr/lib/sluice/            the code, its production node_modules, the catalog (blocklists/)
//   /usr/bin/sluice             the command
//   /etc/sluice/sluice.yaml     a starter site config (`sluice init`), a conffile: upgrades keep edits
//   /etc/sluice/lists/          the site's own lists (local-additions.txt, a conffile)
//   /lib/systemd/system/sluice.service   Type=notify, as deploy/systemd/sluice.service, paths here
//   /var/lib/sluice             state (made by systemd's StateDirectory=, owned by the sluice user)
//
// Node.js ≥ 20 comes from NodeSource or nodejs.org (Debian 12's own nodejs is 18): the package
// depends on `nodejs (>= 20)`, which NodeSource's package satisfies.
//
//   node deploy/debian/build-deb.mjs [--out DIR] [--fast]   (--fast: gzip -1, for tests)
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const outDir = args.includes('--out') ? args[args.indexOf('--out') + 1] : join(repo, 'dist-deb');
const fast = args.includes('--fast');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
const version = `${pkg.version}-1`;
const maintainer = 'sluice maintainers <sluice@example.org>';

if (!existsSync(join(repo, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` first');

const work = mkdtempSync(join(tmpdir(), 'sluice-deb-'));
const root = join(work, 'root');
const lib = join(root, 'usr/lib/sluice');
const run = (cmd, argv, opts = {}) => execFileSync(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });

try {
  mkdirSync(lib, { recursive: true });
  for (const p of ['package.json', 'package-lock.json', 'bin', 'dist', 'blocklists', 'src/admin/dashboard']) {
    cpSync(join(repo, p), join(lib, p), { recursive: true, filter: (s) => !s.endsWith('.map') });
  }
  if (existsSync(join(repo, 'native/build/udp-batch.node'))) cpSync(join(repo, 'native/build/udp-batch.node'), join(lib, 'native/build/udp-batch.node'));
  // The checkout's node_modules, pruned to production: offline, and the native modules stay built
  // for this Node ABI.
  cpSync(join(repo, 'node_modules'), join(lib, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  run('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: lib, stdio: ['ignore', 'ignore', 'inherit'] });
  // What a package does not need at run time: sources, tests, docs and build leftovers of the
  // dependencies (better-sqlite3 keeps only its compiled module, not SQLite's sources).
  const modules = join(lib, 'node_modules');
  run('find', [modules, '(', '-name', '*.md', '-o', '-name', '*.html', '-o', '-name', '*.map', '-o', '-name', '*.ts', '-o', '-name', '*.sh', '-o', '-name', 'test', '-type', 'd', '-o', '-name', '.*', ')', '-prune', '-exec', 'rm', '-rf', '{}', '+']);
  // better-sqlite3 13 (used on Node >= 22, see src/querylog/store/sqlite-driver.ts) ships
  // prebuilt Node-API modules for every platform: keep this one's only.
  const napi = join(modules, 'better-sqlite3-napi');
  const platform = `linux-${{ amd64: 'x64', arm64: 'arm64' }[arch] ?? arch}`;
  if (existsSync(join(napi, 'prebuilds'))) for (const f of readdirSync(join(napi, 'prebuilds'))) if (f !== `${platform}.node`) rmSync(join(napi, 'prebuilds', f));
  for (const p of ['deps', 'src']) rmSync(join(napi, p), { recursive: true, force: true });
  const sqlite = join(modules, 'better-sqlite3');
  for (const p of ['deps', 'src', 'build/Release/obj.target', 'build/Release/obj', 'build/Release/.deps', 'build/Release/test_extension.node', 'build/deps']) rmSync(join(sqlite, p), { recursive: true, force: true });
  // Debian wants shared objects stripped, and the executable bit exactly on scripts (#!).
  run('find', [modules, join(lib, 'native'), '-name', '*.node', '-exec', 'strip', '--strip-unneeded', '{}', '+'], { stdio: ['ignore', 'ignore', 'ignore'] });
  run('find', [lib, '-type', 'd', '-exec', 'chmod', '0755', '{}', '+']);
  run('find', [lib, '-type', 'f', '-exec', 'chmod', '0644', '{}', '+']);
  run('sh', ['-c', `find "${lib}" -type f \\( -name '*.js' -o -name '*.mjs' -o -name '*.cjs' \\) -exec grep -l -m1 '^#!' {} + | xargs -r chmod 0755`]);

  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  symlinkSync('../lib/sluice/bin/sluice.js', join(root, 'usr/bin/sluice'));

  // sluice(1), from the command's own help (docs/cli.md has every subcommand).
  const help = execFileSync(process.execPath, [join(repo, 'bin/sluice.js'), '--help'], { encoding: 'utf8' });
  const roff = (s) => s.replace(/\\/g, '\\e').replace(/^([.'])/gm, '\\&$1');
  const man = `.TH SLUICE 1 "${new Date().toISOString().slice(0, 10)}" "sluice ${pkg.version}" "User Commands"\n.SH NAME\nsluice \\- DNS blocking resolver with per-network profiles and policies\n.SH SYNOPSIS\n.B sluice\n[\\fIoptions\\fR] \\fIcommand\\fR\n.SH DESCRIPTION\n.nf\n${roff(help)}.fi\n.SH FILES\n/etc/sluice/sluice.yaml, /etc/sluice/lists/, /var/lib/sluice/\n.SH SEE ALSO\n\\fBsluice help \\fIcommand\\fR, /usr/share/doc/sluice/README.md\n`;
  mkdirSync(join(root, 'usr/share/man/man1'), { recursive: true });
  writeFileSync(join(root, 'usr/share/man/man1/sluice.1.gz'), gzipSync(man, { level: 9 }));

  // Tags that do not fit a Node.js application, with why.
  mkdirSync(join(root, 'usr/share/lintian/overrides'), { recursive: true });
  writeFileSync(
    join(root, 'usr/share/lintian/overrides/sluice'),
    [
      '# bin/sluice.js passes V8 flags to node (env -S): see src/server/node-flags.ts.',
      'sluice: unusual-interpreter -S [usr/lib/sluice/bin/sluice.js]',
      "# csv-stringify's 10-line helper named underscore.js, not the underscore library.",
      'sluice: embedded-javascript-library please use libjs-underscore [usr/lib/sluice/node_modules/csv-stringify/lib/utils/underscore.js]',
      '# Not uploaded to Debian: no bug to close.',
      'sluice: initial-upload-closes-no-bugs',
      '',
    ].join('\n'),
  );

  // The site config, as `sluice init` writes it.
  const { starterConfig } = await import(join(repo, 'dist/cli/init.js'));
  mkdirSync(join(root, 'etc/sluice/lists'), { recursive: true });
  writeFileSync(
    join(root, 'etc/sluice/sluice.yaml'),
    starterConfig({ catalog: '/usr/lib/sluice/blocklists/catalog.yaml', stateDir: '/var/lib/sluice', today: new Date().toISOString().slice(0, 10) }),
  );
  writeFileSync(join(root, 'etc/sluice/lists/local-additions.txt'), '# Domains this site blocks besides the catalog, one per line (`sluice lists add local-additions NAME --reason ...`).\n');

  const unit = readFileSync(join(repo, 'deploy/systemd/sluice.service'), 'utf8')
    .replaceAll('/opt/sluice/docs/operations.md', '/usr/share/doc/sluice/README.md')
    .replaceAll('/opt/sluice', '/usr/lib/sluice')
    .replace(/^# Install \(docs.*\n(#.*\n)*/m, '# Installed by the sluice Debian package (npm run package:deb).\n');
  mkdirSync(join(root, 'lib/systemd/system'), { recursive: true });
  writeFileSync(join(root, 'lib/systemd/system/sluice.service'), unit);

  const doc = join(root, 'usr/share/doc/sluice');
  mkdirSync(doc, { recursive: true });
  cpSync(join(repo, 'README.md'), join(doc, 'README.md'));
  writeFileSync(
    join(doc, 'copyright'),
    `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: sluice\n\nFiles: *\nCopyright: 2026 sluice maintainers\nLicense: MIT\n\nFiles: usr/lib/sluice/node_modules/*\nCopyright: 2010-2026 their authors (see each package.json)\nLicense: MIT or compatible (see each package)\n\nLicense: MIT\n Permission is hereby granted, free of charge, to any person obtaining a copy of this software\n and associated documentation files, to deal in the Software without restriction.\n`,
  );
  const date = execFileSync('date', ['-R'], { encoding: 'utf8' }).trim();
  writeFileSync(
    join(doc, 'changelog.Debian.gz'),
    gzipSync(`sluice (${version}) unstable; urgency=medium\n\n  * Package of sluice ${pkg.version}.\n\n -- ${maintainer}  ${date}\n`, { level: 9 }),
  );

  const debian = join(root, 'DEBIAN');
  mkdirSync(debian);
  const size = execFileSync('du', ['-sk', '--exclude=DEBIAN', root], { encoding: 'utf8' }).split('\t')[0];
  writeFileSync(
    join(debian, 'control'),
    [
      'Package: sluice',
      `Version: ${version}`,
      `Architecture: ${arch}`,
      `Maintainer: ${maintainer}`,
      `Installed-Size: ${size}`,
      'Depends: nodejs (>= 20), adduser, libc6',
      'Section: net',
      'Priority: optional',
      'Homepage: https://example.org/sluice',
      'Description: DNS blocking resolver with per-network profiles and policies',
      ' sluice answers DNS for a network and blocks banned apps (TikTok and others)',
      ' per network, with policies that have a start, a review date and exceptions,',
      ' a query log with compliance reports, and Redis so several resolvers act as',
      ' one.',
      '',
    ].join('\n'),
  );
  writeFileSync(join(debian, 'conffiles'), '/etc/sluice/sluice.yaml\n/etc/sluice/lists/local-additions.txt\n');
  const script = (name, body) => {
    writeFileSync(join(debian, name), `#!/bin/sh\nset -e\n${body}\n#DEBHELPER#\n`.replace('#DEBHELPER#\n', ''));
    chmodSync(join(debian, name), 0o755);
  };
  script(
    'postinst',
    `if [ "$1" = configure ]; then
  adduser --system --group --home /var/lib/sluice --no-create-home --quiet sluice
  # The CLI edits the site's lists as the sluice user (or root).
  chown sluice:sluice /etc/sluice/lists /etc/sluice/lists/local-additions.txt
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    deb-systemd-helper enable sluice.service >/dev/null || true
  fi
fi`,
  );
  script('prerm', `if [ -d /run/systemd/system ] && [ "$1" = remove ]; then\n  deb-systemd-invoke stop sluice.service >/dev/null || true\nfi`);
  script(
    'postrm',
    `if [ -d /run/systemd/system ]; then\n  systemctl daemon-reload >/dev/null || true\nfi\nif [ "$1" = purge ]; then\n  rm -rf /var/lib/sluice\n  deb-systemd-helper purge sluice.service >/dev/null || true\nfi`,
  );

  mkdirSync(outDir, { recursive: true });
  const deb = join(outDir, `sluice_${version}_${arch}.deb`);
  run('dpkg-deb', ['--root-owner-group', fast ? '-Zgzip' : '-Zxz', ...(fast ? ['-z1'] : []), '--build', root, deb], { stdio: ['ignore', 'ignore', 'inherit'] });
  console.log(deb);
} finally {
  rmSync(work, { recursive: true, force: true });
}
