// DNS over HTTPS requests (RFC 8484) read without a server: path, method, body, base64url, statuses.
import { describe, expect, it } from 'vitest';
import { checkDohBody, decodeBase64Url, dnsCacheMaxAge, parseDohRequest, type DohRequestHead } from '../../src/server/doh-request.js';
import { encodeQuery } from '../helpers/dns-client.js';
import { encodeAnswer, encodeRecord, readQuery } from '../../src/dns/wire.js';

const route = { path: '/dns-query', clientIds: { lobby: 'guest' }, maxBytes: 512 };
const msg = encodeQuery('example.org', 'A', { id: 0 });
const b64 = msg.toString('base64url');
const get = (url: string): DohRequestHead => ({ method: 'GET', url, contentType: undefined, contentLength: undefined });
const post = (url: string, contentType: string | undefined, contentLength?: string): DohRequestHead => ({ method: 'POST', url, contentType, contentLength });

describe('parseDohRequest', () => {
  it('reads a GET ?dns= query, with other parameters around it', () => {
    for (const url of [`/dns-query?dns=${b64}`, `/dns-query?ct=x&dns=${b64}&z=1`, `/dns-query?dns=${b64}==`.replace('==', '%3D%3D')]) {
      const r = parseDohRequest(get(url), route);
      expect(r.ok && r.message?.equals(msg)).toBe(true);
      expect(r.ok && r.pathNetwork).toBeUndefined();
    }
  });

  it('finds the dns parameter as URLSearchParams does, escaped or not', () => {
    const other = encodeQuery('other.org', 'A', { id: 0 }).toString('base64url');
    const queries = [
      `dns=${b64}`,
      `dnsx=${other}&dns=${b64}`,
      `xdns=${other}&dns=${b64}`,
      `&&dns=${b64}&`,
      `dns=${b64}&dns=${other}`,
      `a=1&dn%73=${b64}`,
      `a=+&dns=${b64}`,
      'dns',
      'dns&x=1',
      '',
      '&',
      'x=1',
    ];
    for (const query of queries) {
      const expected = new URLSearchParams(query).get('dns');
      const r = parseDohRequest(get(`/dns-query?${query}`), route);
      expect({ query, message: r.ok ? r.message?.toString('base64url') : r.status }).toEqual({ query, message: expected ? expected : 400 });
    }
  });

  it('takes a POST of application/dns-message (parameters allowed); the body comes later', () => {
    for (const ct of ['application/dns-message', 'Application/DNS-Message; charset=x']) {
      expect(parseDohRequest(post('/dns-query', ct, '40'), route)).toEqual({ ok: true, message: undefined, pathNetwork: undefined });
    }
  });

  it('maps a known client id in the path to its network', () => {
    expect(parseDohRequest(post('/dns-query/lobby', 'application/dns-message'), route)).toMatchObject({ ok: true, pathNetwork: 'guest' });
    expect(parseDohRequest(get(`/dns-query/lobby?dns=${b64}`), route)).toMatchObject({ ok: true, pathNetwork: 'guest' });
  });

  it('answers what is not a DoH query with the right status', () => {
    const cases: [DohRequestHead, number][] = [
      [get(`/other?dns=${b64}`), 404],
      [get(`/dns-query-x?dns=${b64}`), 404],
      [get(`/dns-query/unknown?dns=${b64}`), 404],
      [get(`/dns-query/constructor?dns=${b64}`), 404],
      [get(`/dns-query/?dns=${b64}`), 404],
      [{ method: 'PUT', url: '/dns-query', contentType: undefined, contentLength: undefined }, 405],
      [{ method: 'DELETE', url: '/dns-query/lobby', contentType: undefined, contentLength: undefined }, 405],
      [get('/dns-query'), 400],
      [get('/dns-query?dns='), 400],
      [get('/dns-query?dns=a*b!'), 400],
      [get('/dns-query?dns=AAAAA'), 400], // 4n+1 characters
      [get(`/dns-query?dns=${Buffer.alloc(6).toString('base64url')}`), 400], // shorter than a header
      [get(`/dns-query?dns=${Buffer.alloc(600).toString('base64url')}`), 413],
      [post('/dns-query', 'application/json'), 415],
      [post('/dns-query', undefined), 415],
      [post('/dns-query', 'application/dns-message', '513'), 413],
    ];
    for (const [head, status] of cases) expect({ url: head.url, r: parseDohRequest(head, route) }).toMatchObject({ url: head.url, r: { ok: false, status } });
  });
});

describe('checkDohBody and decodeBase64Url', () => {
  it('accepts a message between a header and the limit', () => {
    expect(checkDohBody(msg, 512)).toBeUndefined();
    expect(checkDohBody(Buffer.alloc(11), 512)).toBe(400);
    expect(checkDohBody(Buffer.alloc(513), 512)).toBe(413);
  });

  it('decodes base64url with and without padding, and rejects standard base64 characters', () => {
    expect(decodeBase64Url('_-8')).toEqual(Buffer.from([0xff, 0xef]));
    expect(decodeBase64Url('AAE=')).toEqual(Buffer.from([0, 1]));
    expect(decodeBase64Url('+/8')).toBeUndefined();
    for (const bad of ['AA===', 'A=A', 'A', 'AAAA=AAA', 'AA AA', 'AA.A']) expect(decodeBase64Url(bad)).toBeUndefined();
    expect(decodeBase64Url('')).toEqual(Buffer.alloc(0));
    expect(decodeBase64Url('AAAA')).toEqual(Buffer.alloc(3));
  });
});

describe('dnsCacheMaxAge', () => {
  const r = readQuery(encodeQuery('example.org', 'A', { id: 1 }));
  if (!r.ok) throw new Error(r.reason);
  const q = r.query;
  const m = encodeQuery('example.org', 'A', { id: 1 });

  it('is the smallest TTL of the answer and authority records', () => {
    const tail = Buffer.concat([encodeRecord(12, 1, 300, Buffer.from([192, 0, 2, 1])), encodeRecord(12, 1, 42, Buffer.from([192, 0, 2, 2])), encodeRecord(12, 2, 7, Buffer.from([0]))]);
    expect(dnsCacheMaxAge(encodeAnswer(m, q, 0, { an: 2, ns: 1 }, tail))).toBe(7);
    expect(dnsCacheMaxAge(encodeAnswer(m, q, 0, { an: 2, ns: 0 }, tail.subarray(0, 32)))).toBe(42);
  });

  it('is undefined for a message without records or a broken one', () => {
    expect(dnsCacheMaxAge(encodeAnswer(m, q, 5, { an: 0, ns: 0 }, undefined))).toBeUndefined();
    expect(dnsCacheMaxAge(encodeAnswer(m, q, 0, { an: 1, ns: 0 }, Buffer.alloc(3)))).toBeUndefined();
  });
});
