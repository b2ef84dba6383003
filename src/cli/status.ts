// `sluice status`: every instance sharing the Redis state, its policy version and last heartbeat,
// and which ones disagree. Standalone: this config's policy version.
import { Command, Option } from 'commander';
import { createRedis, redisKeys, withDeadline } from '../shared/redis-connection.js';
import type { Heartbeat } from '../shared/shared-state.js';
import { loadForCli } from './config-file.js';
import { EXIT, fail, printJson, printTable } from './output.js';

export interface InstanceStatus extends Heartbeat {
  ageSeconds: number;
  state: 'ok' | 'diverged' | 'stale';
}

/** Pure: which instances agree. The majority version (ties: the newest heartbeat's) is the reference. */
export function judgeInstances(beats: Heartbeat[], now: number, staleMs: number): InstanceStatus[] {
  const fresh = beats.filter((b) => now - b.time < staleMs);
  const counts = new Map<string, number>();
  for (const b of fresh) counts.set(b.version, (counts.get(b.version) ?? 0) + 1);
  const newest = [...fresh].sort((a, b) => b.time - a.time)[0];
  let reference = newest?.version;
  for (const [v, n] of counts) if (n > (counts.get(reference ?? '') ?? 0)) reference = v;
  return beats
    .map((b) => ({
      ...b,
      ageSeconds: Math.round((now - b.time) / 1000),
      state: (now - b.time >= staleMs ? 'stale' : b.version === reference ? 'ok' : 'diverged') as InstanceStatus['state'],
    }))
    .sort((a, b) => a.instance.localeCompare(b.instance));
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('Instances sharing state in Redis: policy version, last heartbeat, and which disagree. Exit 1 when one diverges.')
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
      const redis = createRedis(cfg, { offlineQueue: true });
      redis.on('error', () => {});
      let all: Record<string, string>;
      try {
        all = await withDeadline(redis.hgetall(redisKeys(cfg.key_prefix).instances), 5000);
      } catch (err) {
        return fail(`redis: ${(err as Error).message}`, EXIT.USAGE);
      } finally {
        redis.disconnect();
      }
      const beats = Object.values(all).flatMap((j) => {
        try {
          return [JSON.parse(j) as Heartbeat];
        } catch {
          return [];
        }
      });
      const statuses = judgeInstances(beats, Date.now(), cfg.heartbeat_ms * 5);
      if (statuses.some((s) => s.state === 'diverged')) process.exitCode = EXIT.FAILED;
      if (opts.json) return printJson({ mode: 'shared', redis: 'up', instances: statuses });
      printTable(
        ['INSTANCE', 'HOST', 'PID', 'VERSION', 'EDITS', 'HEARTBEAT', 'STATE'],
        statuses.map((s) => [s.instance, s.host, s.pid, s.version, s.editsVersion, `${s.ageSeconds}s ago`, s.state === 'ok' ? 'ok' : s.state.toUpperCase()]),
      );
    });
}
