// Serves the dashboard: one HTML page with its script and stylesheet from src/admin/dashboard/.
// The files are plain browser JavaScript and CSS, not compiled by tsc, so the same folder serves a
// checkout (tsx/vitest run src/), a build (dist/admin/dashboard.js) and an npm install (the package
// ships src/). The charts are uPlot, served from the installed `uplot` package (a dependency) as
// /assets/uplot.js and /assets/uplot.css. Nothing is loaded from elsewhere: the
// Content-Security-Policy allows only this origin.
import { existsSync, readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

// The page talks only to this server; the token travels in a header, never in a URL it loads.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The asset folder next to this module (src/admin/dashboard), else the package's src/ seen from dist/admin. */
export function dashboardDir(): string {
  const candidates = [new URL('./dashboard/', import.meta.url), new URL('../../src/admin/dashboard/', import.meta.url)].map((u) => fileURLToPath(u));
  return candidates.find((d) => existsSync(`${d}index.html`)) ?? candidates[0]!;
}

/** Assets that come from a package rather than the dashboard folder: the name served, the package file. */
const PACKAGED: Record<string, string> = {
  'uplot.js': 'uplot/dist/uPlot.iife.min.js',
  'uplot.css': 'uplot/dist/uPlot.min.css',
};

/** Where an asset's bytes are: the dashboard folder, or the installed package's file (resolved like an import from here). */
function assetPath(name: string): string {
  const packaged = PACKAGED[name];
  return packaged ? createRequire(import.meta.url).resolve(packaged) : `${dashboardDir()}${name}`;
}

const files = new Map<string, { type: string; body: Buffer }>();

function load(name: string): { type: string; body: Buffer } | undefined {
  const cached = files.get(name);
  if (cached) return cached;
  const ext = /\.([a-z]+)$/.exec(name)?.[1] ?? '';
  const type = TYPES[ext];
  if (!type) return undefined;
  try {
    const file = { type, body: readFileSync(assetPath(name)) };
    files.set(name, file);
    return file;
  } catch {
    return undefined;
  }
}

/** Serve `/`, `/dashboard` and `/assets/<file>`; false when `path` is none of them. */
export function serveDashboard(path: string, res: ServerResponse): boolean {
  let name: string | undefined;
  if (path === '/' || path === '/dashboard' || path === '/dashboard/') name = 'index.html';
  else {
    // One flat folder of plain names: no dots at the start, no slashes, so no way out of it.
    const m = /^\/assets\/([a-z0-9][a-z0-9-]*\.[a-z]+)$/.exec(path);
    if (m) name = m[1];
  }
  const file = name !== undefined ? load(name) : undefined;
  if (!file) return false;
  res.writeHead(200, {
    'content-type': file.type,
    'content-length': file.body.length,
    'cache-control': 'no-cache',
    'content-security-policy': CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(file.body);
  return true;
}
