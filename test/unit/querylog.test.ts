// The query log's parts without a server: the buffer, the file sink with an injected clock, the
// pseudonymizer, and the file source that `sluice log` reads when the server is down.
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { QueryLogBuffer, type QueryLogSink } from '../../src/querylog/buffer.js';
import { eventJson, type QueryEvent } from '../../src/querylog/event.js';
import { decodeEventBatch, encodeEventBatch } from '../../src/querylog/event-batch.js';
import { JsonlFileSink } from '../../src/querylog/file-sink.js';
import { parseFilter } from '../../src/querylog/filter.js';
import { FileLogSource } from '../../src/querylog/log-source.js';
import { Pseudonymizer } from '../../src/querylog/pseudonymizer.js';
import { anyEvent } from '../helpers/events.js';

const DAY = 86_400_000;
const D1 = Date.parse('2026-11-01T10:00:00Z');

function ev(time: number, name: string, e: Partial<QueryEvent> = {}): QueryEvent {
  return {
    time,
    instance: 't',
    client: '10.0.0.1',
    network: 'internal',
    profile: 'staff',
    policy: null,
    list: null,
    rule: null,
    name,
    type: 'A',
    decision: 'allowed',
    wouldBlock: false,
    exception: false,
    cache: false,
    upstream: null,
    rcode: 0,
    answers: 1,
    durationMs: 1,
    transport: 'udp',
    ...e,
  };
}

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'sluice-qlog-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as QueryEvent);

describe('QueryLogBuffer', () => {
  it('drops and counts events beyond its capacity, and batches a sink refuses, per sink', () => {
    const got: QueryEvent[] = [];
    const keeper: QueryLogSink = { name: 'keeper', write: (b) => (got.push(...b), true) };
    const refuser: QueryLogSink = { name: 'refuser', write: () => false };
    const thrower: QueryLogSink = {
      name: 'thrower',
      write: () => {
        throw new Error('disk on fire');
      },
    };
    const b = new QueryLogBuffer(3, [keeper, refuser, thrower], 60_000);
    for (let i = 0; i < 5; i++) b.push(ev(D1 + i, `n${i}.example`));
    expect([b.accepted, b.dropped, b.pending]).toEqual([3, 2, 3]);
    b.flush();
    expect(got.map((e) => e.name)).toEqual(['n0.example', 'n1.example', 'n2.example']);
    expect(Object.fromEntries(b.sinkDropped)).toEqual({ refuser: 3, thrower: 3 });
    b.push(ev(D1 + 9, 'after.example'));
    expect(b.pending).toBe(1);
  });

  it('hands a full batch to the sinks at the end of the I/O round, long before the timer', async () => {
    const got: QueryEvent[][] = [];
    const b = new QueryLogBuffer(10_000, [{ name: 'keeper', write: (batch) => (got.push(batch), true) }], 60_000, 4);
    for (let i = 0; i < 3; i++) b.push(ev(D1 + i, `n${i}.example`));
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual([]); // below the batch size: waits for the timer
    b.push(ev(D1 + 3, 'n3.example'));
    expect(b.pending).toBe(4); // never flushed inside push, which is on the query's path
    await new Promise((r) => setImmediate(r));
    expect(got.map((batch) => batch.length)).toEqual([4]);
    expect(b.pending).toBe(0);
    await b.close();
  });
});

