// Upstreams that send invalid replies, through a real sluice over loopback sockets: such a reply is
// neither relayed nor cached (the client gets SERVFAIL with an EDE naming the problem, or the next
// upstream's answer), each one is counted by reason in /metrics, and whatever sluice sends a
// client, dnspython can parse. Also: an answer that arrives after the per-upstream timeout, but
// within the total one, is still taken.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RCODE, decodeResponse, encodeQuery, queryTcp, queryUdp, type DecodedResponse } from '../helpers/dns-client.js';
import { DEFAULT_A, defaultAnswer, startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { HOSTILE_KINDS, hostileHandler, hostileReply, type HostileKind } from '../helpers/hostile-upstream.js';
import { referenceConfig, referenceLists, startSluice, type Harness } from '../helpers/sluice-harness.js';

const GUEST = '127.0.0.2';
const TOKEN = 'hostile-upstream-test-token-0123';
/** RFC 8914 info code sluice gives an invalid upstream reply. */
const EDE_NETWORK_ERROR = 23;
const CLIENT_TIMEOUT_MS = 3000;

// The distribution's python3 has python3-dnspython; a python3 earlier on PATH (pyenv) may not.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** Reads length-prefixed messages from stdin; prints, per message, null or why dnspython refused it. */
const PARSE_ALL = `
import dns.message, json, struct, sys
data = sys.stdin.buffer.read()
out, i = [], 0
while i < len(data):
    (n,) = struct.unpack('!H', data[i:i + 2])
    try:
        dns.message.from_wire(data[i + 2:i + 2 + n])
        out.append(None)
    except Exception as e:
        out.append(type(e).__name__ + ': ' + str(e))
    i += 2 + n
print(json.dumps(out))
`;

/** For each message, null when dnspython parses it, else its complaint. */
function dnspythonErrors(messages: Buffer[]): Promise<(string | null)[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', PARSE_ALL], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${PYTHON} exited ${code}: ${stderr}`));
      else resolve(JSON.parse(stdout) as (string | null)[]);
    });
    child.stdin.end(
      Buffer.concat(
        messages.flatMap((m) => {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(m.length);
          return [len, m];
        }),
      ),
    );
  });
}

interface Reply {
  raw: Buffer;
  msg: DecodedResponse;
}

/** Ask `h` for `name` A with EDNS, from the guest network, over `transport`; the reply's bytes and decoding. */
async function ask(h: Harness, name: string, transport: 'udp' | 'tcp'): Promise<Reply> {
  const query = encodeQuery(name, 'A', { edns: {} });
  const opts = { localAddress: GUEST, timeoutMs: CLIENT_TIMEOUT_MS };
  const raw = transport === 'udp' ? await queryUdp(h.udp, query, opts) : (await queryTcp(h.tcp, [query], opts))[0]!;
  return { raw, msg: decodeResponse(raw) };
}

function expectInvalidReplyServfail(r: DecodedResponse, problem: string): void {
  expect(r.rcode).toBe(RCODE.SERVFAIL);
  expect(r.answers).toEqual([]);
  expect(r.edns?.ede?.infoCode).toBe(EDE_NETWORK_ERROR);
  expect(r.edns?.ede?.text).toContain('invalid reply');
  expect(r.edns?.ede?.text).toContain(problem);
}

function expectGoodAnswer(r: DecodedResponse): void {
  expect(r.rcode).toBe(RCODE.NOERROR);
  expect(r.answers.map((a) => a.data)).toEqual([DEFAULT_A]);
}

/** sluice_upstream_invalid_replies_total of `upstream`, by reason. */
async function invalidReplies(h: Harness, upstream: string): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${h.server.adminPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  const byReason = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^sluice_upstream_invalid_replies_total\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (labels.upstream === upstream && labels.reason !== undefined) byReason.set(labels.reason, Number(m[2]));
  }
  return byReason;
}

/** The reference config with the upstream timeouts replaced; fails loudly if the config changed shape. */
function withTimeouts(config: string, timeoutMs: number, totalTimeoutMs: number): string {
  const from = '  timeout_ms: 300\n  total_timeout_ms: 1000\n';
  if (!config.includes(from)) throw new Error('referenceConfig() no longer sets the upstream timeouts this test replaces');
  return config.replace(from, `  timeout_ms: ${timeoutMs}\n  total_timeout_ms: ${totalTimeoutMs}\n`);
}

let good: FakeUpstream;
let bad: FakeUpstream;
/** sluice with `bad` as its only upstream, and the admin API. */
let only: Harness;

beforeAll(async () => {
  good = await startFakeUpstream();
  bad = await startFakeUpstream();
  only = await startSluice({ config: referenceConfig(`admin: { enabled: true, port: 0, token: "${TOKEN}" }\n`), lists: referenceLists, upstream: bad.address });
});
afterAll(async () => {
  await only?.stop();
  await bad?.close();
  await good?.close();
});
beforeEach(() => {
  bad.setHandler(undefined);
});

