// How CLI commands print: aligned tables for people on a terminal, JSON for scripts (--json),
// and the documented exit codes.

export const EXIT = {
  OK: 0,
  /** A check failed: the name is blocked, the config is invalid, an edit was refused. */
  FAILED: 1,
  /** Usage error, or the config could not be loaded. */
  USAGE: 2,
  /** `check`: the client is in no network, so the server would answer REFUSED (not a block). */
  REFUSED: 3,
} as const;

/**
 * Output piped into a reader that stops early (`sluice lists show big | head -1`): once the reader
 * has gone, exit quietly with the command's status, as a Unix tool killed by SIGPIPE goes. Node
 * ignores SIGPIPE, so without this the next write throws an unhandled EPIPE with a stack trace.
 * Exiting here also ends a command that would go on writing (`log tail --follow`); writes made
 * before the error is seen fail quietly (a destroyed stream reports them, it does not throw).
 */
export function exitQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      process.exit(process.exitCode ?? EXIT.OK);
    });
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Columns padded to their widest cell; the last column is not padded. */
export function renderTable(headers: string[], rows: (string | number | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === undefined ? '' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return (
    cells
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export function printTable(headers: string[], rows: (string | number | undefined)[][]): void {
  process.stdout.write(renderTable(headers, rows));
}

const closers: (() => Promise<void>)[] = [];

/** Something a command opened (a store's connections), closed once the command has finished. */
export function closeAfterCommand(close: () => Promise<void>): void {
  closers.push(close);
}

/** Close what the command opened; called by the entry point after the command ran. */
export async function closeOpened(): Promise<void> {
  for (const c of closers.splice(0)) await c().catch(() => undefined);
}

export function fail(message: string, code: number = EXIT.FAILED): void {
  process.stderr.write(`sluice: ${message}\n`);
  process.exitCode = code;
}
