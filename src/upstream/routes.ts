// Which upstream group a name goes to: conditional zones first (the longest zone wins), else the
// default group. Compiled once per config, asked once per forwarded query.
import { resolve } from 'node:path';
import { parseEncryptedUpstream, parseUpstreamAddress, type UpstreamAddress, type UpstreamConfig } from '../config/schema.js';
import { DomainSet } from '../match/domain-set.js';

export interface UpstreamRoutes {
  default: UpstreamAddress[];
  zones: DomainSet;
  zoneServers: Map<string, UpstreamAddress[]>;
}

export function buildRoutes(defaults: UpstreamAddress[], conditional: { zone: string; servers: UpstreamAddress[] }[]): UpstreamRoutes {
  const zones = new DomainSet();
  const zoneServers = new Map<string, UpstreamAddress[]>();
  for (const c of conditional) {
    const zone = c.zone.toLowerCase().replace(/\.$/, '');
    zones.add(zone);
    zoneServers.set(zone, c.servers);
  }
  return { default: defaults, zones, zoneServers };
}

/**
 * The configured upstreams as addresses to ask: `system` becomes the resolv.conf servers; an
 * encrypted upstream becomes one address per bootstrap address (or its URL's own address), each
 * with its verification settings. `baseDir` resolves a relative `ca_file`. Pure.
 */
export function expandUpstreams(entries: readonly UpstreamConfig[], system: readonly UpstreamAddress[], trustAd: boolean | undefined, baseDir: string): UpstreamAddress[] {
  const out: UpstreamAddress[] = [];
  for (const e of entries) {
    if (e === 'system') {
      for (const a of system) out.push({ ...a, trustAd: trustAd ?? false });
      continue;
    }
    const opts: Exclude<UpstreamConfig, string> = typeof e === 'string' ? { url: e, fallback: 'none', method: 'post' } : e;
    const url = parseEncryptedUpstream(opts.url);
    if (!url) {
      out.push({ ...parseUpstreamAddress(opts.url)!, trustAd: trustAd ?? true });
      continue;
    }
    const hosts = opts.bootstrap ?? [url.host];
    const defaultPort = url.protocol === 'dot' ? 853 : 443;
    for (const h of hosts) {
      const host = parseUpstreamAddress(h)!.host;
      out.push({
        host,
        port: url.port,
        trustAd: trustAd ?? true,
        encrypted: {
          protocol: url.protocol,
          url: opts.url.replace(/#.*$/, '') + (hosts.length > 1 ? `@${host}` : ''),
          // A name in the URL is what the certificate must carry; an address is checked as an IP SAN.
          tlsName: opts.tls_name ?? url.tlsName ?? (url.hostIsName ? url.host : undefined),
          path: url.path,
          authority: (url.hostIsName ? url.host : host.includes(':') ? `[${host}]` : host) + (url.port === defaultPort ? '' : `:${url.port}`),
          pins: opts.spki_pins ?? [],
          caFile: opts.ca_file === undefined ? undefined : resolve(baseDir, opts.ca_file),
          fallbackPlain: opts.fallback === 'plain',
          method: opts.method,
        },
      });
    }
  }
  return out;
}

export function routeFor(routes: UpstreamRoutes, name: string): UpstreamAddress[] {
  if (routes.zoneServers.size === 0) return routes.default;
  const m = routes.zones.match(name);
  return (m && routes.zoneServers.get(m.rule)) || routes.default;
}
