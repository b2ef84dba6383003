// A TCP port free on 127.0.0.1 right now (the kernel picks it), for daemons a test starts itself.
import dgram from 'node:dgram';
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/** A port free on 127.0.0.1 for both TCP and UDP, for daemons that bind both. */
export async function freeTcpUdpPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort();
    const udpFree = await new Promise<boolean>((done) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => done(false));
      u.bind(port, '127.0.0.1', () => u.close(() => done(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no free loopback port for both UDP and TCP');
}
