// The end of the pipeline for a standalone server: metrics, the query log and its sinks, and the
// admin server that shows them.
import { join } from 'node:path';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import type { Config } from '../config/schema.js';
import { stateDir } from '../lists/catalog.js';
import type { Logger } from '../logging/logger.js';
import type { RequestContext } from '../pipeline/context.js';
import type { Resolver } from '../pipeline/resolver.js';
import { policyStatus } from '../cli/policy.js';
import { QueryMetrics } from '../admin/metrics.js';
import type { AdminBackend, ListStatus } from '../admin/backend.js';
import { startAdminServer, type AdminServer } from '../admin/http.js';
import type { QueryLogSink } from '../querylog/buffer.js';
import { JsonlFileSink } from '../querylog/file-sink.js';
import { MemoryStore } from '../querylog/memory-store.js';
import { Pseudonymizer } from '../querylog/pseudonymizer.js';
import { QueryLog, pseudonymKey } from '../querylog/query-log.js';
import type { LoadedRules } from './load-rules.js';
import { IpcSink, exposeWorkerMetrics } from './cluster-observability.js';

/** The admin token: config, else the environment variable, else one generated once in state_dir. */
export function adminToken(config: Config, baseDir: string): string {
  if (config.admin.token) return config.admin.token;
  const env = process.env[config.admin.token_env];
  if (env) return env;
  const file = join(stateDir(config, baseDir), 'admin-token');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true });
  const token = randomBytes(24).toString('base64url');
  try {
    writeFileSync(file, token + '\n', { mode: 0o600, flag: 'wx' });
    return token;
  } catch {
    return readFileSync(file, 'utf8').trim(); // another process wrote it first
  }
}

export class Observability {
  readonly metrics: QueryMetrics;
  readonly queryLog: QueryLog;
  readonly store: MemoryStore;
  /** The sinks the query log writes to (shared mode adds Redis). */
  sinks: QueryLogSink[];
  private fileSink: JsonlFileSink | undefined;
  private admin: AdminServer | undefined;
  private loaded: LoadedRules;
  private readonly startedAt = Date.now();

  constructor(
    loaded: LoadedRules,
    private readonly resolver: () => Resolver,
    private readonly log: Logger,
    private readonly now: () => number,
    /** Worker of several: events go to the primary, which keeps the log and runs the admin server. */
    private readonly worker = false,
    private readonly sharedStatus: () => Record<string, unknown> = () => ({}),
    private readonly tcpConnections: () => number = () => 0,
    private readonly udpDrops: () => [number, number] = () => [0, 0],
  ) {
    this.loaded = loaded;
    const c = loaded.loaded.config;
    const dir = stateDir(c, loaded.loaded.baseDir);
    this.store = new MemoryStore(worker ? 0 : c.query_log.memory_events);
    const sinks: QueryLogSink[] = worker ? [new IpcSink()] : [this.store];
    this.sinks = sinks;
    if (c.query_log.file && !worker) {
      this.fileSink = new JsonlFileSink(join(dir, c.query_log.file.dir), c.query_log.file.retention_days, now);
      sinks.push(this.fileSink);
    }
    this.queryLog = new QueryLog(c, sinks, new Pseudonymizer(pseudonymKey(c.query_log.pseudonymize_key_env, join(dir, 'log-key'))));
    this.metrics = new QueryMetrics({
      resolver,
      buffer: () => this.queryLog.buffer,
      listSizes: () => new Map(this.loaded.lists.lists.map((l) => [l.def.name, l.set.size])),
      now,
      shared: () => this.sharedStatus(),
      tcpConnections: () => this.tcpConnections(),
      udpDrops: () => this.udpDrops(),
    });
    if (worker) exposeWorkerMetrics(this.metrics.registry);
  }

  /** Hot path, after the answer was sent. */
  done(ctx: RequestContext): void {
    const ms = performance.now() - ctx.startedHr;
    this.metrics.observe(ctx, ms / 1000);
    this.queryLog.record(ctx, Math.round(ms * 1000) / 1000);
  }

  reconfigure(loaded: LoadedRules): void {
    this.loaded = loaded;
    this.queryLog.configure(loaded.loaded.config);
  }

  async startAdmin(): Promise<number | undefined> {
    const c = this.loaded.loaded.config;
    if (!c.admin.enabled || this.worker) return undefined;
    const token = adminToken(c, this.loaded.loaded.baseDir);
    this.admin = await startAdminServer(c.admin.address, c.admin.port, () => this.backend(token), this.log);
    return this.admin.port;
  }

  backend(token: string): AdminBackend {
    return {
      instance: this.queryLog.instance,
      token,
      store: this.store,
      metrics: async () => ({ contentType: this.metrics.registry.contentType, body: await this.metrics.metrics() }),
      health: () => {
        const shared = this.sharedStatus();
        const diverged = Array.isArray(shared.diverged) && shared.diverged.length > 0;
        return { ok: !diverged, instance: this.queryLog.instance, uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000), ...shared };
      },
      lists: () => listStatuses(this.loaded),
      policies: () => this.resolver().ruleSet.engine.policies.map((p) => policyStatus(p, this.now())),
      logStats: () => ({ accepted: this.queryLog.buffer.accepted, dropped: this.queryLog.buffer.dropped }),
    };
  }

  async close(): Promise<void> {
    await this.admin?.close();
    await this.queryLog.buffer.close();
  }
}

export function listStatuses(loaded: LoadedRules): ListStatus[] {
  return loaded.lists.lists.map((l) => ({
    name: l.def.name,
    entries: l.set.size,
    source: l.def.url ?? l.def.file,
    app: l.def.meta?.app ?? null,
    vendor: l.def.meta?.vendor ?? null,
  }));
}
