// Secrets: the lookup order (config, environment, file), the file generated once with mode 0600,
// and processes that start at once and race to create it.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { adminTokenFile, logKeyFile } from '../../src/config/paths.js';
import { adminToken, findSecret, pseudonymKey, readAdminToken, readSecretFile, secretFile, type SecretFormat } from '../../src/config/secrets.js';

const TOKEN = 'configured-token-0123456789';
const FROM_ENV = 'env-token-0123456789';
const FORMAT: SecretFormat = { what: 'test secret', generate: () => `s-${Math.random().toString(36).slice(2)}`, valid: (t) => t.startsWith('s-') };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-secrets-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const base = 'listeners: [{ address: 127.0.0.1, port: 0 }]\nnetworks: { lan: { cidrs: [127.0.0.0/8], profile: p } }\nprofiles: { p: { block: [] } }\nstate_dir: state\n';
const config = (admin = '') => parseConfig(`${base}admin: { enabled: true${admin} }\n`, 'sluice.yaml').config;
const modeOf = (file: string) => statSync(file).mode & 0o777;

describe('findSecret', () => {
  it('takes the config, else the variable, else the file; an empty one counts as none', () => {
    const file = join(dir, 'secret');
    writeFileSync(file, '  from-file\n');
    const env = { VAR: FROM_ENV, EMPTY: '' };
    expect(findSecret({ configured: TOKEN, variable: 'VAR', file }, env)).toEqual({ value: TOKEN, from: 'config' });
    expect(findSecret({ configured: '', variable: 'VAR', file }, env)).toEqual({ value: FROM_ENV, from: 'env' });
    expect(findSecret({ variable: 'EMPTY', file }, env)).toEqual({ value: 'from-file', from: 'file' });
    expect(findSecret({ variable: 'UNSET', file }, env)).toEqual({ value: 'from-file', from: 'file' });
    writeFileSync(file, ' \n');
    expect(findSecret({ variable: 'UNSET', file }, env)).toBeUndefined();
  });

  it('creates nothing', () => {
    const file = join(dir, 'sub', 'secret');
    expect(findSecret({ file }, {})).toBeUndefined();
    expect(readSecretFile(file)).toBeUndefined();
    expect(existsSync(join(dir, 'sub'))).toBe(false);
  });
});

