// The dashboard page: polls the admin API (/api/summary, /api/log, /api/report/devices,
// /api/report/trend, /api/policies, /api/lists) with the bearer token from the URL fragment
// (#token=…) and renders Grafana-style panels. Every range is read from the query-log store on the
// server; when the store does not hold all of a range (`covers.complete` false) a banner says what
// is missing. Every string from the API is set as textContent, never parsed as HTML.
/* global document, window, location, history, FormData, localStorage */
import { TimeChart, barList, colorOf, el, formatCount, formatNumber, formatStep, formatTime, swatch } from './chart.js';

const POLL_MS = 3000;
const RANGES = { '15m': 15 * 60_000, '1h': 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 };
const LOG_ROWS = 100;
const DEVICE_ROWS = 200;
const DAY_MS = 86_400_000;
/** The compliance trend: 26 weeks back, per ISO week (Monday, UTC) from the daily rollup. */
const TREND_DAYS = 182;
const TZ_KEY = 'sluice.dashboard.timezone';

const $ = (sel) => document.querySelector(sel);

function storedTz() {
  try {
    return localStorage.getItem(TZ_KEY) === 'local' ? 'local' : 'utc';
  } catch {
    return 'utc';
  }
}

const state = {
  params: new URLSearchParams(location.hash.slice(1)),
  live: true,
  timer: undefined,
  tick: 0,
  tz: storedTz(),
  networks: new Set(),
  lists: new Map(),
  policies: [],
  dryRun: new Map(),
  seenRows: undefined,
  summary: undefined,
  logPage: undefined,
  devices: undefined,
  trend: undefined,
  complianceStale: true,
  busy: false,
  again: false,
};

const range = () => (RANGES[state.params.get('range')] ? state.params.get('range') : '15m');
const policy = () => state.params.get('policy') ?? '';
const token = () => state.params.get('token') ?? '';
const appName = (list) => state.lists.get(list)?.app ?? list;
const time = (t, opts) => formatTime(t, state.tz, opts);

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
  queries: new TimeChart($('#panel-queries .chart')),
  blocked: new TimeChart($('#panel-blocked .chart'), { emptyText: 'Nothing blocked in this range' }),
  latency: new TimeChart($('#panel-upstreams .chart'), { height: 150, points: true, fill: false, summary: 'max', emptyText: 'Nothing forwarded in this range' }),
  trend: new TimeChart($('#panel-trend .chart'), { height: 210, points: true, fill: false, emptyText: 'Nothing blocked by a policy in these 26 weeks' }),
};

/** What the store holds of the range: a warning banner when something is missing, never a silent cut. */
function renderCovers(covers) {
  const warn = $('#covers');
  const info = $('#covers-info');
  if (!covers) {
    warn.hidden = true;
    info.hidden = true;
    return;
  }
  if (!covers.complete) {
    const notes = covers.notes.length ? covers.notes : [`the ${covers.source} log does not hold all of this range`];
    warn.replaceChildren(
      el('strong', {}, 'Not all of this range is in the query log: '),
      el(
        'ul',
        {},
        notes.map((n) => el('li', {}, n)),
      ),
    );
    warn.hidden = false;
    info.hidden = true;
  } else {
    warn.hidden = true;
    info.textContent = covers.notes.join('; ');
    info.hidden = covers.notes.length === 0;
  }
  $('#source').textContent = `· ${covers.source === 'memory' ? 'memory (newest events only)' : `${covers.source} store`}`;
}

