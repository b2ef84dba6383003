// V8 flags the resolver runs with. They must be given when node starts (V8 sizes its heap before
// any code runs), so they are written where sluice is launched: the shebang of bin/sluice.js, the
// `start` script in package.json, the systemd unit, and here for cluster workers. A unit test
// (test/e2e/deploy.test.ts) keeps those places equal to this list.
//
// --max-semi-space-size=4 (MiB; Node 20's default grows to 16): the young generation is where
// every query's short-lived objects go. Measured with `npm run bench` on 2 cores: the same QPS,
// p99 at half peak 0.55 ms instead of 1.07 ms (shorter scavenges), and ~25 MB less resident
// memory (the young generation that grew while the lists loaded stays committed).
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

/** `execArgv` with NODE_FLAGS added where not given already (a flag given explicitly wins). */
export function withNodeFlags(execArgv: readonly string[]): string[] {
  const out = [...execArgv];
  for (const f of NODE_FLAGS) {
    const name = f.split('=')[0]!;
    if (!out.some((a) => a === name || a.startsWith(`${name}=`))) out.push(f);
  }
  return out;
}
