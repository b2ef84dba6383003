// What part of a requested range an answer covers, for every source of the log (memory ring,
// files, stores): the readers and the stores both say it, so it sits below both.
import type { QueryFilter } from './filter.js';

export type StoreKind = 'sqlite' | 'postgres';

/** What part of a requested range an answer covers: never a silent cut. */
export interface Covers {
  /** Where the answer came from: a store kind, or `memory` / `files` for the older sources. */
  source: StoreKind | 'memory' | 'files' | 'api';
  /** The range asked for (epoch ms, null = open). */
  requested: { since: number | null; until: number | null };
  /** Oldest and newest raw event the source holds (null when it holds none). */
  held: { oldest: number | null; newest: number | null };
  /** Instances whose events the source holds in the requested range. */
  instances: string[];
  /** Events logged in the requested range that never reached the source (overload, store down). */
  dropped: number;
  /** True when the source holds every event of the requested range. */
  complete: boolean;
  /** One sentence per gap, for people: "raw events before … were deleted (retention 30 days)". */
  notes: string[];
}

/**
 * The `covers` of an answer from what a store knows: the oldest and newest event it holds, where
 * retention cut, and what was dropped in the range.
 */
export function describeCovers(
  source: Covers['source'],
  filter: QueryFilter,
  held: Covers['held'],
  instances: string[],
  dropped: number,
  retainedSince: number | null,
  retentionDays: number | null,
): Covers {
  const notes: string[] = [];
  const since = filter.since ?? null;
  let complete = dropped === 0;
  if (retainedSince !== null && (since === null || since < retainedSince)) {
    complete = false;
    notes.push(`raw events before ${new Date(retainedSince).toISOString()} are no longer held${retentionDays !== null ? ` (retention ${retentionDays} days)` : ''}`);
  } else if (since !== null && held.oldest !== null && since < held.oldest && retainedSince === null) {
    notes.push(`the ${source} store holds events from ${new Date(held.oldest).toISOString()} on`);
  }
  if (held.oldest === null) notes.push(`the ${source} store holds no events`);
  if (dropped > 0) notes.push(`${dropped} events of this range were dropped before they reached the store (overload or store failure)`);
  return { source, requested: { since, until: filter.until ?? null }, held, instances, dropped, complete, notes };
}
