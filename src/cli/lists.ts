// `sluice lists …`: inspect and edit blocklists.
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { Command, Option } from 'commander';
import { isMap, isNode, parseDocument, stringify } from 'yaml';
import { readConfigFile } from '../config/load.js';
import { remoteCopyPath, type ListDefinition } from '../lists/catalog.js';
import { parseList, type ListFormat } from '../lists/formats.js';
import { loadDomainsFromBytes } from '../lists/list-bytes.js';
import {
  addRules,
  appendAudit,
  atomicWrite,
  currentUser,
  exportRules,
  InvalidDomainError,
  normaliseRules,
  removeRules,
  withLock,
} from '../lists/list-editor.js';
import { fetchRemoteList, readCachedMeta } from '../lists/remote.js';
import type { LoadedRules } from '../server/load-rules.js';
import { auditLogPath, configPath, loadForCli } from './config-file.js';
import { createRedis, withDeadline } from '../shared/redis-connection.js';
import { writeEdit } from '../shared/edit-store.js';
import { EXIT, fail, printJson, printTable } from './output.js';

const jsonOption = () => new Option('--json', 'machine-readable output');

// Commander hands `lists show NAME --json` to the parent `lists` command's --json (program options
// are not positional, so that --config works after a subcommand); ask the whole chain.
const wantsJson = (cmd: Command): boolean => cmd.optsWithGlobals<{ json?: boolean }>().json === true;

function findList(r: LoadedRules, name: string): ListDefinition | undefined {
  const def = r.lists.resolved.lists.get(name);
  if (!def) fail(`no list named "${name}" (see \`sluice lists\`)`);
  return def;
}

