// Edits of list files that never lose what the admin wrote, nor say what did not happen:
//  - comments and order are kept;
//  - every write goes to a temporary file that is renamed over the original (readers see the old or
//    the new file, never half of one), with the original's mode and owner (files/atomic-write.ts);
//  - concurrent edits are serialised by a lock; the lock and temporary files of an editor that was
//    killed are removed by the next edit, without waiting for the lock to go stale;
//  - the audit record is written ahead: the new text is written and fsynced to the temporary file,
//    then the record is appended and fsynced, and only then is the file renamed into place. A full
//    disk or a permission error at either step leaves the list as it was and no record. A crash
//    between the record and the rename (or a failed rename, which is recorded as such) is the one
//    case in which a record names a change that is not in the file.
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readlinkSync, readSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { hostname, userInfo } from 'node:os';
import { createRequire } from 'node:module';
import type * as Lockfile from 'proper-lockfile';
import { fsReason, ownLikeParentSync, stageWrite, tempWriterPid, WriteFailure } from '../files/atomic-write.js';
import { normaliseDomain, parseRule, type ListFormat } from './formats.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// A PID names a process only in its PID namespace (a container's `docker exec` and the host see
// different ones) and on its host (a list directory on NFS): an owner is judged dead only when both
// are ours.
let pidNamespace: string | undefined;
export function ownerTag(): string {
  if (pidNamespace === undefined) {
    try {
      pidNamespace = /\d+/.exec(readlinkSync('/proc/self/ns/pid'))?.[0] ?? 'x';
    } catch {
      pidNamespace = 'x';
    }
  }
  return `${pidNamespace}@${hostname()}`;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The lock of `file` is the directory `<file>.lock` (proper-lockfile); its owner is named by an
 * empty file `<file>.lock.pid-<pid>.<tag>` beside it (not inside: proper-lockfile watches the
 * directory's mtime and removes it with rmdir). An empty file costs no data block, so it can be
 * created on a full disk.
 */
function ownerFiles(file: string): { name: string; pid: number; tag: string }[] {
  const re = new RegExp(`^${escapeRe(basename(file))}\\.lock\\.pid-(\\d+)\\.(.+)$`);
  let names: string[];
  try {
    names = readdirSync(dirname(file));
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const m = re.exec(name);
    return m ? [{ name: join(dirname(file), name), pid: Number(m[1]), tag: m[2]! }] : [];
  });
}

/**
 * Remove the lock of `file` when its owner is a dead process of this host and PID namespace.
 * The owner file is claimed by a rename first, so of several editors finding the same dead lock
 * exactly one removes it; and only if the lock directory is still the one it saw.
 */
export function reapDeadLock(file: string): boolean {
  const lockDir = `${file}.lock`;
  const tag = ownerTag();
  for (const o of ownerFiles(file)) {
    if (o.tag !== tag || alive(o.pid)) continue;
    let before;
    try {
      before = statSync(lockDir);
    } catch {
      // no lock: the owner file is a leftover; the next lock holder removes it
      continue;
    }
    const claimed = `${o.name}.reaping-${process.pid}`;
    try {
      renameSync(o.name, claimed);
    } catch {
      continue; // another editor claimed it
    }
    try {
      const now = statSync(lockDir);
      if (now.ino === before.ino && now.mtimeMs === before.mtimeMs) {
        rmdirSync(lockDir);
        return true;
      }
    } catch {
      // gone meanwhile
    } finally {
      try {
        unlinkSync(claimed);
      } catch {
        // already gone
      }
    }
  }
  return false;
}

/** Remove temporary files of `file` (atomicWrite's) whose writer is no longer running. Called under the lock. */
export function removeStaleTemps(file: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dirname(file));
  } catch {
    return removed;
  }
  for (const name of names) {
    const pid = tempWriterPid(file, name);
    if (pid === undefined || alive(pid)) continue;
    try {
      unlinkSync(join(dirname(file), name));
      removed.push(name);
    } catch {
      // removed by someone else
    }
  }
  return removed;
}

