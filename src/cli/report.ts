// `sluice report devices` and `sluice report bypass`: compliance reports over the query log, for
// the admin who has to show which devices still try to use a banned app after a removal deadline.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { LoadedConfig } from '../config/load.js';
import { resolveLists } from '../lists/catalog.js';
import { loadDomainsFromBytes } from '../lists/list-bytes.js';
import type { DomainSet } from '../match/domain-set.js';
import { renderCsv } from '../querylog/csv.js';
import { BYPASS_LISTS } from '../querylog/reports.js';
import { clientCell, csvWithClientNames, formatOf, formatOptions, isoTime, openLog, printCovers, reading, sourceOption, type FilterOptions, type SourceOptions } from './log.js';
import { printJson, printTable } from './output.js';

interface ReportOptions extends FilterOptions, SourceOptions {
  format?: string;
  json?: boolean;
}

/** List name → app name from the catalog ("tiktok" → "TikTok"), where the catalog knows one. */
function appNames(loaded: LoadedConfig): Map<string, string> {
  const apps = new Map<string, string>();
  try {
    for (const [name, def] of resolveLists(loaded.config, loaded.baseDir).lists) if (def.meta?.app) apps.set(name, def.meta.app);
  } catch {
    // no catalog, or an unreadable one: the report shows list names only
  }
  return apps;
}

/**
 * Classifies names on the bypass lists for queries nothing blocked (an open network that logs
 * everything). Lists that cannot be read are skipped: the events' own `list` still counts.
 */
function bypassClassifier(loaded: LoadedConfig): (name: string) => string | undefined {
  const sets: [string, DomainSet][] = [];
  try {
    const lists = resolveLists(loaded.config, loaded.baseDir).lists;
    for (const name of BYPASS_LISTS) {
      const def = lists.get(name);
      if (!def) continue;
      try {
        sets.push([name, loadDomainsFromBytes(readFileSync(def.file)).set]);
      } catch {
        // not downloaded yet, or gone
      }
    }
  } catch {
    // no catalog
  }
  return (name) => sets.find(([, set]) => set.match(name) !== undefined)?.[0];
}

const shortTime = (t: number): string => isoTime(t).replace('T', ' ').slice(0, 16);
const some = (names: string[], n = 3): string => (names.length > n ? `${names.slice(0, n).join(', ')} +${names.length - n}` : names.join(', '));

function common(cmd: Command): Command {
  cmd
    .option('--network <name>', 'only this network')
    .option('--since <time>', 'from this time: ISO date or date-time, or a duration ago (15m, 1h, 7d)')
    .option('--until <time>', 'before this time (same forms)')
    .addOption(sourceOption());
  return formatOptions(cmd);
}

