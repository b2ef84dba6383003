// Wall-clock time in a named time zone, from Intl (no time zone database of our own): local
// weekday and minutes for schedules, and "start of this local date" for policy dates. Daylight
// saving changes are Intl's business, which is the point.

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      weekday: 'short',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

export interface LocalTime {
  year: number;
  month: number;
  day: number;
  /** 0 = Monday … 6 = Sunday */
  weekday: number;
  hour: number;
  minute: number;
  second: number;
}

const WEEKDAYS: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

export function localTime(epochMs: number, tz: string): LocalTime {
  const parts: Record<string, string> = {};
  for (const p of formatter(tz).formatToParts(new Date(epochMs))) parts[p.type] = p.value;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    weekday: WEEKDAYS[parts.weekday!] ?? 0,
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
  };
}

/** Offset of `tz` from UTC at `epochMs`, in milliseconds (positive east of Greenwich). */
function offsetAt(epochMs: number, tz: string): number {
  const l = localTime(epochMs, tz);
  return Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second) - Math.floor(epochMs / 1000) * 1000;
}

/** The instant at which the local wall clock in `tz` shows the given date and time. */
export function zonedToEpoch(year: number, month: number, day: number, hour: number, minute: number, tz: string): number {
  const guess = Date.UTC(year, month - 1, day, hour, minute);
  // Two rounds settle the offset even right after a DST change.
  let t = guess - offsetAt(guess, tz);
  t = guess - offsetAt(t, tz);
  return t;
}

/**
 * A policy date: "YYYY-MM-DD" is the start of that day in `tz` (or, with `endOfDay`, the start of
 * the next day); a full ISO date-time is taken as written.
 */
export function parsePolicyDate(text: string, tz: string, endOfDay = false): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return Date.parse(text);
  const start = zonedToEpoch(Number(m[1]), Number(m[2]), Number(m[3]), 0, 0, tz);
  if (!endOfDay) return start;
  const next = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + 1));
  return zonedToEpoch(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), 0, 0, tz);
}
