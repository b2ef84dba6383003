// The pure parts of `sluice cache flush`, `sluice query` and `sluice reload`: the cache's flush of a
// name and the names below it, the answer's records as text, query types by name, who may call
// the verbs, and how `sluice query` prints a report.
import { describe, expect, it } from 'vitest';
import { allowed } from '../../src/admin/access.js';
import type { QueryReport } from '../../src/admin/backend.js';
import { parseQueryType } from '../../src/admin/query-report.js';
import { renderQueryReport } from '../../src/cli/admin-verbs.js';
import { TYPE as CODES } from '../../src/dns/codes.js';
import { scanAnswer } from '../../src/dns/answer-bytes.js';
import { encodeQueryMessage, messageText } from '../../src/dns/message-text.js';
import { readQuery } from '../../src/dns/wire.js';
import { AnswerCache } from '../../src/pipeline/answer-cache.js';
import { encodeQuery, TYPE } from '../helpers/dns-client.js';
import { encodeResponse, type Rr } from '../helpers/fake-upstream.js';

const CLAMP = { minTtl: 0, maxTtl: 86400, negativeMaxTtl: 3600 };

function cached(cache: AnswerCache, name: string, type = 'A', opts: { do?: boolean } = {}): void {
  const msg = encodeQuery(name, type, { id: 1, ...(opts.do ? { edns: { do: true } } : {}) });
  const r = readQuery(msg);
  if (!r.ok) throw new Error(r.reason);
  const answers: Rr[] = [{ name, type: TYPE.A, ttl: 300, data: '192.0.2.1' }];
  cache.store(AnswerCache.key(r.query), scanAnswer(encodeResponse(msg, { tc: false, answers }), r.query.questionEnd, CLAMP)!);
}

describe('AnswerCache.flush', () => {
  it('without a name empties the cache and says how many answers went', () => {
    const cache = new AnswerCache(100);
    for (const n of ['a.example.org', 'b.example.org', 'example.net']) cached(cache, n);
    expect(cache.flush()).toBe(3);
    expect(cache.size).toBe(0);
    expect(cache.lookup('a.example.org/1/1')).toBeUndefined();
  });

  it('with a name drops that name and the names below it, of every type and flag, and nothing else', () => {
    const cache = new AnswerCache(100);
    cached(cache, 'example.org');
    cached(cache, 'www.example.org');
    cached(cache, 'www.example.org', 'AAAA');
    cached(cache, 'deep.www.example.org', 'A', { do: true });
    cached(cache, 'notexample.org');
    cached(cache, 'example.org.evil.net');
    cached(cache, 'other.net');
    expect(cache.flush('example.org')).toBe(4);
    expect(cache.size).toBe(3);
    expect(cache.lookup('www.example.org/1/1')).toBeUndefined();
    expect(cache.lookup('example.org/1/1')).toBeUndefined();
    for (const k of ['notexample.org/1/1', 'example.org.evil.net/1/1', 'other.net/1/1']) expect(cache.lookup(k)).toBeDefined();
    // the index is intact after the removals: new entries are found, flushed ones can come back
    cached(cache, 'www.example.org');
    expect(cache.lookup('www.example.org/1/1')).toBeDefined();
    expect(cache.flush('www.example.org')).toBe(1);
    expect(cache.flush('nothing.example')).toBe(0);
  });
});

