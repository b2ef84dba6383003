// `sluice log tail` and `sluice log query`: the query log, read from the running server's admin
// API or, when it is not running, from the JSONL files (see querylog/log-source.ts).
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, readConfigFile, type LoadedConfig } from '../config/load.js';
import { renderCsv, type CsvCell } from '../querylog/csv.js';
import type { QueryEvent } from '../querylog/event.js';
import type { Covers } from '../querylog/store/store.js';
import { parseFilter, type QueryFilter } from '../querylog/filter.js';
import { LogSourceError, openLogSource, StoreLogSource, type LogSource, type SourceKind } from '../querylog/log-source.js';
import { configPath } from './config-file.js';
import { isIP } from 'node:net';
import { ClientNames, NO_CLIENT_NAMES } from '../match/client-names.js';
import { readClientNames } from '../config/client-names.js';
import { ReverseNames } from '../upstream/reverse-names.js';
import { closeAfterCommand, EXIT, fail, printJson, renderTable } from './output.js';

export type Format = 'table' | 'json' | 'csv';

export interface SourceOptions {
  source?: SourceKind;
}

export interface FilterOptions {
  since?: string;
  until?: string;
  network?: string;
  client?: string;
  domain?: string;
  decision?: string;
  policy?: string;
  list?: string;
  blocked?: boolean;
}

export const sourceOption = () =>
  new Option(
    '--source <source>',
    "read from the query-log store, the running server's admin API, or the JSONL files (default: the store when query_log.store is configured, else the API when the server answers, else the files)",
  ).choices(['store', 'api', 'files']);

export const formatOptions = (cmd: Command): Command =>
  cmd.addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table')).addOption(new Option('--json', 'same as --format json'));

export function formatOf(opts: { format?: string; json?: boolean }): Format {
  return opts.json ? 'json' : ((opts.format ?? 'table') as Format);
}

/** The config alone (no lists): reading the log needs only where the server and files are. */
export function loadConfigForLog(cmd: Command): LoadedConfig | undefined {
  const file = configPath(cmd);
  try {
    return readConfigFile(file);
  } catch (err) {
    const lines = err instanceof ConfigError ? err.message.split('\n') : [(err as Error).message];
    fail(`cannot load ${file}:\n${lines.map((l) => `  ${l}`).join('\n')}`, EXIT.USAGE);
    return undefined;
  }
}

/** Open the source, telling stderr when the API was wanted but the files are read. */
export async function openForCli(loaded: LoadedConfig, opts: SourceOptions): Promise<LogSource | undefined> {
  try {
    const source = await openLogSource(loaded, { ...(opts.source ? { source: opts.source } : {}), warn: (m) => process.stderr.write(`sluice: ${m}\n`) });
    // A store holds connections (PostgreSQL's pool keeps idle ones for 30 s): closed when the
    // command is done, so the process ends with it.
    if (source instanceof StoreLogSource) closeAfterCommand(() => source.close());
    return source;
  } catch (err) {
    if (err instanceof LogSourceError) return void fail(err.message);
    throw err;
  }
}

export interface OpenedLog {
  filter: QueryFilter;
  loaded: LoadedConfig;
  source: LogSource;
  /** Names of client addresses (`client_names`), shown beside them. */
  names: ClientNames;
  /** With `client_names.reverse`: look these clients up before they are shown (bounded wait). */
  lookUp(clients: Iterable<string>): Promise<void>;
}

/** `client_names` of the config; a hosts file that cannot be read is said on stderr, not fatal. */
function namesFor(loaded: LoadedConfig): { names: ClientNames; lookUp: OpenedLog['lookUp'] } {
  const r = readClientNames(loaded);
  for (const e of r.errors) process.stderr.write(`sluice: warning: ${e}\n`);
  if (!loaded.config.client_names.reverse) return { names: r.names, lookUp: () => Promise.resolve() };
  const reverse = new ReverseNames(loaded.config, loaded.baseDir);
  const names = r.names.withFallback((a) => reverse.name(a));
  return { names, lookUp: (clients) => reverse.resolve([...clients].filter((c) => isIP(c) !== 0 && r.names.name(c) === undefined)) };
}

