// Serves the dashboard's static files (placeholder until the dashboard lands).
import type { ServerResponse } from 'node:http';

export function serveDashboard(path: string, res: ServerResponse): boolean {
  if (path !== '/' && path !== '/dashboard') return false;
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end('<!doctype html><title>sluice</title><p>sluice dashboard</p>');
  return true;
}
