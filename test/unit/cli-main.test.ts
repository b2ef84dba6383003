import { describe, expect, it, vi } from 'vitest';
import { buildProgram, commandOf } from '../../src/cli/main.js';
import { defaultConfigPath } from '../../src/cli/config-file.js';
import { starterConfig } from '../../src/cli/init.js';
import { parseConfig } from '../../src/config/load.js';

const argv = (...a: string[]) => ['node', 'sluice', ...a];

describe('the CLI loads only the command it runs', () => {
  it('finds the command past the global --config option', () => {
    expect(commandOf(argv('report', 'devices', '--since', '30d'))).toBe('report');
    expect(commandOf(argv('-c', 'x.yaml', 'log', 'query'))).toBe('log');
    expect(commandOf(argv('--config', 'report', 'lists'))).toBe('lists');
    expect(commandOf(argv('--config=x.yaml', 'status'))).toBe('status');
  });

  it('loads every command for help, `help`, an unknown word or an unknown option', () => {
    for (const a of [argv(), argv('--help'), argv('help', 'report'), argv('reprot'), argv('-V', 'report'), argv('constructor')]) expect(commandOf(a)).toBeUndefined();
  });

  it('registers that one command, with its subcommands, or all of them', async () => {
    const one = await buildProgram(argv('log', 'erase', '--client', '10.0.0.1'));
    expect(one.commands.map((c) => c.name())).toEqual(['log', 'help']);
    expect(one.commands[0]!.commands.map((c) => c.name())).toEqual(expect.arrayContaining(['query', 'erase', 'migrate']));
    // disable, enable, allow, deny and overrides come from one module, registered once
    expect((await buildProgram(argv('allow', 'x.example'))).commands.map((c) => c.name())).toEqual(['disable', 'enable', 'allow', 'deny', 'overrides', 'help']);
    const all = await buildProgram(argv('--help'));
    expect(all.commands.map((c) => c.name())).toEqual([
      'serve',
      'config',
      'init',
      'lists',
      'check',
      'policy',
      'status',
      'log',
      'report',
      'disable',
      'enable',
      'allow',
      'deny',
      'overrides',
      'health',
      'cache',
      'reload',
      'query',
      'version',
      'help',
    ]);
  });
});

describe('help and version', () => {
  async function run(...words: string[]): Promise<string> {
    let out = '';
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    try {
      await (await buildProgram(argv(...words))).parseAsync(argv(...words));
    } finally {
      spy.mockRestore();
    }
    return out;
  }

  it('`sluice help lists add` shows the help of `lists add`, not of `lists`', async () => {
    expect((await run('help', 'lists', 'add')).split('\n')[0]).toBe('Usage: sluice lists add [options] <name> <domains...>');
    expect((await run('help', 'check')).split('\n')[0]).toBe('Usage: sluice check [options] <domain>');
  });

  it('`--version` prints the package version', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    try {
      expect(await run('--version')).toMatch(/^\d+\.\d+\.\d+\n$/);
    } finally {
      exit.mockRestore();
    }
  });
});

describe('the default config', () => {
  it('is /etc/sluice/sluice.yaml when it exists (an installed package), else the checkout’s config/sluice.yaml', () => {
    expect(defaultConfigPath((f) => f === '/etc/sluice/sluice.yaml')).toBe('/etc/sluice/sluice.yaml');
    expect(defaultConfigPath(() => false)).toBe('config/sluice.yaml');
  });
});

describe('sluice init', () => {
  it('writes a starter config that the schema accepts, with absolute catalog and state paths', () => {
    const text = starterConfig({ catalog: '/usr/lib/sluice/blocklists/catalog.yaml', stateDir: '/var/lib/sluice', today: '2026-12-02' });
    expect(text).toContain('review_by: 2027-06-02');
    const { config } = parseConfig(text, '/etc/sluice/sluice.yaml');
    expect(config.state_dir).toBe('/var/lib/sluice');
    expect(config.catalog).toBe('/usr/lib/sluice/blocklists/catalog.yaml');
    expect(config.policies['app-ban']!.mode).toBe('dry-run');
    expect(text).toMatch(/^# sluice site config/);
  });
});
