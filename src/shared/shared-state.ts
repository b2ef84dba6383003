// One instance's view of the shared state in Redis: it applies runtime edits as they are announced,
// publishes its policy version with a heartbeat and reads everyone else's, sends its query log
// events to the shared stream and reads the other instances' events from it. Redis is never on a
// query's path: when it is away the instance keeps serving from its last state (also kept in a
// local snapshot file for a start without Redis), buffers log events up to a bound, and on reconnect
// resynchronises and replays what it buffered.
import { hostname } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import type { RedisConfig } from '../config/schema.js';
import { atomicWrite } from '../lists/list-editor.js';
import type { Logger } from '../logging/logger.js';
import type { QueryLogSink } from '../querylog/buffer.js';
import { eventJson, type QueryEvent } from '../querylog/event.js';
import { readEdits, reseed } from './edit-store.js';
import { createRedis, redisKeys, type RedisClient } from './redis-connection.js';
import { NO_EDITS, type RuntimeEdits } from './runtime-edits.js';

export interface Heartbeat {
  instance: string;
  version: string;
  time: number;
  host: string;
  pid: number;
  editsVersion: number;
}

export interface SharedCacheHooks {
  /** Put an answer resolved by another instance into the local cache. */
  warm(key: string, bytes: Buffer, remainingMs: number): void;
  /** Keys the local cache can still take (its free room). */
  room(): number;
}

const CACHE_WRITE_QUEUE = 10_000;

export interface SharedStateEvents {
  /** New runtime edits to apply (rebuild the rules). */
  edits(e: RuntimeEdits): void;
  /** Events of other instances, read from the shared stream. */
  remoteEvents(batch: QueryEvent[]): void;
}