describe('JsonlFileSink', () => {
  it('writes each UTC day to its own file, by the injected clock', async () => {
    const dir = tempDir();
    let now = D1;
    const sink = new JsonlFileSink(dir, 30, () => now);
    sink.write([ev(now, 'one.example'), ev(now + 1, 'two.example')]);
    now += DAY;
    sink.write([ev(now, 'three.example')]);
    await sink.close();
    expect(readdirSync(dir).sort()).toEqual(['queries-2026-11-01.jsonl', 'queries-2026-11-02.jsonl']);
    expect(lines(join(dir, 'queries-2026-11-01.jsonl')).map((e) => e.name)).toEqual(['one.example', 'two.example']);
    expect(lines(join(dir, 'queries-2026-11-02.jsonl')).map((e) => e.name)).toEqual(['three.example']);
  });

  it('deletes files older than the retention at start and at each new day', async () => {
    const dir = tempDir();
    for (const d of ['2026-10-28', '2026-10-30', '2026-10-31', '2026-11-01']) writeFileSync(join(dir, `queries-${d}.jsonl`), '');
    writeFileSync(join(dir, 'notes.txt'), 'not a log file');
    let now = D1;
    // 2 days: today and yesterday
    const sink = new JsonlFileSink(dir, 2, () => now);
    expect(readdirSync(dir).sort()).toEqual(['notes.txt', 'queries-2026-10-31.jsonl', 'queries-2026-11-01.jsonl']);
    now += 2 * DAY;
    sink.write([ev(now, 'x.example')]);
    await sink.close();
    expect(readdirSync(dir).sort()).toEqual(['notes.txt', 'queries-2026-11-03.jsonl']);
    expect(sink.enforceRetention()).toEqual([]);
  });
});

describe('Pseudonymizer', () => {
  it('gives the same device the same token, others another, and a different key different tokens', () => {
    const a = new Pseudonymizer(Buffer.from('key-a'));
    const b = new Pseudonymizer(Buffer.from('key-b'));
    expect(a.token('10.0.0.1')).toBe(a.token('10.0.0.1'));
    expect(a.token('10.0.0.1')).toMatch(/^p:[0-9a-f]{16}$/);
    expect(a.token('10.0.0.1')).not.toBe(a.token('10.0.0.2'));
    expect(a.token('10.0.0.1')).not.toBe(b.token('10.0.0.1'));
    expect(new Pseudonymizer(Buffer.from('key-a')).token('10.0.0.1')).toBe(a.token('10.0.0.1'));
  });
});

describe('FileLogSource', () => {
  function writeDays(dir: string): void {
    const day = (d: number, ...evs: QueryEvent[]) => writeFileSync(join(dir, `queries-${new Date(D1 + d * DAY).toISOString().slice(0, 10)}.jsonl`), evs.map((e) => JSON.stringify(e) + '\n').join(''));
    day(0, ev(D1, 'a.example'), ev(D1 + 1000, 'www.tiktok.com', { decision: 'blocked', list: 'tiktok', policy: 'app-ban' }));
    day(1, ev(D1 + DAY, 'b.example', { network: 'guest', client: 'p:00ff' }), ev(D1 + DAY + 1000, 'api.tiktok.com', { decision: 'blocked', list: 'tiktok', policy: 'app-ban' }));
    // an incomplete last line, as while the server writes it
    appendFileSync(join(dir, 'queries-2026-11-02.jsonl'), '{"time":');
  }

  it('reads every day file oldest first with the filters, skipping an incomplete line', async () => {
    const dir = tempDir();
    writeDays(dir);
    const src = new FileLogSource(dir);
    expect((await src.all({})).map((e) => e.name)).toEqual(['a.example', 'www.tiktok.com', 'b.example', 'api.tiktok.com']);
    expect((await src.all(parseFilter({ domain: 'tiktok.com', decision: 'blocked' }))).map((e) => e.name)).toEqual(['www.tiktok.com', 'api.tiktok.com']);
    expect((await src.all(parseFilter({ since: '2026-11-02' }))).map((e) => e.name)).toEqual(['b.example', 'api.tiktok.com']);
    expect((await src.all(parseFilter({ until: '2026-11-02' }))).map((e) => e.name)).toEqual(['a.example', 'www.tiktok.com']);
    expect((await src.all({ client: 'p:00ff' })).map((e) => e.name)).toEqual(['b.example']);
  });

  it('pages newest first with the total', async () => {
    const dir = tempDir();
    writeDays(dir);
    const page = await new FileLogSource(dir).query({}, 2, 1);
    expect(page.total).toBe(4);
    expect(page.events.map((e) => e.name)).toEqual(['b.example', 'www.tiktok.com']);
  });

  it('follows what is appended, across a new day file, never repeating a line', async () => {
    const dir = tempDir();
    writeDays(dir);
    const next = new FileLogSource(dir).follower({ decision: 'blocked' });
    expect(await next()).toEqual([]);
    // complete the partial line, add another
    appendFileSync(join(dir, 'queries-2026-11-02.jsonl'), JSON.stringify(ev(D1 + DAY + 2000, 'x.tiktok.com', { decision: 'blocked' })).slice(8) + '\n');
    appendFileSync(join(dir, 'queries-2026-11-02.jsonl'), JSON.stringify(ev(D1 + DAY + 3000, 'allowed.example')) + '\n');
    expect((await next()).map((e) => e.name)).toEqual(['x.tiktok.com']);
    expect(await next()).toEqual([]);
    writeFileSync(join(dir, 'queries-2026-11-03.jsonl'), JSON.stringify(ev(D1 + 2 * DAY, 'y.tiktok.com', { decision: 'blocked' })) + '\n');
    expect((await next()).map((e) => e.name)).toEqual(['y.tiktok.com']);
    expect(existsSync(join(dir, 'queries-2026-11-03.jsonl'))).toBe(true);
  });
});

