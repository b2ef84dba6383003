// The secrets of a resolver: the admin API's tokens and the query log's pseudonymisation key. Each
// is looked up in one order, its value in the config, else its environment variable, else its file
// in state_dir (see paths.ts); and a secret the server cannot do without is generated once into that
// file (mode 0600), so that it stays the same across restarts and among the workers of one host.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { adminTokenFile, logKeyFile } from './paths.js';
import type { Config } from './schema.js';

/** Where a secret may be given, looked up in this order. */
export interface SecretPlaces {
  /** Its value in the config (`admin.token`). */
  configured?: string | undefined;
  /** The environment variable that may hold it (`admin.token_env`). */
  variable?: string | undefined;
  /** The file that may hold it (whitespace around it is not part of it). */
  file?: string | undefined;
}

export interface FoundSecret {
  value: string;
  from: 'config' | 'env' | 'file';
}

/** The trimmed text of `file`; undefined when there is no such file or it is empty. */
export function readSecretFile(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return text.trim() || undefined;
}

/** The first place that holds the secret (an empty value counts as none), or undefined: nothing is created. */
export function findSecret(places: SecretPlaces, env: NodeJS.ProcessEnv = process.env): FoundSecret | undefined {
  if (places.configured) return { value: places.configured, from: 'config' };
  const fromEnv = places.variable !== undefined ? env[places.variable] : undefined;
  if (fromEnv) return { value: fromEnv, from: 'env' };
  const fromFile = places.file !== undefined ? readSecretFile(places.file) : undefined;
  return fromFile !== undefined ? { value: fromFile, from: 'file' } : undefined;
}

/** How a generated secret is written in its file. */
export interface SecretFormat {
  /** For messages: "admin token". */
  what: string;
  generate(): string;
  /** Whether the (trimmed) text of the file is a secret of this kind. */
  valid(text: string): boolean;
}

const RACE_WAIT_MS = 500;
const RACE_STEP_MS = 10;

/**
 * The secret kept in `file`, generated and written there when it holds none. The file is created
 * exclusively with mode 0600, so of several processes starting at once exactly one writes it, and
 * the others wait for its text (it writes the whole secret in one call) and return the same secret.
 * Throws when the file is there but holds no valid secret after that wait.
 */
export function secretFile(file: string, format: SecretFormat): string {
  const read = (): string | undefined => {
    const text = readSecretFile(file);
    return text !== undefined && format.valid(text) ? text : undefined;
  };
  const existing = read();
  if (existing !== undefined) return existing;
  mkdirSync(dirname(file), { recursive: true });
  const secret = format.generate();
  try {
    writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // Another process created it first: wait until its text is there.
  const wait = new Int32Array(new SharedArrayBuffer(4));
  for (let waited = 0; waited < RACE_WAIT_MS; waited += RACE_STEP_MS) {
    const text = read();
    if (text !== undefined) return text;
    Atomics.wait(wait, 0, 0, RACE_STEP_MS);
  }
  const text = read();
  if (text !== undefined) return text;
  throw new Error(`${file}: unreadable ${format.what}; remove the file to have a new one generated`);
}

// ---------------------------------------------------------------------------------------------
// The secrets of sluice

const ADMIN_TOKEN: SecretFormat = {
  what: 'admin token',
  generate: () => randomBytes(24).toString('base64url'),
  // The admin may write a token of their own into the file (docs/deployment.md).
  valid: (text) => text.length > 0,
};

const LOG_KEY: SecretFormat = {
  what: 'pseudonymisation key',
  generate: () => randomBytes(32).toString('hex'),
  valid: (text) => Buffer.from(text, 'hex').length === 32,
};

function adminTokenPlaces(config: Config, baseDir: string): SecretPlaces & { file: string } {
  return { configured: config.admin.token, variable: config.admin.token_env, file: adminTokenFile(config, baseDir) };
}

/** The admin token for the server: `admin.token`, else `$admin.token_env`, else state_dir/admin-token, generated once. */
export function adminToken(config: Config, baseDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const { file, ...given } = adminTokenPlaces(config, baseDir);
  return findSecret(given, env)?.value ?? secretFile(file, ADMIN_TOKEN);
}

/** The admin token as the server finds it, but never generated: a CLI only reads. */
export function readAdminToken(config: Config, baseDir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return findSecret(adminTokenPlaces(config, baseDir), env)?.value;
}

/**
 * The key that pseudonymises client addresses: the text of `$query_log.pseudonymize_key_env`, else
 * 32 random bytes generated once into state_dir/log-key (as hex).
 */
export function pseudonymKey(config: Config, baseDir: string, env: NodeJS.ProcessEnv = process.env): Buffer {
  const fromEnv = findSecret({ variable: config.query_log.pseudonymize_key_env }, env);
  if (fromEnv) return Buffer.from(fromEnv.value, 'utf8');
  return Buffer.from(secretFile(logKeyFile(config, baseDir), LOG_KEY), 'hex');
}
