// The admin API over HTTP after a known sequence of queries: token auth, the log endpoint's
// filters and paging, and /metrics with exact counts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { at, startFixture, TOKEN, traffic, type Fixture } from './querylog-fixture.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

/** GET with `authorization: Bearer <token>`; `null` sends no authorization header. */
const get = async (path: string, token: string | null = TOKEN, scheme = 'Bearer') => {
  const res = await fetch(`http://127.0.0.1:${f.adminPort}${path}`, token === null ? {} : { headers: { authorization: `${scheme} ${token}` } });
  return { status: res.status, headers: res.headers, text: await res.text() };
};
const log = async (query: string) => {
  const r = await get(`/api/log?${query}`);
  expect(r.status, r.text).toBe(200);
  return JSON.parse(r.text) as { events: QueryEvent[]; total: number; limit: number; offset: number; instance: string };
};
const names = (events: QueryEvent[]) => events.map((e) => `${e.client} ${e.name} ${e.type}`);

describe('admin API authentication', () => {
  it.each([
    ['/api/log', null, 'Bearer'],
    ['/api/log', 'wrong-token-0123456789', 'Bearer'],
    ['/metrics', null, 'Bearer'],
    ['/metrics', TOKEN, 'Basic'],
    ['/api/lists', TOKEN.slice(0, -1), 'Bearer'],
    ['/api/policies', `${TOKEN}x`, 'Bearer'],
  ])('%s answers 401 with token %s (%s)', async (path, token, scheme) => {
    const r = await get(path, token, scheme);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="sluice"');
    expect(r.text).not.toContain(TOKEN);
  });

  it('serves /healthz without a token', async () => {
    const r = await get('/healthz', null);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toMatchObject({ ok: true, instance: 'fixture' });
  });

  it('serves the log with the bearer token', async () => {
    expect((await get('/api/log')).status).toBe(200);
  });
});

