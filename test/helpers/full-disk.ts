// A real full file system for a test: each given directory is replaced by a small tmpfs holding a
// copy of its files and filled to the last page, in a private mount namespace (unshare), where the
// command runs. The mounts exist only in that namespace and vanish with it, whatever happens to
// the test. Needs root (CAP_SYS_ADMIN) or unprivileged user namespaces (`unshare -rm`); without
// either, the test fails and says so.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FullDiskRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Per directory (in the order given): its files as the command left them, `.fill` aside. */
  after: Map<string, Buffer>[];
}

const MOUNT_FAILED = 97;

// $1: the output directory, $2: the number of directories; then the directories; then the command.
const SCRIPT = `
out=$1; n=$2; shift 2
i=0; dirs=""
while [ $i -lt $n ]; do dirs="$dirs $1"; shift; i=$((i+1)); done
i=0
for d in $dirs; do
  mkdir -p "$out/stage$i" "$out/after$i"
  cp -a "$d/." "$out/stage$i/"
  if ! mount -t tmpfs -o size=256k,mode=0755 tmpfs "$d" 2>"$out/mount-error"; then exit ${MOUNT_FAILED}; fi
  cp -a "$out/stage$i/." "$d/"
  # every free page taken: a write that needs one more fails with ENOSPC
  head -c 16777216 /dev/zero > "$d/.fill" 2>/dev/null
  i=$((i+1))
done
"$@" >"$out/stdout" 2>"$out/stderr"
echo $? >"$out/code"
i=0
for d in $dirs; do rm -f "$d/.fill"; cp -a "$d/." "$out/after$i/"; i=$((i+1)); done
`;

function files(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
}

/** Run `argv` (cwd `cwd`) with each of `dirs` on its own full tmpfs. */
export async function runWithFullDisk(dirs: string[], argv: string[], cwd: string): Promise<FullDiskRun> {
  const out = mkdtempSync(join(tmpdir(), 'sluice-full-'));
  try {
    // Root needs only a mount namespace; anyone else maps themselves to root in a user namespace.
    const unshare = process.getuid?.() === 0 ? ['-m'] : ['-r', '-m'];
    mkdirSync(out, { recursive: true });
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn('unshare', [...unshare, 'sh', '-c', SCRIPT, 'sh', out, String(dirs.length), ...dirs, ...argv], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
    if (result.code !== 0) {
      const why = result.code === MOUNT_FAILED ? readFileSync(join(out, 'mount-error'), 'utf8') : result.stderr;
      throw new Error(
        `this test needs a real full file system and could not make one (unshare ${unshare.join(' ')} + mount -t tmpfs, exit ${result.code}): ${why.trim()}. ` +
          'Run the tests as root, or where unprivileged user namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1).',
      );
    }
    return {
      code: Number(readFileSync(join(out, 'code'), 'utf8')),
      stdout: readFileSync(join(out, 'stdout'), 'utf8'),
      stderr: readFileSync(join(out, 'stderr'), 'utf8'),
      after: dirs.map((_, i) => files(join(out, `after${i}`))),
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
