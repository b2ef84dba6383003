// The viewer and metrics credentials of the admin server, from the config and the environment (in
// the order of config/secrets.ts), for whichever process runs the admin server (see admin/access.ts
// for what each may do). Unlike the admin token, these are never generated: without
// `admin.viewer_token` or its variable there is no viewer token, and likewise for metrics.
import type { Config } from '../config/schema.js';
import { findSecret } from '../config/secrets.js';
import type { AdminBackend } from './backend.js';

export type CredentialTokens = Required<Pick<AdminBackend, 'metricsPublic'>> & Pick<AdminBackend, 'viewerToken' | 'metricsToken'>;

/** Same bound as the config's tokens (`min(16)`), for tokens that come from the environment. */
const MIN_TOKEN_LENGTH = 16;

/**
 * `{ viewerToken, metricsToken, metricsPublic }` to spread into an AdminBackend. Throws when a
 * token from the environment is too short, or the same as another role's: a start that fails
 * saying so beats a token that is easy to guess or gives more than it should.
 */
export function credentialTokens(config: Config, env: NodeJS.ProcessEnv = process.env, adminToken?: string): CredentialTokens {
  const a = config.admin;
  const read = (configured: string | undefined, variable: string): string | undefined => {
    const found = findSecret({ configured, variable }, env);
    if (found?.from === 'env' && found.value.length < MIN_TOKEN_LENGTH) throw new Error(`$${variable} is shorter than ${MIN_TOKEN_LENGTH} characters`);
    return found?.value;
  };
  const viewerToken = read(a.viewer_token, a.viewer_token_env);
  const metricsToken = read(a.metrics_token, a.metrics_token_env);
  if (viewerToken !== undefined && viewerToken === adminToken) throw new Error('the viewer token is the same as the admin token: each role needs a token of its own');
  if (metricsToken !== undefined && (metricsToken === adminToken || metricsToken === viewerToken)) {
    throw new Error(`the metrics token is the same as the ${metricsToken === adminToken ? 'admin' : 'viewer'} token: each role needs a token of its own`);
  }
  return { ...(viewerToken !== undefined ? { viewerToken } : {}), ...(metricsToken !== undefined ? { metricsToken } : {}), metricsPublic: a.metrics_public };
}
