// Multi-core: `workers: N` runs N processes (node:cluster) that share the listening sockets; the
// primary supervises them and owns the query log and the admin API (its observability root, fed by
// the workers: cluster-observability.ts). With the batched UDP socket each worker binds the port
// with SO_REUSEPORT; on node:dgram (no SO_REUSEPORT in Node 20) the workers share one socket and
// the kernel hands each datagram to whichever worker reads first; TCP connections are distributed
// by the primary. Reload signals are forwarded; a worker that dies is replaced, but one that
// cannot start (a listener cannot bind) stops them all: it would fail again.
import cluster, { type Worker } from 'node:cluster';
import dgram from 'node:dgram';
import net, { isIPv6 } from 'node:net';
import { availableParallelism } from 'node:os';
import { listenerPort, type Config } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { instanceName } from '../querylog/query-log.js';
import { WorkersSource } from './cluster-observability.js';
import { LogOwner } from './log-owner.js';
import { ObservabilityRoot } from './observability-root.js';
import { withNodeFlags } from './node-flags.js';
import { loadRuleSet } from '../rules/load.js';
import { ListenError, listenError } from './listen-error.js';
import { systemdNotifier } from './systemd-notify.js';

const FAILED = 'sluice-failed';

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

/**
 * A worker that cannot start tells the primary why and exits 2. It must exit itself: the IPC
 * channel alone keeps a worker alive, and a worker that stays up unready looks like a healthy one.
 * The primary prints the problems once, for every worker.
 */
export function reportFailed(problems: string[], logger: Logger): void {
  const exit = () => process.exit(2);
  // Whatever happens to the log flush or the channel, the worker goes.
  setTimeout(exit, 2000).unref();
  logger.flush(() => {
    if (process.send && process.connected) process.send({ type: FAILED, problems }, undefined, undefined, exit);
    else {
      process.stderr.write(cannotStart(problems));
      exit();
    }
  });
}

function cannotStart(problems: string[]): string {
  return `sluice: cannot start:\n${problems.map((l) => `  ${l}`).join('\n')}\n`;
}

/**
 * Bind every fixed listener here, without SO_REUSEPORT, all at once (as one process would), and
 * let go. The workers' batched sockets bind with SO_REUSEPORT, and Linux lets any socket of the
 * same user that sets it too join the port: a second sluice with workers would start on a port
 * the first one serves, and take some of its queries. A plain bind fails on it. (Two instances
 * started at the same instant can still both pass: this check and the workers' binds are not one
 * step.)
 */
async function probeListeners(config: Config): Promise<void> {
  const held: (() => Promise<void>)[] = [];
  try {
    for (const l of config.listeners) {
      for (const proto of l.protocols) {
        const port = listenerPort(l, proto);
        if (port === 0) continue; // a port the kernel picks is free
        held.push(
          // DoT and DoH are TCP ports.
          await probe(l.address, port, proto === 'udp' ? 'udp' : 'tcp').catch((err: unknown) => {
            throw listenError(err, l.address, port, proto);
          }),
        );
      }
    }
  } finally {
    await Promise.all(held.map((close) => close()));
  }
}

/** Bind `address:port/proto`; resolves to what closes it. */
function probe(address: string, port: number, proto: 'udp' | 'tcp'): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    if (proto === 'udp') {
      const s = dgram.createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4', ipv6Only: isIPv6(address) ? false : undefined });
      s.once('error', (err) => {
        s.close();
        reject(err);
      });
      s.bind({ port, address, exclusive: true }, () => resolve(() => new Promise((r) => s.close(() => r()))));
    } else {
      const server = net.createServer();
      server.once('error', reject);
      server.listen({ host: address, port, ipv6Only: false, exclusive: true }, () => resolve(() => new Promise((r) => server.close(() => r()))));
    }
  });
}

/**
 * Run the workers. Resolves once they are forked, or at once when the primary itself cannot start
 * (a listener or the admin API cannot bind): then `process.exitCode` is 2 and the problem printed.
 * `clock` is the primary's: the log's, the admin API's and the policy states it shows.
 */
