// What Grafana does to a PostgreSQL panel's SQL before the database sees it, so that tests can run
// the dashboards' queries against a real PostgreSQL. Three passes, in Grafana's order:
//
// 1. The browser (templateSrv.replace): template variables `$name`, `${name}`, `${name:format}`,
//    `[[name]]`, and the global `$__interval`, `$__interval_ms`, `$__from`, `$__to`. A multi-value
//    or include-All variable is formatted by the SQL data source as a list of quoted literals
//    (`'a','b'`); "All" is the variable's `allValue` inserted as it is, or every option quoted.
// 2. The server (sqleng.Interpolate): `$__interval_ms`, `$__interval`, `$__unixEpochFrom()`,
//    `$__unixEpochTo()`.
// 3. The PostgreSQL macro engine (pkg/tsdb/grafana-postgresql-datasource/macros.go): `$__time`,
//    `$__timeEpoch`, `$__timeFilter`, `$__timeFrom`, `$__timeTo`, `$__timeGroup`,
//    `$__timeGroupAlias`, `$__unixEpochFilter`, `$__unixEpochNanoFilter`, `$__unixEpochNanoFrom`,
//    `$__unixEpochNanoTo`, `$__unixEpochGroup`, `$__unixEpochGroupAlias`; anything else of the
//    form `$__name(...)` is an error ("unknown macro"), as in Grafana.
//
// Not modelled: TimescaleDB's time_bucket (the data source's `timescaledb` option, off here) and
// fill modes (the third argument of `$__timeGroup`: Grafana fills gaps after the query runs).

export interface TimeRange {
  /** Epoch milliseconds. */
  from: number;
  to: number;
}

/** A template variable as a dashboard's `templating.list` defines it (the fields that matter here). */
export interface GrafanaVariable {
  name: string;
  type: string;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string | null;
  query?: unknown;
  options?: { text: string; value: string }[];
  /** The saved selection: what a text box (or a variable without All) holds when nothing is picked. */
  current?: { text?: unknown; value?: unknown };
}

/** What is selected: `'all'`, or the values picked (one for a single-value variable). */
export type Selection = 'all' | string[];

export interface ExpandOptions {
  range: TimeRange;
  /** `$__interval` in milliseconds (Grafana computes it from the range and the panel width). */
  intervalMs: number;
  variables: GrafanaVariable[];
  /** Per variable name: the selection. Missing: "All", else the saved `current` value, else the first option. */
  selections?: Record<string, Selection>;
  /** Per variable name: every option the variable offers (for "All" without an `allValue`). */
  options?: Record<string, string[]>;
}

export class MacroError extends Error {}

// ---------------------------------------------------------------------------------------------
// Time and interval formatting

/** Go's time.RFC3339Nano in UTC: `2026-11-01T10:00:00Z`, `2026-11-01T10:00:00.5Z` (no trailing zeros). */
export function rfc3339Nano(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-11-01T10:00:00.500Z
  const [whole, frac] = iso.slice(0, -1).split('.');
  const f = (frac ?? '').replace(/0+$/, '');
  return `${whole}${f === '' ? '' : `.${f}`}Z`;
}

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  M: 30 * 86_400_000,
  y: 365 * 86_400_000,
};

/** gtime.ParseInterval: `30s`, `5m`, `1h`, `1d`, `1w`, `1M`, `1y` (and plain Go durations) → ms. */
export function parseInterval(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|M|y)$/.exec(text.trim());
  if (!m) throw new MacroError(`error parsing interval ${text}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** How Grafana prints an interval (rangeutil.secondsToHms / gtime.FormatInterval): the largest whole unit. */
export function formatInterval(ms: number): string {
  const units: [string, number][] = [
    ['y', UNIT_MS.y!],
    ['d', UNIT_MS.d!],
    ['h', UNIT_MS.h!],
    ['m', UNIT_MS.m!],
    ['s', UNIT_MS.s!],
  ];
  for (const [u, size] of units) if (ms >= size) return `${Math.floor(ms / size)}${u}`;
  return `${Math.max(1, Math.floor(ms))}ms`;
}

/** Go's %v of a float64 number of seconds: `60`, `0.5`, `86400`. */
const goFloat = (seconds: number): string => String(seconds);

// ---------------------------------------------------------------------------------------------
// Pass 1: template variables (the browser)

const quoteLiteral = (v: string): string => `'${v.replace(/'/g, "''")}'`;

