// `sluice log tail` and `sluice log query` as a user runs them, against a running server's admin
// API and against its log files.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { resolve } from '../helpers/dns-client.js';
import { REPO, runSluice } from './cli-workspace.js';
import { at, startFixture, type Fixture } from './querylog-fixture.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

const sluice = (...args: string[]) => runSluice(['--config', f.h.configFile, ...args], f.h.dir);
/** The guest network's pseudonym token, whatever the generated key, as `P` of the same width. */
const anon = (s: string) => s.replace(/p:[0-9a-f]{16}/g, 'P'.padEnd(18));

describe('sluice log query', () => {
  it('prints a table of the matching queries, newest first', async () => {
    const r = await sluice('log', 'query', '--since', '2026-12-01', '--blocked');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(anon(r.stdout).split('\n')).toEqual([
      'TIME (UTC)           NETWORK   CLIENT              TYPE  DECISION  NAME               WHY',
      '2026-12-01 12:08:00  internal  127.0.0.1           A     blocked   turbovpn.com       policy app-ban, list turbovpn (rule turbovpn.com)',
      '2026-12-01 12:06:00  guest     P                   A     blocked   tiktok.com         policy app-ban, list tiktok (rule tiktok.com)',
      '2026-12-01 12:05:00  internal  127.0.0.5           A     blocked   dns.google         list doh-bypass (rule dns.google)',
      '2026-12-01 12:04:00  internal  127.0.0.5           A     blocked   v16.tiktokcdn.com  policy app-ban, list tiktok (rule tiktokcdn.com)',
      '2026-12-01 12:00:00  internal  127.0.0.1           A     blocked   www.tiktok.com     policy app-ban, list tiktok (rule tiktok.com)',
      '',
    ]);
  });

  it.each(['store', 'api', 'files'])('prints JSON with the total, from the %s', async (source) => {
    const r = await sluice('log', 'query', '--since', '2026-12-01T12:03:00Z', '--until', '2026-12-01T12:09:00Z', '--network', 'internal', '--limit', '2', '--format', 'json', '--source', source);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { source: string; total: number; offset: number; events: QueryEvent[] };
    expect(out.source).toBe(source);
    expect(out.total).toBe(4);
    expect(out.events.map((e) => [e.time, e.client, e.name, e.type])).toEqual([
      [at(8), '127.0.0.1', 'turbovpn.com', 'A'],
      [at(5), '127.0.0.5', 'dns.google', 'A'],
    ]);
    const next = JSON.parse(
      (await sluice('log', 'query', '--since', '2026-12-01T12:03:00Z', '--until', '2026-12-01T12:09:00Z', '--network', 'internal', '--limit', '2', '--offset', '2', '--json', '--source', source))
        .stdout,
    ) as typeof out;
    expect(next.events.map((e) => e.name)).toEqual(['v16.tiktokcdn.com', 'example.org']);
  });

  it('prints CSV with every field, the same from the API and the files', async () => {
    const api = await sluice('log', 'query', '--domain', 'example.org', '--format', 'csv', '--source', 'api');
    const files = await sluice('log', 'query', '--domain', 'example.org', '--format', 'csv', '--source', 'files');
    expect(api.stdout).toBe(files.stdout);
    const rows = api.stdout.split('\r\n');
    expect(rows[0]).toBe('time,instance,network,client,type,name,decision,wouldBlock,exception,profile,policy,list,rule,cache,upstream,rcode,answers,durationMs,transport');
    expect(rows.slice(1, -1).map((r) => r.split(',').slice(0, 15).join(','))).toEqual([
      '2026-12-01T12:09:00.000Z,fixture,,127.9.0.1,A,example.org,refused,false,false,,,,,false,',
      '2026-12-01T12:03:00.000Z,fixture,internal,127.0.0.1,AAAA,example.org,allowed,false,false,staff,,,,false,' + f.upstream.address,
      '2026-12-01T12:02:00.000Z,fixture,internal,127.0.0.1,A,example.org,allowed,false,false,staff,,,,true,',
      '2026-12-01T12:01:00.000Z,fixture,internal,127.0.0.1,A,example.org,allowed,false,false,staff,,,,false,' + f.upstream.address,
    ]);
    expect(rows.at(-1)).toBe('');
  });

  it('says how many more there are when the limit cuts the table', async () => {
    const r = await sluice('log', 'query', '--limit', '2', '--client', '127.0.0.1');
    expect(r.stdout.split('\n').slice(1)).toEqual([
      expect.stringMatching(/^2026-12-01 12:08:00 +internal +127\.0\.0\.1 +A +blocked +turbovpn\.com/),
      expect.stringMatching(/^2026-12-01 12:03:00 +internal +127\.0\.0\.1 +AAAA +allowed +example\.org +upstream 127\.0\.0\.1:\d+$/),
      '(2 of 5 matching queries; use --limit and --offset for more)',
      '',
    ]);
  });

  it.each([
    [['--since', 'last tuesday'], /^sluice: since: "last tuesday" is not a time/],
    [['--decision', 'maybe'], /argument 'maybe' is invalid/],
    [['--limit', '-1'], /--limit: "-1" is not a whole number/],
    [['--source', 'redis'], /argument 'redis' is invalid/],
  ])('rejects %j with exit code 2', async (args, message) => {
    const r = await sluice('log', 'query', ...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('sluice log tail', () => {
  it('prints the newest queries oldest first, as a table or JSON lines', async () => {
    const table = await sluice('log', 'tail', '-n', '3');
    expect(anon(table.stdout).split('\n')).toEqual([
      'TIME (UTC)           NETWORK   CLIENT              TYPE   DECISION     NAME                            WHY',
      '2026-12-01 12:06:00  guest     P                   A      blocked      tiktok.com                      policy app-ban, list tiktok (rule tiktok.com)',
      '2026-12-01 12:08:00  internal  127.0.0.1           A      blocked      turbovpn.com                    policy app-ban, list turbovpn (rule turbovpn.com)',
      '2026-12-01 12:09:00  -         127.9.0.1           A      refused      example.org                     in no network',
      '',
    ]);
    const jsonl = await sluice('log', 'tail', '--network', 'internal', '--domain', 'example.org', '--format', 'json', '--source', 'files');
    const events = jsonl.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as QueryEvent);
    expect(events.map((e) => [e.time, e.type, e.cache])).toEqual([
      [at(1), 'A', false],
      [at(2), 'A', true],
      [at(3), 'AAAA', false],
    ]);
  });

  it('--follow prints new queries as they are answered, until Ctrl-C', async () => {
    const child = spawn(process.execPath, [join(REPO, 'bin/sluice.js'), '--config', f.h.configFile, 'log', 'tail', '-n', '1', '--follow', '--blocked', '--format', 'csv'], {
      cwd: f.h.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    try {
      await vi.waitFor(() => expect(out).toContain('turbovpn.com'), { timeout: 10_000, interval: 50 });
      f.clock.now = at(20);
      await resolve(f.h.udp, 'followed.tiktok.com', 'A', { localAddress: '127.0.0.1' });
      await resolve(f.h.udp, 'not-blocked.example.org', 'A', { localAddress: '127.0.0.1' });
      await resolve(f.h.udp, 'followed2.tiktok.com', 'A', { localAddress: '127.0.0.5' });
      await vi.waitFor(() => expect(out).toContain('followed2.tiktok.com'), { timeout: 10_000, interval: 50 });
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(err).toBe('');
    const rows = out.split('\r\n').filter((l) => l !== '');
    expect(rows[0]).toMatch(/^time,instance,network,client/);
    expect(rows.slice(1).map((r) => r.split(',').slice(3, 7).join(' '))).toEqual([
      '127.0.0.1 A turbovpn.com blocked',
      '127.0.0.1 A followed.tiktok.com blocked',
      '127.0.0.5 A followed2.tiktok.com blocked',
    ]);
  });
});
