// Differential tests of the forwarder: sluice and Unbound (a pure forwarder) both in front of the
// same NSD, asked the same questions; their answers must agree on everything a client acts on,
// except for the accepted differences listed below with their reasons. Then specific checks of
// behaviour a forwarder must get right (CD in the cache key, AD, truncation, AA, malformed
// queries), with a validating Unbound where DNSSEC matters.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLASS_IN,
  RCODE,
  TYPE,
  QueryTimeoutError,
  decodeResponse,
  encodeName,
  encodeOpt,
  encodeQuery,
  queryTcp,
  queryUdp,
  readName,
  type DecodedRecord,
  type DecodedResponse,
  type EdnsQueryOptions,
  type ServerAddress,
  type Transport,
} from '../helpers/dns-client.js';
import { BOGUS_ADDRESS, SIGNED_ADDRESS, differentialZones, startNsd, startUnbound, type NsdServer, type ReferenceServer } from '../helpers/reference-dns.js';
import { startSluice, type Harness } from '../helpers/sluice-harness.js';

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

function sluiceConfig(): string {
  return `
listeners:
  - address: 127.0.0.1
    port: 0
networks:
  loopback:
    cidrs: [127.0.0.0/8]
    profile: open
profiles:
  open:
    block: []
workers: 1
watch: false
upstreams:
  default: ["@UPSTREAM@"]
  timeout_ms: 1000
  total_timeout_ms: 2000
query_log:
  store: { kind: none }
`;
}

let nsd: NsdServer;
/** Unbound as a pure forwarder to NSD: the reference sluice is compared with. */
let unbound: ReferenceServer;
/** Unbound validating (trust anchors for signed.test and bogus.test), forwarding to NSD. */
let validating: ReferenceServer;
/** sluice forwarding to NSD. */
let sluice: Harness;
/** sluice forwarding to the validating Unbound, on a clock the tests move. */
let sluiceV: Harness;
/** sluice forwarding to the validating Unbound, for the differential corpus (its own cache). */
let sluiceRelay: Harness;
let now = Date.UTC(2026, 0, 1);

beforeAll(async () => {
  nsd = await startNsd(differentialZones());
  [unbound, validating, sluice] = await Promise.all([
    startUnbound({ forwardTo: nsd, validate: false }),
    startUnbound({ forwardTo: nsd, validate: true, trustAnchors: nsd.signedZones.map((z) => z.ds) }),
    startSluice({ config: sluiceConfig(), upstream: nsd.address }),
  ]);
  [sluiceV, sluiceRelay] = await Promise.all([
    startSluice({ config: sluiceConfig(), upstream: validating.address, clock: () => now }),
    startSluice({ config: sluiceConfig(), upstream: validating.address }),
  ]);
});

afterAll(async () => {
  await Promise.all([sluice?.stop(), sluiceV?.stop(), sluiceRelay?.stop()]);
  await Promise.all([unbound?.stop(), validating?.stop()]);
  await nsd?.stop();
});

// ---------------------------------------------------------------------------
// Asking, and reading replies into comparable form
// ---------------------------------------------------------------------------

interface QueryFlags {
  edns?: EdnsQueryOptions;
  cd?: boolean;
  ad?: boolean;
}

/** One exchange; UDP is retried on a timeout (as a stub would), so a lost datagram is not a difference. */
async function exchange(server: ServerAddress, query: Buffer, transport: Transport): Promise<Buffer> {
  if (transport === 'tcp') {
    const [reply] = await queryTcp(server, [query], { timeoutMs: 3000 });
    return reply!;
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await queryUdp(server, query, { timeoutMs: 1500 });
    } catch (e) {
      if (!(e instanceof QueryTimeoutError) || attempt >= 3) throw e;
    }
  }
}

/** Server address for a transport: sluice's harness has separate UDP/TCP addresses (same host). */
function endpoint(server: ReferenceServer | Harness, transport: Transport): ServerAddress {
  return 'udp' in server ? server[transport] : server;
}

async function ask(server: ReferenceServer | Harness, name: string, type: number | string, flags: QueryFlags = {}, transport: Transport = 'udp'): Promise<Reply> {
  const query = encodeQuery(name, type, { ...flags, id: 0x5a5a });
  return readReply(await exchange(endpoint(server, transport), query, transport));
}

interface Rr {
  section: 'answer' | 'authority' | 'additional';
  name: string;
  type: number;
  /** Canonical record data: names lower case and uncompressed, whatever the server compressed. */
  data: string;
  /** For RRSIG: the type it covers. */
  covered?: number;
}

interface Reply {
  raw: Buffer;
  msg: DecodedResponse;
  records: Rr[];
}

type Section = Rr['section'];
const SECTIONS: Section[] = ['answer', 'authority', 'additional'];

/**
 * Decode with dns-client's decoder, then walk the records again for what it leaves as hex or
 * does not expose: MX/SRV targets (a server may compress the MX target, so the hex differs
 * between servers for the same record) and the type an RRSIG covers.
 */
