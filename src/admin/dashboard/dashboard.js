// The dashboard page: polls the admin API (/api/summary, /api/log, /api/policies, /api/lists) with
// the bearer token from the URL fragment (#token=…) and renders Grafana-style panels. Every string
// from the API is set as textContent, never parsed as HTML.
/* global document, window, location, history, fetch, FormData, URLSearchParams */
import { TimeSeriesChart, barList, clock, el, formatNumber, swatch } from './chart.js';

const POLL_MS = 3000;
const RANGES = { '15m': 15 * 60_000, '1h': 3_600_000, '24h': 86_400_000 };
// Grafana's classic palette, assigned to networks in the order they first appear.
const PALETTE = ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#5794f2', '#b877d9', '#fade2a', '#37872d', '#c4162a'];
const LOG_ROWS = 100;

const $ = (sel) => document.querySelector(sel);
const state = {
  params: new URLSearchParams(location.hash.slice(1)),
  live: true,
  timer: undefined,
  tick: 0,
  colors: new Map(),
  networks: new Set(),
  lists: new Map(),
  policies: [],
  dryRun: new Map(),
  seenRows: undefined,
  busy: false,
  again: false,
};

const range = () => (RANGES[state.params.get('range')] ? state.params.get('range') : '15m');
const token = () => state.params.get('token') ?? '';
const colorOf = (network) => {
  if (!state.colors.has(network)) state.colors.set(network, PALETTE[state.colors.size % PALETTE.length]);
  return state.colors.get(network);
};

function saveHash() {
  history.replaceState(null, '', `#${state.params.toString()}`);
}

class Unauthorized extends Error {}

async function api(path, query = {}) {
  const q = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== ''));
  const res = await fetch(`${path}${q.toString() ? `?${q}` : ''}`, { headers: { authorization: `Bearer ${token()}` }, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized('The admin token was not accepted.');
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ?? `${path}: HTTP ${res.status}`);
  return body;
}

// ---- token --------------------------------------------------------------------------------------

function askToken(message) {
  const dialog = $('#token-dialog');
  const err = $('#token-error');
  err.textContent = message ?? '';
  err.hidden = !message;
  if (!dialog.open) dialog.showModal();
}

$('#token-form').addEventListener('submit', (ev) => {
  const value = new FormData(ev.target).get('token').trim();
  if (!value) return ev.preventDefault();
  state.params.set('token', value);
  saveHash();
  ev.target.reset();
  refresh(true);
});

// ---- panels -------------------------------------------------------------------------------------

function stat(id, value, sub, color) {
  const p = $(`#${id}`);
  const v = p.querySelector('.value');
  v.textContent = value;
  if (color) v.style.color = color;
  if (sub !== undefined) p.querySelector('.sub').textContent = sub;
}

const percent = (r) => `${(r * 100).toFixed(1)}%`;

const charts = {
  queries: new TimeSeriesChart($('#panel-queries .chart')),
  blocked: new TimeSeriesChart($('#panel-blocked .chart'), { emptyText: 'Nothing blocked in this range' }),
  latency: new TimeSeriesChart($('#panel-upstreams .chart'), { height: 140, emptyText: 'Nothing forwarded in this range' }),
};