export function registerReport(program: Command): void {
  const report = program.command('report').description('Compliance reports over the query log.');

  const devices = report
    .command('devices')
    .description('Every client that sent queries blocked by a policy, per app (list): count, first and last seen.')
    .option('--policy <id>', 'only queries blocked by this policy (default: every policy)');
  common(devices)
    .addHelpText(
      'after',
      '\nOnly queries a policy actually blocked count: not dry-run "would block" events, not names a profile\n' +
        'blocks without a policy, not clients an exception lets through. On a network that pseudonymises\n' +
        "clients the CLIENT column is the device's token (p:…), the same token in every report.\n\n" +
        'Examples:\n  sluice report devices --policy app-ban --since 2026-11-01\n  sluice report devices --policy app-ban --network internal --since 7d --format csv > devices.csv\n' +
        '  sluice report devices --json --source files',
    )
    .action(async (opts: ReportOptions & { policy?: string }, cmd: Command) => {
      const opened = await openLog(cmd, { since: opts.since, until: opts.until, network: opts.network, policy: opts.policy, decision: 'blocked' }, opts);
      if (!opened) return;
      const { filter, loaded, source, names } = opened;
      const read = await reading(() => Promise.all([source.devices(filter), source.covers(filter)]));
      if (!read) return;
      const [found, covers] = read;
      await opened.lookUp(found.map((r) => r.client));
      const apps = appNames(loaded);
      const rows = names.label(found.map((r) => ({ ...r, app: apps.get(r.list) ?? null })));
      const format = formatOf(opts);
      if (format === 'json') return printJson({ covers, rows: rows.map((r) => ({ ...r, firstSeen: isoTime(r.firstSeen), lastSeen: isoTime(r.lastSeen) })) });
      printCovers(covers, format);
      if (format === 'csv') {
        return void process.stdout.write(
          csvWithClientNames(
            ['network', 'client', 'policy', 'list', 'app', 'count', 'firstSeen', 'lastSeen', 'names'],
            rows.map((r) => [r.network, r.client, r.policy, r.list, r.app, r.count, isoTime(r.firstSeen), isoTime(r.lastSeen), r.names.join(' ')]),
            names,
          ),
        );
      }
      if (rows.length === 0) {
        process.stdout.write(`no blocked queries${opts.policy ? ` of policy ${opts.policy}` : ' of any policy'} in the ${source.description}\n`);
        return;
      }
      printTable(
        ['NETWORK', 'CLIENT', 'POLICY', 'APP', 'COUNT', 'FIRST SEEN (UTC)', 'LAST SEEN (UTC)', 'NAMES'],
        rows.map((r) => [r.network, clientCell(r.client, names), r.policy, r.app ? `${r.app} (${r.list})` : r.list, r.count, shortTime(r.firstSeen), shortTime(r.lastSeen), some(r.names)]),
      );
      const clients = new Set(rows.map((r) => `${r.network}\0${r.client}`)).size;
      process.stdout.write(`\n${clients} device${clients === 1 ? '' : 's'}, ${rows.reduce((n, r) => n + r.count, 0)} blocked queries\n`);
    });

  const bypass = report
    .command('bypass')
    .description(`Clients that asked for resolver-bypass endpoints or VPN apps (lists ${BYPASS_LISTS.join(', ')}), per network: count, first and last seen, which endpoints.`);
  common(bypass)
    .addOption(new Option('--list <name...>', 'look for these lists instead').default([...BYPASS_LISTS]))
    .addHelpText(
      'after',
      '\nA query counts whether a profile or a policy blocked it or, on a network that logs every query,\n' +
        'nothing did (the BLOCKED column tells). A device that asks for these names may have DNS-over-HTTPS\n' +
        'or a VPN set up to get around sluice.\n\n' +
        'Examples:\n  sluice report bypass --since 7d\n  sluice report bypass --network internal --since 2026-11-01 --format csv\n  sluice report bypass --json',
    )
    .action(async (opts: ReportOptions & { list: string[] }, cmd: Command) => {
      const opened = await openLog(cmd, { since: opts.since, until: opts.until, network: opts.network }, opts);
      if (!opened) return;
      const { filter, loaded, source, names } = opened;
      const read = await reading(() => Promise.all([source.bypass({ ...filter, lists: opts.list, classify: bypassClassifier(loaded) }), source.covers(filter)]));
      if (!read) return;
      await opened.lookUp(read[0].map((r) => r.client));
      const rows = names.label(read[0]);
      const covers = read[1];
      const format = formatOf(opts);
      if (format === 'json') return printJson({ covers, rows: rows.map((r) => ({ ...r, firstSeen: isoTime(r.firstSeen), lastSeen: isoTime(r.lastSeen) })) });
      printCovers(covers, format);
      if (format === 'csv') {
        return void process.stdout.write(
          csvWithClientNames(
            ['network', 'client', 'list', 'count', 'blocked', 'firstSeen', 'lastSeen', 'endpoints'],
            rows.map((r) => [r.network, r.client, r.list, r.count, r.blocked, isoTime(r.firstSeen), isoTime(r.lastSeen), r.endpoints.join(' ')]),
            names,
          ),
        );
      }
      if (rows.length === 0) {
        process.stdout.write(`no queries for lists ${opts.list.join(', ')} in the ${source.description}\n`);
        return;
      }
      printTable(
        ['NETWORK', 'CLIENT', 'LIST', 'COUNT', 'BLOCKED', 'FIRST SEEN (UTC)', 'LAST SEEN (UTC)', 'ENDPOINTS'],
        rows.map((r) => [r.network, clientCell(r.client, names), r.list, r.count, r.blocked, shortTime(r.firstSeen), shortTime(r.lastSeen), some(r.endpoints)]),
      );
    });

  const trend = report
    .command('trend')
    .description('Blocked queries per week (or day, month), network, policy and app, from the daily rollup: the six-month view of a ban.')
    .option('--policy <id>', 'only this policy')
    .option('--list <name>', 'only this list (app)')
    .addOption(new Option('--by <period>', 'period of each row').choices(['day', 'week', 'month']).default('week'));
  common(trend)
    .addHelpText(
      'after',
      "\nFrom the store's daily rollup (kept for query_log.store.rollup_retention_days, 400 by default), so a\n" +
        'trend over the whole ban needs no raw events. Weeks start on Monday (ISO 8601); days are UTC.\n\n' +
        'Examples:\n  sluice report trend --policy app-ban --by week\n  sluice report trend --policy app-ban --network internal --since 2026-06-01 --by month --format csv',
    )
    .action(async (opts: ReportOptions & { policy?: string; list?: string; by: 'day' | 'week' | 'month' }, cmd: Command) => {
      const opened = await openLog(cmd, { since: opts.since, until: opts.until, network: opts.network, policy: opts.policy, list: opts.list }, opts);
      if (!opened) return;
      const { filter, loaded, source } = opened;
      const read = await reading(() => Promise.all([source.trend({ ...filter, by: opts.by }), source.covers(filter)]));
      if (!read) return;
      const [rows, covers] = read;
      const apps = appNames(loaded);
      const format = formatOf(opts);
      if (format === 'json') return printJson({ covers, rows: rows.map((r) => ({ ...r, app: apps.get(r.list) ?? null })) });
      if (format === 'csv') {
        printCovers(covers, format);
        return void process.stdout.write(
          renderCsv(
            ['period', 'network', 'policy', 'list', 'app', 'blocked', 'clients'],
            rows.map((r) => [r.period, r.network, r.policy, r.list, apps.get(r.list) ?? null, r.blocked, r.clients]),
          ),
        );
      }
      if (rows.length === 0) process.stdout.write(`no blocked queries${opts.policy ? ` of policy ${opts.policy}` : ''} in the ${source.description}\n`);
      else
        printTable(
          [opts.by.toUpperCase(), 'NETWORK', 'POLICY', 'APP', 'BLOCKED', 'DEVICES'],
          rows.map((r) => [r.period, r.network, r.policy || '-', apps.get(r.list) ? `${apps.get(r.list)} (${r.list})` : r.list, r.blocked, r.clients]),
        );
      printCovers(covers, format);
    });
}
