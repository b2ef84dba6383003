// A server with the admin API and log files on, and a known sequence of queries, shared by the
// admin API tests and the `sluice log` / `sluice report` tests. The clock is the test's: each
// query happens one minute after the previous one, from 2026-12-01T12:00:00Z.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, vi } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { RCODE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startSluice, type Harness } from '../helpers/sluice-harness.js';

export const TOKEN = 'test-token-0123456789';
export const T0 = Date.parse('2026-12-01T12:00:00Z');
export const MINUTE = 60_000;

export const ADMIN_LINE = `admin: { enabled: true, port: 0, token: "${TOKEN}" }`;

export const config = `
listeners:
  - address: 127.0.0.1
    port: 0
networks:
  internal:
    cidrs: [127.0.0.0/16]
    profile: staff
  guest:
    cidrs: [127.0.0.2/32]
    profile: open
    log: { level: blocked, pseudonymize: true }
profiles:
  staff:
    block: [doh-bypass]
  open:
    block: []
policies:
  app-ban:
    title: App ban
    reference: council decision 2026-10-01
    block: [tiktok, turbovpn]
    networks: [internal, guest]
    from: 2026-11-01
    review_by: 2027-04-30
lists:
  tiktok: { file: lists/tiktok.txt }
  turbovpn: { file: lists/turbovpn.txt }
  doh-bypass: { file: lists/doh-bypass.txt }
workers: 1
watch: false
state_dir: state
upstreams:
  default: ["@UPSTREAM@"]
  timeout_ms: 300
  total_timeout_ms: 1000
query_log:
  instance: fixture
  file: { retention_days: 30 }
${ADMIN_LINE}
`;

export const lists = {
  tiktok: 'tiktok.com\ntiktokcdn.com\n',
  turbovpn: 'turbovpn.com\n',
  'doh-bypass': 'dns.google\ncloudflare-dns.com\nuse-application-dns.net\n',
};

/** [client, name, type, expected rcode, logged?] in order, one minute apart. */
export const traffic: [string, string, string, number, boolean][] = [
  ['127.0.0.1', 'www.tiktok.com', 'A', RCODE.NXDOMAIN, true], // 0: policy app-ban, list tiktok
  ['127.0.0.1', 'example.org', 'A', RCODE.NOERROR, true], // 1: upstream
  ['127.0.0.1', 'example.org', 'A', RCODE.NOERROR, true], // 2: cache
  ['127.0.0.1', 'example.org', 'AAAA', RCODE.NOERROR, true], // 3: upstream
  ['127.0.0.5', 'v16.tiktokcdn.com', 'A', RCODE.NXDOMAIN, true], // 4: policy app-ban, list tiktok
  ['127.0.0.5', 'dns.google', 'A', RCODE.NXDOMAIN, true], // 5: profile staff, list doh-bypass, no policy
  ['127.0.0.2', 'tiktok.com', 'A', RCODE.NXDOMAIN, true], // 6: guest: policy app-ban, pseudonymised
  ['127.0.0.2', 'example.net', 'A', RCODE.NOERROR, false], // 7: guest logs blocked queries only
  ['127.0.0.1', 'turbovpn.com', 'A', RCODE.NXDOMAIN, true], // 8: policy app-ban, list turbovpn
  ['127.9.0.1', 'example.org', 'A', RCODE.REFUSED, true], // 9: in no network
];

export const at = (i: number) => T0 + i * MINUTE;

export interface Fixture {
  h: Harness;
  upstream: FakeUpstream;
  /** The config file with the admin server's real port, for the CLI. */
  adminPort: number;
  logFile: string;
  clock: { now: number };
  stop(): Promise<void>;
}

/** Start the server, send the traffic, and wait until every logged event is in the file. */
export async function startFixture(): Promise<Fixture> {
  const upstream = await startFakeUpstream();
  const clock = { now: T0 };
  const h = await startSluice({ config, lists, upstream: upstream.address, clock: () => clock.now });
  const adminPort = h.server.adminPort!;
  // The CLI finds the server through the config; watch is off, so the server does not reload.
  h.writeConfig(config.replace(ADMIN_LINE, ADMIN_LINE.replace('port: 0', `port: ${adminPort}`)));
  for (const [i, [client, name, type, rcode]] of traffic.entries()) {
    clock.now = at(i);
    const r = await resolve(h.udp, name, type, { localAddress: client });
    expect(r.rcode, `${client} ${name} ${type}`).toBe(rcode);
  }
  h.server.observability.queryLog.buffer.flush();
  await h.server.observability.owner!.store!.flush();
  const logFile = join(h.dir, 'state', 'querylog', 'queries-2026-12-01.jsonl');
  const logged = traffic.filter((t) => t[4]).length;
  await vi.waitFor(() => expect(readEvents(logFile)).toHaveLength(logged), { timeout: 5000, interval: 20 });
  return {
    h,
    upstream,
    adminPort,
    logFile,
    clock,
    async stop() {
      await h.stop();
      await upstream.close();
    },
  };
}

export function readEvents(file: string): QueryEvent[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  // the last line may still be being written
  return text.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as QueryEvent];
    } catch {
      return [];
    }
  });
}
