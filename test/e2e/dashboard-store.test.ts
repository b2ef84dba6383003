// The dashboard over 30 days of the SQLite query-log store, in headless Chromium (Debian's
// `chromium`, driven by playwright-core). The store is seeded directly with SqliteStore before the
// server starts, with the same fixed clock as the server, so "the last 30 days" is the same range
// for the seed, the server and the page. It checks the 30-day totals against the store's own
// summary, the compliance table against the seeded devices, the legend toggles, the UTC/local
// switch, the coverage banner and the phone layout, and saves screenshots under test-results/.
// `UPDATE_SCREENSHOT=1 npx vitest run test/e2e/dashboard-store.test.ts` also writes
// docs/dashboard.png, the README's picture.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { SqliteStore } from '../../src/querylog/store/sqlite-store.js';
import type { Summary } from '../../src/querylog/summary.js';
import { startSluice, type Harness } from '../helpers/sluice-harness.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TOKEN = 'dashboard-store-test-token-0123456789';
const REPO = join(import.meta.dirname, '../..');
const RESULTS = join(REPO, 'test-results');
const DOCS = join(REPO, 'docs');
const TIMEZONE = 'Europe/Brussels';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Monday 30 November 2026, 15:00 UTC: "now" for the seed, the server and the page. */
const FIXED_NOW = Date.UTC(2026, 10, 30, 15, 0, 0);
const SINCE_30D = FIXED_NOW - 30 * DAY;
const UPSTREAM = '192.0.2.53:53';
const DROPPED = 17;

const config = (stateDir: string) => `
listeners:
  - address: 127.0.0.1
    port: 0
networks:
  internal:
    cidrs: [10.0.0.0/16]
    profile: staff
  comms:
    cidrs: [10.0.4.0/24]
    profile: staff
  school:
    cidrs: [10.20.0.0/16]
    profile: open
  guest:
    cidrs: [192.168.100.0/24]
    profile: open
    log: { level: blocked, pseudonymize: true }
profiles:
  staff:
    block: []
  open:
    block: []
catalog: ${join(REPO, 'blocklists/catalog.yaml')}
policies:
  app-ban:
    title: Ban of TikTok and other apps on the internal network
    reference: CCB advice of 2023-03-08
    block: [tiktok, wechat, temu, shein]
    networks: [internal, comms]
    from: 2026-11-01
    review_by: 2027-04-30
    exceptions:
      - network: comms
        lists: [tiktok]
        reason: the city's official TikTok account
        approved_by: CISO
  school-ban:
    title: TikTok on the school network
    reference: school board decision
    block: [tiktok]
    networks: [school]
    from: 2026-11-01
  guest-trial:
    title: WeChat on the guest Wi-Fi, trial
    reference: draft circular
    block: [wechat]
    networks: [guest]
    mode: dry-run
    from: 2026-11-01
query_log:
  instance: dns1
  store: { kind: sqlite, path: querylog.db, retention_days: 60 }
admin:
  enabled: true
  port: 0
  token: ${TOKEN}
state_dir: ${stateDir}
workers: 1
upstreams:
  default: ["@UPSTREAM@"]
`;

// ---- the seed: 30 days of a small city's traffic --------------------------------------------------

/** A small deterministic PRNG (mulberry32), so every run seeds the same events. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PROFILE: Record<string, string> = { internal: 'staff', comms: 'staff', school: 'open', guest: 'open' };

function allowed(time: number, client: string, network: string, name: string, rnd: () => number): QueryEvent {
  const cache = rnd() < 0.6;
  return {
    time,
    instance: 'dns1',
    client,
    network,
    profile: PROFILE[network]!,
    policy: null,
    list: null,
    rule: null,
    name,
    type: rnd() < 0.7 ? 'A' : 'AAAA',
    decision: 'allowed',
    wouldBlock: false,
    exception: false,
    cache,
    upstream: cache ? null : UPSTREAM,
    rcode: 0,
    answers: 1,
    durationMs: cache ? 0.05 : Math.round((4 + rnd() * 30 + (rnd() < 0.05 ? 80 : 0)) * 1000) / 1000,
    transport: 'udp',
  };
}

function blocked(time: number, client: string, network: string, policy: string, list: string, name: string): QueryEvent {
  return {
    time,
    instance: 'dns1',
    client,
    network,
    profile: PROFILE[network]!,
    policy,
    list,
    rule: name.split('.').slice(-2).join('.'),
    name,
    type: 'A',
    decision: 'blocked',
    wouldBlock: false,
    exception: false,
    cache: false,
    upstream: null,
    rcode: 3,
    answers: 0,
    durationMs: 0.05,
    transport: 'udp',
  };
}

interface Device {
  client: string;
  network: string;
  policy: string;
  list: string;
  names: string[];
  /** Days ago (0 = the last 24 hours) on which the device asks. */
  days: (daysAgo: number, weekday: boolean) => boolean;
  /** UTC hours at which it asks, and how many times each. */
  hours: number[];
  times: number;
}

