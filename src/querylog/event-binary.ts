// Query log events as one ArrayBuffer, for the trip to the SQLite writer thread (sqlite-thread.ts).
// The column batch of event-batch.ts is made of JavaScript arrays: cloned into the writer's heap,
// the batches waiting there at saturation, and the garbage they left, held ~100 MB of it. As an
// ArrayBuffer the batch is transferred, not copied, and waits outside the heap at ~60 bytes an
// event. Written by hand because it runs for every logged query: a generic serialiser would walk
// each event's nineteen fields.
//
// Layout (little-endian): n u32, dict count u32; the dict strings (u16 byte length, UTF-8); then
// n × CODED codes as i32 (-1: null), time f64, durationMs f64, rcode i32 (-1: null), answers i32,
// flags u8; then the names (u8 length, latin1: a query name is at most 255 bytes of wire text).
import { endianness } from 'node:os';
import { asTransport } from '../pipeline/context.js';
import type { LoggedDecision, QueryEvent } from './event.js';
import { CODED } from './event-batch.js';
const F = CODED.length;
const LITTLE_ENDIAN = endianness() === 'LE';

export function encodeEventBinary(events: readonly QueryEvent[]): ArrayBuffer {
  const n = events.length;
  const index = new Map<string, number>();
  const dict: Buffer[] = [];
  let dictBytes = 0;
  const codes = new Int32Array(n * F);
  // The dictionary code of a string field (-1: null), adding it on first sight.
  const code = (v: string | null): number => {
    if (v === null) return -1;
    let c = index.get(v);
    if (c === undefined) {
      c = dict.length;
      const b = Buffer.from(v.length > 16_000 ? v.slice(0, 16_000) : v, 'utf8');
      dict.push(b);
      dictBytes += 2 + b.length;
      index.set(v, c);
    }
    return c;
  };
  let nameBytes = 0;
  // Field by field, in CODED's order: named reads stay monomorphic where e[CODED[f]] did not (it
  // was most of the encoding's ~1 µs an event, on the owner's thread for every logged query).
  for (let i = 0, k = 0; i < n; i++, k += F) {
    const e = events[i]!;
    codes[k] = code(e.instance);
    codes[k + 1] = code(e.client);
    codes[k + 2] = code(e.network);
    codes[k + 3] = code(e.profile);
    codes[k + 4] = code(e.policy);
    codes[k + 5] = code(e.list);
    codes[k + 6] = code(e.rule);
    codes[k + 7] = code(e.type);
    codes[k + 8] = code(e.decision);
    codes[k + 9] = code(e.upstream);
    codes[k + 10] = code(e.transport);
    nameBytes += 1 + Math.min(255, e.name.length);
  }
  const fixed = 8 + dictBytes;
  const columns = n * (F * 4 + 8 + 8 + 4 + 4 + 1);
  const out = new ArrayBuffer(fixed + columns + nameBytes);
  const buf = Buffer.from(out);
  const view = new DataView(out);
  view.setUint32(0, n, true);
  view.setUint32(4, dict.length, true);
  let o = 8;
  for (const b of dict) {
    view.setUint16(o, b.length, true);
    b.copy(buf, o + 2);
    o += 2 + b.length;
  }
  if (LITTLE_ENDIAN) {
    // The codes are little-endian i32 already: one copy.
    buf.set(new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength), o);
    o += codes.byteLength;
  } else {
    for (let k = 0; k < codes.length; k++, o += 4) view.setInt32(o, codes[k]!, true);
  }
  for (let i = 0; i < n; i++) {
    const e = events[i]!;
    view.setFloat64(o, e.time, true);
    view.setFloat64(o + 8, e.durationMs, true);
    view.setInt32(o + 16, e.rcode ?? -1, true);
    view.setInt32(o + 20, e.answers, true);
    buf[o + 24] = (e.wouldBlock ? 1 : 0) | (e.exception ? 2 : 0) | (e.cache ? 4 : 0);
    o += 25;
  }
  for (let i = 0; i < n; i++) {
    const name = events[i]!.name;
    const len = Math.min(255, name.length);
    buf[o] = len;
    buf.write(name.length > len ? name.slice(0, len) : name, o + 1, len, 'latin1');
    o += 1 + len;
  }
  return out;
}

/** The events of a binary batch; undefined when it is not one (a bad batch is dropped, not trusted). */
export function decodeEventBinary(data: ArrayBuffer): QueryEvent[] | undefined {
  try {
    const buf = Buffer.from(data);
    const view = new DataView(data);
    const n = view.getUint32(0, true);
    const d = view.getUint32(4, true);
    let o = 8;
    const dict = new Array<string>(d);
    for (let k = 0; k < d; k++) {
      const len = view.getUint16(o, true);
      if (o + 2 + len > buf.length) return undefined;
      dict[k] = buf.toString('utf8', o + 2, o + 2 + len);
      o += 2 + len;
    }
    const codesAt = o;
    const rowsAt = codesAt + n * F * 4;
    let nameAt = rowsAt + n * 25;
    if (nameAt > buf.length) return undefined;
    const at = (i: number, f: number): string | null => {
      const c = view.getInt32(codesAt + (i * F + f) * 4, true);
      if (c >= d) throw new RangeError('code past the dictionary');
      return c < 0 ? null : dict[c]!;
    };
    const out = new Array<QueryEvent>(n);
    for (let i = 0; i < n; i++) {
      const r = rowsAt + i * 25;
      const flags = buf[r + 24]!;
      const rcode = view.getInt32(r + 16, true);
      if (nameAt >= buf.length) return undefined;
      const len = buf[nameAt]!;
      if (nameAt + 1 + len > buf.length) return undefined;
      const name = buf.toString('latin1', nameAt + 1, nameAt + 1 + len);
      nameAt += 1 + len;
      out[i] = {
        time: view.getFloat64(r, true),
        instance: at(i, 0) ?? '',
        client: at(i, 1) ?? '',
        network: at(i, 2),
        profile: at(i, 3),
        policy: at(i, 4),
        list: at(i, 5),
        rule: at(i, 6),
        name,
        type: at(i, 7) ?? '',
        decision: (at(i, 8) ?? 'error') as LoggedDecision,
        wouldBlock: (flags & 1) !== 0,
        exception: (flags & 2) !== 0,
        cache: (flags & 4) !== 0,
        upstream: at(i, 9),
        rcode: rcode < 0 ? null : rcode,
        answers: view.getInt32(r + 20, true),
        durationMs: view.getFloat64(r + 8, true),
        transport: asTransport(at(i, 10)),
      };
    }
    // A batch is read to its last byte: anything else is a cut or damaged one.
    return nameAt === buf.length ? out : undefined;
  } catch {
    return undefined;
  }
}

/** Events in a binary batch, without decoding it. */
export const binaryEventCount = (data: ArrayBuffer): number => (data.byteLength >= 4 ? new DataView(data).getUint32(0, true) : 0);
