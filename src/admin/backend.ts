// What the admin server serves, independent of where it runs (a standalone server, or the primary
// of several workers).
import type { MemoryStore } from '../querylog/memory-store.js';

export interface ListStatus {
  name: string;
  entries: number;
  source: string;
  app?: string | null;
  vendor?: string | null;
}

export interface HealthStatus {
  ok: boolean;
  instance: string;
  uptimeSeconds: number;
  [k: string]: unknown;
}

export interface AdminBackend {
  instance: string;
  /** The bearer token for everything but /healthz. */
  token: string;
  store: MemoryStore;
  metrics(): Promise<{ contentType: string; body: string }>;
  health(): HealthStatus;
  lists(): ListStatus[];
  policies(): unknown[];
  /** Event counters of the log pipeline, for the dashboard. */
  logStats(): { accepted: number; dropped: number };
}
