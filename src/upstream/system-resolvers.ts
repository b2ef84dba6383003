// `system` in upstreams.default means the nameservers of /etc/resolv.conf, so the default config
// works on any machine without editing.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { UpstreamAddress } from '../config/schema.js';

export function parseResolvConf(text: string): UpstreamAddress[] {
  const out: UpstreamAddress[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const host = m[1]!.split('%')[0]!; // drop an IPv6 zone id
    if (isIP(host) !== 0) out.push({ host, port: 53 });
  }
  return out;
}

export function systemResolvers(file = '/etc/resolv.conf'): UpstreamAddress[] {
  try {
    return parseResolvConf(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
}
