// The `sluice` command line. Each command's module is loaded only when it runs: `sluice report`
// need not load the server, the list compiler or the PostgreSQL client, and the start-up of a
// command (node, its modules, the config) is most of what a report over a small store costs.
import { Command } from 'commander';
import { EXIT, exitQuietlyOnClosedPipe } from './output.js';
import { packageVersion } from './version.js';

type Register = (program: Command) => void;

/** Every command, in the order `sluice --help` lists them. */
const COMMANDS: Record<string, () => Promise<Register>> = {
  serve: async () => (await import('./serve.js')).registerServe,
  config: async () => (await import('./config.js')).registerConfig,
  init: async () => (await import('./init.js')).registerInit,
  lists: async () => (await import('./lists.js')).registerLists,
  check: async () => (await import('./check.js')).registerCheck,
  policy: async () => (await import('./policy.js')).registerPolicy,
  status: async () => (await import('./status.js')).registerStatus,
  log: async () => {
    const [{ registerLog }, { registerLogErase }, { registerLogMigrate }] = await Promise.all([import('./log.js'), import('./log-erase.js'), import('./log-migrate.js')]);
    return (program) => {
      const log = registerLog(program);
      registerLogErase(log);
      registerLogMigrate(log);
    };
  },
  report: async () => (await import('./report.js')).registerReport,
  disable: async () => (await import('./overrides.js')).registerOverrides,
  enable: async () => (await import('./overrides.js')).registerOverrides,
  allow: async () => (await import('./overrides.js')).registerOverrides,
  deny: async () => (await import('./overrides.js')).registerOverrides,
  overrides: async () => (await import('./overrides.js')).registerOverrides,
  health: async () => (await import('./health.js')).registerHealth,
  cache: async () => (await import('./admin-verbs.js')).registerCache,
  reload: async () => (await import('./admin-verbs.js')).registerReload,
  query: async () => (await import('./admin-verbs.js')).registerQuery,
  version: async () => (await import('./version.js')).registerVersion,
};

/**
 * The command `argv` runs (the first word that is not a global option), when it is one of ours;
 * undefined for `--help`, `help`, a typo: then every command is loaded, for the help text or
 * commander's suggestion.
 */
export function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-c' || a === '--config') i++;
    else if (!a.startsWith('-')) return Object.hasOwn(COMMANDS, a) ? a : undefined;
    else if (!a.startsWith('--config=')) return undefined;
  }
  return undefined;
}

/** The program with the command `argv` runs, or with every command (help, docs, tests). */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const only = argv ? commandOf(argv) : undefined;
  const names = only ? [only] : Object.keys(COMMANDS);
  const registers = await Promise.all(names.map((n) => COMMANDS[n]!()));
  const program = new Command('sluice')
    .description('A DNS resolver that sinkholes banned apps per network.')
    .option('-c, --config <file>', 'config file (default: $SLUICE_CONFIG, else /etc/sluice/sluice.yaml when it exists, else config/sluice.yaml)')
    .version(packageVersion(), '-V, --version', 'the sluice version (`sluice version` also shows Node.js and the commit)')
    .addHelpText('after', '\nExit codes: 0 success, 1 a check failed (blocked name, invalid config, refused edit), 2 usage or start-up error, 3 `check` and `query`: the client is refused.')
    // Commander's own help command takes one word: `sluice help lists add` showed the help of `lists`.
    .helpCommand(false);
  program.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  // Only when a command runs (not when tests or the docs build the program). Not for `serve`: a
  // server must not exit 0 because a pipe closed; its log does not go through process.stdout.
  program.hook('preAction', (_program, action) => {
    if (action.name() !== 'serve') exitQuietlyOnClosedPipe();
  });
  // One module may register several commands (disable, enable, allow, deny, overrides): once.
  for (const register of new Set(registers)) register(program);
  program
    .command('help [command...]')
    .description('Help for a command or a subcommand, e.g. `sluice help lists add`.')
    .action((words: string[]) => {
      let cmd: Command = program;
      for (const w of words) {
        const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
        if (!sub) {
          process.stderr.write(`sluice: no command "${[...words.slice(0, words.indexOf(w)), w].join(' ')}"\n`);
          process.exitCode = EXIT.USAGE;
          return;
        }
        cmd = sub;
      }
      cmd.outputHelp();
    });
  return program;
}
