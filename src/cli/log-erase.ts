// `sluice log erase`: a data subject's events out of the query-log store and its rollup (GDPR
// art. 17), written to the audit log before and after. The store is opened directly, so this
// works whether or not the server runs (SQLite waits for the server's write lock).
import type { Command } from 'commander';
import { appendAudit } from '../lists/list-editor.js';
import { auditLogFile, stateDir } from '../config/paths.js';
import { parseTime } from '../querylog/filter.js';
import { openStore } from '../querylog/store/open-store.js';
import { loadConfigForLog } from './log.js';
import { EXIT, fail, printJson } from './output.js';

export function registerLogErase(log: Command): void {
  log
    .command('erase')
    .description("Remove a client's events from the query-log store and its daily rollup (right to erasure, GDPR art. 17); audited.")
    .requiredOption('--client <address>', 'the client: an address, or its pseudonym token (p:…) on a network that pseudonymises')
    .option('--before <time>', 'only events before this time (ISO date or date-time, or a duration ago such as 30d)')
    .option('--reason <text>', 'why (kept in the audit log)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nThe memory ring of a running server keeps the newest events until they fall off (at most\n' +
        'query_log.memory_events); JSONL files (query_log.file) and dnstap receivers are not touched.\n\n' +
        'Examples:\n  sluice log erase --client 10.1.2.3 --reason "request 2026-114"\n  sluice log erase --client p:3f9a0c1d2e4b5a69 --before 2026-06-01',
    )
    .action(async (opts: { client: string; before?: string; reason?: string; json?: boolean }, cmd: Command) => {
      const loaded = loadConfigForLog(cmd);
      if (!loaded) return;
      let before: number | undefined;
      if (opts.before !== undefined) {
        before = parseTime(opts.before);
        if (before === undefined) return fail(`--before: "${opts.before}" is not a time`, EXIT.USAGE);
      }
      const dir = stateDir(loaded.config, loaded.baseDir);
      const auditFile = auditLogFile(loaded.config, loaded.baseDir);
      let store;
      try {
        // PostgreSQL: a reading connection can erase, and must not start a writer (its spool,
        // migrations, timers) inside the CLI. SQLite needs a writing connection.
        const readOnly = loaded.config.query_log.store.kind === 'postgres';
        store = await openStore(loaded.config, dir, { instance: 'cli', now: Date.now, readOnly, warn: (m) => process.stderr.write(`sluice: ${m}\n`) });
      } catch (err) {
        return fail(`cannot open the query-log store: ${(err as Error).message}`);
      }
      if (!store) return fail(`query_log.store.kind is none in ${loaded.file}: there is no store to erase from`);
      const what = {
        command: 'log erase',
        list: '-',
        domains: [],
        client: opts.client,
        ...(before !== undefined ? { before: new Date(before).toISOString() } : {}),
        ...(opts.reason ? { reason: opts.reason } : {}),
      };
      try {
        // Audited before it applies: a crash in between leaves a line that says it was asked for.
        appendAudit(auditFile, { ...what, result: 'requested' });
        const r = await store.erase(opts.client, before);
        appendAudit(auditFile, { ...what, result: `erased ${r.events} events, ${r.rollups} rollup rows` });
        if (opts.json) printJson({ client: opts.client, before: before ?? null, ...r });
        else process.stdout.write(`erased ${r.events} events and ${r.rollups} rollup rows of ${opts.client} from the ${store.description}\n`);
      } catch (err) {
        appendAudit(auditFile, { ...what, result: `failed: ${(err as Error).message}` });
        fail(`erasing failed: ${(err as Error).message}`);
      } finally {
        await store.close();
      }
    });
}