// The app ban's to-do list: one device still has TikTok, one removed it 12 days ago (and had WeChat
// for a week), one installed Temu last week; a comms laptop tried Shein; the school's ban has one
// device. The comms team's TikTok is an exception (allowed, not a device to chase).
const DEVICES: Device[] = [
  { client: '10.0.3.17', network: 'internal', policy: 'app-ban', list: 'tiktok', names: ['www.tiktok.com', 'log.tiktokv.com'], days: (_d, wd) => wd, hours: [9, 13], times: 3 },
  { client: '10.0.3.42', network: 'internal', policy: 'app-ban', list: 'tiktok', names: ['www.tiktok.com'], days: (d) => d >= 12, hours: [8, 16], times: 2 },
  { client: '10.0.3.42', network: 'internal', policy: 'app-ban', list: 'wechat', names: ['wechat.com', 'weixin.qq.com'], days: (d) => d >= 15 && d <= 21, hours: [11], times: 2 },
  { client: '10.0.5.8', network: 'internal', policy: 'app-ban', list: 'temu', names: ['temu.com', 'api.temu.com'], days: (d) => d <= 6, hours: [12, 19], times: 4 },
  { client: '10.0.4.9', network: 'comms', policy: 'app-ban', list: 'shein', names: ['shein.com'], days: (d) => d >= 20 && d <= 22, hours: [14], times: 1 },
  { client: '10.20.1.5', network: 'school', policy: 'school-ban', list: 'tiktok', names: ['www.tiktok.com'], days: (d, wd) => wd && d >= 3, hours: [10], times: 1 },
];

function seed(): QueryEvent[] {
  const rnd = prng(20261130);
  const events: QueryEvent[] = [];
  const at = (hourStart: number) => hourStart + Math.floor((1 + rnd() * 57) * MINUTE) + Math.floor(rnd() * 1000);
  for (let k = 0; k < 30 * 24; k++) {
    const hourStart = SINCE_30D + k * HOUR;
    const hour = new Date(hourStart).getUTCHours();
    const daysAgo = Math.floor((FIXED_NOW - hourStart - 1) / DAY);
    const weekday = ![0, 6].includes(new Date(hourStart).getUTCDay());
    const office = weekday && hour >= 7 && hour < 18;
    const n = (lo: number, spread: number) => lo + Math.floor(rnd() * spread);
    for (let i = office ? n(6, 7) : n(0, 3); i > 0; i--)
      events.push(allowed(at(hourStart), `10.0.${n(1, 6)}.${n(10, 60)}`, 'internal', ['intranet.city.example', 'mail.city.example', 'www.belgium.be', 'login.microsoftonline.com'][n(0, 4)]!, rnd));
    if (weekday && hour >= 8 && hour < 16)
      for (let i = n(3, 4); i > 0; i--) events.push(allowed(at(hourStart), `10.20.${n(1, 3)}.${n(2, 40)}`, 'school', ['www.wikipedia.org', 'smartschool.example'][n(0, 2)]!, rnd));
    if (office) for (let i = n(1, 2); i > 0; i--) events.push(allowed(at(hourStart), '10.0.4.2', 'comms', 'www.city.example', rnd));
    if (office && hour % 3 === 0) events.push({ ...allowed(at(hourStart), '10.0.4.2', 'comms', 'www.tiktok.com', rnd), policy: 'app-ban', list: 'tiktok', rule: 'tiktok.com', exception: true });
    if (hour >= 18 && hour < 22 && rnd() < 0.5)
      events.push({ ...allowed(at(hourStart), 'p:3f9a0c1d22e4b780', 'guest', 'web.wechat.com', rnd), policy: 'guest-trial', list: 'wechat', rule: 'wechat.com', wouldBlock: true });
    for (const d of DEVICES) {
      if (!d.days(daysAgo, weekday) || !d.hours.includes(hour)) continue;
      for (let i = 0; i < d.times; i++) events.push(blocked(at(hourStart), d.client, d.network, d.policy, d.list, d.names[i % d.names.length]!));
    }
  }
  return events.filter((e) => e.time >= SINCE_30D && e.time < FIXED_NOW).sort((a, b) => a.time - b.time);
}

