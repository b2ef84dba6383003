// The admin HTTP server: JSON API over the query log, list and policy status, /metrics for
// Prometheus, /healthz, and the dashboard. Everything but /healthz (and /metrics with
// admin.metrics_public) needs a bearer token, compared in constant time: the admin token for
// everything, a viewer or metrics token for what admin/access.ts lets it read. It never logs a token.
import { isActive, type OverrideRequest } from '../policy/overrides.js';
import { NO_CLIENT_NAMES } from '../match/client-names.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { TYPE } from '../dns/codes.js';
import { normaliseDomain } from '../lists/formats.js';
import type { Logger } from '../logging/logger.js';
import { parseFilter, parseTime } from '../querylog/filter.js';
import { allowed, roleFor } from './access.js';
import type { AdminBackend, ResolverActions } from './backend.js';
import { parseQueryType } from './query-report.js';
import { serveDashboard } from './dashboard.js';

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

function bearerToken(header: string | undefined, url: URL): string | undefined {
  const given = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
  // The dashboard page passes the token in the URL fragment and sends it as a header; browsers
  // opening /metrics or an API URL by hand may use ?token=.
  return given ?? url.searchParams.get('token') ?? undefined;
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(text);
}

export async function handleAdmin(backend: AdminBackend, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const read = method === 'GET' || method === 'HEAD';
  const open = path === '/healthz' || path === '/' || path.startsWith('/dashboard') || path.startsWith('/assets/');
  if (!read && open) return send(res, 405, { error: 'method not allowed' });
  if (path === '/healthz') {
    const h = backend.health();
    return send(res, h.ok ? 200 : 503, h);
  }
  if (path === '/' || path.startsWith('/dashboard') || path.startsWith('/assets/')) {
    // The page itself carries no data; it asks the API with the token.
    if (serveDashboard(path, res)) return;
    return send(res, 404, { error: 'not found' });
  }
  if (!(backend.metricsPublic && path === '/metrics' && read)) {
    const role = roleFor(bearerToken(req.headers.authorization, url), { admin: backend.token, viewer: backend.viewerToken, metrics: backend.metricsToken });
    if (role === undefined) {
      res.setHeader('www-authenticate', 'Bearer realm="sluice"');
      return send(res, 401, { error: 'missing or wrong bearer token' });
    }
    if (!allowed(role, method, path)) return send(res, 403, { error: `the ${role} token may not ${read ? 'read' : method} ${path}` });
  }
  const q = Object.fromEntries(url.searchParams.entries());
  // Only the admin token gets here with another method.
  if (!read) {
    if (method === 'POST' && path === '/api/admin/erase') return erase(backend, q, res);
    if (method === 'POST' && path === '/api/admin/cache/flush') return flushCache(backend, q, req, res);
    if (method === 'POST' && path === '/api/admin/reload') return reload(backend, res);
    if (method === 'POST' && path === '/api/admin/overrides') return addOverride(backend, req, res);
    if (method === 'DELETE' && path.startsWith('/api/admin/overrides/')) return removeOverride(backend, decodeURIComponent(path.slice('/api/admin/overrides/'.length)), q, res);
    return send(res, 405, { error: 'method not allowed' });
  }
  if (path === '/api/query') return query(backend, q, res);
  if (path === '/api/overrides') {
    if (!backend.overrides) return send(res, 409, { error: 'no runtime overrides in this process' });
    const now = backend.now();
    return act(res, async () => ({ overrides: (await backend.overrides!.list()).map((e) => ({ ...e, active: isActive(e, now) })) }));
  }
  const now = backend.now();
  const names = backend.clientNames?.() ?? NO_CLIENT_NAMES;
  try {
    switch (path) {
      case '/metrics': {
        const m = await backend.metrics();
        return send(res, 200, m.body, m.contentType);
      }
      case '/api/log': {
        const filter = parseFilter(q, now);
        const limit = Math.min(Math.max(Number(q.limit ?? 100) || 100, 1), 1000);
        const offset = Math.max(Number(q.offset ?? 0) || 0, 0);
        const [page, covers] = await Promise.all([backend.log.query(filter, limit, offset), backend.log.covers(filter)]);
        return send(res, 200, { ...page, events: names.label(page.events), limit, offset, instance: backend.instance, covers });
      }
      case '/api/summary': {
        const filter = parseFilter({ since: '15m', ...q }, now);
        const [summary, covers] = await Promise.all([backend.log.summary(filter, { now }), backend.log.covers(filter)]);
        return send(res, 200, { ...summary, topBlockedClients: names.label(summary.topBlockedClients), log: backend.logStats(), instance: backend.instance, covers });
      }
      case '/api/report/devices': {
        const f = parseFilter(q, now);
        const [rows, covers] = await Promise.all([backend.log.devices(f), backend.log.covers(f)]);
        return send(res, 200, { rows: names.label(rows), covers });
      }
      case '/api/report/bypass': {
        const f = parseFilter(q, now);
        const [rows, covers] = await Promise.all([backend.log.bypass({ ...f, ...(q.lists ? { lists: q.lists.split(',') } : {}) }), backend.log.covers(f)]);
        return send(res, 200, { rows: names.label(rows), covers });
      }
      case '/api/report/trend': {
        const f = parseFilter(q, now);
        const by = q.by ?? 'week';
        if (by !== 'day' && by !== 'week' && by !== 'month') throw new Error(`by: "${by}" is not one of day, week, month`);
        const [rows, covers] = await Promise.all([backend.log.trend({ ...f, by }), backend.log.covers(f)]);
        return send(res, 200, { rows, covers });
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

/** POST /api/admin/erase?client=…[&before=…]: a data subject's events out of the store (admin only). */
async function erase(backend: AdminBackend, q: Record<string, string>, res: ServerResponse): Promise<void> {
  if (!backend.erase) return send(res, 409, { error: 'no query-log store is configured: events live only in memory' });
  if (!q.client) return send(res, 400, { error: 'client: required (an address or a pseudonym token)' });
  let before: number | undefined;
  if (q.before) {
    before = parseTime(q.before, backend.now());
    if (before === undefined) return send(res, 400, { error: `before: "${q.before}" is not a time` });
  }
  const result = await backend.erase(q.client, before);
  return send(res, 200, { client: q.client, before: before ?? null, ...result });
}

/** The admin actions, or a 409 saying there are none here (a backend without a resolver). */
function actionsOf(backend: AdminBackend, res: ServerResponse): ResolverActions | undefined {
  const a = backend.actions;
  if (!a) send(res, 409, { error: 'no resolver to act on in this process' });
  return a;
}

/** An action that could not reach the resolvers (no worker serving, one that did not answer): 503. */
async function act<T>(res: ServerResponse, run: () => Promise<T>, status: (r: T) => number = () => 200): Promise<void> {
  let result: T;
  try {
    result = await run();
  } catch (err) {
    return send(res, 503, { error: (err as Error).message });
  }
  return send(res, status(result), result);
}

/** A small JSON body (`{ "name": … }`); {} when there is none. */
async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) {
    text += (chunk as Buffer).toString('utf8');
    if (text.length > 4096) throw new Error('the request body is larger than 4 KiB');
  }
  if (text.trim() === '') return {};
  const body: unknown = JSON.parse(text);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('the request body is not a JSON object');
  return body as Record<string, unknown>;
}

/** POST /api/admin/cache/flush[?name=…] (or `{ "name": … }`): the whole cache, or a name and the names below it. */
async function flushCache(backend: AdminBackend, q: Record<string, string>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let body: Record<string, unknown>;
  try {
    body = await jsonBody(req);
  } catch (err) {
    return send(res, 400, { error: (err as Error).message });
  }
  const given = q.name ?? body.name;
  if (given !== undefined && typeof given !== 'string') return send(res, 400, { error: 'name: expected a domain name as a string' });
  let name: string | undefined;
  if (given !== undefined && given.trim() !== '' && given.trim() !== '.') {
    const n = normaliseDomain(given);
    if ('error' in n) return send(res, 400, { error: `name: ${n.error}` });
    name = n.domain;
  }
  const actions = actionsOf(backend, res);
  if (actions) return act(res, () => actions.flushCache(name));
}

/** POST /api/admin/reload: as SIGHUP; 200 when accepted, 422 with the problems when rejected. */
async function reload(backend: AdminBackend, res: ServerResponse): Promise<void> {
  const actions = actionsOf(backend, res);
  if (actions)
    return act(
      res,
      () => actions.reload(),
      (r) => (r.accepted ? 200 : 422),
    );
}

const OVERRIDE_FIELDS = ['kind', 'policy', 'network', 'domain', 'client', 'for', 'until', 'reason', 'approvedBy'] as const;

/**
 * POST /api/admin/overrides with `{ "kind": "disable"|"allow"|"deny", … }` (the fields of the CLI's
 * options, and `by`: who asks): 201 once it is durable (the file, or Redis), 400/422 when not.
 */
async function addOverride(backend: AdminBackend, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!backend.overrides) return send(res, 409, { error: 'no runtime overrides in this process' });
  let body: Record<string, unknown>;
  try {
    body = await jsonBody(req);
  } catch (err) {
    return send(res, 400, { error: (err as Error).message });
  }
  for (const [k, v] of Object.entries(body)) {
    if (k !== 'by' && !(OVERRIDE_FIELDS as readonly string[]).includes(k)) return send(res, 400, { error: `${k}: not a field of an override (known: ${OVERRIDE_FIELDS.join(', ')}, by)` });
    if (typeof v !== 'string') return send(res, 400, { error: `${k}: expected a string` });
  }
  const kind = body.kind;
  if (kind !== 'disable' && kind !== 'allow' && kind !== 'deny') return send(res, 400, { error: 'kind: expected one of disable, allow, deny' });
  const request: OverrideRequest = { ...(body as Record<string, string>), kind };
  const by = typeof body.by === 'string' && body.by !== '' ? `${body.by} (admin API)` : 'admin API';
  return act(
    res,
    () => backend.overrides!.add(request, by),
    (r) => ('error' in r ? (r.usage ? 400 : 422) : 201),
  );
}

/** DELETE /api/admin/overrides/<id>[?reason=…]: ends a disable early, or removes an entry. */
async function removeOverride(backend: AdminBackend, id: string, q: Record<string, string>, res: ServerResponse): Promise<void> {
  if (!backend.overrides) return send(res, 409, { error: 'no runtime overrides in this process' });
  return act(
    res,
    () => backend.overrides!.remove([id], q.reason, q.by ? `${q.by} (admin API)` : 'admin API'),
    (r) => (r.unknown.length > 0 ? 404 : 200),
  );
}

/** GET /api/query?name=…[&type=A][&client=127.0.0.1]: one query through the pipeline, not logged (admin only). */
async function query(backend: AdminBackend, q: Record<string, string>, res: ServerResponse): Promise<void> {
  if (!q.name) return send(res, 400, { error: 'name: required (the domain name to ask)' });
  const n = normaliseDomain(q.name);
  if ('error' in n) return send(res, 400, { error: `name: ${n.error}` });
  const type = parseQueryType(q.type ?? 'A', TYPE);
  if (type === undefined) return send(res, 400, { error: `type: "${q.type}" is not a query type such as A, AAAA, MX, TXT or TYPE65` });
  const client = q.client ?? '127.0.0.1';
  if (isIP(client) === 0) return send(res, 400, { error: `client: "${client}" is not an IP address` });
  const actions = actionsOf(backend, res);
  if (actions) return act(res, () => actions.query({ name: n.domain, type, client }));
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
