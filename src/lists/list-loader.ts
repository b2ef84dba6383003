// Reads the list files a config names into DomainSets. Problems (unreadable files, bad lines) are
// returned with file and line, never thrown for a single bad line: the rest of the list still loads.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { DomainSet } from '../policy/domain-set.js';
import type { ListProblem } from './formats.js';
import { loadDomainsFromBytes } from './list-bytes.js';

export interface LoadedList {
  name: string;
  file: string;
  set: DomainSet;
  problems: ListProblem[];
}

export interface ListLoadError {
  list: string;
  file: string;
  message: string;
}

export function listPath(config: Config, baseDir: string, name: string): string {
  const l = config.lists[name];
  if (!l) throw new Error(`unknown list ${name}`);
  return resolve(baseDir, l.file);
}

export async function loadList(name: string, file: string): Promise<LoadedList> {
  const { set, problems } = loadDomainsFromBytes(await readFile(file));
  return { name, file, set, problems };
}

/** Load every list of the config. A missing or unreadable file is an error (the reload is refused). */
export async function loadLists(config: Config, baseDir: string): Promise<{ lists: LoadedList[]; errors: ListLoadError[] }> {
  const lists: LoadedList[] = [];
  const errors: ListLoadError[] = [];
  await Promise.all(
    Object.keys(config.lists).map(async (name) => {
      const file = listPath(config, baseDir, name);
      try {
        lists.push(await loadList(name, file));
      } catch (err) {
        errors.push({ list: name, file, message: (err as Error).message });
      }
    }),
  );
  return { lists, errors };
}
