// Builds native/udp-batch.c into native/build/udp-batch.node (run by `npm install`/`npm ci` and by
// `npm run build`). The addon is optional: when there is no C compiler or no Node headers, sluice
// answers UDP through node:dgram instead (slower; see docs/performance.md), so this script never
// fails the install. It compiles with the system `cc` directly, not node-gyp, so nothing is
// downloaded: the headers are the ones installed with Node (or npm's configured nodedir).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, 'udp-batch.c');
const target = join(here, 'build', 'udp-batch.node');
const quiet = process.argv.includes('--quiet');

function say(msg) {
  if (!quiet) console.error(`sluice native: ${msg}`);
}

function headerDir() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    resolve(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ].filter(Boolean);
  return candidates.find((d) => existsSync(join(d, 'node_api.h')) && existsSync(join(d, 'uv.h')));
}

if (process.platform !== 'linux') {
  say(`recvmmsg/sendmmsg are Linux system calls; on ${process.platform} UDP goes through node:dgram`);
  process.exit(0);
}
// Everything that touches the file system is inside the try: a read-only or odd checkout must
// not fail `npm install` either.
const tmp = `${target}.${process.pid}.tmp`;
try {
  if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) process.exit(0);
  const include = headerDir();
  if (!include) {
    say(
      "no Node headers (node_api.h, uv.h) found; UDP goes through node:dgram. Install them (NodeSource's nodejs and the official tarballs ship them in include/node; Debian's own nodejs: libnode-dev) and run `npm run build`.",
    );
    process.exit(0);
  }
  const cc = process.env.CC || 'cc';
  mkdirSync(dirname(target), { recursive: true });
  try {
    execFileSync(cc, ['-O2', '-fPIC', '-shared', '-Wall', '-Wextra', '-DNODE_GYP_MODULE_NAME=udp_batch', `-I${include}`, source, '-o', tmp], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    throw new Error(`could not compile ${source} with ${cc} (${err.message.split('\n')[0]})`);
  }
  renameSync(tmp, target);
  say(`built ${target}`);
} catch (err) {
  try {
    rmSync(tmp, { force: true });
  } catch {
    // nothing to clean up
  }
  say(`${err.message}; UDP goes through node:dgram. Install a C compiler (Debian: gcc libc6-dev) and run \`npm run build\`.`);
}
process.exit(0);
