// The one observability root, fed by a source: what the admin API serves is the source's part plus
// the log's, on the injected clock; and the primary's source (the workers') keeps its /healthz
// semantics: unhealthy while a worker is missing or reports a shared-state problem.
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:cluster';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logging/logger.js';
import { loadRuleSet, type LoadedRules } from '../../src/rules/load.js';
import { WorkersSource } from '../../src/server/cluster-observability.js';
import { LogOwner } from '../../src/server/log-owner.js';
import { ObservabilityRoot, type ObservabilitySource } from '../../src/server/observability-root.js';
import { LOG_MESSAGE, SHARED_MESSAGE } from '../../src/server/worker-ipc.js';
import { encodeEventBatch } from '../../src/querylog/event-batch.js';
import type { QueryEvent } from '../../src/querylog/event.js';
import { anEvent } from '../helpers/events.js';

const TOKEN = 'root-test-token-0123456789';
const T0 = Date.parse('2026-03-01T12:00:00Z');

const event = (name: string): QueryEvent => anEvent({ time: T0, name });

const CONFIG = (lists: string) => `listeners: [{ address: 127.0.0.1, port: 0 }]
networks: { internal: { cidrs: [127.0.0.0/8], profile: staff } }
profiles: { staff: { block: [tiktok] } }
lists: { ${lists} }
upstreams: { default: ["192.0.2.1"] }
admin: { enabled: true, address: 127.0.0.1, port: 0, token: "${TOKEN}" }
query_log: { store: { kind: none } }
`;

let dir: string;
let loaded: LoadedRules;
let clock: { now: number };
const now = () => clock.now;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-root-'));
  writeFileSync(join(dir, 'tiktok.txt'), 'tiktok.com\n');
  writeFileSync(join(dir, 'sluice.yaml'), CONFIG('tiktok: { file: tiktok.txt }'));
  loaded = await loadRuleSet(join(dir, 'sluice.yaml'), silentLogger());
  clock = { now: T0 };
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function get(port: number, path: string): Promise<{ status: number; body: string; type: string | null }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
}

function openOwner(): Promise<LogOwner> {
  const c = loaded.loaded.config;
  return LogOwner.open(c, loaded.loaded.baseDir, 'test', now, silentLogger());
}

describe('ObservabilityRoot', () => {
  it('serves the source with the log’s part added, on the injected clock, and closes the log', async () => {
    const owner = await openOwner();
    const source: ObservabilitySource = {
      metrics: () => Promise.resolve({ contentType: 'text/plain; version=0.0.4', body: 'sluice_test 1\n' }),
      health: () => ({ ok: false, problems: ['from the source'] }),
      lists: () => [{ name: 'tiktok', entries: 1, source: 'tiktok.txt', refused: 'not a list' }],
      policies: () => [],
    };
    const root = new ObservabilityRoot(owner, source, now, silentLogger());
    const port = await root.start(loaded);
    expect(port).toBeGreaterThan(0);
    expect(root.adminPort).toBe(port);
    try {
      clock.now = T0 + 90_000;
      const health = await get(port!, '/healthz');
      expect(health.status).toBe(503);
      expect(JSON.parse(health.body)).toMatchObject({
        ok: false,
        problems: ['from the source'],
        instance: 'test',
        uptimeSeconds: 90,
        lists: { refused: [{ name: 'tiktok', source: 'tiktok.txt', reason: 'not a list' }] },
      });
      const metrics = await get(port!, '/metrics');
      expect(metrics.body).toBe('sluice_test 1\n');
      expect(JSON.parse((await get(port!, '/api/lists')).body)).toMatchObject([{ name: 'tiktok', entries: 1 }]);
    } finally {
      let drained = false;
      await root.close(() => {
        drained = true;
        return Promise.resolve();
      });
      expect(drained).toBe(true);
    }
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('starts no admin server when admin is disabled', async () => {
    const owner = await openOwner();
    const off = { ...loaded, loaded: { ...loaded.loaded, config: { ...loaded.loaded.config, admin: { ...loaded.loaded.config.admin, enabled: false } } } };
    const root = new ObservabilityRoot(
      owner,
      { metrics: () => Promise.resolve({ contentType: '', body: '' }), health: () => ({ ok: true }), lists: () => [], policies: () => [] },
      now,
      silentLogger(),
    );
    expect(await root.start(off)).toBeUndefined();
    await root.close();
  });
});

describe('WorkersSource', () => {
  const worker = () => Object.assign(new EventEmitter(), { id: 1 }) as unknown as Worker;

  it('is unhealthy while a worker is missing or one reports a shared-state problem', async () => {
    const owner = await openOwner();
    let running = 1;
    const source = new WorkersSource(loaded, owner, () => running, 2, now);
    expect(source.health()).toEqual({ ok: false, problems: ['1 of 2 workers running'], workers: 1, expectedWorkers: 2 });
    running = 2;
    expect(source.health()).toEqual({ ok: true, problems: [], workers: 2, expectedWorkers: 2 });

    const a = worker();
    const b = worker();
    source.attach(a);
    source.attach(b);
    a.emit('message', { type: SHARED_MESSAGE, status: { version: 'v1', redis: 'ready', problems: [] } });
    b.emit('message', { type: SHARED_MESSAGE, status: { version: 'v1', redis: 'connecting', problems: ['redis: not connected'] } });
    expect(source.health()).toMatchObject({ ok: false, problems: ['redis: not connected'], mode: 'shared', version: 'v1', redis: 'connecting' });
    b.emit('exit');
    expect(source.health()).toMatchObject({ ok: true, problems: [], mode: 'shared', redis: 'ready' });
    await owner.close();
  });

  it('writes the workers’ log batches and their drops to the owner, and shows the new load after a reload', async () => {
    const owner = await openOwner();
    const source = new WorkersSource(loaded, owner, () => 1, 1, now);
    const w = worker();
    source.attach(w);
    w.emit('message', { type: LOG_MESSAGE, batch: encodeEventBatch([event('a.example'), event('b.example')]), lost: 3 });
    expect(owner.accepted).toBe(2);
    expect(owner.dropped).toBe(3);
    expect((await owner.reader.events({})).map((e) => e.name).sort()).toEqual(['a.example', 'b.example']);
    expect(source.lists().map((l) => l.name)).toEqual(['tiktok']);

    writeFileSync(join(dir, 'sluice.yaml'), CONFIG('tiktok: { file: tiktok.txt }, other: { file: tiktok.txt }'));
    source.reconfigure(await loadRuleSet(join(dir, 'sluice.yaml'), silentLogger()));
    expect(
      source
        .lists()
        .map((l) => l.name)
        .sort(),
    ).toEqual(['other', 'tiktok']);
    await owner.close();
  });
});
