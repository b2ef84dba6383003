// CLI output piped into a reader that stops early (`sluice lists show big | head -1`): the command
// exits quietly with its own status, never with an unhandled EPIPE and a stack trace. The outputs
// here are far larger than a pipe holds, so every run writes after the reader has gone.
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueryEvent } from '../../src/querylog/event.js';
import { SqliteStore } from '../../src/querylog/store/sqlite-store.js';

const REPO = join(import.meta.dirname, '../..');
const RUNS = 10;

// A private copy of the binary, as in cli-workspace.ts: other test runs rebuild dist/ in place.
const binRoot = mkdtempSync(join(tmpdir(), 'sluice-bin-'));
cpSync(join(REPO, 'dist'), join(binRoot, 'dist'), { recursive: true, filter: (src) => !src.endsWith('.map') });
cpSync(join(REPO, 'bin'), join(binRoot, 'bin'), { recursive: true });
copyFileSync(join(REPO, 'package.json'), join(binRoot, 'package.json'));
symlinkSync(join(REPO, 'node_modules'), join(binRoot, 'node_modules'), 'dir');
const BIN = join(binRoot, 'bin/sluice.js');

const T0 = Date.parse('2026-12-01T12:00:00Z');
// Each output is several times what a pipe holds (64 KiB) and the first read takes.
const NAMES = 20_000;
const DEVICES = 4000;
const NETWORKS = 4000;
const LISTS = 800;

let dir: string;
/** A list of NAMES names (`lists show`, `lists export`) and a store of DEVICES devices. */
let bigList: string;
/** NETWORKS networks: a long `check` table, one row a network. */
let manyNetworks: string;
/** LISTS lists with long paths: a long `lists` table. */
let manyLists: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-epipe-'));
  const deep = join('lists', 'a-folder-with-a-long-name-'.repeat(8));
  mkdirSync(join(dir, deep), { recursive: true });
  writeFileSync(join(dir, 'lists/big.txt'), Array.from({ length: NAMES }, (_, i) => `host${i}.tracker${i % 97}.example\n`).join(''));
  const config = (name: string, networks: string, block: string, lists: string) => {
    const file = join(dir, `${name}.yaml`);
    const head = `listeners:\n  - address: 127.0.0.1\n    port: 0\nnetworks:\n${networks}profiles:\n  staff:\n    block: [${block}]\nlists:\n${lists}`;
    writeFileSync(file, `${head}workers: 1\nstate_dir: state\nupstreams:\n  default: ["127.0.0.1:9"]\n`);
    return file;
  };
  const oneNetwork = '  n0:\n    cidrs: [127.0.0.0/8]\n    profile: staff\n';
  bigList = config('big-list', oneNetwork, 'big', '  big: { file: lists/big.txt }\n');
  const networks = Array.from({ length: NETWORKS }, (_, i) => `  n${i}:\n    cidrs: [10.${i >> 8}.${i & 255}.0/24]\n    profile: staff\n`).join('');
  manyNetworks = config('many-networks', networks, 'big', '  big: { file: lists/big.txt }\n');
  const lists = Array.from({ length: LISTS }, (_, i) => {
    writeFileSync(join(dir, deep, `list${i}.txt`), `name${i}.example\n`);
    return `  list${i}: { file: ${deep}/list${i}.txt }\n`;
  }).join('');
  manyLists = config('many-lists', oneNetwork, 'list0', lists);
  const store = new SqliteStore(join(dir, 'state/querylog.db'), { instance: 'sluice', retentionDays: 30, rollupRetentionDays: 400, spillEvents: DEVICES, now: () => T0, warn: () => undefined });
  expect(store.write(Array.from({ length: DEVICES }, (_, i) => blockedEvent(i)))).toBe(true);
  await store.close();
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(binRoot, { recursive: true, force: true });
});

