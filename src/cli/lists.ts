// `sluice lists …`: inspect and edit blocklists.
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { isMap, isNode, parseDocument, stringify } from 'yaml';
import { ConfigError, parseConfig } from '../config/load.js';
import { siteDir } from '../config/paths.js';
import { remoteCopyPath, type ListDefinition } from '../lists/catalog.js';
import { normaliseDomain, parseList, type ListFormat } from '../lists/formats.js';
import { nextSerial, zoneText } from '../rpz/zone.js';
import { loadDomainsFromBytes } from '../lists/list-bytes.js';
import { createFile, describeFsError } from '../files/atomic-write.js';
import { addRules, appendAudit, currentUser, editFile, exportRules, InvalidDomainError, normaliseRules, removeRules } from '../lists/list-editor.js';
import { isInside, releaseDir, curatedListProblem, type EditAttempt } from '../lists/site-lists.js';
import { coverage, defeatedExceptions, describeCoverage, describeDefeats, describeException, type Coverage } from '../policy/addition-impact.js';
import { fetchRemoteList, readCachedMeta } from '../lists/remote.js';
import type { LoadedRules } from '../rules/load.js';
import { auditLogPath, configPath, loadForCli } from './config-file.js';
import { describeRedisError, withDeadline } from '../shared/redis-connection.js';
import { cliRedis, confirmEdit, sharedEditsForCli } from './shared-edits.js';
import { effectiveRules } from '../rules/effective.js';
import type { DomainSet } from '../match/domain-set.js';
import { writeEdit } from '../shared/edit-store.js';
import { EXIT, fail, printJson, printTable } from './output.js';
import { acceptEdit, refusalNotes, registerListAccept } from './list-accept.js';
import { ALLOW_SUFFIX, suffixRefusals } from '../lists/public-suffix.js';

const jsonOption = () => new Option('--json', 'machine-readable output');

// Commander hands `lists show NAME --json` to the parent `lists` command's --json (program options
// are not positional, so that --config works after a subcommand); ask the whole chain.
const wantsJson = (cmd: Command): boolean => cmd.optsWithGlobals<{ json?: boolean }>().json === true;

function findList(r: LoadedRules, name: string): ListDefinition | undefined {
  const def = r.lists.resolved.lists.get(name);
  if (!def) fail(`no list named "${name}" (see \`sluice lists\`)`);
  return def;
}

function editable(def: ListDefinition, r: LoadedRules, attempt: Omit<EditAttempt, 'cwd'>): boolean {
  if (def.url !== undefined) {
    fail(`list "${def.name}" is downloaded from ${def.url}; edit a local list instead (e.g. \`sluice lists new local-additions\`)`);
    return false;
  }
  // The curated catalog is the release's: an upgrade would silently undo the edit.
  const curated = curatedListProblem(def, r.lists.resolved, { ...attempt, cwd: process.cwd() });
  if (curated) {
    fail(`nothing changed: ${curated}`);
    return false;
  }
  return true;
}

/** A file-system error (disk full, permission) as one line, "nothing changed: …"; anything else is a bug and is rethrown. */
function failWrite(err: unknown): void {
  const m = describeFsError(err);
  if (m === undefined) throw err;
  fail(`nothing changed: ${m}`);
}

/**
 * Before an addition: note the rules other lists cover already, and refuse (unless overridden)
 * one that would block what an active or coming policy exception lets through. Undefined: refused.
 */
function checkAddition(
  r: LoadedRules,
  sets: ReadonlyMap<string, DomainSet>,
  list: string,
  rules: string[],
  o: { override: boolean; json: boolean; maxNotes: number },
): { covered: Coverage[]; overrides: string[] } | undefined {
  const now = Date.now();
  const covered = coverage(r.loaded.config, sets, list, rules);
  const defeats = defeatedExceptions(r.loaded.config, sets, list, rules, now);
  if (!o.json) {
    for (const c of covered.slice(0, o.maxNotes)) process.stdout.write(`note: ${describeCoverage(c)}\n`);
    if (covered.length > o.maxNotes) process.stdout.write(`note: … ${covered.length - o.maxNotes} more rules are covered by other lists already\n`);
  }
  if (defeats.length > 0 && !o.override) {
    fail(`nothing changed: ${describeDefeats(list, defeats, now)}`);
    return undefined;
  }
  const overrides = defeats.map(describeException);
  if (!o.json) for (const x of overrides) process.stdout.write(`note: overriding ${x}\n`);
  return { covered, overrides };
}

