// Answers for blocked names, from pre-encoded record tails: the client's header and question are
// copied and patched, the records after the question come from a memo keyed by what they depend on.
import { isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { BlockResponseConfig } from '../config/schema.js';
import { EDE, RCODE, TYPE } from './codes.js';
import { encodeAnswer, encodeName, encodeOpt, encodeRecord, type EdeInfo, type Query } from './wire.js';

// RFC 6761 reserves .invalid: the SOA of a synthesised block names no real server.
const SOA_RDATA_NAMES = Buffer.concat([encodeName('sluice.invalid'), encodeName('hostmaster.sluice.invalid')]);

interface Tail {
  rcode: number;
  an: number;
  ns: number;
  bytes: Buffer | undefined;
}

export class BlockedAnswers {
  // Keyed by kind and owner offset packed in one number: a string key cost an allocation per query.
  private readonly tails = new Map<number, Tail>();
  private readonly opts = new Map<string, Buffer[]>();
  private readonly v4: Buffer[];
  private readonly v6: Buffer[];

  constructor(private readonly cfg: BlockResponseConfig) {
    this.v4 = cfg.ipv4.filter((a) => isIPv4(a)).map((a) => Buffer.from(ipaddr.parse(a).toByteArray()));
    this.v6 = cfg.ipv6.map((a) => Buffer.from(ipaddr.parse(a).toByteArray()));
  }

  /**
   * The blocked answer for `query`. `ruleLabels` is the number of labels of the matching rule, so
   * the SOA's owner can point at that suffix of the question name (the blocked "zone").
   */
  answer(msg: Buffer, query: Query, ruleLabels: number, edeText: string): Buffer {
    const ownerIndex = Math.max(0, query.labelOffsets.length - ruleLabels);
    const owner = query.labelOffsets[ownerIndex] ?? 12;
    const kind = this.kindOf(query.type);
    const key = (kind === 'a' ? 0 : kind === 'aaaa' ? 1 : 2) * 65536 + owner;
    let tail = this.tails.get(key);
    if (!tail) {
      tail = this.buildTail(kind, owner);
      if (this.tails.size < 4096) this.tails.set(key, tail);
    }
    const ede = { code: EDE.BLOCKED, text: edeText };
    return encodeAnswer(msg, query, tail.rcode, { an: tail.an, ns: tail.ns }, tail.bytes, ede, query.edns ? this.opt(query.edns.do, tail.rcode, ede) : undefined);
  }

  /**
   * The OPT record with the EDE for a rule's text: the same few texts are sent again and again.
   * Keyed by text and DO bit only: an OPT carries just the upper bits of the rcode, and every
   * rcode a block answer has (NOERROR, NXDOMAIN, REFUSED) is below 16.
   */
  private opt(dnssecOk: boolean, rcode: number, ede: EdeInfo): Buffer {
    let pair = this.opts.get(ede.text);
    if (!pair) {
      if (this.opts.size >= 4096) this.opts.clear();
      pair = [];
      this.opts.set(ede.text, pair);
    }
    const i = dnssecOk ? 1 : 0;
    return (pair[i] ??= encodeOpt({ udpSize: 0, version: 0, do: dnssecOk }, rcode, ede));
  }

  private kindOf(type: number): 'a' | 'aaaa' | 'other' {
    return type === TYPE.A ? 'a' : type === TYPE.AAAA ? 'aaaa' : 'other';
  }

  private buildTail(kind: 'a' | 'aaaa' | 'other', owner: number): Tail {
    const { mode, ttl } = this.cfg;
    if (mode === 'refused') return { rcode: RCODE.REFUSED, an: 0, ns: 0, bytes: undefined };
    const soa = () => encodeRecord(owner, TYPE.SOA, ttl, Buffer.concat([SOA_RDATA_NAMES, soaNumbers(ttl)]));
    if (mode === 'nxdomain') return { rcode: RCODE.NXDOMAIN, an: 0, ns: 1, bytes: soa() };
    let addresses: Buffer[] = [];
    if (mode === 'null') {
      if (kind === 'a') addresses = [Buffer.alloc(4)];
      else if (kind === 'aaaa') addresses = [Buffer.alloc(16)];
    } else {
      addresses = kind === 'a' ? this.v4 : kind === 'aaaa' ? this.v6 : [];
    }
    if (addresses.length === 0) return { rcode: RCODE.NOERROR, an: 0, ns: 1, bytes: soa() }; // NODATA, cacheable
    const type = kind === 'a' ? TYPE.A : TYPE.AAAA;
    // Answers own the question name itself (offset 12), not the rule's suffix.
    return { rcode: RCODE.NOERROR, an: addresses.length, ns: 0, bytes: Buffer.concat(addresses.map((a) => encodeRecord(12, type, ttl, a))) };
  }
}

function soaNumbers(ttl: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32BE(1, 0); // serial
  b.writeUInt32BE(3600, 4); // refresh
  b.writeUInt32BE(600, 8); // retry
  b.writeUInt32BE(86400, 12); // expire
  b.writeUInt32BE(ttl, 16); // minimum: how long the negative answer may be cached
  return b;
}
