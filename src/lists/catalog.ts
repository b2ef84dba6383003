// The list catalog (blocklists/catalog.yaml): metadata for the curated lists — app, vendor, sources,
// domains deliberately left out — and a version with a changelog, so an audit can say which version
// of a list was in force on a date. And the resolution of a config's list names to list
// definitions, from its `lists` section and its catalog.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { stateDir } from '../config/paths.js';
import type { Config } from '../config/schema.js';

const nullableText = z.string().nullable().optional();

export const catalogSchema = z.strictObject({
  version: z.string().min(1).describe('Catalog version; bumped on every change.'),
  lists: z.record(
    z.string(),
    z.strictObject({
      file: z.string().min(1),
      app: nullableText,
      apps: z.array(z.string()).optional(),
      vendor: nullableText,
      category: z.enum(['app', 'vendor-shared', 'bypass', 'other']).default('other'),
      description: z.string().default(''),
      sources: z
        .array(
          z.strictObject({
            id: z.string(),
            repository: nullableText,
            path: nullableText,
            license: nullableText,
            url: nullableText,
            note: nullableText,
            commit: nullableText.describe('The commit of the repository the entries were read at.'),
          }),
        )
        .default([]),
      excluded: z
        .array(
          z.strictObject({
            domain: z.string(),
            reason: z.string(),
            /** Further names left out for the same reason. */
            also: z.array(z.string()).default([]),
            /** The exclusion covers the names below the domain too (a shared CDN's alias names). */
            subdomains: z.boolean().default(false),
          }),
        )
        .default([]),
      /** Listed roots that also serve something outside the banned apps: the collateral of blocking them. */
      also_serves: z
        .array(
          z.strictObject({
            domain: z.string(),
            serves: z.string(),
            /** A narrower rule that blocks the app with less collateral, where one exists. */
            narrower: nullableText,
          }),
        )
        .default([]),
    }),
  ),
  changelog: z
    .array(
      z.strictObject({
        version: z.string(),
        date: z.union([z.string(), z.date()]).transform((d) => (d instanceof Date ? d.toISOString().slice(0, 10) : d)),
        changes: z.array(z.string()),
      }),
    )
    .default([]),
});

export type Catalog = z.infer<typeof catalogSchema>;
export type CatalogEntry = Catalog['lists'][string];

export function parseCatalog(text: string, file: string): Catalog {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message.split('\n')[0]}`);
  const r = catalogSchema.safeParse(doc.toJS());
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new Error(`${file} ${i.path.join('.')}: ${i.message}`);
  }
  return r.data;
}

/** A list a config can use: where its rules are read from, and what is known about it. */
export interface ListDefinition {
  name: string;
  /** The file the rules are read from: the list file, or the last good copy of a `url` list. */
  file: string;
  url?: string;
  refreshMinutes?: number;
  format: 'auto' | 'plain' | 'hosts' | 'adblock';
  origin: 'config' | 'catalog';
  meta?: CatalogEntry;
  catalogVersion?: string;
}

export interface ResolvedLists {
  lists: Map<string, ListDefinition>;
  catalog?: { file: string; catalog: Catalog };
}

/** Config list names → definitions. Config entries override catalog entries of the same name. */
export function resolveLists(config: Config, baseDir: string, readText: (f: string) => string = (f) => readFileSync(f, 'utf8')): ResolvedLists {
  const lists = new Map<string, ListDefinition>();
  let catalog: ResolvedLists['catalog'];
  if (config.catalog !== undefined) {
    const file = resolve(baseDir, config.catalog);
    const c = parseCatalog(readText(file), file);
    catalog = { file, catalog: c };
    for (const [name, entry] of Object.entries(c.lists)) {
      lists.set(name, { name, file: resolve(dirname(file), entry.file), format: 'auto', origin: 'catalog', meta: entry, catalogVersion: c.version });
    }
  }
  for (const [name, l] of Object.entries(config.lists)) {
    const def: ListDefinition =
      l.url !== undefined
        ? { name, file: remoteCopyPath(config, baseDir, name), url: l.url, refreshMinutes: l.refresh_minutes, format: l.format, origin: 'config' }
        : { name, file: resolve(baseDir, l.file!), format: 'auto', origin: 'config' };
    const fromCatalog = lists.get(name);
    if (fromCatalog?.meta) def.meta = fromCatalog.meta;
    lists.set(name, def);
  }
  return catalog ? { lists, catalog } : { lists };
}

export function remoteCopyPath(config: Config, baseDir: string, name: string): string {
  return resolve(stateDir(config, baseDir), 'lists', `${name}.txt`);
}