describe('the dnspython check', () => {
  it('parses a sound reply and refuses a hostile one, so it can tell them apart', async () => {
    const query = encodeQuery('check.example', 'A', { id: 77, edns: {} });
    const sound = (await ask(only, 'sound.check.example', 'udp')).raw;
    expect(decodeResponse(sound).rcode).toBe(RCODE.NOERROR);
    const errors = await dnspythonErrors([sound, hostileReply('owner-pointer-loop', { id: 77, raw: query })]);
    expect(errors[0]).toBeNull();
    expect(errors[1]).toMatch(/\w/);
  });
});

describe('an upstream that sends invalid replies, as the only upstream', () => {
  it.each(HOSTILE_KINDS)('%s: SERVFAIL with EDE 23 naming "%s", over UDP and TCP, and nothing cached', async (kind, problem) => {
    const name = `${kind}.only.example`;
    bad.setHandler(hostileHandler(kind));
    const udp = await ask(only, name, 'udp');
    const tcp = await ask(only, name, 'tcp');
    expectInvalidReplyServfail(udp.msg, problem);
    expectInvalidReplyServfail(tcp.msg, problem);
    expect(bad.queries.filter((q) => q.name === name).length).toBeGreaterThanOrEqual(2);

    bad.setHandler(undefined);
    const healed = await ask(only, name, 'udp');
    expectGoodAnswer(healed.msg);
    expect(await dnspythonErrors([udp.raw, tcp.raw, healed.raw])).toEqual([null, null, null]);
  });
});

describe('sluice_upstream_invalid_replies_total', () => {
  it.each(HOSTILE_KINDS)('%s: counts each invalid reply under reason "%s" and no other', async (kind, problem) => {
    const before = await invalidReplies(only, bad.address);
    let sent = 0;
    const hostile = hostileHandler(kind);
    bad.setHandler((q) => {
      sent++;
      return hostile(q);
    });
    const r = await ask(only, `${kind}.counted.example`, 'udp');
    expect(r.msg.rcode).toBe(RCODE.SERVFAIL);
    expect(sent).toBeGreaterThanOrEqual(1);
    const after = await invalidReplies(only, bad.address);
    expect(after.get(problem)).toBe((before.get(problem) ?? 0) + sent);
    for (const [reason, n] of after) if (reason !== problem) expect([reason, n]).toEqual([reason, before.get(reason) ?? 0]);
  });
});

describe('an upstream that sends invalid replies, before a good one', () => {
  // Each kind gets its own hostile upstream, in a conditional zone [hostile, good]: back-off is kept
  // per upstream, so one kind's failures cannot move another kind's hostile upstream out of first place.
  const hostile = new Map<HostileKind, FakeUpstream>();
  let pair: Harness;

  beforeAll(async () => {
    for (const [kind] of HOSTILE_KINDS) {
      const f = await startFakeUpstream();
      f.setHandler(hostileHandler(kind));
      hostile.set(kind, f);
    }
    const zones = HOSTILE_KINDS.map(([kind]) => `    - zone: ${kind}.fallback.example.\n      servers: ["${hostile.get(kind)!.address}", "${good.address}"]\n`).join('');
    pair = await startSluice({ config: referenceConfig(`  conditional:\n${zones}`), lists: referenceLists, upstream: good.address });
  });
  afterAll(async () => {
    await pair?.stop();
    for (const f of hostile.values()) await f.close();
  });

  it.each(HOSTILE_KINDS)('%s: the client gets the good upstream’s answer, over UDP and TCP', async (kind) => {
    // Two names: the first answer is cached, and the TCP query must go upstream too.
    const udpName = `udp.${kind}.fallback.example`;
    const tcpName = `tcp.${kind}.fallback.example`;
    const udp = await ask(pair, udpName, 'udp');
    const tcp = await ask(pair, tcpName, 'tcp');
    expectGoodAnswer(udp.msg);
    expectGoodAnswer(tcp.msg);
    const asked = hostile.get(kind)!.queries.map((q) => q.name);
    expect(asked).toContain(udpName);
    expect(asked).toContain(tcpName);
    expect(good.queries.map((q) => q.name)).toEqual(expect.arrayContaining([udpName, tcpName]));
    expect(await dnspythonErrors([udp.raw, tcp.raw])).toEqual([null, null]);
  });
});

describe('an answer later than the per-upstream timeout', () => {
  let slow: FakeUpstream;
  let h: Harness;

  beforeAll(async () => {
    slow = await startFakeUpstream();
    slow.setHandler((q) => ({ ...defaultAnswer(q), delayMs: 400 }));
    h = await startSluice({ config: withTimeouts(referenceConfig(), 300, 1500), lists: referenceLists, upstream: slow.address });
  });
  afterAll(async () => {
    await h?.stop();
    await slow?.close();
  });

  it('is still taken within the total timeout, and cached', async () => {
    const first = await ask(h, 'late.example', 'udp');
    expectGoodAnswer(first.msg);
    const asked = slow.queries.filter((q) => q.name === 'late.example').length;
    expect(asked).toBeGreaterThanOrEqual(1);

    const second = await ask(h, 'late.example', 'udp');
    expectGoodAnswer(second.msg);
    expect(slow.queries.filter((q) => q.name === 'late.example').length).toBe(asked);
    expect(await dnspythonErrors([first.raw, second.raw])).toEqual([null, null]);
  });
});
