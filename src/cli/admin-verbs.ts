// `sluice cache flush`, `sluice reload`, `sluice query`: verbs that act on the running server
// through its admin API (the admin token; the viewer and metrics tokens may not), as
// `unbound-control flush_zone`, `unbound-control reload` and `blocky query` do. The URL and the
// token come from the config, as for `sluice log`; --admin names another server.
import { Command, Option } from 'commander';
import type { FlushResult, QueryReport, ReloadResult } from '../admin/backend.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseConfig, readConfigFile, type LoadedConfig } from '../config/load.js';
import { readAdminToken } from '../config/secrets.js';
import { adminUrl } from '../querylog/log-source.js';
import { configPath } from './config-file.js';
import { EXIT, fail, printJson } from './output.js';

interface AdminTarget {
  url: string;
  token: string;
}

/** Not a verdict about the request: the server could not be asked (exit 2). */
class Unreachable extends Error {}

/**
 * The config's admin section and state_dir alone, inside a minimal valid config: a config with a
 * mistake elsewhere still names the server to ask — `sluice reload` is how an admin learns what
 * the server makes of the mistake. Throws when even these cannot be read.
 */
function adminSectionOf(file: string): LoadedConfig {
  const raw: unknown = parseYaml(readFileSync(file, 'utf8'));
  const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const minimal = {
    listeners: [{ address: '127.0.0.1', port: 0 }],
    networks: { any: { cidrs: ['127.0.0.0/8'], profile: 'any' } },
    profiles: { any: { block: [] } },
    ...(r.admin !== undefined ? { admin: r.admin } : {}),
    ...(r.state_dir !== undefined ? { state_dir: r.state_dir } : {}),
  };
  return parseConfig(JSON.stringify(minimal), file);
}

/** The admin API of the config (or --admin) and its token; undefined (exit 2, said why) when there is none. */
function adminTarget(cmd: Command, override: string | undefined): AdminTarget | undefined {
  const file = configPath(cmd);
  let loaded: LoadedConfig;
  try {
    loaded = readConfigFile(file);
  } catch (err) {
    try {
      loaded = adminSectionOf(file);
    } catch {
      fail(`cannot load ${file}: ${(err as Error).message}`, EXIT.USAGE);
      return undefined;
    }
  }
  if (override === undefined && !loaded.config.admin.enabled) {
    fail(`admin.enabled is false in ${file}: this command asks the running server through its admin API`, EXIT.USAGE);
    return undefined;
  }
  const token = readAdminToken(loaded.config, loaded.baseDir);
  if (token === undefined) {
    fail(`no admin token (admin.token, $${loaded.config.admin.token_env} or the token file in state_dir)`, EXIT.USAGE);
    return undefined;
  }
  return { url: (override ?? adminUrl(loaded)).replace(/\/+$/, ''), token };
}

/** One admin API call: its status and JSON body; Unreachable when there is no answer or a refusal of the token. */
async function call(target: AdminTarget, method: 'GET' | 'POST', path: string, timeoutMs: number): Promise<{ status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(`${target.url}${path}`, { method, headers: { authorization: `Bearer ${target.token}` }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message ?? String(err));
    throw new Unreachable(`cannot reach the admin API at ${target.url}: ${why}`);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: shown as it is
  }
  if (res.status === 401 || res.status === 403) throw new Unreachable(`the admin API at ${target.url} refused the token (HTTP ${res.status}): ${errorOf(body)}`);
  return { status: res.status, body };
}

function errorOf(body: unknown): string {
  return typeof body === 'object' && body !== null && 'error' in body ? String((body as { error: unknown }).error) : String(body);
}

/** Run `fn`; an unreachable server is exit 2 with the reason. */
async function guarded(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof Unreachable) return fail(err.message, EXIT.USAGE);
    throw err;
  }
}

