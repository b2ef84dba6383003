// SVCB records (RFC 9460) in wire format, for the DNS-server designations of DDR (RFC 9461,
// RFC 9462). Pure and built at load time only: the hot path copies the bytes made here.
import ipaddr from 'ipaddr.js';
import { TYPE } from './codes.js';
import { encodeName, encodeRecord } from './wire.js';

/** SvcParamKeys (RFC 9460 §14.3.2; dohpath: RFC 9461 §5). */
export const SVC_PARAM = {
  MANDATORY: 0,
  ALPN: 1,
  NO_DEFAULT_ALPN: 2,
  PORT: 3,
  IPV4HINT: 4,
  ECH: 5,
  IPV6HINT: 6,
  DOHPATH: 7,
} as const;

/** One ServiceMode SVCB record (priority ≥ 1) with the parameters a DNS-server designation uses. */
export interface SvcbRecord {
  priority: number;
  /** TargetName, lower case without trailing dot ("" for the root, "."). */
  target: string;
  alpn?: readonly string[];
  port?: number;
  ipv4hint?: readonly string[];
  ipv6hint?: readonly string[];
  /** A relative URI template with the `dns` variable, e.g. "/dns-query{?dns}" (RFC 9461 §5). */
  dohpath?: string;
}

/** SVCB RDATA: SvcPriority, the uncompressed TargetName (RFC 9460 §2.2), SvcParams in ascending key order. Throws on values the RFCs forbid. */
export function encodeSvcbRdata(r: SvcbRecord): Buffer {
  if (!Number.isInteger(r.priority) || r.priority < 1 || r.priority > 0xffff) throw new Error(`SVCB priority ${r.priority}: ServiceMode needs 1-65535`);
  const params: [number, Buffer][] = [];
  if (r.alpn && r.alpn.length > 0) {
    params.push([
      SVC_PARAM.ALPN,
      Buffer.concat(
        r.alpn.map((id) => {
          const b = Buffer.from(id, 'latin1');
          if (b.length < 1 || b.length > 255) throw new Error(`SVCB alpn id "${id}": 1-255 bytes`);
          return Buffer.concat([Buffer.from([b.length]), b]);
        }),
      ),
    ]);
  }
  if (r.port !== undefined) {
    if (!Number.isInteger(r.port) || r.port < 0 || r.port > 0xffff) throw new Error(`SVCB port ${r.port}`);
    params.push([SVC_PARAM.PORT, Buffer.from([r.port >> 8, r.port & 0xff])]);
  }
  if (r.ipv4hint && r.ipv4hint.length > 0) params.push([SVC_PARAM.IPV4HINT, addresses(r.ipv4hint, 'ipv4')]);
  if (r.ipv6hint && r.ipv6hint.length > 0) params.push([SVC_PARAM.IPV6HINT, addresses(r.ipv6hint, 'ipv6')]);
  if (r.dohpath !== undefined) {
    if (!r.dohpath.startsWith('/') || !/\{\?dns[,}]/.test(r.dohpath)) throw new Error(`SVCB dohpath "${r.dohpath}": a relative URI template with the dns variable`);
    params.push([SVC_PARAM.DOHPATH, Buffer.from(r.dohpath, 'utf8')]);
  }
  // Pushed in key order already; sorted anyway, as RFC 9460 §2.2 requires strictly ascending keys.
  params.sort((a, b) => a[0] - b[0]);
  const parts: Buffer[] = [Buffer.from([r.priority >> 8, r.priority & 0xff]), encodeName(r.target)];
  for (const [key, value] of params) {
    if (value.length > 0xffff) throw new Error(`SVCB parameter ${key} too long`);
    parts.push(Buffer.from([key >> 8, key & 0xff, value.length >> 8, value.length & 0xff]), value);
  }
  return Buffer.concat(parts);
}

/** SVCB records owned by the name at `ownerOffset` (a compression pointer, 12 for the question name): an answer section's bytes. */
export function encodeSvcbRecords(ownerOffset: number, ttl: number, records: readonly SvcbRecord[]): Buffer {
  return Buffer.concat(records.map((r) => encodeRecord(ownerOffset, TYPE.SVCB, ttl, encodeSvcbRdata(r))));
}

function addresses(list: readonly string[], kind: 'ipv4' | 'ipv6'): Buffer {
  return Buffer.concat(
    list.map((a) => {
      const ip = ipaddr.parse(a);
      if (ip.kind() !== kind) throw new Error(`SVCB ${kind}hint: ${a} is not an ${kind === 'ipv4' ? 'IPv4' : 'IPv6'} address`);
      return Buffer.from(ip.toByteArray());
    }),
  );
}
