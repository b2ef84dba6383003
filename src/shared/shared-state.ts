// One instance's view of the shared state in Redis: it applies the shared edit log (announced on
// a channel, and read again on every heartbeat so a lost announcement is repaired within one),
// publishes its heartbeat and judges its own health against Redis and the others, sends its query
// log events to the shared stream and reads the other instances' events from it. Redis is never on
// a query's path: when it is away the instance keeps serving from its last state (also kept in a
// local snapshot file for a start without Redis), buffers log events up to a bound, and on
// reconnect merges its edits back, resynchronises and replays what it buffered in slices.
import { hostname } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { RedisConfig } from '../config/schema.js';
import { atomicWrite } from '../files/atomic-write.js';
import type { Logger } from '../logging/logger.js';
import type { QueryLogSink } from '../querylog/buffer.js';
import { eventJson, type QueryEvent } from '../querylog/event.js';
import { mergeInto, readLog } from './edit-store.js';
import { editsBehind, judgeInstances, memberName, parseHeartbeats, type Heartbeat, type InstanceStatus, type LogHead } from './instance-health.js';
import { classifyRedisError, createRedis, redisKeys, type RedisClient, type RedisProblem } from './redis-connection.js';
import { extendLog, foldLog, NO_EDITS, parseSnapshot, type RuntimeEdits } from '../rules/edits.js';

export type { Heartbeat } from './instance-health.js';

export interface SharedCacheHooks {
  /** Put an answer resolved by another instance into the local cache. */
  warm(key: string, bytes: Buffer, remainingMs: number): void;
  /** Keys the local cache can still take (its free room). */
  room(): number;
}

const CACHE_WRITE_QUEUE = 10_000;
/** Buffered log events go back to Redis in slices this big, each awaited, so answers keep flowing. */
const REPLAY_SLICE = 100;

export interface SharedStateEvents {
  /** New runtime edits to apply (rebuild the rules). */
  edits(e: RuntimeEdits): void;
  /** Events of other instances, read from the shared stream. */
  remoteEvents(batch: QueryEvent[]): void;
  /** A heartbeat round finished (workers tell the primary their health). */
  beat?(): void;
}

/** What this instance says about its shared state, in health and metrics. */
export interface SharedHealth {
  ok: boolean;
  /** Why not ok, for people (empty when ok). */
  problems: string[];
  redis: string;
  /** Edits of Redis's log this instance lacks. */
  editsBehind: number;
  /** Instances (by name: workers count once) out of step with Redis or with the others, this one included. */
  diverged: string[];
  /** Seconds the last heartbeat round took, or has been waiting (Redis paused or slow). */
  heartbeatSeconds: number;
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
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private beatStarted: number | undefined;
  private lastBeatSeconds = 0;
  private behindRounds = 0;
  private downSince: number | undefined;
  private problem: RedisProblem | undefined;
  private readonly loggedProblem = new Map<string, number>();
  private replaying = false;
  /** The log head Redis held at the last read. */
  head: LogHead | undefined;
  version = '';
  rulesVersion = '';
  rulesSince = Date.now();
  /** Every instance's state as of the last heartbeat round. */
  instances: InstanceStatus[] = [];
  droppedEvents = 0;
  replayedEvents = 0;
  private cacheQueue: { key: string; bytes: Buffer; ttlMs: number }[] = [];
  private cacheTimer: NodeJS.Timeout | undefined;
  cacheHooks: SharedCacheHooks | undefined;
  warmed = 0;
  /** The heartbeat's field: the instance name, and the worker's number with several workers. */
  private readonly member: string;
  private readonly worker: number | undefined;
  private readonly now: () => number;

  constructor(
    private readonly cfg: RedisConfig,
    readonly instance: string,
    private readonly snapshotFile: string,
    private readonly on: SharedStateEvents,
    private readonly log: Logger,
    opts: { worker?: number; baseDir?: string; now?: () => number } = {},
  ) {
    this.worker = opts.worker;
    this.now = opts.now ?? Date.now;
    const worker = opts.worker;
    this.member = memberName({ instance, worker });
    this.keys = redisKeys(cfg.key_prefix);
    const conn = { baseDir: opts.baseDir };
    this.redis = createRedis(cfg, conn);
    this.sub = createRedis(cfg, conn);
    this.reader = createRedis(cfg, conn);
    for (const c of [this.sub, this.reader]) c.on('error', () => {}); // the main connection reports for all three
    this.redis.on('error', (err: Error) => this.onError(err));
    this.redis.on('ready', () => void this.onReady());
    this.redis.on('close', () => {
      this.downSince ??= this.now();
      if (!this.closed && !this.problem) this.log.warn({ redis: 'down' }, 'redis connection lost; serving from the last shared state');
    });
    // Announcements made while the subscriber was away are lost: read the log once it listens again.
    this.sub.on(
      'ready',
      () =>
        void this.sub.subscribe(this.keys.channel).then(
          () => this.sync(),
          () => {},
        ),
    );
    this.sub.on('message', (_channel: string, message: string) => {
      try {
        const m = JSON.parse(message) as { type?: string };
        if (m.type === 'edit') void this.sync();
      } catch {
        // not ours
      }
    });
    this.reader.on('ready', () => void this.readLoop());
    this.downSince = this.now();
  }