function readReply(raw: Buffer): Reply {
  const msg = decodeResponse(raw);
  const decoded: Record<Section, DecodedRecord[]> = {
    answer: msg.answers,
    authority: msg.authorities,
    additional: msg.additionals,
  };
  const counts = [raw.readUInt16BE(6), raw.readUInt16BE(8), raw.readUInt16BE(10)];
  let pos = 12;
  for (let i = 0; i < raw.readUInt16BE(4); i++) pos = readName(raw, pos).next + 4;
  const records: Rr[] = [];
  let optSeen = false;
  SECTIONS.forEach((section, s) => {
    let k = 0;
    for (let i = 0; i < counts[s]!; i++) {
      const next = readName(raw, pos).next;
      const type = raw.readUInt16BE(next);
      const start = next + 10;
      const end = start + raw.readUInt16BE(next + 8);
      pos = end;
      // decodeResponse reports the first OPT as `edns`, not as a record.
      if (section === 'additional' && type === TYPE.OPT && !optSeen) {
        optSeen = true;
        continue;
      }
      const rec = decoded[section][k++]!;
      const rr: Rr = { section, name: rec.name.toLowerCase(), type, data: canonicalData(raw, rec, start) };
      if (type === TYPE_RRSIG) rr.covered = raw.readUInt16BE(start);
      if (rec.class !== CLASS_IN) rr.data += ` class=${rec.class}`;
      records.push(rr);
    }
  });
  return { raw, msg, records };
}

const TYPE_RRSIG = 46;
const EDE_STALE_ANSWER = 3;
const EDE_DNSSEC_BOGUS = 6;
const EDE_NO_REACHABLE_AUTHORITY = 22;

function canonicalData(raw: Buffer, rec: DecodedRecord, start: number): string {
  const lower = (n: string): string => n.toLowerCase();
  switch (rec.type) {
    case TYPE.MX:
      return `${raw.readUInt16BE(start)} ${lower(readName(raw, start + 2).name)}`;
    case TYPE.SRV:
      return [raw.readUInt16BE(start), raw.readUInt16BE(start + 2), raw.readUInt16BE(start + 4), lower(readName(raw, start + 6).name)].join(' ');
    case TYPE.CNAME:
    case TYPE.NS:
    case TYPE.PTR:
      return lower(rec.data as string);
    case TYPE.SOA: {
      const soa = rec.data as { mname: string; rname: string };
      return JSON.stringify({ ...soa, mname: lower(soa.mname), rname: lower(soa.rname) });
    }
    default:
      return JSON.stringify(rec.data);
  }
}

function rrText(r: Rr): string {
  const data = r.data.length > 60 ? `${r.data.slice(0, 57)}...` : r.data;
  return `${r.name} ${typeLabel(r.type)} ${data}`;
}

const TYPE_LABELS = new Map<number, string>([...Object.entries(TYPE).map(([k, v]) => [v, k] as const), [257, 'CAA'], [46, 'RRSIG'], [47, 'NSEC'], [48, 'DNSKEY'], [43, 'DS']]);
function typeLabel(t: number): string {
  return TYPE_LABELS.get(t) ?? `TYPE${t}`;
}

// ---------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------

/** Every kind of name the zones have (see differentialZones()). */
const NAMES = [
  'diff.test', // apex: SOA, NS, MX, CAA, TXT
  'www.diff.test',
  'WwW.DiFf.TeSt', // the question's case must come back as sent
  'mail.diff.test',
  'alias.diff.test', // CNAME in the zone
  'chain1.diff.test', // CNAME → CNAME → CNAME → A
  'ext.diff.test', // CNAME to another zone NSD also serves
  'dangling.diff.test', // CNAME to a name no zone serves
  '_sip._tcp.diff.test', // SRV
  'svc.diff.test', // HTTPS
  'ptr.diff.test', // PTR
  'a.wild.diff.test', // wildcard
  'b.c.wild.diff.test', // wildcard, two labels deep
  'wild.diff.test', // parent of the wildcard: an empty non-terminal
  'ent.diff.test', // empty non-terminal
  'y.ent.diff.test', // empty non-terminal
  'x.y.ent.diff.test',
  'txt.diff.test',
  'longtxt.diff.test', // TXT over 512 bytes
  'many.diff.test', // 100 A records
  'bigalias.diff.test', // CNAME to the 100 A records
  'nx.diff.test', // NXDOMAIN
  'deep.nx.diff.test',
  'www.other.test',
  'fit505.big.test', // 504 bytes with NS and glue: fits 512 only without OPT
  'over.big.test', // 534 bytes with NS and glue: the answer fits 512, the whole does not
  'longsoa.test', // SOA over 512 bytes
  'www.longsoa.test',
  'nx.longsoa.test', // NXDOMAIN over 512 bytes
  'signed.test',
  'www.signed.test',
  'alias.signed.test',
  'nx.signed.test', // NXDOMAIN with NSEC proofs when DO=1
  'a.wild.signed.test', // signed wildcard expansion
  'www.bogus.test', // bogus, but the pure forwarder does not validate
  'nowhere.unserved.test', // no zone: NSD refuses it
];

const TYPES = ['A', 'AAAA', 'TXT', 'MX', 'SRV', 'CAA', 'HTTPS', 'NS', 'SOA', 'CNAME', 'PTR', 'DNSKEY', 'DS'] as const;
const TYPE_CODES: Record<(typeof TYPES)[number], number> = { ...TYPE, CAA: 257, DNSKEY: 48, DS: 43 };

interface Variant {
  id: string;
  flags: QueryFlags;
  transports: Transport[];
}

