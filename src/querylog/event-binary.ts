// Query log events as one ArrayBuffer, for the trip to the SQLite writer thread (sqlite-thread.ts)
// and for PostgreSQL's waiting batches. The column batch of event-batch.ts is made of JavaScript
// arrays: cloned into the writer's heap, the batches waiting there at saturation, and the garbage
// they left, held ~100 MB of it. As an ArrayBuffer the batch is transferred, not copied, and waits
// outside the heap at ~60 bytes an event. Written by hand because it runs on the owner's thread for
// every logged query: a generic serialiser would walk each event's nineteen fields.
//
// The buffer never leaves the process (it is not a file format), so the columns are typed arrays
// in the machine's own byte order. Layout: a header of four u32 (n, dict count, names offset, dict
// offset); then n × time f64, n × durationMs f64, n × CODED codes i32 (-1: null; for the rule, -2
// and below: a suffix of the name), n × rcode i32 (-1: null), n × answers i32, n × flags u8; the
// names (u8 length, latin1: a query name is at most 255 bytes of wire text); last the dictionary
// (u16 byte length, UTF-8), which is known only once every event has been coded.
import { asTransport } from '../pipeline/context.js';
import type { LoggedDecision, QueryEvent } from './event.js';
import { CODED } from './event-batch.js';
const F = CODED.length;
const HEADER = 16;
/** A configured string longer than this is cut (a u16 length holds 3 UTF-8 bytes a character). */
const DICT_CHARS_MAX = 16_000;
/** A rule code at or below this is a suffix of the event's name: the name from RULE_SUFFIX - code. */
const RULE_SUFFIX = -2;

/** Where the columns of a batch of n events start. */
const columnsOf = (n: number) => {
  const duration = HEADER + n * 8;
  const codes = duration + n * 8;
  const rcode = codes + n * F * 4;
  const answers = rcode + n * 4;
  const flags = answers + n * 4;
  return { time: HEADER, duration, codes, rcode, answers, flags, names: flags + n };
};

// One scratch buffer, reused by every batch: the batch is built in it and copied out once, instead
// of allocating a buffer per dictionary string and writing field by field through a DataView (that
// was ~650 ns an event; this is ~150).
const SCRATCH_START = 1 << 16;
const SCRATCH_KEPT = 1 << 22;
let scratch: ArrayBuffer;
let bytes: Uint8Array;
let buf: Buffer;
function setScratch(b: ArrayBuffer): void {
  scratch = b;
  bytes = new Uint8Array(b);
  buf = Buffer.from(b);
}
setScratch(new ArrayBuffer(SCRATCH_START));
function reserve(size: number): void {
  if (size <= scratch.byteLength) return;
  let grown = scratch.byteLength;
  while (grown < size) grown *= 2;
  // What is written so far comes along: the dictionary is reserved after the columns are filled.
  const next = new Uint8Array(grown);
  next.set(bytes);
  setScratch(next.buffer);
}
const dictIndex = new Map<string, number>();
const dictStrings: string[] = [];
const last: (string | null)[] = new Array<string | null>(F).fill(null);
const lastCode = new Int32Array(F);

/** The dictionary code of field f's value (-1: null); the previous event's value is tried first. */
function code(f: number, v: string | null): number {
  if (v === null) return -1;
  if (v === last[f]) return lastCode[f]!;
  let c = dictIndex.get(v);
  if (c === undefined) {
    c = dictStrings.length;
    dictStrings.push(v.length > DICT_CHARS_MAX ? v.slice(0, DICT_CHARS_MAX) : v);
    dictIndex.set(v, c);
  }
  last[f] = v;
  lastCode[f] = c;
  return c;
}

