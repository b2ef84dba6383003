// Site lists and the release: the curated catalog (blocklists/) comes with each sluice release and
// an upgrade replaces it, so whatever the CLI wrote there would be lost. The CLI edits only the
// site's own lists, which live in `site_dir`. Pure: paths and list definitions in, text out.
import { dirname, isAbsolute, relative } from 'node:path';
import type { ListDefinition, ResolvedLists } from './catalog.js';

/** The directory a release replaces: the catalog's. */
export function releaseDir(resolved: ResolvedLists): string | undefined {
  return resolved.catalog ? dirname(resolved.catalog.file) : undefined;
}

/** Whether `file` is `dir` or below it. */
export function isInside(file: string, dir: string): boolean {
  const rel = relative(dir, file);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** A local list the CLI may edit, to suggest instead of a curated one: local-additions if there is one. */
export function siteListFor(resolved: ResolvedLists): string | undefined {
  const release = releaseDir(resolved);
  const site = [...resolved.lists.values()].filter((d) => d.origin === 'config' && d.url === undefined && (release === undefined || !isInside(d.file, release)));
  return (site.find((d) => d.name === 'local-additions') ?? site[0])?.name;
}

export interface EditAttempt {
  verb: 'add' | 'remove' | 'import';
  /** What followed the list name on the command line (domains, or the import source). */
  args: string[];
  /** Paths are shown relative to this directory. */
  cwd: string;
}

/** Why the CLI must not write `def`'s file (it is part of the release), with what to do instead; undefined if it may. */
export function curatedListProblem(def: ListDefinition, resolved: ResolvedLists, attempt: EditAttempt): string | undefined {
  const release = releaseDir(resolved);
  const shown = relative(attempt.cwd, def.file);
  let what: string;
  if (def.origin === 'catalog') what = `list ${def.name} is part of the curated catalog (${shown}), which an upgrade replaces`;
  else if (release !== undefined && isInside(def.file, release)) what = `the file of list ${def.name} (${shown}) is in the curated catalog's directory, which an upgrade replaces`;
  else return undefined;
  if (def.origin === 'config') return `${what}; move it to site_dir and change lists.${def.name}.file in the config`;
  if (attempt.verb === 'remove') return `${what}; to stop blocking a name, add it to the \`allow\` list of the profile in the config`;
  const site = siteListFor(resolved);
  const args = attempt.args.join(' ');
  const edit = `sluice lists ${attempt.verb} ${site ?? 'local-additions'} ${args}`;
  return `${what}; ${attempt.verb === 'import' ? 'import it into' : 'add it to'} a site list: ${site ? edit : `sluice lists new local-additions && ${edit}`}`;
}