const LOCK_WAIT_MS = 20_000;

/** Run `fn` holding an exclusive lock on `file` (waits up to 20 s for another editor that is alive). */
export async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  try {
    if (!existsSync(file)) {
      writeFileSync(file, '', { flag: 'a' });
      // Made by root (sudo sluice …) in a directory of the service user's: keep it theirs, or
      // the server could no longer write it (the audit log, an overrides file), and the edit
      // below would keep the owner of this empty file.
      ownLikeParentSync(file);
    }
  } catch (err) {
    throw new WriteFailure(file, err);
  }
  // Loaded on first use: only edits need it, and the server loads this module at every start.
  const lockfile = createRequire(import.meta.url)('proper-lockfile') as typeof Lockfile;
  const deadline = Date.now() + LOCK_WAIT_MS;
  let release: () => Promise<void>;
  for (let pause = 20; ; pause = Math.min(pause * 2, 200)) {
    try {
      release = await lockfile.lock(file, { stale: 15000, realpath: false, lockfilePath: `${file}.lock` });
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // The lock directory could not be made (a read-only or full directory): the edit cannot be made either.
      if (code !== 'ELOCKED') throw fsReason(code) !== undefined ? new WriteFailure(file, err) : err;
      if (Date.now() > deadline) throw err;
      if (reapDeadLock(file)) continue;
      await new Promise((r) => setTimeout(r, pause));
    }
  }
  // Owner files of earlier holders are leftovers (we hold the lock now): remove them, then name us.
  for (const o of ownerFiles(file)) {
    try {
      unlinkSync(o.name);
    } catch {
      // claimed by a reaper
    }
  }
  const owner = `${file}.lock.pid-${process.pid}.${ownerTag()}`;
  try {
    writeFileSync(owner, '', { flag: 'wx' });
  } catch {
    // without it a killed editor's lock goes stale after 15 s, as before
  }
  try {
    removeStaleTemps(file);
    return await fn();
  } finally {
    try {
      unlinkSync(owner);
    } catch {
      // never written
    }
    await release();
  }
}

export interface AuditRecord {
  time: string;
  user: string;
  command: string;
  list: string;
  domains: string[];
  reason?: string;
  result?: string;
  /** Policy exceptions the edit was allowed to defeat (`--override-exception`). */
  overrides?: string[];
  /** `log erase`: whose events, and before when. */
  client?: string;
  before?: string;
}