function summarise(def: ListDefinition, r: LoadedRules) {
  const loaded = r.lists.lists.find((l) => l.def.name === def.name);
  let entries = loaded?.set.size;
  let problems = loaded?.problems.length;
  let updated = loaded?.updated;
  if (!loaded && existsSync(def.file)) {
    // Catalog lists no profile uses are not loaded by the server; count them here.
    const l = loadDomainsFromBytes(readFileSync(def.file));
    entries = l.set.size;
    problems = l.problems.length;
  }
  if (def.url !== undefined) {
    const meta = readCachedMeta(dirname(def.file), def.name);
    updated = meta ? new Date(meta.fetchedAt) : undefined;
  }
  const usedBy = Object.entries(r.loaded.config.profiles)
    .filter(([, p]) => p.block.includes(def.name))
    .map(([n]) => n);
  return {
    name: def.name,
    entries: entries ?? 0,
    problems: problems ?? 0,
    source: def.url ?? relative(process.cwd(), def.file),
    origin: def.origin,
    updated: updated?.toISOString(),
    app: def.meta?.app ?? undefined,
    vendor: def.meta?.vendor ?? undefined,
    catalogVersion: def.catalogVersion,
    usedBy,
    status: loaded?.refused ? 'refused' : 'ok',
    ...(loaded?.refused ? { refused: loaded.refused.reason } : {}),
  };
}

