// The end of the pipeline: metrics and the query log of one resolver process. Every process has
// one (a standalone server, and each worker of several). The process that owns the log holds it
// in the one observability root (observability-root.ts), fed here with this process's registry,
// health and resolver; a worker of several has no root: its events and metrics go to the primary
// (worker-ipc.ts), whose root is fed by the workers (cluster-observability.ts).
import { pseudonymKey } from '../config/secrets.js';
import type { Logger } from '../logging/logger.js';
import type { RequestContext } from '../pipeline/context.js';
import type { Resolver } from '../pipeline/resolver.js';
import { policyStatus } from '../policy/status.js';
import { QueryMetrics } from '../admin/metrics.js';
import type { QueryLogSink } from '../querylog/buffer.js';
import { Pseudonymizer } from '../querylog/pseudonymizer.js';
import { QueryLog } from '../querylog/query-log.js';
import type { LoadedRules } from '../rules/load.js';
import { IpcSink, exposeWorkerMetrics } from './worker-ipc.js';
import type { LogOwner } from './log-owner.js';
import type { ResolverActions } from '../admin/backend.js';
import { ObservabilityRoot, listStatuses, type ObservabilitySource } from './observability-root.js';

export class Observability {
  readonly metrics: QueryMetrics;
  readonly queryLog: QueryLog;
  /** The sinks the query log writes to (shared mode adds Redis). */
  sinks: QueryLogSink[];
  /** Cache flush, reload and query for the admin API (set by the server that owns the resolver). */
  actions: ResolverActions | undefined;
  /** The admin side, in the process that owns the log. */
  private readonly root: ObservabilityRoot | undefined;
  private loaded: LoadedRules;

  constructor(
    loaded: LoadedRules,
    /** The log's owner in this process; undefined in a worker of several, whose events go to the primary. */
    readonly owner: LogOwner | undefined,
    private readonly resolver: () => Resolver,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly sharedStatus: () => Record<string, unknown> = () => ({}),
    private readonly tcpConnections: () => number = () => 0,
    private readonly udpDrops: () => [number, number] = () => [0, 0],
    private readonly encryptedConnections: () => { dot: number; doh: number } = () => ({ dot: 0, doh: 0 }),
  ) {
    this.loaded = loaded;
    const c = loaded.loaded.config;
    this.sinks = owner ? [owner] : [new IpcSink()];
    this.queryLog = new QueryLog(c, this.sinks, new Pseudonymizer(pseudonymKey(c, loaded.loaded.baseDir)));
    const buffer = this.queryLog.buffer;
    if (owner) owner.bufferDrops = () => buffer.dropped;
    else (this.sinks[0] as IpcSink).dropped = () => buffer.dropped;
    this.metrics = new QueryMetrics({
      resolver,
      buffer: () => this.queryLog.buffer,
      listSizes: () => new Map(this.loaded.lists.lists.map((l) => [l.def.name, l.set.size])),
      lists: () => this.loaded.lists,
      listRefusals: () => this.loaded.lists.lists.filter((l) => l.def.url === undefined).map((l) => ({ list: l.def.name, refused: l.refused !== undefined, total: l.refusals })),
      now,
      shared: () => this.sharedStatus(),
      tcpConnections: () => this.tcpConnections(),
      udpDrops: () => this.udpDrops(),
      encryptedConnections: () => this.encryptedConnections(),
      ...(owner ? { store: () => owner.store?.health() } : {}),
      ownerDrops: () => owner?.sinkDropped ?? new Map(),
    });
    if (owner) this.root = new ObservabilityRoot(owner, this.source(), now, log);
    else exposeWorkerMetrics(this.metrics.registry);
  }

  /** What the admin shows of this process: its registry, its health, its current rules. */
  private source(): ObservabilitySource {
    return {
      metrics: async () => ({ contentType: this.metrics.registry.contentType, body: await this.metrics.metrics() }),
      health: () => {
        const shared = this.sharedStatus();
        return { ...shared, ok: shared.ok !== false };
      },
      lists: () => listStatuses(this.loaded),
      policies: () => this.resolver().ruleSet.engine.policies.map((p) => policyStatus(p, this.now(), this.resolver().ruleSet.engine.overrides)),
      actions: () => this.actions,
      loadedRules: () => this.loaded,
    };
  }

  /** Hot path, after the answer was sent. */
  done(ctx: RequestContext): void {
    if (ctx.probe) return; // `sluice health`: neither traffic nor a query of anyone's
    const ms = performance.now() - ctx.startedHr;
    this.metrics.observe(ctx, ms / 1000);
    this.queryLog.record(ctx, Math.round(ms * 1000) / 1000);
  }

  reconfigure(loaded: LoadedRules): void {
    this.loaded = loaded;
    this.queryLog.configure(loaded.loaded.config);
  }

  /** Start the admin server (in the process that owns the log): its port, if enabled. */
  startAdmin(): Promise<number | undefined> {
    return this.root ? this.root.start(this.loaded) : Promise.resolve(undefined);
  }

  async close(): Promise<void> {
    // The owner is one of the buffer's sinks: closing the buffer flushes it (and closes the store).
    const drain = () => this.queryLog.buffer.close();
    await (this.root ? this.root.close(drain) : drain());
  }
}
