// Prometheus metrics (prom-client). Per-query counting stays on the hot path as plain integer
// increments in a Map; prom-client reads them at scrape time through collect(), so a query never
// pays for label hashing. With several workers the primary aggregates the workers' registries.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as PromClient from 'prom-client';
import type { LoadedLists } from '../lists/list-loader.js';
import { readCachedMeta, remoteListFailures } from '../lists/remote.js';
import type { RequestContext } from '../pipeline/context.js';
import type { Decision } from '../policy/policy-engine.js';
import type { Resolver } from '../pipeline/resolver.js';
import { policyState } from '../policy/policy.js';
import type { QueryLogBuffer } from '../querylog/buffer.js';
import type { StoreHealth } from '../querylog/store/store.js';
import { ANSWER_RTT_BOUNDS_MS, type UpstreamHealth } from '../upstream/upstream-pool.js';

// Bounded label values: any other query type is counted as OTHER. Counts live in one small array
// per network and profile, indexed by outcome and type, so the hot path does no string work.
const TYPE_LABELS = ['A', 'AAAA', 'HTTPS', 'SVCB', 'CNAME', 'MX', 'TXT', 'NS', 'PTR', 'SRV', 'SOA', 'ANY', 'OTHER'];
const TYPE_INDEX = new Map<number, number>([1, 28, 65, 64, 5, 15, 16, 2, 12, 33, 6, 255].map((t, i) => [t, i]));
const OUTCOMES = ['allowed', 'blocked', 'refused', 'error', 'malformed'] as const;
const OUTCOME_INDEX: Record<string, number> = { allowed: 0, blocked: 1, refused: 2, error: 3, malformed: 4 };
const CELLS = OUTCOMES.length * TYPE_LABELS.length;
type BlockedDecision = Extract<Decision, { kind: 'blocked' }>;

// prom-client is loaded when metrics are first asked for (a scrape, or a worker's registry handed
// to the primary): the hot path counts without it, and loading it cost ~50 ms of every start.
let promClient: typeof PromClient | undefined;
export const loadPromClient = (): typeof PromClient => (promClient ??= createRequire(import.meta.url)('prom-client') as typeof PromClient);

export interface MetricsSources {
  resolver: () => Resolver;
  buffer: () => QueryLogBuffer | undefined;
  listSizes: () => Map<string, number>;
  /** The lists in force, with the url lists still waiting for their first download: freshness and download failures. */
  lists?: () => LoadedLists;
  /** Local lists: whether the file on disk is refused now (the last good state serves), and refusals so far. */
  listRefusals?: () => { list: string; refused: boolean; total: number }[];
  now: () => number;
  tcpConnections?: () => number;
  /** Open connections of the DNS-over-TLS and DNS-over-HTTPS listeners. */
  encryptedConnections?: () => { dot: number; doh: number };
  /** Batched UDP sockets: [answers the kernel would not take, datagrams too long for a slot]. */
  udpDrops?: () => [number, number];
  /** Events the sinks of the log's owner refused, per sink (the buffer hands them all to the owner). */
  ownerDrops?: () => Map<string, number>;
  /** The query-log store of the process that owns the log (undefined: none, or a worker). */
  store?: () => StoreHealth | undefined;
  /** Shared (Redis) mode status: { mode, redis, diverged, version, droppedEvents }. */
  shared?: () => Record<string, unknown>;
}

export class QueryMetrics {
  private built: PromClient.Registry | undefined;
  private readonly counts = new Map<string, Float64Array>();
  // sluice_blocked_total: network name → list → policy id ('' for a profile's own block) → count,
  // keyed by names the config holds, so a blocked query builds no key string. In front of it, the
  // count of each decision object: the engine builds one per rule and network and hands it to every
  // name under that rule, so one identity lookup finds the count: a blocked observe() costs ~15 ns
  // more than without this metric, against ~50 ns through the three maps (bench/metrics-observe.mjs).
  // Weak, because decisions are dropped at every new instant and a CNAME block is a fresh copy per
  // query.
  private readonly blocked = new Map<string, Map<string, Map<string, { n: number }>>>();
  private readonly blockedByDecision = new WeakMap<BlockedDecision, { network: string; cell: { n: number } }>();
  private readonly duration = new CountingHistogram(
    'sluice_query_duration_seconds',
    'Time from receiving a query to having its answer.',
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );

