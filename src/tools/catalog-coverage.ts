// `npm run catalog:coverage`: how much of each maintained public reference the curated catalog
// blocks. It reads reference snapshots (blocklists/references/<reference>/<app>.txt, each with a
// header naming repository, path, commit and licence) and checks every name in them against the
// catalog's list files with the resolver's own parser (parseList) and matcher (DomainSet), so a
// rule blocks its name and all subdomains and a `*.d` rule only the subdomains. A name that is not
// blocked is either a deliberate exclusion (an `excluded:` entry in catalog.yaml) or a miss.
//
//   node dist/tools/catalog-coverage.js [--catalog FILE] [--markdown] [--strict] [SNAPSHOT_DIR_OR_FILE ...]
// --strict exits 1 when a name is missed (neither blocked nor a deliberate exclusion).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parse as parseDomain } from 'tldts';
import { parseCatalog, type Catalog } from '../lists/catalog.js';
import { parseList } from '../lists/formats.js';
import { DomainSet } from '../match/domain-set.js';

export interface Reference {
  file: string;
  meta: Record<string, string>;
  /** Names as recorded: `name` (the reference blocks it and below) or `full:name` (that host only). */
  names: string[];
}

export type Verdict = { kind: 'blocked'; list: string; rule: string } | { kind: 'excluded'; list: string; domain: string; reason: string } | { kind: 'missed' };

export interface Checked {
  name: string;
  verdict: Verdict;
}

export interface Coverage {
  reference: Reference;
  checked: Checked[];
  roots: { root: string; names: number; blocked: number; excluded: number }[];
}

export function readReference(file: string): Reference {
  const meta: Record<string, string> = {};
  const names: string[] = [];
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s*([a-z-]+):\s*(.*)$/.exec(line);
      if (m && meta[m[1]!] === undefined) meta[m[1]!] = m[2]!;
      continue;
    }
    names.push(line.toLowerCase());
  }
  return { file, meta, names };
}

/** The concrete name a reference entry stands for: `full:` dropped, `*` replaced by a label. */
export function concreteName(entry: string): string {
  const n = entry.startsWith('full:') ? entry.slice(5) : entry;
  return n.replace(/\*/g, 'x0');
}

export interface CatalogIndex {
  catalog: Catalog;
  sets: Map<string, DomainSet>;
  /** Exclusions by domain; `subdomains` ones also cover the names below. */
  exclusions: Map<string, { list: string; reason: string; subdomains: boolean }>;
}

export function indexCatalog(catalogFile: string): CatalogIndex {
  const catalog = parseCatalog(readFileSync(catalogFile, 'utf8'), catalogFile);
  const sets = new Map<string, DomainSet>();
  const exclusions: CatalogIndex['exclusions'] = new Map();
  for (const [id, entry] of Object.entries(catalog.lists)) {
    const parsed = parseList(readFileSync(resolve(dirname(catalogFile), entry.file), 'utf8'));
    sets.set(id, DomainSet.from(parsed.entries));
    for (const x of entry.excluded) {
      for (const d of [x.domain, ...x.also]) {
        // A domain excluded in several lists: the entry that also covers its subdomains wins.
        if (exclusions.get(d)?.subdomains !== true) exclusions.set(d, { list: id, reason: x.reason, subdomains: x.subdomains });
      }
    }
  }
  return { catalog, sets, exclusions };
}

export function checkName(index: CatalogIndex, name: string): Verdict {
  let best: { list: string; rule: string } | undefined;
  for (const [list, set] of index.sets) {
    const m = set.match(name);
    if (m && (best === undefined || m.rule.length > best.rule.length)) best = { list, rule: m.subdomainsOnly ? `*.${m.rule}` : m.rule };
  }
  if (best) return { kind: 'blocked', ...best };
  const exact = index.exclusions.get(name);
  if (exact) return { kind: 'excluded', list: exact.list, domain: name, reason: exact.reason };
  const labels = name.split('.');
  for (let i = 1; i < labels.length - 1; i++) {
    const parent = labels.slice(i).join('.');
    const x = index.exclusions.get(parent);
    if (x?.subdomains) return { kind: 'excluded', list: x.list, domain: parent, reason: x.reason };
  }
  return { kind: 'missed' };
}

