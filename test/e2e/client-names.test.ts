// Names for client addresses (`client_names`: a static map and a hosts file) in `sluice log`,
// `sluice report` and the admin API, never on a pseudonymised network; a changed hosts file is
// picked up by the file watch.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RCODE, TYPE, resolve } from '../helpers/dns-client.js';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { loggedEvents, referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';
import { until } from '../helpers/until.js';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const TOKEN = 'client-names-test-token';

function cli(h: Harness, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [BIN, '--config', h.configFile, ...args], (error, stdout, stderr) => {
      res({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr });
    });
  });
}

const HOSTS = '# DHCP leases, exported nightly\n127.0.0.5   hr-laptop-05 hr5\n127.0.0.6 finance-06\n127.0.0.5 duplicate-ignored\nnot-an-address name\n127.0.0.2 guest-phone\n';

let upstream: FakeUpstream;
let h: Harness;
beforeAll(async () => {
  upstream = await startFakeUpstream();
  // TikTok by a policy, so that `report devices` (blocks of a policy) has rows.
  const config = referenceConfig(`admin: { enabled: true, port: 0, token: "${TOKEN}" }
policies:
  app-ban: { title: App ban, reference: decision 1, block: [tiktok], networks: [internal, guest], from: 2026-01-01 }
client_names:
  static: { "127.0.0.1": reception-pc, "127.0.0.6": finance-desk }
  hosts_files: [leases.hosts]
`)
    .replace('    cidrs: [127.0.0.2/32]\n    profile: open\n', '    cidrs: [127.0.0.2/32]\n    profile: staff\n    log: { pseudonymize: true }\n')
    .replace('block: [tiktok, wechat]', 'block: [wechat]');
  h = await startSluice({ config, lists: referenceLists, upstream: upstream.address, files: { 'leases.hosts': HOSTS } });
  for (const c of ['127.0.0.1', '127.0.0.5', '127.0.0.6', '127.0.0.7', '127.0.0.2']) expect((await resolve(h.udp, 'www.tiktok.com', 'A', { localAddress: c })).rcode).toBe(RCODE.NXDOMAIN);
  await loggedEvents(h);
});
afterAll(async () => {
  await h?.stop();
  await upstream?.close();
});