/** A client cell: the address (or token) and, when known, its name. */
export function clientCell(client: string, names: ClientNames): string {
  const n = names.name(client);
  return n === undefined ? client : `${client} (${n})`;
}

/**
 * What every `log` and `report` command starts with: the filter from its options, the config and
 * the log source. Undefined (with the problem printed) when any of them fails.
 */
export async function openLog(cmd: Command, filterOptions: FilterOptions, sourceOptions: SourceOptions): Promise<OpenedLog | undefined> {
  const loaded = loadConfigForLog(cmd);
  if (!loaded) return undefined;
  const { names, lookUp } = namesFor(loaded);
  // --client takes a name too, when it names exactly one address.
  const given = filterOptions.client;
  let options = filterOptions;
  if (given !== undefined && isIP(given) === 0 && !given.startsWith('p:')) {
    const addresses = names.addresses(given);
    if (addresses.length > 1) return void fail(`--client: "${given}" names ${addresses.length} addresses (${addresses.join(', ')}): give one`, EXIT.USAGE);
    if (addresses.length === 1) options = { ...filterOptions, client: addresses[0] };
  }
  const filter = filterFromOptions(options);
  if (!filter) return undefined;
  const source = await openForCli(loaded, sourceOptions);
  return source && { filter, loaded, source, names, lookUp };
}

/** Filters from the command line; undefined (and a usage error printed) when one is malformed. */
export function filterFromOptions(o: FilterOptions): QueryFilter | undefined {
  try {
    const decision = o.blocked ? 'blocked' : o.decision;
    return parseFilter({ since: o.since, until: o.until, network: o.network, client: o.client, domain: o.domain, decision, policy: o.policy, list: o.list });
  } catch (err) {
    fail((err as Error).message, EXIT.USAGE);
    return undefined;
  }
}

/** Run a source read; a LogSourceError (server gone, token refused) is printed, not thrown. */
export async function reading<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof LogSourceError) return void fail(err.message);
    throw err;
  }
}

/**
 * What the answer lacks of the asked range, never a silent cut: a line per gap, on stdout under a
 * table, on stderr for CSV (which must stay one table).
 */
export function printCovers(covers: Covers, format: Format): void {
  if (format === 'json' || covers.complete) return;
  const text = covers.notes.map((n) => `note: ${n}\n`).join('');
  if (format === 'csv') process.stderr.write(text.replaceAll('note: ', 'sluice: note: '));
  else process.stdout.write(text);
}

export const isoTime = (t: number): string => new Date(t).toISOString();
const shortTime = (t: number): string => isoTime(t).replace('T', ' ').slice(0, 19);

const CSV_FIELDS = [
  'time',
  'instance',
  'network',
  'client',
  'type',
  'name',
  'decision',
  'wouldBlock',
  'exception',
  'profile',
  'policy',
  'list',
  'rule',
  'cache',
  'upstream',
  'rcode',
  'answers',
  'durationMs',
  'transport',
] as const;

/**
 * A CSV table whose `client` column is followed by `clientName` when names are configured (else
 * the columns stay as they were, for the spreadsheets and scripts that read them).
 */
export function csvWithClientNames(headers: string[], rows: CsvCell[][], names: ClientNames): string {
  const at = headers.indexOf('client');
  if (!names.configured || at < 0) return renderCsv(headers, rows);
  const insert = <T>(cells: T[], cell: T): T[] => [...cells.slice(0, at + 1), cell, ...cells.slice(at + 1)];
  return renderCsv(
    insert(headers, 'clientName'),
    rows.map((r) => insert(r, names.name(String(r[at])) ?? null)),
  );
}

