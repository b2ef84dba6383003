// Observability with several workers: each worker counts its own metrics and sends its query log
// events in batches (in columns: src/querylog/event-batch.ts) to the primary over the cluster IPC channel; the primary keeps the memory ring
// and the files, aggregates the workers' metrics (prom-client's AggregatorRegistry) and runs the
// admin server, so the dashboard, `sluice log` and /metrics see every worker.
import type { Worker } from 'node:cluster';
import { join } from 'node:path';
import type * as PromClient from 'prom-client';
import { loadPromClient } from '../admin/metrics.js';
import type { AdminBackend } from '../admin/backend.js';
import { startAdminServer, type AdminServer } from '../admin/http.js';
import { policyStatus } from '../cli/policy.js';
import { stateDir } from '../lists/catalog.js';
import type { Logger } from '../logging/logger.js';
import type { QueryLogSink } from '../querylog/buffer.js';
import type { QueryEvent } from '../querylog/event.js';
import { decodeEventBatch, encodeEventBatch } from '../querylog/event-batch.js';
import { JsonlFileSink } from '../querylog/file-sink.js';
import { MemoryStore } from '../querylog/memory-store.js';
import type { LoadedRules } from './load-rules.js';
import { adminToken, listStatuses } from './observability.js';

export const LOG_MESSAGE = 'sluice-log';

/** Worker side: batches go to the primary. Refused (counted) when the channel is gone or backed up. */
export class IpcSink implements QueryLogSink {
  readonly name = 'ipc';
  write(batch: QueryEvent[]): boolean {
    if (!process.send || !process.connected) return false;
    return process.send({ type: LOG_MESSAGE, batch: encodeEventBatch(batch) });
  }
}

/** Worker side: answer the primary's metric requests from our registry. */
export function exposeWorkerMetrics(registry: PromClient.Registry): void {
  const client = loadPromClient();
  client.AggregatorRegistry.setRegistries([registry]);
  // prom-client installs the worker's request listener only when an AggregatorRegistry is made.
  new client.AggregatorRegistry();
}

export class PrimaryObservability {
  readonly store: MemoryStore;
  private readonly fileSink: JsonlFileSink | undefined;
  private admin: AdminServer | undefined;
  private readonly aggregator = new (loadPromClient().AggregatorRegistry)();
  private readonly startedAt = Date.now();
  accepted = 0;

  constructor(
    private loaded: LoadedRules,
    private readonly workers: () => number,
    private readonly expected: number,
    private readonly log: Logger,
  ) {
    const c = loaded.loaded.config;
    this.store = new MemoryStore(c.query_log.memory_events);
    if (c.query_log.file) this.fileSink = new JsonlFileSink(join(stateDir(c, loaded.loaded.baseDir), c.query_log.file.dir), c.query_log.file.retention_days);
  }

  attach(w: Worker): void {
    w.on('message', (m: { type?: string; batch?: unknown }) => {
      if (m?.type !== LOG_MESSAGE) return;
      const events = decodeEventBatch(m.batch);
      if (!events) return;
      this.accepted += events.length;
      this.store.write(events);
      this.fileSink?.write(events);
    });
  }

  reconfigure(loaded: LoadedRules): void {
    this.loaded = loaded;
  }

  async startAdmin(): Promise<void> {
    const c = this.loaded.loaded.config;
    if (!c.admin.enabled) return;
    const token = adminToken(c, this.loaded.loaded.baseDir);
    this.admin = await startAdminServer(c.admin.address, c.admin.port, () => this.backend(token), this.log);
  }

  private backend(token: string): AdminBackend {
    const instance = this.loaded.loaded.config.query_log.instance ?? 'sluice';
    return {
      instance,
      token,
      store: this.store,
      metrics: async () => ({ contentType: this.aggregator.contentType, body: await this.aggregator.clusterMetrics() }),
      health: () => ({ ok: this.workers() === this.expected, instance, workers: this.workers(), expectedWorkers: this.expected, uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000) }),
      lists: () => listStatuses(this.loaded),
      policies: () => this.loaded.rules.engine.policies.map((p) => policyStatus(p, Date.now())),
      logStats: () => ({ accepted: this.accepted, dropped: 0 }),
    };
  }

  async close(): Promise<void> {
    await this.admin?.close();
    await this.fileSink?.close();
  }
}