// RD=0 is not in the corpus: Unbound answers RD=0 from its cache only, and REFUSED (EDE 20, not
// authoritative) when the cache lacks the answer, so its reply depends on what was asked before;
// sluice forwards RD=0 queries with RD=1. There is no stable reference to compare with.
const VARIANTS: Variant[] = [
  { id: 'no EDNS', flags: {}, transports: ['udp', 'tcp'] },
  { id: 'EDNS 1232', flags: { edns: { udpSize: 1232 } }, transports: ['udp'] },
  { id: 'EDNS 512', flags: { edns: { udpSize: 512 } }, transports: ['udp'] },
  // Below 512 counts as 512 (RFC 6891 §6.2.3); above 1232 is more than either server sends.
  { id: 'EDNS 100', flags: { edns: { udpSize: 100 } }, transports: ['udp'] },
  { id: 'EDNS 4096', flags: { edns: { udpSize: 4096 } }, transports: ['udp'] },
  // A client cookie (RFC 7873) and an unassigned option: both servers must ignore them.
  {
    id: 'EDNS options',
    flags: {
      edns: {
        udpSize: 1232,
        options: [
          { code: 10, data: Buffer.from('0123456789abcdef', 'hex') },
          { code: 65001, data: Buffer.from('x') },
        ],
      },
    },
    transports: ['udp'],
  },
  { id: 'DO', flags: { edns: { udpSize: 1232, do: true } }, transports: ['udp', 'tcp'] },
  { id: 'DO 512', flags: { edns: { udpSize: 512, do: true } }, transports: ['udp'] },
  { id: 'CD', flags: { edns: { udpSize: 1232 }, cd: true }, transports: ['udp'] },
  { id: 'AD', flags: { ad: true }, transports: ['udp'] },
];

interface CorpusQuery {
  name: string;
  type: number;
  variant: string;
  flags: QueryFlags;
  transport: Transport;
  label: string;
}

function corpus(names: readonly string[], types: readonly (typeof TYPES)[number][]): CorpusQuery[] {
  const out: CorpusQuery[] = [];
  const add = (name: string, type: number, v: Variant): void => {
    for (const transport of v.transports) {
      const label = `${name} ${typeLabel(type)} ${v.id} ${transport}`;
      out.push({ name, type, variant: v.id, flags: v.flags, transport, label });
    }
  };
  for (const v of VARIANTS) {
    for (const name of names) for (const t of types) add(name, TYPE_CODES[t], v);
    add(names[0]!, TYPE.ANY, v);
  }
  return out;
}

/** The DNSSEC part, asked of sluice in front of the validating Unbound and of that Unbound. */
const VALIDATED_NAMES = [
  'www.signed.test',
  'signed.test',
  'alias.signed.test',
  'nx.signed.test',
  'a.wild.signed.test',
  'www.bogus.test', // bogus: SERVFAIL (EDE 6), the data with CD=1
  'bogus.test',
  'nx.bogus.test',
  'www.diff.test', // insecure: no trust anchor covers it
  'nx.diff.test',
];
const VALIDATED_TYPES = ['A', 'AAAA', 'TXT', 'NS', 'SOA', 'DNSKEY'] as const;

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

type Field = 'size' | 'rcode' | 'opcode' | 'qr' | 'aa' | 'tc' | 'rd' | 'ra' | 'ad' | 'cd' | 'question' | 'answer' | 'authority' | 'additional' | 'opt' | 'opt.do' | 'opt.version' | 'ede';

interface Difference {
  field: Field;
  sluice: string;
  unbound: string;
}

interface AcceptedDifference {
  id: string;
  reason: string;
  applies(q: CorpusQuery, s: Reply, u: Reply): boolean;
  /** Fields not compared for the queries it applies to. */
  ignore?: Field[];
  /** Records taken out of both replies before the sections are compared. */
  drop?(r: Rr, reply: Reply): boolean;
}

/** Targets of the NS records in a reply's authority section: the names its glue is for. */
function authorityNsTargets(reply: Reply): Set<string> {
  return new Set(reply.records.filter((r) => r.section === 'authority' && r.type === TYPE.NS).map((r) => r.data));
}

const positive = (u: Reply): boolean => u.msg.rcode === RCODE.NOERROR && u.msg.answers.length > 0;

/**
 * Differences accepted, each with the reason a client is not worse off. Every entry must still
 * be needed: the suite fails on one that no longer hides any difference.
 */
const ACCEPTED: AcceptedDifference[] = [
  {
    id: 'positive-answer NS and glue',
    reason:
      'NSD attaches the zone apex NS RRset (authority) and its glue (additional) to every positive answer; ' +
      'sluice relays them, Unbound does not keep them for forward zones. A stub acts on the answer section; ' +
      'NS and glue in a positive answer are optional (RFC 2181 §6.1, RFC 1034 §4.3.2) and it never follows them.',
    applies: (_q, _s, u) => positive(u),
    drop: (r, reply) =>
      (r.section === 'authority' && (r.type === TYPE.NS || (r.type === TYPE_RRSIG && r.covered === TYPE.NS))) || (r.section === 'additional' && authorityNsTargets(reply).has(r.name)),
  },
  {
    id: 'ANY (RFC 8482)',
    reason:
      'sluice answers ANY itself with one synthesised HINFO record (RFC 8482 §4.2) and never forwards it: ANY is an ' +
      'amplification tool. Unbound answers from whatever its cache holds for the name (with AD when that was ' +
      'validated; the synthesised HINFO is not DNSSEC data, so sluice never sets AD on it).',
    applies: (q) => q.type === TYPE.ANY,
    ignore: ['answer', 'authority', 'additional', 'ad'],
  },
  {
    id: 'CNAME to an unserved name',
    reason:
      'dangling.diff.test is a CNAME to a name no server here has. Unbound chases the target itself, NSD refuses it, ' +
      'and Unbound answers SERVFAIL; sluice relays its upstream answer (the CNAME, NOERROR) because chasing is the ' +
      "upstream resolver's job. With a recursive upstream (any real deployment) sluice relays that resolver's SERVFAIL.",
    applies: (q) => q.name === 'dangling.diff.test' && q.type !== TYPE.CNAME,
    ignore: ['rcode', 'answer', 'authority', 'additional', 'ede'],
  },
  {
    id: 'content of a truncated reply',
    reason:
      'With TC=1 a client discards the reply and asks again over TCP (RFC 1035 §4.2.1, RFC 7766 §5). Unbound keeps ' +
      'the complete RRsets that fit (e.g. the CNAME of bigalias, RFC 2181 §9 allows it); sluice sends the header and ' +
      'question only. Both set TC and the same rcode, which is compared.',
    applies: (_q, s, u) => s.msg.flags.tc && u.msg.flags.tc,
    ignore: ['answer', 'authority', 'additional'],
  },
  {
    id: "EDE on sluice's own SERVFAIL",
    reason:
      'When its upstream refuses a name, sluice answers SERVFAIL with EDE 22 naming the upstream and its rcode; ' +
      'Unbound 1.17 gives the same SERVFAIL without an EDE. An EDE is advisory (RFC 8914 §3): clients act on the rcode.',
    applies: (_q, s, u) =>
      s.msg.rcode === RCODE.SERVFAIL && u.msg.rcode === RCODE.SERVFAIL && u.msg.edns !== undefined && u.msg.edns.ede === undefined && s.msg.edns?.ede?.infoCode === EDE_NO_REACHABLE_AUTHORITY,
    ignore: ['ede'],
  },
];