function renderSummary(s) {
  const t = s.totals;
  const seconds = Math.max((s.range.until - s.range.since) / 1000, 1);
  $('#instance').textContent = s.instance ? `· ${s.instance}` : '';
  // Beyond two days a rate per second is 0.00: per day instead.
  const rate = (n) => (seconds >= 2 * 86400 ? `${formatNumber(n / (seconds / 86400), 1)}/day average` : `${formatNumber(n / seconds)}/s average`);
  stat('stat-queries', formatCount(t.queries), rate(t.queries), '#5794f2');
  stat('stat-blocked', formatCount(t.blocked), rate(t.blocked), '#f2495c');
  stat('stat-block-ratio', percent(t.blockRatio), 'of all queries', t.blockRatio > 0.25 ? '#ff780a' : '#f2cc0c');
  stat('stat-cache-ratio', percent(t.cacheHitRatio), `${formatCount(t.cacheHits)} of the allowed answers`, '#73bf69');
  stat('stat-refused', formatCount(t.refused), undefined, t.refused > 0 ? '#f2cc0c' : '#73bf69');
  stat('stat-errors', formatCount(t.errors), undefined, t.errors > 0 ? '#f2495c' : '#73bf69');
  stat('stat-would-block', formatCount(t.wouldBlock), undefined, '#b877d9');
  renderCovers(s.covers);

  // Counts per bucket (not rates): with 6-hour buckets over 30 days "12 per 6 h" reads better
  // than 0.0006/s. The bucket is in the panel title and on the y axis.
  const step = s.series.bucketSeconds;
  const per = formatStep(step);
  const x = s.series.upstreamP95Ms.map((_, i) => (s.series.start + i * step * 1000) / 1000);
  for (const n of s.series.networks) state.networks.add(n.network);
  for (const u of document.querySelectorAll('#panel-queries .unit, #panel-blocked .unit')) u.textContent = `per ${per}`;
  const base = { x, tz: state.tz };
  charts.queries.render({ ...base, yLabel: `queries / ${per}`, series: s.series.networks.map((n) => ({ name: n.network, color: colorOf(n.network), values: n.queries })) });
  charts.blocked.render({
    ...base,
    yLabel: `blocked / ${per}`,
    series: s.series.networks.filter((n) => n.blocked.some((v) => v > 0)).map((n) => ({ name: n.network, color: colorOf(n.network), values: n.blocked })),
  });
  charts.latency.render({ ...base, yLabel: 'ms', unit: ' ms', series: s.upstreams.length ? [{ name: 'p95 upstream latency', color: '#ff780a', values: s.series.upstreamP95Ms }] : [] });

  barList(
    $('#panel-top-domains .body'),
    s.topBlockedDomains.map((d) => ({ label: d.name, sub: d.list ?? '', value: d.count, onclick: () => setFilter({ domain: d.name, decision: 'blocked' }) })),
  );
  barList(
    $('#panel-top-apps .body'),
    s.topApps.map((a) => {
      const app = state.lists.get(a.list)?.app;
      return { label: app ?? a.list, sub: `${app ? `list ${a.list} · ` : ''}${a.clients} client${a.clients === 1 ? '' : 's'}`, value: a.count, color: colorOf(a.list) };
    }),
    { color: '#ff780a' },
  );
  barList(
    $('#panel-top-clients .body'),
    s.topBlockedClients.map((c) => ({
      label: c.client,
      sub: `${c.clientName ? `${c.clientName} · ` : ''}${c.network} · ${c.lists.join(', ')}`,
      value: c.count,
      color: colorOf(c.network),
      onclick: () => setFilter({ client: c.client, decision: 'blocked' }),
    })),
    { color: '#b877d9' },
  );

  $('#upstreams tbody').replaceChildren(
    ...(s.upstreams.length
      ? s.upstreams.map((u) =>
          el(
            'tr',
            {},
            el('td', {}, u.upstream),
            el('td', { class: 'num' }, formatCount(u.queries)),
            el('td', { class: 'num' }, `${formatNumber(u.avgMs)} ms`),
            el('td', { class: 'num' }, `${formatNumber(u.p50Ms)} ms`),
            el('td', { class: 'num' }, `${formatNumber(u.p95Ms)} ms`),
          ),
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
  renderPolicyOptions();
  if (state.policies.length === 0) {
    body.replaceChildren(el('p', { class: 'empty' }, 'No policies configured'));
    return;
  }
  const rows = state.policies.map((p) => {
    const review = p.reviewInDays === undefined ? '–' : p.reviewInDays < 0 ? `overdue ${-p.reviewInDays} d` : `in ${p.reviewInDays} d${p.reviewBy ? ` (${p.reviewBy})` : ''}`;
    const active = p.exceptions.filter((e) => !e.expired).length;
    const expired = p.exceptions.length - active;
    const dry = state.dryRun.get(p.id);
    return el(
      'tr',
      { dataset: { policy: p.id } },
      el('td', {}, el('div', {}, p.id), el('div', { class: 'muted small' }, p.title ?? '')),
      el(
        'td',
        {},
        el('span', { class: `badge ${STATE_COLORS[p.state] ?? 'grey'}` }, p.state),
        // `sluice disable` in force: shown until it ends, with its scope and reason
        ...(p.disabled ?? []).map((d) => el('div', { class: 'small warn', title: `${d.scope}: ${d.reason} (${d.by})` }, `disabled until ${d.until.slice(0, 16).replace('T', ' ')} UTC (${d.scope})`)),
      ),
      el('td', {}, el('span', { class: `badge ${p.mode === 'dry-run' ? 'purple' : 'outline'}` }, p.mode)),
      el('td', { class: p.reviewInDays !== undefined && p.reviewInDays < 0 ? 'warn' : '' }, review),
      el('td', {}, `${active} active${expired ? `, ${expired} expired` : ''}`),
      el('td', { class: 'num' }, p.mode === 'dry-run' ? formatCount(dry?.wouldBlock ?? 0) : '–'),
    );
  });
  body.replaceChildren(
    el(
      'div',
      { class: 'table-wrap' },
      el(
        'table',
        { class: 'table compact' },
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            ['Policy', 'State', 'Mode', 'Review', 'Exceptions'].map((h) => el('th', {}, h)),
            el('th', { class: 'num', title: 'Queries a dry-run policy would have blocked in this range' }, 'Would block'),
          ),
        ),
        el('tbody', {}, rows),
      ),
    ),
  );
}

// ---- compliance ---------------------------------------------------------------------------------

function renderPolicyOptions() {
  const select = $('#policy-select');
  const want = ['', ...state.policies.map((p) => p.id)];
  const have = [...select.options].map((o) => o.value);
  if (want.join('\n') !== have.join('\n')) {
    select.replaceChildren(
      el('option', { value: '' }, 'All policies'),
      ...state.policies.map((p) => el('option', { value: p.id, title: p.title ?? '' }, `${p.id}${p.mode === 'dry-run' ? ' (dry-run)' : ''}`)),
    );
  }
  select.value = want.includes(policy()) ? policy() : '';
}

async function loadCompliance() {
  const [devices, trend] = await Promise.all([api('/api/report/devices', { since: range(), policy: policy() }), api('/api/report/trend', { by: 'week', since: `${TREND_DAYS}d`, policy: policy() })]);
  state.devices = devices;
  state.trend = trend;
  state.complianceStale = false;
}

const mondayUtc = (t) => {
  const day = Math.floor(t / DAY_MS) * DAY_MS;
  return day - ((new Date(day).getUTCDay() + 6) % 7) * DAY_MS;
};

function renderCompliance() {
  if (!state.devices) return;
  const rows = state.devices.rows;
  // Per app (list): devices and blocked queries, busiest first; the rows follow that order.
  const apps = new Map();
  for (const r of rows) {
    let a = apps.get(r.list);
    if (!a) apps.set(r.list, (a = { devices: new Set(), count: 0 }));
    a.devices.add(`${r.network}\u0000${r.client}`);
    a.count += r.count;
  }
  const order = [...apps].sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0])).map(([list]) => list);
  const rank = new Map(order.map((l, i) => [l, i]));
  const sorted = [...rows].sort((a, b) => rank.get(a.list) - rank.get(b.list) || b.lastSeen - a.lastSeen || a.client.localeCompare(b.client));
  const devices = new Set(rows.map((r) => `${r.network}\u0000${r.client}`)).size;
  const total = rows.reduce((n, r) => n + r.count, 0);
  $('#compliance-total').textContent = `· ${formatCount(devices)} device${devices === 1 ? '' : 's'}, ${formatCount(total)} blocked quer${total === 1 ? 'y' : 'ies'}`;
  $('#compliance-apps').replaceChildren(
    ...order.map((list) => {
      const a = apps.get(list);
      return el(
        'span',
        { class: 'app-chip', dataset: { list } },
        swatch(colorOf(list)),
        el('b', {}, appName(list)),
        el('span', { class: 'muted' }, ` ${a.devices.size} device${a.devices.size === 1 ? '' : 's'} · ${formatCount(a.count)} blocked`),
      );
    }),
  );
  const shown = sorted.slice(0, DEVICE_ROWS);
  const body = shown.map((r) => {
    const app = appName(r.list);
    const names = r.names.slice(0, 3).join(', ') + (r.names.length > 3 ? ` +${r.names.length - 3}` : '');
    return el(
      'tr',
      { dataset: { client: r.client, list: r.list, network: r.network } },
      el('td', { class: 'nowrap app' }, swatch(colorOf(r.list)), app, app !== r.list ? el('span', { class: 'muted' }, ` ${r.list}`) : null),
      el('td', { class: 'nowrap client' }, r.client, clientName(r)),
      el('td', { class: 'nowrap net' }, swatch(colorOf(r.network)), r.network),
      el('td', { class: 'nowrap policy' }, r.policy),
      el('td', { class: 'num count', 'data-unit': ' blocked' }, formatCount(r.count)),
      el('td', { class: 'nowrap when first', 'data-label': 'first ', title: new Date(r.firstSeen).toISOString() }, time(r.firstSeen)),
      el('td', { class: 'nowrap when last', 'data-label': 'last ', title: new Date(r.lastSeen).toISOString() }, time(r.lastSeen)),
      el('td', { class: 'names', title: r.names.join('\n') }, names),
    );
  });
  if (sorted.length > shown.length) body.push(el('tr', {}, el('td', { colspan: 8, class: 'empty' }, `${sorted.length - shown.length} more: sluice report devices lists them all`)));
  $('#devices tbody').replaceChildren(...(body.length ? body : [el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'No device was blocked by a policy in this range'))]));
  renderTrend();
}