function formatValue(v: GrafanaVariable, values: string[], format: string | undefined): string {
  switch (format) {
    case undefined:
      // SqlDatasource.interpolateVariable: quote when the variable can hold several values.
      if (v.multi === true || v.includeAll === true) return values.map(quoteLiteral).join(',');
      return (values[0] ?? '').replace(/'/g, "''");
    case 'sqlstring':
      return values.map(quoteLiteral).join(',');
    case 'singlequote':
      return values.map((x) => `'${x.replace(/'/g, "\\'")}'`).join(',');
    case 'doublequote':
      return values.map((x) => `"${x.replace(/"/g, '\\"')}"`).join(',');
    case 'csv':
    case 'text':
      return values.join(',');
    case 'pipe':
      return values.join('|');
    case 'raw':
      return values.join(',');
    default:
      throw new MacroError(`format ${format} of $${v.name} is not modelled`);
  }
}

function defaultSelection(v: GrafanaVariable, options: string[] | undefined): Selection {
  if (v.includeAll === true) return 'all';
  const cur = v.current?.value;
  if (typeof cur === 'string') return [cur];
  if (Array.isArray(cur) && cur.every((c) => typeof c === 'string')) return cur;
  return (options ?? []).slice(0, 1);
}

// Grafana's variableRegex: $var, [[var]], [[var:fmt]], ${var}, ${var.field}, ${var:fmt}
const VARIABLE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\${(\w+)(?:\.([^:^}]+))?(?::([^}]+))?}/g;

function interpolateVariables(sql: string, o: ExpandOptions): string {
  const byName = new Map(o.variables.map((v) => [v.name, v]));
  const globals: Record<string, string> = {
    __interval: formatInterval(o.intervalMs),
    __interval_ms: String(o.intervalMs),
    __from: String(o.range.from),
    __to: String(o.range.to),
  };
  return sql.replace(VARIABLE, (match: string, a?: string, b?: string, bFmt?: string, c?: string, _field?: string, cFmt?: string) => {
    const name = a ?? b ?? c!;
    const format = bFmt ?? cFmt;
    const g = globals[name];
    if (g !== undefined) return g;
    const v = byName.get(name);
    if (!v) return match; // unknown: left as it is (macros such as $__timeFilter are not variables)
    const selection = o.selections?.[name] ?? defaultSelection(v, o.options?.[name]);
    if (selection === 'all') {
      if (v.includeAll !== true) throw new MacroError(`$${name} has no "All" option`);
      // A custom all value is inserted without formatting (templateSrv skips the format for it).
      if (v.allValue !== undefined && v.allValue !== null && v.allValue !== '' && format !== 'text') return v.allValue;
      const all = o.options?.[name];
      if (all === undefined) throw new MacroError(`the options of $${name} are needed for its "All"`);
      return formatValue(v, all, format);
    }
    if (v.multi !== true && selection.length > 1) throw new MacroError(`$${name} is single-valued`);
    return formatValue(v, selection, format);
  });
}

// ---------------------------------------------------------------------------------------------
// Pass 2: sqleng.Interpolate (the server)

function interpolateGlobals(sql: string, o: ExpandOptions): string {
  return sql
    .replaceAll('$__interval_ms', String(o.intervalMs))
    .replaceAll('$__interval', formatInterval(o.intervalMs))
    .replaceAll('$__unixEpochFrom()', String(Math.floor(o.range.from / 1000)))
    .replaceAll('$__unixEpochTo()', String(Math.floor(o.range.to / 1000)));
}

// ---------------------------------------------------------------------------------------------
// Pass 3: the PostgreSQL macro engine

const MACRO = /\$([_a-zA-Z0-9]+)\(([^)]*)\)/g;

