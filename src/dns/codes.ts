// DNS numbers used by sluice (RFC 1035, 2308, 6891, 8914).

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;

/**
 * Rcodes with which an upstream says it could not answer (SERVFAIL, REFUSED) or did not understand
 * the query (FORMERR, NOTIMP): another upstream may do better, and the client gets SERVFAIL.
 */
export function isUpstreamFailure(rcode: number): boolean {
  return rcode === RCODE.SERVFAIL || rcode === RCODE.REFUSED || rcode === RCODE.FORMERR || rcode === RCODE.NOTIMP;
}

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  SVCB: 64,
  HTTPS: 65,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

export const CLASS_IN = 1;

export const OPCODE_QUERY = 0;

/** RFC 8914 Extended DNS Error info codes. */
export const EDE = {
  OTHER: 0,
  STALE_ANSWER: 3,
  /** 6-12: DNSSEC validation failures (Bogus, Signature Expired, … NSEC Missing). */
  DNSSEC_BOGUS: 6,
  NSEC_MISSING: 12,
  PROHIBITED: 18,
  BLOCKED: 15,
  NOT_READY: 14,
  NOT_SUPPORTED: 21,
  FILTERED: 17,
  NO_REACHABLE_AUTHORITY: 22,
  NETWORK_ERROR: 23,
} as const;

export const EDNS_OPTION_EDE = 15;

/** What sluice advertises and uses upstream: the DNS Flag Day 2020 recommendation. */
export const EDNS_UDP_SIZE = 1232;

/** Without EDNS a UDP answer may be at most 512 bytes (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_SIZE = 512;

export function rcodeName(rcode: number): string {
  for (const [k, v] of Object.entries(RCODE)) if (v === rcode) return k;
  return `RCODE${rcode}`;
}

// A table, because the query log names the type of every query.
const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([k, v]) => [v, k]));

export function typeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `TYPE${type}`;
}