/** For sluice relaying the validating Unbound: it relays Unbound's own answers, so only ANY differs. */
const ACCEPTED_VALIDATED: AcceptedDifference[] = ACCEPTED.filter((a) => a.id === 'ANY (RFC 8482)');

function flagText(v: boolean): string {
  return v ? '1' : '0';
}

/** The differences between two replies, with `accepted` applied. */
function differences(q: CorpusQuery, s: Reply, u: Reply, accepted: AcceptedDifference[]): Difference[] {
  const rules = accepted.filter((a) => a.applies(q, s, u));
  const ignored = new Set(rules.flatMap((a) => a.ignore ?? []));
  const out: Difference[] = [];
  const cmp = (field: Field, a: string, b: string): void => {
    if (!ignored.has(field) && a !== b) out.push({ field, sluice: a, unbound: b });
  };
  // Not a comparison: sluice's UDP reply must fit what the client can take (RFC 1035 §4.2.1, RFC 6891 §7).
  const limit = q.flags.edns ? Math.max(512, q.flags.edns.udpSize ?? 1232) : 512;
  if (q.transport === 'udp' && s.raw.length > limit) {
    out.push({ field: 'size', sluice: `${s.raw.length} bytes`, unbound: `limit ${limit}` });
  }
  cmp('rcode', String(s.msg.rcode), String(u.msg.rcode));
  cmp('opcode', String(s.msg.flags.opcode), String(u.msg.flags.opcode));
  for (const f of ['qr', 'aa', 'tc', 'rd', 'ra', 'ad', 'cd'] as const) cmp(f, flagText(s.msg.flags[f]), flagText(u.msg.flags[f]));
  // The question is compared exactly, case included (clients match it byte for byte, RFC 5452 §9.1).
  cmp('question', JSON.stringify(s.msg.questions), JSON.stringify(u.msg.questions));
  for (const section of SECTIONS) {
    if (ignored.has(section)) continue;
    const kept = (reply: Reply): string[] =>
      reply.records
        .filter((r) => r.section === section && !rules.some((a) => a.drop?.(r, reply)))
        .map(rrText)
        .sort();
    const a = kept(s);
    const b = kept(u);
    const onlyA = a.filter((x) => !b.includes(x));
    const onlyB = b.filter((x) => !a.includes(x));
    // Sets of records: order within and across RRsets and TTLs are not compared (Unbound rotates RRsets).
    if (onlyA.length > 0 || onlyB.length > 0 || a.length !== b.length) {
      const show = (xs: string[]): string => (xs.length > 3 ? `${xs.slice(0, 3).join(' | ')} | …(${xs.length})` : xs.join(' | '));
      out.push({
        field: section,
        sluice: `${a.length} rr, only: ${show(onlyA)}`,
        unbound: `${b.length} rr, only: ${show(onlyB)}`,
      });
    }
  }
  // The OPT record: present, DO, version, EDE info code. Its UDP size is each server's own
  // setting (both 1232 here) and not the client's business; EDE text is free-form.
  cmp('opt', String(s.msg.edns !== undefined), String(u.msg.edns !== undefined));
  if (s.msg.edns && u.msg.edns) {
    cmp('opt.do', flagText(s.msg.edns.do), flagText(u.msg.edns.do));
    cmp('opt.version', String(s.msg.edns.version), String(u.msg.edns.version));
    cmp('ede', String(s.msg.edns.ede?.infoCode ?? '-'), String(u.msg.edns.ede?.infoCode ?? '-'));
  }
  return out;
}

/** Run `fn` over `items`, at most `limit` at a time. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Ask `queries` of both servers and compare. Returns the differences grouped by kind (a
 * systematic one reads as one line with a count) and the accepted differences nothing needed.
 */
