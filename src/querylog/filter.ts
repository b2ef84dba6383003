// Filters over query events, shared by the admin API, `sluice log` and the reports. Pure.
import type { LoggedDecision, QueryEvent } from './event.js';

export interface QueryFilter {
  since?: number;
  until?: number;
  network?: string;
  client?: string;
  /** Matches the name and every subdomain of it. */
  domain?: string;
  decision?: LoggedDecision | 'would-block';
  policy?: string;
  list?: string;
  instance?: string;
}

export function matches(e: QueryEvent, f: QueryFilter): boolean {
  if (f.since !== undefined && e.time < f.since) return false;
  if (f.until !== undefined && e.time >= f.until) return false;
  if (f.network !== undefined && e.network !== f.network) return false;
  if (f.client !== undefined && e.client !== f.client) return false;
  if (f.policy !== undefined && e.policy !== f.policy) return false;
  if (f.list !== undefined && e.list !== f.list) return false;
  if (f.instance !== undefined && e.instance !== f.instance) return false;
  if (f.decision !== undefined) {
    if (f.decision === 'would-block' ? !e.wouldBlock : e.decision !== f.decision) return false;
  }
  if (f.domain !== undefined) {
    const d = f.domain.toLowerCase().replace(/\.$/, '');
    if (e.name !== d && !e.name.endsWith(`.${d}`)) return false;
  }
  return true;
}

/** Parse filter values from query-string-like input (admin API, CLI). Throws with a message on bad input. */
export function parseFilter(input: Record<string, string | undefined>, now = Date.now()): QueryFilter {
  const f: QueryFilter = {};
  const time = (key: string): number | undefined => {
    const v = input[key];
    if (v === undefined || v === '') return undefined;
    const t = parseTime(v, now);
    if (t === undefined) throw new Error(`${key}: "${v}" is not a time (ISO date, epoch ms, or a duration ago such as 15m, 1h, 7d)`);
    return t;
  };
  const since = time('since');
  const until = time('until');
  if (since !== undefined) f.since = since;
  if (until !== undefined) f.until = until;
  for (const k of ['network', 'client', 'domain', 'policy', 'list', 'instance'] as const) {
    const v = input[k];
    if (v !== undefined && v !== '') f[k] = v;
  }
  const d = input.decision;
  if (d !== undefined && d !== '') {
    if (!['allowed', 'blocked', 'refused', 'error', 'malformed', 'would-block'].includes(d)) throw new Error(`decision: "${d}" is not one of allowed, blocked, refused, error, malformed, would-block`);
    f.decision = d as QueryFilter['decision'];
  }
  return f;
}

/** "2026-11-25", "2026-11-25T10:00:00Z", epoch ms, or "15m"/"1h"/"7d" ago. */
export function parseTime(v: string, now = Date.now()): number | undefined {
  const ago = /^(\d+)([smhd])$/.exec(v);
  if (ago) return now - Number(ago[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[ago[2] as 's' | 'm' | 'h' | 'd'];
  if (/^\d{11,}$/.test(v)) return Number(v);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}
