// sluice_blocked_total through the real pipeline: the fixture's known traffic, scraped from /metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixture, TOKEN, type Fixture } from './querylog-fixture.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

describe('sluice_blocked_total', () => {
  it('counts every blocked query of the traffic by network, policy and list', async () => {
    const res = await fetch(`http://127.0.0.1:${f.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    const series = (await res.text()).split('\n').filter((l) => l.startsWith('sluice_blocked_total{'));
    expect(series.sort()).toEqual([
      'sluice_blocked_total{network="guest",policy="app-ban",list="tiktok"} 1',
      'sluice_blocked_total{network="internal",policy="",list="doh-bypass"} 1',
      'sluice_blocked_total{network="internal",policy="app-ban",list="tiktok"} 2',
      'sluice_blocked_total{network="internal",policy="app-ban",list="turbovpn"} 1',
    ]);
  });
});
