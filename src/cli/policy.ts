// `sluice policy status`: every policy's lifecycle state, reference, exceptions and their expiry.
import { Command, Option } from 'commander';
import { policyStatus, type PolicyStatus } from '../policy/status.js';
import { CompiledOverrides } from '../policy/overrides.js';
import { readOverrides } from '../shared/override-store.js';
import { loadForCli } from './config-file.js';
import { EXIT, fail, printJson, printTable } from './output.js';

export function describeState(s: PolicyStatus): string {
  const off = s.disabled[0];
  if (off) return `DISABLED until ${off.until.replace(/\.\d{3}Z$/, 'Z')}, ${off.scope} (${off.reason})`;
  switch (s.state) {
    case 'review-due':
      return `review due in ${s.reviewInDays} day${s.reviewInDays === 1 ? '' : 's'}`;
    case 'review-overdue':
      return `REVIEW OVERDUE (${-(s.reviewInDays ?? 0)} days), still enforced`;
    case 'scheduled':
      return `scheduled from ${s.from}`;
    case 'lapsed':
      return `lapsed after ${s.until}`;
    default:
      return s.reviewInDays !== undefined ? `active, review in ${s.reviewInDays} days` : 'active';
  }
}

export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('Policies: bans with a lifecycle.');
  policy
    .command('status')
    .description('Each policy: state (scheduled, active, review due, review overdue, lapsed), reference, exceptions and their expiry.')
    .option('--at <date>', 'as at this date instead of now (e.g. 2027-05-02)')
    .addOption(new Option('--json', 'machine-readable output'))
    .addHelpText('after', '\nExit code 1 when a policy is overdue for review.\n\nExamples:\n  sluice policy status\n  sluice policy status --at 2027-06-01 --json')
    .action(async (opts: { at?: string; json?: boolean }, cmd: Command) => {
      const now = opts.at === undefined ? Date.now() : Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(opts.at) ? `${opts.at}T12:00:00Z` : opts.at);
      if (Number.isNaN(now)) return fail(`--at: "${opts.at}" is not a date`, EXIT.USAGE);
      const r = await loadForCli(cmd);
      if (!r) return;
      // Shared mode: the disables in Redis too, as the instances enforce them.
      let overrides: CompiledOverrides = r.rules.engine.overrides;
      if (r.loaded.config.redis) {
        try {
          overrides = new CompiledOverrides(await readOverrides(r));
        } catch (err) {
          process.stderr.write(`warning: ${(err as Error).message}; runtime disables are not shown\n`);
        }
      }
      const statuses = r.rules.engine.policies.map((p) => policyStatus(p, now, overrides));
      if (statuses.some((s) => s.state === 'review-overdue')) process.exitCode = EXIT.FAILED;
      if (opts.json) return printJson(statuses);
      if (statuses.length === 0) {
        process.stdout.write('no policies in the config (profiles block without a lifecycle)\n');
        return;
      }
      printTable(
        ['POLICY', 'STATE', 'MODE', 'APPLIES TO', 'FROM', 'UNTIL', 'REVIEW BY', 'LISTS'],
        statuses.map((s) => [
          s.id,
          describeState(s),
          s.mode,
          s.appliesTo.join(', '),
          s.from,
          s.until ?? '-',
          s.reviewBy ?? '-',
          s.lists.length > 4 ? `${s.lists.slice(0, 4).join(',')} +${s.lists.length - 4}` : s.lists.join(','),
        ]),
      );
      for (const s of statuses) {
        process.stdout.write(`\n${s.id}: ${s.title}\n  reference  ${s.reference}\n`);
        if (s.schedule) process.stdout.write(`  schedule   ${s.schedule}\n`);
        for (const e of s.exceptions) {
          process.stdout.write(
            `  exception  ${e.scope} (lists: ${e.lists}): ${e.reason}; approved by ${e.approvedBy}; ${e.until ? (e.expired ? `EXPIRED ${e.until}` : `until ${e.until}`) : 'no end date'}\n`,
          );
        }
      }
    });
}
