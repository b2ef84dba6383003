// `sluice log migrate`: create or upgrade the query-log store's schema without starting a
// resolver — for a DBA who runs migrations with an owner role and gives the resolvers a role that
// only writes, or to set up Grafana before the first event. Stores migrate themselves at start
// too; running this twice, or beside a running resolver, is harmless.
import type { Command } from 'commander';
import { stateDir } from '../config/paths.js';
import { DAY_MS, utcDay } from '../querylog/store/store.js';
import { loadConfigForLog } from './log.js';
import { EXIT, fail, printJson } from './output.js';

export function registerLogMigrate(log: Command): void {
  log
    .command('migrate')
    .description("Create or upgrade the query-log store's schema (PostgreSQL: tables, indexes and the next days' partitions) and print its version.")
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nThe PostgreSQL URL is $SLUICE_QUERYLOG_URL (query_log.store.url_env), else query_log.store.url, with the\n' +
        'password from $SLUICE_QUERYLOG_PASSWORD (password_env). The role needs to own the tables (or be allowed to\n' +
        'create them): see docs/querylog.md, "PostgreSQL store".\n\n' +
        'Examples:\n  SLUICE_QUERYLOG_PASSWORD=… sluice log migrate\n  sluice log migrate --json',
    )
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const loaded = loadConfigForLog(cmd);
      if (!loaded) return;
      const store = loaded.config.query_log.store;
      if (store.kind === 'none') return fail(`query_log.store.kind is none in ${loaded.file}: there is no store to migrate`, EXIT.USAGE);
      if (store.kind === 'sqlite') {
        const [{ migrateSqlite }, { sqlitePath }] = await Promise.all([import('../querylog/store/sqlite-store.js'), import('../querylog/store/open-store.js')]);
        const path = sqlitePath(loaded.config, stateDir(loaded.config, loaded.baseDir));
        try {
          const version = migrateSqlite(path);
          if (opts.json) printJson({ kind: 'sqlite', path, version });
          else process.stdout.write(`SQLite store ${path}: schema version ${version}\n`);
        } catch (err) {
          fail(`migrating ${path} failed: ${(err as Error).message}`);
        }
        return;
      }
      // Loaded here, not at the top: only a PostgreSQL store needs the client.
      const [{ default: pg }, { ensureDayPartitions, migratePostgres }, { postgresUrl, redactUrl }] = await Promise.all([
        import('pg'),
        import('../querylog/store/postgres-schema.js'),
        import('../querylog/store/postgres-url.js'),
      ]);
      let url: string;
      try {
        url = postgresUrl(store);
      } catch (err) {
        return fail((err as Error).message, EXIT.USAGE);
      }
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, application_name: 'sluice-migrate' });
      try {
        await client.connect();
        const version = await migratePostgres(client);
        const now = Date.now();
        await ensureDayPartitions(client, [utcDay(now), utcDay(now + DAY_MS)]);
        if (opts.json) printJson({ kind: 'postgres', url: redactUrl(url), version });
        else process.stdout.write(`PostgreSQL store ${redactUrl(url)}: schema version ${version}\n`);
      } catch (err) {
        fail(`migrating the PostgreSQL store at ${redactUrl(url)} failed: ${(err as Error).message}`);
      } finally {
        await client.end().catch(() => undefined);
      }
    });
}
