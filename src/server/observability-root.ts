// The one observability root: the process that owns the query log (a standalone server, or the
// primary of several workers) holds one ObservabilityRoot. Given the log (LogOwner), a narrow
// source (metrics text, health, lists, policies) and a clock, it composes the admin backend, runs
// the admin server and closes both. What differs between the two owners is only the source:
// the standalone server's registry and resolver (observability.ts), or the workers' aggregated
// registry and shared status (cluster-observability.ts). So every reader (the dashboard,
// `sluice log`, /metrics, /healthz) sees the same data on the same clock whatever the worker count.
import { adminToken } from '../config/secrets.js';
import type { Logger } from '../logging/logger.js';
import type { PolicyStatus } from '../policy/status.js';
import type { AdminBackend, ListStatus, ResolverActions } from '../admin/backend.js';
import { credentialTokens, type CredentialTokens } from '../admin/credentials.js';
import { startAdminServer, type AdminServer } from '../admin/http.js';
import type { LoadedRules } from '../rules/load.js';
import { describeServing } from '../lists/list-loader.js';
import type { LogOwner } from './log-owner.js';
import { listenError } from './listen-error.js';
import { overrideActions } from './override-actions.js';
import { NO_CLIENT_NAMES, type ClientNames } from '../match/client-names.js';
import { ReverseNames } from '../upstream/reverse-names.js';
import type { Config } from '../config/schema.js';

/** What the owner of the log knows besides the log: all the admin backend asks of it. */
export interface ObservabilitySource {
  /** The Prometheus text of /metrics. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** /healthz before the root adds the log's part (instance, uptime, store, refused lists). */
  health(): { ok: boolean; [k: string]: unknown };
  lists(): ListStatus[];
  policies(): PolicyStatus[];
  /** Cache flush, reload and query on the resolvers (the admin token's actions), when there are any. */
  actions?(): ResolverActions | undefined;
  /** What this process loaded last: where runtime overrides are written (its state_dir, its Redis). */
  loadedRules?(): LoadedRules;
}

export class ObservabilityRoot {
  private admin: AdminServer | undefined;
  private reverse: { config: Config; names: ReverseNames } | undefined;

  constructor(
    readonly owner: LogOwner,
    private readonly source: ObservabilitySource,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  /** The admin API's port, once started; undefined when `admin.enabled` is false. */
  get adminPort(): number | undefined {
    return this.admin?.port;
  }

  /**
   * Start the admin server with the admin settings of `loaded` (address, port, tokens: a reload
   * changes what the source shows, not these). Does nothing when `admin.enabled` is false.
   */
  async start(loaded: LoadedRules): Promise<number | undefined> {
    const c = loaded.loaded.config;
    if (!c.admin.enabled || this.admin) return this.adminPort;
    const token = adminToken(c, loaded.loaded.baseDir);
    const backend = this.backend(token, credentialTokens(c, process.env, token));
    this.admin = await startAdminServer(c.admin.address, c.admin.port, () => backend, this.log).catch((err: unknown) => {
      throw listenError(err, c.admin.address, c.admin.port, 'tcp', 'admin API');
    });
    return this.admin.port;
  }

  /** The names of `r` (client_names), with reverse lookups when it asks for them. */
  private namesOf(r: LoadedRules): ClientNames {
    const c = r.loaded.config;
    if (!c.client_names.reverse) return r.clientNames;
    if (this.reverse?.config !== c) this.reverse = { config: c, names: new ReverseNames(c, r.loaded.baseDir, this.now) };
    const reverse = this.reverse.names;
    return r.clientNames.withFallback((a) => reverse.name(a));
  }

  private backend(token: string, credentials: CredentialTokens): AdminBackend {
    const { owner, source, now } = this;
    const startedAt = now();
    return {
      instance: owner.instance,
      token,
      ...credentials,
      log: owner.reader,
      now,
      erase: owner.store ? (client: string, before?: number) => owner.store!.erase(client, before) : undefined,
      metrics: () => source.metrics(),
      health: () => ({
        ...source.health(),
        // A refused list file is for the admin to look at, not a reason to restart: ok stays as it is.
        lists: { refused: source.lists().flatMap((l) => (l.refused !== undefined ? [{ name: l.name, source: l.source, reason: l.refused }] : [])) },
        instance: owner.instance,
        uptimeSeconds: Math.round((now() - startedAt) / 1000),
        ...(owner.store ? { store: owner.store.health() } : {}),
      }),
      lists: () => source.lists(),
      policies: () => source.policies(),
      logStats: () => ({ accepted: owner.accepted, dropped: owner.dropped }),
      get actions() {
        return source.actions?.();
      },
      clientNames: () => {
        const r = source.loadedRules?.();
        return r ? this.namesOf(r) : NO_CLIENT_NAMES;
      },
      overrides: source.loadedRules
        ? overrideActions(
            () => source.loadedRules!(),
            async () => {
              await source.actions?.()?.reload();
            },
            now,
          )
        : undefined,
    };
  }

  /**
   * Stop the admin server, let `drain` hand the log its last events (the standalone server's
   * buffer), then close the log: its last events are durable.
   */
  async close(drain: () => Promise<void> = () => Promise.resolve()): Promise<void> {
    await this.admin?.close();
    this.admin = undefined;
    await drain();
    await this.owner.close();
  }
}

/** The lists of a load, as the admin shows them. */
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