  get up(): boolean {
    return this.redis.status === 'ready';
  }

  get state(): string {
    if (this.problem && !this.up) return this.problem.kind === 'connection' ? this.redis.status : `${this.problem.kind}-failed`;
    if (this.up && this.beatStarted !== undefined && this.now() - this.beatStarted > 2 * this.cfg.heartbeat_ms) return 'stalled';
    return this.redis.status;
  }

  get currentEdits(): RuntimeEdits {
    return this.edits;
  }

  /** The last snapshot on disk (for a start while Redis is down). */
  loadSnapshot(): RuntimeEdits {
    try {
      if (existsSync(this.snapshotFile)) this.edits = parseSnapshot(readFileSync(this.snapshotFile, 'utf8'));
    } catch (err) {
      this.log.warn({ err: (err as Error).message, file: this.snapshotFile }, 'unreadable shared-state snapshot ignored');
    }
    return this.edits;
  }

  private onError(err: Error): void {
    const problem = classifyRedisError(err);
    this.problem = problem;
    if (this.closed) return;
    // Once a minute per kind: a wrong password is retried every few seconds.
    const last = this.loggedProblem.get(problem.kind) ?? -Infinity;
    if (this.now() - last < 60_000) return;
    this.loggedProblem.set(problem.kind, this.now());
    if (problem.kind === 'connection') this.log.warn({ redis: 'down', err: problem.message }, `redis unreachable: ${problem.message}`);
    else this.log.error({ redis: problem.kind, err: problem.message }, `redis ${problem.kind === 'auth' ? 'refused the credentials' : 'TLS failed'}: ${problem.message}`);
  }

  private async onReady(): Promise<void> {
    this.problem = undefined;
    this.downSince = undefined;
    this.loggedProblem.clear();
    this.log.info({ redis: 'up' }, 'redis connected; synchronising shared state');
    await this.sync();
    this.heartbeat();
    await this.replay();
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

  /** Reconcile with the log in Redis; one at a time (WATCH state is per connection), again if asked meanwhile. */
  sync(): Promise<void> {
    if (this.syncing) {
      this.syncAgain = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      do {
        this.syncAgain = false;
        await this.reconcile();
      } while (this.syncAgain && !this.closed);
    })().finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async reconcile(): Promise<void> {
    try {
      const held = this.edits;
      const read = await readLog(this.redis, this.cfg.key_prefix, held.epoch === '' ? 0 : held.version);
      this.head = { epoch: read.epoch, version: read.version };
      let next: RuntimeEdits | undefined;
      if (read.epoch === held.epoch && read.version >= held.version) {
        next = extendLog(held, read.epoch, read.entries) ?? foldLog(read.epoch, (await readLog(this.redis, this.cfg.key_prefix)).entries);
      } else if (held.log.length === 0) {
        next = foldLog(read.epoch, held.epoch === '' ? read.entries : (await readLog(this.redis, this.cfg.key_prefix)).entries);
      } else {
        // Redis holds another log than ours (it restarted empty, or failed over to a replica that
        // lagged): merge, so that neither what we enforce nor what was acknowledged since is lost.
        const merged = await mergeInto(this.redis, this.cfg.key_prefix, held);
        next = merged.edits;
        this.head = { epoch: next.epoch, version: next.version };
        if (merged.wrote) this.log.warn({ edits: next.version, held: held.version }, 'redis held another shared edit log; merged it with the edits this instance holds');
      }
      if (next === held) return;
      this.edits = next;
      this.on.edits(next);
      await atomicWrite(this.snapshotFile, JSON.stringify({ epoch: next.epoch, log: next.log }));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'shared state sync failed; will retry at the next heartbeat');
    }
  }

  /** Publish our heartbeat and read the others', on a timer; each round also reconciles the edit log. */
  heartbeat(): void {
    clearTimeout(this.heartbeatTimer);
    if (this.closed) return;
    // A round still waiting means Redis is paused or slow: do not pile up another (state says "stalled").
    if (this.beatStarted === undefined && this.up) void this.beat();
    else this.on.beat?.(); // down or stalled: say so (a worker's primary keeps its last word)
    this.heartbeatTimer = setTimeout(() => this.heartbeat(), this.cfg.heartbeat_ms);
    this.heartbeatTimer.unref();
  }

