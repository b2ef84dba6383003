// What the admin server serves, independent of where it runs (a standalone server, or the primary
// of several workers).
import type { OverrideEntry, OverrideRequest } from '../policy/overrides.js';
import type { ClientNames } from '../match/client-names.js';
import type { LogReader } from '../querylog/log-reader.js';
import type { EraseResult, StoreHealth } from '../querylog/store/store.js';

export interface ListStatus {
  name: string;
  entries: number;
  source: string;
  app?: string | null;
  vendor?: string | null;
  /** Why the list file on disk is not enforced (its last good state is), when it is refused. */
  refused?: string;
}

export interface HealthStatus {
  ok: boolean;
  instance: string;
  uptimeSeconds: number;
  store?: StoreHealth;
  [k: string]: unknown;
}

/** POST /api/admin/cache/flush: how many answers went, from how many resolver processes. */
export interface FlushResult {
  flushed: number;
  /** The name whose subtree was flushed; null for the whole cache. */
  name: string | null;
  /** Resolver processes that flushed (1 standalone, every worker of several). */
  processes: number;
}

/** POST /api/admin/reload: what `kill -HUP` does, with its outcome. */
export interface ReloadResult {
  accepted: boolean;
  /** Why it was rejected, file:line as the server logs them; empty when accepted. */
  problems: string[];
  /** The policy version enforced after it (the previous one when rejected). */
  version: string;
  processes: number;
}

/** GET /api/query: one query through the real pipeline, as if from `client`. */
export interface QueryRequest {
  /** Lower case, no trailing dot. */
  name: string;
  type: number;
  client: string;
}

export interface AnswerRecordText {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

/** What the pipeline did with a query asked through the admin API (admin/query-report.ts). */
export interface QueryReport {
  name: string;
  type: string;
  client: string;
  decision: 'allowed' | 'blocked' | 'refused';
  network: string | null;
  profile: string | null;
  policy: { id: string; title: string; reference: string } | null;
  list: string | null;
  rule: string | null;
  /** Why an allowed name was let through: an allow entry, an exception, a schedule, a dry run. */
  note: string | null;
  rcode: string;
  answers: AnswerRecordText[];
  authority: AnswerRecordText[];
  ede: { code: number; text: string } | null;
  /** Where the answer came from: sluice itself (blocked, refused, local), the cache, stale cache, or an upstream. */
  source: 'local' | 'cache' | 'stale' | 'upstream' | 'none';
  upstream: string | null;
  durationMs: number;
  version: string;
}

/**
 * What the admin token may make the resolvers do: in a standalone server its own resolver, in the
 * primary of several every worker over the cluster IPC channel (worker-ipc.ts).
 */
export interface ResolverActions {
  flushCache(name: string | undefined): Promise<FlushResult>;
  reload(): Promise<ReloadResult>;
  query(q: QueryRequest): Promise<QueryReport>;
}

export interface AdminBackend {
  instance: string;
  /** The admin bearer token: everything but /healthz (which needs none). */
  token: string;
  /** A token that may only read /api/... and /metrics (admin/access.ts); none when undefined. */
  viewerToken?: string;
  /** A token that may only read /metrics; none when undefined. */
  metricsToken?: string;
  /** /metrics without any token (admin.metrics_public). */
  metricsPublic?: boolean;
  /** Every time range the API and dashboard show: the store, else the memory ring. */
  log: LogReader;
  now: () => number;
  /** Erase a data subject's events from the store (GDPR art. 17); undefined without a store. */
  erase: ((client: string, before?: number) => Promise<EraseResult>) | undefined;
  metrics(): Promise<{ contentType: string; body: string }>;
  health(): HealthStatus;
  lists(): ListStatus[];
  policies(): unknown[];
  /** Event counters of the log pipeline, for the dashboard. */
  logStats(): { accepted: number; dropped: number };
  /** Cache flush, reload, query (admin token only); undefined where no resolver can be reached. */
  actions?: ResolverActions | undefined;
  /** Names of client addresses (`client_names`), shown as `clientName` beside `client`. */
  clientNames?: (() => ClientNames) | undefined;
  /** Runtime overrides (`sluice disable|allow|deny`): read by the viewer too, changed by the admin. */
  overrides?: OverrideActions | undefined;
}

export interface OverrideActions {
  list(): Promise<OverrideEntry[]>;
  /** Store a new override; `{ error, usage }` when the request is malformed or refused. */
  add(req: OverrideRequest, by: string): Promise<{ entry: OverrideEntry; stored: 'file' | 'redis'; version?: number } | { error: string; usage: boolean }>;
  /** Remove overrides by id; `unknown` lists ids that are none (nothing changed then). */
  remove(ids: string[], reason: string | undefined, by: string): Promise<{ removed: string[]; unknown: string[] }>;
}
