// The fake upstream over TCP: answers every query with one A record 192.0.2.1, TTL 300, as
// bench/responder.c does over UDP, on the same port. dnsdist asks its backend over TCP for what
// it received over TCP or DoT, so its DoT frontend needs this to fill its cache.
//
//   node bench/tcp-responder.mjs PORT
import net from 'node:net';

const port = Number(process.argv[2]);
if (!(port > 0)) {
  console.error('usage: tcp-responder.mjs PORT');
  process.exit(2);
}
const RR = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 1]); // name ptr, A IN, TTL 300, 192.0.2.1

/** The answer to QUERY: its header and question, QR/RA set, one answer; undefined when malformed. */
function answer(query) {
  let o = 12;
  while (o < query.length && query[o] !== 0) o += query[o] + 1;
  const end = o + 5; // root label, QTYPE, QCLASS
  if (query.length < 12 || end > query.length) return undefined;
  const out = Buffer.alloc(2 + end + RR.length);
  out.writeUInt16BE(end + RR.length, 0);
  query.copy(out, 2, 0, end);
  out[4] = 0x81 | (query[2] & 0x01); // QR, opcode 0, RD copied
  out[5] = 0x80; // RA, NOERROR
  out.writeUInt16BE(1, 2 + 6); // ANCOUNT
  out.writeUInt32BE(0, 2 + 8); // NSCOUNT, ARCOUNT
  RR.copy(out, 2 + end);
  return out;
}

net
  .createServer((socket) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const a = answer(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        if (a) socket.write(a);
      }
    });
    socket.on('error', () => socket.destroy());
  })
  .listen(port, '127.0.0.1');