  private async beat(): Promise<void> {
    const started = (this.beatStarted = this.now());
    try {
      await this.sync();
      const beat: Heartbeat = {
        instance: this.instance,
        ...(this.worker !== undefined ? { worker: this.worker } : {}),
        host: hostname(),
        pid: process.pid,
        time: this.now(),
        version: this.version,
        rulesVersion: this.rulesVersion,
        rulesSince: this.rulesSince,
        epoch: this.edits.epoch,
        editsVersion: this.edits.version,
      };
      const res = await this.redis.pipeline().hset(this.keys.instances, this.member, JSON.stringify(beat)).hgetall(this.keys.instances).exec();
      const all = (res?.[1]?.[1] ?? {}) as Record<string, string>;
      this.instances = judgeInstances(parseHeartbeats(all), this.head, this.now(), this.cfg.heartbeat_ms * 5);
      this.behindRounds = this.head && editsBehind({ epoch: this.edits.epoch, editsVersion: this.edits.version }, this.head) > 0 ? this.behindRounds + 1 : 0;
    } catch {
      // Redis away: the next beat tries again
    } finally {
      this.lastBeatSeconds = (this.now() - started) / 1000;
      this.beatStarted = undefined;
    }
    this.on.beat?.();
  }

  /** Health as a load balancer should see it: only this instance's own trouble makes it unhealthy. */
  health(): SharedHealth {
    const problems: string[] = [];
    const state = this.state;
    if (this.problem && this.problem.kind !== 'connection' && !this.up) problems.push(`redis ${this.problem.kind === 'auth' ? 'refused the credentials' : 'TLS failed'}: ${this.problem.message}`);
    const down = this.downSince === undefined ? 0 : this.now() - this.downSince;
    if (!this.up && this.cfg.unhealthy_after_ms > 0 && down > this.cfg.unhealthy_after_ms) problems.push(`redis unreachable for ${Math.round(down / 1000)} s`);
    const behind = this.head ? editsBehind({ epoch: this.edits.epoch, editsVersion: this.edits.version }, this.head) : 0;
    // One round behind is an edit on its way; two means this instance failed to catch up.
    if (this.behindRounds >= 2) problems.push(`${behind} shared edit(s) behind redis (version ${this.head?.version})`);
    const me = this.instances.find((i) => i.instance === this.instance && i.worker === this.worker);
    if (me?.state === 'diverged' && this.up) problems.push(me.detail ?? 'diverged');
    const pending = this.beatStarted === undefined ? 0 : (this.now() - this.beatStarted) / 1000;
    return {
      ok: problems.length === 0,
      problems,
      redis: state,
      editsBehind: behind,
      diverged: [...new Set(this.instances.filter((i) => i.state === 'behind' || i.state === 'diverged').map((i) => i.instance))],
      heartbeatSeconds: Math.max(pending, this.lastBeatSeconds),
    };
  }

  /** QueryLogSink: our events go to the shared stream, or wait in a bounded buffer while Redis is away. */
  write(batch: QueryEvent[]): boolean {
    if (!this.up || this.replaying) {
      const room = this.cfg.buffer_events - this.pending.length;
      if (room <= 0) {
        this.droppedEvents += batch.length;
        return true;
      }
      if (batch.length > room) this.droppedEvents += batch.length - room;
      this.pending.push(...batch.slice(0, room));
      return true;
    }
    void this.xadd(batch);
    return true;
  }

  private xadd(batch: QueryEvent[]): Promise<unknown> {
    const p = this.redis.pipeline();
    // The instance as a field of its own: readers skip their own events without parsing them.
    for (const e of batch) p.xadd(this.keys.queryLog, 'MAXLEN', '~', String(this.cfg.stream_maxlen), '*', 'i', e.instance, 'e', eventJson(e));
    return p.exec().catch(() => {
      this.pending.push(...batch.slice(0, Math.max(0, this.cfg.buffer_events - this.pending.length)));
    });
  }

  /** Send what was buffered while Redis was away, a slice at a time, yielding to answers between. */
  private async replay(): Promise<void> {
    if (this.replaying) return;
    this.replaying = true;
    let sent = 0;
    try {
      while (this.pending.length > 0 && this.up && !this.closed) {
        const batch = this.pending.splice(0, REPLAY_SLICE);
        await this.xadd(batch);
        sent += batch.length;
        await yieldToLoop();
      }
    } finally {
      this.replaying = false;
    }
    this.replayedEvents += sent;
    if (sent > 0) this.log.info({ events: sent }, 'replayed query log events buffered while redis was away');
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
            if (fields[0] === 'i' && fields[1] === this.instance) continue;
            const json = fields[fields.length - 1];
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
