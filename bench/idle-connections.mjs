// What idle encrypted connections cost a server: open COUNT DoT connections (TLS, ALPN dot) or
// DoH sessions (HTTP/2 over TLS) to 127.0.0.1:PORT, each asks one query and then stays open and
// idle; the RSS of PID (and its descendants) from /proc before and after. Prints one JSON object.
//
//   node bench/idle-connections.mjs --mode dot|doh --port PORT --pid PID [--count 1000]
//        [--ca CA.pem] [--servername NAME] [--name www.tiktok.com] [--settle-ms 3000]
//        [--baseline-settle-ms 10000]
//
// Before the baseline, a few connections are opened, used and closed, so that what the first
// connection loads once (TLS context, HTTP/2 code) is not counted as the cost of idle ones.
// Bounded: at most 5,000 connections, 64 handshakes at a time, every step under a timeout.
import fs from 'node:fs';
import http2 from 'node:http2';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    mode: { type: 'string' },
    port: { type: 'string' },
    pid: { type: 'string' },
    count: { type: 'string', default: '1000' },
    ca: { type: 'string' },
    servername: { type: 'string', default: 'localhost' },
    name: { type: 'string', default: 'www.tiktok.com' },
    'settle-ms': { type: 'string', default: '3000' },
    'baseline-settle-ms': { type: 'string', default: '10000' },
  },
});
const mode = opt.mode;
const port = Number(opt.port);
const pid = Number(opt.pid);
const count = Number(opt.count);
if ((mode !== 'dot' && mode !== 'doh') || !(port > 0) || !(pid > 0) || !(count >= 1 && count <= 5000)) {
  console.error('usage: idle-connections.mjs --mode dot|doh --port PORT --pid PID [--count 1..5000] [--ca FILE] [--servername NAME]');
  process.exit(2);
}
const ca = opt.ca ? fs.readFileSync(opt.ca) : undefined;
const STEP_TIMEOUT_MS = 10000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A DNS query for NAME, type A, with ID (RFC 1035 §4.1). */
function query(name, id) {
  const labels = name.split('.').filter(Boolean);
  const q = Buffer.alloc(12 + labels.reduce((n, l) => n + l.length + 1, 1) + 4);
  q.writeUInt16BE(id, 0);
  q.writeUInt16BE(0x0100, 2); // RD
  q.writeUInt16BE(1, 4); // QDCOUNT
  let o = 12;
  for (const l of labels) {
    q[o++] = l.length;
    o += q.write(l, o, 'ascii');
  }
  q[o++] = 0;
  q.writeUInt16BE(1, o); // A
  q.writeUInt16BE(1, o + 2); // IN
  return q;
}

/** VmRSS in kB of PID and its descendants (a server may have workers). */
function rssKb(root) {
  let total = 0;
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop();
    let status;
    try {
      status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
    } catch {
      continue;
    }
    total += Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    for (const task of fs.readdirSync(`/proc/${p}/task`, { withFileTypes: true })) {
      const kids = fs.readFileSync(`/proc/${p}/task/${task.name}/children`, 'utf8').trim();
      if (kids) stack.push(...kids.split(/\s+/).map(Number));
    }
  }
  return total;
}

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A DoT connection that has asked one query and got its answer; resolves to { close, isOpen }. */
function openDot(id) {
  return withTimeout(
    new Promise((resolve, reject) => {
      let open = true;
      const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: opt.servername, ALPNProtocols: ['dot'] }, () => {
        const q = query(opt.name, id);
        const framed = Buffer.alloc(2 + q.length);
        framed.writeUInt16BE(q.length, 0);
        q.copy(framed, 2);
        socket.write(framed);
      });
      let got = Buffer.alloc(0);
      const onData = (chunk) => {
        got = Buffer.concat([got, chunk]);
        if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
          socket.off('data', onData);
          resolve({ close: () => socket.destroy(), isOpen: () => open });
        }
      };
      socket.on('data', onData);
      socket.on('close', () => {
        open = false;
      });
      socket.on('error', reject);
    }),
    `DoT connection ${id}`,
  );
}

/** A DoH (HTTP/2) session that has made one POST and got its answer. */
function openDoh(id) {
  return withTimeout(
    new Promise((resolve, reject) => {
      let open = true;
      const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: opt.servername });
      session.on('error', reject);
      session.on('close', () => {
        open = false;
      });
      const body = query(opt.name, 0); // RFC 8484 §4.1: ID 0 over DoH
      const req = session.request({ ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message', accept: 'application/dns-message' });
      req.on('response', (headers) => {
        if (headers[':status'] !== 200) reject(new Error(`DoH session ${id}: HTTP ${headers[':status']}`));
      });
      req.on('data', () => {});
      req.on('end', () => resolve({ close: () => session.destroy(), isOpen: () => open && !session.closed && !session.destroyed }));
      req.on('error', reject);
      req.end(body);
    }),
    `DoH session ${id}`,
  );
}

const open = mode === 'dot' ? openDot : openDoh;

/** COUNT connections, at most 64 handshakes in flight. */
async function openMany(n, firstId) {
  const conns = [];
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const id = firstId + next++;
      conns.push(await open(id & 0xffff));
    }
  };
  await Promise.all(Array.from({ length: Math.min(64, n) }, lane));
  return conns;
}

const settle = Number(opt['settle-ms']);
/** The median of 5 RSS samples 200 ms apart: one sample may fall just before or after a collection. */
async function rssSettled() {
  const samples = [];
  for (let i = 0; i < 5; i++) {
    if (i > 0) await sleep(200);
    samples.push(rssKb(pid));
  }
  return samples.sort((a, b) => a - b)[2];
}
const warm = await openMany(8, 1);
for (const c of warm) c.close();
// V8's memory reducer collects a few seconds after a process turns idle: let that happen before
// the baseline rather than between the two readings
await sleep(Number(opt['baseline-settle-ms']));
const rssBeforeKb = await rssSettled();
const t0 = performance.now();
const conns = await openMany(count, 100);
const openSeconds = (performance.now() - t0) / 1000;
await sleep(settle); // idle: nothing is sent while the server settles
const rssAfterKb = await rssSettled();
const stillOpen = conns.filter((c) => c.isOpen()).length;
for (const c of conns) c.close();
console.log(JSON.stringify({ mode, port, count, open: stillOpen, rssBeforeKb, rssAfterKb, extraKb: rssAfterKb - rssBeforeKb, openSeconds }));
process.exit(0);