describe('messageText', () => {
  it('reads the answer and authority records in presentation form and the EDE', () => {
    const msg = encodeQuery('example.org', 'A', { id: 9, edns: {} });
    const reply = encodeResponse(msg, {
      tc: false,
      answers: [
        { name: 'example.org', type: TYPE.CNAME, ttl: 60, data: 'web.example.net' },
        { name: 'web.example.net', type: TYPE.A, ttl: 30, data: '192.0.2.7' },
        { name: 'web.example.net', type: TYPE.AAAA, ttl: 30, data: '2001:db8::7' },
        { name: 'example.org', type: TYPE.TXT, ttl: 5, data: ['v=spf1 -all'] },
        { name: 'example.org', type: TYPE.MX, ttl: 5, data: Buffer.from([0, 10, 0]) },
      ],
      authorities: [{ name: 'example.org', type: TYPE.SOA, ttl: 60, data: { mname: 'ns.example.org', rname: 'hostmaster.example.org', serial: 7, refresh: 1, retry: 2, expire: 3, minimum: 4 } }],
      ednsOptions: [{ code: 15, data: Buffer.concat([Buffer.from([0, 15]), Buffer.from('blocked here')]) }],
    });
    const t = messageText(reply)!;
    expect(t.answers).toEqual([
      { name: 'example.org', type: 'CNAME', ttl: 60, data: 'web.example.net.' },
      { name: 'web.example.net', type: 'A', ttl: 30, data: '192.0.2.7' },
      { name: 'web.example.net', type: 'AAAA', ttl: 30, data: '2001:db8::7' },
      { name: 'example.org', type: 'TXT', ttl: 5, data: '"v=spf1 -all"' },
      { name: 'example.org', type: 'MX', ttl: 5, data: '10 .' },
    ]);
    expect(t.authority).toEqual([{ name: 'example.org', type: 'SOA', ttl: 60, data: 'ns.example.org. hostmaster.example.org. 7 1 2 3 4' }]);
    expect(t.ede).toEqual({ code: 15, text: 'blocked here' });
    expect(messageText(reply.subarray(0, reply.length - 3))).toBeUndefined();
  });

  it('a query it encodes is read back as sluice reads queries, with EDNS', () => {
    const r = readQuery(encodeQueryMessage(4242, 'www.example.org', CODES.HTTPS));
    expect(r.ok && { id: r.query.id, name: r.query.name, type: r.query.type, edns: r.query.edns !== undefined }).toEqual({ id: 4242, name: 'www.example.org', type: 65, edns: true });
  });
});

describe('query types and roles', () => {
  it.each([
    ['a', 1],
    ['AAAA', 28],
    ['https', 65],
    ['TYPE99', 99],
    ['99', 99],
    ['nope', undefined],
    ['TYPE0', undefined],
    ['TYPE70000', undefined],
  ])('type %s is %s', (text, expected) => expect(parseQueryType(text, CODES)).toBe(expected));

  it.each([
    ['viewer', 'GET', '/api/query', false],
    ['viewer', 'GET', '/api/Query/', false],
    ['viewer', 'GET', '/api/%71uery', false],
    ['viewer', 'POST', '/api/admin/cache/flush', false],
    ['viewer', 'POST', '/api/admin/reload', false],
    ['metrics', 'GET', '/api/query', false],
    ['viewer', 'GET', '/api/log', true],
    ['admin', 'GET', '/api/query', true],
    ['admin', 'POST', '/api/admin/reload', true],
  ] as const)('%s %s %s → %s', (role, method, path, ok) => expect(allowed(role, method, path)).toBe(ok));
});

describe('renderQueryReport', () => {
  it('prints the decision, why, and the records as dig does', () => {
    const r: QueryReport = {
      name: 'www.tiktok.com',
      type: 'A',
      client: '127.0.0.1',
      decision: 'blocked',
      network: 'internal',
      profile: 'staff',
      policy: null,
      list: 'tiktok',
      rule: 'tiktok.com',
      note: null,
      rcode: 'NXDOMAIN',
      answers: [],
      authority: [{ name: 'tiktok.com', type: 'SOA', ttl: 60, data: 'sluice.invalid. hostmaster.sluice.invalid. 1 3600 600 86400 60' }],
      ede: { code: 15, text: 'sluice: blocked' },
      source: 'local',
      upstream: null,
      durationMs: 0.2,
      version: 'abc123',
    };
    expect(renderQueryReport(r)).toBe(
      'www.tiktok.com A: BLOCKED\n' +
        '  client     127.0.0.1\n' +
        '  network    internal\n' +
        '  profile    staff\n' +
        '  list       tiktok\n' +
        '  rule       tiktok.com\n' +
        '  rcode      NXDOMAIN\n' +
        '  ede        15: sluice: blocked\n' +
        '  source     sluice itself\n' +
        '  time       0.2 ms\n' +
        '  version    abc123\n' +
        'authority\n' +
        '  tiktok.com.\t60\tIN\tSOA\tsluice.invalid. hostmaster.sluice.invalid. 1 3600 600 86400 60\n',
    );
  });
});
