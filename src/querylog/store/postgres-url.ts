// The PostgreSQL connection URL of the query-log store, from `query_log.store`: a whole URL in the
// environment wins over the config's `url`, and the password comes only from the environment, so
// the config file (usually world-readable) never holds it.
import type { z } from 'zod';
import type { queryLogStoreSchema } from '../../config/schema.js';

type StoreConfig = Pick<z.output<typeof queryLogStoreSchema>, 'url' | 'url_env' | 'password_env'>;

/** The URL to connect with; throws with a message naming the keys when there is none. */
export function postgresUrl(config: StoreConfig, env: NodeJS.ProcessEnv = process.env): string {
  const raw = (config.url_env && env[config.url_env]) || config.url;
  if (!raw) {
    throw new Error(`query_log.store: kind postgres needs a url, or a connection URL in $${config.url_env}`);
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`query_log.store: ${config.url_env && env[config.url_env] ? `$${config.url_env}` : 'url'} is not a URL`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(`query_log.store: the URL must start with postgres:// or postgresql://, not ${url.protocol}//`);
  }
  const password = config.password_env ? env[config.password_env] : undefined;
  // The user stays as the URL names it (an ACL user such as "sluice_writer"); only the password is set.
  if (password) url.password = password;
  return url.toString();
}

/** The URL without its password, for messages and logs. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}
