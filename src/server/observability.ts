// The end of the pipeline: metrics and the query log of one resolver process, and the admin
// server that shows them. The process that owns the log (a standalone server, or the primary of
// several workers: see cluster-observability.ts) holds a LogOwner, and both kinds of owner compose
// the admin backend here, in `startAdmin`, over the same store and with the injected clock, so every
// reader sees the same data whatever the worker count.
import { adminToken, pseudonymKey } from '../config/secrets.js';
import type { Logger } from '../logging/logger.js';
import type { RequestContext } from '../pipeline/context.js';
import type { Resolver } from '../pipeline/resolver.js';
import { policyStatus } from '../policy/status.js';
import { QueryMetrics } from '../admin/metrics.js';
import type { AdminBackend, ListStatus } from '../admin/backend.js';
import { credentialTokens } from '../admin/credentials.js';
import { startAdminServer, type AdminServer } from '../admin/http.js';
import type { QueryLogSink } from '../querylog/buffer.js';
import { Pseudonymizer } from '../querylog/pseudonymizer.js';
import { QueryLog } from '../querylog/query-log.js';
import type { LoadedRules } from '../rules/load.js';
import { describeServing } from '../lists/list-loader.js';
import { IpcSink, exposeWorkerMetrics } from './worker-ipc.js';
import type { LogOwner } from './log-owner.js';
import { listenError } from './listen-error.js';

/** What the owner of the log knows besides the log, for the admin backend. */
export interface AdminParts {
  metrics(): Promise<{ contentType: string; body: string }>;
  health(): { ok: boolean; [k: string]: unknown };
  lists(): ListStatus[];
  policies(): unknown[];
}

/**
 * Start the admin server of a log owner (the one composition of the backend, for a standalone
 * server and for the primary of several workers alike). Undefined when `admin.enabled` is false.
 */
export async function startAdmin(loaded: LoadedRules, owner: LogOwner, parts: AdminParts, now: () => number, log: Logger): Promise<AdminServer | undefined> {
  const c = loaded.loaded.config;
  if (!c.admin.enabled) return undefined;
  const token = adminToken(c, loaded.loaded.baseDir);
  const startedAt = now();
  const backend: AdminBackend = {
    instance: owner.instance,
    token,
    ...credentialTokens(c, process.env, token),
    log: owner.reader,
    now,
    erase: owner.store ? (client: string, before?: number) => owner.store!.erase(client, before) : undefined,
    metrics: () => parts.metrics(),
    health: () => ({
      ...parts.health(),
      // A refused list file is for the admin to look at, not a reason to restart: ok stays as it is.
      lists: { refused: parts.lists().flatMap((l) => (l.refused !== undefined ? [{ name: l.name, source: l.source, reason: l.refused }] : [])) },
      instance: owner.instance,
      uptimeSeconds: Math.round((now() - startedAt) / 1000),
      ...(owner.store ? { store: owner.store.health() } : {}),
    }),
    lists: () => parts.lists(),
    policies: () => parts.policies(),
    logStats: () => ({ accepted: owner.accepted, dropped: owner.dropped }),
  };
  return startAdminServer(c.admin.address, c.admin.port, () => backend, log).catch((err: unknown) => {
    throw listenError(err, c.admin.address, c.admin.port, 'tcp', 'admin API');
  });
}

export class Observability {
  readonly metrics: QueryMetrics;
  readonly queryLog: QueryLog;
  /** The sinks the query log writes to (shared mode adds Redis). */
  sinks: QueryLogSink[];
  private admin: AdminServer | undefined;
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
      listRefusals: () => this.loaded.lists.lists.filter((l) => l.def.url === undefined).map((l) => ({ list: l.def.name, refused: l.refused !== undefined, total: l.refusals })),
      now,
      shared: () => this.sharedStatus(),
      tcpConnections: () => this.tcpConnections(),
      udpDrops: () => this.udpDrops(),
      store: () => owner?.store?.health(),
      ownerDrops: () => owner?.sinkDropped ?? new Map(),
    });
    if (!owner) exposeWorkerMetrics(this.metrics.registry);
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
    if (!this.owner) return undefined;
    this.admin = await startAdmin(
      this.loaded,
      this.owner,
      {
        metrics: async () => ({ contentType: this.metrics.registry.contentType, body: await this.metrics.metrics() }),
        health: () => {
          const shared = this.sharedStatus();
          return { ...shared, ok: shared.ok !== false };
        },
        lists: () => listStatuses(this.loaded),
        policies: () => this.resolver().ruleSet.engine.policies.map((p) => policyStatus(p, this.now())),
      },
      this.now,
      this.log,
    );
    return this.admin?.port;
  }

  async close(): Promise<void> {
    await this.admin?.close();
    // The owner is one of the buffer's sinks: closing the buffer flushes it and closes the store.
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
    ...(l.refused ? { refused: `${l.refused.reason}; ${describeServing(l)}` } : {}),
  }));
}