export function currentUser(): string {
  try {
    return process.env.SUDO_USER || userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

function auditLine(rec: Omit<AuditRecord, 'time' | 'user'>, now: Date): string {
  const full: AuditRecord = { time: now.toISOString(), user: currentUser(), ...rec };
  return JSON.stringify(full) + '\n';
}

/** Whether the file open as `fd` (size `size`) ends a line; a torn last line is closed by the next record. */
function endsLine(fd: number, size: number): boolean {
  if (size === 0) return true;
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, size - 1);
  return b[0] === 0x0a;
}

/**
 * One JSON line per edit, fsynced. O_APPEND writes of one line do not interleave between processes.
 * For records written after the fact (downloads, erasures); list edits use writeAudit.
 */
export function appendAudit(file: string, rec: Omit<AuditRecord, 'time' | 'user'>, now = new Date()): void {
  mkdirSync(dirname(file), { recursive: true });
  const fd = openSync(file, 'a+');
  try {
    const line = auditLine(rec, now);
    const buf = Buffer.from(endsLine(fd, fstatSync(fd).size) ? line : '\n' + line);
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The write-ahead audit record of an edit: appended and fsynced, or not there at all. Appenders
 * are serialised by a lock on the log, so a write that fails half-way (disk full) can be cut back
 * without touching another's record.
 */
export async function writeAudit(file: string, rec: Omit<AuditRecord, 'time' | 'user'>, now = new Date()): Promise<void> {
  try {
    await mkdir(dirname(file), { recursive: true });
    await withLock(file, async () => {
      const fh = await open(file, 'a+');
      try {
        const { size } = await fh.stat();
        const line = auditLine(rec, now);
        let text = line;
        if (size > 0) {
          const { buffer } = await fh.read(Buffer.alloc(1), 0, 1, size - 1);
          if (buffer[0] !== 0x0a) text = '\n' + line;
        }
        try {
          await fh.writeFile(text);
          await fh.sync();
        } catch (err) {
          await fh.truncate(size).catch(() => {});
          await fh.sync().catch(() => {});
          throw err;
        }
      } finally {
        await fh.close();
      }
    });
  } catch (err) {
    if (err instanceof WriteFailure) throw new WriteFailure(file, err.cause);
    if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw err;
    throw new WriteFailure(file, err);
  }
}

export interface AuditedEdit<R> {
  /** The audit log. */
  file: string;
  /** The record of the edit's result (written before the edit is applied); undefined: none. */
  record: (result: R) => Omit<AuditRecord, 'time' | 'user'> | undefined;
}

/**
 * Edit `file` under its lock: `compute` gives the new text from the current one; the audit record
 * is written ahead of the change (see the top of this file). Throws WriteFailure (nothing changed)
 * when the temporary file or the record cannot be written.
 */
export async function editFile<R>(file: string, compute: (text: string) => { text: string; changed: boolean; result: R }, audit?: AuditedEdit<R>): Promise<R> {
  return withLock(file, async () => {
    const { text, changed, result } = compute(existsSync(file) ? await readFile(file, 'utf8') : '');
    const record = audit?.record(result);
    if (!changed) {
      if (record) await writeAudit(audit!.file, record);
      return result;
    }
    const staged = await stageWrite(file, text);
    if (record) {
      try {
        await writeAudit(audit!.file, record);
      } catch (err) {
        await staged.abort();
        throw err;
      }
    }
    try {
      await staged.commit();
    } catch (err) {
      // The record says the edit was made: say it was not.
      if (record) await writeAudit(audit!.file, { ...record, result: `failed: ${(err as Error).message}` }).catch(() => {});
      throw err;
    }
    return result;
  });
}

export class InvalidDomainError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'InvalidDomainError';
  }
}

/** Normalise domains given on the command line; `*.d` means subdomains only. Throws on any invalid one. */
export function normaliseRules(inputs: string[]): string[] {
  const out: string[] = [];
  const bad: string[] = [];
  for (const input of inputs) {
    const wildcard = input.startsWith('*.');
    const n = normaliseDomain(wildcard ? input.slice(2) : input);
    if ('error' in n) bad.push(n.error);
    else out.push(wildcard ? `*.${n.domain}` : n.domain);
  }
  if (bad.length > 0) throw new InvalidDomainError(bad);
  return [...new Set(out)];
}

function ruleKeysOfLine(line: string): string[] {
  const hash = line.indexOf('#');
  const r = parseRule(hash < 0 ? line : line.slice(0, hash), 'auto');
  if (!r || 'error' in r) return [];
  return r.entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain));
}

/** Pure: text with `rules` appended (those not already present), each with an optional comment. */
export function addRulesToText(text: string, rules: string[], comment?: string): { text: string; added: string[]; present: string[] } {
  const existing = new Set(text.split('\n').flatMap(ruleKeysOfLine));
  const added = rules.filter((r) => !existing.has(r));
  const present = rules.filter((r) => existing.has(r));
  if (added.length === 0) return { text, added, present };
  const suffix = comment ? `  # ${comment.replace(/\n/g, ' ')}` : '';
  const base = text === '' || text.endsWith('\n') ? text : text + '\n';
  return { text: base + added.map((r) => r + suffix).join('\n') + '\n', added, present };
}

