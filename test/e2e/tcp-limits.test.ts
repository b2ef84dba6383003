// TCP connection limits (RFC 7766 §6.2): an idle timeout and a cap on connections.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';

let upstream: FakeUpstream;
let h: Harness;
beforeAll(async () => {
  upstream = await startFakeUpstream();
  h = await startSluice({
    config: referenceConfig() + 'tcp:\n  idle_timeout_ms: 300\n  max_connections: 2\n',
    lists: referenceLists,
    upstream: upstream.address,
  });
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});

function connect(): Promise<{ sock: net.Socket; closed: Promise<number> }> {
  return new Promise((res, rej) => {
    const t0 = Date.now();
    const sock = net.connect(h.tcp.port, '127.0.0.1');
    const closed = new Promise<number>((r) => sock.on('close', () => r(Date.now() - t0)));
    sock.on('error', () => {});
    sock.once('connect', () => res({ sock, closed }));
    sock.once('error', rej);
  });
}

describe('TCP limits', () => {
  it('closes an idle connection after the idle timeout', async () => {
    const { closed } = await connect();
    // Not before the timeout (timers never fire early); that it closes at all is the wait itself.
    expect(await closed).toBeGreaterThanOrEqual(250);
  });

  it('closes connections beyond max_connections and keeps serving the others', async () => {
    const a = await connect();
    const b = await connect();
    let openOnes = 2;
    for (const s of [a, b]) void s.closed.then(() => openOnes--);
    await until('the server to hold both connections', () => h.server.tcpConnections() === 2);
    const c = await connect();
    await c.closed;
    // Closed for the cap, not by the idle timer: a and b, opened before it, are still open.
    expect(openOnes).toBe(2);
    expect(h.server.tcpConnections()).toBe(2);
    a.sock.destroy();
    b.sock.destroy();
    await Promise.all([a.closed, b.closed]);
    await until('the server to let both connections go', () => h.server.tcpConnections() === 0);
    const r = await resolve(h.tcp, 'www.tiktok.com', 'A', { transport: 'tcp', localAddress: '127.0.0.1' });
    expect(r.rcode).toBe(RCODE.NXDOMAIN);
  });
});
