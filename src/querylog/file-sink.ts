// Daily JSONL files (`queries-YYYY-MM-DD.jsonl`, UTC days) with a retention in days: files older
// than the retention are deleted, because query logs of staff are personal data. Writes go through
// a stream; when the disk cannot keep up, batches are refused (and counted by the buffer).
import { createWriteStream, mkdirSync, readdirSync, unlinkSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { QueryLogSink } from './buffer.js';
import { eventJson, type QueryEvent } from './event.js';

const FILE = /^queries-(\d{4}-\d{2}-\d{2})\.jsonl$/;
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

export function dayOf(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

export class JsonlFileSink implements QueryLogSink {
  readonly name = 'file';
  private stream: WriteStream | undefined;
  private day = '';
  /** Streams of earlier days still writing out after a rotation: close() waits for them too. */
  private readonly ending = new Set<Promise<void>>();

  constructor(
    readonly dir: string,
    private readonly retentionDays: number,
    private readonly now: () => number = Date.now,
  ) {
    mkdirSync(dir, { recursive: true });
    this.enforceRetention();
  }

  write(batch: QueryEvent[]): boolean {
    const day = dayOf(this.now());
    if (day !== this.day) this.rotate(day);
    if (this.stream!.writableLength > MAX_PENDING_BYTES) return false;
    let text = '';
    for (const e of batch) text += eventJson(e) + '\n';
    this.stream!.write(text);
    return true;
  }

  private rotate(day: string): void {
    if (this.stream) {
      const ended = endStream(this.stream).finally(() => this.ending.delete(ended));
      this.ending.add(ended);
    }
    this.day = day;
    this.stream = createWriteStream(join(this.dir, `queries-${day}.jsonl`), { flags: 'a' });
    this.stream.on('error', () => {
      // a full or vanished disk must not take the resolver down; the next day's file tries again
      this.day = '';
    });
    this.enforceRetention();
  }

  /** Delete files of days older than the retention. Returns the deleted file names. */
  enforceRetention(): string[] {
    const oldest = dayOf(this.now() - (this.retentionDays - 1) * 86_400_000);
    const deleted: string[] = [];
    for (const f of readdirSync(this.dir)) {
      const m = FILE.exec(f);
      if (m && m[1]! < oldest) {
        try {
          unlinkSync(join(this.dir, f));
          deleted.push(f);
        } catch {
          // gone already
        }
      }
    }
    return deleted;
  }

  async close(): Promise<void> {
    const current = this.stream ? endStream(this.stream) : Promise.resolve();
    await Promise.all([current, ...this.ending]);
  }
}

/** End a stream and settle once what it held is written (or it failed: nothing more to wait for). */
function endStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.closed || stream.destroyed) return resolve();
    stream.once('error', () => resolve());
    stream.once('close', () => resolve());
    stream.end();
  });
}

/** Log files in a directory, oldest first. */
export function logFiles(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => FILE.test(f))
      .sort()
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}
