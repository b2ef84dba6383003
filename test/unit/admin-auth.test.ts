// Roles of the admin server's tokens: which token is which role, and what each role may do.
import { describe, expect, it } from 'vitest';
import { allowed, roleFor, type Role } from '../../src/admin/access.js';
import { credentialTokens } from '../../src/admin/credentials.js';
import { parseConfig } from '../../src/config/load.js';

const ADMIN = 'admin-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const METRICS = 'metrics-token-0123456789';
const all = { admin: ADMIN, viewer: VIEWER, metrics: METRICS };

describe('roleFor', () => {
  it.each([
    [ADMIN, all, 'admin'],
    [VIEWER, all, 'viewer'],
    [METRICS, all, 'metrics'],
    ['wrong-token-0123456789', all, undefined],
    [undefined, all, undefined],
    ['', all, undefined],
    [ADMIN.slice(0, -1), all, undefined],
    [`${VIEWER}x`, all, undefined],
    [VIEWER, { admin: ADMIN }, undefined],
    [METRICS, { admin: ADMIN, viewer: VIEWER }, undefined],
    [ADMIN, { admin: ADMIN, viewer: ADMIN }, 'admin'],
  ] as const)('token %j with %j is %s', (given, tokens, role) => {
    expect(roleFor(given, tokens)).toBe(role);
  });
});

describe('allowed', () => {
  it.each([
    // admin: everything
    ['admin', 'GET', '/api/log', true],
    ['admin', 'POST', '/api/admin/reload', true],
    ['admin', 'DELETE', '/api/lists', true],
    ['admin', 'GET', '/metrics', true],
    // viewer: reads of /api/ and /metrics
    ['viewer', 'GET', '/api/log', true],
    ['viewer', 'HEAD', '/api/log', true],
    ['viewer', 'GET', '/api/summary', true],
    ['viewer', 'GET', '/api/report/devices', true],
    ['viewer', 'GET', '/api/report/bypass/internal', true],
    ['viewer', 'GET', '/api/lists', true],
    ['viewer', 'GET', '/api/policies', true],
    ['viewer', 'GET', '/metrics', true],
    ['viewer', 'POST', '/api/log', false],
    ['viewer', 'PUT', '/api/lists', false],
    ['viewer', 'DELETE', '/api/log', false],
    ['viewer', 'POST', '/metrics', false],
    ['viewer', 'GET', '/api/admin', false],
    ['viewer', 'GET', '/api/admin/', false],
    ['viewer', 'GET', '/api/admin/x', false],
    ['viewer', 'GET', '/api/ADMIN/x', false],
    ['viewer', 'GET', '/api/%61dmin/x', false],
    ['viewer', 'GET', '/api//admin/x', false],
    ['viewer', 'GET', '/api/x/..%2Fadmin/y', false],
    ['viewer', 'GET', '/api/x%5C..%5Cadmin', false],
    ['viewer', 'GET', '/api/%E0%A4%A', false],
    ['viewer', 'GET', '/api', false],
    ['viewer', 'GET', '/api/', false],
    ['viewer', 'GET', '/other', false],
    ['viewer', 'GET', '/api-log', false],
    // metrics: /metrics only
    ['metrics', 'GET', '/metrics', true],
    ['metrics', 'HEAD', '/metrics', true],
    ['metrics', 'POST', '/metrics', false],
    ['metrics', 'GET', '/metrics/', false],
    ['metrics', 'GET', '/api/log', false],
    ['metrics', 'GET', '/api/summary', false],
    ['metrics', 'GET', '/api/admin/x', false],
  ] as [Role, string, string, boolean][])('%s %s %s → %s', (role, method, path, ok) => {
    expect(allowed(role, method, path)).toBe(ok);
  });
});

describe('credentialTokens', () => {
  const base = 'listeners: [{ address: 127.0.0.1, port: 0 }]\nnetworks: { lan: { cidrs: [127.0.0.0/8], profile: p } }\nprofiles: { p: { block: [] } }\n';
  const config = (admin: string) => parseConfig(`${base}admin: { enabled: true${admin} }\n`, 'sluice.yaml').config;

  it('has no viewer or metrics token unless one is configured', () => {
    expect(credentialTokens(config(''), {})).toEqual({ metricsPublic: false });
  });

  it('reads them from the config, else from their variables', () => {
    expect(credentialTokens(config(`, viewer_token: "${VIEWER}", metrics_public: true`), { SLUICE_METRICS_TOKEN: METRICS, SLUICE_VIEWER_TOKEN: 'ignored-because-configured' })).toEqual({
      viewerToken: VIEWER,
      metricsToken: METRICS,
      metricsPublic: true,
    });
    expect(credentialTokens(config(', viewer_token_env: MY_VIEWER'), { MY_VIEWER: VIEWER, SLUICE_VIEWER_TOKEN: 'not-this-one-0123456789' })).toEqual({ viewerToken: VIEWER, metricsPublic: false });
  });

  it('refuses a short token from the environment, and one token for two roles', () => {
    expect(() => credentialTokens(config(''), { SLUICE_VIEWER_TOKEN: 'short' })).toThrow('$SLUICE_VIEWER_TOKEN is shorter than 16 characters');
    expect(() => credentialTokens(config(''), { SLUICE_VIEWER_TOKEN: ADMIN }, ADMIN)).toThrow('the viewer token is the same as the admin token');
    expect(() => credentialTokens(config(''), { SLUICE_VIEWER_TOKEN: VIEWER, SLUICE_METRICS_TOKEN: VIEWER }, ADMIN)).toThrow('the metrics token is the same as the viewer token');
  });

  it('rejects config tokens shorter than 16 characters or shared by two roles', () => {
    expect(() => config(', metrics_token: short')).toThrow(/admin\.metrics_token/);
    expect(() => config(`, token: "${ADMIN}", viewer_token: "${ADMIN}"`)).toThrow(/admin\.viewer_token.*same as token/);
  });
});