  constructor(private readonly src: MetricsSources) {}

  /** The prom-client registry, made on first use. */
  get registry(): PromClient.Registry {
    return (this.built ??= this.build());
  }

  private build(): PromClient.Registry {
    const client = loadPromClient();
    const src = this.src;
    const r = new client.Registry();
    const counts = this.counts;
    new client.Counter({
      name: 'sluice_queries_total',
      help: 'Queries answered, by network, profile, decision and query type.',
      labelNames: ['network', 'profile', 'decision', 'type'],
      registers: [r],
      collect() {
        this.reset();
        for (const [k, cells] of counts) {
          const [network, profile] = k.split('|');
          for (let i = 0; i < CELLS; i++) {
            const v = cells[i]!;
            if (v > 0) this.inc({ network: network!, profile: profile!, decision: OUTCOMES[Math.floor(i / TYPE_LABELS.length)]!, type: TYPE_LABELS[i % TYPE_LABELS.length]! }, v);
          }
        }
      },
    });
    const blocked = this.blocked;
    new client.Counter({
      name: 'sluice_blocked_total',
      help: 'Blocked queries, by network, policy and list (one list per app with the catalog). policy is "" when the network\'s profile blocked the list itself, without a policy.',
      labelNames: ['network', 'policy', 'list'],
      registers: [r],
      collect() {
        this.reset();
        for (const [network, byList] of blocked) {
          for (const [list, byPolicy] of byList) for (const [policy, cell] of byPolicy) this.inc({ network, policy, list }, cell.n);
        }
      },
    });
    r.registerMetric(this.duration as unknown as PromClient.Metric);
    // Counted by the upstream pool (per exchange, coalesced queries and prefetches once), read here.
    r.registerMetric(
      new UpstreamRttHistogram(
        'sluice_upstream_duration_seconds',
        'Round trip of the attempt whose answer was used, from sending it to the reply, by upstream (earlier attempts that timed out are not in it).',
        () => src.resolver().upstreamHealth,
      ) as unknown as PromClient.Metric,
    );
    registerBuildInfo(r);
    registerRuntimeMetrics(r);
    // With several workers the primary adds the workers' values up ('sum'); facts every worker
    // holds the same copy of (list sizes, policy states) are taken once ('first').
    const gauge = (name: string, help: string, read: (g: PromClient.Gauge) => void, labelNames: string[] = [], aggregator: 'sum' | 'first' | 'min' | 'max' = 'first') =>
      new client.Gauge({
        name,
        help,
        labelNames,
        aggregator,
        registers: [r],
        collect() {
          read(this);
        },
      });
    const counter = (name: string, help: string, read: () => number) =>
      new client.Counter({
        name,
        help,
        registers: [r],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const res = () => src.resolver();
    counter('sluice_cache_hits_total', 'Answers served from the cache.', () => res().cache.hits);
    counter('sluice_cache_misses_total', 'Allowed queries not in the cache.', () => res().cache.misses);
    gauge('sluice_cache_entries', 'Answers in the cache.', (g) => g.set(res().cache.size), [], 'sum');
    new client.Counter({
      name: 'sluice_upstream_errors_total',
      help: 'Forwarded queries that got no usable answer (timeouts, invalid replies) or only SERVFAIL/REFUSED/FORMERR/NOTIMP, by the upstream whose answer it was or that was asked last; upstream="none" when every upstream was backed off.',
      labelNames: ['upstream'],
      registers: [r],
      collect() {
        this.reset();
        let attributed = 0;
        for (const [upstream, h] of res().upstreamHealth) {
          attributed += h.errors;
          this.inc({ upstream }, h.errors);
        }
        const none = res().upstreamErrors - attributed;
        if (none > 0) this.inc({ upstream: 'none' }, none);
      },
    });
    counter('sluice_malformed_total', 'Malformed messages (answered FORMERR/NOTIMP/BADVERS or dropped).', () => res().counters.malformed);
    counter('sluice_dropped_total', 'Messages dropped without an answer.', () => res().counters.dropped);
    counter('sluice_truncated_total', 'UDP answers sent truncated (TC) because they exceeded the client buffer.', () => res().counters.truncated);
    counter('sluice_rate_limited_total', 'UDP queries over their client rate limit (dropped or answered TC).', () => res().counters.rateLimited);
    gauge('sluice_rate_limit_clients', 'Clients tracked by the rate limiter (bounded by hardening.rate_limit_clients).', (g) => g.set(res().limiter.size), [], 'sum');
    counter('sluice_cname_blocked_total', 'Allowed names blocked because their CNAME chain reached a blocked name.', () => res().counters.cnameBlocked);
    counter('sluice_rebinding_filtered_total', 'Answers emptied by DNS rebinding protection.', () => res().counters.rebindingFiltered);
    counter('sluice_prefetches_total', 'Cached answers refreshed in the background in the last 10 % of their TTL (cache.prefetch).', () => res().counters.prefetched);
    const perUpstream = (name: string, help: string, labelNames: string[], read: (c: PromClient.Counter) => void) =>
      new client.Counter({
        name,
        help,
        labelNames,
        registers: [r],
        collect() {
          this.reset();
          read(this);
        },
      });
    perUpstream(
      'sluice_upstream_invalid_replies_total',
      'Upstream replies rejected before use (not a response, malformed, compression loop, counts, OPT, rcode), by upstream and reason.',
      ['upstream', 'reason'],
      (c) => {
        for (const [upstream, h] of res().upstreamHealth) for (const [reason, n] of h.invalid) c.inc({ upstream, reason }, n);
      },
    );
    perUpstream(
      'sluice_upstream_connect_failures_total',
      'DoT/DoH upstream connections that could not be made (tls-name, pin, certificate, ca-file, refused, timeout, tls, http, network) or were lost with queries in flight (closed), by upstream and reason.',
      ['upstream', 'reason'],
      (c) => {
        for (const [upstream, h] of res().upstreamHealth) for (const [reason, n] of h.connectFailures) c.inc({ upstream, reason }, n);
      },
    );
    perUpstream('sluice_upstream_retries_total', 'Attempts sent again to an upstream already asked for the same query (it was slow or lost the query).', ['upstream'], (c) => {
      for (const [upstream, h] of res().upstreamHealth) if (h.retries > 0) c.inc({ upstream }, h.retries);
    });
    gauge(
      'sluice_upstream_srtt_seconds',
      'Smoothed round-trip time of each upstream (its timeout is this plus four times the variance).',
      (g) => {
        g.reset();
        for (const [upstream, h] of res().upstreamHealth) if (!Number.isNaN(h.srtt)) g.set({ upstream }, h.srtt / 1000);
      },
      ['upstream'],
    );
    gauge(
      'sluice_upstream_backed_off',
      '1 while an upstream is skipped after failing (probed by one query at a time), else 0.',
      (g) => {
        g.reset();
        for (const [upstream, h] of res().upstreamHealth) g.set({ upstream }, h.downUntil > 0 ? 1 : 0);
      },
      ['upstream'],
    );
    counter('sluice_stale_answers_total', 'Answers served stale from the cache because no upstream answered (RFC 8767).', () => res().counters.stale);
    gauge('sluice_tcp_connections', 'Open DNS-over-TCP connections (bounded by tcp.max_connections).', (g) => g.set(src.tcpConnections?.() ?? 0), [], 'sum');
    gauge('sluice_dot_connections', 'Open DNS-over-TLS connections (bounded by dot.max_connections).', (g) => g.set(src.encryptedConnections?.().dot ?? 0), [], 'sum');
    gauge('sluice_doh_connections', 'Open DNS-over-HTTPS connections, HTTP/2 and HTTP/1.1 (bounded by doh.max_connections).', (g) => g.set(src.encryptedConnections?.().doh ?? 0), [], 'sum');
    counter('sluice_udp_send_errors_total', 'UDP answers the kernel would not take (send buffer full); the client retries.', () => src.udpDrops?.()[0] ?? 0);
    counter('sluice_udp_oversized_total', 'UDP datagrams longer than 16 KiB, dropped unread (no DNS query is that long).', () => src.udpDrops?.()[1] ?? 0);
    counter('sluice_servfail_total', 'Queries answered SERVFAIL because no upstream answered.', () => res().counters.servfail);
    gauge(
      'sluice_list_entries',
      'Rules per list.',
      (g) => {
        g.reset();
        for (const [list, n] of src.listSizes()) g.set({ list }, n);
      },
      ['list'],
    );
    gauge(
      'sluice_list_refused',
      '1 while a local list file is refused (empty, garbage, or lost more than half of its entries) and its last good state is served instead, else 0.',
      (g) => {
        g.reset();
        for (const l of src.listRefusals?.() ?? []) g.set({ list: l.list }, l.refused ? 1 : 0);
      },
      ['list'],
    );
    // Every worker reads the same copies: the newest ('max') is the list's.
    gauge(
      'sluice_list_last_update_timestamp_seconds',
      'When a list was last brought up to date, as a Unix time: a url list, the last download that succeeded (new content, not modified, or unchanged); a file list, the file its rules in force came from (its modification time). Absent for a url list not downloaded yet.',
      (g) => {
        g.reset();
        for (const l of src.lists?.().lists ?? []) {
          const checked = l.def.url !== undefined ? readCachedMeta(dirname(l.def.file), l.def.name)?.checkedAt : undefined;
          const at = checked !== undefined ? Date.parse(checked) : l.updated?.getTime();
          if (at !== undefined && Number.isFinite(at)) g.set({ list: l.def.name }, at / 1000);
        }
      },
      ['list'],
      'max',
    );
    // Only one worker downloads (remote-refresher.ts): the sum is its count. Each url list has a
    // series from the start (0), so that increase() sees its first failure.
    new client.Counter({
      name: 'sluice_list_download_failures_total',
      help: 'Downloads of a url list that failed (network, HTTP status, timeout) or were refused (empty, garbage, truncated, oversized, losing more than half of the list); the last good copy keeps serving.',
      labelNames: ['list'],
      registers: [r],
      collect() {
        this.reset();
        const lists = src.lists?.();
        if (!lists) return;
        const failures = remoteListFailures();
        for (const def of [...lists.lists.map((l) => l.def), ...lists.pendingRemote]) {
          if (def.url !== undefined) this.inc({ list: def.name }, failures.get(def.name) ?? 0);
        }
      },
    });
    // Every worker refuses the same file: 'max', not the sum, is the number of refusals.
    new client.Counter({
      name: 'sluice_list_refused_total',
      help: 'Contents of a local list file refused since the start (each refused content counts once).',
      labelNames: ['list'],
      aggregator: 'max',
      registers: [r],
      collect() {
        this.reset();
        for (const l of src.listRefusals?.() ?? []) this.inc({ list: l.list }, l.total);
      },
    });
    // A counter: the running totals only grow (a gauge holding them broke rate() and promtool's check).
    new client.Counter({
      name: 'sluice_querylog_dropped_events_total',
      help: 'Query log events dropped because the buffer or a sink could not keep up, by stage (buffer, or a sink).',
      labelNames: ['stage'],
      aggregator: 'sum',
      registers: [r],
      collect() {
        this.reset();
        const b = src.buffer();
        if (!b) return;
        this.inc({ stage: 'buffer' }, b.dropped);
        for (const [sink, n] of b.sinkDropped) this.inc({ stage: sink }, n);
        for (const [sink, n] of src.ownerDrops?.() ?? []) this.inc({ stage: sink }, n);
      },
    });
    // Only where the store is (standalone): a worker of several has none, and the primary registers
    // its own next to the workers' aggregate; twice, the families would be exposed twice.
    if (src.store) registerStoreMetrics(r, src);
    // A timestamp in seconds (Prometheus base units, as probe_ssl_earliest_cert_expiry): days left
    // are `(sluice_policy_review_due_timestamp_seconds - time()) / 86400`, overdue `< time()`.
    gauge(
      'sluice_policy_review_due_timestamp_seconds',
      'When a policy must be reviewed (review_by, the end of that day in the policy time zone), as a Unix time; absent without review_by.',
      (g) => {
        g.reset();
        for (const p of res().ruleSet.engine.policies) if (p.reviewBy !== undefined) g.set({ policy: p.id }, p.reviewBy / 1000);
      },
      ['policy'],
    );
    // `sluice disable`: one series per disable in force, "*" for all policies or all networks.
    gauge(
      'sluice_blocking_disabled_until_timestamp_seconds',
      'When a runtime disable (`sluice disable`) in force ends, as a Unix time, per policy and network ("*": all); absent when blocking is not disabled.',
      (g) => {
        g.reset();
        const now = src.now();
        for (const d of res().ruleSet.engine.overrides.disables) if (now < d.until) g.set({ policy: d.policy ?? '*', network: d.network ?? '*' }, d.until / 1000);
      },
      ['policy', 'network'],
      'max',
    );
    // With several workers each has its own connection: the instance is up only if all are (min),
    // and out of step as much as its worst worker (max).
    gauge(
      'sluice_redis_up',
      'Whether the connection to Redis is up and answering heartbeats (shared mode only; 1 in standalone mode means not applicable).',
      (g) => {
        const sh = src.shared?.() ?? {};
        g.set(sh.mode === 'shared' ? (sh.redis === 'ready' ? 1 : 0) : 1);
      },
      [],
      'min',
    );
    gauge(
      'sluice_policy_version_diverged',
      'Instances out of step: behind the edit log Redis holds, or with config or list files that differ from the others (this one included).',
      (g) => {
        const sh = src.shared?.() ?? {};
        g.set(Array.isArray(sh.diverged) ? sh.diverged.length : 0);
      },
      [],
      'max',
    );
    gauge(
      'sluice_shared_edits_behind',
      'Shared edits of the log in Redis this instance has not applied yet.',
      (g) => {
        const sh = src.shared?.() ?? {};
        g.set(typeof sh.editsBehind === 'number' ? sh.editsBehind : 0);
      },
      [],
      'max',
    );
    gauge(
      'sluice_redis_heartbeat_seconds',
      'How long the last heartbeat round with Redis took, or has been waiting (Redis paused or slow).',
      (g) => {
        const sh = src.shared?.() ?? {};
        g.set(typeof sh.heartbeatSeconds === 'number' ? sh.heartbeatSeconds : 0);
      },
      [],
      'max',
    );
    gauge(
      'sluice_policy_version_info',
      'The policy version this instance enforces (label), always 1.',
      (g) => {
        g.reset();
        const v = src.shared?.().version;
        if (typeof v === 'string' && v) g.set({ version: v }, 1);
      },
      ['version'],
    );
    gauge(
      'sluice_policy_state',
      'Lifecycle state of each policy (1 for the current state).',
      (g) => {
        g.reset();
        const now = src.now();
        for (const p of res().ruleSet.engine.policies) g.set({ policy: p.id, state: policyState(p, now).state }, 1);
      },
      ['policy', 'state'],
    );
    return r;
  }

  /** Hot path: count one answered query (the upstream round trip is counted by the pool). */
  observe(ctx: RequestContext, seconds: number): void {
    const network = ctx.network;
    const key = network ? network.metricsKey : '|';
    let cells = this.counts.get(key);
    if (!cells) {
      cells = new Float64Array(CELLS);
      this.counts.set(key, cells);
    }
    cells[(OUTCOME_INDEX[ctx.outcome ?? 'error'] ?? 3) * TYPE_LABELS.length + (TYPE_INDEX.get(ctx.query.type) ?? 12)]!++;
    const d = ctx.decision;
    if (d !== undefined && d.kind === 'blocked') this.countBlocked(network ? network.name : '', d);
    this.duration.observe(seconds);
  }

  private countBlocked(network: string, d: BlockedDecision): void {
    const known = this.blockedByDecision.get(d);
    if (known !== undefined && known.network === network) {
      known.cell.n++;
      return;
    }
    let byList = this.blocked.get(network);
    if (!byList) this.blocked.set(network, (byList = new Map()));
    let byPolicy = byList.get(d.list);
    if (!byPolicy) byList.set(d.list, (byPolicy = new Map()));
    const policy = d.policy ? d.policy.id : '';
    let cell = byPolicy.get(policy);
    if (!cell) byPolicy.set(policy, (cell = { n: 0 }));
    cell.n++;
    // A decision seen on another network than the first keeps being counted through the maps.
    if (known === undefined) this.blockedByDecision.set(d, { network, cell });
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}

type HistogramJson = { name: string; help: string; type: string; aggregator: string; values: { metricName: string; labels: Record<string, string | number>; value: number }[] };

/** The samples of one histogram series from per-bucket (not cumulative) counts, in prom-client's get() shape. */
function histogramSeries(out: HistogramJson['values'], name: string, labels: Record<string, string>, bounds: readonly number[], counts: Float64Array, sum: number, count: number): void {
  let cumulative = 0;
  for (let i = 0; i < bounds.length; i++) {
    cumulative += counts[i]!;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: bounds[i]! }, value: cumulative });
  }
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count });
  out.push({ metricName: `${name}_sum`, labels, value: sum });
  out.push({ metricName: `${name}_count`, labels, value: count });
}

