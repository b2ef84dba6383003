// What can be checked here of the deployment files without a container engine or systemd as PID 1:
// the Dockerfile's structure, the systemd unit (with `systemd-analyze verify` when it runs), the
// compose stack's wiring, and the example configs against the schema and the list catalog.
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/logging/logger.js';
import { loadRuleSet } from '../../src/rules/load.js';
import { NODE_FLAGS, withNodeFlags } from '../../src/server/node-flags.js';

const REPO = join(import.meta.dirname, '../..');
const read = (rel: string) => readFileSync(join(REPO, rel), 'utf8');
const tmp = mkdtempSync(join(tmpdir(), 'sluice-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  op: string;
  args: string;
  line: number;
}

interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped; ARG defaults substituted in FROM. */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) return;
    if (pending !== '' && line.startsWith('#')) return;
    if (pending === '') start = i + 1;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\S+)\s*(.*)$/.exec(full)!;
    instructions.push({ op: m[1]!.toUpperCase(), args: m[2]!, line: start });
  });
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'ARG' && stages.length === 0) {
      const [k, v] = ins.args.split('=');
      args.set(k!, v ?? '');
    } else if (ins.op === 'FROM') {
      const [image, as, name] = ins.args.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? '').split(/\s+/);
      stages.push({ from: image!, ...(as?.toUpperCase() === 'AS' ? { name } : {}), instructions: [] });
    } else stages.at(-1)?.instructions.push(ins);
  }
  return { args, stages };
}