const events = seed();

interface ExpectedDevice {
  client: string;
  network: string;
  policy: string;
  list: string;
  count: number;
  first: number;
  last: number;
}

/** The compliance rows, computed from the seed (not from the store). */
function expectedDevices(since: number, policy?: string): ExpectedDevice[] {
  const m = new Map<string, ExpectedDevice>();
  for (const e of events) {
    if (e.decision !== 'blocked' || e.policy === null || e.list === null || e.time < since) continue;
    if (policy !== undefined && e.policy !== policy) continue;
    const key = `${e.network}|${e.client}|${e.policy}|${e.list}`;
    const d = m.get(key) ?? { client: e.client, network: e.network!, policy: e.policy, list: e.list, count: 0, first: e.time, last: e.time };
    d.count++;
    d.first = Math.min(d.first, e.time);
    d.last = Math.max(d.last, e.time);
    m.set(key, d);
  }
  return [...m.values()];
}

const pad = (n: number) => String(n).padStart(2, '0');
const utc = (t: number) => new Date(t).toISOString().slice(0, 16).replace('T', ' ');
/** What the page shows for a time in the browser's zone (TIMEZONE). */
function local(t: number): string {
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: TIMEZONE, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(t))
      .map((x) => [x.type, x.value]),
  );
  return `${p.year}-${p.month}-${p.day} ${pad(Number(p.hour))}:${p.minute}`;
}

let stateDir: string;
let storeSummary: Summary;
let h: Harness;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Script errors and console errors of the page (a CSP violation is one). */
const problems: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium, as .ci/run does) or set CHROMIUM_PATH`);
  stateDir = mkdtempSync(join(tmpdir(), 'sluice-dashboard-store-'));
  const store = new SqliteStore(join(stateDir, 'querylog.db'), { instance: 'dns1', retentionDays: 60, rollupRetentionDays: 400, spillEvents: 1e7, now: () => FIXED_NOW, warn: () => {} });
  for (let i = 0; i < events.length; i += 1000) store.write(events.slice(i, i + 1000));
  // Events that an overloaded resolver could not store, 20 days ago: the 30-day range is incomplete.
  store.noteDropped(DROPPED, FIXED_NOW - 20 * DAY);
  await store.flush();
  storeSummary = await store.summary({ since: SINCE_30D }, { now: FIXED_NOW });
  await store.close();

  h = await startSluice({ config: config(stateDir), clock: () => FIXED_NOW });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  context = await browser.newContext({ viewport: { width: 1440, height: 900 }, timezoneId: TIMEZONE, locale: 'en-GB' });
  page = await context.newPage();
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  // The page's own clock (the "updated" time) agrees with the server's; timers keep running.
  await page.clock.setFixedTime(FIXED_NOW);
});

afterAll(async () => {
  await browser?.close();
  await h?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

const url = (range = '30d') => `http://127.0.0.1:${h.server.adminPort}/#token=${TOKEN}&range=${range}`;
const text = async (selector: string) => ((await page.locator(selector).first().textContent()) ?? '').trim();
const attr = (selector: string, name: string) => page.locator(selector).first().getAttribute(name);
const deviceRow = (d: { client: string; list: string }) => page.locator(`#devices tbody tr[data-client="${d.client}"][data-list="${d.list}"]`);
/** The value a chart's legend shows for a series (its total while the cursor is elsewhere). */
const legendEntry = (panel: string, name: string) => page.locator(`${panel} .u-series`, { has: page.locator('th', { hasText: new RegExp(`^${name}$`) }) });
const legendValue = async (panel: string, name: string) => ((await legendEntry(panel, name).locator('td').textContent()) ?? '').trim();
const cells = async (d: { client: string; list: string }) => (await deviceRow(d).locator('td').allTextContents()).map((c) => c.trim());

