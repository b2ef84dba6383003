// Calendar periods of the query log's trends and retention: UTC days, ISO weeks, months. Pure.

export const DAY_MS = 86_400_000;

/** `YYYY-MM-DD` of a UTC day. */
export function utcDay(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/** The first day (`YYYY-MM-DD`) of the period a UTC day falls in; weeks start on Monday. */
export function periodStart(day: string, by: TrendPeriod): string {
  if (by === 'day') return day;
  if (by === 'month') return `${day.slice(0, 8)}01`;
  const t = Date.parse(`${day}T00:00:00Z`);
  const weekday = (new Date(t).getUTCDay() + 6) % 7; // Monday 0
  return utcDay(t - weekday * DAY_MS);
}

export type TrendPeriod = 'day' | 'week' | 'month';

export interface TrendOptions {
  by: TrendPeriod;
  policy?: string;
  network?: string;
  list?: string;
  since?: number;
  until?: number;
}

/** Blocked queries per period, network, policy and list, from the daily rollup. */
export interface TrendRow {
  /** The period's first day, `YYYY-MM-DD` (weeks start on Monday, ISO 8601). */
  period: string;
  network: string;
  policy: string;
  list: string;
  blocked: number;
  /** Distinct clients blocked in the period. */
  clients: number;
}
