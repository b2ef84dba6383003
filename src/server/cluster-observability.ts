// Observability with several workers: each worker counts its own metrics and sends its query log
// events in batches (in columns: src/querylog/event-batch.ts) to the primary over the cluster IPC
// channel, with the number of events its buffer dropped (worker-ipc.ts). The primary owns the log
// (LogOwner: the memory ring, the store, the files) and runs the one observability root
// (observability-root.ts) as a standalone server does; what it feeds the root is this source: the
// workers' metrics aggregated (prom-client's AggregatorRegistry) with the primary's own, the
// workers' running count and shared-state status, and the lists and policies of its own load. So
// the dashboard, `sluice log` and /metrics see every worker.
import type { Worker } from 'node:cluster';
import { loadPromClient, registerStoreMetrics } from '../admin/metrics.js';
import type { FlushResult, ListStatus, QueryReport, ReloadResult, ResolverActions } from '../admin/backend.js';
import { policyStatus, type PolicyStatus } from '../policy/status.js';
import { decodeEventBatch } from '../querylog/event-batch.js';
import type { LoadedRules } from '../rules/load.js';
import type { LogOwner } from './log-owner.js';
import { listStatuses, type ObservabilitySource } from './observability-root.js';
import { LOG_MESSAGE, SHARED_MESSAGE, askWorker, type AdminRequest } from './worker-ipc.js';

/** How long the primary waits for a worker's answer to an admin action (a reload reads every list). */
const ACTION_TIMEOUT_MS = { flush: 10_000, reload: 60_000, query: 15_000 } as const;

export class WorkersSource implements ObservabilitySource {
  private readonly aggregator = new (loadPromClient().AggregatorRegistry)();
  /** The primary's own metrics: its store's. */
  private readonly own = new (loadPromClient().Registry)();
  /**
   * Set by the primary: the workers that serve, and how it reloads its own view (lists, policies)
   * once they have reloaded. Without it there are no admin actions.
   */
  admin: { workers: () => Worker[]; reloaded: () => Promise<void> } | undefined;
  private nextQueryWorker = 0;
  /** Each worker's last shared-state status (shared mode). */
  private readonly shared = new Map<Worker, Record<string, unknown>>();

  constructor(
    private loaded: LoadedRules,
    private readonly owner: LogOwner,
    /** Workers that said they serve. */
    private readonly workers: () => number,
    private readonly expected: number,
    private readonly now: () => number,
  ) {
    registerStoreMetrics(this.own, { store: () => owner.store?.health() });
  }

  /** Take in a worker's log batches and shared-state status. */
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

  /** What the admin shows after a reload: the lists and policies of the new load. */
  reconfigure(loaded: LoadedRules): void {
    this.loaded = loaded;
  }

  async metrics(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.aggregator.contentType, body: (await this.aggregator.clusterMetrics()) + (await this.own.metrics()) };
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

  /**
   * The admin actions, on the workers: a flush and a reload go to every serving worker and are
   * answered when all have answered; a query goes to one (in turn), whose cache it sees.
   */
  actions(): ResolverActions | undefined {
    const admin = this.admin;
    if (!admin) return undefined;
    const serving = () => {
      const ws = admin.workers();
      if (ws.length === 0) throw new Error('no worker is serving yet');
      return ws;
    };
    const everyWorker = <T>(request: AdminRequest) => Promise.all(serving().map((w) => askWorker<T>(w, request, ACTION_TIMEOUT_MS[request.action])));
    return {
      flushCache: async (name) => {
        const results = await everyWorker<FlushResult>({ action: 'flush', name });
        return { flushed: results.reduce((n, r) => n + r.flushed, 0), name: name ?? null, processes: results.length };
      },
      reload: async () => {
        const results = await everyWorker<ReloadResult>({ action: 'reload' });
        await admin.reloaded();
        // The workers read the same files, so they agree; should one not, the reload is not whole.
        const rejected = results.find((r) => !r.accepted);
        return { accepted: rejected === undefined, problems: rejected?.problems ?? [], version: (rejected ?? results[0]!).version, processes: results.length };
      },
      query: async (query) => {
        const ws = serving();
        const w = ws[this.nextQueryWorker++ % ws.length]!;
        return askWorker<QueryReport>(w, { action: 'query', query }, ACTION_TIMEOUT_MS.query);
      },
    };
  }

  lists(): ListStatus[] {
    return listStatuses(this.loaded);
  }

  loadedRules(): LoadedRules {
    return this.loaded;
  }

  policies(): PolicyStatus[] {
    return this.loaded.rules.engine.policies.map((p) => policyStatus(p, this.now(), this.loaded.rules.engine.overrides));
  }
}
