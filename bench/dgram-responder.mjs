// Bare node:dgram DNS responder (127.0.0.1 only): every query is answered with one A record
// 192.0.2.1, TTL 300, by patching the query bytes (no parsing beyond walking the labels).
//
//   node bench/dgram-responder.mjs PORT
//
// Two uses in `npm run bench`:
//   - the Node ceiling: the most a single Node 20 process can answer over node:dgram on one core,
//     so sluice's blocked/cached rates can be read as a fraction of what Node allows;
//   - the fake upstream when no C compiler is there to build bench/responder.c (slower: it can
//     then limit the cache-miss rates).
import dgram from 'node:dgram';

const port = Number(process.argv[2] || 5593);
const ANS = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 1]);

/** End offset of the question section (name + QTYPE + QCLASS), or -1. */
function questionEnd(q) {
  let i = 12;
  while (i < q.length) {
    const l = q[i];
    if (l === 0) break;
    if (l & 0xc0) return -1;
    i += l + 1;
  }
  i += 5;
  return i <= q.length ? i : -1;
}

const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
s.on('message', (q, rinfo) => {
  if (q.length < 17 || q[2] & 0x80) return; // short, or a response
  const end = questionEnd(q);
  if (end < 0) return;
  const r = Buffer.allocUnsafe(end + ANS.length);
  q.copy(r, 0, 0, end); // header + question; EDNS and anything after is dropped
  r[2] = (q[2] & 0x79) | 0x80; // QR=1, keep opcode and RD
  r[3] = 0x80; // RA=1, NOERROR
  r[4] = 0;
  r[5] = 1;
  r[6] = 0;
  r[7] = 1; // QD=1 AN=1
  r[8] = 0;
  r[9] = 0;
  r[10] = 0;
  r[11] = 0; // NS=0 AR=0
  ANS.copy(r, end);
  s.send(r, rinfo.port, rinfo.address);
});
s.on('error', (e) => {
  console.error(e.message);
  process.exit(1);
});
s.bind(port, '127.0.0.1', () => console.error(`dgram-responder pid ${process.pid} on 127.0.0.1:${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
