// Observability with several workers: each worker counts its own metrics and sends its query log
// events in batches (in columns: src/querylog/event-batch.ts) to the primary over the cluster IPC
// channel, with the number of events its buffer dropped; the primary owns the log (LogOwner: the
// memory ring, the store, the files), aggregates the workers' metrics (prom-client's
// AggregatorRegistry) and runs the admin server composed as for a standalone server
// (observability.ts), so the dashboard, `sluice log` and /metrics see every worker.
import type { Worker } from 'node:cluster';
import { loadPromClient, registerStoreMetrics } from '../admin/metrics.js';
import type { AdminServer } from '../admin/http.js';
import { policyStatus } from '../policy/status.js';
import type { Logger } from '../logging/logger.js';
import { decodeEventBatch } from '../querylog/event-batch.js';
import { instanceName } from '../querylog/query-log.js';
import type { LoadedRules } from '../rules/load.js';
import { LogOwner } from './log-owner.js';
import { listStatuses, startAdmin } from './observability.js';
import { LOG_MESSAGE, SHARED_MESSAGE } from './worker-ipc.js';

export class PrimaryObservability {
  private admin: AdminServer | undefined;
  private readonly aggregator = new (loadPromClient().AggregatorRegistry)();
  /** The primary's own metrics: its store's. */
  private readonly own = new (loadPromClient().Registry)();
  /** Each worker's last shared-state status (shared mode). */
  private readonly shared = new Map<Worker, Record<string, unknown>>();

  private constructor(
    private loaded: LoadedRules,
    readonly owner: LogOwner,
    private readonly workers: () => number,
    private readonly expected: number,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    registerStoreMetrics(this.own, { store: () => owner.store?.health() });
  }

  static async open(loaded: LoadedRules, workers: () => number, expected: number, log: Logger, now: () => number = Date.now): Promise<PrimaryObservability> {
    const c = loaded.loaded.config;
    const owner = await LogOwner.open(c, loaded.loaded.baseDir, instanceName(c), now, log);
    return new PrimaryObservability(loaded, owner, workers, expected, log, now);
  }

  attach(w: Worker): void {
    w.on('exit', () => this.shared.delete(w));
    w.on('message', (m: { type?: string; batch?: unknown; lost?: unknown; status?: Record<string, unknown> }) => {
      if (m?.type === SHARED_MESSAGE && m.status) {
        this.shared.set(w, m.status);
        return;
      }
      if (m?.type !== LOG_MESSAGE) return;
      if (typeof m.lost === 'number' && m.lost > 0) this.owner.lost(m.lost);
      const events = decodeEventBatch(m.batch);
      if (events) this.owner.write(events);
    });
  }

  /** Healthy when every worker runs and none reports trouble with the shared state. */
  health(): { ok: boolean; [k: string]: unknown } {
    const workers = this.workers();
    const shared = [...this.shared.values()];
    const problems = [...new Set(shared.flatMap((s) => (Array.isArray(s.problems) ? (s.problems as string[]) : [])))];
    if (workers !== this.expected) problems.unshift(`${workers} of ${this.expected} workers running`);
    const base = { ok: problems.length === 0, problems, workers, expectedWorkers: this.expected };
    if (shared.length === 0) return base;
    return { ...base, mode: 'shared', version: shared[0]!.version, redis: shared.every((s) => s.redis === 'ready') ? 'ready' : shared.find((s) => s.redis !== 'ready')!.redis, workersShared: shared };
  }

  reconfigure(loaded: LoadedRules): void {
    this.loaded = loaded;
  }

  async startAdmin(): Promise<void> {
    this.admin = await startAdmin(
      this.loaded,
      this.owner,
      {
        metrics: async () => ({ contentType: this.aggregator.contentType, body: (await this.aggregator.clusterMetrics()) + (await this.own.metrics()) }),
        health: () => this.health(),
        lists: () => listStatuses(this.loaded),
        policies: () => this.loaded.rules.engine.policies.map((p) => policyStatus(p, this.now())),
      },
      this.now,
      this.log,
    );
  }

  async close(): Promise<void> {
    await this.admin?.close();
    await this.owner.close();
  }
}
