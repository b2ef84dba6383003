// Charts and small DOM helpers for the dashboard. The time series are uPlot (served by the admin
// server from the `uplot` package as /assets/uplot.js, a global `uPlot`), themed like Grafana's
// dark theme: legend entries toggle their series, the cursor shows the values, colours are stable
// per name. Text from the API only ever goes into textContent (uPlot's legend does the same).
/* global document, Node, ResizeObserver, uPlot */

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function formatNumber(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(digits);
}

/** A count as it is, with thousands separators, up to a million; then 1.2M. */
export function formatCount(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  return Math.abs(v) < 1e6 && Number.isInteger(v) ? v.toLocaleString('en-US') : formatNumber(v);
}

// ---- time -----------------------------------------------------------------------------------------
// `tz` is 'utc' or 'local' (the browser's zone). Formatted by hand, not by Intl, so that the text is
// the same in every browser and locale: 2026-11-30 14:05:09.

const pad = (n) => String(n).padStart(2, '0');
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function fields(t, tz) {
  const d = new Date(t);
  return tz === 'utc'
    ? { y: d.getUTCFullYear(), mo: d.getUTCMonth(), d: d.getUTCDate(), h: d.getUTCHours(), mi: d.getUTCMinutes(), s: d.getUTCSeconds() }
    : { y: d.getFullYear(), mo: d.getMonth(), d: d.getDate(), h: d.getHours(), mi: d.getMinutes(), s: d.getSeconds() };
}

/** `2026-11-30 14:05`, with `seconds` `14:05:09`, without `date` only the time. */
export function formatTime(t, tz, { date = true, seconds = false } = {}) {
  const f = fields(t, tz);
  const time = `${pad(f.h)}:${pad(f.mi)}${seconds ? `:${pad(f.s)}` : ''}`;
  return date ? `${f.y}-${pad(f.mo + 1)}-${pad(f.d)} ${time}` : time;
}

/** `Nov 30` */
export function formatDay(t, tz) {
  const f = fields(t, tz);
  return `${MONTHS[f.mo]} ${f.d}`;
}

