// Answers while a Redis outage's buffer goes back: sluice (built, pinned to CPU 1) in shared mode,
// Redis killed while 100,000 queries are logged, then restarted; one client asks sequentially
// and records each answer's latency while the buffered events are replayed. Loopback only.
// Usage: npm run build && node bench/redis-replay.mjs [checkout]
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const ROOT = process.argv[2] ?? join(import.meta.dirname, '..');
const RPORT = 16379 + Math.floor(Math.random() * 1000),
  DPORT = 25353 + Math.floor(Math.random() * 1000);
const dir = mkdtempSync(join(tmpdir(), 'rb-'));
mkdirSync(join(dir, 'lists'));
writeFileSync(join(dir, 'lists/tiktok.txt'), 'tiktok.com\n');
writeFileSync(
  join(dir, 'sluice.yaml'),
  `listeners: [{ address: 127.0.0.1, port: ${DPORT} }]
networks: { internal: { cidrs: [127.0.0.0/8], profile: staff } }
profiles: { staff: { block: [tiktok] } }
lists: { tiktok: { file: lists/tiktok.txt } }
upstreams: { default: ["127.0.0.1:9"] }
redis: { url: "redis://127.0.0.1:${RPORT}", heartbeat_ms: 1000, buffer_events: 200000 }
query_log: { instance: bench }
`,
);
let redis;
const startRedis = () => {
  redis = spawn('redis-server', ['--port', String(RPORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
startRedis();
await sleep(300);
const srv = spawn('taskset', ['-c', '1', process.execPath, join(ROOT, 'bin/sluice.js'), 'serve', '--config', join(dir, 'sluice.yaml')], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
srv.stdout.on('data', (d) => (out += d));
await sleep(1500);
const sock = dgram.createSocket('udp4');
await new Promise((r) => sock.bind(0, '127.0.0.1', r));
const q = (id) => {
  const b = Buffer.alloc(12 + 16 + 4);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(0x0100, 2);
  b.writeUInt16BE(1, 4);
  let o = 12;
  for (const l of ['www', 'tiktok', 'com']) {
    b[o++] = l.length;
    b.write(l, o);
    o += l.length;
  }
  b[o++] = 0;
  b.writeUInt16BE(1, o);
  b.writeUInt16BE(1, o + 2);
  return b.subarray(0, o + 4);
};
const pending = new Map();
let got = 0;
sock.on('message', (m) => {
  const id = m.readUInt16BE(0);
  const p = pending.get(id);
  if (p) {
    pending.delete(id);
    got++;
    p();
  }
});
const ask = (id) =>
  new Promise((r) => {
    pending.set(id, r);
    sock.send(q(id), DPORT, '127.0.0.1');
    setTimeout(() => {
      if (pending.get(id) === r) {
        pending.delete(id);
        r();
      }
    }, 1000);
  });
redis.kill('SIGKILL');
await sleep(500);
// 100k queries logged while Redis is away, 100 in flight.
let next = 0;
const N = 100_000;
await Promise.all(
  Array.from({ length: 100 }, async () => {
    while (next < N) {
      const id = next++ & 0xffff;
      await ask(id);
    }
  }),
);
console.log('answered while down', got);
await sleep(1500); // every timer of the first phase has fired: ids are reused below
startRedis();
const lat = [];
let t0 = Date.now();
const reconnected = () => out.split('redis connected').length > 2;
while (!reconnected() && Date.now() - t0 < 15000) await ask(0);
t0 = Date.now();
while (Date.now() - t0 < 3000) {
  const s = performance.now();
  await ask(lat.length & 0xffff);
  lat.push(performance.now() - s);
}
lat.sort((a, b) => a - b);
const pct = (p) => lat[Math.floor(lat.length * p)].toFixed(2);
console.log(`queries during replay: ${lat.length}, p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, p99.9 ${pct(0.999)} ms, max ${lat.at(-1).toFixed(2)} ms`);
console.log(
  out
    .split('\n')
    .filter((l) => /replayed|redis connected/.test(l))
    .join('\n'),
);
srv.kill('SIGTERM');
redis.kill('SIGKILL');
sock.close();
await sleep(300);
process.exit(0);