/** The CSV of events (with a `clientName` column when names are configured). */
export function eventsCsv(events: QueryEvent[], header = true, names: ClientNames = NO_CLIENT_NAMES): string {
  const text = csvWithClientNames(
    [...CSV_FIELDS],
    events.map((e) => CSV_FIELDS.map((k) => (k === 'time' ? isoTime(e.time) : e[k]))),
    names,
  );
  return header ? text : text.slice(text.indexOf('\r\n') + 2);
}

function why(e: QueryEvent): string {
  const rule = e.rule !== null ? ` (rule ${e.rule})` : '';
  if (e.decision === 'blocked') return `${e.policy !== null ? `policy ${e.policy}, ` : ''}list ${e.list ?? '?'}${rule}`;
  if (e.wouldBlock && e.exception) return `blocking disabled, would block: ${e.policy !== null ? `policy ${e.policy}, ` : ''}list ${e.list ?? '?'}${rule}`;
  if (e.wouldBlock) return `dry-run policy ${e.policy ?? '?'} would block: list ${e.list ?? '?'}${rule}`;
  if (e.exception && e.list !== null) return `allow entry, over: ${e.policy !== null ? `policy ${e.policy}, ` : ''}list ${e.list}${rule}`;
  if (e.exception) return `exception to policy ${e.policy ?? '?'}`;
  if (e.decision === 'refused') return e.network === null ? 'in no network' : 'refused';
  if (e.cache) return 'cache';
  return e.upstream !== null ? `upstream ${e.upstream}` : '-';
}

const TABLE_HEADERS = ['TIME (UTC)', 'NETWORK', 'CLIENT', 'TYPE', 'DECISION', 'NAME', 'WHY'];

function tableRow(e: QueryEvent, names: ClientNames): string[] {
  return [shortTime(e.time), e.network ?? '-', clientCell(e.client, names), e.type, e.wouldBlock ? (e.exception ? 'disabled' : 'would-block') : e.decision, e.name, why(e)];
}

/**
 * Rows padded to at least `widths` (updated in place), so the lines that `--follow` prints later
 * stay under the header's columns as long as no cell is wider than the ones seen.
 */
