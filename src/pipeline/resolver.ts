// The request pipeline, in order:
//   read query → classify (network) → decide (policy) → blocked answer | cache | forward → fit to transport
// The rules (networks, profiles, lists, routes) live in an immutable RuleSet that a reload builds
// off the hot path and swaps in with one assignment. The cache and the upstream pool outlive reloads.
import type { Config, UpstreamAddress } from '../config/schema.js';
import { parseUpstreamAddress } from '../config/schema.js';
import { CLASS_IN, EDE, RCODE, TYPE, isUpstreamFailure, rcodeName } from '../dns/codes.js';
import { renderAnswer, type AnswerBytes } from '../dns/answer-bytes.js';
import { encodeAnswer, encodeRcode, encodeRecord, encodeTruncated, fitAnswer, readQuery, udpLimit, type EdeInfo, type Query } from '../dns/wire.js';
import { DomainSet } from '../match/domain-set.js';
import type { Decision } from '../policy/policy-engine.js';
import { RateLimiter } from './rate-limiter.js';
import { NetworkTable } from '../match/network-table.js';
import { PolicyEngine, type Network } from '../policy/policy-engine.js';
import { systemResolvers } from '../upstream/system-resolvers.js';
import { UpstreamPool, type UpstreamHealth } from '../upstream/upstream-pool.js';
import { BlockedAnswers } from './answer-blocked.js';
import { AnswerCache, type Clock } from './answer-cache.js';
import { loadBatchBinding } from '../native/udp-batch.js';
import { classify } from './classify.js';
import type { ClientInfo, RequestContext } from './context.js';
import { buildRoutes, Forwarder, routeFor, type ForwardResult, type UpstreamRoutes } from './forward.js';

// RFC 8482 §4.2: the synthesised answer to ANY is one HINFO record, CPU "RFC8482", OS "".
const RFC8482_HINFO = encodeRecord(12, 13, 3600, Buffer.from([7, ...Buffer.from('RFC8482'), 0]));

/** Everything a config decides, compiled for the hot path. */
export class RuleSet {
  readonly engine: PolicyEngine;
  readonly table: NetworkTable<Network>;
  readonly blocked = new Map<string, BlockedAnswers>();
  readonly routes: UpstreamRoutes;
  readonly rebindingAllow = new DomainSet();
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
    const trustAd = config.upstreams.trust_ad;
    const expand = (list: string[]): UpstreamAddress[] =>
      list.flatMap((s) => (s === 'system' ? resolveSystem().map((a) => ({ ...a, trustAd: trustAd ?? false })) : [{ ...parseUpstreamAddress(s)!, trustAd: trustAd ?? true }]));
    for (const z of config.hardening.rebinding_allow) this.rebindingAllow.add(z.toLowerCase().replace(/\.$/, ''));
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
  rateLimited: number;
  cnameBlocked: number;
  rebindingFiltered: number;
  stale: number;
  /** Cached answers refreshed in the background before they expired. */
  prefetched: number;
}

export class Resolver {
  private rules: RuleSet;
  readonly cache: AnswerCache;
  private pool: UpstreamPool;
  private forwarder: Forwarder;
  readonly counters: ResolverCounters = {
    queries: 0,
    malformed: 0,
    dropped: 0,
    refused: 0,
    blocked: 0,
    forwarded: 0,
    cacheHits: 0,
    servfail: 0,
    truncated: 0,
    rateLimited: 0,
    cnameBlocked: 0,
    rebindingFiltered: 0,
    stale: 0,
    prefetched: 0,
  };
  readonly limiter: RateLimiter;