export function registerLists(program: Command): void {
  const lists = program
    .command('lists')
    .description('Show and edit blocklists.')
    .addOption(jsonOption())
    .addHelpText('after', '\nExamples:\n  sluice lists\n  sluice lists --json')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      if (!r) return;
      const rows = [...r.lists.resolved.lists.values()].sort((a, b) => a.name.localeCompare(b.name)).map((d) => summarise(d, r));
      if (wantsJson(cmd)) return printJson({ catalog: r.lists.resolved.catalog ? { file: r.lists.resolved.catalog.file, version: r.lists.resolved.catalog.catalog.version } : undefined, lists: rows });
      printTable(
        ['LIST', 'ENTRIES', 'APP', 'VENDOR', 'USED BY', 'UPDATED', 'SOURCE'],
        rows.map((l) => [l.name, l.entries, l.app ?? '-', l.vendor ?? '-', l.usedBy.join(',') || '-', l.updated?.slice(0, 16).replace('T', ' ') ?? '-', l.source]),
      );
      for (const note of refusalNotes(r)) process.stdout.write(`\n${note}\n`);
      if (r.lists.resolved.catalog) process.stdout.write(`\ncatalog ${r.lists.resolved.catalog.catalog.version} (${relative(process.cwd(), r.lists.resolved.catalog.file)})\n`);
    });

  lists
    .command('show')
    .description('Print the rules of a list.')
    .argument('<name>', 'list name')
    .option('--grep <pattern>', 'only rules containing this text (a regular expression)')
    .addOption(jsonOption())
    .addHelpText('after', '\nExamples:\n  sluice lists show tiktok\n  sluice lists show tiktok --grep cdn')
    .action(async (name: string, opts: { grep?: string; json?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      const def = r && findList(r, name);
      if (!def) return;
      const parsed = parseList(existsSync(def.file) ? await readFile(def.file, 'utf8') : '');
      let re: RegExp | undefined;
      try {
        re = opts.grep !== undefined ? new RegExp(opts.grep, 'i') : undefined;
      } catch (err) {
        return fail(`--grep: ${(err as Error).message}`, EXIT.USAGE);
      }
      // As the server enforces it: the file's rules with the shared edits on top.
      const shared = await sharedEditsForCli(r);
      if (shared.note) process.stderr.write(`note: ${shared.note}\n`);
      const edits = shared.edits.lists[name] ?? { add: [], remove: [] };
      const removed = new Set(edits.remove);
      const fromFile = parsed.entries.map((e) => ({ rule: e.subdomainsOnly ? `*.${e.domain}` : e.domain, line: e.line as number | undefined, source: 'file' as 'file' | 'shared' }));
      const inFile = new Set(fromFile.map((e) => e.rule));
      const rules = [...fromFile.filter((e) => !removed.has(e.rule)), ...edits.add.filter((a) => !inFile.has(a)).map((rule) => ({ rule, line: undefined, source: 'shared' as const }))].filter(
        (e) => !re || re.test(e.rule),
      );
      if (wantsJson(cmd))
        return printJson({
          list: name,
          file: def.file,
          rules,
          removedByShared: edits.remove,
          sharedEdits: shared.from === 'none' ? undefined : { from: shared.from, version: shared.edits.version },
          problems: parsed.problems,
        });
      for (const e of rules) process.stdout.write(`${e.rule}\n`);
      if (edits.add.length + edits.remove.length > 0)
        process.stderr.write(`${name}: ${edits.add.length} rule(s) added and ${edits.remove.length} removed by shared edits (from ${shared.from}, version ${shared.edits.version})\n`);
      for (const p of parsed.problems) process.stderr.write(`${def.file}:${p.line}: ${p.message}\n`);
    });

  const edit = (verb: 'add' | 'remove') =>
    lists
      .command(verb)
      .description(verb === 'add' ? 'Add domains to a list (each blocks itself and its subdomains; *.d blocks only subdomains).' : 'Remove domains from a list.')
      .argument('<name>', 'list name')
      .argument('<domains...>', 'domains')
      .option('--reason <text>', 'why (kept in the audit log and, for add, as a comment in the list)')
      .addOption(jsonOption())
      .addHelpText(
        'after',
        verb === 'add'
          ? [
              '',
              "The curated catalog's lists come with each release and are read-only: add to a site",
              'list (see `lists new`). A name that a policy exception lets through (such as an approved',
              "team's TikTok) is refused for a list that a profile blocks, since the profile's list would",
              'beat the exception; --override-exception adds it anyway.',
              '',
              'Examples:',
              '  sluice lists add local-additions tracker.example.net --reason "seen in query log, ticket 4711"',
            ].join('\n')
          : '\nExamples:\n  sluice lists remove local-additions tracker.example.net --reason "false positive"',
      )
      .option('--redis', 'store the edit in Redis (the default when the config has a redis section): every instance applies it within a second')
      .option('--file', 'edit the list file even when the config has a redis section')
      .action(async (name: string, domains: string[], opts: { reason?: string; json?: boolean; redis?: boolean; file?: boolean }, cmd: Command) => {
        const r = await loadForCli(cmd);
        const def = r && findList(r, name);
        if (!r || !def) return;
        let rules: string[];
        try {
          rules = normaliseRules(domains);
        } catch (err) {
          if (err instanceof InvalidDomainError) return fail(`nothing changed: ${err.problems.join('; ')}`);
          throw err;
        }
        const suffixes = verb === 'add' ? suffixRefusals(rules) : [];
        const allowSuffix = cmd.opts<{ allowSuffix?: boolean }>().allowSuffix === true;
        if (suffixes.length > 0 && !allowSuffix) return fail(`nothing changed: ${suffixes.join('; ')}; give --allow-suffix if that is meant`);
        const redisCfg = r.loaded.config.redis;
        if (opts.redis && !redisCfg) return fail('--redis: the config has no redis section', EXIT.USAGE);
        if (!(redisCfg && !opts.file) && !editable(def, r, { verb, args: domains })) return;
        const override = cmd.opts<{ overrideException?: boolean }>().overrideException === true;
        // A shared edit lands on top of the other shared edits: check against what is enforced.
        const sets = redisCfg && !opts.file && verb === 'add' ? effectiveRules(r, (await sharedEditsForCli(r)).edits).sets : r.sets;
        const checked = verb === 'add' ? checkAddition(r, sets, name, rules, { override, json: wantsJson(cmd), maxNotes: 20 }) : { covered: [], overrides: [] };
        if (!checked) return;
        if (redisCfg && !opts.file) {
          const audit = { time: new Date().toISOString(), user: currentUser(), command: `lists ${verb}`, list: name, domains: rules, ...(opts.reason ? { reason: opts.reason } : {}) };
          const redis = cliRedis(r);
          try {
            let written;
            try {
              // The audit record goes into Redis in the edit's own transaction: both or neither.
              written = await withDeadline(writeEdit(redis, redisCfg.key_prefix, name, verb, rules, audit), 5000);
            } catch (err) {
              const why = describeRedisError(err, redisCfg, redis);
              // Sent, and no answer: Redis may have committed it before it went quiet.
              if (/did not answer within/.test(why)) return fail(`${why}: the edit may or may not be stored; see \`sluice lists show ${name}\``);
              return fail(`nothing changed: ${why}`);
            }
            const hb = redisCfg.heartbeat_ms;
            const seen = await withDeadline(confirmEdit(redis, redisCfg.key_prefix, hb, written), 2 * hb + 3000).catch(() => undefined);
            try {
              appendAudit(auditLogPath(r), { command: `lists ${verb} (redis, version ${written.version})`, list: name, domains: rules, ...(opts.reason ? { reason: opts.reason } : {}) });
            } catch (err) {
              process.stderr.write(`warning: the edit and its audit record are in redis, but the local audit log could not be written: ${(err as Error).message}\n`);
            }
            if (wantsJson(cmd))
              return printJson({
                list: name,
                redis: true,
                id: written.id,
                epoch: written.epoch,
                version: written.version,
                appliedBy: seen?.applied ?? [],
                waitingFor: seen?.waiting ?? [],
                [verb === 'add' ? 'added' : 'removed']: rules,
              });
            for (const d of rules) process.stdout.write(`${verb === 'add' ? '+' : '-'} ${d}  (shared edit ${written.version})\n`);
            if (!seen) process.stdout.write('stored in redis; could not read which instances applied it\n');
            else if (seen.applied.length + seen.waiting.length === 0) process.stdout.write('stored in redis; no instance is running: each applies it when it starts\n');
            else if (seen.waiting.length === 0) process.stdout.write(`applied by ${seen.applied.join(', ')}\n`);
            else process.stdout.write(`stored in redis; applied by ${seen.applied.join(', ') || 'none yet'}; not yet by ${seen.waiting.join(', ')} (see \`sluice status\`)\n`);
          } finally {
            redis.disconnect();
          }
          return;
        }
        // The marker keeps the loader from refusing the line (public-suffix.ts).
        const comment = `${suffixes.length > 0 ? `${ALLOW_SUFFIX}; ` : ''}added ${new Date().toISOString().slice(0, 10)} by ${currentUser()}${opts.reason ? `: ${opts.reason}` : ''}`;
        const record = (changed: string[], unchanged: string[]) => ({
          command: `lists ${verb}`,
          list: name,
          domains: changed,
          ...(opts.reason ? { reason: opts.reason } : {}),
          ...(unchanged.length ? { result: `${unchanged.length} unchanged` } : {}),
          ...(checked.overrides.length ? { overrides: checked.overrides } : {}),
        });
        let changed: string[];
        let unchanged: string[];
        const auditFile = auditLogPath(r);
        try {
          // The audit record is written ahead of the change (list-editor.ts): both or neither.
          if (verb === 'add') {
            ({ added: changed, present: unchanged } = await addRules(def.file, rules, comment, { file: auditFile, record: (x) => record(x.added, x.present) }));
          } else {
            ({ removed: changed, missing: unchanged } = await removeRules(def.file, rules, { file: auditFile, record: (x) => record(x.removed, x.missing) }));
          }
        } catch (err) {
          return failWrite(err);
        }
        // A removal is the admin's: the server must not refuse it as a list that lost most of its entries.
        if (verb === 'remove' && changed.length > 0) await acceptEdit(r, name);
        const covered = verb === 'add' ? { covered: checked.covered } : {};
        if (wantsJson(cmd)) return printJson({ list: name, file: def.file, [verb === 'add' ? 'added' : 'removed']: changed, unchanged, ...covered });
        for (const d of changed) process.stdout.write(`${verb === 'add' ? '+' : '-'} ${d}\n`);
        for (const d of unchanged) process.stdout.write(`  ${d} ${verb === 'add' ? 'already listed' : 'not in the list'}\n`);
      });
  edit('add')
    .option('--override-exception', 'add even when it would block what a policy exception lets through (the audit log records which)')
    .option('--allow-suffix', 'add a public suffix (com, co.uk, github.io) or reserved name (localhost) though it blocks every name under it');
  edit('remove');
  registerListAccept(lists);

  lists
    .command('import')
    .description('Add the rules of a file or http(s) URL to a list.')
    .argument('<name>', 'list name')
    .argument('<source>', 'file path or http(s) URL')
    .addOption(new Option('--format <format>', 'format of the source').choices(['auto', 'plain', 'hosts', 'adblock']).default('auto'))
    .option('--reason <text>', 'why (kept in the audit log)')
    .option('--override-exception', 'import even when it would block what a policy exception lets through (see `lists add`)')
    .addOption(jsonOption())
    .addHelpText('after', '\nExamples:\n  sluice lists import local-additions ./extra.txt\n  sluice lists import ads https://example.org/hosts.txt --format hosts')
    .action(async (name: string, source: string, opts: { format: ListFormat; reason?: string; json?: boolean; overrideException?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      const def = r && findList(r, name);
      if (!r || !def || !editable(def, r, { verb: 'import', args: [source] })) return;
      let text: string;
      try {
        text = /^https?:\/\//.test(source) ? await download(source, r) : await readFile(source, 'utf8');
      } catch (err) {
        return fail(`cannot read ${source}: ${(err as Error).message}`);
      }
      const parsed = parseList(text, opts.format);
      const rules = [...new Set(parsed.entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain)))];
      const checked = checkAddition(r, r.sets, name, rules, { override: opts.overrideException === true, json: wantsJson(cmd), maxNotes: 5 });
      if (!checked) return;
      let result;
      try {
        result = await addRules(def.file, rules, `imported from ${basename(source)}`, {
          file: auditLogPath(r),
          record: (x) => ({
            command: 'lists import',
            list: name,
            domains: x.added,
            ...(opts.reason ? { reason: opts.reason } : {}),
            result: `from ${source}: ${x.added.length} added, ${x.present.length} already listed, ${parsed.problems.length} lines skipped`,
            ...(checked.overrides.length ? { overrides: checked.overrides } : {}),
          }),
        });
      } catch (err) {
        return failWrite(err);
      }
      if (wantsJson(cmd)) {
        return printJson({ list: name, added: result.added.length, present: result.present.length, covered: checked.covered.length, problems: parsed.problems });
      }
      process.stdout.write(`${name}: ${result.added.length} added, ${result.present.length} already listed, ${parsed.problems.length} lines skipped\n`);
      for (const p of parsed.problems.slice(0, 20)) process.stderr.write(`${source}:${p.line}: ${p.message}\n`);
    });

  lists
    .command('export')
    .description('Print a list in a given format.')
    .argument('<name>', 'list name')
    .addOption(new Option('--format <format>', 'output format').choices(['plain', 'hosts', 'adblock', 'rpz']).default('plain'))
    .option('--zone <name>', 'rpz: the zone name', 'rpz.sluice.')
    .addHelpText('after', '\nExamples:\n  sluice lists export tiktok --format hosts > tiktok.hosts\n  sluice lists export tiktok --format rpz --zone rpz.example.org. > rpz.example.org.zone')
    .action(async (name: string, opts: { format: Exclude<ListFormat, 'auto'> | 'rpz'; zone: string }, cmd: Command) => {
      const r = await loadForCli(cmd);
      const def = r && findList(r, name);
      if (!def) return;
      const exists = existsSync(def.file);
      const parsed = parseList(exists ? await readFile(def.file, 'utf8') : '');
      const rules = [...new Set(parsed.entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain)))];
      const header = [`sluice list ${name}, exported ${new Date().toISOString()}`];
      if (opts.format === 'rpz') {
        const zone = normaliseDomain(opts.zone);
        if ('error' in zone) return fail(`--zone: ${zone.error}`, EXIT.USAGE);
        // The serial follows the list: the file's modification time, which every edit (an atomic rename) moves on.
        const serial = nextSerial(exists ? statSync(def.file).mtimeMs : 0);
        process.stdout.write(zoneText({ block: rules }, { origin: zone.domain, serial }, [...header, `serial ${serial}: the list file's modification time (seconds since 1970)`]));
        return;
      }
      const out = exportRules(rules, opts.format, header);
      process.stdout.write(out.text);
      if (out.skipped.length > 0) {
        process.stderr.write(
          `note: ${out.skipped.length} subdomains-only rule(s) not exported: a hosts file cannot express "subdomains only" (${out.skipped.slice(0, 5).join(', ')}${out.skipped.length > 5 ? ', …' : ''}); use --format adblock, plain or rpz\n`,
        );
      }
    });

  lists
    .command('new')
    .description('Start a new, empty list and register it in the config.')
    .argument('<name>', 'list name (letters, digits, - and _)')
    .option('--file <path>', 'where to create it (default: site_dir, `lists/` beside the config)')
    .option('--description <text>', 'what the list is for')
    .addHelpText('after', '\nExamples:\n  sluice lists new local-additions --description "domains found by our own review"')
    .action(async (name: string, opts: { file?: string; description?: string }, cmd: Command) => {
      const cfgFile = configPath(cmd);
      if (!/^[a-z0-9][a-z0-9_-]*$/i.test(name)) return fail(`"${name}" is not a list name (letters, digits, "-" and "_")`, EXIT.USAGE);
      const r = await loadForCli(cmd);
      if (!r) return;
      if (r.lists.resolved.lists.has(name)) return fail(`a list named "${name}" exists already`);
      const file = resolve(opts.file ?? join(siteDir(r.loaded.config, r.loaded.baseDir), `${name}.txt`));
      const release = releaseDir(r.lists.resolved);
      if (release !== undefined && isInside(file, release)) {
        const site = relative(process.cwd(), siteDir(r.loaded.config, r.loaded.baseDir)) || '.';
        return fail(`nothing changed: ${relative(process.cwd(), file)} is in the curated catalog's directory, which an upgrade replaces; create site lists in site_dir (${site})`, EXIT.USAGE);
      }
      // Created exclusively (O_EXCL): of two admins creating the same list at once, one gets it.
      try {
        await mkdir(dirname(file), { recursive: true });
        const header = [
          `# ${name}: ${opts.description ?? 'local list'}`,
          `# Created ${new Date().toISOString().slice(0, 10)} by ${currentUser()} with \`sluice lists new\`.`,
          '# One domain per line; a domain blocks itself and every subdomain.',
        ];
        await createFile(file, header.join('\n') + '\n');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return fail(`${file} exists already`);
        return failWrite(err);
      }
      let added: boolean;
      try {
        // Read again under the lock: the config may have changed since it was loaded above.
        added = await editFile(
          cfgFile,
          (text) => {
            const current = (parseDocument(text).toJS() as { lists?: Record<string, unknown> } | null)?.lists;
            if (current && Object.hasOwn(current, name)) return { text, changed: false, result: false };
            const entry: Record<string, string> = { file: relative(dirname(cfgFile), file) };
            if (opts.description) entry.description = opts.description;
            const next = addListToConfigText(text, name, entry);
            parseConfig(next, cfgFile); // the edit must leave a valid config
            return { text: next, changed: true, result: true };
          },
          {
            file: auditLogPath(r),
            record: (ok) => (ok ? { command: 'lists new', list: name, domains: [], ...(opts.description ? { reason: opts.description } : {}) } : undefined),
          },
        );
      } catch (err) {
        rmSync(file, { force: true });
        if (err instanceof ConfigError) return fail(`nothing changed: the config would not be valid:\n${err.message}`);
        return failWrite(err);
      }
      if (!added) {
        rmSync(file, { force: true });
        return fail(`a list named "${name}" exists already`);
      }
      process.stdout.write(`created ${relative(process.cwd(), file)} and added list "${name}" to ${cfgFile}; add it to a profile's block lists to enforce it\n`);
    });

  lists
    .command('update')
    .description('Download url lists now and print what each update adds and removes.')
    .argument('[name]', 'only this list')
    .option('--dry-run', 'show what would change without applying it')
    .option('--force', 'accept a new copy even when it loses more than half of the entries')
    .addOption(jsonOption())
    .addHelpText('after', '\nExamples:\n  sluice lists update\n  sluice lists update ads --dry-run')
    .action(async (name: string | undefined, opts: { dryRun?: boolean; force?: boolean; json?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      if (!r) return;
      const remote = [...r.lists.resolved.lists.values()].filter((d) => d.url !== undefined && (name === undefined || d.name === name));
      if (name !== undefined && remote.length === 0) return fail(`no url list named "${name}"`);
      const c = r.loaded.config;
      const results = [];
      for (const def of remote) {
        const res = await fetchRemoteList(
          { name: def.name, url: def.url!, cacheDir: dirname(remoteCopyPath(c, r.loaded.baseDir, def.name)), timeoutMs: c.remote_lists.timeout_ms, maxBytes: c.remote_lists.max_bytes },
          { force: opts.force === true, dryRun: opts.dryRun === true },
        );
        results.push(res);
        if (!opts.dryRun && res.status === 'updated') {
          appendAudit(auditLogPath(r), { command: 'lists update', list: def.name, domains: [], result: res.message });
        }
      }
      if (wantsJson(cmd)) return printJson(results.map(({ name: n, status, message, added, removed, problems }) => ({ name: n, status, message, added, removed, problems: problems.length })));
      if (remote.length === 0) process.stdout.write(`no url lists in ${configPath(cmd)}\n`);
      for (const res of results) {
        process.stdout.write(`${opts.dryRun ? '[dry run] ' : ''}${res.message}\n`);
        for (const d of res.added.slice(0, 50)) process.stdout.write(`  + ${d}\n`);
        for (const d of res.removed.slice(0, 50)) process.stdout.write(`  - ${d}\n`);
        if (res.added.length > 50 || res.removed.length > 50) process.stdout.write(`  … (${res.added.length} added, ${res.removed.length} removed in all)\n`);
      }
      if (results.some((x) => x.status === 'failed' || x.status === 'rejected')) process.exitCode = EXIT.FAILED;
    });
}