async function runCorpus(s: Harness, u: ReferenceServer, queries: CorpusQuery[], accepted: AcceptedDifference[]): Promise<{ report: string[]; unused: string[] }> {
  // Bounded concurrency: fast, without flooding either server's socket buffers. TCP lower:
  // sluice allows 20 connections per client address.
  const run = async (q: CorpusQuery): Promise<{ q: CorpusQuery; s: Reply; u: Reply }> => {
    const [sr, ur] = await Promise.all([ask(s, q.name, q.type, q.flags, q.transport), ask(u, q.name, q.type, q.flags, q.transport)]);
    return { q, s: sr, u: ur };
  };
  const results = [
    ...(await mapLimit(
      queries.filter((q) => q.transport === 'udp'),
      24,
      run,
    )),
    ...(await mapLimit(
      queries.filter((q) => q.transport === 'tcp'),
      6,
      run,
    )),
  ];
  const groups = new Map<string, { count: number; examples: string[] }>();
  const used = new Map<string, number>(accepted.map((a) => [a.id, 0]));
  for (const r of results) {
    const diffs = differences(r.q, r.s, r.u, accepted);
    for (const d of diffs) {
      const isSection = SECTIONS.includes(d.field as Section);
      const key = isSection ? `${d.field} differs` : `${d.field}: sluice=${d.sluice} unbound=${d.unbound}`;
      const g = groups.get(key) ?? { count: 0, examples: [] };
      g.count++;
      const example = isSection ? `${r.q.label} [sluice ${d.sluice}] [unbound ${d.unbound}]` : r.q.label;
      if (g.examples.length < 4) g.examples.push(example);
      groups.set(key, g);
    }
    // A rule is needed when leaving it out shows more differences for some query.
    for (const a of accepted) {
      if (!a.applies(r.q, r.s, r.u)) continue;
      const without = differences(
        r.q,
        r.s,
        r.u,
        accepted.filter((x) => x !== a),
      );
      if (without.length > diffs.length) used.set(a.id, used.get(a.id)! + 1);
    }
  }
  const report = [...groups.entries()].sort((x, y) => y[1].count - x[1].count).map(([key, g]) => `${key} ×${g.count}\n      e.g. ${g.examples.join('\n           ')}`);
  return { report, unused: [...used.entries()].filter(([, n]) => n === 0).map(([id]) => id) };
}

