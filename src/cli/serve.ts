// `sluice serve`: run the resolver in the foreground. SIGHUP reloads, SIGTERM/SIGINT stop within 5 s.
import type { Command } from 'commander';
import { configPath } from './config-file.js';
import { createLogger } from '../logging/logger.js';
import { readConfigFile } from '../config/load.js';
import { LoadError, SluiceServer } from '../server/sluice-server.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the resolver in the foreground (SIGHUP reloads config and lists, SIGTERM stops).')
    .addHelpText('after', '\nExamples:\n  sluice serve\n  sluice serve --config /etc/sluice/sluice.yaml')
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = { config: configPath(cmd) };
      let level = 'info';
      try {
        level = readConfigFile(opts.config).config.logging.level;
      } catch {
        // reported properly by SluiceServer.start below
      }
      const logger = createLogger(level);
      let server: SluiceServer;
      try {
        server = await SluiceServer.start({ configFile: opts.config, logger });
      } catch (err) {
        const lines = err instanceof LoadError ? err.lines : [(err as Error).message];
        logger.fatal({ problems: lines }, 'cannot start');
        logger.flush();
        process.stderr.write(`sluice: cannot start:\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
        process.exitCode = 2;
        return;
      }
      logger.info({ config: opts.config }, 'sluice started');
      process.on('SIGHUP', () => void server.reload());
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping');
        // The 5 s promise: answer what is in flight for up to 4 s, then exit regardless.
        const hard = setTimeout(() => process.exit(0), 5000);
        hard.unref();
        void server.stop(4000).then(() => {
          logger.info('stopped');
          logger.flush();
          process.exit(0);
        });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
