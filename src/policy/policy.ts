// A policy's lifecycle, compiled from config: when it is enforced, when it must be reviewed,
// which exceptions still apply, and whether its schedule covers a moment. Pure: time is a
// parameter, never read from a clock here.
import type { PolicyConfig, ScheduleConfig } from '../config/schema.js';
import { localTime, parsePolicyDate } from './calendar.js';
import { NetworkTable } from '../match/network-table.js';

export type PolicyState = 'scheduled' | 'active' | 'review-due' | 'review-overdue' | 'lapsed';

/** A policy whose review date is this close counts as "review due". */
export const REVIEW_DUE_DAYS = 30;
const DAY = 86_400_000;

export interface CompiledException {
  index: number;
  network?: string;
  clients?: string[];
  clientTable?: NetworkTable<true>;
  lists?: Set<string>;
  reason: string;
  approvedBy: string;
  until?: number;
  untilText?: string;
}

interface Window {
  days: Set<number>;
  from: number; // minutes after local midnight
  to: number;
}

export interface CompiledPolicy {
  id: string;
  title: string;
  reference: string;
  mode: 'enforce' | 'dry-run';
  lists: string[];
  networks: Set<string>;
  profiles: Set<string>;
  from: number;
  until?: number;
  reviewBy?: number;
  exceptions: CompiledException[];
  schedule?: { tz: string; windows: Window[] };
  config: PolicyConfig;
}

const DAYS = { mon: 0, tue: 1, wed: 2, thu: 3, fri: 4, sat: 5, sun: 6 } as const;

function minutes(t: string): number {
  const [h, m] = t.split(':').map(Number);
  return h! * 60 + m!;
}

export function compilePolicy(id: string, p: PolicyConfig): CompiledPolicy {
  const tz = p.timezone;
  return {
    id,
    title: p.title,
    reference: p.reference,
    mode: p.mode,
    lists: p.block,
    networks: new Set(p.networks),
    profiles: new Set(p.profiles),
    from: parsePolicyDate(p.from, tz),
    ...(p.until !== undefined ? { until: parsePolicyDate(p.until, tz, true) } : {}),
    ...(p.review_by !== undefined ? { reviewBy: parsePolicyDate(p.review_by, tz, true) } : {}),
    exceptions: p.exceptions.map((e, index) => ({
      index,
      ...(e.network !== undefined ? { network: e.network } : {}),
      ...(e.clients !== undefined ? { clients: e.clients, clientTable: new NetworkTable(e.clients.map((cidr) => ({ cidr, network: true as const }))) } : {}),
      ...(e.lists !== undefined ? { lists: new Set(e.lists) } : {}),
      reason: e.reason,
      approvedBy: e.approved_by,
      ...(e.until !== undefined ? { until: parsePolicyDate(e.until, tz, true), untilText: e.until } : {}),
    })),
    ...(p.schedule ? { schedule: compileSchedule(p.schedule, tz) } : {}),
    config: p,
  };
}

function compileSchedule(s: ScheduleConfig, defaultTz: string) {
  return {
    tz: s.timezone ?? defaultTz,
    windows: s.windows.map((w) => ({ days: new Set(w.days.map((d) => DAYS[d])), from: minutes(w.from), to: minutes(w.to) })),
  };
}

/** Lifecycle state at `now`. A policy past review_by without `until` keeps enforcing (fails safe). */
export function policyState(p: CompiledPolicy, now: number): { state: PolicyState; reviewInDays?: number } {
  if (now < p.from) return { state: 'scheduled' };
  if (p.until !== undefined && now >= p.until) return { state: 'lapsed' };
  if (p.reviewBy !== undefined) {
    const days = Math.ceil((p.reviewBy - now) / DAY);
    if (now >= p.reviewBy) return { state: 'review-overdue', reviewInDays: days };
    if (days <= REVIEW_DUE_DAYS) return { state: 'review-due', reviewInDays: days };
    return { state: 'active', reviewInDays: days };
  }
  return { state: 'active' };
}

export function isInForce(p: CompiledPolicy, now: number): boolean {
  const s = policyState(p, now).state;
  return s !== 'scheduled' && s !== 'lapsed';
}

/** Whether the schedule (if any) covers `now`. Windows whose end is before their start run past midnight. */
export function inSchedule(p: CompiledPolicy, now: number): boolean {
  if (!p.schedule) return true;
  const l = localTime(now, p.schedule.tz);
  const m = l.hour * 60 + l.minute;
  const yesterday = (l.weekday + 6) % 7;
  for (const w of p.schedule.windows) {
    if (w.from < w.to) {
      if (w.days.has(l.weekday) && m >= w.from && m < w.to) return true;
    } else {
      if (w.days.has(l.weekday) && m >= w.from) return true;
      if (w.days.has(yesterday) && m < w.to) return true;
    }
  }
  return false;
}

export function exceptionActive(e: CompiledException, now: number): boolean {
  return e.until === undefined || now < e.until;
}

/** Instants at which some decision of this policy may change (for memo invalidation). */
export function boundaries(p: CompiledPolicy): number[] {
  const out = [p.from];
  if (p.until !== undefined) out.push(p.until);
  for (const e of p.exceptions) if (e.until !== undefined) out.push(e.until);
  return out;
}
