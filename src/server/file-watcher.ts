// Watches the config, catalog and list files and calls back (debounced) when one changes, so an
// edit is applied within about a second without a restart. Directories are watched rather than
// files because editors and `sluice lists` replace files by rename, which a file watch would lose.
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

export class FileWatcher {
  private watchers = new Map<string, FSWatcher>();
  private files = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly onChange: (files: string[]) => void,
    private readonly debounceMs = 300,
    private readonly onError: (err: Error) => void = () => {},
  ) {}

  private changed = new Set<string>();
  /** Directories of watched files that do not exist yet, e.g. state_dir/lists before the first download. */
  private missing = new Set<string>();

  /** Watch exactly these files from now on. */
  setFiles(files: Iterable<string>): void {
    this.files = new Set([...files].map((f) => resolve(f)));
    this.missing.clear();
    const dirs = new Set<string>();
    for (const f of this.files) {
      const dir = dirname(f);
      if (existsSync(dir)) {
        dirs.add(dir);
      } else {
        // Watch the nearest existing ancestor so that the directory's creation is noticed.
        this.missing.add(dir);
        dirs.add(nearestExisting(dir));
      }
    }
    for (const [dir, w] of this.watchers) {
      if (!dirs.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => this.onEvent(dir, name === null ? undefined : name.toString()));
        w.on('error', (e) => this.onError(e));
        this.watchers.set(dir, w);
      } catch (err) {
        this.onError(err as Error);
      }
    }
  }

  private onEvent(dir: string, name: string | undefined): void {
    if (name !== undefined) {
      const file = resolve(dir, name);
      if (this.files.has(file)) this.touch(file);
    }
    const appeared = [...this.missing].filter((d) => existsSync(d));
    if (appeared.length === 0) return;
    this.setFiles(this.files);
    // Files written into the new directory before its watch started would otherwise go unnoticed.
    for (const f of this.files) if (appeared.includes(dirname(f)) && existsSync(f)) this.touch(f);
  }

  private touch(file: string): void {
    this.changed.add(file);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), this.debounceMs);
  }

  private fire(): void {
    const files = [...this.changed].map((f) => basename(f));
    this.changed.clear();
    this.onChange(files);
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}

function nearestExisting(dir: string): string {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}
