// The admin server's three tokens over real HTTP: the admin token does everything, the viewer token
// reads the log and metrics but no admin action, the metrics token reads /metrics only, and
// admin.metrics_public opens /metrics (only) to requests without a token.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdminBackend } from '../../src/admin/backend.js';
import { handleAdmin } from '../../src/admin/http.js';
import { MemoryReader } from '../../src/querylog/log-reader.js';
import { MemoryStore } from '../../src/querylog/memory-store.js';

const ADMIN = 'admin-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const METRICS = 'metrics-token-0123456789';

function backend(extra: Partial<AdminBackend>): AdminBackend {
  return {
    instance: 'test',
    token: ADMIN,
    log: new MemoryReader(new MemoryStore(100), 'test', () => 0),
    now: () => Date.now(),
    erase: undefined,
    metrics: () => Promise.resolve({ contentType: 'text/plain; version=0.0.4', body: 'sluice_queries_total 0\n' }),
    health: () => ({ ok: true, instance: 'test', uptimeSeconds: 1 }),
    lists: () => [],
    policies: () => [],
    logStats: () => ({ accepted: 0, dropped: 0 }),
    ...extra,
  };
}

interface Served {
  url: string;
  close(): Promise<void>;
}

async function serve(b: AdminBackend): Promise<Served> {
  const server: Server = createServer((req, res) => void handleAdmin(b, req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let tokens: Served;
let open: Served;
beforeAll(async () => {
  tokens = await serve(backend({ viewerToken: VIEWER, metricsToken: METRICS }));
  open = await serve(backend({ metricsPublic: true }));
});
afterAll(async () => {
  await tokens?.close();
  await open?.close();
});

const call = async (s: Served, path: string, token?: string, method = 'GET') => {
  const res = await fetch(`${s.url}${path}`, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  return { status: res.status, text: await res.text(), authenticate: res.headers.get('www-authenticate') };
};

describe('admin server tokens', () => {
  it('the admin token reads everything', async () => {
    expect((await call(tokens, '/api/log', ADMIN)).status).toBe(200);
    expect((await call(tokens, '/api/policies', ADMIN)).status).toBe(200);
    expect((await call(tokens, '/metrics', ADMIN)).status).toBe(200);
    // the admin token gets past authorization everywhere, to "not found" or "not that method"
    expect((await call(tokens, '/api/admin/x', ADMIN)).status).toBe(404);
    expect((await call(tokens, '/api/log', ADMIN, 'POST')).status).toBe(405);
    // an admin action: this backend has no store to erase from
    expect((await call(tokens, '/api/admin/erase?client=10.1.2.3', ADMIN, 'POST')).status).toBe(409);
  });

  it('the viewer token reads the query log, summary, lists and metrics', async () => {
    const log = await call(tokens, '/api/log?decision=blocked', VIEWER);
    expect(log.status).toBe(200);
    expect(JSON.parse(log.text)).toMatchObject({ events: [], total: 0, instance: 'test' });
    expect((await call(tokens, '/api/summary', VIEWER)).status).toBe(200);
    expect((await call(tokens, '/api/lists', VIEWER)).status).toBe(200);
    expect((await call(tokens, '/api/log', VIEWER, 'HEAD')).status).toBe(200);
    const metrics = await call(tokens, '/metrics', VIEWER);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toBe('sluice_queries_total 0\n');
    expect((await call(tokens, '/api/report/devices?since=1h', VIEWER)).status).toBe(200);
  });

  it('the viewer token gets 403 for any other method and anything under /api/admin/', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await call(tokens, '/api/log', VIEWER, method);
      expect(r.status, method).toBe(403);
    }
    for (const path of ['/api/admin/x', '/api/admin', '/api/ADMIN/reload', '/api/%61dmin/x', '/api//admin/x']) {
      expect((await call(tokens, path, VIEWER)).status, path).toBe(403);
    }
    expect(JSON.parse((await call(tokens, '/api/admin/x', VIEWER)).text)).toEqual({ error: 'the viewer token may not read /api/admin/x' });
    expect((await call(tokens, '/api/admin/erase?client=10.1.2.3', VIEWER, 'POST')).status).toBe(403);
  });

  it('the metrics token reads /metrics and nothing else', async () => {
    expect((await call(tokens, '/metrics', METRICS)).status).toBe(200);
    expect((await call(tokens, '/api/log', METRICS)).status).toBe(403);
    expect((await call(tokens, '/api/summary', METRICS)).status).toBe(403);
    expect((await call(tokens, '/api/admin/x', METRICS)).status).toBe(403);
    expect((await call(tokens, '/metrics', METRICS, 'POST')).status).toBe(403);
    expect((await call(tokens, '/api/admin/erase?client=10.1.2.3', METRICS, 'POST')).status).toBe(403);
  });

  it('a wrong token, or none, gets 401 with the bearer challenge', async () => {
    for (const token of ['wrong-token-0123456789', `${VIEWER}x`, METRICS.slice(0, -1), undefined]) {
      for (const path of ['/api/log', '/metrics']) {
        const r = await call(tokens, path, token);
        expect(r.status, `${path} ${token}`).toBe(401);
        expect(r.authenticate).toBe('Bearer realm="sluice"');
      }
    }
    expect((await call(tokens, '/api/log', undefined, 'POST')).status).toBe(401);
  });

  it('/healthz needs no token, and takes no other method', async () => {
    expect((await call(tokens, '/healthz')).status).toBe(200);
    expect((await call(tokens, '/healthz', undefined, 'POST')).status).toBe(405);
  });

  it('with metrics_public, /metrics needs no token but the API still does', async () => {
    const metrics = await call(open, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toBe('sluice_queries_total 0\n');
    expect((await call(open, '/api/log')).status).toBe(401);
    expect((await call(open, '/api/log', ADMIN)).status).toBe(200);
    expect((await call(open, '/metrics', undefined, 'POST')).status).toBe(401);
    // without viewer or metrics tokens configured, those strings are just wrong tokens
    expect((await call(open, '/api/log', VIEWER)).status).toBe(401);
  });
});
