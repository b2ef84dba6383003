// What the admin server serves, independent of where it runs (a standalone server, or the primary
// of several workers).
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
}