export function encodeEventBinary(events: readonly QueryEvent[]): ArrayBuffer {
  const n = events.length;
  const at = columnsOf(n);
  reserve(at.names + n * 256);
  const time = new Float64Array(scratch, at.time, n);
  const duration = new Float64Array(scratch, at.duration, n);
  const codes = new Int32Array(scratch, at.codes, n * F);
  const rcode = new Int32Array(scratch, at.rcode, n);
  const answers = new Int32Array(scratch, at.answers, n);
  last.fill(null);
  dictIndex.clear();
  dictStrings.length = 0;
  let o = at.names;
  // Field by field, in CODED's order: named reads stay monomorphic where e[CODED[f]] did not.
  for (let i = 0, k = 0; i < n; i++, k += F) {
    const e = events[i]!;
    time[i] = e.time;
    duration[i] = e.durationMs;
    rcode[i] = e.rcode ?? -1;
    answers[i] = e.answers;
    bytes[at.flags + i] = (e.wouldBlock ? 1 : 0) | (e.exception ? 2 : 0) | (e.cache ? 4 : 0);
    codes[k] = code(0, e.instance);
    codes[k + 1] = code(1, e.client);
    codes[k + 2] = code(2, e.network);
    codes[k + 3] = code(3, e.profile);
    codes[k + 4] = code(4, e.policy);
    codes[k + 5] = code(5, e.list);
    // A domain rule is the name or a suffix of it: sent as where it starts in the name. As a
    // dictionary entry it was a new string for almost every blocked query (most of the encoding).
    const name = e.name;
    const len = name.length < 255 ? name.length : 255;
    const rule = e.rule;
    codes[k + 6] = rule !== null && len === name.length && rule.length <= len && name.endsWith(rule) ? RULE_SUFFIX - (len - rule.length) : code(6, rule);
    codes[k + 7] = code(7, e.type);
    codes[k + 8] = code(8, e.decision);
    codes[k + 9] = code(9, e.upstream);
    codes[k + 10] = code(10, e.transport);
    // A charCode loop: for names of a few dozen characters cheaper than a Buffer write call.
    bytes[o++] = len;
    for (let c = 0; c < len; c++) bytes[o++] = name.charCodeAt(c);
  }
  const dictAt = o;
  let dictChars = 0;
  for (const s of dictStrings) dictChars += s.length;
  reserve(dictAt + dictStrings.length * 2 + dictChars * 3);
  for (const s of dictStrings) {
    const len = buf.write(s, o + 2, 'utf8');
    bytes[o] = len & 0xff;
    bytes[o + 1] = len >> 8;
    o += 2 + len;
  }
  const header = new Uint32Array(scratch, 0, 4);
  header[0] = n;
  header[1] = dictStrings.length;
  header[2] = at.names;
  header[3] = dictAt;
  const out = scratch.slice(0, o);
  // An unusually large batch (a flush at close) does not keep its buffer.
  if (scratch.byteLength > SCRATCH_KEPT) setScratch(new ArrayBuffer(SCRATCH_START));
  return out;
}

/** The events of a binary batch; undefined when it is not one (a bad batch is dropped, not trusted). */
export function decodeEventBinary(data: ArrayBuffer): QueryEvent[] | undefined {
  try {
    if (data.byteLength < HEADER) return undefined;
    const [n, d, namesAt, dictAt] = new Uint32Array(data, 0, 4) as unknown as [number, number, number, number];
    const at = columnsOf(n);
    if (at.names !== namesAt || dictAt < namesAt + n || dictAt > data.byteLength) return undefined;
    const b = Buffer.from(data);
    const dict = new Array<string>(d);
    let o = dictAt;
    for (let k = 0; k < d; k++) {
      if (o + 2 > b.length) return undefined;
      const len = b[o]! | (b[o + 1]! << 8);
      if (o + 2 + len > b.length) return undefined;
      dict[k] = b.toString('utf8', o + 2, o + 2 + len);
      o += 2 + len;
    }
    // A batch is read to its last byte: anything else is a cut or damaged one.
    if (o !== b.length) return undefined;
    const time = new Float64Array(data, at.time, n);
    const duration = new Float64Array(data, at.duration, n);
    const codes = new Int32Array(data, at.codes, n * F);
    const rcode = new Int32Array(data, at.rcode, n);
    const answers = new Int32Array(data, at.answers, n);
    for (let k = 0; k < codes.length; k++) if (codes[k]! >= d || (codes[k]! < -1 && k % F !== 6)) return undefined;
    const str = (c: number): string | null => (c < 0 ? null : dict[c]!);
    const out = new Array<QueryEvent>(n);
    let nameAt = namesAt;
    for (let i = 0, k = 0; i < n; i++, k += F) {
      const len = b[nameAt]!;
      if (nameAt + 1 + len > dictAt) return undefined;
      const name = b.toString('latin1', nameAt + 1, nameAt + 1 + len);
      nameAt += 1 + len;
      const ruleCode = codes[k + 6]!;
      if (ruleCode <= RULE_SUFFIX && RULE_SUFFIX - ruleCode > len) return undefined;
      const flags = b[at.flags + i]!;
      const rc = rcode[i]!;
      out[i] = {
        time: time[i]!,
        instance: str(codes[k]!) ?? '',
        client: str(codes[k + 1]!) ?? '',
        network: str(codes[k + 2]!),
        profile: str(codes[k + 3]!),
        policy: str(codes[k + 4]!),
        list: str(codes[k + 5]!),
        rule: ruleCode <= RULE_SUFFIX ? name.slice(RULE_SUFFIX - ruleCode) : str(ruleCode),
        name,
        type: str(codes[k + 7]!) ?? '',
        decision: (str(codes[k + 8]!) ?? 'error') as LoggedDecision,
        wouldBlock: (flags & 1) !== 0,
        exception: (flags & 2) !== 0,
        cache: (flags & 4) !== 0,
        upstream: str(codes[k + 9]!),
        rcode: rc < 0 ? null : rc,
        answers: answers[i]!,
        durationMs: duration[i]!,
        transport: asTransport(str(codes[k + 10]!)),
      };
    }
    return nameAt === dictAt ? out : undefined;
  } catch {
    return undefined;
  }
}

/** Events in a binary batch, without decoding it. */
export const binaryEventCount = (data: ArrayBuffer): number => (data.byteLength >= HEADER ? new Uint32Array(data, 0, 1)[0]! : 0);