const adminOption = () => new Option('--admin <url>', "admin server base URL instead of the config's admin section (e.g. http://127.0.0.1:8053)");
const timeoutOption = (ms: number) =>
  new Option('--timeout <ms>', 'how long to wait for the server').default(String(ms)).argParser((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error('--timeout: a whole number of milliseconds');
    return String(n);
  });

interface CommonOptions {
  admin?: string;
  timeout: string;
  json?: boolean;
}

export function registerCache(program: Command): void {
  const cache = program.command('cache').description("The running server's answer cache.");
  cache
    .command('flush')
    .description('Empty the answer cache of the running server, or only NAME and the names below it. Exit 0 done, 2 cannot reach the server.')
    .argument('[name]', 'flush only this name and its subdomains (as `unbound-control flush_zone`)')
    .addOption(adminOption())
    .addOption(timeoutOption(15000))
    .addOption(new Option('--json', 'machine-readable output'))
    .addHelpText(
      'after',
      '\nWith workers: N every worker flushes its own cache; the count is their sum. In shared mode (redis)' +
        "\nthe flush is local to this instance: the other instances keep their caches, and answers in Redis's" +
        '\nshared cache stay there until they expire. Blocked answers are never cached (a list or policy' +
        '\nchange needs no flush).' +
        '\n\nExamples:\n  sluice cache flush\n  sluice cache flush example.org',
    )
    .action((name: string | undefined, opts: CommonOptions, cmd: Command) =>
      guarded(async () => {
        const target = adminTarget(cmd, opts.admin);
        if (!target) return;
        const query = name === undefined ? '' : `?name=${encodeURIComponent(name)}`;
        const { status, body } = await call(target, 'POST', `/api/admin/cache/flush${query}`, Number(opts.timeout));
        if (status !== 200) return fail(`cache flush failed (HTTP ${status}): ${errorOf(body)}`, EXIT.USAGE);
        const r = body as FlushResult;
        if (opts.json) return printJson(r);
        const what = r.name === null ? '' : ` for ${r.name} and below`;
        const where = r.processes > 1 ? ` across ${r.processes} workers` : '';
        process.stdout.write(`flushed ${r.flushed} cached answer${r.flushed === 1 ? '' : 's'}${what}${where}\n`);
      }),
    );
}

export function registerReload(program: Command): void {
  program
    .command('reload')
    .description(
      'Re-read the config and lists in the running server, as `kill -HUP` does, and say whether it took: exit 0 accepted, 1 rejected (the server keeps serving the previous state), 2 cannot reach the server.',
    )
    .addOption(adminOption())
    .addOption(timeoutOption(60000))
    .addOption(new Option('--json', 'machine-readable output'))
    .addHelpText(
      'after',
      '\nA rejected reload prints the problems with file and line, as the server logs them. With workers: N' +
        '\nevery worker reloads and the answer comes when all have; in shared mode (redis) only this instance' +
        '\nreloads (each instance reads its own files).' +
        '\n\nExamples:\n  sluice reload\n  sluice reload --config /etc/sluice/sluice.yaml --json',
    )
    .action((opts: CommonOptions, cmd: Command) =>
      guarded(async () => {
        const target = adminTarget(cmd, opts.admin);
        if (!target) return;
        const { status, body } = await call(target, 'POST', '/api/admin/reload', Number(opts.timeout));
        if (status !== 200 && status !== 422) return fail(`reload failed (HTTP ${status}): ${errorOf(body)}`, EXIT.USAGE);
        const r = body as ReloadResult;
        process.exitCode = r.accepted ? EXIT.OK : EXIT.FAILED;
        if (opts.json) return printJson(r);
        if (r.accepted) process.stdout.write(`reload accepted: policy version ${r.version}\n`);
        else process.stdout.write(`reload rejected, still serving policy version ${r.version}:\n${r.problems.map((p) => `  ${p}\n`).join('')}`);
      }),
    );
}

