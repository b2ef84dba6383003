// Time-series and bar charts for the dashboard, drawn as SVG. Hand-drawn instead of a chart library
// so the package serves every byte itself and there is nothing to keep in step with a CDN build.
// Text from the API only ever goes into textContent.
/* global document, Node, ResizeObserver */

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

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

/** A 1, 2, 2.5 or 5 × 10^n step at or above `v`, so the axis has round labels. */
function niceStep(v) {
  if (v <= 0) return 0.25;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v - 1e-12) return m * p;
  return 10 * p;
}

const axisLabel = (v) => (v >= 1e4 ? formatNumber(v) : String(Number(v.toPrecision(3))));

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

const pad = (n) => String(n).padStart(2, '0');
export function clock(t, seconds = false) {
  const d = new Date(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`;
}

/**
 * A line chart of series over equal time buckets.
 * data: { start, stepMs, unit, series: [{ name, color, values: (number|null)[], points?: boolean }] }
 */
export class TimeSeriesChart {
  constructor(container, { height = 190, emptyText = 'No data in this range' } = {}) {
    this.container = container;
    this.height = height;
    this.emptyText = emptyText;
    this.hover = undefined;
    this.plot = el('div', { class: 'plot' });
    this.tooltip = el('div', { class: 'tooltip', hidden: true });
    this.legend = el('div', { class: 'legend' });
    container.append(this.plot, this.legend);
    this.plot.append(this.tooltip);
    new ResizeObserver(() => this.data && this.render(this.data)).observe(container);
  }

  render(data) {
    this.data = data;
    const width = Math.max(this.plot.clientWidth, 200);
    const height = this.height;
    const m = { left: 44, right: 10, top: 10, bottom: 22 };
    const w = width - m.left - m.right;
    const h = height - m.top - m.bottom;
    const n = Math.max(...data.series.map((s) => s.values.length), 1);
    let max = 0;
    for (const s of data.series) for (const v of s.values) if (v !== null && v > max) max = v;
    const top = niceStep(max / 4) * 4;
    const x = (i) => m.left + (n <= 1 ? 0 : (i / (n - 1)) * w);
    const y = (v) => m.top + h - (v / top) * h;

    const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
    const grid = svg('g', { class: 'axes' });
    for (let k = 0; k <= 4; k++) {
      const v = (top * k) / 4;
      grid.append(svg('line', { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v) }));
      const label = svg('text', { x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end' });
      label.textContent = axisLabel(v);
      grid.append(label);
    }
    const ticks = Math.max(2, Math.min(7, Math.floor(w / 90)));
    for (let k = 0; k <= ticks; k++) {
      const i = Math.round((k / ticks) * (n - 1));
      const label = svg('text', { x: x(i), y: height - 6, 'text-anchor': k === 0 ? 'start' : k === ticks ? 'end' : 'middle' });
      label.textContent = clock(data.start + i * data.stepMs);
      grid.append(label);
    }
    root.append(grid);

    for (const s of data.series) {
      let line = '';
      let area = '';
      let run = [];
      const flush = () => {
        if (run.length === 0) return;
        line += run.map(([i, v], j) => `${j === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('');
        const first = run[0][0];
        const last = run[run.length - 1][0];
        area += `M${x(first).toFixed(1)},${y(0)}` + run.map(([i, v]) => `L${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('') + `L${x(last).toFixed(1)},${y(0)}Z`;
        run = [];
      };
      s.values.forEach((v, i) => (v === null ? flush() : run.push([i, v])));
      flush();
      // Sparse series (latency of the few uncached queries) read better as points; a value between
      // two gaps has no line to be part of, so it is always a point.
      s.values.forEach((v, i) => {
        const alone = (s.values[i - 1] ?? null) === null && (s.values[i + 1] ?? null) === null;
        if (v !== null && (s.points || alone)) root.append(svg('circle', { cx: x(i), cy: y(v), r: 2.5, fill: s.color }));
      });
      if (!s.points) root.append(svg('path', { d: area, fill: s.color, 'fill-opacity': 0.12, stroke: 'none' }));
      root.append(svg('path', { d: line, fill: 'none', stroke: s.color, 'stroke-width': 1.5, 'stroke-linejoin': 'round' }));
    }
    if (data.series.length === 0 || max === 0) {
      const t = svg('text', { x: m.left + w / 2, y: m.top + h / 2, 'text-anchor': 'middle', class: 'empty' });
      t.textContent = this.emptyText;
      root.append(t);
    }
    const cross = svg('line', { class: 'crosshair', y1: m.top, y2: m.top + h, visibility: 'hidden' });
    root.append(cross);
    const overlay = svg('rect', { x: m.left, y: m.top, width: w, height: h, fill: 'transparent' });
    const show = (i) => {
      this.hover = i;
      cross.setAttribute('x1', x(i));
      cross.setAttribute('x2', x(i));
      cross.setAttribute('visibility', 'visible');
      this.tooltip.replaceChildren(
        el('div', { class: 'tt-time' }, clock(data.start + i * data.stepMs, true)),
        ...data.series.map((s) => el('div', { class: 'tt-row' }, swatch(s.color), el('span', {}, s.name), el('b', {}, `${formatNumber(s.values[i] ?? null)}${data.unit ?? ''}`))),
      );
      this.tooltip.hidden = false;
      const left = x(i) + 12;
      this.tooltip.style.left = `${left + 180 > width ? Math.max(0, x(i) - 192) : left}px`;
    };
    overlay.addEventListener('pointermove', (ev) => {
      const r = overlay.getBoundingClientRect();
      const i = Math.round(((ev.clientX - r.left) / r.width) * (n - 1));
      show(Math.min(Math.max(i, 0), n - 1));
    });
    overlay.addEventListener('pointerleave', () => {
      this.hover = undefined;
      cross.setAttribute('visibility', 'hidden');
      this.tooltip.hidden = true;
    });
    root.append(overlay);
    this.plot.querySelector('svg')?.remove();
    this.plot.prepend(root);
    if (this.hover !== undefined && this.hover < n) show(this.hover);

    this.legend.replaceChildren(
      ...data.series.map((s) => {
        const vals = s.values.filter((v) => v !== null);
        const mean = vals.length ? vals.reduce((a, v) => a + v, 0) / vals.length : null;
        const peak = vals.length ? Math.max(...vals) : null;
        return el('span', { class: 'legend-item' }, swatch(s.color), el('span', {}, s.name), el('span', { class: 'muted' }, ` mean ${formatNumber(mean)} max ${formatNumber(peak)}`));
      }),
    );
  }
}

export function swatch(color) {
  const s = el('i', { class: 'swatch' });
  s.style.background = color;
  return s;
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
        bar.style.background = color;
        const label = r.onclick
          ? el('button', { class: 'link', type: 'button', title: r.title ?? `Filter the query log by ${r.label}`, onclick: r.onclick }, r.label)
          : el('span', {}, r.label);
        return el('li', {}, el('span', { class: 'bar-label' }, label, r.sub ? el('span', { class: 'muted' }, ` ${r.sub}`) : null), el('span', { class: 'bar-track' }, bar), el('span', { class: 'bar-value' }, formatNumber(r.value)));
      }),
    ),
  );
}