function blockedEvent(i: number): QueryEvent {
  return {
    time: T0 + i,
    instance: 'sluice',
    client: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
    network: 'n0',
    profile: 'staff',
    policy: 'app-ban',
    list: 'big',
    rule: `host${i}.tracker${i % 97}.example`,
    name: `host${i}.tracker${i % 97}.example`,
    type: 'A',
    decision: 'blocked',
    wouldBlock: false,
    exception: false,
    cache: false,
    upstream: null,
    rcode: 3,
    answers: 0,
    durationMs: 0.1,
    transport: 'udp',
  };
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  first: string;
  stderr: string;
}

/**
 * Run the binary with stdout on a pipe whose reader goes away: after the first line (as `head -1`),
 * or before anything was written (`closeAt: 'start'`).
 */
function runClosed(config: string, args: string[], closeAt: 'first-line' | 'start' = 'first-line'): Promise<Run> {
  return new Promise((resolve, reject) => {
    const { SLUICE_CONFIG: _ignored, ...env } = process.env;
    const child = spawn(process.execPath, [BIN, '--config', config, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let stderr = '';
    if (closeAt === 'start') child.stdout.destroy();
    else
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) child.stdout.destroy();
      });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, first: out.split('\n')[0]!, stderr }));
  });
}

function expectQuiet(name: string, r: Run, code = 0): void {
  expect(r.stderr, name).not.toContain('EPIPE');
  expect(r.stderr, name).not.toMatch(/\n\s+at /);
  expect(r.stderr, name).toBe('');
  expect(r.signal, name).toBeNull();
  expect(r.code, `${name}: ${r.stderr}`).toBe(code);
}

const LISTS_TABLE = { config: () => manyLists, args: ['lists'], first: /^LIST {2,}ENTRIES/ };
const LIST_SHOW = { config: () => bigList, args: ['lists', 'show', 'big'], first: /^host0\.tracker0\.example$/ };
const LIST_EXPORT = { config: () => bigList, args: ['lists', 'export', 'big', '--format', 'hosts'], first: /^# sluice list big/ };
const CHECK = { config: () => manyNetworks, args: ['check', 'allowed.example'], first: /^policy version / };
const DEVICES_REPORT = { config: () => bigList, args: ['report', 'devices', '--source', 'store', '--since', '2026-12-01', '--until', '2026-12-02'], first: /^NETWORK {2,}CLIENT/ };

interface Case {
  config: () => string;
  args: string[];
  first: RegExp;
  code?: number;
}

const AFTER_FIRST_LINE: [string, Case][] = [
  ['lists', LISTS_TABLE],
  ['lists show', LIST_SHOW],
  ['lists export', LIST_EXPORT],
  ['check', CHECK],
  ['report devices', DEVICES_REPORT],
];

const BEFORE_FIRST_WRITE: [string, Case][] = [
  ...AFTER_FIRST_LINE,
  ['lists --json', { ...LISTS_TABLE, args: ['lists', '--json'] }],
  // The command's own status stays: 1, the name is blocked.
  ['check of a blocked name', { ...CHECK, config: () => bigList, args: ['check', 'host7.tracker7.example'], code: 1 }],
];

// Each run is a process start and a config load: two at a time, one test after the other.
describe('output into a pipe whose reader goes away', { timeout: 120_000 }, () => {
  it(`after the first line (as head -1), ${RUNS} times each: exits quietly`, async () => {
    const runs = AFTER_FIRST_LINE.flatMap((c) => Array.from({ length: RUNS }, () => c));
    await inPairs(runs, async ([name, c]) => {
      const r = await runClosed(c.config(), c.args);
      expect(r.first, name).toMatch(c.first);
      expectQuiet(name, r, c.code);
    });
  });

  it('before the first write: exits quietly, with the status of the command', async () => {
    await inPairs(BEFORE_FIRST_WRITE, async ([name, c]) => expectQuiet(name, await runClosed(c.config(), c.args, 'start'), c.code));
  });
});

async function inPairs<T>(items: T[], run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await run(items[next++]!);
  };
  await Promise.all([lane(), lane()]);
}
