// `sluice disable` / `enable` (Pi-hole's `pihole disable 5m`, Blocky's `blocking disable`),
// `sluice allow` / `deny` (an exception or a blocked name for one network or client, with an
// end), and `sluice overrides` to list and remove them. Written where the server reads them
// (shared/override-store.ts): the overrides file, or the shared edit log in Redis.
import { Command, Option } from 'commander';
import { currentUser } from '../lists/list-editor.js';
import { buildOverride, isActive, isoSeconds, unknownScope, overrideScope, overrideSummary, type DisableEntry, type OverrideEntry, type OverrideRequest } from '../policy/overrides.js';
import type { LoadedRules } from '../rules/load.js';
import { changeOverrides, newOverrideId, overrideRedis, readOverrides, type OverrideChange } from '../shared/override-store.js';
import { loadForCli } from './config-file.js';
import { EXIT, fail, printJson, printTable } from './output.js';
import { confirmEdit } from './shared-edits.js';

const json = () => new Option('--json', 'machine-readable output');

/** The entry of a request, or undefined (said why: exit 2 for a malformed request, 1 refused). */
function build(r: LoadedRules, req: OverrideRequest): OverrideEntry | undefined {
  const built = buildOverride(req, r.loaded.config, { now: Date.now(), id: newOverrideId(req.kind), by: currentUser(), tz: Intl.DateTimeFormat().resolvedOptions().timeZone });
  if ('error' in built) {
    fail(built.usage ? built.error : `nothing changed: ${built.error}`, built.usage ? EXIT.USAGE : EXIT.FAILED);
    return undefined;
  }
  return built.entry;
}

/** How the change was stored, and (shared mode) which instances apply it. */
async function report(r: LoadedRules, change: OverrideChange, summary: string, entry: OverrideEntry | undefined, asJson: boolean): Promise<void> {
  let applied: string[] = [];
  let waiting: string[] = [];
  if (change.edit && r.loaded.config.redis) {
    const cfg = r.loaded.config.redis;
    const redis = overrideRedis(r);
    try {
      const seen = await confirmEdit(redis, cfg.key_prefix, cfg.heartbeat_ms, change.edit).catch(() => undefined);
      applied = seen?.applied ?? [];
      waiting = seen?.waiting ?? [];
    } finally {
      redis.disconnect();
    }
  }
  if (asJson)
    return printJson({
      ...(entry ? { entry } : {}),
      stored: change.where,
      ...(change.file ? { file: change.file } : {}),
      ...(change.edit ? { version: change.edit.version, appliedBy: applied, waitingFor: waiting } : {}),
    });
  process.stdout.write(`${summary}\n`);
  if (change.where === 'file')
    process.stdout.write(`written to ${change.file}; ${r.loaded.config.watch ? 'a running server applies it within a second' : 'watch is off in the config: `sluice reload` applies it'}\n`);
  else if (applied.length + waiting.length === 0) process.stdout.write('stored in redis; no instance is running: each applies it when it starts\n');
  else if (waiting.length === 0) process.stdout.write(`stored in redis (shared edit ${change.edit?.version}); applied by ${applied.join(', ')}\n`);
  else process.stdout.write(`stored in redis; applied by ${applied.join(', ') || 'none yet'}; not yet by ${waiting.join(', ')} (see \`sluice status\`)\n`);
}

async function store(r: LoadedRules, change: { add?: OverrideEntry; remove?: OverrideEntry[] }, audit: { command: string; domains: string[]; reason?: string }): Promise<OverrideChange | undefined> {
  try {
    return await changeOverrides(r, change, audit);
  } catch (err) {
    fail(`nothing changed: ${(err as Error).message}`);
    return undefined;
  }
}

async function current(r: LoadedRules): Promise<OverrideEntry[] | undefined> {
  try {
    return await readOverrides(r);
  } catch (err) {
    fail((err as Error).message);
    return undefined;
  }
}

