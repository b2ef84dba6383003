// Watches the config, catalog and list files and calls back (debounced) when one changes, so an
// edit is applied within about a second without a restart. Directories are watched rather than
// files because editors and `sluice lists` replace files by rename, which a file watch would lose.
import { watch, type FSWatcher } from 'node:fs';
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

  /** Watch exactly these files from now on. */
  setFiles(files: Iterable<string>): void {
    this.files = new Set([...files].map((f) => resolve(f)));
    const dirs = new Set([...this.files].map((f) => dirname(f)));
    for (const [dir, w] of this.watchers) {
      if (!dirs.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          if (name === null) return;
          const file = resolve(dir, name.toString());
          if (!this.files.has(file)) return;
          this.changed.add(file);
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.fire(), this.debounceMs);
        });
        w.on('error', (e) => this.onError(e));
        this.watchers.set(dir, w);
      } catch (err) {
        this.onError(err as Error); // e.g. a list directory that does not exist yet
      }
    }
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
