// The worker's side of several workers: its query log events, its shared-state status and its
// metrics go to the primary over the cluster IPC channel (cluster-observability.ts is the primary's
// side, the source of its observability root). Apart from both sides, so that neither imports the
// other.
import type * as PromClient from 'prom-client';
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
