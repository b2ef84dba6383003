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
    expect(p[0]).toMatch(/profiles\.staff\.block_response\.mode: expected one of "nxdomain", "null", "refused", "address", got the string "sinkhole"$/);
  });

  it('says what was expected and what was found for a value of the wrong type', () => {
    expect(problems(valid.replace('port: 5353', 'port: fifteen'))[0]).toBe('sluice.yaml:4 listeners[0].port: expected a number, got the string "fifteen"');
    expect(problems(`${valid}cache:\n  prefetch: [yes]\n`)[0]).toMatch(/cache\.prefetch: expected true or false, got a list$/);
    // Present with the wrong type is not "required".
    expect(problems(`${valid}upstreams:\n  timeout_ms: "1000"\n`)[0]).toMatch(/upstreams\.timeout_ms: expected a number, got the string "1000"$/);
    expect(problems(valid.replace('    profile: staff\n', ''))[0]).toMatch(/networks\.internal\.profile: required: expected a string$/);
  });

  it('suggests the nearest known key for a typo, at any depth', () => {
    expect(problems(`${valid}cache:\n  max_entrie: 5\n`)[0]).toBe('sluice.yaml:15 cache.max_entrie: unknown key "max_entrie"; did you mean "max_entries"?');
    expect(problems(valid.replace('listeners:', 'listners:'))).toContainEqual(expect.stringMatching(/listners: unknown key "listners"; did you mean "listeners"\?$/));
    expect(problems(valid.replace('    profile: staff', '    profile: staff\n    log: { levle: all }'))[0]).toMatch(/did you mean "level"\?$/);
    expect(problems(`${valid}zzzzzz: 1\n`)[0]).toMatch(/unknown key "zzzzzz"$/);
  });

  it('ends a YAML syntax error with its column, not a dangling excerpt', () => {
    const p = problems(`${valid}profiles2: {\n`)[0]!;
    expect(p).toMatch(/^sluice\.yaml:\d+: .+ \(column \d+\)$/);
    expect(p).not.toMatch(/:$/);
  });
});
