// Config file + lists (+ /etc/resolv.conf for `system` upstreams) → RuleSet: the one place that
// reads everything a RuleSet needs from disk; compiling it (rule-set.ts) is then pure.
// Used at start, on every reload, and by the CLI (so `sluice check` sees what the server sees).
import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import ipaddr from 'ipaddr.js';
import { ConfigError, readConfigFile, type LoadedConfig } from '../config/load.js';
import { describeServing, loadLists, type LoadedLists } from '../lists/list-loader.js';
import { acceptedPath, listStateDir, readSavedState, saveGoodState } from '../lists/list-state.js';
import type { Logger } from '../logging/logger.js';
import { DomainSet } from '../match/domain-set.js';
import { RuleSet } from './rule-set.js';
import type { UpstreamAddress } from '../config/schema.js';
import { ddrCertificateListener, firstDnsName } from '../dns/ddr.js';
import { overridesFile } from '../config/paths.js';
import { parseOverridesFile, type OverrideEntry } from '../policy/overrides.js';
import { readClientNames } from '../config/client-names.js';
import type { ClientNames } from '../match/client-names.js';
import { systemResolvers } from '../upstream/system-resolvers.js';

export class LoadError extends Error {
  constructor(readonly lines: string[]) {
    super(lines.join('\n'));
    this.name = 'LoadError';
  }
}

export interface LoadedRules {
  rules: RuleSet;
  loaded: LoadedConfig;
  lists: LoadedLists;
  /** The file-loaded domain sets by list name (before runtime edits). */
  sets: Map<string, DomainSet>;
  /** The resolvers of /etc/resolv.conf, read once at this load, for `system` upstreams. */
  system: UpstreamAddress[];
  /** The first DNS name of the DoT/DoH certificate, read at this load: DDR's default resolver name. */
  certName: string | undefined;
  /** Names of client addresses (`client_names`: the static map and the hosts files). */
  clientNames: ClientNames;
  /** The runtime overrides of `state_dir/overrides/overrides.json` (a standalone server's; shared ones are edits). */
  overrides: OverrideEntry[];
  /** Hash of the effective config and list contents (runtime edits are added by the caller). */
  version: string;
}

/** The policy version: config, list contents and runtime edits, hashed. Equal versions enforce the same rules. */
export function policyVersion(loaded: LoadedRules, editsHash = ''): string {
  // Only what decides answers: not the instance name, ports or log settings, which differ by design.
  const c = loaded.loaded.config;
  const h = createHash('sha256').update(JSON.stringify({ networks: c.networks, profiles: c.profiles, policies: c.policies }));
  for (const l of loaded.lists.lists) h.update(`${l.def.name}:${l.contentHash}\n`);
  if (loaded.overrides.length > 0) h.update(JSON.stringify(loaded.overrides));
  h.update(editsHash);
  return h.digest('hex').slice(0, 12);
}

export interface LoadRuleSetOptions {
  /** What this process enforces now (a reload): a list file's change is judged against it. */
  previous?: LoadedRules;
}

/** Load a config file and its lists. Throws LoadError listing every problem. */
export async function loadRuleSet(configFile: string, logger: Logger, opts: LoadRuleSetOptions = {}): Promise<LoadedRules> {
  let loaded: LoadedConfig;
  try {
    loaded = readConfigFile(configFile);
  } catch (err) {
    if (err instanceof ConfigError) throw new LoadError(err.message.split('\n'));
    throw err;
  }
  const lists = await loadLists(loaded, opts.previous ? { previous: opts.previous.lists.lists } : {});
  if (lists.errors.length > 0) throw new LoadError(lists.errors);
  const sets = new Map<string, DomainSet>();
  for (const l of lists.lists) {
    sets.set(l.def.name, l.set);
    if (l.refused) {
      logger.error(
        { list: l.def.name, file: l.def.file, reason: l.refused.reason, serving: l.refused.serving, entries: l.set.size },
        `${l.def.file}: list ${l.def.name} not activated: ${l.refused.reason}; ${describeServing(l)}. Fix the file, or run \`sluice lists accept ${l.def.name}\` if the change is meant`,
      );
    }
    for (const p of l.problems.slice(0, 20)) logger.warn({ file: l.def.file, line: p.line, text: p.text }, `${l.def.file}:${p.line}: ${p.message} (line skipped)`);
    if (l.problems.length > 20) logger.warn({ file: l.def.file, count: l.problems.length }, `${l.def.file}: ${l.problems.length} lines skipped in all`);
  }
  for (const def of lists.pendingRemote) {
    sets.set(def.name, new DomainSet());
    logger.error({ list: def.name, url: def.url }, `list ${def.name} has no downloaded copy yet: it blocks nothing until ${def.url} is fetched`);
  }
  logger.info({ lists: lists.lists.map((l) => ({ name: l.def.name, entries: l.set.size })) }, 'lists loaded');
  // The only file the rules read besides config and lists; read here so that compiling is pure.
  const c = loaded.config.upstreams;
  const system = [...c.default, ...c.conditional.flatMap((z) => z.servers)].includes('system') ? systemResolvers() : [];
  const cert = readDdrCertificate(loaded, logger);
  const certName = firstDnsName(cert?.subjectAltName);
  const overrides = readOverrides(loaded);
  const names = readClientNames(loaded);
  if (names.errors.length > 0) throw new LoadError(names.errors);
  for (const w of names.warnings.slice(0, 20)) logger.warn(w, `${w.file}:${w.line}: ${w.message} (line skipped)`);
  const result: LoadedRules = {
    rules: new RuleSet(loaded.config, sets, system, loaded.baseDir, certName, overrides),
    loaded,
    lists,
    sets,
    system,
    certName,
    clientNames: names.names,
    overrides,
    version: '',
  };
  warnAboutDdr(result, cert, logger);
  result.version = policyVersion(result);
  return result;
}

