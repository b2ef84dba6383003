// The request pipeline. The stages run in the order of STAGES below; each answers the query or
// passes it on, and only the last step, forwarding, is asynchronous:
//   read query → refuse outside networks → rate limit → decide (policy: blocked answer) →
//   resolver.arpa (DDR) → ANY → cache → forward → inspect the answer (CNAME chain, rebinding) →
//   render → fit to the transport
// What answers (the compiled rules, the cache, the upstream pool, the forwarder) is one Runtime
// record: a reload or a shared edit builds a new one off the hot path and swaps it in with one
// assignment; the cache and the pool carry over unless the config parts they depend on changed.
import type { Config } from '../config/schema.js';
import { CLASS_IN, EDE, RCODE, TYPE, isUpstreamFailure, rcodeName } from '../dns/codes.js';
import { renderAnswer, scanAnswer, type AnswerBytes } from '../dns/answer-bytes.js';
import { checkReply } from '../dns/reply-check.js';
import { padResponse, queryAsksPadding } from '../dns/padding.js';
import { encodeAnswer, encodeRcode, encodeRecord, encodeTruncated, fitAnswer, readQuery, skipName, udpLimit, type EdeInfo, type Query } from '../dns/wire.js';
import type { Decision } from '../policy/policy-engine.js';
import { disabledText } from '../policy/overrides.js';
import { RateLimiter } from './rate-limiter.js';
import { UpstreamPool, type UpstreamEvent, type UpstreamHealth } from '../upstream/upstream-pool.js';
import { AnswerCache, type Clock } from './answer-cache.js';
import { loadBatchBinding } from '../native/udp-batch.js';
import { classify } from './classify.js';
import { HEALTH_PROBE_NAME, type ClientInfo, type RequestContext } from './context.js';
import { Forwarder, type ForwardResult } from './forward.js';
import { routeFor } from '../upstream/routes.js';
import type { RuleSet } from '../rules/rule-set.js';

// RFC 8482 §4.2: the synthesised answer to ANY is one HINFO record, CPU "RFC8482", OS "".
const RFC8482_HINFO = encodeRecord(12, 13, 3600, Buffer.from([7, ...Buffer.from('RFC8482'), 0]));

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

/** What answers queries, swapped whole: the rules and what is built from their config. */
export interface Runtime {
  readonly rules: RuleSet;
  readonly cache: AnswerCache;
  readonly pool: UpstreamPool;
  readonly forwarder: Forwarder;
}

/** Given at construction and kept by every runtime built after (nothing to re-attach after a swap). */
export interface RuntimeHooks {
  /** Every answer the cache stores (the shared cache writes it behind to Redis). */
  onStore?: (key: string, answer: AnswerBytes) => void;
  /** Encrypted upstreams that could not be reached, or fell back to plain DNS (rate-limited by the pool). */
  onUpstreamEvent?: (e: UpstreamEvent) => void;
}

/**
 * A stage of the synchronous path: it answers (returns the context, with `response` set or not
 * when the query is dropped) or returns undefined to pass the query on.
 */
type Stage = (r: Resolver, ctx: RequestContext, rt: Runtime) => RequestContext | undefined;

/** The synchronous stages, in the order they run; a query none answers is forwarded. */
const STAGES: readonly Stage[] = [
  (r, ctx) => r.answerHealthProbe(ctx),
  (r, ctx, rt) => r.refuseOutsideNetworks(ctx, rt),
  (r, ctx) => r.rateLimit(ctx),
  (r, ctx, rt) => r.decide(ctx, rt),
  (r, ctx, rt) => r.answerDdr(ctx, rt),
  (r, ctx, rt) => r.answerAny(ctx, rt),
  (r, ctx, rt) => r.answerFromCache(ctx, rt),
];

