// Aggregates over query events for the dashboard: totals, per-network time series, top lists and
// upstream latency. Pure: the end of the range is passed in, never read from a clock here.
//
// It sees what the query log saw: networks that log only blocked queries (or nothing) are counted
// accordingly, so these numbers can be lower than the Prometheus counters.
import type { QueryEvent } from './event.js';
import { matches, type QueryFilter } from './filter.js';

/** Bucket sizes a time range may use, in seconds; the smallest that keeps the series short wins. */
const BUCKET_STEPS = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 10800, 21600, 86400];
/** At most this many buckets per series: 15 min → 10 s, 1 h → 30 s, 24 h → 10 min. */
const MAX_BUCKETS = 150;
/** Networks of events without one: clients in no configured network, which are refused. */
export const NO_NETWORK = '(none)';

export interface SummaryOptions {
  /** End of the range when the filter has no `until` (epoch ms). */
  now: number;
  /** Rows of each top-N table. */
  top?: number;
}

export interface Totals {
  queries: number;
  blocked: number;
  refused: number;
  /** Queries that failed (SERVFAIL after the upstreams) or were malformed. */
  errors: number;
  cacheHits: number;
  /** Allowed queries a dry-run policy would have blocked. */
  wouldBlock: number;
  /** blocked / queries; 0 without queries. */
  blockRatio: number;
  /** Cache hits / allowed queries; 0 without allowed queries. */
  cacheHitRatio: number;
}

export interface NetworkSeries {
  network: string;
  /** Queries per bucket (divide by `bucketSeconds` for a rate). */
  queries: number[];
  blocked: number[];
}

export interface Series {
  /** Epoch ms of the first bucket; buckets are aligned to multiples of their size. */
  start: number;
  bucketSeconds: number;
  /** One entry per network, busiest first. */
  networks: NetworkSeries[];
  /** 95th percentile of upstream latency per bucket (ms), null where nothing was forwarded. */
  upstreamP95Ms: (number | null)[];
}

export interface UpstreamLatency {
  upstream: string;
  queries: number;
  avgMs: number;
  p50Ms: number;
  p95Ms: number;
}

export interface Summary {
  /** The same as totals.queries and totals.blocked (the first version of /api/summary). */
  total: number;
  blocked: number;
  range: { since: number; until: number };
  totals: Totals;
  series: Series;
  topBlockedDomains: { name: string; list: string | null; count: number }[];
  /** Blocked queries by list: with the catalog, one list is one app. */
  topApps: { list: string; count: number; clients: number }[];
  /** Clients whose queries were blocked, with the lists they hit most first. */
  topBlockedClients: { client: string; network: string; count: number; lists: string[] }[];
  /** Forwarded queries that were not cache hits, by the upstream that answered. */
  upstreams: UpstreamLatency[];
  /** Dry-run policies: what they would have blocked. */
  dryRun: { policy: string; wouldBlock: number; clients: number }[];
}

/** Counts a summary is built from, by whichever reader counted them (events, a store's SQL). */
export interface SummaryCounts {
  queries: number;
  blocked: number;
  refused: number;
  errors: number;
  cacheHits: number;
  allowed: number;
  wouldBlock: number;
}

/** The totals of a summary, with its ratios. */
export function summaryTotals(t: SummaryCounts): Totals {
  return {
    queries: t.queries,
    blocked: t.blocked,
    refused: t.refused,
    errors: t.errors,
    cacheHits: t.cacheHits,
    wouldBlock: t.wouldBlock,
    blockRatio: t.queries === 0 ? 0 : round(t.blocked / t.queries, 4),
    cacheHitRatio: t.allowed === 0 ? 0 : round(t.cacheHits / t.allowed, 4),
  };
}

/** Per-network series, busiest first (then by name). */
export function busiestFirst(series: Iterable<NetworkSeries>): NetworkSeries[] {
  const total = (n: NetworkSeries) => n.queries.reduce((a, v) => a + v, 0);
  return [...series].sort((a, b) => total(b) - total(a) || a.network.localeCompare(b.network));
}

/** Bucket size for a range: 15 min → 10 s, 1 h → 30 s, 24 h → 10 min. */
export function bucketSeconds(rangeMs: number): number {
  for (const step of BUCKET_STEPS) if (rangeMs / (step * 1000) <= MAX_BUCKETS) return step;
  return Math.ceil(rangeMs / 1000 / MAX_BUCKETS);
}

