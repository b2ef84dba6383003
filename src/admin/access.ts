// Who may do what on the admin server. Three bearer tokens, each a role:
//
//   admin    everything: every endpoint, every method (and any admin action to come)
//   viewer   reads: GET/HEAD of /metrics and of /api/... (the query log, summary, reports, lists,
//            policies), never anything under /api/admin/, never /api/query (it makes the resolver
//            ask upstream and fills the cache: an action, though a GET) and never another method
//   metrics  GET/HEAD /metrics only: what a Prometheus server needs
//
// /healthz and the dashboard page need no token (the page holds no data), and admin.metrics_public
// opens /metrics to anyone; both are decided in http.ts before a role is asked for. Pure: the
// tokens come in as values (admin/credentials.ts reads them from the config and environment).
import { createHash, timingSafeEqual } from 'node:crypto';

export type Role = 'admin' | 'viewer' | 'metrics';

/** The configured tokens; viewer and metrics exist only when configured. */
export interface RoleTokens {
  admin: string;
  viewer?: string | undefined;
  metrics?: string | undefined;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * The role a bearer token gives, or undefined when it is none of the configured ones. Both sides
 * are hashed so the comparison is constant-time whatever the lengths, and the token is compared
 * with every configured one so the time taken does not tell which it matched. A token configured
 * for two roles gives the stronger one.
 */
export function roleFor(given: string | undefined, tokens: RoleTokens): Role | undefined {
  if (given === undefined) return undefined;
  const g = digest(given);
  const admin = timingSafeEqual(g, digest(tokens.admin));
  const viewer = tokens.viewer !== undefined && timingSafeEqual(g, digest(tokens.viewer));
  const metrics = tokens.metrics !== undefined && timingSafeEqual(g, digest(tokens.metrics));
  return admin ? 'admin' : viewer ? 'viewer' : metrics ? 'metrics' : undefined;
}

const READ_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD']);

/** Whether `role` may send `method` to `path` (a URL pathname, as URL gives it). */
export function allowed(role: Role, method: string, path: string): boolean {
  if (role === 'admin') return true;
  if (!READ_METHODS.has(method)) return false;
  if (path === '/metrics') return true;
  return role === 'viewer' && isReadApi(path);
}

/** Under /api/ but not reads: the admin token's alone. */
const ADMIN_ONLY_API: ReadonlySet<string> = new Set(['admin', 'query']);

/**
 * /api/ and below, except /api/admin and /api/query and below. Judged on the path a router could make of it:
 * percent-decoded, any case, `\` as `/`, empty segments dropped; a path with a `.` or `..` segment
 * after decoding (URL has already resolved the literal ones) is refused rather than guessed at, so
 * `/api/%61dmin/x`, `/api//admin/x` or `/api/x/..%2Fadmin` never count as reads.
 */
function isReadApi(path: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return false;
  }
  const segments = decoded
    .toLowerCase()
    .split(/[/\\]/)
    .filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) return false;
  return segments.length >= 2 && segments[0] === 'api' && !ADMIN_ONLY_API.has(segments[1]!);
}
