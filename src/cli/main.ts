// The `sluice` command line.
import { Command } from 'commander';
import { registerCheck } from './check.js';
import { registerConfig } from './config.js';
import { registerHealth } from './health.js';
import { registerLists } from './lists.js';
import { registerLog } from './log.js';
import { registerLogErase } from './log-erase.js';
import { registerLogMigrate } from './log-migrate.js';
import { registerPolicy } from './policy.js';
import { registerReport } from './report.js';
import { registerServe } from './serve.js';
import { registerStatus } from './status.js';
import { registerVersion } from './version.js';

export function buildProgram(): Command {
  const program = new Command('sluice')
    .description('A DNS resolver that sinkholes banned apps per network.')
    .option('-c, --config <file>', 'config file (default: $SLUICE_CONFIG, else config/sluice.yaml)')
    .addHelpText('after', '\nExit codes: 0 success, 1 a check failed (blocked name, invalid config, refused edit), 2 usage or start-up error.');
  program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  registerServe(program);
  registerConfig(program);
  registerLists(program);
  registerCheck(program);
  registerPolicy(program);
  registerStatus(program);
  const log = registerLog(program);
  registerLogErase(log);
  registerLogMigrate(log);
  registerReport(program);
  registerHealth(program);
  registerVersion(program);
  return program;
}