  constructor(
    rules: RuleSet,
    private readonly now: Clock = Date.now,
  ) {
    this.rules = rules;
    this.limiter = new RateLimiter(rules.config.hardening.rate_limit_clients);
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
    if (JSON.stringify(old.upstreams) !== JSON.stringify(rules.config.upstreams) || old.udp.io !== rules.config.udp.io) {
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

  /** Forwarded queries waiting for an upstream (prefetches included). */
  get forwardsInFlight(): number {
    return this.forwarder.size;
  }

  /** Per upstream (`host:port`): round-trip times, back-off, invalid replies, retries. */
  get upstreamHealth(): ReadonlyMap<string, UpstreamHealth> {
    return this.pool.health;
  }

  private newPool(config: Config): UpstreamPool {
    const u = config.upstreams;
    // Upstream sockets are batched whenever the listeners may be (udp.io auto or batched) and the addon is built.
    const batch = config.udp.io === 'dgram' ? undefined : loadBatchBinding().binding;
    return new UpstreamPool({
      backoffMs: config.hardening.upstream_backoff_ms,
      sockets: u.sockets,
      socketMaxQueries: u.socket_max_queries,
      timeoutMs: u.timeout_ms,
      minTimeoutMs: Math.min(u.min_timeout_ms, u.timeout_ms),
      totalTimeoutMs: u.total_timeout_ms,
      batch,
    });
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
      return this.finish(
        ctx,
        encodeRcode(msg, RCODE.REFUSED, query.questionEnd, query.edns, network ? undefined : { code: EDE.PROHIBITED, text: 'sluice: client is in no configured network' }),
        RCODE.REFUSED,
      );
    }
    ctx.network = network;

    // Rate limit per client over UDP (TCP needs a handshake, so it cannot be spoofed).
    const limit = network.rateLimit;
    if (limit !== undefined && client.transport === 'udp') {
      const verdict = this.limiter.check(client.address, limit, ctx.startedHr);
      if (verdict !== 'ok') {
        this.counters.rateLimited++;
        ctx.outcome = 'refused';
        ctx.rateLimited = true;
        if (verdict === 'drop') return ctx;
        ctx.rcode = RCODE.NOERROR;
        ctx.response = encodeTruncated(msg, query);
        return ctx;
      }
    }

    const decision = rules.engine.decide(network, query.name, ctx.startedAt, client.address);
    ctx.decision = decision;
    if (decision.kind === 'blocked') return this.blocked(ctx, decision);

    ctx.outcome = 'allowed';
    if (query.type === TYPE.ANY) return this.answerAny(ctx);
    const cached = this.cache.lookupQuery(query);
    if (cached) {
      this.counters.cacheHits++;
      ctx.cacheHit = true;
      // In the last tenth of its TTL (ms left ≤ TTL s × 100), the answer is refreshed behind this one.
      const refresh = cached.expiresAt - ctx.startedAt <= cached.cacheTtl * 100 && rules.config.cache.prefetch;
      const answered = this.allowedAnswer(ctx, cached, this.cache.ageOf(cached));
      if (refresh) this.prefetch(ctx);
      return answered;
    }
    return this.forward(ctx, AnswerCache.key(query));
  }

  /** Ask the upstream again for a cached answer about to expire (Unbound's prefetch); the forwarder caches the reply. */
  private prefetch(ctx: RequestContext): void {
    const key = AnswerCache.key(ctx.query);
    if (this.forwarder.inFlightFor(key)) return;
    this.counters.prefetched++;
    try {
      this.forwarder.forward(routeFor(this.rules.routes, ctx.query.name), ctx.msg, ctx.query, key).catch(() => undefined);
    } catch {
      // a prefetch that cannot start changes nothing: the entry expires as it would have
    }
  }

  private blocked(ctx: RequestContext, decision: Extract<Decision, { kind: 'blocked' }>): RequestContext {
    const rules = this.rules;
    this.counters.blocked++;
    ctx.decision = decision;
    ctx.outcome = 'blocked';
    const responder = (decision.response.mode === 'nxdomain' ? rules.nxdomain : rules.blocked).get(decision.profile)!;
    const bytes = responder.answer(ctx.msg, ctx.query, decision.ruleLabels, decision.reason);
    return this.finish(ctx, bytes, bytes[3]! & 0xf);
  }

  /** RFC 8482: ANY gets one synthesised HINFO record (or REFUSED), never a forwarded full answer. */
  private answerAny(ctx: RequestContext): RequestContext {
    const { msg, query } = ctx;
    if (this.rules.config.hardening.any_queries === 'refuse') {
      return this.finish(ctx, encodeRcode(msg, RCODE.REFUSED, query.questionEnd, query.edns, { code: EDE.NOT_SUPPORTED, text: 'sluice: ANY queries are refused' }), RCODE.REFUSED);
    }
    return this.finish(ctx, encodeAnswer(msg, query, RCODE.NOERROR, { an: 1, ns: 0 }, RFC8482_HINFO), RCODE.NOERROR);
  }

  /**
   * An allowed answer (cached or fresh) on its way out: CNAME inspection (a chain to a blocked
   * name blocks the query like its target), rebinding protection, then render for this client.
   */
  private allowedAnswer(ctx: RequestContext, answer: AnswerBytes, age: number, stale = false): RequestContext {
    const rules = this.rules;
    const h = rules.config.hardening;
    if (answer.cnames && h.cname_inspection && ctx.network) {
      for (const target of answer.cnames) {
        const d = rules.engine.decide(ctx.network, target, ctx.startedAt, ctx.client.address);
        if (d.kind === 'blocked') {
          this.counters.cnameBlocked++;
          // A copy (the decision is shared by every name under its rule) with the chain in its text.
          const viaCname = {
            kind: d.kind,
            profile: d.profile,
            list: d.list,
            rule: d.rule,
            response: d.response,
            ruleLabels: 0,
            reason: `${d.reason} (CNAME target of ${ctx.query.name})`,
            ...(d.policy ? { policy: d.policy } : {}),
          };
          return this.blocked(ctx, viaCname);
        }
      }
    }
    if (answer.privateAddress && h.rebinding_protection && !rules.rebindingAllow.match(ctx.query.name)) {
      this.counters.rebindingFiltered++;
      const empty = encodeAnswer(ctx.msg, ctx.query, RCODE.NOERROR, { an: 0, ns: 0 }, undefined, {
        code: EDE.FILTERED,
        text: 'sluice: private address in a public answer removed (rebinding protection)',
      });
      return this.finish(ctx, empty, RCODE.NOERROR);
    }
    const bytes = stale
      ? renderAnswer(answer, ctx.msg, ctx.query, 0, { ttl: rules.config.cache.stale_ttl, ede: { code: EDE.STALE_ANSWER, text: 'sluice: stale answer, upstreams unreachable' } })
      : renderAnswer(answer, ctx.msg, ctx.query, age);
    return this.finish(ctx, bytes, answer.rcode);
  }

  // Not an async function: an async function's frame lives on the heap while it waits, and on
  // this path (one per forwarded query) that was the largest single allocation (~1.6 KB).
  private forward(ctx: RequestContext, key: string): Promise<RequestContext> {
    this.counters.forwarded++;
    const { msg, query } = ctx;
    let exchange: Promise<ForwardResult>;
    try {
      exchange = this.forwarder.forward(routeFor(this.rules.routes, query.name), msg, query, key);
    } catch {
      return Promise.resolve(this.noAnswer(ctx, key));
    }
    return exchange.then(
      (r) => this.forwarded(ctx, key, r),
      () => this.noAnswer(ctx, key),
    );
  }

  private forwarded(ctx: RequestContext, key: string, r: ForwardResult): RequestContext {
    try {
      ctx.upstream = r.upstream;
      if (r.answer && !isUpstreamFailure(r.answer.rcode)) return this.allowedAnswer(ctx, r.answer, 0);
      // A validation failure is the upstream's verdict on the data, not an outage: never stale.
      if (r.ede !== undefined && r.ede >= EDE.DNSSEC_BOGUS && r.ede <= EDE.NSEC_MISSING) {
        return this.servfail(ctx, { code: r.ede, text: `sluice: upstream ${r.upstream} reports a DNSSEC validation failure` });
      }
    } catch {
      // fall through to SERVFAIL: nothing escapes a request
    }
    return this.noAnswer(ctx, key, r);
  }

  /** No usable answer: a stale one when the cache has it (RFC 8767), else SERVFAIL with an EDE that says why. */
  private noAnswer(ctx: RequestContext, key: string, r?: ForwardResult): RequestContext {
    const staleAnswer = this.staleAnswer(key);
    if (staleAnswer) return this.servedStale(ctx, staleAnswer);
    return this.servfail(ctx, noAnswerEde(r));
  }

  private servfail(ctx: RequestContext, ede: EdeInfo): RequestContext {
    this.counters.servfail++;
    ctx.outcome = 'error';
    return this.finish(ctx, encodeRcode(ctx.msg, RCODE.SERVFAIL, ctx.query.questionEnd, ctx.query.edns, ede), RCODE.SERVFAIL);
  }

  private staleAnswer(key: string): AnswerBytes | undefined {
    const window = this.rules.config.cache.serve_stale_seconds;
    return window > 0 ? this.cache.stale(key, window) : undefined;
  }

  private servedStale(ctx: RequestContext, answer: AnswerBytes): RequestContext {
    this.counters.stale++;
    ctx.stale = true;
    return this.allowedAnswer(ctx, answer, 0, true);
  }

  /** Answers larger than the client accepts are fitted to its buffer, or sent with TC (RFC 1035 §4.2.1, RFC 6891 §7). */
  private finish(ctx: RequestContext, bytes: Buffer, rcode: number): RequestContext {
    ctx.rcode = rcode;
    const limit = ctx.client.transport === 'udp' ? udpLimit(ctx.query) : 0xffff;
    if (bytes.length > limit) {
      bytes = fitAnswer(bytes, limit, ctx.msg, ctx.query);
      if (bytes[2]! & 0x02) this.counters.truncated++;
    }
    ctx.response = bytes;
    return ctx;
  }
}

/** Why no upstream answer could be used, for the SERVFAIL's Extended DNS Error (RFC 8914). */
function noAnswerEde(r: ForwardResult | undefined): EdeInfo {
  if (r?.failure === 'invalid') return { code: EDE.NETWORK_ERROR, text: `sluice: invalid reply from upstream ${r.upstream} (${r.problem})` };
  if (r?.failure === 'backoff') return { code: EDE.NO_REACHABLE_AUTHORITY, text: 'sluice: every upstream is backed off after failing' };
  if (r?.answer) return { code: r.ede ?? EDE.NO_REACHABLE_AUTHORITY, text: `sluice: upstream ${r.upstream} answered ${rcodeName(r.answer.rcode)}` };
  return { code: EDE.NO_REACHABLE_AUTHORITY, text: 'sluice: no upstream answered' };
}

function malformedContext(msg: Buffer, client: ClientInfo, now: number): RequestContext {
  const query: Query = { id: msg.length >= 2 ? msg.readUInt16BE(0) : 0, flags: 0, name: '', type: 0, qclass: 0, questionEnd: 0, labelOffsets: [], edns: undefined };
  return { msg, query, client, startedAt: now, startedHr: performance.now(), outcome: 'malformed' };
}
