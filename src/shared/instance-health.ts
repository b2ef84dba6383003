// Pure: which instances sharing one Redis are out of step, and why. An instance is `behind` when it
// lacks edits of the log Redis holds, `diverged` when its own config and list files decide
// differently from the others' (the version most instances hold; in a tie, the one held longest),
// and `stale` when its heartbeat stopped. Used by each instance for its own health and by
// `sluice status` for all of them, so both say the same.

export interface Heartbeat {
  instance: string;
  /** The worker of a multi-worker instance (each has its own connection and state). */
  worker?: number;
  host: string;
  pid: number;
  time: number;
  /** The whole policy version: config, list files and shared edits. */
  version: string;
  /** Config and list files only: what the instance has on its own disk. */
  rulesVersion: string;
  /** Since when (ms) it has held `rulesVersion`. */
  rulesSince: number;
  epoch: string;
  editsVersion: number;
}

export interface LogHead {
  epoch: string;
  version: number;
}

export type InstanceState = 'ok' | 'behind' | 'diverged' | 'stale';

export interface InstanceStatus extends Heartbeat {
  ageSeconds: number;
  state: InstanceState;
  /** What it is out of step with, for people. */
  detail?: string;
}

/** Its field in the instances hash, and its name for people: the instance, `name#N` for worker N. */
export function memberName(b: Pick<Heartbeat, 'instance' | 'worker'>): string {
  return b.worker === undefined ? b.instance : `${b.instance}#${b.worker}`;
}

/** The heartbeats of the instances hash; values that are not one (hand-written, older versions) are skipped. */
export function parseHeartbeats(all: Record<string, string>): Heartbeat[] {
  return Object.values(all).flatMap((j) => {
    try {
      const b = JSON.parse(j) as Heartbeat;
      return typeof b.rulesVersion === 'string' && typeof b.time === 'number' ? [b] : [];
    } catch {
      return [];
    }
  });
}

/** The rules version the instances agree on: held by most instances (by name); a tie goes to the one held longest. */
export function referenceRules(beats: readonly Heartbeat[]): string | undefined {
  const holders = new Map<string, { instances: Set<string>; since: number }>();
  for (const b of beats) {
    const h = holders.get(b.rulesVersion) ?? { instances: new Set<string>(), since: Infinity };
    h.instances.add(b.instance);
    h.since = Math.min(h.since, b.rulesSince);
    holders.set(b.rulesVersion, h);
  }
  let best: string | undefined;
  for (const [v, h] of holders) {
    const cur = best === undefined ? undefined : holders.get(best)!;
    if (!cur || h.instances.size > cur.instances.size || (h.instances.size === cur.instances.size && h.since < cur.since)) best = v;
  }
  return best;
}

/** How far `beat` is behind `head`: 0 when it holds the whole log. */
export function editsBehind(beat: Pick<Heartbeat, 'epoch' | 'editsVersion'>, head: LogHead): number {
  if (head.version === 0 && beat.editsVersion === 0) return 0;
  if (beat.epoch !== head.epoch) return Math.max(1, head.version);
  return Math.max(0, head.version - beat.editsVersion);
}

export function judgeInstances(beats: readonly Heartbeat[], head: LogHead | undefined, now: number, staleMs: number): InstanceStatus[] {
  const fresh = beats.filter((b) => now - b.time < staleMs);
  const reference = referenceRules(fresh);
  return beats
    .map((b): InstanceStatus => {
      const ageSeconds = Math.round((now - b.time) / 1000);
      if (now - b.time >= staleMs) return { ...b, ageSeconds, state: 'stale', detail: `no heartbeat for ${ageSeconds} s` };
      const behind = head ? editsBehind(b, head) : 0;
      if (behind > 0)
        return {
          ...b,
          ageSeconds,
          state: 'behind',
          detail: b.epoch !== head!.epoch ? `holds another edit log than redis (${head!.version} edits)` : `${behind} edit(s) behind redis (version ${head!.version})`,
        };
      if (b.rulesVersion !== reference) return { ...b, ageSeconds, state: 'diverged', detail: `its config or list files differ (rules ${b.rulesVersion}, the others ${reference})` };
      return { ...b, ageSeconds, state: 'ok' };
    })
    .sort((a, b) => a.instance.localeCompare(b.instance) || (a.worker ?? 0) - (b.worker ?? 0));
}