function renderTrend() {
  if (!state.trend) return;
  const until = state.summary?.range.until ?? Date.now();
  const weeks = [];
  for (let w = mondayUtc(until - TREND_DAYS * DAY_MS); w <= until; w += 7 * DAY_MS) weeks.push(w);
  const perList = new Map();
  for (const r of state.trend.rows) {
    let m = perList.get(r.list);
    if (!m) perList.set(r.list, (m = new Map()));
    m.set(r.period, (m.get(r.period) ?? 0) + r.blocked);
  }
  const totals = (m) => [...m.values()].reduce((a, v) => a + v, 0);
  const lists = [...perList].sort((a, b) => totals(b[1]) - totals(a[1]) || a[0].localeCompare(b[0]));
  const names = new Map();
  for (const [list] of lists) names.set(list, lists.some(([other]) => other !== list && appName(other) === appName(list)) ? list : appName(list));
  charts.trend.render({
    x: weeks.map((w) => w / 1000),
    // Weeks are UTC calendar weeks whatever the time zone shown.
    tz: 'utc',
    xLabel: 'Week of',
    xFormat: (t) => formatTime(t, 'utc').slice(0, 10),
    yLabel: 'blocked / week',
    series: lists.map(([list, m]) => ({ name: names.get(list), color: colorOf(list), values: weeks.map((w) => m.get(new Date(w).toISOString().slice(0, 10)) ?? 0) })),
  });
}