function recordLine(r: { name: string; type: string; ttl: number; data: string }): string {
  return `${r.name}.\t${r.ttl}\tIN\t${r.type}\t${r.data}`;
}

/** The report as `sluice check` prints a decision: a headline, then one row per fact. */
export function renderQueryReport(x: QueryReport): string {
  const source =
    x.source === 'upstream'
      ? `upstream ${x.upstream}`
      : x.source === 'cache'
        ? 'cache'
        : x.source === 'stale'
          ? 'stale cache entry (upstreams unreachable)'
          : x.source === 'local'
            ? 'sluice itself'
            : 'no answer (dropped)';
  const rows: [string, string | undefined][] = [
    ['client', x.client],
    ['network', x.network ?? 'none: the client is in no network'],
    ['profile', x.profile ?? undefined],
    ['policy', x.policy ? `${x.policy.id}: ${x.policy.title} (${x.policy.reference})` : undefined],
    ['list', x.list ?? undefined],
    ['rule', x.rule ?? undefined],
    ['note', x.note ?? undefined],
    ['rcode', x.rcode],
    ['ede', x.ede ? `${x.ede.code}: ${x.ede.text}` : undefined],
    ['source', source],
    ['time', `${x.durationMs} ms`],
    ['version', x.version],
  ];
  let out = `${x.name} ${x.type}: ${x.decision.toUpperCase()}\n`;
  for (const [k, v] of rows) if (v !== undefined) out += `  ${k.padEnd(11)}${v}\n`;
  const section = (title: string, records: QueryReport['answers']) => (records.length === 0 ? '' : `${title}\n${records.map((r) => `  ${recordLine(r)}\n`).join('')}`);
  return out + section('answer', x.answers) + section('authority', x.authority);
}

const QUERY_EXIT: Record<QueryReport['decision'], number> = { allowed: EXIT.OK, blocked: EXIT.FAILED, refused: EXIT.REFUSED };

export function registerQuery(program: Command): void {
  program
    .command('query')
    .description(
      'Ask the running server: the query goes through its real pipeline (policy, cache, upstreams) as if sent by --client, and the decision and answer are shown. Not logged. Exit 0 allowed, 1 blocked, 3 refused, 2 usage or cannot reach the server.',
    )
    .argument('<name>', 'the name to ask')
    .addOption(new Option('--type <type>', 'query type (A, AAAA, MX, TXT, HTTPS, TYPE65, …)').default('A'))
    .addOption(new Option('--client <ip>', 'ask as this client address (its network and profile apply)').default('127.0.0.1'))
    .addOption(adminOption())
    .addOption(timeoutOption(15000))
    .addOption(new Option('--json', 'machine-readable output'))
    .addHelpText(
      'after',
      '\n`sluice check` says what the config on disk decides; `sluice query` asks the server that runs, with' +
        '\nits runtime state (shared edits, cache, upstreams), and shows the answer it would send. The query' +
        '\nis not written to the query log and the answer is sent nowhere; an allowed name is forwarded' +
        '\nupstream (or answered from the cache) and cached as any query. With workers: N one worker answers.' +
        '\n\nExamples:\n  sluice query www.tiktok.com --client 10.1.2.3\n  sluice query example.org --type AAAA --json',
    )
    .action((name: string, opts: CommonOptions & { type: string; client: string }, cmd: Command) =>
      guarded(async () => {
        const target = adminTarget(cmd, opts.admin);
        if (!target) return;
        const params = new URLSearchParams({ name, type: opts.type, client: opts.client });
        const { status, body } = await call(target, 'GET', `/api/query?${params.toString()}`, Number(opts.timeout));
        if (status !== 200) return fail(`query failed (HTTP ${status}): ${errorOf(body)}`, EXIT.USAGE);
        const r = body as QueryReport;
        process.exitCode = QUERY_EXIT[r.decision];
        if (opts.json) return printJson(r);
        process.stdout.write(renderQueryReport(r));
      }),
    );
}
