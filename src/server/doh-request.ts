// The pure part of DNS over HTTPS (RFC 8484): what an HTTP request asks (GET ?dns=<base64url> or
// POST application/dns-message at the configured path, optionally /path/<client id>), which
// HTTP status a bad one gets, and the freshness of an answer for its Cache-Control header.
import { skipName } from '../dns/wire.js';

export const DNS_MESSAGE = 'application/dns-message';
/** A DNS message has at least its 12-byte header. */
const HEADER_BYTES = 12;

export interface DohRoute {
  /** The endpoint, e.g. "/dns-query". */
  path: string;
  /** Client ID → network name (`doh.client_ids`). */
  clientIds: Readonly<Record<string, string>>;
  /** Longest DNS message accepted (`doh.max_request_bytes`). */
  maxBytes: number;
}

export interface DohRequestHead {
  method: string | undefined;
  /** The request target: path and query string. */
  url: string | undefined;
  contentType: string | undefined;
  contentLength: string | undefined;
}

export type DohParsed =
  /** GET: the message is in the URL. POST: read the body (then checkDohBody). */
  { ok: true; message: Buffer | undefined; pathNetwork: string | undefined } | { ok: false; status: 400 | 404 | 405 | 413 | 415; reason: string };

/** Read an HTTP request's head as a DoH query, or say which status it gets. */
export function parseDohRequest(head: DohRequestHead, route: DohRoute): DohParsed {
  const url = head.url ?? '';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  let pathNetwork: string | undefined;
  if (path !== route.path) {
    const id = path.startsWith(route.path) && path[route.path.length] === '/' ? path.slice(route.path.length + 1) : undefined;
    // Own properties only: "/dns-query/constructor" is not a client ID.
    if (id === undefined || !Object.hasOwn(route.clientIds, id)) return { ok: false, status: 404, reason: id === undefined ? 'no such path' : 'unknown client id' };
    pathNetwork = route.clientIds[id];
  }
  if (head.method === 'GET') {
    const dns = q < 0 ? null : dnsParameter(url, q + 1);
    if (dns === null || dns === '') return { ok: false, status: 400, reason: 'no dns parameter' };
    // Base64url without padding (RFC 8484 §4.1); 4 characters carry 3 bytes.
    if (Math.floor((dns.length * 3) / 4) > route.maxBytes) return { ok: false, status: 413, reason: 'message too long' };
    const message = decodeBase64Url(dns);
    if (message === undefined) return { ok: false, status: 400, reason: 'bad base64url' };
    if (message.length > route.maxBytes) return { ok: false, status: 413, reason: 'message too long' };
    if (message.length < HEADER_BYTES) return { ok: false, status: 400, reason: 'not a DNS message' };
    return { ok: true, message, pathNetwork };
  }
  if (head.method === 'POST') {
    const type = head.contentType?.split(';', 1)[0]!.trim().toLowerCase();
    if (type !== DNS_MESSAGE) return { ok: false, status: 415, reason: `content-type ${head.contentType ?? '(none)'}` };
    if (head.contentLength !== undefined && Number(head.contentLength) > route.maxBytes) return { ok: false, status: 413, reason: 'message too long' };
    return { ok: true, message: undefined, pathNetwork };
  }
  return { ok: false, status: 405, reason: `method ${head.method ?? '(none)'}` };
}

/** A POST body as a DNS message: the status when it is not one. */
export function checkDohBody(body: Buffer, maxBytes: number): 400 | 413 | undefined {
  if (body.length > maxBytes) return 413;
  if (body.length < HEADER_BYTES) return 400;
  return undefined;
}

/**
 * The first `dns` parameter of the query string that starts at `from` in `url`, as URLSearchParams
 * reads it. A query string without escapes ("%", "+": the usual one) is split here, without the
 * URLSearchParams object and its decoded copies.
 */
function dnsParameter(url: string, from: number): string | null {
  if (url.includes('%', from) || url.includes('+', from)) return new URLSearchParams(url.slice(from)).get('dns');
  while (from < url.length) {
    let end = url.indexOf('&', from);
    if (end < 0) end = url.length;
    if (url.startsWith('dns', from) && (end === from + 3 || url.charCodeAt(from + 3) === EQUALS)) return url.slice(Math.min(from + 4, end), end);
    from = end + 1;
  }
  return null;
}

const EQUALS = 0x3d;

/** Base64url (RFC 4648 §5), with or without "=" padding; undefined for anything else. */
export function decodeBase64Url(s: string): Buffer | undefined {
  let n = s.length;
  if (n > 0 && s.charCodeAt(n - 1) === EQUALS) n -= n > 1 && s.charCodeAt(n - 2) === EQUALS ? 2 : 1;
  // Node's decoder skips bad characters silently: check first. A length of 4n+1 cannot be base64.
  if (n % 4 === 1) return undefined;
  for (let i = 0; i < n; i++) if (!isBase64UrlChar(s.charCodeAt(i))) return undefined;
  return Buffer.from(n === s.length ? s : s.slice(0, n), 'base64url');
}

/** A-Z a-z 0-9 - _ */
function isBase64UrlChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
}

/**
 * Seconds an HTTP cache may keep this DNS response (RFC 8484 §5.1): the smallest TTL of its answer
 * and authority records (a negative answer's SOA included). Undefined when it has none (REFUSED,
 * SERVFAIL, an empty NOERROR without SOA) or cannot be read: then no Cache-Control is sent.
 */
export function dnsCacheMaxAge(response: Uint8Array): number | undefined {
  if (response.length < HEADER_BYTES) return undefined;
  const u16 = (p: number) => (response[p]! << 8) | response[p + 1]!;
  let p = HEADER_BYTES;
  for (let q = u16(4); q > 0; q--) {
    p = skipName(response, p);
    if (p < 0) return undefined;
    p += 4;
  }
  let min: number | undefined;
  for (let r = u16(6) + u16(8); r > 0; r--) {
    const nameEnd = skipName(response, p);
    if (nameEnd < 0 || nameEnd + 10 > response.length) return undefined;
    const ttl = ((response[nameEnd + 4]! << 24) | (response[nameEnd + 5]! << 16) | (response[nameEnd + 6]! << 8) | response[nameEnd + 7]!) >>> 0;
    if (min === undefined || ttl < min) min = ttl;
    p = nameEnd + 10 + u16(nameEnd + 8);
    if (p > response.length) return undefined;
  }
  return min;
}
