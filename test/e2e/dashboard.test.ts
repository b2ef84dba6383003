// The dashboard in a real browser: known DNS traffic over real sockets, then headless Chromium
// (Debian's `chromium`, driven by playwright-core) reads the panels and filters the query log.
// The traffic is spread over the last 15 minutes with the injected clock, so the charts have a shape.
// It saves its screenshots under test-results/ (git-ignored). The README's picture, docs/dashboard.png,
// comes from the seeded 30-day store of dashboard-store.test.ts.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TOKEN = 'dashboard-test-token-0123456789';
const RESULTS = join(import.meta.dirname, '../../test-results');

const reviewBy = new Date(Date.now() + 40 * 86_400_000).toISOString().slice(0, 10);
// TikTok on the internal network is banned by a policy, WeChat by the staff profile; the guest
// Wi-Fi trials a WeChat ban in dry-run.
const config = referenceConfig(`
policies:
  app-ban:
    title: App ban on the internal network
    reference: CCB advice of 2023-03-08
    block: [tiktok]
    networks: [internal]
    from: 2024-01-01
    review_by: ${reviewBy}
    exceptions:
      - clients: [127.0.0.9]
        reason: social media team
        approved_by: CISO
  wechat-trial:
    title: WeChat ban on the guest Wi-Fi, trial
    reference: draft circular
    block: [wechat]
    networks: [guest]
    mode: dry-run
    from: 2024-01-01
admin:
  enabled: true
  port: 0
  token: ${TOKEN}
client_names:
  static: { "127.0.1.20": hr-laptop-07 }
`).replace('block: [tiktok, wechat]', 'block: [wechat]');

type Expected = 'allowed' | 'blocked' | 'refused';
interface Query {
  secondsAgo: number;
  source: string;
  name: string;
  expected: Expected;
}

// Fourteen minutes of traffic, a little different each minute, spread evenly over each minute:
// staff on 127.0.0.0/16, the guest Wi-Fi (127.0.0.2), the school (127.0.0.3), the comms team
// (127.0.4.0/24) and a client in no network.
function trafficPlan(): Query[] {
  const plan: Query[] = [];
  for (let i = 0; i < 14; i++) {
    const minute: Omit<Query, 'secondsAgo'>[][] = [];
    const add = (source: string, name: string, expected: Expected, times = 1) => minute.push(Array.from({ length: times * 3 }, () => ({ source, name, expected })));
    const wave = [2, 3, 5, 4, 3, 2, 2, 3, 4, 6, 5, 3, 2, 3][i]!;
    add('127.0.0.1', 'intranet.example.org', 'allowed', wave);
    add('127.0.1.20', 'mail.example.org', 'allowed', 1 + (i % 3));
    add('127.0.0.1', 'www.tiktok.com', 'blocked', 1 + (i % 2));
    if (i % 3 === 0) add('127.0.1.20', 'v16-webapp.tiktok.com', 'blocked');
    if (i % 4 === 1) add('127.0.0.5', 'wechat.com', 'blocked');
    add('127.0.0.2', 'www.tiktok.com', 'allowed', 1 + (i % 4));
    if (i % 5 === 2) add('127.0.0.2', 'web.wechat.com', 'allowed');
    add('127.0.0.3', 'www.wikipedia.org', 'allowed', 1 + ((i * 7) % 3));
    if (i % 2 === 0) add('127.0.4.1', 'www.tiktok.com', 'allowed');
    if (i % 6 === 3) add('127.0.4.1', 'weixin.qq.com', 'blocked');
    if (i === 9) add('127.9.0.1', 'example.org', 'refused', 2);
    // Round-robin over the groups, so each part of the minute sees a mix.
    const mixed: Omit<Query, 'secondsAgo'>[] = [];
    for (let k = 0; mixed.length < minute.flat().length; k++) {
      for (const g of minute) {
        const q = g[k];
        if (q) mixed.push(q);
      }
    }
    mixed.forEach((q, j) => plan.push({ ...q, secondsAgo: (14 - i) * 60 - Math.floor((j * 60) / mixed.length) }));
  }
  return plan;
}

