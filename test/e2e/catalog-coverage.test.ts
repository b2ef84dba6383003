// The curated catalog against the maintained public references it was curated from
// (blocklists/references/): for each app, deep real hostnames from those references must be
// blocked on the internal network, and legitimate names (shared CDNs' other customers, look-alikes
// that are not subdomains, broad vendor services left open on purpose) must not be. Run as the
// real `sluice check` binary; and the coverage report (`npm run catalog:coverage`) must find no
// miss and match what docs/blocklists.md says.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeWorkspace, REPO, type Workspace } from './cli-workspace.js';

interface Must {
  name: string;
  list: string;
  /** The reference snapshot (blocklists/references/…) the name, or its root, comes from. */
  source: string;
}

// Deep real hostnames that must be BLOCKED from the internal network, with the list that blocks them.
const BLOCKED: Record<string, Must[]> = {
  tiktok: [
    { name: 'log16-normal-useast8.us.tiktokv.com', list: 'tiktok', source: 'hagezi-extended/tiktok.txt' },
    { name: 'rtlog16-normal-useastred.tiktokv.eu', list: 'tiktok', source: 'hagezi-native/tiktok.txt' },
    { name: 'analytics16-normal-useast5.tiktokw.us', list: 'tiktok', source: 'hagezi-native/tiktok.txt' },
    { name: 'sf16-telemetry-proxy-oci.tiktokcdn-us.com', list: 'tiktok', source: 'hagezi-native/tiktok.txt' },
    { name: 'v16m-t.tiktokcdn.com', list: 'tiktok', source: 'blocklistproject/tiktok.txt' },
    { name: 'api-bee-hl.amemv.com', list: 'tiktok', source: 'blocklistproject/tiktok.txt' },
    { name: 'roovza.launches.appsflyersdk.com', list: 'tiktok', source: 'v2fly/tiktok.txt' },
    { name: 'snssdk1233.onelink.me', list: 'tiktok', source: 'blocklistproject/tiktok.txt' },
    { name: 'musically.app.link', list: 'tiktok', source: 'blocklistproject/tiktok.txt' },
    { name: 'tik-tokapi.com', list: 'tiktok', source: 'v2fly/tiktok.txt' },
  ],
  'bytedance-shared': [
    { name: 'api-spe-ttl.sgpstatp.com', list: 'bytedance-shared', source: 'blocklistproject/tiktok.txt' },
    { name: 'a16-tb.isnssdk.com', list: 'bytedance-shared', source: 'blocklistproject/tiktok.txt' },
    { name: 'api-spe-a.sgsnssdk.com', list: 'bytedance-shared', source: 'blocklistproject/tiktok.txt' },
    { name: 'v16m.byteicdn.com', list: 'bytedance-shared', source: 'blocklistproject/tiktok.txt' },
    { name: 'dig.bdurl.net', list: 'bytedance-shared', source: 'blocklistproject/tiktok.txt' },
    { name: 'pangolin.snssdk.com', list: 'bytedance-shared', source: 'hagezi-native/tiktok.txt' },
    { name: 'gecko-pangle-sg.byteoversea.com', list: 'bytedance-shared', source: 'hagezi-extended/tiktok.txt' },
    { name: 'lf16-effectcdn.byteeffecttos-g.com', list: 'bytedance-shared', source: 'blackmatrix7/tiktok.txt' },
  ],
  capcut: [
    { name: 'log16-normal-us-ttp.capcutapi.us', list: 'capcut', source: 'hagezi-native/tiktok.txt' },
    { name: 'tnc-va-us-looki.capcutapi.com', list: 'capcut', source: 'hagezi-native/tiktok.txt' },
    { name: 'frontier.capcutw.us.edgesuite.net', list: 'capcut', source: 'hagezi-native/tiktok.txt' },
    { name: 'www.capcut.cn', list: 'capcut', source: 'v2fly/capcut.txt' },
    { name: 'lf16-capcut.faceulv.com', list: 'capcut', source: 'homebrew-cask/capcut.txt' },
  ],
  lemon8: [{ name: 'p16-va.lemon8cdn.com', list: 'lemon8', source: 'catalog.yaml lemon8 gh-code note' }],
  temu: [
    { name: 'www.temu.com', list: 'temu', source: 'adguard/temu.txt' },
    { name: 'img.kwcdn.com', list: 'temu', source: 'adguard/temu.txt' },
  ],
  pinduoduo: [
    { name: 'mobile.yangkeduo.com', list: 'pinduoduo', source: 'blackmatrix7/pinduoduo.txt' },
    { name: 'chat.pddim.com', list: 'pinduoduo', source: 'v2fly/pinduoduo.txt' },
    { name: 'img.pddpic.com', list: 'pinduoduo', source: 'v2fly/pinduoduo.txt' },
  ],
  wechat: [
    { name: 'ad.weixin.qq.com', list: 'wechat', source: 'v2fly/wechat.txt' },
    { name: 'vweixinthumb.tc.qq.com', list: 'wechat', source: 'blackmatrix7/wechat.txt' },
    { name: 'weixin110.qq.com', list: 'wechat', source: 'blackmatrix7/wechat.txt' },
    { name: 'wx.gtimg.com', list: 'wechat', source: 'blackmatrix7/wechat.txt' },
    { name: 'res.wx.qq.com', list: 'wechat', source: 'adguard/wechat.txt' },
    { name: 'mp.wxaurl.cn', list: 'wechat', source: 'v2fly/wechat.txt' },
    { name: 'mac.weixin.qq.com', list: 'wechat', source: 'homebrew-cask/wechat.txt' },
  ],
  ucbrowser: [
    { name: 'adslot.uc.cn', list: 'ucbrowser', source: 'v2fly/ucbrowser.txt' },
    { name: 'ads.uc.cn', list: 'ucbrowser', source: 'v2fly/ucbrowser.txt' },
    { name: 'www.ucweb.com.cn', list: 'ucbrowser', source: 'blackmatrix7/ucbrowser.txt' },
  ],
  camscanner: [
    { name: 'www.camscanner.com', list: 'camscanner', source: 'v2fly/camscanner.txt' },
    { name: 'api.intsig.net', list: 'camscanner', source: 'v2fly/camscanner.txt' },
  ],
  shein: [
    { name: 'nl.shein.com', list: 'shein', source: 'adguard/shein.txt' },
    { name: 'sheinsz.ltwebstatic.com', list: 'shein', source: 'adguard/shein.txt' },
  ],
  turbovpn: [{ name: 'www.turbovpn.com', list: 'turbovpn', source: 'hagezi-doh-vpn-proxy-bypass/turbovpn.txt' }],
  shareit: [{ name: 'dl.files.wshareit.com', list: 'shareit', source: 'catalog.yaml shareit gh-code note' }],
};

