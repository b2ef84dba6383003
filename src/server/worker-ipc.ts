// The worker's side of several workers: its query log events, its shared-state status and its
// metrics go to the primary over the cluster IPC channel (cluster-observability.ts is the primary's
// side, the source of its observability root). Apart from both sides, so that neither imports the
// other.
import type { Worker } from 'node:cluster';
import type * as PromClient from 'prom-client';
import type { QueryRequest, ResolverActions } from '../admin/backend.js';
import { loadPromClient } from '../admin/metrics.js';
import type { QueryLogSink } from '../querylog/buffer.js';
import type { QueryEvent } from '../querylog/event.js';
import { encodeEventBatch } from '../querylog/event-batch.js';

export const LOG_MESSAGE = 'sluice-log';
export const SHARED_MESSAGE = 'sluice-shared';

/** Worker side: this worker's shared-state status, after every heartbeat round. */
export function reportShared(status: Record<string, unknown>): void {
  if (process.send && process.connected) process.send({ type: SHARED_MESSAGE, status });
}

/** Worker side: batches go to the primary. Refused (counted) when the channel is gone or backed up. */
export class IpcSink implements QueryLogSink {
  readonly name = 'ipc';
  /** The worker's buffer drops, sent along so that the primary's store can say what it lacks. */
  dropped: () => number = () => 0;
  private sentDrops = 0;

  write(batch: QueryEvent[]): boolean {
    if (!process.send || !process.connected) return false;
    const dropped = this.dropped();
    const lost = dropped - this.sentDrops;
    this.sentDrops = dropped;
    return process.send({ type: LOG_MESSAGE, batch: encodeEventBatch(batch), lost });
  }
}

/** Worker side: answer the primary's metric requests from our registry. */
export function exposeWorkerMetrics(registry: PromClient.Registry): void {
  const client = loadPromClient();
  client.AggregatorRegistry.setRegistries([registry]);
  // prom-client installs the worker's request listener only when an AggregatorRegistry is made.
  new client.AggregatorRegistry();
}

// The admin API's actions (cache flush, reload, query) run where the resolvers are: the primary
// asks each worker with a numbered request and waits for the reply with that number.
export const ADMIN_REQUEST = 'sluice-admin';
export const ADMIN_REPLY = 'sluice-admin-reply';

export type AdminRequest = { action: 'flush'; name: string | undefined } | { action: 'reload' } | { action: 'query'; query: QueryRequest };

interface AdminReplyMessage {
  type: typeof ADMIN_REPLY;
  id: number;
  result?: unknown;
  error?: string;
}

/** Worker side: run the primary's admin requests on this worker's resolver. */
export function answerAdminRequests(actions: ResolverActions): void {
  process.on('message', (m: { type?: string; id?: unknown; request?: AdminRequest }) => {
    if (m?.type !== ADMIN_REQUEST || typeof m.id !== 'number' || !m.request) return;
    const id = m.id;
    const r = m.request;
    const run = r.action === 'flush' ? actions.flushCache(r.name) : r.action === 'reload' ? actions.reload() : actions.query(r.query);
    const reply = (body: Omit<AdminReplyMessage, 'type' | 'id'>) => {
      if (process.send && process.connected) process.send({ type: ADMIN_REPLY, id, ...body } satisfies AdminReplyMessage);
    };
    run.then(
      (result) => reply({ result }),
      (err: Error) => reply({ error: err.message }),
    );
  });
}

let nextRequestId = 1;

/** Primary side: ask worker `w`; rejects when it does not answer within `timeoutMs` or exits first. */
export function askWorker<T>(w: Worker, request: AdminRequest, timeoutMs: number): Promise<T> {
  const id = nextRequestId++;
  return new Promise<T>((resolve, reject) => {
    const done = (err: Error | undefined, result?: unknown) => {
      clearTimeout(timer);
      w.off('message', onMessage);
      w.off('exit', onExit);
      if (err) reject(err);
      else resolve(result as T);
    };
    const onMessage = (m: AdminReplyMessage) => {
      if (m?.type !== ADMIN_REPLY || m.id !== id) return;
      done(m.error !== undefined ? new Error(m.error) : undefined, m.result);
    };
    const onExit = () => done(new Error(`worker ${w.id} exited before it answered`));
    const timer = setTimeout(() => done(new Error(`worker ${w.id} did not answer within ${timeoutMs} ms`)), timeoutMs);
    w.on('message', onMessage);
    w.once('exit', onExit);
    w.send({ type: ADMIN_REQUEST, id, request });
  });
}
