// Edits of list files that never lose what the admin wrote: comments and order are kept, every write
// goes to a temporary file that is renamed over the original (readers see the old or the new file,
// never half of one), concurrent edits are serialised by a lock, and each edit is appended to the
// audit log.
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { userInfo } from 'node:os';
import { createRequire } from 'node:module';
import type * as Lockfile from 'proper-lockfile';
import { normaliseDomain, parseRule, type ListFormat } from './formats.js';

/** Write `text` to `file` atomically: temp file in the same directory, fsync, rename, fsync dir. */
export async function atomicWrite(file: string, text: string): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } catch {
    // some filesystems do not fsync directories; the rename is still atomic
  } finally {
    await dir.close();
  }
}

/** Run `fn` holding an exclusive lock on `file` (waits up to ~10 s for another editor). */
export async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  if (!existsSync(file)) writeFileSync(file, '', { flag: 'a' });
  // Loaded on first use: only edits need it, and the server loads this module at every start.
  const lockfile = createRequire(import.meta.url)('proper-lockfile') as typeof Lockfile;
  const release = await lockfile.lock(file, { retries: { retries: 100, minTimeout: 20, maxTimeout: 200 }, stale: 15000, realpath: false });
  try {
    return await fn();
  } finally {
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

/** One JSON line per edit. O_APPEND writes of one line do not interleave between processes. */
export function appendAudit(file: string, rec: Omit<AuditRecord, 'time' | 'user'>, now = new Date()): void {
  mkdirSync(dirname(file), { recursive: true });
  const full: AuditRecord = { time: now.toISOString(), user: currentUser(), ...rec };
  appendFileSync(file, JSON.stringify(full) + '\n');
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

export async function addRules(file: string, rules: string[], comment?: string) {
  return withLock(file, async () => {
    const r = addRulesToText(existsSync(file) ? readFileSync(file, 'utf8') : '', rules, comment);
    if (r.added.length > 0) await atomicWrite(file, r.text);
    return r;
  });
}

export async function removeRules(file: string, rules: string[]) {
  return withLock(file, async () => {
    const r = removeRulesFromText(readFileSync(file, 'utf8'), rules);
    if (r.removed.length > 0) await atomicWrite(file, r.text);
    return r;
  });
}

/** Pure: rules rendered in a list format, with a header comment. */
export function exportRules(rules: Iterable<string>, format: Exclude<ListFormat, 'auto'>, header: string[]): string {
  const lines = header.map((h) => (format === 'adblock' ? `! ${h}` : `# ${h}`));
  for (const r of rules) {
    const wildcard = r.startsWith('*.');
    const d = wildcard ? r.slice(2) : r;
    if (format === 'plain') lines.push(r);
    else if (format === 'hosts') lines.push(`0.0.0.0 ${wildcard ? `*.${d}` : d}`);
    else lines.push(wildcard ? `||*.${d}^` : `||${d}^`);
  }
  return lines.join('\n') + '\n';
}
