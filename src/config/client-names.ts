// The files of `client_names` (hosts format), read for the server's loader and for `sluice log`
// and `sluice report`, which must not load the rule compiler to show a name.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ClientNames, parseHostsText } from '../match/client-names.js';
import type { LoadedConfig } from './load.js';

/** The hosts files of `client_names`, resolved against the config's directory. */
export function hostsFiles(loaded: LoadedConfig): string[] {
  return loaded.config.client_names.hosts_files.map((f) => resolve(loaded.baseDir, f));
}

/**
 * `client_names`: the static map, then each hosts file. A file that cannot be read is an error (as
 * a list's is); a line that does not parse is skipped with a warning.
 */
export function readClientNames(loaded: LoadedConfig): { names: ClientNames; errors: string[]; warnings: { file: string; line: number; message: string }[] } {
  const sources: ReadonlyMap<string, string>[] = [new Map(Object.entries(loaded.config.client_names.static))];
  const errors: string[] = [];
  const warnings: { file: string; line: number; message: string }[] = [];
  for (const file of hostsFiles(loaded)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      errors.push(`${file}: cannot read the hosts file of client_names.hosts_files: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      continue;
    }
    const parsed = parseHostsText(text);
    sources.push(parsed.names);
    for (const p of parsed.problems) warnings.push({ file, ...p });
  }
  return { names: new ClientNames(sources), errors, warnings };
}