$('#policy-select').addEventListener('change', (ev) => {
  if (ev.target.value) state.params.set('policy', ev.target.value);
  else state.params.delete('policy');
  saveHash();
  state.complianceStale = true;
  refresh();
});

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

/** The name `client_names` gives the client (the API adds `clientName`), under its address. */
const clientName = (row) => (row.clientName ? el('div', { class: 'muted small client-name' }, row.clientName) : null);

const rowKey = (e) => `${e.time}|${e.client}|${e.name}|${e.type}|${e.transport}`;

function decisionCell(e) {
  if (e.wouldBlock) return el('td', { class: 'decision' }, el('span', { class: 'badge green' }, e.decision), ' ', el('span', { class: 'badge purple' }, 'would block'));
  const color = { allowed: 'green', blocked: 'red', refused: 'yellow', error: 'red', malformed: 'grey' }[e.decision] ?? 'grey';
  return el(
    'td',
    { class: 'decision' },
    el('span', { class: `badge ${color}` }, e.decision),
    e.exception ? el('span', { class: 'badge outline', title: 'An exception let this query through' }, 'exception') : null,
  );
}

function renderLog(page, { flash = true } = {}) {
  state.logPage = page;
  const keys = new Set(page.events.map(rowKey));
  // Beyond a day the time alone would be ambiguous.
  const withDate = RANGES[range()] > RANGES['24h'];
  const rows = page.events.map((e) => {
    const app = e.list ? state.lists.get(e.list)?.app : undefined;
    const listText = [e.list ? `${e.list}${app && app !== e.list ? ` (${app})` : ''}` : '', e.policy ?? ''].filter(Boolean).join(' · ');
    return el(
      'tr',
      { class: flash && state.seenRows && !state.seenRows.has(rowKey(e)) ? 'new' : undefined, dataset: { decision: e.decision } },
      el('td', { class: 'nowrap when', title: new Date(e.time).toISOString() }, time(e.time, { date: withDate, seconds: true })),
      el('td', { class: 'client' }, e.client, clientName(e)),
      el('td', { class: 'net' }, e.network ? el('span', {}, swatch(colorOf(e.network)), e.network) : el('span', { class: 'muted' }, 'none')),
      el('td', { class: 'domain' }, e.name),
      el('td', { class: 'type' }, e.type),
      decisionCell(e),
      el('td', { class: 'why' }, listText || el('span', { class: 'muted' }, '–')),
      el('td', { class: 'upstream' }, e.cache ? el('span', { class: 'muted' }, 'cache') : (e.upstream ?? '')),
      el('td', { class: 'num ms', 'data-unit': ' ms' }, formatNumber(e.durationMs)),
    );
  });
  state.seenRows = keys;
  $('#panel-log table.log tbody').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 9, class: 'empty' }, 'No queries match these filters in this range'))]));
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
    const compliance = full || state.complianceStale || state.tick % 10 === 0;
    const [summary] = await Promise.all([api('/api/summary', { since: range() }), loadLog(), compliance ? loadCompliance() : undefined]);
    state.summary = summary;
    renderSummary(summary);
    renderCompliance();
    $('#error').hidden = true;
    $('#updated').textContent = `updated ${time(Date.now(), { date: false, seconds: true })}`;
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

