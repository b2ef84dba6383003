// Starts a real SluiceServer in-process on ephemeral loopback ports, with its config and lists in
// a temporary directory, so end-to-end tests talk DNS to it over real sockets.
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { silentLogger } from '../../src/logging/logger.js';
import type { QueryEvent } from '../../src/querylog/event.js';
import { SluiceServer } from '../../src/server/sluice-server.js';

export interface Harness {
  server: SluiceServer;
  dir: string;
  configFile: string;
  udp: { host: string; port: number };
  tcp: { host: string; port: number };
  /** The first DoT and DoH listeners' ports (0 when there is none). */
  dot: { host: string; port: number };
  doh: { host: string; port: number };
  writeConfig(text: string): void;
  writeList(name: string, text: string): void;
  /** Log records, when started with `captureLogs`. */
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

export interface HarnessOptions {
  /** Config YAML; `@UPSTREAM@` is replaced by the fake upstream's address. Listeners default to 127.0.0.1:0. */
  config: string;
  lists?: Record<string, string>;
  upstream?: string;
  clock?: () => number;
  captureLogs?: boolean;
  /** Extra files to write into the directory before start (path relative to it). */
  files?: Record<string, string>;
}

export async function startSluice(opts: HarnessOptions): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-'));
  mkdirSync(join(dir, 'lists'));
  const configFile = join(dir, 'sluice.yaml');
  const render = (t: string) => t.replaceAll('@UPSTREAM@', opts.upstream ?? '127.0.0.1:9');
  const writeConfig = (t: string) => writeFileSync(configFile, render(t));
  const writeList = (name: string, text: string) => writeFileSync(join(dir, 'lists', `${name}.txt`), text);
  for (const [name, text] of Object.entries(opts.lists ?? {})) writeList(name, text);
  for (const [rel, text] of Object.entries(opts.files ?? {})) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  writeConfig(opts.config);
  const logs: Record<string, unknown>[] = [];
  const logger = opts.captureLogs
    ? pino(
        { level: 'info' },
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
            cb();
          },
        }),
      )
    : silentLogger();
  const server = await SluiceServer.start({ configFile, logger, ...(opts.clock ? { clock: opts.clock } : {}) }).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true }); // a test that expects the start to fail leaves nothing behind
    throw err;
  });
  return {
    server,
    dir,
    configFile,
    udp: { host: '127.0.0.1', port: server.port('udp') },
    tcp: { host: '127.0.0.1', port: server.port('tcp') },
    dot: { host: '127.0.0.1', port: server.port('dot') },
    doh: { host: '127.0.0.1', port: server.port('doh') },
    writeConfig,
    writeList,
    logs,
    async stop() {
      await server.stop(500);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The reference deployment in a test: internal /16 with the comms /24 inside it, guest and school hosts; 127.9.x.x is in no network. */
export function referenceConfig(extra = ''): string {
  return `
listeners:
  - address: 127.0.0.1
    port: 0
networks:
  internal:
    cidrs: [127.0.0.0/16]
    profile: staff
  comms:
    cidrs: [127.0.4.0/24]
    profile: comms
  guest:
    cidrs: [127.0.0.2/32]
    profile: open
  school:
    cidrs: [127.0.0.3/32]
    profile: open
profiles:
  staff:
    block: [tiktok, wechat]
    allow: [newsroom.tiktok.com]
  comms:
    block: [wechat]
  open:
    block: []
lists:
  tiktok: { file: lists/tiktok.txt }
  wechat: { file: lists/wechat.txt }
workers: 1
upstreams:
  default: ["@UPSTREAM@"]
  timeout_ms: 300
  total_timeout_ms: 1000
${extra}`;
}

export const referenceLists = {
  tiktok: '# test list\ntiktok.com\ntiktokcdn.com\n*.byteoversea.com\n',
  wechat: 'wechat.com\n0.0.0.0 weixin.qq.com\n||wx.qq.com^\n',
};

/** Every event the server logged (its store, else its memory ring), after handing its buffer to the sinks. */
export async function loggedEvents(h: Harness): Promise<QueryEvent[]> {
  h.server.observability.queryLog.buffer.flush();
  const owner = h.server.observability.owner!;
  await owner.store?.flush();
  return owner.reader.events({});
}
