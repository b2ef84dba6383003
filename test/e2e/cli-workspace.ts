// A throw-away copy of the repository's config/ and blocklists/ for tests that run the real
// `sluice` binary: the layout is kept, so `catalog: ../blocklists/catalog.yaml` resolves and
// `state_dir: ../var` lands inside the copy, never in the repository.
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

export const REPO = join(import.meta.dirname, '../..');

// The binary runs from a private copy of bin/ and dist/, taken when a test file loads this module:
// other test runs rebuild dist/ in place (vitest's globalSetup), and a process started half-way
// through such a rebuild would fail to import a module that is being rewritten.
const binRoot = mkdtempSync(join(tmpdir(), 'sluice-bin-'));
cpSync(join(REPO, 'dist'), join(binRoot, 'dist'), { recursive: true, filter: (src) => !src.endsWith('.map') });
cpSync(join(REPO, 'bin'), join(binRoot, 'bin'), { recursive: true });
copyFileSync(join(REPO, 'package.json'), join(binRoot, 'package.json'));
symlinkSync(join(REPO, 'node_modules'), join(binRoot, 'node_modules'), 'dir');
/** The private copy of the binary (for tests that start it their own way). */
export const BIN = join(binRoot, 'bin/sluice.js');
afterAll(() => rmSync(binRoot, { recursive: true, force: true }));

export interface SluiceRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Workspace {
  dir: string;
  /** Absolute path of the copied config/sluice.yaml. */
  configFile: string;
  /** Path inside the workspace, e.g. `ws.path('blocklists/tiktok.txt')`. */
  path(rel: string): string;
  read(rel: string): string;
  write(rel: string, text: string): void;
  /** Run `sluice --config <copy> …args` with the workspace as working directory. */
  sluice(...args: string[]): Promise<SluiceRun>;
  /** The audit log's records (var/audit.log), oldest first. */
  audit(): Record<string, unknown>[];
  remove(): void;
}

/** Run the real binary; never inherits SLUICE_CONFIG from the environment running the tests. */
export function runSluice(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<SluiceRun> {
  const { SLUICE_CONFIG: _ignored, ...base } = process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export function makeWorkspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  cpSync(join(REPO, 'config'), join(dir, 'config'), { recursive: true });
  cpSync(join(REPO, 'blocklists'), join(dir, 'blocklists'), { recursive: true });
  const configFile = join(dir, 'config/sluice.yaml');
  const path = (rel: string) => join(dir, rel);
  return {
    dir,
    configFile,
    path,
    read: (rel) => readFileSync(path(rel), 'utf8'),
    write: (rel, text) => writeFileSync(path(rel), text),
    sluice: (...args) => runSluice(['--config', configFile, ...args], dir),
    audit() {
      let text = '';
      try {
        text = readFileSync(path('var/audit.log'), 'utf8');
      } catch {
        return [];
      }
      return text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Domains (rule text) of a list file: the first field of each line, comments and blanks skipped. */
export function ruleLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l !== '');
}

/** A local HTTP server for list downloads; `requests` records method, path and conditional headers. */
export interface ListServer {
  url(path: string): string;
  /** Serve `body` at `path`; with an etag, answer 304 to a request that already holds it. */
  serve(path: string, body: string, etag?: string): void;
  requests: { path: string; ifNoneMatch?: string; status: number }[];
  close(): Promise<void>;
}

export async function startListServer(): Promise<ListServer> {
  const routes = new Map<string, { body: string; etag?: string }>();
  const requests: ListServer['requests'] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('connection', 'close');
    const route = routes.get(req.url ?? '');
    const inm = req.headers['if-none-match'];
    const record = (status: number) => requests.push({ path: req.url ?? '', status, ...(typeof inm === 'string' ? { ifNoneMatch: inm } : {}) });
    if (!route) {
      record(404);
      res.writeHead(404).end('not found');
    } else if (route.etag !== undefined && inm === route.etag) {
      record(304);
      res.writeHead(304, { etag: route.etag }).end();
    } else {
      record(200);
      res.writeHead(200, { 'content-type': 'text/plain', ...(route.etag !== undefined ? { etag: route.etag } : {}) }).end(route.body);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p) => `http://127.0.0.1:${port}${p}`,
    serve: (p, body, etag) => routes.set(p, etag === undefined ? { body } : { body, etag }),
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A loopback TCP port with nothing listening on it (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