describe('secretFile', () => {
  it('generates the secret once, into a new file of mode 0600 (and its directory)', () => {
    const file = join(dir, 'state', 'secret');
    const first = secretFile(file, FORMAT);
    expect(FORMAT.valid(first)).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe(`${first}\n`);
    expect(modeOf(file)).toBe(0o600 & ~process.umask());
    const { ino, mtimeMs } = statSync(file);
    expect(secretFile(file, FORMAT)).toBe(first);
    expect(secretFile(file, FORMAT)).toBe(first);
    expect(statSync(file)).toMatchObject({ ino, mtimeMs });
  });

  it('keeps a secret the admin wrote into the file, without its white space', () => {
    const file = join(dir, 'secret');
    writeFileSync(file, 's-mine', { mode: 0o644 });
    expect(secretFile(file, FORMAT)).toBe('s-mine');
    expect(modeOf(file)).toBe(0o644 & ~process.umask());
  });

  it('waits for the text of a file another process has just created, and returns its secret', async () => {
    const file = join(dir, 'secret');
    // The winner of the race: it has created the file (empty) and writes its secret a little later.
    const winner = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs');
         const fd = fs.openSync(process.argv[1], 'wx', 0o600);
         process.stdout.write('created\\n');
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 150);
         fs.writeSync(fd, 's-winner\\n');
         fs.closeSync(fd);`,
        file,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => winner.on('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      winner.stdout.on('data', (d: Buffer) => d.toString().includes('created') && resolve());
      winner.on('exit', (code) => reject(new Error(`the winner exited (${code}) before it created the file`)));
    });
    expect(readFileSync(file, 'utf8')).toBe('');
    expect(secretFile(file, FORMAT)).toBe('s-winner');
    expect(await exited).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('s-winner\n');
  });

  it('gives up on a file that never holds a secret, saying which file', () => {
    const file = join(dir, 'secret');
    writeFileSync(file, 'not one of ours\n');
    expect(() => secretFile(file, FORMAT)).toThrow(`${file}: unreadable test secret; remove the file to have a new one generated`);
    expect(readFileSync(file, 'utf8')).toBe('not one of ours\n');
  });

  it('lets other errors through', () => {
    const file = join(dir, 'secret');
    mkdirSync(file); // a directory where the file should be
    expect(() => secretFile(file, FORMAT)).toThrow(/EISDIR/);
  });

  it('of processes starting at once, one writes the secret and all return it', async () => {
    // The module as the server runs it, compiled here: a unit test has no build.
    const ts = await import('typescript');
    const out = join(dir, 'mod');
    mkdirSync(out);
    for (const name of ['secrets', 'paths']) {
      const source = readFileSync(new URL(`../../src/config/${name}.ts`, import.meta.url), 'utf8');
      const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
      writeFileSync(join(out, `${name}.js`), js);
    }
    writeFileSync(join(out, 'package.json'), '{"type":"module"}');
    const file = join(dir, 'state', 'secret');
    const go = join(dir, 'go');
    const script = `
      import { existsSync } from 'node:fs';
      import { secretFile } from ${JSON.stringify(join(out, 'secrets.js'))};
      const format = { what: 'test secret', generate: () => 's-' + process.pid, valid: (t) => t.startsWith('s-') };
      // start together: each says it is ready, then waits until the start file is there
      process.stdout.write('ready\\n');
      const pause = new Int32Array(new SharedArrayBuffer(4));
      while (!existsSync(process.argv[2])) Atomics.wait(pause, 0, 0, 1);
      process.stdout.write(secretFile(process.argv[1], format));`;
    const racers = Array.from({ length: 8 }, () => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, file, go], { stdio: ['ignore', 'pipe', 'inherit'] });
      let stdout = '';
      const ready = new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()).startsWith('ready\n') && resolve());
        child.on('exit', (code) => reject(new Error(`a racer exited (${code}) before it was ready`)));
      });
      const done = new Promise<string>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(stdout.slice('ready\n'.length)) : reject(new Error(`a racer exited with ${code}`)))));
      return { ready, done };
    });
    await Promise.all(racers.map((r) => r.ready));
    writeFileSync(go, '');
    const secrets = await Promise.all(racers.map((r) => r.done));
    expect(new Set(secrets).size).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe(`${secrets[0]}\n`);
    expect(modeOf(file)).toBe(0o600 & ~process.umask());
  });
});

describe('the admin token', () => {
  it('is the configured one, else the variable, else state_dir/admin-token, generated once', () => {
    const file = adminTokenFile(config(), dir);
    expect(file).toBe(join(dir, 'state', 'admin-token'));
    expect(adminToken(config(`, token: ${TOKEN}`), dir, { SLUICE_ADMIN_TOKEN: FROM_ENV })).toBe(TOKEN);
    expect(adminToken(config(), dir, { SLUICE_ADMIN_TOKEN: FROM_ENV })).toBe(FROM_ENV);
    expect(adminToken(config(', token_env: MY_TOKEN'), dir, { SLUICE_ADMIN_TOKEN: 'not-this-one', MY_TOKEN: FROM_ENV })).toBe(FROM_ENV);
    expect(existsSync(file)).toBe(false);
    const generated = adminToken(config(), dir, {});
    expect(generated).toMatch(/^[\w-]{32}$/);
    expect(readFileSync(file, 'utf8')).toBe(`${generated}\n`);
    expect(modeOf(file)).toBe(0o600 & ~process.umask());
    expect(adminToken(config(), dir, {})).toBe(generated);
  });

  it('is read by a CLI in the same order, and never generated', () => {
    const file = adminTokenFile(config(), dir);
    expect(readAdminToken(config(), dir, {})).toBeUndefined();
    expect(existsSync(file)).toBe(false);
    mkdirSync(join(dir, 'state'));
    writeFileSync(file, 'token-in-the-file\n');
    expect(readAdminToken(config(), dir, {})).toBe('token-in-the-file');
    expect(readAdminToken(config(), dir, { SLUICE_ADMIN_TOKEN: FROM_ENV })).toBe(FROM_ENV);
    expect(readAdminToken(config(`, token: ${TOKEN}`), dir, { SLUICE_ADMIN_TOKEN: FROM_ENV })).toBe(TOKEN);
  });
});

describe('the pseudonymisation key', () => {
  it('is the text of its variable, else 32 bytes generated once into state_dir/log-key', () => {
    const c = config();
    const file = logKeyFile(c, dir);
    expect(file).toBe(join(dir, 'state', 'log-key'));
    expect(pseudonymKey(c, dir, { [c.query_log.pseudonymize_key_env]: 'my key' })).toEqual(Buffer.from('my key', 'utf8'));
    expect(existsSync(file)).toBe(false);
    const key = pseudonymKey(c, dir, {});
    expect(key).toHaveLength(32);
    expect(readFileSync(file, 'utf8')).toBe(`${key.toString('hex')}\n`);
    expect(modeOf(file)).toBe(0o600 & ~process.umask());
    expect(pseudonymKey(c, dir, {})).toEqual(key);
  });

  it('is refused, not replaced, when the file holds something else', () => {
    const c = config();
    mkdirSync(join(dir, 'state'));
    writeFileSync(logKeyFile(c, dir), 'abcd\n');
    expect(() => pseudonymKey(c, dir, {})).toThrow('log-key: unreadable pseudonymisation key');
  });
});
