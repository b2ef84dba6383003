// The PostgreSQL store's local spool: batches of events that did not fit in memory while the
// database was away (or slower than the resolver), in a SQLite file (WAL), replayed oldest first
// when the database is back, and kept across restarts. One row per batch, the events as a JSON
// array: the spool is written and read a batch at a time, never searched.
//
// better-sqlite3 is synchronous: the store hands it one batch (at most `batchEvents` events, a few
// milliseconds) per turn of the event loop, never the whole backlog at once.
import { Database, type SqliteDatabase, type SqliteStatement } from './sqlite-driver.js';
import { eventJson, type QueryEvent } from '../event.js';

export interface SpooledBatch {
  id: number;
  /** The writer session and sequence number the batch was formed with (dedup on replay). */
  writer: string;
  seq: number;
  events: QueryEvent[];
}

export class EventSpool {
  private readonly db: SqliteDatabase;
  private readonly insert: SqliteStatement;
  private readonly insertAt: SqliteStatement;
  private readonly first: SqliteStatement;
  private readonly delete: SqliteStatement;
  /** Events in the spool. */
  events: number;
  batches: number;

  /** Throws when the file cannot be opened, or another process has it (see below). */
  constructor(readonly path: string) {
    // Exclusive: one process owns a spool. A second one (a CLI command opened as a writer, two
    // resolvers given one state_dir) would replay the same batches; it is refused at once
    // instead. The operating system drops the lock with the process, so a crash leaves none.
    this.db = new Database(path, { timeout: 0 });
    try {
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.exec('BEGIN IMMEDIATE; COMMIT');
    } catch (err) {
      this.db.close();
      const busy = (err as { code?: string }).code === 'SQLITE_BUSY';
      throw new Error(busy ? `the spool ${path} is in use by another process` : `the spool ${path}: ${(err as Error).message}`);
    }
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY, writer TEXT NOT NULL, seq INTEGER NOT NULL, count INTEGER NOT NULL, events TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS drops (day TEXT NOT NULL, instance TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (day, instance));
    `);
    this.insert = this.db.prepare('INSERT INTO spool (writer, seq, count, events) VALUES (?, ?, ?, ?)');
    this.insertAt = this.db.prepare('INSERT INTO spool (id, writer, seq, count, events) VALUES ((SELECT coalesce(min(id), 1) - 1 FROM spool), ?, ?, ?, ?)');
    this.first = this.db.prepare('SELECT id, writer, seq, events FROM spool ORDER BY id LIMIT 1');
    this.delete = this.db.prepare('DELETE FROM spool WHERE id = ?');
    const r = this.db.prepare('SELECT count(*) AS batches, coalesce(sum(count), 0) AS events FROM spool').get() as { batches: number; events: number };
    this.events = r.events;
    this.batches = r.batches;
  }

  /** After every batch in the spool. */
  append(writer: string, seq: number, events: QueryEvent[]): void {
    this.insert.run(writer, seq, events.length, serialise(events));
    this.events += events.length;
    this.batches++;
  }

  /** Before every batch in the spool: for the batch that was being sent when the store closed. */
  prepend(writer: string, seq: number, events: QueryEvent[]): void {
    this.insertAt.run(writer, seq, events.length, serialise(events));
    this.events += events.length;
    this.batches++;
  }

  oldest(): SpooledBatch | undefined {
    const r = this.first.get() as { id: number; writer: string; seq: number; events: string } | undefined;
    return r && { id: r.id, writer: r.writer, seq: r.seq, events: JSON.parse(r.events) as QueryEvent[] };
  }

  remove(id: number, count: number): void {
    if (this.delete.run(id).changes === 0) return;
    this.events -= count;
    this.batches--;
  }

  /** Drop counts not yet written to the database, kept over a restart. */
  saveDrops(drops: Map<string, number>): void {
    const up = this.db.prepare('INSERT INTO drops (day, instance, count) VALUES (?, ?, ?) ON CONFLICT (day, instance) DO UPDATE SET count = count + excluded.count');
    this.db.transaction(() => {
      for (const [key, count] of drops) {
        const [day, instance] = key.split('\0') as [string, string];
        up.run(day, instance, count);
      }
    })();
  }

  takeDrops(): Map<string, number> {
    const rows = this.db.prepare('DELETE FROM drops RETURNING day, instance, count').all() as { day: string; instance: string; count: number }[];
    return new Map(rows.map((r) => [`${r.day}\0${r.instance}`, r.count]));
  }

  close(): void {
    this.db.close();
  }
}

function serialise(events: QueryEvent[]): string {
  return `[${events.map(eventJson).join(',')}]`;
}