/**
 * A histogram counted in typed arrays, exposed to prom-client as a metric of its own (the shape
 * prom-client's Histogram returns from get(), so the text format and the cluster aggregation are
 * the same). At most one label, whose value picks the series. Hand-written because prom-client's
 * observe() builds and hashes a label object per call: at 100k queries a second that was a visible
 * share of the hot path.
 */
class CountingHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, { counts: Float64Array; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: number[],
    private readonly labelName?: string,
  ) {}

  observe(value: number, labelValue = ''): void {
    let s = this.series.get(labelValue);
    if (!s) {
      s = { counts: new Float64Array(this.bounds.length), sum: 0, count: 0 };
      this.series.set(labelValue, s);
    }
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (value <= b[i]!) {
        s.counts[i]!++;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }

  get(): HistogramJson {
    const values: HistogramJson['values'] = [];
    for (const [labelValue, s] of this.series) {
      histogramSeries(values, this.name, this.labelName ? { [this.labelName]: labelValue } : {}, this.bounds, s.counts, s.sum, s.count);
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** The upstream pool's answer round trips (UpstreamHealth.answerRtt, in ms) as a histogram in seconds, by upstream. */
class UpstreamRttHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly bounds = ANSWER_RTT_BOUNDS_MS.map((ms) => ms / 1000);

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly health: () => ReadonlyMap<string, UpstreamHealth>,
  ) {}

  get(): HistogramJson {
    const values: HistogramJson['values'] = [];
    for (const [upstream, h] of this.health()) {
      const rtt = h.answerRtt;
      if (rtt.count > 0) histogramSeries(values, this.name, { upstream }, this.bounds, rtt.counts, rtt.sumMs / 1000, rtt.count);
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

// src/admin/ and dist/admin/ are both two levels below the package root.
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * What sluice_build_info says: the package version, the Node.js version and the git commit, as
 * `sluice version` does ($SLUICE_COMMIT, else the checkout's HEAD). The HEAD is read from .git's
 * files rather than by running git: a scrape of a DNS server spawns no process.
 */
export function buildInfo(root = PACKAGE_ROOT, env: NodeJS.ProcessEnv = process.env): { version: string; node: string; commit: string } {
  let version = 'unknown';
  try {
    version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? version;
  } catch {
    // not in a package (a bundle): the version stays unknown
  }
  return { version, node: process.version, commit: env.SLUICE_COMMIT?.trim() || headCommit(root) || 'unknown' };
}

function headCommit(root: string): string | undefined {
  try {
    const git = join(root, '.git');
    const head = readFileSync(join(git, 'HEAD'), 'utf8').trim();
    const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
    let sha = ref === undefined ? head : undefined;
    if (ref !== undefined) {
      try {
        sha = readFileSync(join(git, ref), 'utf8').trim();
      } catch {
        sha = readFileSync(join(git, 'packed-refs'), 'utf8')
          .split('\n')
          .find((l) => l.endsWith(` ${ref}`))
          ?.split(' ')[0];
      }
    }
    return sha !== undefined && /^[0-9a-f]{40}$/.test(sha) ? sha.slice(0, 12) : undefined;
  } catch {
    return undefined; // no checkout (npm install, container image), or a worktree (.git is a file)
  }
}

function registerBuildInfo(r: PromClient.Registry): void {
  const info = buildInfo();
  new (loadPromClient().Gauge)({
    name: 'sluice_build_info',
    help: 'The sluice version, Node.js version and git commit of this instance (labels), always 1.',
    labelNames: ['version', 'node', 'commit'],
    aggregator: 'first',
    registers: [r],
  }).set(info, 1);
}

/**
 * Process and Node.js runtime metrics (prom-client's default metrics: CPU, memory, heap, event loop
 * lag, file descriptors, GC). A worker of several labels its own with `worker`: the primary's
 * aggregate then keeps one series per worker rather than adding them up, since a sum of event loop
 * lags or heap limits means nothing and one busy or leaking worker is what to find. Summing is
 * left to the query (`sum by (instance) (rate(process_cpu_seconds_total[5m]))`).
 */
function registerRuntimeMetrics(r: PromClient.Registry): void {
  const client = loadPromClient();
  const worker = process.env.SLUICE_WORKER_ID;
  client.collectDefaultMetrics({ register: r, ...(worker ? { labels: { worker } } : {}) });
  // Gauges named _total, which promtool rejects; they are the sums of nodejs_active_handles,
  // nodejs_active_requests and nodejs_active_resources (by type), which stay.
  for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) r.removeSingleMetric(n);
  // prom-client leaves the start time out of a cluster aggregate ('omit'); per worker it is one value.
  const start = r.getSingleMetric('process_start_time_seconds') as { aggregator?: string } | undefined;
  if (worker && start) start.aggregator = 'max';
}

/**
 * The query-log store's metrics, in the registry of the process that owns the log: the standalone
 * server's, or the primary's own next to its workers' aggregate.
 */
export function registerStoreMetrics(r: PromClient.Registry, src: Pick<MetricsSources, 'store'>): void {
  const client = loadPromClient();
  r.registerMetric(
    new client.Gauge({
      name: 'sluice_querylog_store_up',
      help: 'Whether the last write to the query-log store succeeded (1), or it is failing and events wait in its spill (0); absent without a store.',
      labelNames: ['store'],
      registers: [],
      collect() {
        this.reset();
        const h = src.store?.();
        if (h) this.set({ store: h.kind }, h.ok ? 1 : 0);
      },
    }),
  );
  const counter = (name: string, help: string, read: (h: StoreHealth) => number) =>
    r.registerMetric(
      new client.Counter({
        name,
        help,
        registers: [],
        collect() {
          this.reset();
          const h = src.store?.();
          if (h) this.inc(read(h));
        },
      }),
    );
  counter('sluice_querylog_store_written_total', 'Query log events written to the store.', (h) => h.written);
  counter('sluice_querylog_store_failures_total', 'Failed writes to the query-log store (disk full, database down); each is retried from the spill.', (h) => h.failures);
  r.registerMetric(
    new client.Gauge({
      name: 'sluice_querylog_store_pending_events',
      help: "Query log events waiting in the store's spill (memory, and for PostgreSQL the local spool).",
      registers: [],
      collect() {
        this.set(src.store?.()?.pending ?? 0);
      },
    }),
  );
}
