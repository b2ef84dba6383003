// The request pipeline, in order:
//   read query → classify (network) → decide (policy) → blocked answer | cache | forward → fit to transport
// The rules (networks, profiles, lists, routes) live in an immutable RuleSet that a reload builds
// off the hot path and swaps in with one assignment. The cache and the upstream pool outlive reloads.
import type { Config, UpstreamAddress } from '../config/schema.js';
import { parseUpstreamAddress } from '../config/schema.js';
import { CLASS_IN, EDE, RCODE } from '../dns/codes.js';
import { encodeRcode, encodeTruncated, readQuery, udpLimit, type Query } from '../dns/wire.js';
import type { DomainSet } from '../policy/domain-set.js';
import { NetworkTable } from '../policy/network-table.js';
import { PolicyEngine, type Network } from '../policy/policy-engine.js';
import { systemResolvers } from '../upstream/system-resolvers.js';
import { UpstreamPool } from '../upstream/upstream-pool.js';
import { BlockedAnswers } from './answer-blocked.js';
import { AnswerCache, type Clock } from './answer-cache.js';
import { classify } from './classify.js';
import type { ClientInfo, RequestContext } from './context.js';
import { buildRoutes, Forwarder, routeFor, type UpstreamRoutes } from './forward.js';

/** Everything a config decides, compiled for the hot path. */
export class RuleSet {
  readonly engine: PolicyEngine;
  readonly table: NetworkTable<Network>;
  readonly blocked = new Map<string, BlockedAnswers>();
  readonly routes: UpstreamRoutes;
  /** For names that get NXDOMAIN whatever the profile says (see NXDOMAIN_SIGNALS). */
  readonly nxdomain = new Map<string, BlockedAnswers>();

  constructor(
    readonly config: Config,
    lists: ReadonlyMap<string, DomainSet>,
    resolveSystem: () => UpstreamAddress[] = systemResolvers,
  ) {
    this.engine = new PolicyEngine(config, lists);
    const ranges = [];
    for (const [name, n] of Object.entries(config.networks)) {
      const network = this.engine.networks.get(name);
      if (network) for (const cidr of n.cidrs) ranges.push({ cidr, network });
    }
    this.table = new NetworkTable(ranges);
    for (const [name, p] of this.engine.profiles) {
      this.blocked.set(name, new BlockedAnswers(p.response));
      this.nxdomain.set(name, new BlockedAnswers({ ...p.response, mode: 'nxdomain' }));
    }
    const expand = (list: string[]): UpstreamAddress[] =>
      list.flatMap((s) => (s === 'system' ? resolveSystem() : [parseUpstreamAddress(s)!]));
    this.routes = buildRoutes(
      expand(config.upstreams.default),
      config.upstreams.conditional.map((c) => ({ zone: c.zone, servers: expand(c.servers) })),
    );
  }
}

export interface ResolverCounters {
  queries: number;
  malformed: number;
  dropped: number;
  refused: number;
  blocked: number;
  forwarded: number;
  cacheHits: number;
  servfail: number;
  truncated: number;
}

export class Resolver {
  private rules: RuleSet;
  readonly cache: AnswerCache;
  private pool: UpstreamPool;
  private forwarder: Forwarder;
  readonly counters: ResolverCounters = { queries: 0, malformed: 0, dropped: 0, refused: 0, blocked: 0, forwarded: 0, cacheHits: 0, servfail: 0, truncated: 0 };

  constructor(rules: RuleSet, private readonly now: Clock = Date.now) {
    this.rules = rules;
    this.cache = new AnswerCache(rules.config.cache.max_entries, now);
    this.pool = this.newPool(rules.config);
    this.forwarder = new Forwarder(this.pool, this.cache, () => this.clamp());
  }

  get ruleSet(): RuleSet {
    return this.rules;
  }

  /** Swap in new rules. Blocking is decided before the cache, so cached answers stay valid. */
  swap(rules: RuleSet): void {
    const old = this.rules.config;
    this.rules = rules;
    if (JSON.stringify(old.upstreams) !== JSON.stringify(rules.config.upstreams)) {
      const oldPool = this.pool;
      this.pool = this.newPool(rules.config);
      this.forwarder = new Forwarder(this.pool, this.cache, () => this.clamp());
      this.cache.clear();
      // Let queries in flight on the old pool finish before closing it.
      setTimeout(() => oldPool.close(), old.upstreams.total_timeout_ms + 100).unref();
    }
    if (old.cache.max_entries !== rules.config.cache.max_entries) {
      // Resizing an LRU means starting a new one; acceptable on a config change.
      (this as { cache: AnswerCache }).cache = new AnswerCache(rules.config.cache.max_entries, this.now);
      this.forwarder = new Forwarder(this.pool, this.cache, () => this.clamp());
    }
  }

