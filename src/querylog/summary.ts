// Aggregates over query events for the dashboard (placeholder: totals only).
import type { QueryEvent } from './event.js';
import { matches, type QueryFilter } from './filter.js';

export function summarize(events: Iterable<QueryEvent>, filter: QueryFilter): { total: number; blocked: number } {
  let total = 0;
  let blocked = 0;
  for (const e of events) {
    if (!matches(e, filter)) continue;
    total++;
    if (e.decision === 'blocked') blocked++;
  }
  return { total, blocked };
}