// Legitimate names that must stay ALLOWED on the internal network, and why.
const ALLOWED: Record<string, [name: string, why: string][]> = {
  tiktok: [
    ['www.apple.com.edgekey.net', "another customer's alias on Akamai"],
    ['dualstack.python.map.fastly.net', "another customer's alias on Fastly"],
    ['launches.appsflyersdk.com', "AppsFlyer's own host, used by thousands of apps"],
    ['tiktok.web.app', 'an arbitrary Firebase site (web.app is a public suffix), not TikTok'],
    ['nottiktok.com', 'look-alike, not a subdomain'],
    ['tiktok.com.example.org', 'look-alike, not a subdomain'],
    ['www.bytedance.com', 'corporate site, left open on purpose'],
  ],
  'bytedance-shared': [
    ['www.toutiao.com', "ByteDance's Chinese news app, not part of the ban"],
    ['www.volcengine.com', "ByteDance's cloud, left open (only its shared static hosts are blocked)"],
    ['www.larksuite.com', 'Lark, not part of the ban'],
  ],
  capcut: [
    ['capcut.com.example.net', 'look-alike, not a subdomain'],
    ['lf16.faceulv.com', "ByteDance's package CDN for other apps; only the CapCut-named host is listed"],
  ],
  lemon8: [['lemon8.example.com', 'look-alike, not a subdomain']],
  temu: [['temu.example.com', 'look-alike, not a subdomain']],
  pinduoduo: [['www.aliexpress.com', 'another Chinese shop, not banned']],
  wechat: [
    ['mail.qq.com', 'QQ Mail: qq.com is all of Tencent, never blocked as a whole'],
    ['map.qq.com', 'Tencent Maps, left open on purpose'],
    ['dldir1.qq.com', "Tencent's download server for all its installers (Homebrew's WeChat cask url)"],
    ['cloud.tencent.com', 'Tencent Cloud'],
    ['pay.wechatpay.cn', 'merchant payments, decided per deployment'],
    ['notwechat.com', 'look-alike, not a subdomain'],
  ],
  ucbrowser: [
    ['g.alicdn.com', 'Alibaba-wide CDN'],
    ['quark.cn', 'Quark browser, a separate Alibaba app'],
  ],
  camscanner: [
    ['www.camcard.com', 'CamCard, same vendor, not banned'],
    ['www.intsig.com', 'Intsig corporate site'],
  ],
  shein: [['img.ltwebstatic.com', "Roadget's static CDN for other properties"]],
  turbovpn: [['turbovpn.example.org', 'look-alike, not a subdomain']],
  shareit: [['shareit.example.com', 'look-alike, not a subdomain']],
};

