// The admin HTTP server: JSON API over the query log, list and policy status, /metrics for
// Prometheus, /healthz, and the dashboard. Everything but /healthz needs the bearer token, compared
// in constant time. It never logs the token.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Logger } from '../logging/logger.js';
import { parseFilter } from '../querylog/filter.js';
import { summarize } from '../querylog/summary.js';
import type { AdminBackend } from './backend.js';
import { serveDashboard } from './dashboard.js';

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

function tokenMatches(header: string | undefined, token: string, url: URL): boolean {
  let given = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
  // The dashboard page passes the token in the URL fragment and sends it as a header; browsers
  // opening /metrics or an API URL by hand may use ?token=.
  if (given === undefined) given = url.searchParams.get('token') ?? undefined;
  if (given === undefined) return false;
  // Hash both sides so the comparison is constant-time whatever the lengths.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(text);
}

export async function handleAdmin(backend: AdminBackend, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const path = url.pathname;
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' });
  if (path === '/healthz') {
    const h = backend.health();
    return send(res, h.ok ? 200 : 503, h);
  }
  if (path === '/' || path.startsWith('/dashboard') || path.startsWith('/assets/')) {
    // The page itself carries no data; it asks the API with the token.
    if (serveDashboard(path, res)) return;
    return send(res, 404, { error: 'not found' });
  }
  if (!tokenMatches(req.headers.authorization, backend.token, url)) {
    res.setHeader('www-authenticate', 'Bearer realm="sluice"');
    return send(res, 401, { error: 'missing or wrong bearer token' });
  }
  const q = Object.fromEntries(url.searchParams.entries());
  try {
    switch (path) {
      case '/metrics': {
        const m = await backend.metrics();
        return send(res, 200, m.body, m.contentType);
      }
      case '/api/log': {
        const filter = parseFilter(q);
        const limit = Math.min(Math.max(Number(q.limit ?? 100) || 100, 1), 1000);
        const offset = Math.max(Number(q.offset ?? 0) || 0, 0);
        const page = backend.store.query(filter, limit, offset);
        return send(res, 200, { ...page, limit, offset, instance: backend.instance });
      }
      case '/api/summary': {
        const filter = parseFilter({ since: '15m', ...q });
        return send(res, 200, { ...summarize(backend.store.all(), filter), log: backend.logStats(), instance: backend.instance });
      }
      case '/api/lists':
        return send(res, 200, backend.lists());
      case '/api/policies':
        return send(res, 200, backend.policies());
      default:
        return send(res, 404, { error: 'not found' });
    }
  } catch (err) {
    return send(res, 400, { error: (err as Error).message });
  }
}

export function startAdminServer(address: string, port: number, backend: () => AdminBackend, log: Logger): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    handleAdmin(backend(), req, res).catch((err: Error) => {
      log.error({ err: err.message, path: req.url?.split('?')[0] }, 'admin request failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      const bound = (server.address() as { port: number }).port;
      log.info({ address, port: bound }, 'admin server listening');
      resolve({
        port: bound,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
