// The in-memory ring of recent events: the default sink, behind the dashboard, `sluice log` and the
// reports on a standalone server. Fixed capacity; the oldest events fall off.
//
// Columnar on purpose: numbers live in typed arrays and strings in plain arrays, so the ring keeps
// no object per event. Keeping 100,000 event objects alive made every one of them survive into
// V8's old generation, and that promotion was a large part of the garbage collector's pauses under
// load. For the same reason query names, new strings for almost every event, are copied into a
// ring of bytes, and client addresses are interned: a young string stored in this long-lived ring
// is copied by every young-generation collection until it is promoted (measured: 2.5 ms scavenges
// instead of 0.9 ms, and 10% fewer queries a second). Reads (API, dashboard, reports) rebuild event
// objects; they are rare next to writes.
import { TRANSPORTS } from '../pipeline/context.js';
import type { QueryLogSink } from './buffer.js';
import type { LoggedDecision, QueryEvent } from './event.js';
import { matches, type QueryFilter } from './filter.js';

export interface QueryPage {
  events: QueryEvent[];
  /** Matching events in the store (all pages). */
  total: number;
}

const DECISIONS: LoggedDecision[] = ['allowed', 'blocked', 'refused', 'error', 'malformed'];
const DECISION_INDEX: Record<LoggedDecision, number> = { allowed: 0, blocked: 1, refused: 2, error: 3, malformed: 4 };
const WOULD_BLOCK = 1;
const EXCEPTION = 2;
const CACHE = 4;
/** Bits 3-4: the transport's index in TRANSPORTS. */
const TRANSPORT_SHIFT = 3;

// `name` holds only names the byte ring cannot (longer than 255 or not latin1); see nameAt().
type StringColumn = 'instance' | 'client' | 'network' | 'profile' | 'policy' | 'list' | 'rule' | 'name' | 'type' | 'upstream';
const STRING_COLUMNS: StringColumn[] = ['instance', 'client', 'network', 'profile', 'policy', 'list', 'rule', 'name', 'type', 'upstream'];
/** Bytes of name ring per event of capacity: typical names are 15 to 40 characters. */
const NAME_BYTES_PER_EVENT = 64;
const CLIENTS_MAX = 8192;

export class MemoryStore implements QueryLogSink {
  readonly name = 'memory';
  private next = 0;
  private count = 0;
  private readonly time: Float64Array;
  private readonly duration: Float32Array;
  private readonly rcode: Int16Array;
  private readonly answers: Uint16Array;
  private readonly flags: Uint8Array;
  private readonly decision: Uint8Array;
  private readonly strings: Record<StringColumn, (string | null)[]>;
  private readonly names: Buffer;
  private readonly nameStart: Uint32Array;
  private readonly nameLength: Int16Array;
  private nameHead = 0;
  private readonly clients = new Map<string, string>();

  constructor(readonly capacity: number) {
    this.time = new Float64Array(capacity);
    this.duration = new Float32Array(capacity);
    this.rcode = new Int16Array(capacity);
    this.answers = new Uint16Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.decision = new Uint8Array(capacity);
    this.names = Buffer.allocUnsafe(capacity * NAME_BYTES_PER_EVENT);
    this.nameStart = new Uint32Array(capacity);
    this.nameLength = new Int16Array(capacity);
    // Grown as events arrive (slot i is first written when the ring has i events), so an idle
    // server does not hold ten arrays of `capacity` slots. Typed arrays cost nothing until written.
    this.strings = Object.fromEntries(STRING_COLUMNS.map((c) => [c, [] as (string | null)[]])) as Record<StringColumn, (string | null)[]>;
  }

  write(batch: QueryEvent[]): boolean {
    if (this.capacity === 0) return true;
    const s = this.strings;
    for (const e of batch) {
      const i = this.next;
      if (this.count === this.capacity) this.count--; // the event in slot i leaves
      this.time[i] = e.time;
      this.duration[i] = e.durationMs;
      this.rcode[i] = e.rcode ?? -1;
      this.answers[i] = e.answers;
      this.flags[i] = (e.wouldBlock ? WOULD_BLOCK : 0) | (e.exception ? EXCEPTION : 0) | (e.cache ? CACHE : 0) | (TRANSPORTS.indexOf(e.transport) << TRANSPORT_SHIFT);
      this.decision[i] = DECISION_INDEX[e.decision] ?? 3;
      s.instance[i] = e.instance;
      s.client[i] = this.intern(e.client);
      s.network[i] = e.network;
      s.profile[i] = e.profile;
      s.policy[i] = e.policy;
      s.list[i] = e.list;
      s.rule[i] = e.rule;
      s.name[i] = this.storeName(i, e.name);
      s.type[i] = e.type;
      s.upstream[i] = e.upstream;
      this.next = (i + 1) % this.capacity;
      this.count++;
    }
    return true;
  }

