// Names for client addresses (Pi-hole and AdGuard Home name clients from hosts files, DHCP and
// reverse DNS): the config's static map, hosts-format files, and names found by reverse lookups.
// Shown beside the address wherever the query log is read (`sluice log`, reports, the API and the
// dashboard); never on a pseudonymised network, whose events hold a token instead of an address,
// which no name matches. Pure: texts and maps in, a lookup out.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface HostsProblem {
  line: number;
  message: string;
}

/** An address in one spelling (`::ffff:10.0.0.1` → `10.0.0.1`, IPv6 compressed), as events hold them. */
export function canonicalAddress(address: string): string {
  try {
    const a = ipaddr.process(address);
    return a.toString();
  } catch {
    return address;
  }
}

const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$/;

/** `/etc/hosts` format: `ADDRESS NAME [ALIASES…] [# comment]`; the first name of a line names the address. */
export function parseHostsText(text: string): { names: Map<string, string>; problems: HostsProblem[] } {
  const names = new Map<string, string>();
  const problems: HostsProblem[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [address, name] = line.split(/\s+/);
    if (isIP(address!) === 0) {
      problems.push({ line: i + 1, message: `"${address}" is not an IP address` });
      continue;
    }
    if (name === undefined || !HOST_NAME.test(name)) {
      problems.push({ line: i + 1, message: name === undefined ? 'an address without a name' : `"${name}" is not a host name` });
      continue;
    }
    const key = canonicalAddress(address!);
    // The first line for an address wins, as resolvers read /etc/hosts.
    if (!names.has(key)) names.set(key, name);
  }
  return { names, problems };
}

/** The names a client address is known by; the static map before the hosts files, then reverse DNS. */
export class ClientNames {
  private readonly known: Map<string, string>;

  /** `fallback` names what the sources do not (reverse DNS), when it knows. */
  constructor(
    sources: Iterable<ReadonlyMap<string, string>> = [],
    private readonly fallback?: (address: string) => string | undefined,
  ) {
    this.known = new Map();
    for (const source of sources) for (const [address, name] of source) if (!this.known.has(canonicalAddress(address))) this.known.set(canonicalAddress(address), name);
  }

  /** Whether any client can have a name: the sources name some, or a fallback (reverse DNS) may. */
  get configured(): boolean {
    return this.known.size > 0 || this.fallback !== undefined;
  }

  /** The same names, with `fallback` asked for the addresses they lack. */
  withFallback(fallback: (address: string) => string | undefined): ClientNames {
    const c = new ClientNames([], fallback);
    for (const [a, n] of this.known) c.known.set(a, n);
    return c;
  }

  /** The name of `client` (an address as events hold it), if any; never for a pseudonym token. */
  name(client: string): string | undefined {
    if (client.startsWith('p:')) return undefined;
    return this.known.get(client) ?? (client.includes(':') ? this.known.get(canonicalAddress(client)) : undefined) ?? this.fallback?.(client);
  }

  /** The addresses known by `name` (case-insensitive), for `--client NAME`. */
  addresses(name: string): string[] {
    const want = name.toLowerCase();
    return [...this.known].filter(([, n]) => n.toLowerCase() === want).map(([a]) => a);
  }

  /** Rows with `clientName` beside `client` where one is known (the rows are not changed). */
  label<T extends { client: string }>(rows: readonly T[]): (T & { clientName?: string })[] {
    if (!this.configured) return rows as T[];
    return rows.map((r) => {
      const n = this.name(r.client);
      return n === undefined ? r : { ...r, clientName: n };
    });
  }
}

export const NO_CLIENT_NAMES = new ClientNames();