/** A .dockerignore pattern as a regex over context-relative paths (enough for the patterns used). */
function ignoreRegex(pattern: string): RegExp {
  const p = pattern.replace(/^\/+|\/+$/g, '');
  const body = p
    .split('')
    .map((c, i, all) => {
      if (c === '*' && all[i + 1] === '*') return '';
      if (c === '*' && all[i - 1] === '*') return '.*';
      if (c === '*') return '[^/]*';
      if (c === '?') return '[^/]';
      return c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${body}(/.*)?$`);
}

const dockerfile = parseDockerfile(read('Dockerfile'));
const finalStage = dockerfile.stages.at(-1)!;
const finalOps = (op: string) => finalStage.instructions.filter((i) => i.op === op);
const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

describe('Dockerfile', () => {
  it('is a multi-stage build on an official Node 20 LTS image', () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    for (const s of dockerfile.stages) expect(s.from).toMatch(/^node:20[.\d]*-(bookworm|bullseye)-slim$/);
  });

  it('runs the final stage as a non-root user, set after the last RUN', () => {
    const users = finalOps('USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!;
    expect(user.args.split(':')[0]).not.toMatch(/^(root|0)$/);
    const lastRun = finalOps('RUN').at(-1);
    expect(lastRun === undefined || lastRun.line < user.line).toBe(true);
    // The user is created in the image, with a fixed uid so volume ownership is predictable.
    expect(
      finalOps('RUN')
        .map((r) => r.args)
        .join(' '),
    ).toMatch(new RegExp(`useradd [^&]*--uid \\d+ [^&]*\\b${user.args.split(':')[0]}\\b`));
  });

  it('grants the node binary CAP_NET_BIND_SERVICE and no other capability', () => {
    const caps = finalOps('RUN')
      .map((r) => r.args)
      .join(' ')
      .match(/setcap\s+(\S+)/g);
    expect(caps).toEqual(['setcap cap_net_bind_service=+ep']);
  });

  it('has a HEALTHCHECK that runs `sluice health`', () => {
    const [hc, ...more] = finalOps('HEALTHCHECK');
    expect(more).toEqual([]);
    expect(hc?.args).toMatch(/CMD \[\s*"sluice",\s*"health"/);
    expect(hc?.args).toMatch(/--timeout=\d+s/);
    expect(hc?.args).toMatch(/--interval=\d+s/);
  });

  it('serves in the foreground with exec-form ENTRYPOINT and CMD (signals reach node; logs go to stdout)', () => {
    expect(finalOps('ENTRYPOINT').at(-1)?.args).toBe('["sluice"]');
    expect(finalOps('CMD').at(-1)?.args).toBe('["serve"]');
    expect(finalStage.instructions.some((i) => i.op === 'ENV' && /SLUICE_CONFIG=\/etc\/sluice\/sluice\.yaml/.test(i.args))).toBe(true);
  });

  it('keeps config, lists and state on volumes', () => {
    const volumes = finalOps('VOLUME')
      .map((v) => JSON.parse(v.args) as string[])
      .flat();
    expect(volumes).toEqual(expect.arrayContaining(['/etc/sluice', '/var/lib/sluice']));
    const example = parseConfig(read('deploy/config/sluice.yaml'), 'deploy/config/sluice.yaml').config;
    expect(example.state_dir).toBe('/var/lib/sluice');
  });

  it('installs no dev dependencies in the final stage', () => {
    // No npm install/ci in the final stage at all: node_modules come from a stage that omits dev.
    expect(finalOps('RUN').filter((r) => /\bnpm\s+(ci|install|i)\b/.test(r.args))).toEqual([]);
    const copies = finalOps('COPY').filter((c) => /--from=/.test(c.args));
    const modules = copies.filter((c) => /node_modules/.test(c.args));
    expect(modules).toHaveLength(1);
    const fromStage = /--from=(\S+)/.exec(modules[0]!.args)![1];
    const deps = dockerfile.stages.find((s) => s.name === fromStage)!;
    const installs = deps.instructions.filter((i) => i.op === 'RUN' && /\bnpm\s+(ci|install)\b/.test(i.args));
    expect(installs.length).toBeGreaterThan(0);
    for (const i of installs) expect(i.args).toMatch(/--omit=dev/);
    // From the build stage only the compiled output, never its node_modules (which has the dev tree).
    const build = dockerfile.stages.find((s) => s.instructions.some((i) => i.op === 'RUN' && /npm run build/.test(i.args)))!;
    for (const c of copies.filter((c) => c.args.includes(`--from=${build.name}`))) expect(c.args).toMatch(/\/(dist|native\/build)\/? /);
    // And no dev dependency is named anywhere in the final stage.
    const finalText = finalStage.instructions.map((i) => i.args).join('\n');
    for (const dev of Object.keys(pkg.devDependencies)) expect(finalText).not.toContain(dev);
  });

  it('copies what the runtime needs: compiled code, dependencies, the CLI, dashboard files and the catalog', () => {
    const targets = finalOps('COPY').map((c) => c.args.split(/\s+/).at(-1)!);
    expect(targets).toEqual(expect.arrayContaining(['node_modules/', 'dist/', './', 'bin/', 'src/admin/dashboard/', 'blocklists/', '/etc/sluice/']));
  });

  it('builds the batched UDP socket in the build stage and ships it (a build without it fails)', () => {
    const build = dockerfile.stages.find((s) => s.instructions.some((i) => i.op === 'RUN' && /npm run build/.test(i.args)))!;
    const runs = build.instructions
      .filter((i) => i.op === 'RUN')
      .map((i) => i.args)
      .join('\n');
    expect(runs).toMatch(/apt-get install [^&]*\bgcc\b/);
    expect(runs).toMatch(/npm run build && test -f native\/build\/udp-batch\.node/);
    expect(finalOps('COPY').map((c) => c.args)).toContain(`--from=${build.name} /build/native/build/ native/build/`);
  });

  it('copies only files that exist in the build context and are not excluded by .dockerignore', () => {
    const ignores = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignores).toEqual(expect.arrayContaining(['.git', 'node_modules', 'dist', 'test']));
    const patterns = ignores.filter((p) => !p.startsWith('!')).map(ignoreRegex);
    const sources = dockerfile.stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.op === 'COPY' && !/--from=/.test(i.args))
      .flatMap((i) =>
        i.args
          .split(/\s+/)
          .filter((a) => !a.startsWith('--'))
          .slice(0, -1),
      );
    expect(sources.length).toBeGreaterThan(5);
    for (const src of sources) {
      const rel = src.replace(/\/+$/, '');
      expect(existsSync(join(REPO, rel)), `${src} exists`).toBe(true);
      expect(
        patterns.some((re) => re.test(rel)),
        `${src} is not in .dockerignore`,
      ).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// systemd

/** [Section] → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      current = new Map();
      sections.set(sec[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    const k = line.slice(0, eq);
    current!.set(k, [...(current!.get(k) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

const UNIT_FILE = 'deploy/systemd/sluice.service';
const unit = parseUnit(read(UNIT_FILE));
const service = unit.get('Service')!;
const one = (k: string) => service.get(k)?.at(-1);

function systemdAnalyzeWorks(): boolean {
  return spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
}

describe('systemd unit', () => {
  it('runs sluice serve as a non-root user with only CAP_NET_BIND_SERVICE', () => {
    expect(one('ExecStart')).toMatch(/bin\/sluice\.js serve$/);
    expect(one('User')).toBe('sluice');
    expect(one('AmbientCapabilities')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('CapabilityBoundingSet')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('NoNewPrivileges')).toBe('yes');
  });

  it('is hardened: read-only system, private tmp and devices, writable only its state directory', () => {
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('StateDirectory')).toBe('sluice');
    for (const k of [
      'ProtectHome',
      'PrivateTmp',
      'PrivateDevices',
      'ProtectKernelTunables',
      'ProtectKernelModules',
      'ProtectControlGroups',
      'RestrictNamespaces',
      'RestrictSUIDSGID',
      'LockPersonality',
    ]) {
      expect(one(k), k).toBe('yes');
    }
    expect(service.get('SystemCallFilter')).toContain('@system-service');
    // V8 JITs: MemoryDenyWriteExecute=yes would kill node at start.
    expect(one('MemoryDenyWriteExecute')).not.toBe('yes');
  });

  it('reloads with SIGHUP on `systemctl reload`, stops with SIGTERM, validates the config first', () => {
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(one('ExecStartPre')).toMatch(/sluice\.js config validate$/);
    expect(one('Environment') ?? '').not.toMatch(/TOKEN|PASSWORD|KEY=/);
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  // systemd-analyze verify works without systemd as PID 1 (it loads the unit offline), so it runs
  // whenever the tool is installed; without it the structural checks above are what is tested.
  it.runIf(systemdAnalyzeWorks())('passes `systemd-analyze verify` without a warning', () => {
    // ExecStart must name an existing executable: point it at the node running this test.
    const copy = join(tmp, 'sluice.service');
    writeFileSync(copy, read(UNIT_FILE).replaceAll('/usr/bin/node', process.execPath));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Compose stack

interface ComposeService {
  build?: { context: string; dockerfile: string };
  image?: string;
  cap_drop?: string[];
  cap_add?: string[];
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number };
  environment?: Record<string, string>;
  depends_on?: string[] | Record<string, { condition: string }>;
}

const compose = parseYaml(read('deploy/compose/compose.yaml'), { merge: true }) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
const COMPOSE_DIR = join(REPO, 'deploy/compose');

describe('compose stack', () => {
  const sluices = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);

  it('has two sluice instances built from the Dockerfile, Redis, Prometheus and Grafana', () => {
    expect(sluices.map(([n]) => n)).toEqual(['sluice-a', 'sluice-b']);
    for (const [, s] of sluices) {
      expect(existsSync(join(COMPOSE_DIR, s.build!.context, s.build!.dockerfile))).toBe(true);
      expect(s.cap_drop).toEqual(['ALL']);
      expect(s.cap_add).toEqual(['NET_BIND_SERVICE']);
      expect(s.volumes).toEqual(expect.arrayContaining(['./config:/etc/sluice', expect.stringMatching(/:\/var\/lib\/sluice$/)]));
    }
    expect(Object.keys(compose.services)).toEqual(expect.arrayContaining(['redis', 'postgres', 'prometheus', 'grafana']));
  });

  it('mounts only files that exist, except the admin token the operator creates', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const v of s.volumes ?? []) {
        const src = v.split(':')[0]!;
        if (!src.startsWith('.')) continue; // a named volume
        if (src === './admin-token') continue;
        expect(existsSync(join(COMPOSE_DIR, src)), `${name}: ${src}`).toBe(true);
      }
    }
    expect(read('deploy/compose/.gitignore')).toMatch(/^admin-token$/m);
  });

  it('provisions the sluice Grafana dashboard from docs/grafana and a Prometheus data source', () => {
    const mount = compose.services.grafana!.volumes!.find((v) => v.includes('sluice-dashboard.json'))!;
    const [src, dest] = mount.split(':');
    expect(join(COMPOSE_DIR, src!)).toBe(join(REPO, 'docs/grafana/sluice-dashboard.json'));
    const dashboard = JSON.parse(read('docs/grafana/sluice-dashboard.json')) as { uid?: string };
    expect(dashboard.uid).toBeDefined();
    const provider = parseYaml(read('deploy/compose/grafana/provisioning/dashboards/sluice.yaml')) as { providers: { options: { path: string } }[] };
    expect(dest!.startsWith(`${provider.providers[0]!.options.path}/`)).toBe(true);
    const ds = parseYaml(read('deploy/compose/grafana/provisioning/datasources/prometheus.yaml')) as { datasources: { url: string; type: string }[] };
    expect(ds.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090' });
  });

  it('runs PostgreSQL for the query log: an official image, a volume, a healthcheck, roles created on first start', () => {
    const pgService = compose.services.postgres!;
    expect(pgService.image).toMatch(/^postgres:1[67](\.\d+)*(-bookworm|-alpine)?$/);
    const data = pgService.volumes!.find((v) => v.endsWith(':/var/lib/postgresql/data'))!;
    expect(Object.keys(compose.volumes)).toContain(data.split(':')[0]);
    expect(pgService.healthcheck!.test.slice(0, 2)).toEqual(['CMD', 'pg_isready']);
    // Over TCP: while the image initialises a new volume the server listens on its socket only.
    expect(pgService.healthcheck!.test).toEqual(expect.arrayContaining(['-h', '127.0.0.1']));
    expect(pgService.ports ?? []).toEqual([]); // only the stack's own network reaches it
    const init = pgService.volumes!.find((v) => v.split(':')[1] === '/docker-entrypoint-initdb.d')!;
    const script = read(join('deploy/compose', init.split(':')[0]!, '10-sluice-roles.sh'));
    // Passwords only from the environment, and the two roles the resolvers and Grafana log in as.
    for (const env of ['POSTGRES_PASSWORD', 'SLUICE_QUERYLOG_PASSWORD', 'GRAFANA_POSTGRES_PASSWORD']) {
      expect(pgService.environment![env]).toBe(`\${${env}:?set ${env} in .env}`);
      expect(read('deploy/compose/.env.example')).toMatch(new RegExp(`^${env}=`, 'm'));
    }
    expect(script).toMatch(/CREATE ROLE sluice LOGIN PASSWORD :'sluice_password'/);
    expect(script).toMatch(/CREATE DATABASE sluice OWNER sluice/);
    expect(script).toMatch(/CREATE ROLE sluice_grafana LOGIN PASSWORD :'grafana_password'/);
    expect(script).toMatch(/GRANT SELECT ON TABLES TO sluice_grafana/);
    expect(script).not.toMatch(/GRANT (ALL|INSERT|UPDATE|DELETE)[^;]*sluice_grafana/);
    expect(spawnSync('sh', ['-n', join(COMPOSE_DIR, init.split(':')[0]!, '10-sluice-roles.sh')]).status).toBe(0);
  });

  it('has both resolvers write their query log to PostgreSQL, with the password from the environment', () => {
    const cfg = parseConfig(read('deploy/compose/config/sluice.yaml'), 'compose/config/sluice.yaml').config;
    expect(cfg.query_log.store).toMatchObject({ kind: 'postgres', password_env: 'SLUICE_QUERYLOG_PASSWORD' });
    const url = new URL(cfg.query_log.store.url!);
    expect(url.password).toBe('');
    expect(`${url.hostname}:${url.port}${url.pathname}`).toBe('postgres:5432/sluice');
    expect(url.username).toBe('sluice');
    for (const [name, s] of sluices) {
      expect(s.environment!.SLUICE_QUERYLOG_PASSWORD, name).toBe('${SLUICE_QUERYLOG_PASSWORD:?set SLUICE_QUERYLOG_PASSWORD in .env}');
      expect((s.depends_on as Record<string, { condition: string }>).postgres, name).toEqual({ condition: 'service_healthy' });
    }
  });

  it('provisions every dashboard of docs/grafana, and the PostgreSQL data source the query-log dashboard uses', () => {
    const provider = parseYaml(read('deploy/compose/grafana/provisioning/dashboards/sluice.yaml')) as { providers: { options: { path: string } }[] };
    const mounts = compose.services.grafana!.volumes!.map((v) => v.split(':'));
    for (const file of readdirSync(join(REPO, 'docs/grafana')).filter((f) => f.endsWith('.json'))) {
      const m = mounts.find(([src]) => join(COMPOSE_DIR, src!) === join(REPO, 'docs/grafana', file));
      expect(m, `${file} is mounted into Grafana`).toBeDefined();
      expect(m![1]).toBe(`${provider.providers[0]!.options.path}/${file}`);
    }
    const ds = parseYaml(read('deploy/compose/grafana/provisioning/datasources/sluice-postgres.yaml')) as {
      datasources: { uid: string; type: string; url: string; user: string; jsonData: { database: string }; secureJsonData: { password: string } }[];
    };
    expect(ds.datasources[0]).toMatchObject({ uid: 'sluice-postgres', type: 'grafana-postgresql-datasource', url: 'postgres:5432', user: 'sluice_grafana', jsonData: { database: 'sluice' } });
    const passwordEnv = /^\$\{?(\w+)\}?$/.exec(ds.datasources[0]!.secureJsonData.password)![1]!;
    expect(compose.services.grafana!.environment![passwordEnv]).toBe(compose.services.postgres!.environment![passwordEnv]);
    const dashboard = JSON.parse(read('docs/grafana/sluice-query-log.json')) as { uid: string; panels: { datasource?: { uid: string } }[] };
    expect(dashboard.uid).toBe('sluice-query-log');
    expect(new Set(dashboard.panels.filter((p) => p.datasource).map((p) => p.datasource!.uid))).toEqual(new Set(['sluice-postgres']));
  });

  it('has Prometheus scrape every sluice instance on its admin port with the token', () => {
    const prom = parseYaml(read('deploy/compose/prometheus.yml')) as {
      scrape_configs: { authorization: { credentials_file: string }; static_configs: { targets: string[] }[] }[];
    };
    const job = prom.scrape_configs[0]!;
    const cfg = parseConfig(read('deploy/compose/config/sluice.yaml'), 'compose/config/sluice.yaml').config;
    expect(job.static_configs[0]!.targets).toEqual(sluices.map(([n]) => `${n}:${cfg.admin.port}`));
    expect(compose.services.prometheus!.volumes).toContain(`./admin-token:${job.authorization.credentials_file}:ro`);
    expect(cfg.admin).toMatchObject({ enabled: true, address: '0.0.0.0' });
    expect(cfg.redis?.url).toMatch(/^redis:\/\/redis:/);
  });
});

// ---------------------------------------------------------------------------------------------
// Example configs

describe('example configs', () => {
  // The image and the systemd install keep the catalog in /opt/sluice and state in /var/lib/sluice;
  // here they point at this checkout and a temporary directory, and every list must load.
  it.each(['deploy/config', 'deploy/compose/config'])('%s/sluice.yaml loads with its lists and the catalog', async (dir) => {
    const copy = join(tmp, dir.replaceAll('/', '-'));
    cpSync(join(REPO, dir), copy, { recursive: true });
    const text = read(`${dir}/sluice.yaml`)
      .replace('/opt/sluice/blocklists/catalog.yaml', join(REPO, 'blocklists/catalog.yaml'))
      .replace('state_dir: /var/lib/sluice', `state_dir: ${join(copy, 'state')}`);
    writeFileSync(join(copy, 'sluice.yaml'), text);
    const r = await loadRuleSet(join(copy, 'sluice.yaml'), silentLogger());
    expect(r.loaded.config.listeners[0]).toMatchObject({ address: '0.0.0.0', port: 53 });
    expect(Object.keys(r.loaded.config.networks)).toEqual(expect.arrayContaining(['internal', 'guest', 'school', 'comms']));
  });
});

// ---------------------------------------------------------------------------------------------
// Node flags: given where sluice is launched, equal to src/server/node-flags.ts

describe('node flags', () => {
  const flags = NODE_FLAGS.join(' ');

  it('are in the shebang of bin/sluice.js (the `sluice` command, the container entrypoint)', () => {
    expect(read('bin/sluice.js').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${flags}`);
  });

  it('are in `npm start` and in the systemd unit', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toContain(`node ${flags} bin/sluice.js serve`);
    expect(read('deploy/systemd/sluice.service')).toMatch(new RegExp(`^ExecStart=/usr/bin/node ${flags} /opt/sluice/bin/sluice.js serve$`, 'm'));
  });

  it("are added to a worker's node arguments unless given there already", () => {
    expect(withNodeFlags([])).toEqual([...NODE_FLAGS]);
    expect(withNodeFlags(['--inspect'])).toEqual(['--inspect', ...NODE_FLAGS]);
    expect(withNodeFlags(['--max-semi-space-size=32'])).toEqual(['--max-semi-space-size=32']);
  });
});