/** The length of a bucket for people: 10 s, 1 min, 6 h, 1 d. */
export function formatStep(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${seconds / 60} min`;
  if (seconds < 86400) return `${seconds / 3600} h`;
  return `${seconds / 86400} d`;
}

// ---- colours ----------------------------------------------------------------------------------------

// Twelve colours of Grafana's palette that tell apart on the dark background. A name's colour is a
// hash of the name (FNV-1a), so a network (or app) has the same colour in every chart, table and
// reload, whatever else is shown with it.
export const PALETTE = ['#73bf69', '#8ab8ff', '#ff9ed2', '#5794f2', '#c0d860', '#2fc6c6', '#b877d9', '#d9a25b', '#9e9eb8', '#ff780a', '#fade2a', '#f2495c'];

export function colorOf(name) {
  let h = 0x811c9dc5;
  for (const c of String(name)) {
    h ^= c.codePointAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return PALETTE[h % PALETTE.length];
}

export function swatch(color) {
  const s = el('i', { class: 'swatch' });
  s.style.background = color;
  return s;
}

// ---- time series ------------------------------------------------------------------------------------

const AXIS = '#9d9db0';
const GRID = 'rgba(204, 204, 220, 0.08)';
const FONT = '11px Inter, "Helvetica Neue", Arial, system-ui, sans-serif';

/** A round upper end of the y axis for `max`: 1, 2, 2.5 or 5 × 10^n. */
function niceTop(max) {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max * 1.05) return m * p;
  return 10 * p;
}

/**
 * A uPlot time-series chart in `container` that follows the container's width.
 * render({ x: epoch seconds[], series: [{ name, color, values: (number|null)[] }], tz, xLabel, yLabel, unit })
 * Series hidden with the legend stay hidden (by name) when the data is replaced.
 */
export class TimeChart {
  constructor(container, { height = 200, emptyText = 'No data in this range', points = false, fill = true, summary = 'total' } = {}) {
    this.container = container;
    this.summary = summary;
    this.height = height;
    this.emptyText = emptyText;
    this.points = points;
    this.fill = fill;
    this.hidden = new Set();
    this.plot = undefined;
    this.key = '';
    this.empty = el('div', { class: 'chart-empty', hidden: true }, emptyText);
    container.append(this.empty);
    new ResizeObserver(() => this.resize()).observe(container);
  }

  width() {
    return Math.max(Math.floor(this.container.clientWidth), 160);
  }

  resize() {
    if (this.plot && this.plot.width !== this.width()) this.plot.setSize({ width: this.width(), height: this.height });
  }

  render(d) {
    const key = JSON.stringify([d.tz, d.xLabel, d.yLabel, d.unit, d.series.map((s) => [s.name, s.color])]);
    const data = [d.x, ...d.series.map((s) => s.values)];
    if (this.plot && key === this.key) this.plot.setData(data);
    else {
      this.plot?.destroy();
      this.key = key;
      this.plot = new uPlot(this.options(d), data, this.container);
    }
    const any = d.series.some((s) => s.values.some((v) => v !== null && v !== 0));
    this.empty.hidden = any;
    this.container.dataset.series = d.series.map((s) => s.name).join(',');
    this.container.dataset.hidden = [...this.hidden].join(',');
  }

  legendSummary(values, unit) {
    const vals = values.filter((v) => v !== null && v !== undefined);
    if (vals.length === 0) return '–';
    if (this.summary === 'max') return `max ${formatNumber(Math.max(...vals))}${unit}`;
    return `${formatCount(vals.reduce((a, v) => a + v, 0))}${unit} total`;
  }

  options(d) {
    const tz = d.tz ?? 'utc';
    const unit = d.unit ?? '';
    // Ticks of a day or more show the day; shorter ones the time, and the day where it changes.
    const xValues = (u, splits, _axis, _space, incr) => {
      let previous;
      return splits.map((s, i) => {
        const t = s * 1000;
        const day = formatDay(t, tz);
        if (incr >= 86400) return day;
        const label = i === 0 || day !== previous ? `${formatTime(t, tz, { date: false })}\n${day}` : formatTime(t, tz, { date: false });
        previous = day;
        return label;
      });
    };
    return {
      width: this.width(),
      height: this.height,
      tzDate: tz === 'utc' ? (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC') : (ts) => new Date(ts * 1e3),
      cursor: { drag: { x: false, y: false }, points: { size: 7 } },
      legend: { live: true },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, niceTop(max)] } },
      axes: [
        { stroke: AXIS, font: FONT, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1, size: 4 }, values: xValues, size: 38, space: 70 },
        {
          stroke: AXIS,
          font: FONT,
          grid: { stroke: GRID, width: 1 },
          ticks: { show: false },
          label: d.yLabel,
          labelFont: FONT,
          labelSize: 14,
          labelGap: 0,
          size: 46,
          space: 28,
          values: (u, splits) => splits.map((v) => formatNumber(v)),
        },
      ],
      series: [
        // Without the cursor on the chart, the legend shows each series' total (or maximum).
        { label: d.xLabel ?? (tz === 'utc' ? 'UTC' : 'Local time'), value: (u, v) => (v === null || v === undefined ? '' : d.xFormat ? d.xFormat(v * 1000) : formatTime(v * 1000, tz)) },
        ...d.series.map((s) => ({
          label: s.name,
          show: !this.hidden.has(s.name),
          stroke: s.color,
          width: this.points ? 1 : 1.5,
          fill: this.fill ? `${s.color}1f` : undefined,
          points: this.points ? { show: true, size: 5, fill: s.color } : {},
          spanGaps: false,
          value: (u, v, si, idx) => (idx === null || idx === undefined ? this.legendSummary(u.data[si], unit) : v === null || v === undefined ? '–' : `${formatNumber(v)}${unit}`),
        })),
      ],
      hooks: {
        setSeries: [
          (u, i) => {
            if (i === null || i === 0) return;
            const s = u.series[i];
            if (s.show) this.hidden.delete(s.label);
            else this.hidden.add(s.label);
            this.container.dataset.hidden = [...this.hidden].join(',');
          },
        ],
      },
    };
  }
}

/**
 * Horizontal bars, Grafana's bar gauge: rows of { label, sub, value, title, onclick }.
 */
export function barList(container, rows, { color = '#f2495c', emptyText = 'Nothing in this range' } = {}) {
  if (rows.length === 0) {
    container.replaceChildren(el('p', { class: 'empty' }, emptyText));
    return;
  }
  const max = Math.max(...rows.map((r) => r.value), 1);
  container.replaceChildren(
    el(
      'ol',
      { class: 'bars' },
      rows.map((r) => {
        const bar = el('span', { class: 'bar' });
        bar.style.width = `${(r.value / max) * 100}%`;
        bar.style.background = r.color ?? color;
        const label = r.onclick ? el('button', { class: 'link', type: 'button', title: r.title ?? `Filter the query log by ${r.label}`, onclick: r.onclick }, r.label) : el('span', {}, r.label);
        return el(
          'li',
          {},
          el('span', { class: 'bar-label' }, label, r.sub ? el('span', { class: 'muted' }, ` ${r.sub}`) : null),
          el('span', { class: 'bar-track' }, bar),
          el('span', { class: 'bar-value' }, formatCount(r.value)),
        );
      }),
    ),
  );
}