function editable(def: ListDefinition): boolean {
  if (def.url !== undefined) {
    fail(`list "${def.name}" is downloaded from ${def.url}; edit a local list instead (e.g. \`sluice lists new local-additions\`)`);
    return false;
  }
  return true;
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
      const rules = parsed.entries
        .map((e) => ({ rule: e.subdomainsOnly ? `*.${e.domain}` : e.domain, line: e.line }))
        .filter((e) => !re || re.test(e.rule));
      if (wantsJson(cmd)) return printJson({ list: name, file: def.file, rules, problems: parsed.problems });
      for (const e of rules) process.stdout.write(`${e.rule}\n`);
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
          ? '\nExamples:\n  sluice lists add tiktok tiktokv.eu --reason "seen in query log, ticket 4711"'
          : '\nExamples:\n  sluice lists remove tiktok tiktokv.eu --reason "false positive"',
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
        const redisCfg = r.loaded.config.redis;
        if (opts.redis && !redisCfg) return fail('--redis: the config has no redis section', EXIT.USAGE);
        if (redisCfg && !opts.file) {
          const audit = { time: new Date().toISOString(), user: currentUser(), command: `lists ${verb}`, list: name, domains: rules, ...(opts.reason ? { reason: opts.reason } : {}) };
          const redis = createRedis(redisCfg, { offlineQueue: true });
          redis.on('error', () => {});
          try {
            const { version } = await withDeadline(writeEdit(redis, redisCfg.key_prefix, name, verb, rules, audit), 5000);
            appendAudit(auditLogPath(r), { command: `lists ${verb} (redis, version ${version})`, list: name, domains: rules, ...(opts.reason ? { reason: opts.reason } : {}) });
            if (wantsJson(cmd)) return printJson({ list: name, redis: true, version, [verb === 'add' ? 'added' : 'removed']: rules });
            for (const d of rules) process.stdout.write(`${verb === 'add' ? '+' : '-'} ${d}  (shared edit ${version})\n`);
          } catch (err) {
            return fail(`nothing changed: ${(err as Error).message}`);
          } finally {
            redis.disconnect();
          }
          return;
        }
        if (!editable(def)) return;
        const comment = `added ${new Date().toISOString().slice(0, 10)} by ${currentUser()}${opts.reason ? `: ${opts.reason}` : ''}`;
        const result = verb === 'add' ? await addRules(def.file, rules, comment) : await removeRules(def.file, rules);
        const changed = 'added' in result ? result.added : result.removed;
        const unchanged = 'present' in result ? result.present : result.missing;
        appendAudit(auditLogPath(r), { command: `lists ${verb}`, list: name, domains: changed, ...(opts.reason ? { reason: opts.reason } : {}), ...(unchanged.length ? { result: `${unchanged.length} unchanged` } : {}) });
        if (wantsJson(cmd)) return printJson({ list: name, file: def.file, [verb === 'add' ? 'added' : 'removed']: changed, unchanged });
        for (const d of changed) process.stdout.write(`${verb === 'add' ? '+' : '-'} ${d}\n`);
        for (const d of unchanged) process.stdout.write(`  ${d} ${verb === 'add' ? 'already listed' : 'not in the list'}\n`);
      });
  edit('add');
  edit('remove');

  lists
    .command('import')
    .description('Add the rules of a file or http(s) URL to a list.')
    .argument('<name>', 'list name')
    .argument('<source>', 'file path or http(s) URL')
    .addOption(new Option('--format <format>', 'format of the source').choices(['auto', 'plain', 'hosts', 'adblock']).default('auto'))
    .option('--reason <text>', 'why (kept in the audit log)')
    .addOption(jsonOption())
    .addHelpText('after', '\nExamples:\n  sluice lists import tiktok ./extra-tiktok.txt\n  sluice lists import ads https://example.org/hosts.txt --format hosts')
    .action(async (name: string, source: string, opts: { format: ListFormat; reason?: string; json?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      const def = r && findList(r, name);
      if (!r || !def || !editable(def)) return;
      let text: string;
      try {
        text = /^https?:\/\//.test(source) ? await download(source, r) : await readFile(source, 'utf8');
      } catch (err) {
        return fail(`cannot read ${source}: ${(err as Error).message}`);
      }
      const parsed = parseList(text, opts.format);
      const rules = [...new Set(parsed.entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain)))];
      const result = await addRules(def.file, rules, `imported from ${basename(source)}`);
      appendAudit(auditLogPath(r), { command: 'lists import', list: name, domains: result.added, ...(opts.reason ? { reason: opts.reason } : {}), result: `from ${source}: ${result.added.length} added, ${result.present.length} already listed, ${parsed.problems.length} lines skipped` });
      if (wantsJson(cmd)) return printJson({ list: name, added: result.added.length, present: result.present.length, problems: parsed.problems });
      process.stdout.write(`${name}: ${result.added.length} added, ${result.present.length} already listed, ${parsed.problems.length} lines skipped\n`);
      for (const p of parsed.problems.slice(0, 20)) process.stderr.write(`${source}:${p.line}: ${p.message}\n`);
    });

  lists
    .command('export')
    .description('Print a list in a given format.')
    .argument('<name>', 'list name')
    .addOption(new Option('--format <format>', 'output format').choices(['plain', 'hosts', 'adblock']).default('plain'))
    .addHelpText('after', '\nExamples:\n  sluice lists export tiktok --format hosts > tiktok.hosts')
    .action(async (name: string, opts: { format: Exclude<ListFormat, 'auto'> }, cmd: Command) => {
      const r = await loadForCli(cmd);
      const def = r && findList(r, name);
      if (!def) return;
      const parsed = parseList(existsSync(def.file) ? await readFile(def.file, 'utf8') : '');
      const rules = [...new Set(parsed.entries.map((e) => (e.subdomainsOnly ? `*.${e.domain}` : e.domain)))];
      process.stdout.write(exportRules(rules, opts.format, [`sluice list ${name}, exported ${new Date().toISOString()}`]));
    });

  lists
    .command('new')
    .description('Start a new, empty list and register it in the config.')
    .argument('<name>', 'list name (letters, digits, - and _)')
    .option('--file <path>', 'where to create it (default: next to the other list files)')
    .option('--description <text>', 'what the list is for')
    .addHelpText('after', '\nExamples:\n  sluice lists new local-additions --description "domains found by our own review"')
    .action(async (name: string, opts: { file?: string; description?: string }, cmd: Command) => {
      const cfgFile = configPath(cmd);
      if (!/^[a-z0-9][a-z0-9_-]*$/i.test(name)) return fail(`"${name}" is not a list name (letters, digits, "-" and "_")`, EXIT.USAGE);
      const r = await loadForCli(cmd);
      if (!r) return;
      if (r.lists.resolved.lists.has(name)) return fail(`a list named "${name}" exists already`);
      const dir = opts.file ? dirname(opts.file) : defaultListDir(r);
      const file = opts.file ?? join(dir, `${name}.txt`);
      // Created exclusively (O_EXCL): of two admins creating the same list at once, one gets it.
      try {
        writeFileSync(file, `# ${name}: ${opts.description ?? 'local list'}\n# Created ${new Date().toISOString().slice(0, 10)} by ${currentUser()} with \`sluice lists new\`.\n# One domain per line; a domain blocks itself and every subdomain.\n`, { flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return fail(`${file} exists already`);
        throw err;
      }
      const added = await withLock(cfgFile, async () => {
        // Read again under the lock: the config may have changed since it was loaded above.
        const text = readFileSync(cfgFile, 'utf8');
        const current = (parseDocument(text).toJS() as { lists?: Record<string, unknown> } | null)?.lists;
        if (current && Object.hasOwn(current, name)) return false;
        const entry: Record<string, string> = { file: relative(dirname(cfgFile), file) };
        if (opts.description) entry.description = opts.description;
        await atomicWrite(cfgFile, addListToConfigText(text, name, entry));
        return true;
      });
      if (!added) {
        unlinkSync(file);
        return fail(`a list named "${name}" exists already`);
      }
      readConfigFile(cfgFile); // the edit must leave a valid config
      appendAudit(auditLogPath(r), { command: 'lists new', list: name, domains: [], ...(opts.description ? { reason: opts.description } : {}) });
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

function defaultListDir(r: LoadedRules): string {
  const local = [...r.lists.resolved.lists.values()].find((d) => d.url === undefined);
  return local ? dirname(local.file) : join(r.loaded.baseDir, 'lists');
}

async function download(url: string, r: LoadedRules): Promise<string> {
  const c = r.loaded.config.remote_lists;
  const res = await fetch(url, { signal: AbortSignal.timeout(c.timeout_ms) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const text = await res.text();
  if (text.length > c.max_bytes) throw new Error(`larger than remote_lists.max_bytes (${c.max_bytes})`);
  return text;
}
