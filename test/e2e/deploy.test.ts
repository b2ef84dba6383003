// What can be checked here of the deployment files without a container engine or systemd as PID 1:
// the Dockerfile's structure (parsed by dockerfile-ast, linted by dockerfile-utils), the systemd
// unit (and `systemd-analyze verify`, which loads it offline), the compose stack's wiring, and the
// example configs against the schema and the list catalog.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Copy, DockerfileParser, Env, From, Healthcheck, JSONInstruction, ModifiableInstruction, type Dockerfile, type Instruction } from 'dockerfile-ast';
import { ValidationSeverity, validate } from 'dockerfile-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/logging/logger.js';
import { loadRuleSet } from '../../src/rules/load.js';
import { NODE_FLAGS, withNodeFlags } from '../../src/server/node-flags.js';

const REPO = join(import.meta.dirname, '../..');
// A CommonJS module whose types declare a default export it does not have: required, as it is.
const dockerignore = createRequire(import.meta.url)('@balena/dockerignore') as typeof import('@balena/dockerignore').default;
const read = (rel: string) => readFileSync(join(REPO, rel), 'utf8');
const tmp = mkdtempSync(join(tmpdir(), 'sluice-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// Dockerfile, read by dockerfile-ast (the parser of the VS Code Docker extension), its build
// context filtered by @balena/dockerignore (Docker's own .dockerignore rules)

interface Stage {
  /** The base image, with the ARG defaults given before the first FROM substituted. */
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

const DOCKERFILE = read('Dockerfile');
const ast = DockerfileParser.parse(DOCKERFILE);

/** The build stages: each FROM and the instructions up to the next. */
function stagesOf(d: Dockerfile): Stage[] {
  const stages: Stage[] = [];
  for (const ins of d.getInstructions()) {
    if (ins instanceof From) {
      stages.push({ from: ins.getExpandedArguments()[0]!.getValue(), name: ins.getBuildStage() ?? undefined, instructions: [] });
    } else stages.at(-1)?.instructions.push(ins);
  }
  return stages;
}

/** An instruction's arguments as one line (continuations joined, flags left out). */
const argsOf = (i: Instruction) => i.getArgumentsContent() ?? '';
/** Its arguments as Docker splits them (flags left out). */
const wordsOf = (i: Instruction) => i.getArguments().map((a) => a.getValue());
const flagOf = (i: Instruction, name: string) =>
  i instanceof ModifiableInstruction
    ? i
        .getFlags()
        .find((f) => f.getName() === name)
        ?.getValue()
    : undefined;
/** The exec form of ENTRYPOINT, CMD, VOLUME: its JSON strings (none for the shell form). */
const jsonOf = (i: Instruction | undefined) => (i instanceof JSONInstruction ? i.getJSONStrings().map((s) => s.getJSONValue()) : undefined);
const lineOf = (i: Instruction) => i.getRange().start.line;

const stages = stagesOf(ast);
const finalStage = stages.at(-1)!;
const finalOps = (op: string) => finalStage.instructions.filter((i) => i.getKeyword() === op);
const runsOf = (s: Stage) => s.instructions.filter((i) => i.getKeyword() === 'RUN').map(argsOf);
const buildStage = stages.find((s) => runsOf(s).some((r) => /npm run build/.test(r)))!;
const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

describe('Dockerfile', () => {
  it('has no problem that the dockerfile-utils validator reports, every check at its strictest', () => {
    const strict = ValidationSeverity.ERROR;
    const problems = validate(DOCKERFILE, {
      deprecatedMaintainer: strict,
      directiveCasing: strict,
      emptyContinuationLine: strict,
      instructionCasing: strict,
      instructionCmdMultiple: strict,
      instructionEntrypointMultiple: strict,
      instructionHealthcheckMultiple: strict,
      instructionJSONInSingleQuotes: strict,
      instructionWorkdirRelative: strict,
    });
    expect(problems.map((p) => `${p.range.start.line + 1}: ${p.message}`)).toEqual([]);
    // The validator does see problems: the same file with a second CMD and a relative WORKDIR.
    expect(validate(`${DOCKERFILE}\nWORKDIR relative\nCMD ["again"]\n`, { instructionCmdMultiple: strict, instructionWorkdirRelative: strict })).toHaveLength(2);
  });

  it('is a multi-stage build on an official Node 24 LTS image (Node 20 reached end of life on 2026-04-30)', () => {
    expect(ast.getDirectives().map((d) => [d.getName(), d.getValue()])).toEqual([['syntax', 'docker/dockerfile:1']]);
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.from).toMatch(/^node:24[.\d]*-(bookworm|trixie)-slim$/);
  });

  it('runs the final stage as a non-root user, set after the last RUN', () => {
    const users = finalOps('USER');
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)!;
    const name = argsOf(user).split(':')[0]!;
    expect(name).not.toMatch(/^(root|0)$/);
    const lastRun = finalOps('RUN').at(-1);
    expect(lastRun === undefined || lineOf(lastRun) < lineOf(user)).toBe(true);
    // The user is created in the image, with a fixed uid so volume ownership is predictable.
    expect(runsOf(finalStage).join(' ')).toMatch(new RegExp(`useradd [^&]*--uid \\d+ [^&]*\\b${name}\\b`));
  });

  it('grants the node binary CAP_NET_BIND_SERVICE and no other capability', () => {
    const caps = runsOf(finalStage)
      .join(' ')
      .match(/setcap\s+(\S+)/g);
    expect(caps).toEqual(['setcap cap_net_bind_service=+ep']);
  });

  it('has a HEALTHCHECK that runs `sluice health`', () => {
    const [hc, ...more] = finalOps('HEALTHCHECK');
    expect(more).toEqual([]);
    expect(hc).toBeInstanceOf(Healthcheck);
    const check = hc as Healthcheck;
    expect(check.getSubcommand()?.getValue()).toBe('CMD');
    const command = argsOf(check).slice(argsOf(check).indexOf('['));
    expect((JSON.parse(command) as string[]).slice(0, 2)).toEqual(['sluice', 'health']);
    expect(flagOf(check, 'timeout')).toMatch(/^\d+s$/);
    expect(flagOf(check, 'interval')).toMatch(/^\d+s$/);
  });

  it('serves in the foreground with exec-form ENTRYPOINT and CMD (signals reach node; logs go to stdout)', () => {
    expect(jsonOf(finalOps('ENTRYPOINT').at(-1))).toEqual(['sluice']);
    expect(jsonOf(finalOps('CMD').at(-1))).toEqual(['serve']);
    const env = finalStage.instructions.filter((i) => i instanceof Env).flatMap((e) => (e as Env).getProperties().map((p) => [p.getName(), p.getValue()]));
    expect(env).toContainEqual(['SLUICE_CONFIG', '/etc/sluice/sluice.yaml']);
  });

  it('keeps config, lists and state on volumes', () => {
    const volumes = finalOps('VOLUME').flatMap((v) => jsonOf(v) ?? wordsOf(v));
    expect(volumes).toEqual(expect.arrayContaining(['/etc/sluice', '/var/lib/sluice']));
    const example = parseConfig(read('deploy/config/sluice.yaml'), 'deploy/config/sluice.yaml').config;
    expect(example.state_dir).toBe('/var/lib/sluice');
  });

  it('installs no dev dependencies in the final stage', () => {
    // No npm install/ci in the final stage at all: node_modules come from a stage that omits dev.
    expect(runsOf(finalStage).filter((r) => /\bnpm\s+(ci|install|i)\b/.test(r))).toEqual([]);
    const copies = finalOps('COPY').filter((c) => flagOf(c, 'from') !== undefined);
    const modules = copies.filter((c) => wordsOf(c).some((w) => /node_modules/.test(w)));
    expect(modules).toHaveLength(1);
    const deps = stages.find((s) => s.name === flagOf(modules[0]!, 'from'))!;
    const installs = runsOf(deps).filter((r) => /\bnpm\s+(ci|install)\b/.test(r));
    expect(installs.length).toBeGreaterThan(0);
    for (const i of installs) expect(i).toMatch(/--omit=dev/);
    // From the build stage only the compiled output, never its node_modules (which has the dev tree).
    const fromBuild = copies.filter((c) => flagOf(c, 'from') === buildStage.name);
    expect(fromBuild.length).toBeGreaterThan(0);
    for (const c of fromBuild) for (const src of wordsOf(c).slice(0, -1)) expect(src).toMatch(/\/(dist|native\/build)\/?$/);
    // And no dev dependency is named anywhere in the final stage.
    const finalText = finalStage.instructions.map((i) => i.toString()).join('\n');
    for (const dev of Object.keys(pkg.devDependencies)) expect(finalText).not.toContain(dev);
  });

  it('copies what the runtime needs: compiled code, dependencies, the CLI, dashboard files and the catalog', () => {
    const targets = finalOps('COPY').map((c) => wordsOf(c).at(-1)!);
    expect(targets).toEqual(expect.arrayContaining(['node_modules/', 'dist/', './', 'bin/', 'src/admin/dashboard/', 'blocklists/', '/etc/sluice/']));
  });

  it('builds the batched UDP socket in the build stage and ships it (a build without it fails)', () => {
    const runs = runsOf(buildStage).join('\n');
    expect(runs).toMatch(/apt-get install [^&]*\bgcc\b/);
    expect(runs).toMatch(/npm run build && test -f native\/build\/udp-batch\.node/);
    const shipped = finalOps('COPY')
      .filter((c) => flagOf(c, 'from') === buildStage.name)
      .map(wordsOf);
    expect(shipped).toContainEqual(['/build/native/build/', 'native/build/']);
  });

  it('copies only files that exist in the build context and are not excluded by .dockerignore', () => {
    const ignores = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignores).toEqual(expect.arrayContaining(['.git', 'node_modules', 'dist', 'test']));
    const context = dockerignore().add(ignores);
    const sources = stages
      .flatMap((s) => s.instructions)
      .filter((i) => i instanceof Copy && flagOf(i, 'from') === undefined)
      .flatMap((i) => wordsOf(i).slice(0, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const src of sources) {
      const rel = src.replace(/\/+$/, '');
      expect(existsSync(join(REPO, rel)), `${src} exists`).toBe(true);
      expect(context.ignores(rel), `${src} is not in .dockerignore`).toBe(false);
    }
    // The filter is Docker's: it excludes what the file names (and what lies below it).
    expect(['test', 'test/unit/x.test.ts', 'native/build', 'deploy/compose/.env', 'src/.env'].filter((p) => !context.ignores(p))).toEqual([]);
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

  it('is Type=notify with a watchdog: started means answering, a hung process is restarted', () => {
    expect(one('Type')).toBe('notify');
    // systemd-notify(1), the fallback without the native addon, is a child process.
    expect(one('NotifyAccess')).toBe('all');
    expect(one('WatchdogSec')).toMatch(/^\d+s$/);
  });

  it('reloads with SIGHUP on `systemctl reload`, stops with SIGTERM, validates the config first', () => {
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(one('ExecStartPre')).toMatch(/sluice\.js config validate$/);
    expect(one('Environment') ?? '').not.toMatch(/TOKEN|PASSWORD|KEY=/);
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  // systemd-analyze verify works without systemd as PID 1: it loads the unit offline with systemd's
  // own parser, which rejects any key or value it does not know. .ci/run installs it (package systemd).
  it('passes `systemd-analyze verify` without a warning', () => {
    const version = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    expect(version.status, 'systemd-analyze is needed: apt-get install systemd').toBe(0);
    // ExecStart must name an existing executable: point it at the node running this test.
    const copy = join(tmp, 'sluice.service');
    writeFileSync(copy, read(UNIT_FILE).replaceAll('/usr/bin/node', process.execPath));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', copy], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
    expect(r.status).toBe(0);
    // And it does complain (on its output; it exits 0): the same unit with a value systemd cannot
    // parse and a key it does not know.
    const broken = join(tmp, 'sluice-broken.service');
    writeFileSync(broken, read(UNIT_FILE).replaceAll('/usr/bin/node', process.execPath).replace('ProtectSystem=strict', 'ProtectSystem=sometimes\nProtectKernelLogz=yes'));
    const bad = spawnSync('systemd-analyze', ['verify', '--man=no', broken], { encoding: 'utf8' });
    expect(`${bad.stdout}${bad.stderr}`).toMatch(/:\d+: .*\bsometimes\b/);
    expect(`${bad.stdout}${bad.stderr}`).toMatch(/:\d+: .*\bProtectKernelLogz\b/);
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
