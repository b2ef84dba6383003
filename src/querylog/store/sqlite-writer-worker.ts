// The SQLite store's writer, in a thread of its own (started by sqlite-thread.ts). It lowers its
// own CPU priority (WRITER_NICE), so that on a busy core the kernel runs the answers first and
// gives this thread what they leave; it writes slice after slice.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { binaryEventCount, decodeEventBinary } from '../event-binary.js';
import { SqliteStore } from './sqlite-store.js';
import type { ToWriter, FromWriter, WriterData } from './sqlite-thread.js';

const port = parentPort!;
const data = workerData as WriterData;
const post = (m: FromWriter): void => port.postMessage(m);

/** A lower priority for this thread only: on Linux a thread's id is a "pid" to setpriority(2). */
function lowerPriority(): boolean {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return false;
    setPriority(tid, data.nice);
    return true;
  } catch {
    return false; // not Linux, or not allowed: the writer still works, at the same priority
  }
}

/**
 * Events wait here as the binary batches they came in (outside the heap), and are decoded into
 * the store's own spill a few slices at a time: as objects, a full spill of 100,000 events held
 * ~50 MB of heap.
 */
const FED_EVENTS = 4096;
const queue: { data: ArrayBuffer; n: number }[] = [];
let queued = 0;
let queuedBytes = 0;
let feeding: NodeJS.Timeout | undefined;

let offset = data.clockOffset;
let received = 0;
let reported = '';
let store: SqliteStore;
try {
  store = new SqliteStore(data.path, {
    ...data.options,
    now: () => Date.now() + offset,
    warn: (message, fields) => post({ t: 'warn', message, ...(fields ? { fields } : {}) }),
  });
} catch (err) {
  post({ t: 'failed', message: (err as Error).message });
  process.exit(1);
}
post({ t: 'ready', lowered: lowerPriority() });

/** Tell the owner what was settled (written or refused) and the store's health, when it changed. */
function report(): void {
  const h = store.health();
  const done = received - queued - h.pending;
  const key = `${done} ${h.written} ${h.failures} ${h.ok} ${queued}`;
  if (key === reported) return;
  reported = key;
  post({ t: 'health', health: { ...h, binarySpill: { events: queued, bytes: queuedBytes } }, settled: done });
}
setInterval(report, 50).unref();

port.on('message', (m: ToWriter) => {
  switch (m.t) {
    case 'write': {
      offset = m.clockOffset;
      const n = binaryEventCount(m.batch);
      received += n;
      queued += n;
      queuedBytes += m.batch.byteLength;
      queue.push({ data: m.batch, n });
      feed(FED_EVENTS);
      return;
    }
    case 'dropped':
      store.noteDropped(m.count, m.time);
      return;
    case 'flush':
      feed(Infinity);
      void store.flush().then(() => {
        report();
        post({ t: 'done', id: m.id });
      });
      return;
    case 'retention':
      void answer(m.id, () => store.enforceRetention(m.now));
      return;
    case 'erase':
      offset = m.clockOffset;
      void answer(m.id, () => store.erase(m.client, m.before));
      return;
    case 'close':
      feed(Infinity);
      void store.close().then(() => {
        report();
        post({ t: 'done', id: m.id });
        port.close();
      });
      return;
  }
});

/** Decode queued batches into the store while it holds fewer than `limit` events. */
function feed(limit: number): void {
  clearTimeout(feeding);
  feeding = undefined;
  let b: { data: ArrayBuffer; n: number } | undefined;
  while (queue.length > 0 && store.health().pending < limit && (b = queue.shift())) {
    queued -= b.n;
    queuedBytes -= b.data.byteLength;
    const events = decodeEventBinary(b.data);
    if (events) store.write(events);
  }
  // The store has FED_EVENTS to write (a few ms), or is failing and retries each second.
  if (queue.length > 0) feeding = setTimeout(() => feed(FED_EVENTS), 2);
}

async function answer(id: number, f: () => Promise<unknown>): Promise<void> {
  try {
    const result = await f();
    report();
    post({ t: 'done', id, result });
  } catch (err) {
    post({ t: 'done', id, error: (err as Error).message });
  }
}