/**
 * The config text with `name: { …entry }` added to its `lists` section. Every other byte stays as
 * the admin wrote it: re-serialising the whole document would re-wrap long flow sequences and
 * drop the alignment of trailing comments.
 */
export function addListToConfigText(text: string, name: string, entry: Record<string, string>): string {
  const doc = parseDocument(text);
  const lists = doc.get('lists', true);
  if (isMap(lists) && !lists.flow && lists.items.length > 0) {
    const first = lists.items[0]!;
    const last = lists.items[lists.items.length - 1]!;
    const keyStart = isNode(first.key) ? first.key.range?.[0] : undefined;
    const valueEnd = isNode(last.value) ? last.value.range?.[1] : isNode(last.key) ? last.key.range?.[1] : undefined;
    if (keyStart !== undefined && valueEnd !== undefined) {
      const indent = keyStart - (text.lastIndexOf('\n', keyStart - 1) + 1);
      const eol = text.indexOf('\n', valueEnd);
      const at = eol < 0 ? text.length : eol + 1;
      const line = `${' '.repeat(indent)}${stringify(name).trimEnd()}: ${stringify(entry, { collectionStyle: 'flow', lineWidth: 0 }).trimEnd()}\n`;
      return text.slice(0, at) + (eol < 0 ? '\n' : '') + line + text.slice(at);
    }
  }
  doc.setIn(['lists', name], doc.createNode(entry, { flow: true }));
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

async function download(url: string, r: LoadedRules): Promise<string> {
  const c = r.loaded.config.remote_lists;
  const res = await fetch(url, { signal: AbortSignal.timeout(c.timeout_ms) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const text = await res.text();
  if (text.length > c.max_bytes) throw new Error(`larger than remote_lists.max_bytes (${c.max_bytes})`);
  return text;
}