function evaluateMacro(name: string, args: string[], range: TimeRange): string {
  const col = (): string => {
    if (args.length === 0 || args[0] === '') throw new MacroError(`missing time column argument for macro ${name}`);
    return args[0]!;
  };
  const intervalSeconds = (): number => {
    if (args.length < 2) throw new MacroError(`macro ${name} needs time column and interval and optional fill value`);
    return parseInterval(args[1]!.replace(/^'+|'+$/g, '')) / 1000;
  };
  const nano = (ms: number): string => (BigInt(Math.floor(ms)) * 1_000_000n).toString();
  switch (name) {
    case '__time':
      return `${col()} AS "time"`;
    case '__timeEpoch':
      return `extract(epoch from ${col()}) as "time"`;
    case '__timeFilter':
      return `${col()} BETWEEN '${rfc3339Nano(range.from)}' AND '${rfc3339Nano(range.to)}'`;
    case '__timeFrom':
      return `'${rfc3339Nano(range.from)}'`;
    case '__timeTo':
      return `'${rfc3339Nano(range.to)}'`;
    case '__timeGroup': {
      const s = goFloat(intervalSeconds());
      return `floor(extract(epoch from ${col()})/${s})*${s}`;
    }
    case '__timeGroupAlias':
      return `${evaluateMacro('__timeGroup', args, range)} AS "time"`;
    case '__unixEpochFilter':
      return `${col()} >= ${Math.floor(range.from / 1000)} AND ${col()} <= ${Math.floor(range.to / 1000)}`;
    case '__unixEpochNanoFilter':
      return `${col()} >= ${nano(range.from)} AND ${col()} <= ${nano(range.to)}`;
    case '__unixEpochNanoFrom':
      return nano(range.from);
    case '__unixEpochNanoTo':
      return nano(range.to);
    case '__unixEpochGroup': {
      const s = goFloat(intervalSeconds());
      return `floor((${col()})/${s})*${s}`;
    }
    case '__unixEpochGroupAlias':
      return `${evaluateMacro('__unixEpochGroup', args, range)} AS "time"`;
    default:
      throw new MacroError(`unknown macro "${name}"`);
  }
}

function interpolateMacros(sql: string, range: TimeRange): string {
  return sql.replace(MACRO, (whole: string, name: string, argText: string, offset: number) => {
    // Grafana: `$__timeGroup(...)` directly followed by ',' is the pre-5.3 form that adds AS "time".
    let macro = name;
    if (macro === '__timeGroup' && sql[offset + whole.length] === ',') macro = '__timeGroupAlias';
    const args = argText.split(',').map((a) => a.trim());
    return evaluateMacro(macro, args, range);
  });
}

// ---------------------------------------------------------------------------------------------

/** The SQL PostgreSQL receives for this raw SQL of a panel or variable query. */
export function expandGrafanaSql(sql: string, o: ExpandOptions): string {
  return interpolateMacros(interpolateGlobals(interpolateVariables(sql, o), o), o.range);
}

/** Names of the template variables (not Grafana's own `$__…`) a text refers to. */
export function variablesUsed(sql: string): string[] {
  const names = new Set<string>();
  for (const m of sql.matchAll(VARIABLE)) {
    const name = m[1] ?? m[2] ?? m[4]!;
    // `$1` is a capture group of PromQL's label_replace: Grafana leaves it alone (no variable is named 1).
    if (!name.startsWith('__') && !/^\d+$/.test(name)) names.add(name);
  }
  return [...names].sort();
}

/** Names of the `$__name(...)` macros a text uses. */
export function macrosUsed(sql: string): string[] {
  return [...new Set([...sql.matchAll(MACRO)].map((m) => m[1]!))].sort();
}

/**
 * The panel's own time range: a panel's "relative time" (`timeFrom: "182d"`) replaces the
 * dashboard's range by the last N units up to its end, and `timeShift` moves it back.
 */
export function panelRange(dashboard: TimeRange, panel: { timeFrom?: string | null; timeShift?: string | null }): TimeRange {
  let { from, to } = dashboard;
  const rel = panel.timeFrom?.replace(/^now-/, '');
  if (rel) from = to - parseInterval(rel);
  const shift = panel.timeShift?.replace(/^now-/, '');
  if (shift) {
    const d = parseInterval(shift);
    from -= d;
    to -= d;
  }
  return { from, to };
}