function renderSummary(s) {
  const t = s.totals;
  const seconds = Math.max((s.range.until - s.range.since) / 1000, 1);
  $('#instance').textContent = s.instance ? `· ${s.instance}` : '';
  stat('stat-queries', formatNumber(t.queries), `${formatNumber(t.queries / seconds)}/s average`, '#5794f2');
  stat('stat-blocked', formatNumber(t.blocked), `${formatNumber(t.blocked / seconds)}/s average`, '#f2495c');
  stat('stat-block-ratio', percent(t.blockRatio), 'of all queries', t.blockRatio > 0.25 ? '#ff780a' : '#f2cc0c');
  stat('stat-cache-ratio', percent(t.cacheHitRatio), `${formatNumber(t.cacheHits)} of the allowed answers`, '#73bf69');
  stat('stat-refused', formatNumber(t.refused), undefined, t.refused > 0 ? '#f2cc0c' : '#73bf69');
  stat('stat-errors', formatNumber(t.errors), undefined, t.errors > 0 ? '#f2495c' : '#73bf69');
  stat('stat-would-block', formatNumber(t.wouldBlock), undefined, '#b877d9');

  const step = s.series.bucketSeconds;
  const perSecond = (values) => values.map((v) => v / step);
  for (const n of s.series.networks) state.networks.add(n.network);
  const base = { start: s.series.start, stepMs: step * 1000, unit: '/s' };
  charts.queries.render({ ...base, series: s.series.networks.map((n) => ({ name: n.network, color: colorOf(n.network), values: perSecond(n.queries) })) });
  charts.blocked.render({
    ...base,
    series: s.series.networks.filter((n) => n.blocked.some((v) => v > 0)).map((n) => ({ name: n.network, color: colorOf(n.network), values: perSecond(n.blocked) })),
  });
  charts.latency.render({ ...base, unit: ' ms', series: s.upstreams.length ? [{ name: 'p95 upstream latency (ms)', color: '#ff780a', values: s.series.upstreamP95Ms, points: true }] : [] });

  barList(
    $('#panel-top-domains .body'),
    s.topBlockedDomains.map((d) => ({ label: d.name, sub: d.list ?? '', value: d.count, onclick: () => setFilter({ domain: d.name, decision: 'blocked' }) })),
  );
  barList(
    $('#panel-top-apps .body'),
    s.topApps.map((a) => {
      const app = state.lists.get(a.list)?.app;
      return { label: app ?? a.list, sub: `${app ? `list ${a.list} · ` : ''}${a.clients} client${a.clients === 1 ? '' : 's'}`, value: a.count };
    }),
    { color: '#ff780a' },
  );
  barList(
    $('#panel-top-clients .body'),
    s.topBlockedClients.map((c) => ({ label: c.client, sub: `${c.network} · ${c.lists.join(', ')}`, value: c.count, onclick: () => setFilter({ client: c.client, decision: 'blocked' }) })),
    { color: '#b877d9' },
  );

  $('#panel-upstreams tbody').replaceChildren(
    ...(s.upstreams.length
      ? s.upstreams.map((u) =>
          el('tr', {}, el('td', {}, u.upstream), el('td', { class: 'num' }, formatNumber(u.queries)), el('td', { class: 'num' }, `${formatNumber(u.avgMs)} ms`), el('td', { class: 'num' }, `${formatNumber(u.p50Ms)} ms`), el('td', { class: 'num' }, `${formatNumber(u.p95Ms)} ms`)),
        )
      : [el('tr', {}, el('td', { colspan: 5, class: 'empty' }, 'Nothing forwarded in this range'))]),
  );
  state.dryRun = new Map(s.dryRun.map((d) => [d.policy, d]));
  renderPolicies();
  renderNetworkOptions();
}

const STATE_COLORS = { active: 'green', 'review-due': 'yellow', 'review-overdue': 'red', scheduled: 'blue', lapsed: 'grey' };

function renderPolicies() {
  const body = $('#panel-policies .body');
  if (state.policies.length === 0) {
    body.replaceChildren(el('p', { class: 'empty' }, 'No policies configured'));
    return;
  }
  const rows = state.policies.map((p) => {
    const review =
      p.reviewInDays === undefined ? '–' : p.reviewInDays < 0 ? `overdue ${-p.reviewInDays} d` : `in ${p.reviewInDays} d${p.reviewBy ? ` (${p.reviewBy})` : ''}`;
    const active = p.exceptions.filter((e) => !e.expired).length;
    const expired = p.exceptions.length - active;
    const dry = state.dryRun.get(p.id);
    return el(
      'tr',
      { dataset: { policy: p.id } },
      el('td', {}, el('div', {}, p.id), el('div', { class: 'muted small' }, p.title ?? '')),
      el('td', {}, el('span', { class: `badge ${STATE_COLORS[p.state] ?? 'grey'}` }, p.state)),
      el('td', {}, el('span', { class: `badge ${p.mode === 'dry-run' ? 'purple' : 'outline'}` }, p.mode)),
      el('td', { class: p.reviewInDays !== undefined && p.reviewInDays < 0 ? 'warn' : '' }, review),
      el('td', {}, `${active} active${expired ? `, ${expired} expired` : ''}`),
      el('td', { class: 'num' }, p.mode === 'dry-run' ? formatNumber(dry?.wouldBlock ?? 0) : '–'),
    );
  });
  body.replaceChildren(
    el(
      'div',
      { class: 'table-wrap' },
      el(
        'table',
        { class: 'table compact' },
        el('thead', {}, el('tr', {}, ['Policy', 'State', 'Mode', 'Review', 'Exceptions'].map((h) => el('th', {}, h)), el('th', { class: 'num', title: 'Queries a dry-run policy would have blocked in this range' }, 'Would block'))),
        el('tbody', {}, rows),
      ),
    ),
  );
}

// ---- query log ----------------------------------------------------------------------------------

const filters = $('#log-filters');

function filterValues() {
  const f = Object.fromEntries(new FormData(filters).entries());
  return { network: f.network, client: f.client.trim(), domain: f.domain.trim(), decision: f.decision };
}

function setFilter(values) {
  for (const [k, v] of Object.entries(values)) filters.elements[k].value = v;
  onFilterChange();
  $('#panel-log').scrollIntoView({ behavior: 'smooth', block: 'start' });
}