/** A hosts-file name as a rule key, normalised the way the parser does (case, trailing dot, IDN). */
function hostKey(field: string): string {
  const wildcard = field.startsWith('*.');
  const n = normaliseDomain(wildcard ? field.slice(2) : field);
  return 'error' in n ? field : `${wildcard ? '*.' : ''}${n.domain}`;
}

/**
 * Pure: text without `rules`. A line holding only removed rules goes (with its trailing comment);
 * a hosts line with several names keeps the others. Comment lines and order stay as they were.
 */
export function removeRulesFromText(text: string, rules: string[]): { text: string; removed: string[]; missing: string[] } {
  const drop = new Set(rules);
  const found = new Set<string>();
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const keys = ruleKeysOfLine(line);
    const hit = keys.filter((k) => drop.has(k));
    if (hit.length === 0) {
      out.push(line);
      continue;
    }
    hit.forEach((k) => found.add(k));
    if (hit.length === keys.length) continue;
    // hosts line with several names: rebuild it without the removed ones
    const hash = line.indexOf('#');
    const comment = hash < 0 ? '' : '  ' + line.slice(hash);
    const fields = (hash < 0 ? line : line.slice(0, hash)).trim().split(/\s+/);
    out.push([fields[0], ...fields.slice(1).filter((f) => !drop.has(hostKey(f)))].join(' ') + comment);
  }
  return { text: out.join('\n'), removed: rules.filter((r) => found.has(r)), missing: rules.filter((r) => !found.has(r)) };
}

export type AddResult = ReturnType<typeof addRulesToText>;
export type RemoveResult = ReturnType<typeof removeRulesFromText>;

export async function addRules(file: string, rules: string[], comment?: string, audit?: AuditedEdit<AddResult>): Promise<AddResult> {
  return editFile(
    file,
    (text) => {
      const result = addRulesToText(text, rules, comment);
      return { text: result.text, changed: result.added.length > 0, result };
    },
    audit,
  );
}

export async function removeRules(file: string, rules: string[], audit?: AuditedEdit<RemoveResult>): Promise<RemoveResult> {
  return editFile(
    file,
    (text) => {
      const result = removeRulesFromText(text, rules);
      return { text: result.text, changed: result.removed.length > 0, result };
    },
    audit,
  );
}

/**
 * Pure: rules rendered in a list format, with a header comment. A subdomains-only rule (`*.d`):
 *  - plain: `*.d`, sluice's own syntax;
 *  - adblock: `||*.d^` — `*` is adblock's wildcard, so at the DNS level (hostnames only) this matches
 *    `a.d` and `a.b.d` but not `d` itself (`||d^` would block `d` too). AdGuard's HostlistCompiler
 *    validates it as a wildcard rule; docs/rpz.md has the details;
 *  - hosts: a hosts file maps exact names, and has no way to say "every subdomain of d" (nor any
 *    wildcard): the rule becomes a comment line saying so, and is listed in `skipped`.
 */
export function exportRules(rules: Iterable<string>, format: Exclude<ListFormat, 'auto'>, header: string[]): { text: string; skipped: string[] } {
  const lines = header.map((h) => (format === 'adblock' ? `! ${h}` : `# ${h}`));
  const skipped: string[] = [];
  for (const r of rules) {
    const wildcard = r.startsWith('*.');
    const d = wildcard ? r.slice(2) : r;
    if (format === 'plain') lines.push(r);
    else if (format === 'hosts') {
      if (!wildcard) lines.push(`0.0.0.0 ${d}`);
      else {
        skipped.push(r);
        lines.push(`# not exported: ${r} (subdomains of ${d} only; a hosts file cannot express that)`);
      }
    } else lines.push(wildcard ? `||*.${d}^` : `||${d}^`);
  }
  return { text: lines.join('\n') + '\n', skipped };
}
