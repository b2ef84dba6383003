// Wait on a condition that becomes true through the server's own progress: checked between event
// loop turns (setImmediate), never on a fixed sleep, and failing with what was awaited.
export async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 3000, pauseMs = 0): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
}