  close(): void {
    this.pool.close();
  }

  get upstreamErrors(): number {
    return this.pool.errors;
  }

  private newPool(config: Config): UpstreamPool {
    const u = config.upstreams;
    return new UpstreamPool({ sockets: u.sockets, socketMaxQueries: u.socket_max_queries, timeoutMs: u.timeout_ms, totalTimeoutMs: u.total_timeout_ms });
  }

  private clamp() {
    const c = this.rules.config.cache;
    return { minTtl: c.min_ttl, maxTtl: c.max_ttl, negativeMaxTtl: c.negative_max_ttl };
  }

  /**
   * Handle one message. Returns the context with `response` set (undefined: send nothing). Blocked,
   * refused and cached answers are synchronous; only forwarding returns a promise. Never throws.
   */
  handle(msg: Buffer, client: ClientInfo): RequestContext | Promise<RequestContext> {
    this.counters.queries++;
    const read = readQuery(msg);
    if (!read.ok) {
      this.counters.malformed++;
      const ctx = malformedContext(msg, client, this.now());
      if (read.rcode === undefined) {
        this.counters.dropped++;
        return ctx;
      }
      ctx.rcode = read.rcode;
      ctx.response = encodeRcode(msg, read.rcode, read.questionEnd, read.edns);
      return ctx;
    }
    const query = read.query;
    const rules = this.rules;
    const ctx: RequestContext = { msg, query, client, startedAt: this.now(), startedHr: performance.now() };

    const network = classify(client, rules.engine.networks, rules.table);
    if (!network || query.qclass !== CLASS_IN) {
      this.counters.refused++;
      ctx.outcome = 'refused';
      return this.finish(ctx, encodeRcode(msg, RCODE.REFUSED, query.questionEnd, query.edns, network ? undefined : { code: EDE.PROHIBITED, text: 'sluice: client is in no configured network' }), RCODE.REFUSED);
    }
    ctx.network = network;

    const decision = rules.engine.decide(network, query.name, ctx.startedAt, client.address);
    ctx.decision = decision;
    if (decision.kind === 'blocked') {
      this.counters.blocked++;
      ctx.outcome = 'blocked';
      const responder = (decision.response.mode === 'nxdomain' ? rules.nxdomain : rules.blocked).get(decision.profile)!;
      const bytes = responder.answer(msg, query, decision.ruleLabels, decision.reason);
      return this.finish(ctx, bytes, bytes[3]! & 0xf);
    }

    ctx.outcome = 'allowed';
    const key = AnswerCache.key(query);
    const cached = this.cache.answer(msg, query, key);
    if (cached) {
      this.counters.cacheHits++;
      ctx.cacheHit = true;
      return this.finish(ctx, cached, cached[3]! & 0xf);
    }
    return this.forward(ctx, key);
  }

  private async forward(ctx: RequestContext, key: string): Promise<RequestContext> {
    this.counters.forwarded++;
    const { msg, query } = ctx;
    try {
      const servers = routeFor(this.rules.routes, query.name);
      const r = await this.forwarder.forward(servers, msg, query, key);
      ctx.upstream = r.upstream;
      if (r.response) return this.finish(ctx, r.response, r.rcode ?? RCODE.NOERROR);
    } catch {
      // fall through to SERVFAIL: nothing escapes a request
    }
    this.counters.servfail++;
    ctx.outcome = 'error';
    return this.finish(ctx, encodeRcode(msg, RCODE.SERVFAIL, query.questionEnd, query.edns, { code: EDE.NO_REACHABLE_AUTHORITY, text: 'sluice: no upstream answered' }), RCODE.SERVFAIL);
  }

  /** UDP answers larger than the client accepts become TC answers (RFC 1035 §4.2.1, RFC 6891 §7). */
  private finish(ctx: RequestContext, bytes: Buffer, rcode: number): RequestContext {
    ctx.rcode = rcode;
    if (ctx.client.transport === 'udp' && bytes.length > udpLimit(ctx.query)) {
      this.counters.truncated++;
      ctx.response = encodeTruncated(ctx.msg, ctx.query as Query);
    } else {
      ctx.response = bytes;
    }
    return ctx;
  }
}

function malformedContext(msg: Buffer, client: ClientInfo, now: number): RequestContext {
  const query: Query = { id: msg.length >= 2 ? msg.readUInt16BE(0) : 0, flags: 0, name: '', type: 0, qclass: 0, questionEnd: 0, labelOffsets: [], edns: undefined };
  return { msg, query, client, startedAt: now, startedHr: performance.now(), outcome: 'malformed' };
}
