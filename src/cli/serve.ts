// `sluice serve`: run the resolver in the foreground. SIGHUP reloads, SIGTERM/SIGINT stop within 5 s.
import type { Command } from 'commander';
import { configPath } from './config-file.js';
import { createLogger } from '../logging/logger.js';
import { readConfigFile } from '../config/load.js';
import { SluiceServer } from '../server/sluice-server.js';
import { LoadError, loadRuleSet } from '../rules/load.js';
import { isWorker, reportFailed, reportReady, runPrimary, workerCount } from '../server/cluster.js';
import { silentLogger } from '../logging/logger.js';
import { systemdNotifier } from '../server/systemd-notify.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Run the resolver in the foreground (SIGHUP reloads config and lists, SIGTERM stops).')
    .addHelpText('after', '\nExamples:\n  sluice serve\n  sluice serve --config /etc/sluice/sluice.yaml')
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = { config: configPath(cmd) };
      let level = 'info';
      let workers = 1;
      try {
        const c = readConfigFile(opts.config).config;
        level = c.logging.level;
        workers = workerCount(c);
      } catch {
        // reported properly by SluiceServer.start below
      }
      const logger = createLogger(level);
      if (workers > 1 && !isWorker()) {
        // Check config and lists once here, so a broken config is reported once, not per worker.
        try {
          await loadRuleSet(opts.config, silentLogger());
        } catch (err) {
          const lines = err instanceof LoadError ? err.lines : [(err as Error).message];
          process.stderr.write(`sluice: cannot start:\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
          process.exitCode = 2;
          return;
        }
        await runPrimary(workers, logger, opts.config);
        return;
      }
      // Listening before start() returns: a SIGHUP then (a supervisor reloading at once) must not
      // kill the process with the signal's default action; the reload runs once it is up.
      let reloadAsked = false;
      const onHup = () => (reloadAsked = true);
      process.on('SIGHUP', onHup);
      let server: SluiceServer;
      try {
        server = await SluiceServer.start({ configFile: opts.config, logger });
      } catch (err) {
        const lines = err instanceof LoadError ? err.lines : [(err as Error).message];
        logger.fatal({ problems: lines }, 'cannot start');
        if (isWorker()) {
          // The primary says it once for every worker, stops them and exits non-zero.
          reportFailed(lines, logger);
          return;
        }
        logger.flush();
        process.stderr.write(`sluice: cannot start:\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
        process.exitCode = 2;
        return;
      }
      const systemd = isWorker() ? undefined : systemdNotifier(process.env, (e) => logger.warn(e));
      if (isWorker()) reportReady();
      else {
        logger.info({ config: opts.config }, 'sluice started');
        systemd?.ready('serving');
      }
      const reload = async () => {
        systemd?.reloading();
        const ok = await server.reload();
        systemd?.status(ok ? 'serving' : 'serving the last good config: the reload was refused (see the log)');
      };
      process.off('SIGHUP', onHup);
      process.on('SIGHUP', () => void reload());
      if (reloadAsked) void reload();
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping');
        systemd?.stopping();
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
