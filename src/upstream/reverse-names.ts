// Client names by reverse DNS (`client_names.reverse`), as Pi-hole names clients by PTR: only
// through a conditional upstream whose zone covers the address's reverse name (the internal DNS
// that serves `10.in-addr.arpa`), never through the default upstreams (which would tell a public
// resolver the inside addresses), and never on the query path: the readers of the log ask here,
// a lookup runs in the background and its answer is kept (an hour; five minutes for no name).
// Written by hand, plainly (one UDP query per address, no retries): a best-effort label.
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Config, UpstreamAddress } from '../config/schema.js';
import { TYPE } from '../dns/codes.js';
import { encodeQueryMessage, messageText } from '../dns/message-text.js';
import { DomainSet } from '../match/domain-set.js';
import { expandUpstreams } from './routes.js';

const NAMED_MS = 3_600_000;
const UNNAMED_MS = 300_000;
const MAX_ENTRIES = 10_000;
const MAX_IN_FLIGHT = 16;
const TIMEOUT_MS = 1000;

/** `10.1.2.3` → `3.2.1.10.in-addr.arpa`; IPv6 by nibbles under ip6.arpa (RFC 3596 §2.5). */
export function reverseName(address: string): string | undefined {
  if (isIP(address) === 0) return undefined;
  const a = ipaddr.process(address);
  if (a.kind() === 'ipv4') return `${a.toByteArray().reverse().join('.')}.in-addr.arpa`;
  const nibbles = a
    .toByteArray()
    .flatMap((b) => [b >> 4, b & 15])
    .reverse()
    .map((n) => n.toString(16));
  return `${nibbles.join('.')}.ip6.arpa`;
}

/** The plain-DNS servers of the conditional zones that are reverse zones, by zone. */
function reverseZones(config: Config, baseDir: string): { zones: DomainSet; servers: Map<string, UpstreamAddress[]> } {
  const zones = new DomainSet();
  const servers = new Map<string, UpstreamAddress[]>();
  for (const c of config.upstreams.conditional) {
    const zone = c.zone.toLowerCase().replace(/\.$/, '');
    if (!zone.endsWith('in-addr.arpa') && !zone.endsWith('ip6.arpa')) continue;
    // `system` expands to nothing here: the machine's resolver is not an internal zone's server.
    const plain = expandUpstreams(c.servers, [], undefined, baseDir).filter((s) => s.encrypted === undefined);
    if (plain.length === 0) continue;
    zones.add(zone);
    servers.set(zone, plain);
  }
  return { zones, servers };
}

export class ReverseNames {
  private readonly known = new Map<string, { name: string | undefined; until: number }>();
  private readonly pending = new Map<string, Promise<void>>();
  private readonly zones: ReturnType<typeof reverseZones>;

  constructor(
    config: Config,
    baseDir: string,
    private readonly now: () => number = Date.now,
  ) {
    this.zones = reverseZones(config, baseDir);
  }

  /** Whether any conditional zone can name clients. */
  get enabled(): boolean {
    return this.zones.servers.size > 0;
  }

  /** The name found for `address`, if any; starts a lookup in the background when none is fresh. */
  name(address: string): string | undefined {
    const hit = this.known.get(address);
    if (!hit || hit.until <= this.now()) void this.lookup(address);
    return hit?.name;
  }

  /** Look these up now (the CLI, which has no later request to show them in), waiting at most `ms`. */
  async resolve(addresses: Iterable<string>, ms = 1500): Promise<void> {
    const waits = [...new Set(addresses)].map((a) => this.lookup(a));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(waits), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
  }

  private lookup(address: string): Promise<void> {
    const hit = this.known.get(address);
    if (hit && hit.until > this.now()) return Promise.resolve();
    const running = this.pending.get(address);
    if (running) return running;
    const name = reverseName(address);
    const match = name === undefined ? undefined : this.zones.zones.match(name);
    const server = match && this.zones.servers.get(match.rule)?.[0];
    if (!name || !server || this.pending.size >= MAX_IN_FLIGHT) return Promise.resolve();
    const p = askPtr(server, name)
      .then((found) => this.keep(address, found))
      .catch(() => this.keep(address, undefined))
      .finally(() => this.pending.delete(address));
    this.pending.set(address, p);
    return p;
  }

  private keep(address: string, name: string | undefined): void {
    if (this.known.size >= MAX_ENTRIES && !this.known.has(address)) this.known.delete(this.known.keys().next().value!);
    this.known.set(address, { name, until: this.now() + (name ? NAMED_MS : UNNAMED_MS) });
  }
}

/** One PTR query over UDP; the first PTR of the answer without its trailing dot, or undefined. */
function askPtr(server: UpstreamAddress, name: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    const id = Math.floor(Math.random() * 65536);
    const timer = setTimeout(() => done(() => reject(new Error('timeout'))), TIMEOUT_MS);
    const done = (then: () => void) => {
      clearTimeout(timer);
      socket.close();
      then();
    };
    socket.on('error', (err) => done(() => reject(err)));
    socket.on('message', (msg) => {
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return; // not ours: keep waiting
      const ptr = messageText(msg)?.answers.find((r) => r.type === 'PTR');
      done(() => resolve(ptr ? ptr.data.replace(/\.$/, '') : undefined));
    });
    socket.send(encodeQueryMessage(id, name, TYPE.PTR), server.port, server.host);
  });
}