describe('client names', () => {
  it('are shown beside the address in `sluice log`, the static map before the hosts file, never for a pseudonym', async () => {
    const out = await cli(h, 'log', 'query', '--domain', 'www.tiktok.com', '--json');
    expect(out.err).toBe('');
    const events = (JSON.parse(out.out) as { events: { client: string; clientName?: string }[] }).events;
    const byClient = new Map(events.map((e) => [e.client, e.clientName]));
    expect(byClient.get('127.0.0.1')).toBe('reception-pc');
    expect(byClient.get('127.0.0.5')).toBe('hr-laptop-05');
    expect(byClient.get('127.0.0.6')).toBe('finance-desk');
    expect(byClient.has('127.0.0.7')).toBe(true);
    expect(byClient.get('127.0.0.7')).toBeUndefined();
    // the guest network pseudonymises: its token is logged, and no name is attached to it
    const guest = events.find((e) => e.client.startsWith('p:'));
    expect(guest).toBeDefined();
    expect(guest!.clientName).toBeUndefined();
    const table = await cli(h, 'log', 'query', '--domain', 'www.tiktok.com');
    expect(table.out).toMatch(/ 127\.0\.0\.5 \(hr-laptop-05\) +A +blocked +www\.tiktok\.com/);
    const csv = await cli(h, 'log', 'query', '--domain', 'www.tiktok.com', '--format', 'csv');
    expect(csv.out.split('\r\n')[0]).toMatch(/^time,instance,network,client,clientName,type,name,/);
    expect(csv.out).toContain(',127.0.0.5,hr-laptop-05,A,www.tiktok.com,');
  });

  it('name a client for --client, and refuse a name of several addresses', async () => {
    const one = await cli(h, 'log', 'query', '--client', 'hr-laptop-05', '--json');
    expect(one.err).toBe('');
    expect(new Set((JSON.parse(one.out) as { events: { client: string }[] }).events.map((e) => e.client))).toEqual(new Set(['127.0.0.5']));
  });

  it('are in the reports and the admin API', async () => {
    const devices = await cli(h, 'report', 'devices', '--since', '1h', '--json');
    expect(devices.err).toBe('');
    const rows = (JSON.parse(devices.out) as { rows: { client: string; clientName?: string }[] }).rows;
    expect(rows.find((r) => r.client === '127.0.0.5')?.clientName).toBe('hr-laptop-05');
    const table = await cli(h, 'report', 'devices', '--since', '1h');
    expect(table.out).toMatch(/127\.0\.0\.6 \(finance-desk\)/);
    const api = (await (await fetch(`http://127.0.0.1:${h.server.adminPort}/api/log?limit=50`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
      events: { client: string; clientName?: string }[];
    };
    expect(api.events.find((e) => e.client === '127.0.0.1')?.clientName).toBe('reception-pc');
    const summary = (await (await fetch(`http://127.0.0.1:${h.server.adminPort}/api/summary?since=1h`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
      topBlockedClients: { client: string; clientName?: string }[];
    };
    expect(summary.topBlockedClients.find((c) => c.client === '127.0.0.5')?.clientName).toBe('hr-laptop-05');
  });

  it('follow the hosts file when it changes (the file watch reloads)', async () => {
    writeFileSync(join(h.dir, 'leases.hosts'), HOSTS.replace('127.0.0.6 finance-06\n', '127.0.0.7 new-lease-07\n'));
    const named = async () => {
      const api = (await (await fetch(`http://127.0.0.1:${h.server.adminPort}/api/log?limit=50`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
        events: { client: string; clientName?: string }[];
      };
      return api.events.find((e) => e.client === '127.0.0.7')?.clientName === 'new-lease-07';
    };
    await until('the new lease to be read', named, 3000, 50);
  });
});

describe('client names by reverse DNS', () => {
  let internal: FakeUpstream;
  let r: Harness;
  beforeAll(async () => {
    // The internal DNS, authoritative for the reverse zone of 127.0.0.0/24 as a conditional upstream.
    internal = await startFakeUpstream();
    internal.setHandler((q) =>
      q.type === TYPE.PTR && q.name.toLowerCase() === '8.0.0.127.in-addr.arpa'
        ? { answers: [{ name: q.name, type: TYPE.PTR, ttl: 300, data: 'printer-08.corp.example' }] }
        : q.type === TYPE.PTR
          ? { rcode: RCODE.NXDOMAIN }
          : undefined,
    );
    const config = referenceConfig(`admin: { enabled: true, port: 0, token: "${TOKEN}" }
client_names: { reverse: true, static: { "127.0.0.1": reception-pc } }
`).replace('  total_timeout_ms: 1000\n', `  total_timeout_ms: 1000\n  conditional: [{ zone: 0.0.127.in-addr.arpa, servers: ["${internal.address}"] }]\n`);
    r = await startSluice({ config, lists: referenceLists, upstream: upstream.address });
    upstream.clearQueries();
    for (const c of ['127.0.0.1', '127.0.0.8', '127.0.0.9', '127.0.1.9']) expect((await resolve(r.udp, 'www.tiktok.com', 'A', { localAddress: c })).rcode).toBe(RCODE.NXDOMAIN);
    await loggedEvents(r);
  });
  afterAll(async () => {
    await r?.stop();
    await internal?.close();
  });

  it('names a client from the internal zone only, asks only the conditional upstream, and never the default one', async () => {
    const out = await cli(r, 'log', 'query', '--domain', 'www.tiktok.com', '--json');
    expect(out.err).toBe('');
    const names = new Map((JSON.parse(out.out) as { events: { client: string; clientName?: string }[] }).events.map((e) => [e.client, e.clientName]));
    expect(names.get('127.0.0.8')).toBe('printer-08.corp.example');
    expect(names.get('127.0.0.1')).toBe('reception-pc');
    expect(names.get('127.0.0.9')).toBeUndefined();
    expect(names.get('127.0.1.9')).toBeUndefined();
    // the static name is not looked up; 127.0.1.9 is outside the zone: asked nowhere
    const asked = internal.queries.filter((q) => q.type === TYPE.PTR).map((q) => q.name.toLowerCase());
    expect(new Set(asked)).toEqual(new Set(['8.0.0.127.in-addr.arpa', '9.0.0.127.in-addr.arpa']));
    expect(upstream.queries.filter((q) => q.type === TYPE.PTR)).toEqual([]);
    // the server looks up in the background: a later request has the name
    const apiName = async () => {
      const api = (await (await fetch(`http://127.0.0.1:${r.server.adminPort}/api/log?limit=50`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
        events: { client: string; clientName?: string }[];
      };
      return api.events.find((e) => e.client === '127.0.0.8')?.clientName === 'printer-08.corp.example';
    };
    await until('the server to name 127.0.0.8', apiName, 3000, 50);
    expect(upstream.queries.filter((q) => q.type === TYPE.PTR)).toEqual([]);
  });
});