const plan = trafficPlan();
const count = <K extends string>(key: (q: Query) => K, of: Query[]) => {
  const m = new Map<K, number>();
  for (const q of of) m.set(key(q), (m.get(key(q)) ?? 0) + 1);
  return [...m].sort((a, b) => b[1] - a[1]);
};
const blocked = plan.filter((q) => q.expected === 'blocked');

let upstream: FakeUpstream;
let h: Harness;
let browser: Browser;
let page: Page;
let shiftMs = 0;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium, as .ci/run does) or set CHROMIUM_PATH`);
  upstream = await startFakeUpstream();
  // A `sluice disable` of the trial on a network it does not cover: the traffic below is unchanged,
  // and the policies panel shows it.
  const disabled = { id: 'disable-0000beef', kind: 'disable', policy: 'wechat-trial', network: 'school', until: Date.now() + 86_400_000, reason: 'pilot paused', by: 'alice', created: Date.now() };
  const files = { 'state/overrides/overrides.json': JSON.stringify({ overrides: [disabled] }) };
  h = await startSluice({ config, lists: referenceLists, upstream: upstream.address, clock: () => Date.now() - shiftMs, files });
  for (const q of plan) {
    shiftMs = q.secondsAgo * 1000;
    const r = await resolve(h.udp, q.name, 'A', { localAddress: q.source });
    expect(r.rcode, `${q.name} from ${q.source}`).toBe({ allowed: RCODE.NOERROR, blocked: RCODE.NXDOMAIN, refused: RCODE.REFUSED }[q.expected]);
  }
  shiftMs = 0;
  h.server.observability.queryLog.buffer.flush();
  // The summary reads the store's per-minute series, which it writes every few seconds: now.
  await h.server.observability.owner?.store?.flush();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
});

afterAll(async () => {
  await browser?.close();
  await h?.stop();
  await upstream?.close();
});

const url = () => `http://127.0.0.1:${h.server.adminPort}/#token=${TOKEN}`;
const text = async (selector: string) => ((await page.locator(selector).first().textContent()) ?? '').trim();
// tsconfig has no DOM lib: code that runs in the page is passed as text.
const dialogOpen = () => page.evaluate<boolean>("document.querySelector('#token-dialog').open");
const logRows = () => page.locator('#panel-log tbody tr[data-decision]');
/** The log table says how many events match, and shows the newest 100 of them. */
async function expectLogTotal(total: number, timeout = 5000): Promise<void> {
  await expect.poll(() => text('#log-total'), { timeout, interval: 100 }).toBe(`· ${total} matching${total > 100 ? ', newest 100 shown' : ''}`);
  expect(await logRows().count()).toBe(Math.min(total, 100));
}
/** Cells of one column of the log table (1-based). */
const column = (n: number) => page.locator(`#panel-log tbody tr[data-decision] td:nth-child(${n})`).allTextContents();