// Any query log event, strings with quotes, control characters and lone surrogates included.
const arbitraryEvent = (): fc.Arbitrary<QueryEvent> => anyEvent(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('"', '\\', '\u0000', '\u2028', 'x\ny')));

describe('eventJson', () => {
  it('writes exactly what JSON.stringify writes, for any event', () => {
    fc.assert(
      fc.property(arbitraryEvent(), (e) => {
        expect(eventJson(e)).toBe(JSON.stringify(e));
      }),
      { numRuns: 500 },
    );
  });
});

describe('event batches in columns (worker to primary)', () => {
  it('give back the same events after the trip through JSON, for any batch', () => {
    fc.assert(
      fc.property(fc.array(arbitraryEvent(), { maxLength: 40 }), (events) => {
        const wire = JSON.parse(JSON.stringify(encodeEventBatch(events))) as unknown;
        expect(decodeEventBatch(wire)).toEqual(JSON.parse(JSON.stringify(events)));
      }),
      { numRuns: 300 },
    );
  });

  it('send each repeated string once per batch', () => {
    const e = {
      time: 1,
      instance: 'sluice-a',
      client: '10.0.0.7',
      network: 'internal',
      profile: 'staff',
      policy: null,
      list: 'tiktok',
      rule: 'tiktok.com',
      name: 'x.tiktok.com',
      type: 'A',
      decision: 'blocked',
      wouldBlock: false,
      exception: false,
      cache: false,
      upstream: null,
      rcode: 3,
      answers: 0,
      durationMs: 0.1,
      transport: 'udp',
    } satisfies QueryEvent;
    const b = encodeEventBatch(Array.from({ length: 100 }, (_, i) => ({ ...e, name: `n${i}.tiktok.com` })));
    expect(b.dict.sort()).toEqual(['10.0.0.7', 'A', 'blocked', 'internal', 'sluice-a', 'staff', 'tiktok', 'tiktok.com', 'udp'].sort());
  });

  it('drop a malformed batch instead of storing garbage', () => {
    const good = encodeEventBatch([]);
    for (const bad of [
      null,
      7,
      { ...good, n: 1 },
      {
        ...encodeEventBatch([
          {
            time: 1,
            instance: 'i',
            client: 'c',
            network: null,
            profile: null,
            policy: null,
            list: null,
            rule: null,
            name: 'a',
            type: 'A',
            decision: 'allowed',
            wouldBlock: false,
            exception: false,
            cache: false,
            upstream: null,
            rcode: 0,
            answers: 0,
            durationMs: 1,
            transport: 'udp',
          },
        ]),
        dict: [],
      },
    ]) {
      expect(decodeEventBatch(bad)).toBeUndefined();
    }
    expect(decodeEventBatch(good)).toEqual([]);
  });
});
