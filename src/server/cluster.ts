// Multi-core: `workers: N` runs N processes (node:cluster) that share the listening sockets; the
// primary only supervises. Node 20 has no SO_REUSEPORT for dgram, so the workers share one UDP
// socket and the kernel hands each datagram to whichever worker reads first; TCP connections are
// distributed by the primary. Reload signals are forwarded; a worker that dies is replaced.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Config } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { PrimaryObservability } from './cluster-observability.js';
import { withNodeFlags } from './node-flags.js';
import { loadRuleSet } from './load-rules.js';

export function workerCount(config: Config): number {
  return config.workers === 'auto' ? availableParallelism() : config.workers;
}

export function isWorker(): boolean {
  return cluster.isWorker;
}

/** Tell the primary this worker is serving. */
export function reportReady(): void {
  if (cluster.isWorker && process.send) process.send({ type: 'sluice-ready' });
}

/**
 * Tell the primary this worker reloaded by itself (a watched file changed, a url list was
 * downloaded): the primary's admin server then reloads what it shows (lists, policies, metrics).
 */
export function reportReloaded(): void {
  if (cluster.isWorker && process.send && process.connected) process.send({ type: 'sluice-reloaded' });
}

export function runPrimary(count: number, logger: Logger, configFile: string): void {
  const workers = new Set<Worker>();
  let obs: PrimaryObservability | undefined;
  const observe = async () => {
    try {
      const loaded = await loadRuleSet(configFile, logger.child({ role: 'primary' }, { level: 'warn' }));
      if (obs) obs.reconfigure(loaded);
      else {
        obs = await PrimaryObservability.open(loaded, () => workers.size, count, logger);
        for (const w of workers) obs.attach(w);
        await obs.startAdmin();
      }
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'primary: cannot load the config for the admin server');
    }
  };
  void observe();
  let stopping = false;
  const closeObservability = () => (obs ? obs.close().catch((err: Error) => logger.error({ err: err.message }, 'primary: closing the query log failed')) : Promise.resolve());
  let ready = 0;
  let started = false;
  let reloadTimer: NodeJS.Timeout | undefined;

  const fork = (id: number) => {
    const w = cluster.fork({ SLUICE_WORKER_ID: String(id) });
    workers.add(w);
    obs?.attach(w);
    w.on('message', (m: { type?: string }) => {
      if (m?.type === 'sluice-reloaded') {
        // Every worker reports its own reload of the same change: one reload of the primary's view.
        clearTimeout(reloadTimer);
        reloadTimer = setTimeout(() => void observe(), 200);
        return;
      }
      if (m?.type !== 'sluice-ready') return;
      ready++;
      if (!started && ready === count) {
        started = true;
        logger.info({ workers: count }, 'sluice started');
      }
    });
    w.on('exit', (code, signal) => {
      workers.delete(w);
      if (stopping) {
        // The store is written and closed before the primary exits: its last events are durable.
        if (workers.size === 0) void closeObservability().then(() => process.exit(process.exitCode ?? 0));
        return;
      }
      if (!started) {
        // A worker that cannot start (bad config, port in use) would fail again: give up.
        logger.fatal({ worker: id, code, signal }, 'a worker could not start');
        stop('worker failure', 2);
        return;
      }
      logger.error({ worker: id, code, signal }, 'worker died, starting a new one');
      setTimeout(() => fork(id), 500).unref();
    });
  };

  const stop = (reason: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, 'stopping');
    for (const w of workers) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(exitCode), 8000).unref();
    if (exitCode !== 0) process.exitCode = exitCode;
    if (workers.size === 0) void closeObservability().then(() => process.exit(exitCode));
  };

  cluster.setupPrimary({ execArgv: withNodeFlags(process.execArgv) });
  for (let i = 1; i <= count; i++) fork(i);
  process.on('SIGHUP', () => {
    for (const w of workers) w.process.kill('SIGHUP');
    void observe();
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
