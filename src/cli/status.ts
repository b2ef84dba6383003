// `sluice status`: every instance sharing the Redis state, its policy version and last heartbeat,
// and which ones are out of step — with the edit log Redis holds, or with the others' config and
// list files. Standalone: this config's policy version.
import { Command, Option } from 'commander';
import { readLog } from '../shared/edit-store.js';
import { judgeInstances, memberName, parseHeartbeats } from '../shared/instance-health.js';
import { describeRedisError, redisKeys, withDeadline } from '../shared/redis-connection.js';
import { loadForCli } from './config-file.js';
import { EXIT, fail, printJson, printTable } from './output.js';
import { cliRedis } from './shared-edits.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('Instances sharing state in Redis: policy version, last heartbeat, and which are out of step. Exit 1 when one is behind or diverged.')
    .addOption(new Option('--json', 'machine-readable output'))
    .addHelpText('after', '\nExamples:\n  sluice status\n  sluice status --json')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = await loadForCli(cmd);
      if (!r) return;
      const cfg = r.loaded.config.redis;
      if (!cfg) {
        if (opts.json) return printJson({ mode: 'standalone', version: r.version });
        process.stdout.write(`standalone (no redis section); policy version of this config: ${r.version}\n`);
        return;
      }
      const redis = cliRedis(r);
      let all: Record<string, string>;
      let head: { epoch: string; version: number };
      try {
        [all, head] = await withDeadline(Promise.all([redis.hgetall(redisKeys(cfg.key_prefix).instances), readLog(redis, cfg.key_prefix, Number.MAX_SAFE_INTEGER)]), 5000);
      } catch (err) {
        return fail(describeRedisError(err, cfg, redis), EXIT.USAGE);
      } finally {
        redis.disconnect();
      }
      const statuses = judgeInstances(parseHeartbeats(all), { epoch: head.epoch, version: head.version }, Date.now(), cfg.heartbeat_ms * 5);
      if (statuses.some((s) => s.state === 'behind' || s.state === 'diverged')) process.exitCode = EXIT.FAILED;
      if (opts.json) return printJson({ mode: 'shared', redis: 'up', edits: { epoch: head.epoch, version: head.version }, instances: statuses });
      process.stdout.write(`redis holds ${head.version} shared edit(s)${head.epoch ? ` (log ${head.epoch.slice(0, 8)})` : ''}\n`);
      printTable(
        ['INSTANCE', 'HOST', 'PID', 'VERSION', 'EDITS', 'HEARTBEAT', 'STATE'],
        statuses.map((s) => [memberName(s), s.host, s.pid, s.version, s.editsVersion, `${s.ageSeconds}s ago`, s.state === 'ok' ? 'ok' : `${s.state.toUpperCase()}: ${s.detail ?? ''}`]),
      );
    });
}
