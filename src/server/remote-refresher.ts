// Keeps `url` lists fresh: downloads a list that has no copy yet right away, then every
// `refresh_minutes`, and asks for a reload when a download brought a new copy. A failed or
// rejected download keeps the last good copy serving and is logged.
import { dirname } from 'node:path';
import { appendAudit } from '../lists/list-editor.js';
import { auditLogFile } from '../config/paths.js';
import type { ListDefinition } from '../lists/catalog.js';
import { fetchRemoteList } from '../lists/remote.js';
import type { Logger } from '../logging/logger.js';
import type { LoadedRules } from '../rules/load.js';

export class RemoteRefresher {
  private timers = new Map<string, NodeJS.Timeout>();
  private signature = '';

  constructor(
    private readonly log: Logger,
    private readonly reload: () => void,
  ) {}

  schedule(loaded: LoadedRules): void {
    // With several workers only the first downloads; the others see the new copy through the watcher.
    const worker = process.env.SLUICE_WORKER_ID;
    const defs = worker === undefined || worker === '1' ? [...loaded.lists.resolved.lists.values()].filter((d) => d.url !== undefined) : [];
    const c = loaded.loaded.config;
    const sig = JSON.stringify([defs.map((d) => [d.name, d.url, d.refreshMinutes]), c.remote_lists]);
    // Reloads happen often (every list edit); keep the timers unless the url lists changed.
    if (sig === this.signature) return;
    this.signature = sig;
    this.close();
    const audit = auditLogFile(c, loaded.loaded.baseDir);
    const pending = new Set(loaded.lists.pendingRemote.map((d) => d.name));
    for (const def of defs) {
      const run = () => void this.refresh(def, c.remote_lists, audit);
      if (pending.has(def.name)) run();
      const t = setInterval(run, (def.refreshMinutes ?? 1440) * 60_000);
      t.unref();
      this.timers.set(def.name, t);
    }
  }

  private async refresh(def: ListDefinition, opts: { timeout_ms: number; max_bytes: number }, audit: string): Promise<void> {
    try {
      const res = await fetchRemoteList({ name: def.name, url: def.url!, cacheDir: dirname(def.file), timeoutMs: opts.timeout_ms, maxBytes: opts.max_bytes });
      if (res.status === 'updated') {
        this.log.info({ list: def.name, added: res.added.length, removed: res.removed.length }, res.message);
        appendAudit(audit, { command: 'refresh (server)', list: def.name, domains: [], result: res.message });
        this.reload();
      } else if (res.status === 'not-modified') {
        this.log.debug({ list: def.name }, res.message);
      } else {
        this.log.error({ list: def.name, status: res.status, problems: res.problems.length }, res.message);
      }
    } catch (err) {
      this.log.error({ list: def.name, err: (err as Error).message }, `list ${def.name}: could not store the download`);
    }
  }

  close(): void {
    for (const t of this.timers.values()) clearInterval(t);
    this.timers.clear();
  }
}