async function open(range: string): Promise<void> {
  await page.goto('about:blank');
  await page.goto(url(range));
  await page.waitForSelector('body[data-loaded=true]');
}

async function chooseRange(range: string): Promise<void> {
  const before = await text('#panel-queries .unit');
  await page.click(`.range button[data-range="${range}"]`);
  await expect.poll(() => attr(`.range button[data-range="${range}"]`, 'aria-pressed')).toBe('true');
  // The units of the charts follow the range's buckets once its summary is shown.
  if (range !== '30d') await expect.poll(() => text('#panel-queries .unit')).not.toBe(before);
}

describe('dashboard over a 30-day SQLite store', () => {
  it('seeds a month of traffic with a compliance story', () => {
    expect(events.length).toBeGreaterThan(3000);
    expect(events.length).toBeLessThan(10_000);
    expect(storeSummary.totals.queries).toBe(events.length);
    expect(expectedDevices(SINCE_30D)).toHaveLength(DEVICES.length);
  });

  it('shows the 30-day totals of the store', async () => {
    await open('30d');
    expect(await attr('.range button[data-range="30d"]', 'aria-pressed')).toBe('true');
    const t = storeSummary.totals;
    const n = (v: number) => v.toLocaleString('en-US');
    expect(await text('#stat-queries .value')).toBe(n(t.queries));
    expect(await text('#stat-blocked .value')).toBe(n(t.blocked));
    expect(await text('#stat-refused .value')).toBe(n(t.refused));
    expect(await text('#stat-would-block .value')).toBe(n(t.wouldBlock));
    expect(await text('#stat-block-ratio .value')).toBe(`${(t.blockRatio * 100).toFixed(1)}%`);
    expect(await text('#stat-cache-ratio .value')).toBe(`${(t.cacheHitRatio * 100).toFixed(1)}%`);
    // 30 days in 6-hour buckets, counted per bucket.
    expect(storeSummary.series.bucketSeconds).toBe(6 * 3600);
    expect(await text('#panel-queries .unit')).toBe('per 6 h');
    expect((await attr('#panel-queries .chart', 'data-series'))!.split(',').sort()).toEqual(['comms', 'guest', 'internal', 'school']);
    // The legend's totals, without the cursor on the chart, are the store's per network.
    const internal = storeSummary.series.networks.find((s) => s.network === 'internal')!;
    const total = internal.queries.reduce((a, v) => a + v, 0);
    expect(await legendValue('#panel-queries', 'internal')).toBe(`${n(total)} total`);
    // The log reads the store too: every event of the 30 days matches.
    expect(await text('#log-total')).toBe(`· ${n(events.length)} matching, newest 100 shown`);
    expect(await text('#panel-log table.log tbody tr td')).toBe(new Date(events.at(-1)!.time).toISOString().slice(0, 19).replace('T', ' '));
  });

  it('says what the store does not hold (the dropped events), and nothing for a complete range', async () => {
    expect(await page.locator('#covers').isVisible()).toBe(true);
    expect(await text('#covers')).toContain(`${DROPPED} events of this range were dropped before they reached the store`);
    await chooseRange('7d');
    await expect.poll(() => page.locator('#covers').isVisible()).toBe(false);
    await chooseRange('30d');
    await expect.poll(() => page.locator('#covers').isVisible()).toBe(true);
  });

  it('lists the devices that still ask for a banned app, with counts and first and last seen', async () => {
    const want = expectedDevices(SINCE_30D);
    await expect.poll(() => page.locator('#devices tbody tr[data-client]').count()).toBe(want.length);
    for (const d of want) {
      const [app, client, network, policy, count, first, last] = await cells(d);
      expect({ app, client, network, policy, count, first, last }).toEqual({
        app: expect.stringMatching(new RegExp(`^${{ tiktok: 'TikTok', wechat: 'WeChat', temu: 'Temu', shein: 'Shein' }[d.list]} ${d.list}$`)),
        client: d.client,
        network: d.network,
        policy: d.policy,
        count: d.count.toLocaleString('en-US'),
        first: utc(d.first),
        last: utc(d.last),
      });
    }
    const devices = new Set(want.map((d) => `${d.network}|${d.client}`)).size;
    const queries = want.reduce((a, d) => a + d.count, 0);
    expect(await text('#compliance-total')).toBe(`· ${devices} devices, ${queries.toLocaleString('en-US')} blocked queries`);
    expect(await text('#compliance-apps .app-chip[data-list=tiktok]')).toBe(`TikTok 3 devices · ${want.filter((d) => d.list === 'tiktok').reduce((a, d) => a + d.count, 0)} blocked`);

    // The device that removed TikTok was last seen 12 days ago; in the last 7 days it is gone.
    const removed = want.find((d) => d.client === '10.0.3.42' && d.list === 'tiktok')!;
    expect(removed.last).toBeLessThan(FIXED_NOW - 11 * DAY);
    await chooseRange('7d');
    await expect.poll(() => page.locator('#devices tbody tr[data-client]').count()).toBe(expectedDevices(FIXED_NOW - 7 * DAY).length);
    expect(await deviceRow(removed).count()).toBe(0);
    await chooseRange('30d');
    await expect.poll(() => page.locator('#devices tbody tr[data-client]').count()).toBe(want.length);
  });

  it('narrows the compliance view to one policy, with its weekly trend', async () => {
    const policies = await page.evaluate<string[]>("[...document.querySelectorAll('#policy-select option')].map((o) => o.value)");
    expect(policies.sort()).toEqual(['', 'app-ban', 'guest-trial', 'school-ban']);
    await page.selectOption('#policy-select', 'school-ban');
    const want = expectedDevices(SINCE_30D, 'school-ban');
    await expect.poll(() => page.locator('#devices tbody tr[data-client]').count()).toBe(want.length);
    expect((await cells(want[0]!)).slice(0, 5)).toEqual(['TikTok tiktok', '10.20.1.5', 'school', 'school-ban', String(want[0]!.count)]);
    await expect.poll(() => attr('#panel-trend .chart', 'data-series')).toBe('TikTok');
    expect(page.url()).toContain('policy=school-ban');

    await page.selectOption('#policy-select', '');
    await expect.poll(() => page.locator('#devices tbody tr[data-client]').count()).toBe(expectedDevices(SINCE_30D).length);
    // All policies: one line per app, the busiest first.
    const perList = new Map<string, number>();
    for (const d of expectedDevices(SINCE_30D)) perList.set(d.list, (perList.get(d.list) ?? 0) + d.count);
    const apps = [...perList].sort((a, b) => b[1] - a[1]).map(([list]) => ({ tiktok: 'TikTok', wechat: 'WeChat', temu: 'Temu', shein: 'Shein' })[list]);
    await expect.poll(() => attr('#panel-trend .chart', 'data-series')).toBe(apps.join(','));
    expect(await page.locator('#panel-trend .u-series th').allTextContents()).toEqual(['Week of', ...apps]);
  });

  it('hides a series when its legend entry is clicked, and shows it again', async () => {
    const entry = legendEntry('#panel-queries', 'school');
    expect(await entry.getAttribute('class')).not.toContain('u-off');
    await entry.locator('th').click();
    await expect.poll(() => entry.getAttribute('class')).toContain('u-off');
    expect(await attr('#panel-queries .chart', 'data-hidden')).toBe('school');
    // Only that chart: the blocked chart still shows school.
    expect(await page.locator('#panel-blocked .u-series.u-off').count()).toBe(0);
    await entry.locator('th').click();
    await expect.poll(() => entry.getAttribute('class')).not.toContain('u-off');
    expect(await attr('#panel-queries .chart', 'data-hidden')).toBe('');
    // Hidden stays hidden when the chart is drawn again (another time zone redraws it from scratch).
    await entry.locator('th').click();
    await page.click('.tz button[data-tz=local]');
    await page.click('.tz button[data-tz=utc]');
    const again = legendEntry('#panel-queries', 'school');
    await expect.poll(() => again.getAttribute('class')).toContain('u-off');
    await again.locator('th').click();
    await expect.poll(() => again.getAttribute('class')).not.toContain('u-off');
  });

  it('switches times between UTC and local, and keeps the choice', async () => {
    const d = expectedDevices(SINCE_30D).find((x) => x.client === '10.0.3.17')!;
    expect(await attr('.tz button[data-tz=utc]', 'aria-pressed')).toBe('true');
    expect(await text('#devices th.when')).toBe('First seen (UTC)');
    expect((await cells(d))[5]).toBe(utc(d.first));
    await chooseRange('24h');
    const utcLog = await text('#panel-log table.log tbody tr td');
    // The cursor's time in the chart's legend: the same bucket in UTC, then in local time.
    const cursorTime = async () => {
      const box = (await page.locator('#panel-queries .u-over').boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await expect.poll(() => text('#panel-queries .u-series:first-child td')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d$/);
      const shown = await text('#panel-queries .u-series:first-child td');
      await page.mouse.move(0, 0);
      return shown;
    };
    const atUtc = await cursorTime();
    expect(await text('#panel-queries .u-series:first-child th')).toBe('UTC');

    await page.click('.tz button[data-tz=local]');
    expect(await text('#devices th.when')).toBe('First seen (local)');
    expect(await text('#panel-log th.when')).toBe('Time (local)');
    expect(await text('#panel-queries .u-series:first-child th')).toBe('Local time');
    // Brussels is an hour ahead of UTC in November.
    expect(await cursorTime()).toBe(local(Date.parse(`${atUtc.replace(' ', 'T')}:00Z`)));
    expect(await text('#panel-log table.log tbody tr td')).not.toBe(utcLog);
    await chooseRange('30d');
    await expect.poll(async () => (await cells(d))[5]).toBe(local(d.first));
    expect((await cells(d))[6]).toBe(local(d.last));

    // Kept in localStorage: a reload shows local times again.
    await open('30d');
    expect(await attr('.tz button[data-tz=local]', 'aria-pressed')).toBe('true');
    expect((await cells(d))[5]).toBe(local(d.first));
    await page.click('.tz button[data-tz=utc]');
    expect((await cells(d))[5]).toBe(utc(d.first));
  });

  it('looks right on a desktop, and fits a 390 × 844 phone without scrolling sideways', async () => {
    mkdirSync(RESULTS, { recursive: true });
    await page.setViewportSize({ width: 1440, height: 1500 });
    await open('30d');
    // Let the charts settle at this width before the pictures.
    await expect.poll(() => page.evaluate<number>("Math.max(...[...document.querySelectorAll('.uplot')].map((e) => e.getBoundingClientRect().right))")).toBeLessThanOrEqual(1440);
    await page.screenshot({ path: join(RESULTS, 'dashboard-store-desktop.png'), fullPage: true });
    if (process.env.UPDATE_SCREENSHOT === '1') await page.screenshot({ path: join(DOCS, 'dashboard.png') });

    await page.setViewportSize({ width: 390, height: 844 });
    // The charts follow the width of their panel (ResizeObserver → uPlot setSize).
    await expect.poll(() => page.evaluate<number>("Math.max(...[...document.querySelectorAll('.panel, .uplot, .uplot canvas')].map((e) => e.getBoundingClientRect().right))")).toBeLessThanOrEqual(390);
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    // The log and the devices stack each row into a card: no cell is cut off or hidden to the right.
    for (const table of ['#panel-log table.log', '#devices']) {
      const m = await page.evaluate<{ cells: number; right: number; clipped: number; wrap: number; wrapScroll: number }>(
        `(() => {
          const cells = [...document.querySelectorAll('${table} tbody td')].filter((td) => td.getClientRects().length > 0);
          const wrap = document.querySelector('${table}').closest('.table-wrap');
          return {
            cells: cells.length,
            right: Math.max(...cells.map((td) => td.getBoundingClientRect().right)),
            clipped: cells.filter((td) => td.scrollWidth > td.clientWidth + 1).length,
            wrap: wrap.clientWidth,
            wrapScroll: wrap.scrollWidth,
          };
        })()`,
      );
      expect(m.cells, table).toBeGreaterThan(0);
      expect(m.right, table).toBeLessThanOrEqual(390);
      expect(m.clipped, table).toBe(0);
      expect(m.wrapScroll, table).toBeLessThanOrEqual(m.wrap);
    }
    await page.screenshot({ path: join(RESULTS, 'dashboard-store-phone.png'), fullPage: true });
    expect(existsSync(join(RESULTS, 'dashboard-store-phone.png'))).toBe(true);
  });

  it('ran without a script error or a Content-Security-Policy violation', () => {
    expect(problems).toEqual([]);
  });
});
