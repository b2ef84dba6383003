// `sluice config validate`: check a config and its lists the way a reload would, like unbound-checkconf.
import type { Command } from 'commander';
import { silentLogger } from '../logging/logger.js';
import { LoadError, loadRuleSet } from '../rules/load.js';
import { configPath } from './config-file.js';
import { listFindings } from '../lists/list-loader.js';

export function registerConfig(program: Command): void {
  const config = program.command('config').description('Work with the config file.');
  config
    .command('validate')
    .description('Validate a config file and the lists it names. Exit 0 when valid, 1 when not.')
    .argument('[file]', 'config file (default: --config, $SLUICE_CONFIG, /etc/sluice/sluice.yaml, config/sluice.yaml)')
    .addHelpText('after', '\nExamples:\n  sluice config validate\n  sluice config validate /etc/sluice/sluice.yaml')
    .action(async (fileArg: string | undefined, _opts: unknown, cmd: Command) => {
      const file = fileArg ?? configPath(cmd);
      try {
        const { rules, lists } = await loadRuleSet(file, silentLogger());
        const c = rules.config;
        const findings = listFindings(lists);
        for (const w of findings.warnings) process.stderr.write(`warning: ${w}\n`);
        if (findings.errors.length > 0) {
          process.stderr.write(findings.errors.join('\n') + '\n');
          process.exitCode = 1;
          return;
        }
        process.stdout.write(
          `${file}: OK (${c.listeners.length} listeners, ${Object.keys(c.networks).length} networks, ` + `${Object.keys(c.profiles).length} profiles, ${Object.keys(c.lists).length} lists)\n`,
        );
      } catch (err) {
        const lines = err instanceof LoadError ? err.lines : [(err as Error).message];
        process.stderr.write(lines.join('\n') + '\n');
        process.exitCode = 1;
      }
    });
}
