// What a local list's activation guard (activation-guard.ts) remembers across restarts, in
// state_dir/list-state/: NAME.json, the last good (activated) state's sha256 and entry count;
// NAME.txt, a copy of that content, served at the next start when the file on disk is then
// refused (a file truncated by a crash is usually found at the reboot); NAME.accepted.json, the
// sha256 of a content the admin accepted with `sluice lists accept`. The server writes the first
// two after every activation; the CLI only reads them and writes the third.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { copyFile, mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { stateDir } from '../config/paths.js';
import type { Config } from '../config/schema.js';
import { atomicWrite, tempPathFor } from '../files/atomic-write.js';
import type { GoodState } from './activation-guard.js';

export interface SavedState extends GoodState {
  /** The list file the state was read from. */
  file: string;
  /** When it was activated (ISO). */
  activatedAt: string;
}

export interface AcceptedContent {
  sha256: string;
  /** sha256 of the last good state it was accepted over (null: none). */
  from: string | null;
  entries: number;
  acceptedAt: string;
  user: string;
}

export function listStateDir(config: Config, baseDir: string): string {
  return join(stateDir(config, baseDir), 'list-state');
}

export const savedStatePath = (dir: string, name: string): string => join(dir, `${name}.json`);
export const savedCopyPath = (dir: string, name: string): string => join(dir, `${name}.txt`);
export const acceptedPath = (dir: string, name: string): string => join(dir, `${name}.accepted.json`);

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // missing or torn: as if there were none
  }
}

export function readSavedState(dir: string, name: string): SavedState | undefined {
  const v = readJson(savedStatePath(dir, name));
  if (!v || typeof v.sha256 !== 'string' || typeof v.entries !== 'number' || typeof v.file !== 'string' || typeof v.activatedAt !== 'string') return undefined;
  return { sha256: v.sha256, entries: v.entries, file: v.file, activatedAt: v.activatedAt };
}

export function readAccepted(dir: string, name: string): AcceptedContent | undefined {
  const v = readJson(acceptedPath(dir, name));
  if (!v || typeof v.sha256 !== 'string' || typeof v.entries !== 'number' || typeof v.acceptedAt !== 'string' || typeof v.user !== 'string') return undefined;
  if (v.from !== null && typeof v.from !== 'string') return undefined;
  return { sha256: v.sha256, from: v.from, entries: v.entries, acceptedAt: v.acceptedAt, user: v.user };
}

/**
 * Remember `file` as the last good state of list `name`, if its bytes still hash to `sha256` (an
 * edit since it was loaded is left to the reload that edit causes). Copy before record: a crash in
 * between leaves a record whose copy does not match, which the loader then does not serve.
 */
export async function saveGoodState(dir: string, name: string, file: string, sha256: string, entries: number, activatedAt = new Date()): Promise<boolean> {
  await mkdir(dir, { recursive: true });
  const copy = savedCopyPath(dir, name);
  // Copied by the kernel and hashed as a stream: a 20 MB list read whole stayed in the resident size.
  const tmp = tempPathFor(copy);
  try {
    await copyFile(file, tmp);
    const hash = createHash('sha256');
    await pipeline(createReadStream(tmp), hash);
    if (hash.digest('hex') !== sha256) {
      await unlink(tmp);
      return false;
    }
    const fh = await open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, copy);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const state: SavedState = { sha256, entries, file, activatedAt: activatedAt.toISOString() };
  await atomicWrite(savedStatePath(dir, name), JSON.stringify(state, null, 2) + '\n');
  return true;
}

export async function saveAccepted(dir: string, name: string, accepted: AcceptedContent): Promise<void> {
  await mkdir(dir, { recursive: true });
  await atomicWrite(acceptedPath(dir, name), JSON.stringify(accepted, null, 2) + '\n');
}