/** Nearest-rank percentile of ascending values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1]!;
}

const round = (v: number, digits = 3): number => Math.round(v * 10 ** digits) / 10 ** digits;

function increment<K>(m: Map<K, number>, k: K, by = 1): void {
  m.set(k, (m.get(k) ?? 0) + by);
}

function topEntries<K>(m: Map<K, number>, n: number, key: (k: K) => string): [K, number][] {
  return [...m].sort((a, b) => b[1] - a[1] || key(a[0]).localeCompare(key(b[0]))).slice(0, n);
}

export function summarize(events: Iterable<QueryEvent>, filter: QueryFilter, opts: SummaryOptions = { now: Date.now() }): Summary {
  const top = opts.top ?? 10;
  const matched: QueryEvent[] = [];
  let earliest = Infinity;
  for (const e of events) {
    if (!matches(e, filter)) continue;
    matched.push(e);
    if (e.time < earliest) earliest = e.time;
  }
  const until = filter.until ?? opts.now;
  const since = filter.since ?? (Number.isFinite(earliest) ? earliest : until - 15 * 60_000);
  const step = bucketSeconds(Math.max(until - since, 1000));
  const stepMs = step * 1000;
  const start = Math.floor(since / stepMs) * stepMs;
  const buckets = Math.max(1, Math.ceil((until - start) / stepMs));

  const t = { queries: 0, blocked: 0, refused: 0, errors: 0, cacheHits: 0, allowed: 0, wouldBlock: 0 };
  const perNetwork = new Map<string, NetworkSeries>();
  const blockedDomains = new Map<string, number>();
  const domainList = new Map<string, string | null>();
  const apps = new Map<string, number>();
  const appClients = new Map<string, Set<string>>();
  const clients = new Map<string, number>();
  const clientLists = new Map<string, Map<string, number>>();
  const latency = new Map<string, number[]>();
  const latencyBuckets: number[][] = Array.from({ length: buckets }, () => []);
  const dryRun = new Map<string, { wouldBlock: number; clients: Set<string> }>();

  for (const e of matched) {
    t.queries++;
    const network = e.network ?? NO_NETWORK;
    let s = perNetwork.get(network);
    if (!s) {
      s = { network, queries: new Array<number>(buckets).fill(0), blocked: new Array<number>(buckets).fill(0) };
      perNetwork.set(network, s);
    }
    const b = Math.floor((e.time - start) / stepMs);
    const inRange = b >= 0 && b < buckets;
    if (inRange) s.queries[b]!++;
    switch (e.decision) {
      case 'blocked': {
        t.blocked++;
        if (inRange) s.blocked[b]!++;
        increment(blockedDomains, e.name);
        if (!domainList.has(e.name)) domainList.set(e.name, e.list);
        const list = e.list ?? '(unknown)';
        increment(apps, list);
        let ac = appClients.get(list);
        if (!ac) appClients.set(list, (ac = new Set()));
        ac.add(e.client);
        const clientKey = `${e.client}\u0000${network}`;
        increment(clients, clientKey);
        let cl = clientLists.get(clientKey);
        if (!cl) clientLists.set(clientKey, (cl = new Map()));
        increment(cl, list);
        break;
      }
      case 'refused':
        t.refused++;
        break;
      case 'error':
      case 'malformed':
        t.errors++;
        break;
      case 'allowed':
        t.allowed++;
        if (e.cache) t.cacheHits++;
        else if (e.upstream !== null) {
          let l = latency.get(e.upstream);
          if (!l) latency.set(e.upstream, (l = []));
          l.push(e.durationMs);
          if (inRange) latencyBuckets[b]!.push(e.durationMs);
        }
        break;
    }
    if (e.wouldBlock) {
      t.wouldBlock++;
      const policy = e.policy ?? '(unknown)';
      let d = dryRun.get(policy);
      if (!d) dryRun.set(policy, (d = { wouldBlock: 0, clients: new Set() }));
      d.wouldBlock++;
      d.clients.add(e.client);
    }
  }

  return {
    total: t.queries,
    blocked: t.blocked,
    range: { since, until },
    totals: summaryTotals(t),
    series: {
      start,
      bucketSeconds: step,
      networks: busiestFirst(perNetwork.values()),
      upstreamP95Ms: latencyBuckets.map((l) =>
        l.length === 0
          ? null
          : round(
              percentile(
                l.sort((x, y) => x - y),
                95,
              ),
            ),
      ),
    },
    topBlockedDomains: topEntries(blockedDomains, top, (k) => k).map(([name, count]) => ({ name, list: domainList.get(name) ?? null, count })),
    topApps: topEntries(apps, top, (k) => k).map(([list, count]) => ({ list, count, clients: appClients.get(list)?.size ?? 0 })),
    topBlockedClients: topEntries(clients, top, (k) => k).map(([key, count]) => {
      const [client, network] = key.split('\u0000') as [string, string];
      const lists = topEntries(clientLists.get(key) ?? new Map<string, number>(), 3, (k) => k).map(([l]) => l);
      return { client, network, count, lists };
    }),
    upstreams: [...latency]
      .map(([upstream, values]) => {
        values.sort((a, b) => a - b);
        return {
          upstream,
          queries: values.length,
          avgMs: round(values.reduce((a, v) => a + v, 0) / values.length),
          p50Ms: round(percentile(values, 50)),
          p95Ms: round(percentile(values, 95)),
        };
      })
      .sort((a, b) => b.queries - a.queries || a.upstream.localeCompare(b.upstream)),
    dryRun: [...dryRun].map(([policy, d]) => ({ policy, wouldBlock: d.wouldBlock, clients: d.clients.size })).sort((a, b) => b.wouldBlock - a.wouldBlock || a.policy.localeCompare(b.policy)),
  };
}