export function registerOverrides(program: Command): void {
  program
    .command('disable')
    .description('Stop blocking for a while: a policy, a network, or everything. Ends by itself; audited; shared through Redis in shared mode.')
    .option('--policy <id>', 'only this policy (default: every policy and profile list)')
    .option('--network <name>', 'only on this network (default: every network)')
    .option('--for <duration>', 'how long: 30s, 15m, 2h, 1d, 1h30m')
    .option('--until <date>', 'until then instead (2027-01-31 is the end of that day, local time)')
    .requiredOption('--reason <text>', 'why (kept in the audit log, shown in the EDE text of answers it lets through)')
    .addOption(json())
    .addHelpText(
      'after',
      [
        '',
        'While a disable is in force, what it covers is answered as if allowed; the query log marks',
        'those queries "disabled" with the list that would have blocked, the answer carries an EDE',
        'saying so, and sluice_blocking_disabled_until_timestamp_seconds shows it. `sluice enable`',
        'ends it early.',
        '',
        'Examples:',
        '  sluice disable --for 5m --reason "checking a broken login, ticket 4711"',
        '  sluice disable --policy tiktok-ban --network comms --for 2h --reason "campaign shoot"',
      ].join('\n'),
    )
    .action(async (opts: { policy?: string; network?: string; for?: string; until?: string; reason: string; json?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      const entry = r && build(r, { kind: 'disable', ...opts });
      if (!r || !entry) return;
      const change = await store(r, { add: entry }, { command: overrideSummary(entry), domains: [], reason: opts.reason });
      if (change) await report(r, change, `blocking disabled: ${overrideScope(entry)} until ${isoSeconds(entry.until)} (${entry.id})`, entry, opts.json === true);
    });

  program
    .command('enable')
    .description('End disables early: those of exactly this --policy and --network, or every one.')
    .option('--policy <id>', 'the disable of this policy')
    .option('--network <name>', 'the disable on this network')
    .option('--reason <text>', 'why (kept in the audit log)')
    .addOption(json())
    .addHelpText('after', '\nExamples:\n  sluice enable\n  sluice enable --policy tiktok-ban --network comms')
    .action(async (opts: { policy?: string; network?: string; reason?: string; json?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      if (!r) return;
      const unknown = unknownScope(opts, r.loaded.config);
      if (unknown) return fail(unknown, EXIT.USAGE);
      const all = await current(r);
      if (!all) return;
      const now = Date.now();
      const every = opts.policy === undefined && opts.network === undefined;
      const ending = all.filter((e): e is DisableEntry => e.kind === 'disable' && isActive(e, now) && (every || (e.policy === opts.policy && e.network === opts.network)));
      if (ending.length === 0) {
        if (opts.json) return printJson({ ended: [] });
        process.stdout.write(`nothing to enable: no disable in force${every ? '' : ' with that scope'}\n`);
        return;
      }
      const change = await store(
        r,
        { remove: ending },
        { command: `enable ${ending.map((e) => `${overrideScope(e)} (${e.id})`).join(', ')}`, domains: [], ...(opts.reason ? { reason: opts.reason } : {}) },
      );
      if (!change) return;
      if (opts.json) return printJson({ ended: ending.map((e) => e.id), stored: change.where });
      await report(r, change, ending.map((e) => `blocking enabled again: ${overrideScope(e)} (${e.id})`).join('\n'), undefined, false);
    });

  for (const kind of ['allow', 'deny'] as const) {
    program
      .command(kind)
      .description(
        kind === 'allow'
          ? 'Let a name (and its subdomains) through every block for one network or client, optionally until a date: an exception without a config edit.'
          : 'Block a name (and its subdomains) for one network or client, optionally until a date.',
      )
      .argument('<domain>', 'the name; its subdomains are covered too')
      .option('--network <name>', 'on this network')
      .option('--client <address>', 'for this client (an address or a CIDR range)')
      .option('--until <date>', 'ends at the end of that day (local time), or at that instant (2027-01-31T17:00:00Z)')
      .option('--for <duration>', 'ends after this long: 30m, 2h, 7d')
      .requiredOption('--reason <text>', 'why (kept in the audit log and shown by `sluice overrides`)')
      .option('--approved-by <who>', 'who approved it (as a policy exception records it)')
      .addOption(json())
      .addHelpText(
        'after',
        kind === 'allow'
          ? '\nExamples:\n  sluice allow www.tiktok.com --client 10.20.0.15 --until 2027-03-31 --reason "comms campaign" --approved-by "CISO, ticket 5120"'
          : '\nExamples:\n  sluice deny tracker.example.net --network staff --reason "seen in the query log, ticket 4711"',
      )
      .action(async (domain: string, opts: { network?: string; client?: string; until?: string; for?: string; reason: string; approvedBy?: string; json?: boolean }, cmd: Command) => {
        const r = await loadForCli(cmd);
        const entry = r && build(r, { kind, domain, ...opts });
        if (!r || !entry || entry.kind === 'disable') return;
        const change = await store(r, { add: entry }, { command: overrideSummary(entry), domains: [entry.domain], reason: opts.reason });
        if (change)
          await report(r, change, `${kind === 'allow' ? 'allowed' : 'denied'}: ${entry.domain} for ${overrideScope(entry)} until ${isoSeconds(entry.until)} (${entry.id})`, entry, opts.json === true);
      });
  }

  const overrides = program
    .command('overrides')
    .description('Runtime overrides (disable, allow, deny): list them, or remove some by id.')
    .option('--all', 'also those that have ended')
    .addOption(json())
    .action(async (opts: { all?: boolean; json?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      if (!r) return;
      const all = await current(r);
      if (!all) return;
      const now = Date.now();
      const shown = opts.all ? all : all.filter((e) => isActive(e, now));
      if (opts.json) return printJson(shown.map((e) => ({ ...e, active: isActive(e, now) })));
      if (shown.length === 0) {
        process.stdout.write(opts.all ? 'no runtime overrides\n' : 'no runtime overrides in force\n');
        return;
      }
      printTable(
        ['ID', 'KIND', 'NAME', 'SCOPE', 'UNTIL', 'BY', 'REASON'],
        shown.map((e) => [
          e.id,
          e.kind,
          e.kind === 'disable' ? '-' : e.domain,
          overrideScope(e),
          isActive(e, now) ? isoSeconds(e.until) : `ended ${isoSeconds(e.until)}`,
          e.kind !== 'disable' && e.approvedBy !== undefined ? `${e.by}, approved by ${e.approvedBy}` : e.by,
          e.reason,
        ]),
      );
    });
  overrides
    .command('remove')
    .description('Remove overrides by id (see `sluice overrides`).')
    .argument('<ids...>', 'the ids')
    .option('--reason <text>', 'why (kept in the audit log)')
    .addOption(json())
    .action(async (ids: string[], opts: { reason?: string; json?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      if (!r) return;
      const all = await current(r);
      if (!all) return;
      const unknown = ids.filter((id) => !all.some((e) => e.id === id));
      if (unknown.length > 0) return fail(`nothing changed: no override ${unknown.join(', ')} (see \`sluice overrides --all\`)`);
      const removing = all.filter((e) => ids.includes(e.id));
      const change = await store(
        r,
        { remove: removing },
        { command: `overrides remove ${ids.join(' ')}`, domains: removing.flatMap((e) => (e.kind === 'disable' ? [] : [e.domain])), ...(opts.reason ? { reason: opts.reason } : {}) },
      );
      if (!change) return;
      if (opts.json) return printJson({ removed: ids, stored: change.where });
      await report(r, change, removing.map((e) => `removed ${e.id} (${e.kind} ${overrideScope(e)})`).join('\n'), undefined, false);
    });
}