// ---------------------------------------------------------------------------------------------
// The npm package: what `npm install sluice-<version>.tgz` needs to run

describe('native/build.mjs (run by `npm install`)', () => {
  // A copy of the two files in a temporary folder, so the project's own build is left alone.
  function copyBuild(): string {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-native-'));
    mkdirSync(join(dir, 'native'));
    for (const f of ['build.mjs', 'udp-batch.c']) copyFileSync(join(REPO, 'native', f), join(dir, 'native', f));
    return dir;
  }

  it('builds the addon where there is a compiler and Node headers', () => {
    const dir = copyBuild();
    const r = spawnSync(process.execPath, [join(dir, 'native', 'build.mjs')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(dir, 'native', 'build', 'udp-batch.node'))).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });

  it('never fails the install: without a compiler it says so and exits 0', () => {
    const dir = copyBuild();
    const r = spawnSync(process.execPath, [join(dir, 'native', 'build.mjs')], { encoding: 'utf8', env: { ...process.env, CC: join(dir, 'no-such-cc') } });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/could not compile .* UDP goes through node:dgram/);
    expect(existsSync(join(dir, 'native', 'build', 'udp-batch.node'))).toBe(false);
    // A checkout where native/build cannot be a folder (read-only, or a file in its way) installs too.
    rmSync(join(dir, 'native', 'build'), { recursive: true, force: true });
    writeFileSync(join(dir, 'native', 'build'), 'not a folder');
    const blocked = spawnSync(process.execPath, [join(dir, 'native', 'build.mjs')], { encoding: 'utf8' });
    expect(blocked.status).toBe(0);
    expect(blocked.stderr).toMatch(/UDP goes through node:dgram/);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('npm package', () => {
  it('ships the compiled code, the command, the dashboard, the lists and the default config', () => {
    // --ignore-scripts: the test setup has built dist/ already (prepack would build it again)
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files = new Set((JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
    for (const f of [
      'bin/sluice.js',
      'dist/cli/main.js',
      'dist/server/sluice-server.js',
      'src/admin/dashboard/index.html',
      'blocklists/catalog.yaml',
      'blocklists/tiktok.txt',
      'config/sluice.yaml',
      'package.json',
    ]) {
      expect(files, f).toContain(f);
    }
    expect([...files].some((f) => f.startsWith('test/') || f.startsWith('src/pipeline/'))).toBe(false);
    // The batched UDP socket is built where the package is installed (its `install` script), never shipped prebuilt.
    expect(files).toContain('native/udp-batch.c');
    expect(files).toContain('native/build.mjs');
    expect([...files].some((f) => f.endsWith('.node'))).toBe(false);
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.install).toBe('node native/build.mjs');
  });
});