export class SharedState implements QueryLogSink {
  readonly name = 'redis';
  private readonly redis: RedisClient;
  private readonly sub: RedisClient;
  private readonly reader: RedisClient;
  private readonly keys: ReturnType<typeof redisKeys>;
  private edits: RuntimeEdits = NO_EDITS;
  private pending: QueryEvent[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastId = '$';
  version = '';
  /** Instances whose version differs from ours, as of the last heartbeat round. */
  diverged: string[] = [];
  peers: Heartbeat[] = [];
  droppedEvents = 0;
  replayedEvents = 0;
  private cacheQueue: { key: string; bytes: Buffer; ttlMs: number }[] = [];
  private cacheTimer: NodeJS.Timeout | undefined;
  cacheHooks: SharedCacheHooks | undefined;
  warmed = 0;

  constructor(
    private readonly cfg: RedisConfig,
    readonly instance: string,
    private readonly snapshotFile: string,
    private readonly on: SharedStateEvents,
    private readonly log: Logger,
  ) {
    this.keys = redisKeys(cfg.key_prefix);
    this.redis = createRedis(cfg);
    this.sub = createRedis(cfg);
    this.reader = createRedis(cfg);
    for (const c of [this.redis, this.sub, this.reader]) c.on('error', () => {}); // state changes are logged below
    this.redis.on('ready', () => void this.onReady());
    this.redis.on('close', () => {
      if (!this.closed) this.log.warn({ redis: 'down' }, 'redis connection lost; serving from the last shared state');
    });
    this.sub.on('ready', () => void this.sub.subscribe(this.keys.channel).catch(() => {}));
    this.sub.on('message', (_channel: string, message: string) => {
      try {
        const m = JSON.parse(message) as { type?: string };
        if (m.type === 'edit') void this.sync();
      } catch {
        // not ours
      }
    });
    this.reader.on('ready', () => void this.readLoop());
  }

  get up(): boolean {
    return this.redis.status === 'ready';
  }

  get state(): string {
    return this.redis.status;
  }

  get currentEdits(): RuntimeEdits {
    return this.edits;
  }

  /** The last snapshot on disk (for a start while Redis is down). */
  loadSnapshot(): RuntimeEdits {
    try {
      if (existsSync(this.snapshotFile)) this.edits = JSON.parse(readFileSync(this.snapshotFile, 'utf8')) as RuntimeEdits;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, file: this.snapshotFile }, 'unreadable shared-state snapshot ignored');
    }
    return this.edits;
  }

  private async onReady(): Promise<void> {
    this.log.info({ redis: 'up' }, 'redis connected; synchronising shared state');
    await this.sync();
    await this.replay();
    this.heartbeat();
    if (this.cacheHooks) void this.warmCache();
  }

  /** Shared cache, write-behind: queued here, written in batches; dropped when Redis is away. */
  publishCache(key: string, bytes: Buffer, ttlMs: number): void {
    if (!this.up || this.cacheQueue.length >= CACHE_WRITE_QUEUE) return;
    this.cacheQueue.push({ key, bytes, ttlMs });
    if (!this.cacheTimer) {
      this.cacheTimer = setTimeout(() => this.flushCache(), 200);
      this.cacheTimer.unref();
    }
  }

  private flushCache(): void {
    this.cacheTimer = undefined;
    const batch = this.cacheQueue.splice(0);
    if (batch.length === 0 || !this.up) return;
    const p = this.redis.pipeline();
    for (const e of batch) p.set(`${this.keys.cache}${e.key}`, e.bytes, 'PX', e.ttlMs);
    p.exec().catch(() => {});
  }

  /** Fill the local cache from the shared one (at start and after a reconnect), in the background. */
  private async warmCache(): Promise<void> {
    const hooks = this.cacheHooks!;
    let cursor = '0';
    let warmed = 0;
    try {
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.keys.cache}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length === 0) continue;
        const p = this.redis.pipeline();
        for (const k of keys) p.getBuffer(k).pttl(k);
        const res = (await p.exec()) ?? [];
        for (let i = 0; i < keys.length; i++) {
          const bytes = res[2 * i]?.[1] as Buffer | null;
          const ttl = Number(res[2 * i + 1]?.[1] ?? -1);
          if (bytes && ttl > 0) {
            hooks.warm(keys[i]!.slice(this.keys.cache.length), bytes, ttl);
            warmed++;
          }
        }
      } while (cursor !== '0' && hooks.room() > 0 && !this.closed);
      this.warmed += warmed;
      this.log.info({ answers: warmed }, 'cache warmed from the shared cache');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'shared cache warm-up stopped');
    }
  }

  /** Read every runtime edit; apply when the version moved. */
  async sync(): Promise<void> {
    try {
      const e = await readEdits(this.redis, this.cfg.key_prefix);
      if (e.version < this.edits.version) {
        // Redis came back without the state (restarted without persistence, or failed over to an
        // empty replica): put back what we enforce rather than dropping the admin's edits.
        await reseed(this.redis, this.cfg.key_prefix, this.edits);
        this.log.warn({ version: this.edits.version }, 'redis had lost the shared edits; restored them from this instance');
        return;
      }
      if (e.version === this.edits.version && JSON.stringify(e.lists) === JSON.stringify(this.edits.lists)) return;
      this.edits = e;
      this.on.edits(e);
      await atomicWrite(this.snapshotFile, JSON.stringify(e));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'shared state sync failed; will retry on reconnect or the next announcement');
    }
  }

  /** Publish our heartbeat and read the others', on a timer. */
  heartbeat(): void {
    clearTimeout(this.heartbeatTimer);
    if (this.closed) return;
    const beat: Heartbeat = { instance: this.instance, version: this.version, time: Date.now(), host: hostname(), pid: process.pid, editsVersion: this.edits.version };
    void (async () => {
      try {
        await this.redis.hset(this.keys.instances, this.instance, JSON.stringify(beat));
        const all = await this.redis.hgetall(this.keys.instances);
        this.peers = Object.values(all).flatMap((j) => {
          try {
            return [JSON.parse(j) as Heartbeat];
          } catch {
            return [];
          }
        });
        const fresh = this.peers.filter((p) => Date.now() - p.time < this.cfg.heartbeat_ms * 5);
        this.diverged = fresh.filter((p) => p.version !== this.version).map((p) => p.instance);
      } catch {
        // Redis away: the next beat tries again
      }
    })();
    this.heartbeatTimer = setTimeout(() => this.heartbeat(), this.cfg.heartbeat_ms);
    this.heartbeatTimer.unref();
  }

  /** QueryLogSink: our events go to the shared stream, or wait in a bounded buffer while Redis is away. */
  write(batch: QueryEvent[]): boolean {
    if (!this.up) {
      const room = this.cfg.buffer_events - this.pending.length;
      if (room <= 0) {
        this.droppedEvents += batch.length;
        return true;
      }
      if (batch.length > room) this.droppedEvents += batch.length - room;
      this.pending.push(...batch.slice(0, room));
      return true;
    }
    this.xadd(batch);
    return true;
  }

  private xadd(batch: QueryEvent[]): void {
    const p = this.redis.pipeline();
    for (const e of batch) p.xadd(this.keys.queryLog, 'MAXLEN', '~', String(this.cfg.stream_maxlen), '*', 'e', eventJson(e));
    p.exec().catch(() => {
      this.pending.push(...batch.slice(0, Math.max(0, this.cfg.buffer_events - this.pending.length)));
    });
  }

  private async replay(): Promise<void> {
    while (this.pending.length > 0 && this.up) {
      const batch = this.pending.splice(0, 1000);
      this.xadd(batch);
      this.replayedEvents += batch.length;
    }
    if (this.replayedEvents > 0) this.log.info({ events: this.replayedEvents }, 'replayed query log events buffered while redis was away');
  }

  /** Read other instances' events from the stream into the local log. */
  private async readLoop(): Promise<void> {
    while (!this.closed && this.reader.status === 'ready') {
      try {
        const res = (await this.reader.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', this.keys.queryLog, this.lastId)) as [string, [string, string[]][]][] | null;
        if (!res) continue;
        const batch: QueryEvent[] = [];
        for (const [, entries] of res) {
          for (const [id, fields] of entries) {
            this.lastId = id;
            const json = fields[1];
            if (!json) continue;
            try {
              const e = JSON.parse(json) as QueryEvent;
              if (e.instance !== this.instance) batch.push(e);
            } catch {
              // skip a malformed entry
            }
          }
        }
        if (batch.length > 0) this.on.remoteEvents(batch);
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.cacheTimer);
    for (const c of [this.redis, this.sub, this.reader]) c.disconnect();
  }
}

export function defaultInstanceName(configured: string | undefined): string {
  return configured ?? `${hostname()}`;
}
