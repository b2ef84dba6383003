import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { parseUpstreamAddress } from '../../src/config/schema.js';

const valid = `
listeners:
  - address: 127.0.0.1
    port: 5353
networks:
  internal:
    cidrs: [10.0.0.0/8]
    profile: staff
profiles:
  staff:
    block: [tiktok]
lists:
  tiktok: { file: tiktok.txt }
`;

function problems(text: string): string[] {
  try {
    parseConfig(text, 'sluice.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('config', () => {
  it('accepts a valid config and fills defaults', () => {
    const { config } = parseConfig(valid, 'sluice.yaml');
    expect(config.listeners[0]!.protocols).toEqual(['udp', 'tcp']);
    expect(config.profiles.staff!.block_response.mode).toBe('nxdomain');
    expect(config.upstreams.default).toEqual(['system']);
    expect(config.cache.max_entries).toBe(100000);
  });

  it('names file, line and field path of a bad CIDR', () => {
    const text = valid.replace('cidrs: [10.0.0.0/8]', 'cidrs:\n      - 10.0.0.0/8\n      - 10.0.0.300/8');
    const p = problems(text);
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^sluice\.yaml:9 networks\.internal\.cidrs\[1\]: "10\.0\.0\.300\/8" is not a CIDR/);
  });

  it('rejects unknown keys (typos) at the key', () => {
    const p = problems(valid.replace('    profile: staff', '    profile: staff\n    profiel: staff'));
    expect(p[0]).toMatch(/^sluice\.yaml:9 networks\.internal\.profiel: unknown key "profiel"/);
  });

  it('reports every problem at once, including references to unknown names', () => {
    const p = problems(valid.replace('block: [tiktok]', 'block: [tiktok, nosuchlist]').replace('port: 5353', 'port: 70000'));
    expect(p.some((l) => l.includes('listeners[0].port'))).toBe(true);
    expect(p.some((l) => /profiles\.staff\.block\[1\]: unknown list "nosuchlist"/.test(l))).toBe(true);
  });

  it('reports a missing required section', () => {
    expect(problems('listeners: []\n').join('\n')).toMatch(/networks: required/);
  });

  it('reports YAML syntax errors with a line', () => {
    expect(problems('listeners:\n  - address: [\n')[0]).toMatch(/^sluice\.yaml:\d+/);
  });

  it("reads upstream addresses, IPv6 in its one text form (replies are matched by the sender's address text)", () => {
    expect(parseUpstreamAddress('192.0.2.53')).toEqual({ host: '192.0.2.53', port: 53 });
    expect(parseUpstreamAddress('192.0.2.53:5353')).toEqual({ host: '192.0.2.53', port: 5353 });
    expect(parseUpstreamAddress('[2001:DB8:0:0::53]:5353')).toEqual({ host: '2001:db8::53', port: 5353 });
    expect(parseUpstreamAddress('2001:0db8::0053')).toEqual({ host: '2001:db8::53', port: 53 });
    expect(parseUpstreamAddress('[::ffff:192.0.2.53]')).toEqual({ host: '192.0.2.53', port: 53 });
    expect(parseUpstreamAddress('resolver.example:53')).toBeUndefined();
    expect(parseUpstreamAddress('192.0.2.53:70000')).toBeUndefined();
  });

  it('checks enum values', () => {
    const p = problems(valid.replace('block: [tiktok]', 'block: [tiktok]\n    block_response: { mode: sinkhole }'));
    expect(p[0]).toMatch(/profiles\.staff\.block_response\.mode: expected one of "nxdomain", "null", "refused", "address"/);
  });
});