function renderRows(rows: string[][], widths: number[]): string {
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map(
      (r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join('  ')
          .trimEnd() + '\n',
    )
    .join('');
}

const startWidths = (): number[] => [19, 8, 15, 5, 11, 30, 0];

interface LogOptions extends FilterOptions, SourceOptions {
  format?: string;
  json?: boolean;
}

function addFilterOptions(cmd: Command): Command {
  return cmd
    .option('--network <name>', 'only this network')
    .option('--client <address>', 'only this client: an address, or a pseudonym token (p:…) on a network that pseudonymises')
    .option('--domain <domain>', 'only this name and its subdomains')
    .addOption(new Option('--decision <decision>', 'only this decision').choices(['allowed', 'blocked', 'refused', 'error', 'malformed', 'would-block']))
    .option('--blocked', 'only blocked queries (same as --decision blocked)')
    .option('--policy <id>', 'only queries blocked (or, dry-run, that would be blocked) by this policy')
    .option('--list <name>', 'only queries matched by this list')
    .addOption(sourceOption());
}

export function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name}: "${v}" is not a whole number`);
    return n;
  };
}

export function registerLog(program: Command): Command {
  const log = program.command('log').description("Read the query log: its store (SQLite or PostgreSQL), else the running server's admin API or the JSONL files.");

  const tail = log
    .command('tail')
    .description('The newest queries, oldest first; --follow keeps printing new ones every second until Ctrl-C.')
    .option('-n, --lines <n>', 'how many of the newest queries', positiveInt('--lines'), 20)
    .option('-f, --follow', 'keep printing new queries (polls every second; Ctrl-C ends)');
  addFilterOptions(tail);
  formatOptions(tail)
    .addHelpText(
      'after',
      '\nWith --format json each query is one JSON object per line (JSON Lines), so it works with --follow.\n\n' +
        'Examples:\n  sluice log tail\n  sluice log tail --follow --blocked\n  sluice log tail -n 50 --network guest --domain tiktok.com\n  sluice log tail --client 10.1.2.3 --format json',
    )
    .action(async (opts: LogOptions & { lines: number; follow?: boolean }, cmd: Command) => {
      const opened = await openLog(cmd, opts, opts);
      if (!opened) return;
      const { filter, source, names } = opened;
      const page = await reading(() => source.query(filter, opts.lines));
      if (!page) return;
      await opened.lookUp(page.events.map((e) => e.client));
      const events = page.events.reverse();
      const format = formatOf(opts);
      const widths = startWidths();
      const print = (batch: QueryEvent[], first: boolean): void => {
        const row = (e: QueryEvent) => tableRow(e, names);
        if (format === 'json')
          process.stdout.write(
            names
              .label(batch)
              .map((e) => JSON.stringify(e) + '\n')
              .join(''),
          );
        else if (format === 'csv') process.stdout.write(eventsCsv(batch, first, names));
        else process.stdout.write(renderRows(first ? [TABLE_HEADERS.slice(), ...batch.map(row)] : batch.map(row), widths));
      };
      print(events, true);
      if (!opts.follow) return;
      const next = source.follower(filter, events);
      await next();
      await new Promise<void>((resolve) => {
        let busy = false;
        const timer = setInterval(() => {
          if (busy) return;
          busy = true;
          next()
            .then((batch) => print(batch, false))
            .catch((err: Error) => {
              // the server restarting is no reason to stop following: say so once per failure
              process.stderr.write(`sluice: ${err.message}\n`);
            })
            .finally(() => (busy = false));
        }, 1000);
        const stop = () => {
          clearInterval(timer);
          resolve();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });

  const query = log
    .command('query')
    .description('Queries in a time range that match the filters, newest first.')
    .option('--since <time>', 'from this time: ISO date or date-time, or a duration ago (15m, 1h, 7d)')
    .option('--until <time>', 'before this time (same forms)')
    .option('--limit <n>', 'at most this many queries', positiveInt('--limit'), 100)
    .option('--offset <n>', 'skip this many matching queries first (paging)', positiveInt('--offset'), 0);
  addFilterOptions(query);
  formatOptions(query)
    .addHelpText(
      'after',
      '\nTimes without a zone are UTC. The table and CSV show UTC times; JSON has epoch milliseconds\n' +
        '(`time`) and the number of matches in all (`total`).\n\n' +
        'Examples:\n  sluice log query --since 1h --blocked\n  sluice log query --since 2026-11-01 --until 2026-11-02 --network internal --format csv > nov1.csv\n' +
        '  sluice log query --since 7d --policy app-ban --domain tiktok.com --limit 1000 --json\n  sluice log query --since 15m --source files',
    )
    .action(async (opts: LogOptions & { limit: number; offset: number }, cmd: Command) => {
      const opened = await openLog(cmd, opts, opts);
      if (!opened) return;
      const { filter, source, names } = opened;
      const read = await reading(() => Promise.all([source.query(filter, opts.limit, opts.offset), source.covers(filter)]));
      if (!read) return;
      const [page, covers] = read;
      await opened.lookUp(page.events.map((e) => e.client));
      const format = formatOf(opts);
      if (format === 'json') return printJson({ source: source.kind, total: page.total, offset: opts.offset, covers, events: names.label(page.events) });
      printCovers(covers, format);
      if (format === 'csv') return void process.stdout.write(eventsCsv(page.events, true, names));
      process.stdout.write(
        renderTable(
          TABLE_HEADERS,
          page.events.map((e) => tableRow(e, names)),
        ),
      );
      if (page.total > page.events.length) {
        process.stdout.write(`(${page.events.length} of ${page.total} matching queries; use --limit and --offset for more)\n`);
      }
    });
  return log;
}