export class Resolver {
  private runtime: Runtime;
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
    private readonly hooks: RuntimeHooks = {},
  ) {
    this.limiter = new RateLimiter(rules.config.hardening.rate_limit_clients);
    this.runtime = this.build(rules, undefined);
  }

  get ruleSet(): RuleSet {
    return this.runtime.rules;
  }

  get cache(): AnswerCache {
    return this.runtime.cache;
  }

  /** Swap in new rules. Blocking is decided before the cache, so cached answers stay valid. */
  swap(rules: RuleSet): void {
    const old = this.runtime;
    this.runtime = this.build(rules, old);
    // Let queries in flight on the old pool finish before closing it.
    if (old.pool !== this.runtime.pool) setTimeout(() => old.pool.close(), old.rules.config.upstreams.total_timeout_ms + 100).unref();
  }

  /** The runtime for `rules`, keeping what of `previous` their config leaves valid. */
  private build(rules: RuleSet, previous: Runtime | undefined): Runtime {
    const c = rules.config;
    const was = previous?.rules.config;
    const samePool = previous !== undefined && was !== undefined && sameUpstreams(was, c);
    const pool = samePool ? previous.pool : newPool(c, this.hooks.onUpstreamEvent);
    // New upstreams: their answers may differ, so the cache starts empty. Resizing an LRU means a new one.
    const cache = samePool && was.cache.max_entries === c.cache.max_entries ? previous.cache : this.newCache(c);
    const forwarder = previous && pool === previous.pool && cache === previous.cache ? previous.forwarder : new Forwarder(pool, cache, () => this.clamp());
    return { rules, cache, pool, forwarder };
  }

  private newCache(c: Config): AnswerCache {
    const cache = new AnswerCache(c.cache.max_entries, this.now);
    cache.onStore = this.hooks.onStore;
    return cache;
  }

  close(): void {
    this.runtime.pool.close();
  }

  get upstreamErrors(): number {
    return this.runtime.pool.errors;
  }

  /** Forwarded queries waiting for an upstream (prefetches included). */
  get forwardsInFlight(): number {
    return this.runtime.forwarder.size;
  }

  /** Per upstream (`host:port`): round-trip times, back-off, invalid replies, retries. */
  get upstreamHealth(): ReadonlyMap<string, UpstreamHealth> {
    return this.runtime.pool.health;
  }

  /** Put an answer another instance resolved (a whole DNS message, from the shared cache) into the cache. */
  warm(key: string, message: Buffer, remainingMs: number): void {
    const nameEnd = skipName(message, 12);
    // Bytes from Redis are checked as an upstream's reply is: a corrupted value is never served.
    if (nameEnd < 0 || checkReply(message, nameEnd + 4) !== undefined) return;
    const answer = scanAnswer(message, nameEnd + 4, this.clamp());
    if (answer && answer.cacheTtl > 0) this.runtime.cache.warm(key, answer, Math.min(remainingMs, answer.cacheTtl * 1000));
  }

  private clamp() {
    const c = this.runtime.rules.config.cache;
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
    const rt = this.runtime;
    const ctx: RequestContext = { msg, query, client, startedAt: this.now(), startedHr: performance.now() };
    for (let i = 0; i < STAGES.length; i++) {
      const answered = STAGES[i]!(this, ctx, rt);
      if (answered) return answered;
    }
    return this.forward(ctx, rt, AnswerCache.key(query));
  }

  // The stages (see STAGES). Public only for the list above; each is called once per query.

  /** `sluice health`'s query: NOERROR from here, for any client, never forwarded (see HEALTH_PROBE_NAME). */
  answerHealthProbe(ctx: RequestContext): RequestContext | undefined {
    if (ctx.query.name !== HEALTH_PROBE_NAME) return undefined;
    ctx.probe = true;
    ctx.outcome = 'allowed';
    return this.finish(ctx, encodeRcode(ctx.msg, RCODE.NOERROR, ctx.query.questionEnd, ctx.query.edns), RCODE.NOERROR);
  }

  /** Never an open resolver: a client in no configured network, or a class other than IN, is refused. */
  refuseOutsideNetworks(ctx: RequestContext, rt: Runtime): RequestContext | undefined {
    const { msg, query } = ctx;
    const network = classify(ctx.client, rt.rules.engine.networks, rt.rules.table);
    if (network && query.qclass === CLASS_IN) {
      ctx.network = network;
      return undefined;
    }
    this.counters.refused++;
    ctx.outcome = 'refused';
    const ede = network ? undefined : { code: EDE.PROHIBITED, text: 'sluice: client is in no configured network' };
    return this.finish(ctx, encodeRcode(msg, RCODE.REFUSED, query.questionEnd, query.edns, ede), RCODE.REFUSED);
  }

  /** Per client over UDP (TCP needs a handshake, so it cannot be spoofed): TC to slow down, or drop. */
  rateLimit(ctx: RequestContext): RequestContext | undefined {
    const limit = ctx.network!.rateLimit;
    if (limit === undefined || ctx.client.transport !== 'udp') return undefined;
    const verdict = this.limiter.check(ctx.client.address, limit, ctx.startedHr);
    if (verdict === 'ok') return undefined;
    this.counters.rateLimited++;
    ctx.outcome = 'refused';
    ctx.rateLimited = true;
    if (verdict === 'drop') return ctx;
    ctx.rcode = RCODE.NOERROR;
    ctx.response = encodeTruncated(ctx.msg, ctx.query);
    return ctx;
  }

  /** The policy decision: a blocked name gets its profile's answer here. */
  decide(ctx: RequestContext, rt: Runtime): RequestContext | undefined {
    const decision = rt.rules.engine.decide(ctx.network!, ctx.query.name, ctx.startedAt, ctx.client.address);
    ctx.decision = decision;
    if (decision.kind === 'blocked') return this.blocked(ctx, decision, rt);
    ctx.outcome = 'allowed';
    return undefined;
  }

  /**
   * RFC 9462: resolver.arpa is served here, never forwarded; `_dns.resolver.arpa` SVCB names this
   * resolver's DoT/DoH endpoints. After the policy, so that a list blocking the name still blocks
   * it; logged as allowed with no upstream, as the ANY answer is. Off with `ddr.enabled: false`.
   */
  answerDdr(ctx: RequestContext, rt: Runtime): RequestContext | undefined {
    const bytes = rt.rules.ddr?.answer(ctx.msg, ctx.query);
    return bytes ? this.finish(ctx, bytes, bytes[3]! & 0xf) : undefined;
  }

  /** RFC 8482: ANY gets one synthesised HINFO record (or REFUSED), never a forwarded full answer. */
  answerAny(ctx: RequestContext, rt: Runtime): RequestContext | undefined {
    const { msg, query } = ctx;
    if (query.type !== TYPE.ANY) return undefined;
    if (rt.rules.config.hardening.any_queries === 'refuse') {
      return this.finish(ctx, encodeRcode(msg, RCODE.REFUSED, query.questionEnd, query.edns, { code: EDE.NOT_SUPPORTED, text: 'sluice: ANY queries are refused' }), RCODE.REFUSED);
    }
    return this.finish(ctx, encodeAnswer(msg, query, RCODE.NOERROR, { an: 1, ns: 0 }, RFC8482_HINFO), RCODE.NOERROR);
  }

  answerFromCache(ctx: RequestContext, rt: Runtime): RequestContext | undefined {
    const cached = rt.cache.lookupQuery(ctx.query);
    if (!cached) return undefined;
    this.counters.cacheHits++;
    ctx.cacheHit = true;
    // In the last tenth of its TTL (ms left ≤ TTL s × 100), the answer is refreshed behind this one.
    const refresh = cached.expiresAt - ctx.startedAt <= cached.cacheTtl * 100 && rt.rules.config.cache.prefetch;
    const answered = this.allowedAnswer(ctx, rt, cached, rt.cache.ageOf(cached));
    if (refresh) this.prefetch(ctx, rt);
    return answered;
  }

  /** Ask the upstream again for a cached answer about to expire (Unbound's prefetch); the forwarder caches the reply. */
  private prefetch(ctx: RequestContext, rt: Runtime): void {
    const key = AnswerCache.key(ctx.query);
    if (rt.forwarder.inFlightFor(key)) return;
    this.counters.prefetched++;
    try {
      rt.forwarder.forward(routeFor(rt.rules.routes, ctx.query.name), ctx.msg, ctx.query, key).catch(() => undefined);
    } catch {
      // a prefetch that cannot start changes nothing: the entry expires as it would have
    }
  }

  private blocked(ctx: RequestContext, decision: Extract<Decision, { kind: 'blocked' }>, rt: Runtime): RequestContext {
    const rules = rt.rules;
    this.counters.blocked++;
    ctx.decision = decision;
    ctx.outcome = 'blocked';
    const responder = (decision.response.mode === 'nxdomain' ? rules.nxdomain : rules.blocked).get(decision.profile)!;
    const bytes = responder.answer(ctx.msg, ctx.query, decision.ruleLabels, decision.reason);
    return this.finish(ctx, bytes, bytes[3]! & 0xf);
  }

  /**
   * An allowed answer (cached or fresh) on its way out: CNAME inspection (a chain to a blocked
   * name blocks the query like its target), rebinding protection, then render for this client.
   */
  private allowedAnswer(ctx: RequestContext, rt: Runtime, answer: AnswerBytes, age: number, stale = false): RequestContext {
    const rules = rt.rules;
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
          return this.blocked(ctx, viaCname, rt);
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
    const d = ctx.decision;
    const bytes = stale
      ? renderAnswer(answer, ctx.msg, ctx.query, 0, { ttl: rules.config.cache.stale_ttl, ede: { code: EDE.STALE_ANSWER, text: 'sluice: stale answer, upstreams unreachable' } })
      : d?.kind === 'allowed' && d.disabled !== undefined
        ? renderAnswer(answer, ctx.msg, ctx.query, age, { ede: { code: EDE.OTHER, text: disabledText(d.disabled) } })
        : renderAnswer(answer, ctx.msg, ctx.query, age);
    return this.finish(ctx, bytes, answer.rcode);
  }

  // Not an async function: an async function's frame lives on the heap while it waits, and on
  // this path (one per forwarded query) that was the largest single allocation (~1.6 KB).
  private forward(ctx: RequestContext, rt: Runtime, key: string): Promise<RequestContext> {
    this.counters.forwarded++;
    const { msg, query } = ctx;
    let exchange: Promise<ForwardResult>;
    try {
      exchange = rt.forwarder.forward(routeFor(rt.rules.routes, query.name), msg, query, key);
    } catch {
      return Promise.resolve(this.noAnswer(ctx, rt, key));
    }
    // The answer is inspected under the rules of when it arrives: a swap meanwhile may block it.
    return exchange.then(
      (r) => this.forwarded(ctx, this.runtime, key, r),
      () => this.noAnswer(ctx, this.runtime, key),
    );
  }

  private forwarded(ctx: RequestContext, rt: Runtime, key: string, r: ForwardResult): RequestContext {
    try {
      ctx.upstream = r.upstream;
      if (r.answer && !isUpstreamFailure(r.answer.rcode)) return this.allowedAnswer(ctx, rt, r.answer, 0);
      // A validation failure is the upstream's verdict on the data, not an outage: never stale.
      if (r.ede !== undefined && r.ede >= EDE.DNSSEC_BOGUS && r.ede <= EDE.NSEC_MISSING) {
        return this.servfail(ctx, { code: r.ede, text: `sluice: upstream ${r.upstream} reports a DNSSEC validation failure` });
      }
    } catch {
      // fall through to SERVFAIL: nothing escapes a request
    }
    return this.noAnswer(ctx, rt, key, r);
  }

  /** No usable answer: a stale one when the cache has it (RFC 8767), else SERVFAIL with an EDE that says why. */
  private noAnswer(ctx: RequestContext, rt: Runtime, key: string, r?: ForwardResult): RequestContext {
    const staleAnswer = this.staleAnswer(rt, key);
    if (staleAnswer) return this.servedStale(ctx, rt, staleAnswer);
    return this.servfail(ctx, noAnswerEde(r));
  }

  private servfail(ctx: RequestContext, ede: EdeInfo): RequestContext {
    this.counters.servfail++;
    ctx.outcome = 'error';
    return this.finish(ctx, encodeRcode(ctx.msg, RCODE.SERVFAIL, ctx.query.questionEnd, ctx.query.edns, ede), RCODE.SERVFAIL);
  }

  private staleAnswer(rt: Runtime, key: string): AnswerBytes | undefined {
    const window = rt.rules.config.cache.serve_stale_seconds;
    return window > 0 ? rt.cache.stale(key, window) : undefined;
  }

  private servedStale(ctx: RequestContext, rt: Runtime, answer: AnswerBytes): RequestContext {
    this.counters.stale++;
    ctx.stale = true;
    return this.allowedAnswer(ctx, rt, answer, 0, true);
  }

  /** Answers larger than the client accepts are fitted to its buffer, or sent with TC (RFC 1035 §4.2.1, RFC 6891 §7). */
  private finish(ctx: RequestContext, bytes: Buffer, rcode: number): RequestContext {
    ctx.rcode = rcode;
    const transport = ctx.client.transport;
    const limit = transport === 'udp' ? udpLimit(ctx.query) : 0xffff;
    if (bytes.length > limit) {
      bytes = fitAnswer(bytes, limit, ctx.msg, ctx.query);
      if (bytes[2]! & 0x02) this.counters.truncated++;
    }
    // EDNS padding (RFC 8467) over DoT/DoH only, when the query asks: no cost on the UDP/TCP path.
    if ((transport === 'dot' || transport === 'doh') && ctx.query.edns && queryAsksPadding(ctx.msg, ctx.query.questionEnd)) bytes = padResponse(bytes);
    ctx.response = bytes;
    return ctx;
  }
}

/** Whether two configs ask the same upstreams the same way (else a new pool and an empty cache). */
function sameUpstreams(a: Config, b: Config): boolean {
  return a.udp.io === b.udp.io && a.hardening.upstream_backoff_ms === b.hardening.upstream_backoff_ms && JSON.stringify(a.upstreams) === JSON.stringify(b.upstreams);
}

function newPool(config: Config, onEvent: ((e: UpstreamEvent) => void) | undefined): UpstreamPool {
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
    tlsConnections: u.tls_connections,
    tlsIdleTimeoutMs: u.tls_idle_timeout_ms,
    onEvent,
  });
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
