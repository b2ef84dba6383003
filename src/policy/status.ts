// A policy's lifecycle as the admin sees it (state, review date, exceptions and their expiry): what
// `sluice policy status`, the admin API and the dashboard show.
import { NO_OVERRIDES, overrideScope, type CompiledOverrides } from './overrides.js';
import { exceptionActive, policyState, type CompiledPolicy, type PolicyState } from './policy.js';

export interface PolicyStatus {
  id: string;
  title: string;
  reference: string;
  state: PolicyState;
  mode: string;
  reviewInDays?: number;
  from: string;
  until?: string;
  reviewBy?: string;
  appliesTo: string[];
  lists: string[];
  schedule?: string;
  exceptions: { scope: string; lists: string; reason: string; approvedBy: string; until?: string; expired: boolean }[];
  /** Runtime disables (`sluice disable`) in force that cover this policy. */
  disabled: { id: string; scope: string; until: string; reason: string; by: string }[];
}

export function policyStatus(p: CompiledPolicy, now: number, overrides: CompiledOverrides = NO_OVERRIDES): PolicyStatus {
  const s = policyState(p, now);
  const c = p.config;
  return {
    id: p.id,
    title: p.title,
    reference: p.reference,
    state: s.state,
    mode: p.mode,
    ...(s.reviewInDays !== undefined ? { reviewInDays: s.reviewInDays } : {}),
    from: c.from,
    ...(c.until !== undefined ? { until: c.until } : {}),
    ...(c.review_by !== undefined ? { reviewBy: c.review_by } : {}),
    appliesTo: [...c.networks.map((n) => `network ${n}`), ...c.profiles.map((n) => `profile ${n}`)],
    lists: c.block,
    ...(c.schedule ? { schedule: `${c.schedule.windows.map((w) => `${w.days.join(',')} ${w.from}-${w.to}`).join('; ')} (${c.schedule.timezone ?? c.timezone})` } : {}),
    exceptions: p.exceptions.map((e) => ({
      scope: e.network !== undefined ? `network ${e.network}` : `clients ${e.clients!.join(', ')}`,
      lists: e.lists ? [...e.lists].join(',') : 'all',
      reason: e.reason,
      approvedBy: e.approvedBy,
      ...(e.untilText !== undefined ? { until: e.untilText } : {}),
      expired: !exceptionActive(e, now),
    })),
    disabled: overrides.disables
      .filter((d) => now < d.until && (d.policy === undefined || d.policy === p.id))
      .map((d) => ({ id: d.id, scope: overrideScope(d), until: new Date(d.until).toISOString(), reason: d.reason, by: d.by })),
  };
}