/** The certificate DDR names (the first DoT/DoH listener's), when DDR is on; its file is read again at every load. */
function readDdrCertificate(loaded: LoadedConfig, logger: Logger): X509Certificate | undefined {
  const listener = loaded.config.ddr.enabled ? ddrCertificateListener(loaded.config) : undefined;
  if (!listener?.tls) return undefined;
  const file = resolve(loaded.baseDir, listener.tls.cert_file);
  try {
    return new X509Certificate(readFileSync(file)); // the first certificate of the chain: the server's
  } catch (err) {
    logger.warn({ file, err: (err as Error).message }, `${file}: cannot read the certificate for DDR: ${(err as Error).message}`);
    return undefined;
  }
}

/** Say why `_dns.resolver.arpa` names no endpoint, or why clients will not verify it (RFC 9462 §4.2). */
function warnAboutDdr(loaded: LoadedRules, cert: X509Certificate | undefined, logger: Logger): void {
  const ddr = loaded.rules.ddr;
  if (ddr?.problem) {
    logger.warn({ ddr: ddr.problem }, `DDR: ${ddr.problem}; _dns.resolver.arpa is answered with no records (set ddr.name)`);
    return;
  }
  if (!ddr || ddr.records.length === 0 || !cert) return;
  const ips = new Set<string>();
  for (const entry of (cert.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('IP Address:') && ipaddr.isValid(entry.slice(11))) ips.add(ipaddr.parse(entry.slice(11)).toNormalizedString());
  }
  const missing = [...new Set(ddr.records.flatMap((r) => [...(r.ipv4hint ?? []), ...(r.ipv6hint ?? [])]))].filter((a) => !ips.has(ipaddr.parse(a).toNormalizedString()));
  if (missing.length > 0) {
    logger.warn(
      { missing },
      `DDR: the certificate has no IP address entry for ${missing.join(', ')}: clients that verify the designation (RFC 9462 §4.2, Windows 11, Apple) will not upgrade through that address; add it to the certificate's subjectAltName`,
    );
  }
}

/**
 * After `loaded` went into service: remember each local list's activated state in state_dir, so
 * that the next start judges the files against it (and has a copy to serve should one be refused).
 */
export async function saveActivated(loaded: LoadedRules, logger: Logger): Promise<void> {
  const dir = listStateDir(loaded.loaded.config, loaded.loaded.baseDir);
  for (const l of loaded.lists.lists) {
    if (l.def.url !== undefined || l.refused || !l.good) continue;
    if (readSavedState(dir, l.def.name)?.sha256 === l.good.sha256) continue;
    try {
      await saveGoodState(dir, l.def.name, l.def.file, l.good.sha256, l.good.entries, new Date(l.good.since ?? Date.now()));
    } catch (err) {
      logger.warn({ list: l.def.name, err: (err as Error).message }, `cannot save the state of list ${l.def.name} in ${dir}: a restart cannot fall back on it`);
    }
  }
}

/** The files `sluice lists accept` writes: a change of one reloads, so that an accept applies at once. */
export function stateFilesToWatch(loaded: LoadedRules): string[] {
  const dir = listStateDir(loaded.loaded.config, loaded.loaded.baseDir);
  const accepted = [...loaded.lists.resolved.lists.values()].filter((d) => d.url === undefined).map((d) => acceptedPath(dir, d.name));
  return [...accepted, overridesFile(loaded.loaded.config, loaded.loaded.baseDir)];
}

/** The overrides file, if there is one; a broken one is a load error (the server keeps its rules). */
function readOverrides(loaded: LoadedConfig): OverrideEntry[] {
  const file = overridesFile(loaded.config, loaded.baseDir);
  if (!existsSync(file)) return [];
  try {
    return parseOverridesFile(readFileSync(file, 'utf8'), file);
  } catch (err) {
    throw new LoadError([(err as Error).message]);
  }
}
