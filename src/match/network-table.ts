// Client address → network, longest prefix first. CIDR parsing and matching come from ipaddr.js;
// results are memoised per address string because the same few thousand clients ask again and
// again, and parsing an address costs more than the rest of a blocked-answer path.
import ipaddr from 'ipaddr.js';

export interface NetworkRange<N> {
  cidr: string;
  network: N;
}

interface ParsedRange<N> {
  cidr: string;
  range: [ipaddr.IPv4 | ipaddr.IPv6, number];
  kind: 'ipv4' | 'ipv6';
  network: N;
}

const MEMO_MAX = 65536;

export class NetworkTable<N> {
  private readonly ranges: ParsedRange<N>[];
  private readonly memo = new Map<string, N | null>();

  constructor(ranges: Iterable<NetworkRange<N>>) {
    const parsed: ParsedRange<N>[] = [];
    for (const r of ranges) {
      const range = r.cidr.includes('/') ? ipaddr.parseCIDR(r.cidr) : hostRange(r.cidr);
      parsed.push({ cidr: r.cidr, range, kind: range[0].kind(), network: r.network });
    }
    // Longest prefix first, so the first match is the most specific one.
    parsed.sort((a, b) => b.range[1] - a.range[1]);
    this.ranges = parsed;
  }

  /** The network of a client address, or undefined when it is in none (→ REFUSED). */
  lookup(address: string): N | undefined {
    const hit = this.memo.get(address);
    if (hit !== undefined) return hit ?? undefined;
    const found = this.resolve(address);
    // Bounded: a scan from many source addresses must not grow the memo without limit.
    if (this.memo.size >= MEMO_MAX) this.memo.clear();
    this.memo.set(address, found ?? null);
    return found;
  }

  /** The network and the range that matched, for explanations (not memoised). */
  explain(address: string): { network: N; cidr: string } | undefined {
    const r = this.resolveRange(address);
    return r && { network: r.network, cidr: r.cidr };
  }

  private resolve(address: string): N | undefined {
    return this.resolveRange(address)?.network;
  }

  private resolveRange(address: string): ParsedRange<N> | undefined {
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.parse(stripZone(address));
    } catch {
      return undefined;
    }
    // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; match them as IPv4.
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
      addr = (addr as ipaddr.IPv6).toIPv4Address();
    }
    const kind = addr.kind();
    for (const r of this.ranges) {
      if (r.kind === kind && addr.match(r.range)) return r;
    }
    return undefined;
  }
}

function hostRange(address: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  const a = ipaddr.parse(address);
  return [a, a.kind() === 'ipv4' ? 32 : 128];
}

function stripZone(address: string): string {
  const i = address.indexOf('%');
  return i < 0 ? address : address.slice(0, i);
}