export function coverage(index: CatalogIndex, reference: Reference): Coverage {
  const checked = reference.names.map((entry) => ({ name: entry, verdict: checkName(index, concreteName(entry)) }));
  const roots = new Map<string, { root: string; names: number; blocked: number; excluded: number }>();
  for (const c of checked) {
    const n = concreteName(c.name);
    const root = parseDomain(n, { allowPrivateDomains: false }).domain ?? n;
    const r = roots.get(root) ?? { root, names: 0, blocked: 0, excluded: 0 };
    r.names++;
    if (c.verdict.kind === 'blocked') r.blocked++;
    if (c.verdict.kind === 'excluded') r.excluded++;
    roots.set(root, r);
  }
  return { reference, checked, roots: [...roots.values()].sort((a, b) => a.root.localeCompare(b.root)) };
}

export function snapshotFiles(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (statSync(p).isDirectory()) {
      for (const f of readdirSync(p).sort()) out.push(...snapshotFiles([join(p, f)]));
    } else if (p.endsWith('.txt')) out.push(p);
  }
  return out;
}

function count(c: Coverage) {
  const n = (k: Verdict['kind']) => c.checked.filter((x) => x.verdict.kind === k).length;
  const rootsBlocked = c.roots.filter((r) => r.blocked === r.names).length;
  const rootsOpen = c.roots.filter((r) => r.blocked + r.excluded < r.names).length;
  return { names: c.checked.length, blocked: n('blocked'), excluded: n('excluded'), missed: n('missed'), roots: c.roots.length, rootsBlocked, rootsOpen };
}

const pct = (a: number, b: number) => (b === 0 ? '–' : `${Math.floor((1000 * a) / b) / 10} %`);

export function render(results: Coverage[], catalogVersion: string, base: string, markdown: boolean): string {
  const lines: string[] = [];
  const short = (c: string | undefined) => (c ?? '?').slice(0, 12);
  if (markdown) {
    lines.push(`Catalog version ${catalogVersion}. Names: entries of the reference; roots: their registrable domains (a root counts as blocked when every entry under it is).`, '');
    lines.push('| app | reference | path | commit | names | blocked | excluded | missed | roots blocked |', '|---|---|---|---|---|---|---|---|---|');
  }
  for (const c of results) {
    const m = c.reference.meta;
    const k = count(c);
    if (markdown) {
      lines.push(
        `| ${m.app} | ${m.repository} | ${m.path} | ${short(m.commit)} | ${k.names} | ${k.blocked} (${pct(k.blocked, k.names)}) | ${k.excluded} | ${k.missed} | ${k.rootsBlocked}/${k.roots} |`,
      );
      continue;
    }
    lines.push(`${m.app}  ${m.repository} ${m.path} @${short(m.commit)} (${m.licence})  [${relative(base, c.reference.file)}]`);
    lines.push(
      `  names ${k.names}: blocked ${k.blocked} (${pct(k.blocked, k.names)}), excluded ${k.excluded}, missed ${k.missed}; roots ${k.roots}: all blocked ${k.rootsBlocked}, with misses ${k.rootsOpen}`,
    );
    for (const x of c.checked) if (x.verdict.kind === 'missed') lines.push(`  MISSED    ${x.name}`);
    for (const x of c.checked) if (x.verdict.kind === 'excluded') lines.push(`  EXCLUDED  ${x.name}  (${x.verdict.list}: ${x.verdict.domain}: ${x.verdict.reason})`);
  }
  if (markdown) {
    const misses = results.flatMap((c) => c.checked.filter((x) => x.verdict.kind === 'missed').map((x) => `${c.reference.meta.app}: ${x.name}`));
    lines.push('', misses.length === 0 ? 'Missed (neither blocked nor a deliberate exclusion): none.' : `Missed (neither blocked nor a deliberate exclusion): ${misses.join(', ')}.`);
  }
  return lines.join('\n') + '\n';
}

export function main(argv: readonly string[]): number {
  const base = process.cwd();
  let catalogFile = resolve(base, 'blocklists/catalog.yaml');
  let markdown = false;
  let strict = false;
  const paths: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--catalog') catalogFile = resolve(base, argv[++i] ?? '');
    else if (a === '--markdown') markdown = true;
    else if (a === '--strict') strict = true;
    else paths.push(resolve(base, a));
  }
  if (paths.length === 0) paths.push(resolve(dirname(catalogFile), 'references'));
  const index = indexCatalog(catalogFile);
  const results = snapshotFiles(paths).map((f) => coverage(index, readReference(f)));
  process.stdout.write(render(results, index.catalog.version, base, markdown));
  return strict && results.some((c) => c.checked.some((x) => x.verdict.kind === 'missed')) ? 1 : 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  process.exitCode = main(process.argv.slice(2));
}
