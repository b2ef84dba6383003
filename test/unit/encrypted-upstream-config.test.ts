import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { parseEncryptedUpstream } from '../../src/config/schema.js';
import { expandUpstreams } from '../../src/upstream/routes.js';

const base = (upstreams: string) => `
listeners:
  - address: 127.0.0.1
    port: 5353
networks:
  internal: { cidrs: [10.0.0.0/8], profile: staff }
profiles:
  staff: {}
upstreams:
${upstreams}
`;

function problems(text: string): string {
  try {
    parseConfig(text, '/etc/sluice/sluice.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return '';
}

describe('encrypted upstream URLs', () => {
  it('parses DoT and DoH URLs with their default ports, path and #name', () => {
    expect(parseEncryptedUpstream('tls://192.0.2.1')).toEqual({ protocol: 'dot', host: '192.0.2.1', hostIsName: false, port: 853, path: '', tlsName: undefined });
    expect(parseEncryptedUpstream('tls://192.0.2.1:8853#dns.example.org')).toMatchObject({ port: 8853, tlsName: 'dns.example.org' });
    expect(parseEncryptedUpstream('tls://[2001:DB8::1]')).toMatchObject({ host: '2001:db8::1', port: 853 });
    expect(parseEncryptedUpstream('https://dns.example.org/dns-query')).toMatchObject({ protocol: 'doh', host: 'dns.example.org', hostIsName: true, port: 443, path: '/dns-query' });
    expect(parseEncryptedUpstream('https://192.0.2.1:8443')).toMatchObject({ port: 8443, path: '/dns-query' });
  });

  it('refuses what is not an encrypted upstream', () => {
    for (const s of ['192.0.2.1', 'udp://192.0.2.1', 'tls://192.0.2.1/path', 'https://u:p@192.0.2.1/dns-query', 'https://192.0.2.1/dns-query?x=1', 'tls://']) {
      expect(parseEncryptedUpstream(s), s).toBeUndefined();
    }
  });
});

describe('encrypted upstreams in the config', () => {
  it('accepts URL strings with addresses and objects with bootstrap, pins and a CA file', () => {
    const text = base(`  default:
    - tls://192.0.2.1#dns.example.org
    - url: https://dns.example.org/dns-query
      bootstrap: [192.0.2.2, 2001:db8::2]
      spki_pins: ["${'A'.repeat(43)}="]
      ca_file: ca.pem
      fallback: plain`);
    expect(problems(text)).toBe('');
    const { config } = parseConfig(text, '/etc/sluice/sluice.yaml');
    const servers = expandUpstreams(config.upstreams.default, [], undefined, '/etc/sluice');
    expect(servers).toHaveLength(3);
    expect(servers[0]).toMatchObject({ host: '192.0.2.1', port: 853, trustAd: true, encrypted: { protocol: 'dot', tlsName: 'dns.example.org', url: 'tls://192.0.2.1', fallbackPlain: false } });
    expect(servers[1]).toMatchObject({
      host: '192.0.2.2',
      port: 443,
      encrypted: { protocol: 'doh', tlsName: 'dns.example.org', path: '/dns-query', authority: 'dns.example.org', caFile: '/etc/sluice/ca.pem', fallbackPlain: true, method: 'post' },
    });
    expect(servers[2]!.host).toBe('2001:db8::2');
    // Each bootstrap address is an upstream of its own, named apart in metrics and logs.
    expect(servers[1]!.encrypted!.url).not.toBe(servers[2]!.encrypted!.url);
  });

  it('needs bootstrap addresses for an upstream named by host, so reaching it needs no DNS', () => {
    expect(problems(base('  default: [tls://dns.example.org]'))).toMatch(/needs `bootstrap` addresses/);
    expect(problems(base('  default:\n    - url: tls://dns.example.org'))).toMatch(/bootstrap/);
  });

  it('checks pins and URLs with messages naming the field', () => {
    expect(problems(base('  default:\n    - url: tls://192.0.2.1\n      spki_pins: [nope]'))).toMatch(/spki_pins/);
    expect(problems(base('  default: [ftp://192.0.2.1]'))).toMatch(/upstreams\.default/);
  });

  it('a DoT or DoH listener needs a certificate', () => {
    const text = base('  default: [192.0.2.1]').replace('    port: 5353', '    port: 5353\n    protocols: [udp, dot]');
    expect(problems(text)).toMatch(/need `tls: \{ cert_file, key_file \}`/);
    expect(problems(text.replace('protocols: [udp, dot]', 'protocols: [udp, dot]\n    tls: { cert_file: c.pem, key_file: k.pem }'))).toBe('');
  });
});
