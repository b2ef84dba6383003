// Writing a file so that readers see the old text or the new one, never half of one, and so that a
// failed write leaves the old file as it was: the new text goes to a temporary file beside the
// original (same directory, so the rename cannot cross file systems), with the original's mode and
// owner, is fsynced, and is renamed over the original; then the directory is fsynced. Used for list
// files, the list state, downloaded lists and the Redis snapshot alike.
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { chownSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const FS_REASONS: Record<string, string> = {
  ENOSPC: 'disk full',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
};

/** What an error code of the file system means for a write ("disk full"); undefined for any other code. */
export function fsReason(code: string | undefined): string | undefined {
  return code !== undefined ? FS_REASONS[code] : undefined;
}

/** A write that failed and was undone: `file` is the file the write was for, not its temporary copy. */
export class WriteFailure extends Error {
  readonly code: string | undefined;
  constructor(
    readonly file: string,
    override readonly cause: unknown,
  ) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(`${fsReason(code) ?? (cause as Error | undefined)?.message ?? String(cause)} writing ${file}`);
    this.name = 'WriteFailure';
    this.code = code;
  }
}

/**
 * One line for an error of the file system ("disk full writing /etc/sluice/lists/x.txt"), or
 * undefined for an error that is not one (a bug, which should keep its stack trace).
 */
export function describeFsError(err: unknown): string | undefined {
  if (err instanceof WriteFailure) return err.message;
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code === 'ELOCKED') return `${(e as { file?: string }).file ?? 'the file'} is being edited by another process; try again`;
  const reason = fsReason(e?.code);
  if (reason !== undefined) return `${reason} writing ${e?.path ?? 'a file'}`;
  return undefined;
}

/** Where atomicWrite stages the new text of `file`: `.<base>.<pid>.<random>.tmp` beside it. */
export function tempPathFor(file: string): string {
  return join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** The PID of the process that staged the file named `name` (in `file`'s directory) for `file`; undefined when `name` is not such a temporary file. */
export function tempWriterPid(file: string, name: string): number | undefined {
  const prefix = `.${basename(file)}.`;
  if (!name.startsWith(prefix) || !name.endsWith('.tmp')) return undefined;
  const m = /^(\d+)\.[0-9a-f]+$/.exec(name.slice(prefix.length, -'.tmp'.length));
  return m ? Number(m[1]) : undefined;
}

/** fsync the directory `dir`, so that a rename or a new file in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // some filesystems do not fsync directories; the rename is still atomic
  } finally {
    await fh.close();
  }
}

/** The new text of a file, written and fsynced beside it; `commit` renames it into place. */
export interface StagedWrite {
  tmp: string;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** Give `fh` the owner and mode of `st`, as far as this process may (only root can give a file away). */
async function copyOwnerAndMode(fh: FileHandle, st: { uid: number; gid: number; mode: number }): Promise<void> {
  if (st.uid !== process.getuid?.() || st.gid !== process.getgid?.()) {
    try {
      await fh.chown(st.uid, st.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
      // Not root: keep at least the group (a list shared by group sluice stays shared).
      await fh.chown(-1, st.gid).catch(() => {});
    }
  }
  // After chown, which clears set-id bits.
  await fh.chmod(st.mode & 0o7777);
}

/** A new file run as root belongs to its directory's owner: a list root creates in site_dir stays editable by the service user. */
async function ownLikeDirectory(fh: FileHandle, file: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const dir = await stat(dirname(file));
  if (dir.uid !== 0 || dir.gid !== 0) await fh.chown(dir.uid, dir.gid);
}

/** Stage `data` for `file`: temp file in the same directory with the original's owner and mode, fsynced. */
export async function stageWrite(file: string, data: string | Uint8Array): Promise<StagedWrite> {
  const tmp = tempPathFor(file);
  let fh: FileHandle | undefined;
  try {
    const original = await stat(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    // A new file gets 0644 less the umask: lists and the config are read by the service user.
    fh = await open(tmp, 'wx', 0o644);
    if (original) await copyOwnerAndMode(fh, original);
    else await ownLikeDirectory(fh, file);
    await fh.writeFile(data);
    await fh.sync();
    const closing = fh;
    fh = undefined;
    await closing.close();
  } catch (err) {
    await fh?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw new WriteFailure(file, err);
  }
  return {
    tmp,
    async commit() {
      try {
        await rename(tmp, file);
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw new WriteFailure(file, err);
      }
      await fsyncDir(dirname(file));
    },
    abort: () => unlink(tmp).catch(() => {}),
  };
}

/** Create `file` with `text`, exclusively (EEXIST if it is there): nothing is left behind when the write fails. */
export async function createFile(file: string, text: string): Promise<void> {
  const fh = await open(file, 'wx', 0o644);
  try {
    await ownLikeDirectory(fh, file);
    await fh.writeFile(text);
    await fh.sync();
    await fh.close();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(file).catch(() => {});
    throw new WriteFailure(file, err);
  }
}

/** Write `data` to `file` atomically: temp file in the same directory, fsync, rename, fsync dir. Throws WriteFailure (the file unchanged). */
export async function atomicWrite(file: string, data: string | Uint8Array): Promise<void> {
  await (await stageWrite(file, data)).commit();
}

/**
 * Create `dir` owned as its parent is: root running the CLI (`sudo sluice disable`) must not leave
 * a directory in state_dir that the server's own user cannot write into. Files made in it then
 * take its owner (ownLikeDirectory).
 */
export function mkdirOwnedLikeParent(dir: string): void {
  if (existsSync(dir)) return;
  mkdirSync(dir, { recursive: true });
  try {
    ownLikeParentSync(dir);
  } catch {
    // the directory works for root; the server reports its own EACCES if it meets one
  }
}

/** Run as root: give `path` its directory's owner when that is not root (a service user's state). */
export function ownLikeParentSync(path: string): void {
  if (process.getuid?.() !== 0) return;
  const parent = statSync(dirname(path));
  if (parent.uid !== 0 || parent.gid !== 0) chownSync(path, parent.uid, parent.gid);
}
