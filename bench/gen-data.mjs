// Deterministic synthetic inputs for `npm run bench` (nothing is downloaded).
//
//   node bench/gen-data.mjs DIR [--1m]
//
// Writes into DIR (skipping files that are already there from the same generator version):
//   block100k.txt        100,000 synthetic domains + the banned apps' core domains (tiktok.com ...)
//   block1m.txt          1,000,000 synthetic domains + the same app domains      (only with --1m)
//   q_blocked.txt        100,000 A queries for names on the 100k list (half exact, half subdomains)
//   q_cached.txt         100,000 A queries over 100 allowed names (all cache hits once primed)
//   q_cached_prime.txt   the 100 allowed names once each
// Cache-miss query files (unique names, never repeated) are written per run by bench/run.sh.
// All lists are plain: one domain a line, a domain blocks itself and its subdomains.
import fs from 'node:fs';
import path from 'node:path';

const VERSION = 1; // bump when the output changes, so stale files are regenerated
const dir = process.argv[2];
const want1m = process.argv.includes('--1m');
if (!dir) {
  console.error('usage: gen-data.mjs DIR [--1m]');
  process.exit(2);
}
fs.mkdirSync(dir, { recursive: true });

/** mulberry32: small deterministic PRNG, same output on every machine. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const words = (
  'ads track stat pixel metric beacon cdn img static media video play news shop deal promo ' +
  'cloud edge sync data api log telemetry push notify app game bet casino click offer coupon ' +
  'mail web net host srv node link go my best top free hot fast smart'
).split(' ');
const tlds = [
  ...Array(40).fill('com'),
  ...Array(12).fill('net'),
  ...Array(6).fill('org'),
  ...Array(4).fill('io'),
  ...Array(5).fill('cn'),
  ...Array(3).fill('ru'),
  ...Array(3).fill('de'),
  ...['info', 'biz', 'co', 'xyz', 'app', 'top', 'online', 'site', 'nl', 'be', 'fr', 'uk', 'tk'].flatMap((t) => [t, t]),
];
const subs = ['www', 'api', 'cdn', 'm', 'static', 'img', 'log', 't', 'stats', 'ads', 'edge', 'v16', 'p16', 'sf', 'us', 'eu'];
// The banned apps' core domains: www.tiktok.com is the probe for "the list is loaded".
const apps = [
  'tiktok.com',
  'tiktokv.com',
  'tiktokcdn.com',
  'tiktokcdn-us.com',
  'bytedance.com',
  'byteoversea.com',
  'ibytedtos.com',
  'musical.ly',
  'capcut.com',
  'lemon8-app.com',
  'temu.com',
  'shein.com',
  'wechat.com',
  'camscanner.com',
  'pinduoduo.com',
  'ucweb.com',
  'ushareit.com',
  'turbovpn.com',
];

function synthList(n, seed) {
  const rnd = prng(seed);
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const int = (max) => Math.floor(rnd() * (max + 1));
  const set = new Set(apps);
  while (set.size < n + apps.length) {
    const base = `${pick(words)}${rnd() < 0.5 ? pick(words) : ''}${int(99999)}.${pick(tlds)}`;
    const r = rnd();
    set.add(r < 0.55 ? base : r < 0.85 ? `${pick(subs)}.${base}` : `${pick(subs)}-${int(99)}.${pick(subs)}.${base}`);
  }
  return [...set].sort();
}

function fresh(file) {
  const stamp = path.join(dir, `.${file}.v${VERSION}`);
  return fs.existsSync(path.join(dir, file)) && fs.existsSync(stamp);
}
function write(file, lines) {
  fs.writeFileSync(path.join(dir, file), lines.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, `.${file}.v${VERSION}`), '');
  console.error(`gen-data: ${file} (${lines.length} lines)`);
}

const wanted = ['block100k.txt', 'q_blocked.txt', 'q_cached.txt', 'q_cached_prime.txt'];
if (!wanted.every(fresh)) {
  const list = synthList(100000, 20261122);
  write('block100k.txt', list);
  const rnd = prng(7);
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const blocked = [];
  for (let i = 0; i < 100000; i++) blocked.push(i % 2 ? `${pick(list)} A` : `${pick(subs)}.${pick(list)} A`);
  write('q_blocked.txt', blocked);
  const cached = [];
  for (let i = 0; i < 100000; i++) cached.push(`host${Math.floor(rnd() * 100)}.allowed-example.org A`);
  write('q_cached.txt', cached);
  write(
    'q_cached_prime.txt',
    Array.from({ length: 100 }, (_, i) => `host${i}.allowed-example.org A`),
  );
}
if (want1m && !fresh('block1m.txt')) write('block1m.txt', synthList(1000000, 1000003));