describe('differential: the same questions to sluice and to Unbound', () => {
  it('sluice → NSD vs Unbound → NSD: every name × type × flags × transport', async () => {
    const queries = corpus(NAMES, TYPES);
    const { report, unused } = await runCorpus(sluice, unbound, queries, ACCEPTED);
    expect(report, `${queries.length} queries to each server`).toEqual([]);
    expect(unused, 'accepted differences that no longer occur (remove them)').toEqual([]);
  });

  it('sluice → validating Unbound vs validating Unbound: signed, bogus and insecure names', async () => {
    const queries = corpus(VALIDATED_NAMES, VALIDATED_TYPES);
    const { report, unused } = await runCorpus(sluiceRelay, validating, queries, ACCEPTED_VALIDATED);
    expect(report, `${queries.length} queries to each server`).toEqual([]);
    expect(unused, 'accepted differences that no longer occur (remove them)').toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Specific behaviours
// ---------------------------------------------------------------------------

describe('CD is part of the cache key (sluice → validating Unbound)', () => {
  it('a CD=1 answer with bogus data is not served to CD=0 clients, fresh or stale', async () => {
    // The reference: Unbound gives the tampered data with CD=1, SERVFAIL (EDE 6) without.
    const refCd = await ask(validating, 'www.bogus.test', 'A', { edns: {}, cd: true });
    expect(refCd.msg.rcode).toBe(RCODE.NOERROR);
    expect(refCd.msg.answers.map((r) => r.data)).toEqual([BOGUS_ADDRESS]);
    const ref = await ask(validating, 'www.bogus.test', 'A', { edns: {} });
    expect(ref.msg.rcode).toBe(RCODE.SERVFAIL);
    expect(ref.msg.edns?.ede?.infoCode).toBe(EDE_DNSSEC_BOGUS);

    const cd = await ask(sluiceV, 'www.bogus.test', 'A', { edns: {}, cd: true });
    expect(cd.msg.rcode).toBe(RCODE.NOERROR);
    expect(cd.msg.flags.cd).toBe(true);
    expect(cd.msg.answers.map((r) => r.data)).toEqual([BOGUS_ADDRESS]);

    const plain = await ask(sluiceV, 'www.bogus.test', 'A', { edns: {} });
    const view = (r: Reply) => ({ rcode: r.msg.rcode, answers: r.msg.answers.map((x) => x.data) });
    expect(view(plain)).toEqual({ rcode: RCODE.SERVFAIL, answers: [] });
    // Asked again (a cache in play, if any): still SERVFAIL.
    const again = await ask(sluiceV, 'www.bogus.test', 'A', {});
    expect(view(again)).toEqual({ rcode: RCODE.SERVFAIL, answers: [] });

    // Past every TTL (Unbound gives bogus data 60 s), inside the serve-stale window (86400 s):
    // a CD=0 client still gets SERVFAIL, never the CD=1 answer as a stale one.
    now += 3_600_000;
    const later = await ask(sluiceV, 'www.bogus.test', 'A', { edns: {} });
    expect({
      rcode: later.msg.rcode,
      answers: later.msg.answers.map((r) => r.data),
      staleEde: later.msg.edns?.ede?.infoCode === EDE_STALE_ANSWER,
    }).toEqual({ rcode: RCODE.SERVFAIL, answers: [], staleEde: false });
  });

  it("relays the validator's EDE 6 (DNSSEC Bogus) with its SERVFAIL", async () => {
    // DO=1: a cache key of its own, so this answer is fresh from Unbound whatever ran before.
    const ref = await ask(validating, 'www.bogus.test', 'A', { edns: { do: true } });
    expect(ref.msg.edns?.ede?.infoCode).toBe(EDE_DNSSEC_BOGUS);
    const r = await ask(sluiceV, 'www.bogus.test', 'A', { edns: { do: true } });
    expect({ rcode: r.msg.rcode, ede: r.msg.edns?.ede?.infoCode }).toEqual({ rcode: RCODE.SERVFAIL, ede: EDE_DNSSEC_BOGUS });
  });
});

describe('AD (sluice → validating Unbound)', () => {
  it('a validated answer has AD when the client asked with AD=1 or DO=1, not otherwise (RFC 6840 §5.7-5.8)', async () => {
    // Without AD and DO first: the answer sluice caches must still carry the validator's AD,
    // which Unbound only sets when asked with AD or DO.
    const plain = await ask(sluiceV, 'www.signed.test', 'A', {});
    const adQuery = await ask(sluiceV, 'www.signed.test', 'A', { ad: true });
    const doQuery = await ask(sluiceV, 'www.signed.test', 'A', { edns: { do: true } });
    const adEdns = await ask(sluiceV, 'www.signed.test', 'A', { edns: {}, ad: true });
    // The reference, asked the same way.
    const refAd = await ask(validating, 'www.signed.test', 'A', { ad: true });
    expect(refAd.msg.flags.ad).toBe(true);
    expect({
      plain: plain.msg.flags.ad,
      ad: adQuery.msg.flags.ad,
      do: doQuery.msg.flags.ad,
      adEdns: adEdns.msg.flags.ad,
      answer: adQuery.msg.answers.map((r) => r.data),
    }).toEqual({ plain: false, ad: true, do: true, adEdns: true, answer: [SIGNED_ADDRESS] });
  });

  it('AD=1 on the first (uncached) query of a signed name, and never AD for an insecure one', async () => {
    const fresh = await ask(sluiceV, 'txt.signed.test', 'TXT', { ad: true });
    const insecure = await ask(sluiceV, 'www.diff.test', 'A', { ad: true });
    const insecureDo = await ask(sluiceV, 'txt.diff.test', 'TXT', { edns: { do: true } });
    expect({ fresh: fresh.msg.flags.ad, insecure: insecure.msg.flags.ad, insecureDo: insecureDo.msg.flags.ad }).toEqual({
      fresh: true,
      insecure: false,
      insecureDo: false,
    });
    expect(fresh.msg.answers.map((r) => r.data)).toEqual([['signed']]);
  });
});

describe('truncation of UDP answers (sluice → NSD, compared with Unbound)', () => {
  const view = (r: Reply) => ({ rcode: r.msg.rcode, tc: r.msg.flags.tc, answers: r.msg.answers.map((x) => x.data).sort() });

  it('authority and additional records are dropped before TC is set; TC when the answer section does not fit', async () => {
    // 534 bytes with NSD's NS and glue, 79 without: no EDNS.
    const s = await ask(sluice, 'over.big.test', 'A', {});
    const u = await ask(unbound, 'over.big.test', 'A', {});
    expect(view(u)).toEqual({ rcode: RCODE.NOERROR, tc: false, answers: ['192.0.2.10', '192.0.2.11', '192.0.2.12'] });
    expect(view(s)).toEqual(view(u));
    expect(s.raw.length).toBeLessThanOrEqual(512);
    // 504 bytes + an 11-byte OPT does not fit an EDNS client's 512: drop glue, not the answer.
    const s512 = await ask(sluice, 'fit505.big.test', 'A', { edns: { udpSize: 512 } });
    const u512 = await ask(unbound, 'fit505.big.test', 'A', { edns: { udpSize: 512 } });
    expect(view(u512)).toEqual({ rcode: RCODE.NOERROR, tc: false, answers: ['192.0.2.9'] });
    expect(view(s512)).toEqual(view(u512));
    expect(s512.raw.length).toBeLessThanOrEqual(512);
    // Without EDNS the whole 504 bytes fit: nothing to drop, no TC.
    const whole = await ask(sluice, 'fit505.big.test', 'A', {});
    expect(view(whole)).toEqual({ rcode: RCODE.NOERROR, tc: false, answers: ['192.0.2.9'] });
    // 100 A records cannot fit 512 bytes whatever is dropped: TC, as from Unbound.
    const many = await ask(sluice, 'many.diff.test', 'A', {});
    const manyRef = await ask(unbound, 'many.diff.test', 'A', {});
    expect({ rcode: manyRef.msg.rcode, tc: manyRef.msg.flags.tc }).toEqual({ rcode: RCODE.NOERROR, tc: true });
    expect({ rcode: many.msg.rcode, tc: many.msg.flags.tc }).toEqual({ rcode: RCODE.NOERROR, tc: true });
    expect(many.raw.length).toBeLessThanOrEqual(512);
  });

  it('a truncated NXDOMAIN keeps its rcode (TC=1, NXDOMAIN)', async () => {
    // The SOA alone is 500 bytes: the negative answer cannot fit 512 without it.
    const s = await ask(sluice, 'nothing.longsoa.test', 'A', {});
    const u = await ask(unbound, 'nothing.longsoa.test', 'A', {});
    expect({ rcode: u.msg.rcode, tc: u.msg.flags.tc }).toEqual({ rcode: RCODE.NXDOMAIN, tc: true });
    expect({ rcode: s.msg.rcode, tc: s.msg.flags.tc }).toEqual({ rcode: RCODE.NXDOMAIN, tc: true });
    expect(s.raw.length).toBeLessThanOrEqual(512);
    // Over TCP the same question gets the whole negative answer.
    const full = await ask(sluice, 'nothing.longsoa.test', 'A', {}, 'tcp');
    expect({ rcode: full.msg.rcode, tc: full.msg.flags.tc, soa: full.msg.authorities.map((r) => r.type) }).toEqual({
      rcode: RCODE.NXDOMAIN,
      tc: false,
      soa: [TYPE.SOA],
    });
  });
});

describe('AA and RA (sluice → NSD)', () => {
  it('NSD answers AA=1; sluice, like Unbound, answers AA=0 RA=1, fresh and from its cache', async () => {
    const direct = await ask(nsd, 'mail.diff.test', 'A', {});
    expect(direct.msg.flags.aa).toBe(true);
    const ref = await ask(unbound, 'mail.diff.test', 'A', {});
    const fresh = await ask(sluice, 'mail.diff.test', 'A', {});
    const cached = await ask(sluice, 'mail.diff.test', 'A', {});
    const negative = await ask(sluice, 'nothing.diff.test', 'A', {});
    const flags = (r: Reply) => ({ aa: r.msg.flags.aa, ra: r.msg.flags.ra });
    expect(flags(ref)).toEqual({ aa: false, ra: true });
    expect({ fresh: flags(fresh), cached: flags(cached), negative: flags(negative) }).toEqual({
      fresh: flags(ref),
      cached: flags(ref),
      negative: flags(ref),
    });
  });
});

// ---------------------------------------------------------------------------
// Malformed and unusual queries, built by hand
// ---------------------------------------------------------------------------

interface RawQuery {
  id?: number;
  /** Header bytes 2 and 3. Default RD only. */
  b2?: number;
  b3?: number;
  qdcount?: number;
  an?: Buffer[];
  ns?: Buffer[];
  ar?: Buffer[];
  qname?: string;
  qtype?: number;
  qclass?: number;
  /** Extra questions after the first. */
  moreQuestions?: number;
}

function rawQuery(o: RawQuery): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(o.id ?? 0x1234, 0);
  h[2] = o.b2 ?? 0x01;
  h[3] = o.b3 ?? 0;
  const questions = o.qdcount ?? 1 + (o.moreQuestions ?? 0);
  h.writeUInt16BE(questions, 4);
  h.writeUInt16BE(o.an?.length ?? 0, 6);
  h.writeUInt16BE(o.ns?.length ?? 0, 8);
  h.writeUInt16BE(o.ar?.length ?? 0, 10);
  const q = Buffer.alloc(4);
  q.writeUInt16BE(o.qtype ?? TYPE.A, 0);
  q.writeUInt16BE(o.qclass ?? CLASS_IN, 2);
  const question = Buffer.concat([encodeName(o.qname ?? 'www.diff.test'), q]);
  const qs = o.qdcount === 0 ? [] : Array.from({ length: 1 + (o.moreQuestions ?? 0) }, () => question);
  return Buffer.concat([h, ...qs, ...(o.an ?? []), ...(o.ns ?? []), ...(o.ar ?? [])]);
}

/** An A record for the question name (compression pointer to offset 12). */
const A_RECORD = Buffer.from('c00c000100010000012c0004c0000201', 'hex');

type Outcome = 'dropped' | keyof typeof RCODE;

interface RawCase {
  id: string;
  packet: Buffer;
  transport?: Transport;
  /** What Unbound 1.17 does (checked too, so a different reference version is noticed). */
  unbound: Outcome;
  /** When sluice may answer otherwise: what it does, and why that is fine. */
  accepted?: { outcome: Outcome; reason: string };
}

const RAW_CASES: RawCase[] = [
  { id: 'QR=1 (a response sent as a query)', packet: rawQuery({ b2: 0x81 }), unbound: 'dropped' },
  { id: 'TC=1 in a query', packet: rawQuery({ b2: 0x03 }), unbound: 'FORMERR' },
  { id: 'ANCOUNT=1 with a record', packet: rawQuery({ an: [A_RECORD] }), unbound: 'FORMERR' },
  { id: 'NSCOUNT=1 with a record', packet: rawQuery({ ns: [A_RECORD] }), unbound: 'FORMERR' },
  { id: 'ARCOUNT=1 with an A record (not OPT)', packet: rawQuery({ ar: [A_RECORD] }), unbound: 'FORMERR' },
  { id: 'two OPT records', packet: rawQuery({ ar: [encodeOpt({}), encodeOpt({})] }), unbound: 'FORMERR' },
  { id: 'EDNS version 1', packet: rawQuery({ ar: [encodeOpt({ version: 1 })] }), unbound: 'BADVERS' },
  { id: 'qtype OPT (41)', packet: rawQuery({ qtype: 41 }), unbound: 'FORMERR' },
  { id: 'qtype MAILB (253)', packet: rawQuery({ qtype: 253 }), unbound: 'FORMERR' },
  { id: 'qtype MAILA (254)', packet: rawQuery({ qtype: 254 }), unbound: 'FORMERR' },
  { id: 'qtype AXFR (252) over UDP', packet: rawQuery({ qtype: 252 }), unbound: 'REFUSED' },
  { id: 'qtype IXFR (251) over UDP', packet: rawQuery({ qtype: 251 }), unbound: 'REFUSED' },
  { id: 'qtype AXFR (252) over TCP', packet: rawQuery({ qtype: 252 }), transport: 'tcp', unbound: 'REFUSED' },
  { id: 'qtype IXFR (251) over TCP', packet: rawQuery({ qtype: 251 }), transport: 'tcp', unbound: 'REFUSED' },
  { id: 'qtype 128 (meta range start)', packet: rawQuery({ qtype: 128 }), unbound: 'FORMERR' },
  { id: 'qtype 200 (meta range)', packet: rawQuery({ qtype: 200 }), unbound: 'FORMERR' },
  { id: 'qtype 248 (meta range end)', packet: rawQuery({ qtype: 248 }), unbound: 'FORMERR' },
  { id: 'qtype TKEY (249)', packet: rawQuery({ qtype: 249 }), unbound: 'FORMERR' },
  { id: 'qtype TSIG (250)', packet: rawQuery({ qtype: 250 }), unbound: 'FORMERR' },
  { id: 'qtype 127 (data type, unknown)', packet: rawQuery({ qtype: 127 }), unbound: 'NOERROR' },
  { id: 'qtype 256 (URI, data type)', packet: rawQuery({ qtype: 256 }), unbound: 'NOERROR' },
  { id: 'opcode IQUERY (1)', packet: rawQuery({ b2: 0x09 }), unbound: 'NOTIMP' },
  { id: 'opcode STATUS (2)', packet: rawQuery({ b2: 0x11 }), unbound: 'NOTIMP' },
  { id: 'opcode 3 (unassigned)', packet: rawQuery({ b2: 0x19 }), unbound: 'NOTIMP' },
  {
    id: 'opcode NOTIFY (4)',
    packet: rawQuery({ b2: 0x21 }),
    unbound: 'REFUSED',
    accepted: {
      outcome: 'NOTIMP',
      reason: 'Unbound accepts NOTIFY for its auth-zones and refuses others; sluice has no zones and implements no ' + 'NOTIFY: NOTIMP says exactly that.',
    },
  },
  { id: 'opcode UPDATE (5)', packet: rawQuery({ b2: 0x29 }), unbound: 'NOTIMP' },
  { id: 'QDCOUNT=0', packet: rawQuery({ qdcount: 0 }), unbound: 'FORMERR' },
  { id: 'QDCOUNT=2', packet: rawQuery({ moreQuestions: 1 }), unbound: 'FORMERR' },
  { id: 'shorter than a header', packet: rawQuery({}).subarray(0, 6), unbound: 'dropped' },
  { id: 'question cut off', packet: rawQuery({}).subarray(0, 20), unbound: 'FORMERR' },
  { id: 'class CHAOS', packet: rawQuery({ qclass: 3 }), unbound: 'REFUSED' },
  {
    id: 'class ANY (255)',
    packet: rawQuery({ qclass: 255 }),
    unbound: 'NOERROR',
    accepted: {
      outcome: 'REFUSED',
      reason: "sluice's networks, lists and cache are class IN only and it refuses every other class; Unbound answers " + 'QCLASS * from its IN data.',
    },
  },
  { id: 'Z bit set', packet: rawQuery({ b3: 0x40 }), unbound: 'NOERROR' },
  { id: 'AA set in a query', packet: rawQuery({ b2: 0x05 }), unbound: 'NOERROR' },
  { id: 'RA set in a query', packet: rawQuery({ b3: 0x80 }), unbound: 'NOERROR' },
  { id: 'rcode 5 set in a query', packet: rawQuery({ b3: 0x05 }), unbound: 'NOERROR' },
];

interface RawOutcome {
  outcome: Outcome;
  raw?: Buffer;
  reply?: DecodedResponse;
}

async function outcomeOf(server: ReferenceServer | Harness, c: RawCase): Promise<RawOutcome> {
  const transport = c.transport ?? 'udp';
  const to = endpoint(server, transport);
  try {
    // A drop is only seen as a timeout: 700 ms is ample on loopback, where answers take < 5 ms.
    const raw = transport === 'tcp' ? (await queryTcp(to, [c.packet], { timeoutMs: 700 }))[0]! : await queryUdp(to, c.packet, { timeoutMs: 700 });
    let reply: DecodedResponse | undefined;
    try {
      reply = decodeResponse(raw);
    } catch {
      // An echo of a malformed query is itself malformed (Unbound echoes a cut-off question as
      // it came): the header's rcode is all there is to compare.
    }
    if (raw.length < 12) throw new Error(`reply of ${raw.length} bytes`);
    const rcode = reply?.rcode ?? raw[3]! & 0xf;
    const name = (Object.entries(RCODE).find(([, v]) => v === rcode)?.[0] ?? `RCODE${rcode}`) as Outcome;
    return reply ? { outcome: name, raw, reply } : { outcome: name, raw };
  } catch (e) {
    if (e instanceof QueryTimeoutError) return { outcome: 'dropped' };
    throw e;
  }
}

describe('malformed and unusual queries: sluice does what Unbound 1.17 does', () => {
  // Compared: dropped or answered, the rcode, QR, the ID and (when the query has exactly one
  // question and both replies echo one) the question. Not compared: RA and the other sections of
  // error replies. Unbound echoes the query with QR and the rcode set (RA as the query had it,
  // records included), which no client relies on.
  it('every case in RAW_CASES', async () => {
    const results = await mapLimit(RAW_CASES, 8, async (c) => {
      const [u, s] = await Promise.all([outcomeOf(unbound, c), outcomeOf(sluice, c)]);
      return { c, u, s };
    });
    // The reference first: a different Unbound version would make the expectations wrong.
    const reference = results.filter(({ c, u }) => u.outcome !== c.unbound).map(({ c, u }) => `${c.id}: Unbound ${u.outcome}, table says ${c.unbound}`);
    expect(reference, 'Unbound 1.17 (the reference) does what the table says').toEqual([]);
    const mismatches: string[] = [];
    for (const { c, u, s } of results) {
      const expected = c.accepted?.outcome ?? c.unbound;
      if (s.outcome !== expected) mismatches.push(`${c.id}: sluice ${s.outcome}, expected ${expected}`);
      if (s.raw && !((s.raw[2]! & 0x80) !== 0 && s.raw.readUInt16BE(0) === 0x1234)) {
        mismatches.push(`${c.id}: reply without QR or with another ID`);
      }
      if (s.reply && u.reply && u.reply.questions.length === 1 && s.reply.questions.length > 0) {
        const [a, b] = [JSON.stringify(s.reply.questions), JSON.stringify(u.reply.questions)];
        if (a !== b) mismatches.push(`${c.id}: question ${a}, Unbound echoes ${b}`);
      }
    }
    expect(mismatches).toEqual([]);
  });
});
