// Reports over query events, for compliance after a ban takes effect. Pure: events in, rows out,
// no clock and no I/O, so `sluice report` gives the same answer from the admin API or the files.
import type { QueryEvent } from './event.js';
import { periodStart, utcDay, type TrendOptions, type TrendRow } from './periods.js';

/** The lists whose names a device asks for when it tries to get around sluice. */
export const BYPASS_LISTS = ['doh-bypass', 'turbovpn'] as const;

export interface DevicesReportOptions {
  /** Only queries blocked by this policy (default: by any policy). */
  policy?: string;
  network?: string;
  /** Epoch ms, inclusive. */
  since?: number;
  /** Epoch ms, exclusive. */
  until?: number;
}

/** One device and one app (list) it was blocked from. */
export interface DeviceRow {
  network: string;
  /** Address, or pseudonym token (`p:…`) on a network that pseudonymises. */
  client: string;
  policy: string;
  list: string;
  count: number;
  /** Epoch ms. */
  firstSeen: number;
  lastSeen: number;
  /** Distinct names queried, sorted. */
  names: string[];
}

export interface BypassReportOptions {
  network?: string;
  since?: number;
  until?: number;
  /** Bypass lists to look for (default: doh-bypass and turbovpn). */
  lists?: readonly string[];
  /**
   * The bypass list a name is on, for events that carry no list: on a network that does not block
   * these lists (an open guest network) the query is logged as allowed with no list. Optional.
   */
  classify?: (name: string) => string | undefined;
}

export interface BypassRow {
  network: string;
  client: string;
  list: string;
  count: number;
  /** How many of them were blocked (the rest were answered). */
  blocked: number;
  firstSeen: number;
  lastSeen: number;
  /** Distinct endpoints (names) queried, sorted. */
  endpoints: string[];
}

/** A row of either report while it is being counted: names still a set. */
interface Group extends Omit<BypassRow, 'endpoints'> {
  names: Set<string>;
  policy: string;
}

function inWindow(e: QueryEvent, o: { network?: string; since?: number; until?: number }): boolean {
  if (o.network !== undefined && e.network !== o.network) return false;
  if (o.since !== undefined && e.time < o.since) return false;
  if (o.until !== undefined && e.time >= o.until) return false;
  return true;
}

function add(groups: Map<string, Group>, key: string, init: Omit<Group, 'count' | 'blocked' | 'firstSeen' | 'lastSeen' | 'names'>, e: QueryEvent): void {
  let g = groups.get(key);
  if (!g) {
    g = { ...init, count: 0, blocked: 0, firstSeen: e.time, lastSeen: e.time, names: new Set() };
    groups.set(key, g);
  }
  g.count++;
  if (e.decision === 'blocked') g.blocked++;
  if (e.time < g.firstSeen) g.firstSeen = e.time;
  if (e.time > g.lastSeen) g.lastSeen = e.time;
  g.names.add(e.name);
}

const byNetworkClientList = (a: Group, b: Group): number => a.network.localeCompare(b.network) || a.client.localeCompare(b.client) || a.policy.localeCompare(b.policy) || a.list.localeCompare(b.list);

/**
 * Every client that sent queries blocked by a policy, per app (list): how often, first and last
 * seen. Only enforced blocks count: a dry-run's would-block events and exceptions are not
 * violations.
 */
export function devicesReport(events: Iterable<QueryEvent>, o: DevicesReportOptions = {}): DeviceRow[] {
  const groups = new Map<string, Group>();
  for (const e of events) {
    if (e.decision !== 'blocked' || e.policy === null || e.list === null) continue;
    if (o.policy !== undefined && e.policy !== o.policy) continue;
    if (!inWindow(e, o)) continue;
    const network = e.network ?? '-';
    add(groups, `${network}\0${e.client}\0${e.policy}\0${e.list}`, { network, client: e.client, list: e.list, policy: e.policy }, e);
  }
  return [...groups.values()].sort(byNetworkClientList).map((g) => ({
    network: g.network,
    client: g.client,
    policy: g.policy,
    list: g.list,
    count: g.count,
    firstSeen: g.firstSeen,
    lastSeen: g.lastSeen,
    names: [...g.names].sort(),
  }));
}

/**
 * Clients that asked for resolver-bypass endpoints (public DoH/DoT, the Firefox canary, iCloud
 * Private Relay) or VPN apps' domains, per network. A name is a bypass attempt by the event's own
 * list, whether a profile or a policy blocked it, or by `classify` when no bypass list blocked it.
 */
export function bypassReport(events: Iterable<QueryEvent>, o: BypassReportOptions = {}): BypassRow[] {
  const lists = new Set<string>(o.lists ?? BYPASS_LISTS);
  const groups = new Map<string, Group>();
  for (const e of events) {
    if (!inWindow(e, o)) continue;
    const list = e.list !== null && lists.has(e.list) ? e.list : o.classify?.(e.name);
    if (list === undefined || !lists.has(list)) continue;
    const network = e.network ?? '-';
    add(groups, `${network}\0${e.client}\0${list}`, { network, client: e.client, list, policy: '' }, e);
  }
  return [...groups.values()].sort(byNetworkClientList).map((g) => ({
    network: g.network,
    client: g.client,
    list: g.list,
    count: g.count,
    blocked: g.blocked,
    firstSeen: g.firstSeen,
    lastSeen: g.lastSeen,
    endpoints: [...g.names].sort(),
  }));
}

/**
 * Blocked queries per period, network, policy and list, from events (the memory ring and the
 * files; the stores answer from their daily rollup).
 */
export function trendReport(events: Iterable<QueryEvent>, o: TrendOptions): TrendRow[] {
  const groups = new Map<string, { period: string; network: string; policy: string; list: string; blocked: number; clients: Set<string> }>();
  for (const e of events) {
    if (e.decision !== 'blocked') continue;
    if (o.policy !== undefined && e.policy !== o.policy) continue;
    if (o.list !== undefined && e.list !== o.list) continue;
    if (!inWindow(e, o)) continue;
    const period = periodStart(utcDay(e.time), o.by);
    const network = e.network ?? '-';
    const key = `${period}\0${network}\0${e.policy}\0${e.list}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { period, network, policy: e.policy ?? '', list: e.list ?? '', blocked: 0, clients: new Set() }));
    g.blocked++;
    g.clients.add(e.client);
  }
  return [...groups.values()]
    .map((g) => ({ period: g.period, network: g.network, policy: g.policy, list: g.list, blocked: g.blocked, clients: g.clients.size }))
    .sort((a, b) => a.period.localeCompare(b.period) || a.network.localeCompare(b.network) || a.policy.localeCompare(b.policy) || a.list.localeCompare(b.list));
}
