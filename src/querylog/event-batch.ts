// Query log events in columns, for the trip from a worker to the primary over the cluster IPC
// channel (which JSON-encodes every message). As an array of event objects, every event repeated
// its 19 field names and its network, profile, list and upstream strings, and the primary spent a
// third of a core in JSON.parse at 90k queries a second with two workers. In columns the repeated
// strings are sent once per batch and referred to by index, and the numbers are plain arrays.
import { asTransport } from '../pipeline/context.js';
import type { LoggedDecision, QueryEvent } from './event.js';

/** The string fields that repeat across events (names of networks, lists, ...): dictionary-coded. */
export const CODED = ['instance', 'client', 'network', 'profile', 'policy', 'list', 'rule', 'type', 'decision', 'upstream', 'transport'] as const;
type CodedField = (typeof CODED)[number];

export interface EventBatch {
  n: number;
  /** The distinct strings of the coded fields; index -1 is null. */
  dict: string[];
  /** CODED.length × n indexes into dict, field by field. */
  codes: number[];
  name: string[];
  time: number[];
  durationMs: number[];
  /** -1: null */
  rcode: number[];
  answers: number[];
  /** bit 0 wouldBlock, bit 1 exception, bit 2 cache */
  flags: number[];
}

export function encodeEventBatch(events: readonly QueryEvent[]): EventBatch {
  const n = events.length;
  const index = new Map<string, number>();
  const dict: string[] = [];
  const codes = new Array<number>(CODED.length * n);
  const name = new Array<string>(n);
  const time = new Array<number>(n);
  const durationMs = new Array<number>(n);
  const rcode = new Array<number>(n);
  const answers = new Array<number>(n);
  const flags = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const e = events[i]!;
    for (let f = 0; f < CODED.length; f++) {
      const v = e[CODED[f]!] as string | null;
      let code = -1;
      if (v !== null) {
        code = index.get(v) ?? -1;
        if (code < 0) {
          code = dict.length;
          dict.push(v);
          index.set(v, code);
        }
      }
      codes[f * n + i] = code;
    }
    name[i] = e.name;
    time[i] = e.time;
    durationMs[i] = e.durationMs;
    rcode[i] = e.rcode ?? -1;
    answers[i] = e.answers;
    flags[i] = (e.wouldBlock ? 1 : 0) | (e.exception ? 2 : 0) | (e.cache ? 4 : 0);
  }
  return { n, dict, codes, name, time, durationMs, rcode, answers, flags };
}

/** The events of a batch; undefined when it is not a well-formed batch (a bad message is dropped, not trusted). */
export function decodeEventBatch(b: unknown): QueryEvent[] | undefined {
  if (!isBatch(b)) return undefined;
  const { n, dict, codes } = b;
  // The primary decodes every query of every worker: field offsets are looked up once per batch.
  const column = Object.fromEntries(CODED.map((f, k) => [f, k * n])) as Record<CodedField, number>;
  const at = (f: CodedField, i: number): string | null => {
    const c = codes[column[f] + i]!;
    return c < 0 ? null : dict[c]!;
  };
  const out = new Array<QueryEvent>(n);
  for (let i = 0; i < n; i++) {
    const flags = b.flags[i]!;
    const rcode = b.rcode[i]!;
    out[i] = {
      time: b.time[i]!,
      instance: at('instance', i) ?? '',
      client: at('client', i) ?? '',
      network: at('network', i),
      profile: at('profile', i),
      policy: at('policy', i),
      list: at('list', i),
      rule: at('rule', i),
      name: b.name[i]!,
      type: at('type', i) ?? '',
      decision: (at('decision', i) ?? 'error') as LoggedDecision,
      wouldBlock: (flags & 1) !== 0,
      exception: (flags & 2) !== 0,
      cache: (flags & 4) !== 0,
      upstream: at('upstream', i),
      rcode: rcode < 0 ? null : rcode,
      answers: b.answers[i]!,
      durationMs: b.durationMs[i]!,
      transport: asTransport(at('transport', i)),
    };
  }
  return out;
}

function isBatch(b: unknown): b is EventBatch {
  if (typeof b !== 'object' || b === null) return false;
  const x = b as Partial<EventBatch>;
  const n = x.n;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || !Array.isArray(x.dict) || !Array.isArray(x.codes) || x.codes.length !== CODED.length * n) return false;
  for (const col of [x.name, x.time, x.durationMs, x.rcode, x.answers, x.flags]) if (!Array.isArray(col) || col.length !== n) return false;
  const d = x.dict.length;
  return x.codes.every((c) => Number.isInteger(c) && c >= -1 && c < d);
}