  private intern(client: string): string {
    const known = this.clients.get(client);
    if (known !== undefined) return known;
    if (this.clients.size >= CLIENTS_MAX) this.clients.clear();
    this.clients.set(client, client);
    return client;
  }

  /**
   * Copy event `i`'s name into the byte ring; returns the name itself when it cannot go there.
   * Names are written in event order, so the bytes about to be overwritten belong to the oldest
   * events: those leave the store first (it holds fewer than `capacity` events only when names are
   * unusually long). A name that does not fit before the end of the ring starts again at 0, and the
   * events whose names sat in the abandoned end leave too, to keep that order.
   */
  private storeName(i: number, name: string): string | null {
    const len = name.length;
    let latin1 = len <= 255 && len < this.names.length;
    for (let k = 0; latin1 && k < len; k++) if (name.charCodeAt(k) > 0xff) latin1 = false;
    // Every event takes at least one byte (also "" and names kept as strings), so that each one
    // has a place in the order of the ring.
    const size = latin1 ? len + 1 : 1;
    const head = this.nameHead;
    const wrapped = head + size > this.names.length;
    const start = wrapped ? 0 : head;
    const end = start + size;
    while (this.count > 0) {
      const oldest = (this.next - this.count + this.capacity) % this.capacity;
      const o = this.nameStart[oldest]!;
      const l = Math.max(0, this.nameLength[oldest]!) + 1;
      if (!(wrapped && o >= head) && !(o < end && o + l > start)) break;
      this.count--;
    }
    this.nameStart[i] = start;
    this.nameHead = end;
    if (!latin1) {
      this.nameLength[i] = -1;
      return name;
    }
    this.names.write(name, start, 'latin1');
    this.nameLength[i] = len;
    return null;
  }

  private nameAt(i: number): string {
    const len = this.nameLength[i]!;
    if (len < 0) return this.strings.name[i]!;
    const start = this.nameStart[i]!;
    return this.names.toString('latin1', start, start + len);
  }

  get size(): number {
    return this.count;
  }

  private at(i: number): QueryEvent {
    const s = this.strings;
    const f = this.flags[i]!;
    const rcode = this.rcode[i]!;
    return {
      time: this.time[i]!,
      instance: s.instance[i]!,
      client: s.client[i]!,
      network: s.network[i]!,
      profile: s.profile[i]!,
      policy: s.policy[i]!,
      list: s.list[i]!,
      rule: s.rule[i]!,
      name: this.nameAt(i),
      type: s.type[i]!,
      decision: DECISIONS[this.decision[i]!]!,
      wouldBlock: (f & WOULD_BLOCK) !== 0,
      exception: (f & EXCEPTION) !== 0,
      cache: (f & CACHE) !== 0,
      upstream: s.upstream[i]!,
      rcode: rcode < 0 ? null : rcode,
      answers: this.answers[i]!,
      durationMs: Math.round(this.duration[i]! * 1000) / 1000,
      transport: TRANSPORTS[(f >> TRANSPORT_SHIFT) & 3]!,
    };
  }

  /** Oldest first. */
  *all(): IterableIterator<QueryEvent> {
    if (this.capacity === 0) return;
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) yield this.at((start + i) % this.capacity);
  }

  /** Newest first, `offset`/`limit` paging over the matching events. */
  query(filter: QueryFilter, limit = 100, offset = 0): QueryPage {
    const events: QueryEvent[] = [];
    let total = 0;
    for (let k = 0; k < this.count; k++) {
      const i = (this.next - 1 - k + this.capacity * 2) % this.capacity;
      // Cheap column checks first, so most events are never rebuilt.
      if (filter.since !== undefined && this.time[i]! < filter.since) continue;
      if (filter.network !== undefined && this.strings.network[i] !== filter.network) continue;
      const e = this.at(i);
      if (!matches(e, filter)) continue;
      if (total >= offset && events.length < limit) events.push(e);
      total++;
    }
    return { events, total };
  }
}