export async function runPrimary(count: number, logger: Logger, configFile: string, clock: () => number = Date.now): Promise<void> {
  const workers = new Set<Worker>();
  /** Workers that said they serve: health counts these, not processes that are still starting. */
  const ready = new Set<Worker>();
  /** The primary's observability root (it owns the log), fed by the workers. */
  let obs: { root: ObservabilityRoot; source: WorkersSource } | undefined;
  const primaryLog = logger.child({ role: 'primary' }, { level: 'warn' });
  const openObservability = async (loaded: Awaited<ReturnType<typeof loadRuleSet>>) => {
    const c = loaded.loaded.config;
    const owner = await LogOwner.open(c, loaded.loaded.baseDir, instanceName(c), clock, logger);
    const source = new WorkersSource(loaded, owner, () => ready.size, count, clock);
    const root = new ObservabilityRoot(owner, source, clock, logger);
    try {
      await root.start(loaded);
    } catch (err) {
      await root.close().catch(() => undefined);
      throw err;
    }
    obs = { root, source };
    // The admin API's flush, reload and query reach the workers (cluster-observability.ts).
    source.admin = { workers: () => [...ready], reloaded: () => observe() };
    for (const w of workers) source.attach(w);
  };
  const observe = async () => {
    try {
      const loaded = await loadRuleSet(configFile, primaryLog);
      if (obs) obs.source.reconfigure(loaded);
      else await openObservability(loaded);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'primary: cannot load the config for the admin server');
    }
  };

  // Before any worker: the listeners are free and the admin API is ours, or nothing starts.
  try {
    const loaded = await loadRuleSet(configFile, primaryLog);
    await probeListeners(loaded.loaded.config);
    await openObservability(loaded);
  } catch (err) {
    if (!(err instanceof ListenError)) {
      logger.error({ err: (err as Error).message }, 'primary: cannot load the config for the admin server');
    } else {
      logger.fatal({ problems: [err.message] }, 'cannot start');
      logger.flush();
      process.stderr.write(cannotStart([err.message]));
      process.exitCode = 2;
      return;
    }
  }

  let stopping = false;
  let finishing = false;
  const closeObservability = () => (obs ? obs.root.close().catch((err: Error) => logger.error({ err: err.message }, 'primary: closing the query log failed')) : Promise.resolve());
  // The store is written and closed before the primary exits: its last events are durable.
  const finish = () => {
    if (finishing) return;
    finishing = true;
    void closeObservability().then(() => process.exit(process.exitCode ?? 0));
  };
  let started = false;
  let reloadTimer: NodeJS.Timeout | undefined;
  // The primary is systemd's main process: it says READY once every worker serves.
  const systemd = systemdNotifier(process.env, (e) => logger.warn(e));

  /** A worker cannot start: say why once, and stop the others (it would fail again on a respawn). */
  const failed = (id: number, problems: string[]) => {
    if (stopping) return;
    logger.fatal({ worker: id, problems }, 'a worker could not start');
    process.stderr.write(cannotStart(problems));
    stop('worker failure', 2);
  };

  const fork = (id: number) => {
    const w = cluster.fork({ SLUICE_WORKER_ID: String(id) });
    workers.add(w);
    obs?.source.attach(w);
    w.on('message', (m: { type?: string; problems?: unknown }) => {
      if (m?.type === FAILED) {
        failed(id, Array.isArray(m.problems) ? m.problems.map(String) : ['a worker could not start']);
        return;
      }
      if (m?.type === 'sluice-reloaded') {
        // Every worker reports its own reload of the same change: one reload of the primary's view.
        clearTimeout(reloadTimer);
        reloadTimer = setTimeout(() => void observe(), 200);
        return;
      }
      if (m?.type !== 'sluice-ready') return;
      ready.add(w);
      if (!started && ready.size === count) {
        started = true;
        logger.info({ workers: count }, 'sluice started');
        systemd.ready(`serving with ${count} workers`);
      }
    });
    w.on('exit', (code, signal) => {
      workers.delete(w);
      ready.delete(w);
      const decide = () => {
        if (stopping) {
          if (workers.size === 0) finish();
          return;
        }
        if (!started) {
          // Exited before serving without saying why (a crash): a new one would too.
          failed(id, [`worker ${id} exited before it was serving (${signal ?? `exit code ${code}`})`]);
          return;
        }
        logger.error({ worker: id, code, signal }, 'worker died, starting a new one');
        setTimeout(() => fork(id), 500).unref();
      };
      // The exit can be seen before the worker's last message (why it could not start) is read:
      // decide once its channel is closed, when every message it sent has arrived.
      if (w.isConnected()) w.once('disconnect', decide);
      else decide();
    });
  };

  const stop = (reason: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, 'stopping');
    systemd.stopping();
    for (const w of workers) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(exitCode), 8000).unref();
    if (exitCode !== 0) process.exitCode = exitCode;
    if (workers.size === 0) finish();
  };

  cluster.setupPrimary({ execArgv: withNodeFlags(process.execArgv) });
  for (let i = 1; i <= count; i++) fork(i);
  process.on('SIGHUP', () => {
    // Each worker reloads on its own; the primary cannot know when all are done, so READY follows at once.
    systemd.reloading();
    systemd.status(`serving with ${count} workers (reload sent)`);
    for (const w of workers) w.process.kill('SIGHUP');
    void observe();
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