function renderTz() {
  for (const b of document.querySelectorAll('.tz button')) b.setAttribute('aria-pressed', String(b.dataset.tz === state.tz));
  const zone = state.tz === 'utc' ? 'UTC' : 'local';
  for (const th of document.querySelectorAll('th.when')) {
    th.dataset.label ??= th.textContent;
    th.textContent = `${th.dataset.label} (${zone})`;
  }
  document.body.dataset.tz = state.tz;
}

for (const b of document.querySelectorAll('.range button')) {
  b.addEventListener('click', () => {
    state.params.set('range', b.dataset.range);
    saveHash();
    renderRange();
    state.seenRows = undefined;
    state.complianceStale = true;
    refresh();
  });
}

for (const b of document.querySelectorAll('.tz button')) {
  b.addEventListener('click', () => {
    state.tz = b.dataset.tz;
    try {
      localStorage.setItem(TZ_KEY, state.tz);
    } catch {
      // storage disabled: the choice lasts until the page is closed
    }
    renderTz();
    // Everything shown again from what was loaded, in the other zone.
    if (state.summary) renderSummary(state.summary);
    if (state.logPage) renderLog(state.logPage, { flash: false });
    renderCompliance();
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
  state.complianceStale = true;
  refresh(true);
});

renderRange();
renderTz();
refresh(true);