describe('GET /api/log', () => {
  it('has every logged query, newest first, and nothing of a network that logs blocked queries only', async () => {
    const page = await log('');
    const expected = traffic
      .filter((t) => t[4])
      .map(([c, n, t]) => `${c} ${n} ${t}`)
      .reverse();
    // the guest client is pseudonymised
    expect(names(page.events).map((s) => s.replace(/^p:[0-9a-f]{16}/, 'P'))).toEqual(expected.map((s) => s.replace('127.0.0.2', 'P')));
    expect(page.total).toBe(9);
    expect(page.instance).toBe('fixture');
    expect(page.events.map((e) => e.time)).toEqual([9, 8, 6, 5, 4, 3, 2, 1, 0].map(at));
  });

  it('records the decision, policy, list, rule, cache and upstream of each query', async () => {
    const { events } = await log('');
    const byIndex = (i: number) => events.find((e) => e.time === at(i))!;
    expect(byIndex(0)).toMatchObject({
      client: '127.0.0.1',
      network: 'internal',
      profile: 'staff',
      decision: 'blocked',
      policy: 'app-ban',
      list: 'tiktok',
      rule: 'tiktok.com',
      rcode: 3,
      transport: 'udp',
    });
    expect(byIndex(1)).toMatchObject({ decision: 'allowed', cache: false, upstream: f.upstream.address, policy: null, list: null, answers: 1 });
    expect(byIndex(2)).toMatchObject({ decision: 'allowed', cache: true });
    expect(byIndex(5)).toMatchObject({ decision: 'blocked', policy: null, list: 'doh-bypass', rule: 'dns.google' });
    expect(byIndex(9)).toMatchObject({ client: '127.9.0.1', network: null, decision: 'refused', rcode: 5 });
  });

  it.each([
    ['network=guest', ['P tiktok.com A']],
    ['client=127.0.0.5', ['127.0.0.5 dns.google A', '127.0.0.5 v16.tiktokcdn.com A']],
    // a domain matches itself and its subdomains, not other names that end in the same letters
    ['domain=tiktok.com', ['P tiktok.com A', '127.0.0.1 www.tiktok.com A']],
    ['domain=TikTok.com.', ['P tiktok.com A', '127.0.0.1 www.tiktok.com A']],
    ['decision=blocked', ['127.0.0.1 turbovpn.com A', 'P tiktok.com A', '127.0.0.5 dns.google A', '127.0.0.5 v16.tiktokcdn.com A', '127.0.0.1 www.tiktok.com A']],
    ['decision=refused', ['127.9.0.1 example.org A']],
    ['policy=app-ban', ['127.0.0.1 turbovpn.com A', 'P tiktok.com A', '127.0.0.5 v16.tiktokcdn.com A', '127.0.0.1 www.tiktok.com A']],
    ['list=doh-bypass', ['127.0.0.5 dns.google A']],
    [`since=${new Date(at(6)).toISOString()}`, ['127.9.0.1 example.org A', '127.0.0.1 turbovpn.com A', 'P tiktok.com A']],
    [`since=${at(3)}&until=${at(5)}`, ['127.0.0.5 v16.tiktokcdn.com A', '127.0.0.1 example.org AAAA']],
    ['network=internal&decision=allowed&domain=example.org', ['127.0.0.1 example.org AAAA', '127.0.0.1 example.org A', '127.0.0.1 example.org A']],
  ])('filters %s', async (query, expected) => {
    const page = await log(query);
    expect(names(page.events).map((s) => s.replace(/^p:[0-9a-f]{16}/, 'P'))).toEqual(expected);
    expect(page.total).toBe(expected.length);
  });

  it('pages with limit and offset, counting every match in total', async () => {
    const all = (await log('')).events;
    const p1 = await log('limit=4');
    const p2 = await log('limit=4&offset=4');
    const p3 = await log('limit=4&offset=8');
    expect([p1.total, p2.total, p3.total]).toEqual([9, 9, 9]);
    expect([p1.events.length, p2.events.length, p3.events.length]).toEqual([4, 4, 1]);
    expect([...p1.events, ...p2.events, ...p3.events]).toEqual(all);
    expect((await log('limit=100000')).limit).toBe(1000);
  });

  it('answers 400 with the reason for a malformed filter', async () => {
    const r = await get('/api/log?decision=maybe');
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text)).toEqual({ error: 'decision: "maybe" is not one of allowed, blocked, refused, error, malformed, would-block' });
    expect((await get('/api/log?since=yesterday-ish')).status).toBe(400);
  });
});

describe('GET /metrics', () => {
  it('counts the known traffic exactly', async () => {
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    const samples = r.text.split('\n').filter((l) => l.startsWith('sluice_queries_total{'));
    expect(samples.sort()).toEqual(
      [
        'sluice_queries_total{network="",profile="",decision="refused",type="A"} 1',
        'sluice_queries_total{network="guest",profile="open",decision="allowed",type="A"} 1',
        'sluice_queries_total{network="guest",profile="open",decision="blocked",type="A"} 1',
        'sluice_queries_total{network="internal",profile="staff",decision="allowed",type="A"} 2',
        'sluice_queries_total{network="internal",profile="staff",decision="allowed",type="AAAA"} 1',
        'sluice_queries_total{network="internal",profile="staff",decision="blocked",type="A"} 4',
      ].sort(),
    );
    const lines = r.text.split('\n');
    expect(lines).toContain('sluice_cache_hits_total 1');
    expect(lines).toContain('sluice_cache_misses_total 3');
    expect(lines).toContain('sluice_list_entries{list="tiktok"} 2');
    expect(lines).toContain('sluice_list_entries{list="turbovpn"} 1');
    expect(lines).toContain('sluice_list_entries{list="doh-bypass"} 3');
    // The end of 2027-04-30 in the policy's time zone (UTC by default).
    expect(lines).toContain(`sluice_policy_review_due_timestamp_seconds{policy="app-ban"} ${Date.parse('2027-05-01T00:00:00Z') / 1000}`);
    expect(lines).toContain('sluice_policy_state{policy="app-ban",state="active"} 1');
    expect(lines).toContain('sluice_querylog_dropped_events_total{stage="buffer"} 0');
    expect(lines).toContain('sluice_query_duration_seconds_count 10');
  });
});