describe('dashboard in headless Chromium', () => {
  it('asks for the token when the URL has none', async () => {
    await page.goto(`http://127.0.0.1:${h.server.adminPort}/dashboard`);
    await expect.poll(() => dialogOpen()).toBe(true);
    await page.fill('#token-dialog input[name=token]', 'not-the-token-at-all');
    await page.click('#token-dialog button[type=submit]');
    await expect.poll(() => text('#token-error')).toBe('The admin token was not accepted.');
  });

  it('shows the totals, top blocked domain and top client of the known traffic', async () => {
    await page.goto(url());
    await page.waitForSelector('body[data-loaded=true]');
    expect(await dialogOpen()).toBe(false);
    expect(await text('#stat-queries .value')).toBe(String(plan.length));
    expect(await text('#stat-blocked .value')).toBe(String(blocked.length));
    expect(await text('#stat-refused .value')).toBe(String(plan.filter((q) => q.expected === 'refused').length));
    expect(await text('#stat-block-ratio .value')).toBe(`${((blocked.length / plan.length) * 100).toFixed(1)}%`);
    const wouldBlock = plan.filter((q) => q.source === '127.0.0.2' && q.name === 'web.wechat.com').length;
    expect(await text('#stat-would-block .value')).toBe(String(wouldBlock));

    const [topDomain, topDomainCount] = count((q) => q.name, blocked)[0]!;
    expect(topDomain).toBe('www.tiktok.com');
    expect(await text('#panel-top-domains li .bar-label button')).toBe(topDomain);
    expect(await text('#panel-top-domains li .bar-value')).toBe(String(topDomainCount));

    const [topClient, topClientCount] = count((q) => q.source, blocked)[0]!;
    expect(topClient).toBe('127.0.0.1');
    expect(await text('#panel-top-clients li .bar-label button')).toBe(topClient);
    expect(await text('#panel-top-clients li .bar-label .muted')).toBe('internal · tiktok');
    expect(await text('#panel-top-clients li .bar-value')).toBe(String(topClientCount));

    expect(await text('#panel-top-apps li .bar-label')).toMatch(/^tiktok/);
    expect(await page.locator('#panel-queries .u-legend .u-series th').allTextContents()).toEqual(
      expect.arrayContaining([expect.stringMatching(/^internal/), expect.stringMatching(/^guest/), expect.stringMatching(/^school/), expect.stringMatching(/^comms/)]),
    );
    expect(await text('#upstreams tbody td')).toBe(upstream.address);
    expect(await text('#panel-policies tr[data-policy=app-ban] .badge')).toBe('active');
    expect(await text('#panel-policies tr[data-policy=wechat-trial] td.num')).toBe(String(wouldBlock));
    expect(await text('#panel-policies tr[data-policy=wechat-trial] .warn')).toMatch(/^disabled until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(policy wechat-trial on network school\)$/);
    expect(await page.locator('#panel-policies tr[data-policy=app-ban] .warn').count()).toBe(0);
  });

  it('filters the query log by network and by domain', async () => {
    await page.selectOption('#log-filters select[name=network]', 'guest');
    await expectLogTotal(plan.filter((q) => q.source === '127.0.0.2').length);
    expect(new Set(await column(3))).toEqual(new Set(['guest']));

    await page.selectOption('#log-filters select[name=network]', '');
    await page.fill('#log-filters input[name=domain]', 'tiktok.com');
    const tiktok = plan.filter((q) => q.name.endsWith('tiktok.com'));
    await expectLogTotal(tiktok.length);
    expect(new Set(await column(4))).toEqual(new Set(['www.tiktok.com', 'v16-webapp.tiktok.com']));

    await page.selectOption('#log-filters select[name=decision]', 'blocked');
    await expectLogTotal(tiktok.filter((q) => q.expected === 'blocked').length);
    expect(new Set(await column(6))).toEqual(new Set(['blocked']));
    // the address, and under it the name that client_names gives it
    expect(new Set((await column(2)).map((c) => c.replace(/hr-laptop-07$/, '')))).toEqual(new Set(['127.0.0.1', '127.0.1.20']));
    expect(new Set(await page.locator('#panel-log tbody tr[data-decision] td.client .client-name').allTextContents())).toEqual(new Set(['hr-laptop-07']));
  });

  it('shows new queries within seconds (live updates)', async () => {
    const before = plan.filter((q) => q.name.endsWith('tiktok.com') && q.expected === 'blocked').length;
    await resolve(h.udp, 'live.tiktok.com', 'A', { localAddress: '127.0.0.1' });
    await expectLogTotal(before + 1, 8000);
    expect(await text('#panel-log tbody tr td:nth-child(4)')).toBe('live.tiktok.com');
    await page.click('#log-filters button[type=reset]');
    await expectLogTotal(plan.length + 1);
  });

  it('fits a 390 px wide screen without scrolling sideways, and saves the screenshot', async () => {
    mkdirSync(RESULTS, { recursive: true });
    await page.goto('about:blank');
    await page.goto(url());
    await page.waitForSelector('body[data-loaded=true]');
    await page.setViewportSize({ width: 1440, height: 1400 });
    await page.screenshot({ path: join(RESULTS, 'dashboard.png') });
    expect(existsSync(join(RESULTS, 'dashboard.png'))).toBe(true);

    await page.setViewportSize({ width: 390, height: 844 });
    // The charts redraw at the new width when their ResizeObserver fires.
    await expect.poll(() => page.evaluate<number>("Math.max(...[...document.querySelectorAll('.panel, .uplot')].map((e) => e.getBoundingClientRect().right))")).toBeLessThanOrEqual(390);
    expect(await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth')).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(RESULTS, 'dashboard-narrow.png'), fullPage: true });
  });
});