function renderNetworkOptions() {
  const select = filters.elements.network;
  const have = new Set([...select.options].map((o) => o.value));
  for (const n of [...state.networks].sort()) if (!have.has(n)) select.append(el('option', { value: n }, n));
}

const rowKey = (e) => `${e.time}|${e.client}|${e.name}|${e.type}|${e.transport}`;

function decisionCell(e) {
  if (e.wouldBlock) return el('td', {}, el('span', { class: 'badge green' }, e.decision), ' ', el('span', { class: 'badge purple' }, 'would block'));
  const color = { allowed: 'green', blocked: 'red', refused: 'yellow', error: 'red', malformed: 'grey' }[e.decision] ?? 'grey';
  return el('td', {}, el('span', { class: `badge ${color}` }, e.decision), e.exception ? el('span', { class: 'badge outline', title: 'An exception let this query through' }, 'exception') : null);
}

function renderLog(page) {
  const keys = new Set(page.events.map(rowKey));
  const rows = page.events.map((e) => {
    const app = e.list ? state.lists.get(e.list)?.app : undefined;
    const listText = [e.list ? `${e.list}${app && app !== e.list ? ` (${app})` : ''}` : '', e.policy ?? ''].filter(Boolean).join(' · ');
    return el(
      'tr',
      { class: state.seenRows && !state.seenRows.has(rowKey(e)) ? 'new' : undefined, dataset: { decision: e.decision } },
      el('td', { class: 'nowrap', title: new Date(e.time).toISOString() }, clock(e.time, true)),
      el('td', {}, e.client),
      el('td', {}, e.network ? el('span', {}, swatch(colorOf(e.network)), e.network) : el('span', { class: 'muted' }, 'none')),
      el('td', { class: 'domain' }, e.name),
      el('td', {}, e.type),
      decisionCell(e),
      el('td', {}, listText || el('span', { class: 'muted' }, '–')),
      el('td', {}, e.cache ? el('span', { class: 'muted' }, 'cache') : (e.upstream ?? '')),
      el('td', { class: 'num' }, formatNumber(e.durationMs)),
    );
  });
  state.seenRows = keys;
  $('#panel-log tbody').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 9, class: 'empty' }, 'No queries match these filters in this range'))]));
  $('#log-total').textContent = `· ${formatNumber(page.total)} matching${page.total > page.events.length ? `, newest ${page.events.length} shown` : ''}`;
}

async function loadLog() {
  renderLog(await api('/api/log', { since: range(), limit: LOG_ROWS, ...filterValues() }));
}

let filterTimer;
function onFilterChange() {
  state.seenRows = undefined;
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => loadLog().catch(showError), 250);
}
filters.addEventListener('input', onFilterChange);
filters.addEventListener('reset', () => setTimeout(onFilterChange));
filters.addEventListener('submit', (ev) => ev.preventDefault());

// ---- refresh loop -------------------------------------------------------------------------------

function showError(err) {
  if (err instanceof Unauthorized) return askToken(err.message);
  const banner = $('#error');
  banner.textContent = `Cannot load data: ${err.message}. Retrying.`;
  banner.hidden = false;
}

async function refresh(full = false) {
  clearTimeout(state.timer);
  if (!token()) return askToken();
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  try {
    if (full || state.tick % 10 === 0) {
      const [lists, policies] = await Promise.all([api('/api/lists'), api('/api/policies')]);
      state.lists = new Map(lists.map((l) => [l.name, l]));
      state.policies = policies;
    }
    const [summary] = await Promise.all([api('/api/summary', { since: range() }), loadLog()]);
    renderSummary(summary);
    $('#error').hidden = true;
    $('#updated').textContent = `updated ${clock(Date.now(), true)}`;
    document.body.dataset.loaded = 'true';
    state.tick++;
  } catch (err) {
    showError(err);
  } finally {
    state.busy = false;
    if (state.again) refresh();
    else if (state.live) state.timer = setTimeout(() => refresh(), POLL_MS);
  }
}

function renderRange() {
  for (const b of document.querySelectorAll('.range button')) b.setAttribute('aria-pressed', String(b.dataset.range === range()));
}

for (const b of document.querySelectorAll('.range button')) {
  b.addEventListener('click', () => {
    state.params.set('range', b.dataset.range);
    saveHash();
    renderRange();
    state.seenRows = undefined;
    refresh();
  });
}

$('#live').addEventListener('click', (ev) => {
  state.live = !state.live;
  ev.target.setAttribute('aria-pressed', String(state.live));
  if (state.live) refresh();
  else clearTimeout(state.timer);
});

document.addEventListener('visibilitychange', () => {
  if (document.hidden) clearTimeout(state.timer);
  else if (state.live) refresh();
});

window.addEventListener('hashchange', () => {
  state.params = new URLSearchParams(location.hash.slice(1));
  renderRange();
  refresh(true);
});

renderRange();
refresh(true);