let ws: Workspace;
beforeAll(() => {
  ws = makeWorkspace();
});
afterAll(() => ws?.remove());

const blocked = Object.values(BLOCKED).flat();
const allowed = Object.entries(ALLOWED).flatMap(([app, rows]) => rows.map(([name, why]) => ({ app, name, why })));

describe('the test names are real and cited', () => {
  it.each(blocked.filter((b) => !b.source.startsWith('catalog.yaml')))('$name is in (or under an entry of) $source', ({ name, source }) => {
    const entries = readFileSync(join(REPO, 'blocklists/references', source), 'utf8')
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.replace(/^full:/, ''));
    expect(entries.some((e) => name === e || name.endsWith(`.${e}`))).toBe(true);
  });

  it('every app list has blocked and allowed names', () => {
    for (const app of ['tiktok', 'lemon8', 'capcut', 'temu', 'pinduoduo', 'wechat', 'ucbrowser', 'camscanner', 'shein', 'turbovpn', 'shareit']) {
      expect(BLOCKED[app]?.length, app).toBeGreaterThan(0);
      expect(ALLOWED[app]?.length, app).toBeGreaterThan(0);
    }
  });
});

describe.concurrent('sluice check on the internal network (127.0.0.1)', () => {
  it.each(blocked)('$name is BLOCKED by $list ($source)', async ({ name, list }) => {
    const r = await ws.sluice('check', name, '--client', '127.0.0.1');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout.split('\n')[0]).toBe(`${name} A: BLOCKED`);
    expect(r.stdout).toMatch(new RegExp(`^  list +${list}$`, 'm'));
  });

  it.each(allowed)('$name stays ALLOWED ($app: $why)', async ({ name }) => {
    const r = await ws.sluice('check', name, '--client', '127.0.0.1');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`${name} A: ALLOWED`);
  });
});

describe('the coverage report', () => {
  const run = (...args: string[]) => execFileSync(process.execPath, [join(REPO, 'dist/tools/catalog-coverage.js'), ...args], { cwd: REPO, encoding: 'utf8' });

  it('finds no miss in any recorded reference (--strict exits 0) and names every commit', () => {
    const out = run('--strict');
    expect(out).not.toMatch(/MISSED/);
    for (const ref of ['v2fly/domain-list-community', 'blackmatrix7/ios_rule_script', 'blocklistproject/Lists', 'hagezi/dns-blocklists', 'AdguardTeam/HostlistsRegistry', 'nextdns/services'])
      expect(out).toContain(ref);
    expect(out).toMatch(/@c975ccef9c19/);
  });

  it('its table is the one in docs/blocklists.md', () => {
    const table = run('--markdown').trim();
    expect(readFileSync(join(REPO, 'docs/blocklists.md'), 'utf8')).toContain(table);
  });
});
