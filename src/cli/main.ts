// The `sluice` command line.
import { Command } from 'commander';
import { registerConfig } from './config.js';
import { registerServe } from './serve.js';

export function buildProgram(): Command {
  const program = new Command('sluice')
    .description('A DNS resolver that sinkholes banned apps per network.')
    .addHelpText('after', '\nExit codes: 0 success, 1 a check failed (invalid config, blocked name), 2 usage or start-up error.');
  program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  registerServe(program);
  registerConfig(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
