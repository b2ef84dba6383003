// `sluice lists accept NAME`: put a local list file in force although the server refused it (it
// became empty, looks like garbage, or lost more than half of its entries). The acceptance is the
// file's sha256 in state_dir/list-state/NAME.accepted.json, which the server watches: a running
// server with `watch` on applies it within a second. A later edit is judged afresh.
import { relative } from 'node:path';
import { Option, type Command } from 'commander';
import { loadDomainsFromFile } from '../lists/list-bytes.js';
import { describeServing, type LoadedList } from '../lists/list-loader.js';
import { appendAudit, currentUser } from '../lists/list-editor.js';
import { listStateDir, saveAccepted } from '../lists/list-state.js';
import type { LoadedRules } from '../rules/load.js';
import { auditLogPath, loadForCli } from './config-file.js';
import { fail, printJson } from './output.js';

function loadedList(r: LoadedRules, name: string): LoadedList | undefined {
  return r.lists.lists.find((l) => l.def.name === name);
}

/** Accept the content of `l`'s file over the good state in force: returns what was accepted. */
async function acceptFile(r: LoadedRules, l: LoadedList): Promise<{ sha256: string; entries: number; problems: number }> {
  const read = await loadDomainsFromFile(l.def.file);
  const accepted = { sha256: read.sha256, from: l.good?.sha256 ?? null, entries: read.set.size, acceptedAt: new Date().toISOString(), user: currentUser() };
  await saveAccepted(listStateDir(r.loaded.config, r.loaded.baseDir), l.def.name, accepted);
  return { sha256: read.sha256, entries: read.set.size, problems: read.problems.length };
}

/**
 * After `sluice lists remove` changed a list file: the removal is the admin's, so the server must
 * not refuse it as a list that lost most of its entries. Only when the list was in force before:
 * a removal from a refused file is not an acceptance of the rest of it.
 */
export async function acceptEdit(r: LoadedRules, name: string): Promise<void> {
  const l = loadedList(r, name);
  if (!l || l.refused || l.def.url !== undefined) return;
  try {
    await acceptFile(r, l);
  } catch (err) {
    // The edit is made and audited; only the server's judgement of it is left to chance.
    process.stderr.write(
      `warning: could not record the edit as accepted (${(err as Error).message}): if it removed more than half of ${name}, the server keeps the list as it was until \`sluice lists accept ${name}\`\n`,
    );
  }
}

/** Notes for `sluice lists`: one per list whose file is refused. */
export function refusalNotes(r: LoadedRules): string[] {
  return r.lists.lists
    .filter((l) => l.refused)
    .map(
      (l) =>
        `note: list ${l.def.name} is REFUSED: ${l.refused!.reason}; ${describeServing(l)}. Fix ${relative(process.cwd(), l.def.file)}, or run \`sluice lists accept ${l.def.name}\` if the change is meant.`,
    );
}

export function registerListAccept(lists: Command): void {
  lists
    .command('accept')
    .description('Put a local list file in force as it is now, though it was refused (it became empty, looks like garbage, or lost more than half of its entries).')
    .argument('<name>', 'list name')
    .option('--reason <text>', 'why (kept in the audit log)')
    .addOption(new Option('--json', 'machine-readable output'))
    .addHelpText('after', '\nExamples:\n  sluice lists accept local-additions --reason "emptied on purpose, ticket 4712"')
    .action(async (name: string, opts: { reason?: string }, cmd: Command) => {
      const r = await loadForCli(cmd);
      if (!r) return;
      const def = r.lists.resolved.lists.get(name);
      if (!def) return fail(`no list named "${name}" (see \`sluice lists\`)`);
      if (def.url !== undefined) return fail(`list "${name}" is downloaded from ${def.url}; a copy that lost most of its entries is taken with \`sluice lists update ${name} --force\``);
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      const before = loadedList(r, name);
      if (!before) return fail(`list "${name}" is not used by any profile or policy, so nothing refuses it`);
      if (!before.refused) {
        const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
        if (json) return printJson({ list: name, accepted: false, refused: false });
        process.stdout.write(`${name}: ${relative(process.cwd(), def.file)} is in force already; nothing to accept\n`);
        return;
      }
      let accepted: Awaited<ReturnType<typeof acceptFile>>;
      try {
        accepted = await acceptFile(r, before);
      } catch (err) {
        return fail(`nothing accepted: ${(err as Error).message}`);
      }
      const result = `accepted ${accepted.entries} entries (sha256 ${accepted.sha256.slice(0, 12)}), refused before: ${before.refused.reason}`;
      appendAudit(auditLogPath(r), { command: 'lists accept', list: name, domains: [], ...(opts.reason ? { reason: opts.reason } : {}), result });
      const applies = r.loaded.config.watch ? 'a running server applies it within a second' : 'reload the running server (SIGHUP) to apply it: watch is off';
      if (json) return printJson({ list: name, accepted: true, entries: accepted.entries, sha256: accepted.sha256, wasRefused: before.refused.reason });
      process.stdout.write(`${name}: accepted ${relative(process.cwd(), def.file)} as it is (${accepted.entries} entries; it was refused: ${before.refused.reason}); ${applies}\n`);
      if (accepted.problems > 0) process.stdout.write(`  ${accepted.problems} line(s) of it are not rules and stay skipped: see \`sluice lists show ${name}\`\n`);
    });
}
