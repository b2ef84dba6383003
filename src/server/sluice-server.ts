// One running sluice: config and lists loaded into a RuleSet, a Resolver, and the listeners.
// Reload builds a complete new RuleSet off the hot path and swaps it in only when everything
// loaded; a broken config or list keeps the old state serving and says why.
import { typeName, rcodeName } from '../dns/codes.js';
import { listenerPort, type Config, type ListenerConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { RequestContext, Transport } from '../pipeline/context.js';
import { Resolver, type RuntimeHooks } from '../pipeline/resolver.js';
import { LoadError, loadRuleSet, saveActivated, stateFilesToWatch, type LoadedRules } from '../rules/load.js';
import { hostsFiles } from '../config/client-names.js';
import { FileWatcher } from './file-watcher.js';
import { policyState } from '../policy/policy.js';
import { RemoteRefresher } from './remote-refresher.js';
import { Observability } from './observability.js';
import { LogOwner } from './log-owner.js';
import { instanceName } from '../querylog/query-log.js';
import { isWorker, reportReloaded } from './cluster.js';
import { answerAdminRequests, reportShared } from './worker-ipc.js';
import type { FlushResult, QueryReport, QueryRequest, ReloadResult, ResolverActions } from '../admin/backend.js';
import { queryReport } from '../admin/query-report.js';
import { encodeQueryMessage } from '../dns/message-text.js';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { stateDir } from '../config/paths.js';
import { SharedState } from '../shared/shared-state.js';
import { answerMessage } from '../dns/answer-bytes.js';
import { effectiveRules } from '../rules/effective.js';
import { listenError } from './listen-error.js';
import { TcpListener } from './tcp.js';
import { createDotListener } from './dot-listener.js';
import { DohListener } from './doh-listener.js';
import { TlsCertificate } from './tls-certificate.js';
import { RpzServer } from './rpz-server.js';
import { networkRules } from '../rpz/network-rules.js';
import type { DomainSet } from '../match/domain-set.js';
import type { RuleSet } from '../rules/rule-set.js';
import { BatchedUdpListener, createUdpListener, type ListenerHooks, type UdpListener } from './udp.js';

export interface BoundAddress {
  protocol: Transport;
  address: string;
  port: number;
  /** UDP: the batched socket or node:dgram, and why not batched when it could have been. */
  io?: 'batched' | 'dgram';
  note?: string;
}

export interface ServerOptions {
  configFile: string;
  logger: Logger;
  clock?: () => number;
}

export class SluiceServer {
  private listeners: (UdpListener | TcpListener | DohListener)[] = [];
  /** Certificates of the DoT/DoH listeners, one per cert/key pair: replaced on change and on reload. */
  private certificates = new Map<string, TlsCertificate>();
  readonly bound: BoundAddress[] = [];
  private reloading: Promise<boolean> | undefined;
  /** Why the last reload was rejected (for the admin API's answer). */
  private reloadProblems: string[] = [];
  private debug = false;
  /** (policy, network, client, name) already reported as would-block, so dry-runs do not flood the log. */
  private readonly reportedWouldBlock = new Set<string>();
  private readonly lastOverdueWarning = new Map<string, string>();
  private policyTimer: NodeJS.Timeout | undefined;
  private readonly watcher: FileWatcher;
  private readonly refresher: RemoteRefresher;
  observability!: Observability;
  adminPort: number | undefined;
  shared: SharedState | undefined;
  private loadedRules!: LoadedRules;
  /** The policy version this instance enforces (config, lists, runtime edits). */
  version = '';
  /** The zone-transfer endpoints of the config's `rpz:` zones (docs/rpz.md). */
  rpz: RpzServer[] = [];
  private rpzTimer: NodeJS.Timeout | undefined;
  private sets: ReadonlyMap<string, DomainSet> = new Map();

  private constructor(
    readonly resolver: Resolver,
    private readonly opts: ServerOptions,
    private config: Config,
  ) {
    this.watcher = new FileWatcher(
      (files) => {
        opts.logger.info({ files }, 'files changed, reloading');
        void this.reload();
      },
      300,
      (err) => opts.logger.warn({ err: err.message }, 'file watch problem'),
    );
    this.refresher = new RemoteRefresher(opts.logger, () => void this.reload());
  }

  static async start(opts: ServerOptions): Promise<SluiceServer> {
    const loaded = await loadRuleSet(opts.configFile, opts.logger);
    // The shared cache writes every answer the cache stores behind to Redis (once shared state is up).
    const hooks: RuntimeHooks = loaded.loaded.config.redis?.shared_cache ? { onStore: (key, a) => server.shared?.publishCache(key, answerMessage(a), a.cacheTtl * 1000) } : {};
    hooks.onUpstreamEvent = (e) =>
      e.kind === 'connect-failed'
        ? opts.logger.warn({ upstream: e.upstream, reason: e.reason, detail: e.detail, suppressed: e.suppressed }, `upstream connection failed: ${e.reason}`)
        : opts.logger.warn({ upstream: e.upstream, to: e.to, suppressed: e.suppressed }, 'encrypted upstream unreachable: falling back to plain DNS');
    const server: SluiceServer = new SluiceServer(new Resolver(loaded.rules, opts.clock, hooks), opts, loaded.rules.config);
    server.loadedRules = loaded;
    const now = opts.clock ?? Date.now;
    const c = loaded.loaded.config;
    // A worker of several sends its events to the primary, which owns the log.
    const owner = isWorker() ? undefined : await LogOwner.open(c, loaded.loaded.baseDir, instanceName(c), now, opts.logger);
    server.observability = new Observability(
      loaded,
      owner,
      () => server.resolver,
      opts.logger,
      now,
      () => server.sharedStatus(),
      () => server.tcpConnections(),
      () => server.udpDrops(),
      () => server.encryptedConnections(),
    );
    // The admin API's actions: on this resolver, or (a worker of several) asked by the primary.
    server.observability.actions = server.adminActions();
    if (isWorker()) answerAdminRequests(server.observability.actions);
    try {
      server.startShared(loaded);
      server.adminPort = await server.observability.startAdmin();
      await server.listen();
      await server.startRpz();
    } catch (err) {
      await server.stop();
      throw err;
    }
    server.afterLoad(loaded);
    await saveActivated(loaded, opts.logger);
    return server;
  }

  /** Shared mode: runtime edits from Redis (or the last snapshot while it is away), log stream, heartbeat. */
  private startShared(loaded: LoadedRules): void {
    const c = loaded.loaded.config;
    if (!c.redis) {
      this.version = loaded.version;
      return;
    }
    const instance = this.observability.queryLog.instance;
    const worker = isWorker() ? Number(process.env.SLUICE_WORKER_ID ?? 0) : undefined;
    this.shared = new SharedState(
      c.redis,
      instance,
      join(stateDir(c, loaded.loaded.baseDir), worker === undefined ? 'redis-snapshot.json' : `redis-snapshot.${worker}.json`),
      {
        edits: () => this.applyRules(this.loadedRules),
        remoteEvents: (batch) => this.observability.owner?.writeRemote(batch),
        // A worker's health is its own: the primary's /healthz and metrics combine them.
        beat: () => reportShared(this.sharedStatus()),
      },
      this.opts.logger,
      { worker, baseDir: loaded.loaded.baseDir, ...(this.opts.clock ? { now: this.opts.clock } : {}) },
    );
    this.shared.loadSnapshot();
    if (c.redis.shared_cache) {
      this.shared.cacheHooks = {
        warm: (key, message, remainingMs) => this.resolver.warm(key, message, remainingMs),
        room: () => this.config.cache.max_entries - this.resolver.cache.size,
      };
    }
    this.observability.queryLog.buffer.setSinks([...this.observability.sinks, this.shared]);
    this.applyRules(loaded);
  }

  /** Swap in the rules of `loaded` with the runtime edits on top. */
  private applyRules(loaded: LoadedRules): void {
    const edits = this.shared?.currentEdits;
    const effective = effectiveRules(loaded, edits);
    const rules = effective.rules;
    this.resolver.swap(rules);
    this.version = effective.version;
    this.sets = effective.sets;
    this.updateRpz(rules);
    if (this.shared) {
      this.shared.version = this.version;
      if (this.shared.rulesVersion !== loaded.version) this.shared.rulesSince = (this.opts.clock ?? Date.now)();
      this.shared.rulesVersion = loaded.version;
    }
    if (edits && edits.version > 0) this.opts.logger.info({ editsVersion: edits.version, version: this.version }, 'runtime edits applied');
  }

  /**
   * The `rpz:` zones, served by one process: the only one, or worker 1 of several (the zones are
   * the same in every worker). Zone changes in the config take effect at the next restart.
   */
  private async startRpz(): Promise<void> {
    if (isWorker() && process.env.SLUICE_WORKER_ID !== '1') return;
    const now = this.opts.clock ?? Date.now;
    for (const z of this.config.rpz) {
      const server = new RpzServer(z, this.opts.logger, now);
      this.rpz.push(server);
      await server.start().catch((err: unknown) => {
        const a = z.listen.lastIndexOf(':');
        throw listenError(err, z.listen.slice(0, a).replace(/^\[|\]$/g, ''), Number(z.listen.slice(a + 1)), 'tcp');
      });
    }
    this.updateRpz(this.resolver.ruleSet);
    // Policies start, end and follow schedules by the clock: look again every minute.
    if (this.rpz.length > 0) {
      this.rpzTimer = setInterval(() => this.updateRpz(this.resolver.ruleSet), 60_000);
      this.rpzTimer.unref();
    }
  }

  /** Give each RPZ zone its network's rules as enforced now; a zone that changes notifies its secondaries. */
  private updateRpz(rules: RuleSet): void {
    const now = (this.opts.clock ?? Date.now)();
    for (const z of this.rpz) {
      const network = z.network;
      const r = networkRules(rules.engine, this.sets, network, now);
      if (r) z.update(r);
      else this.opts.logger.warn({ zone: z.origin, network }, 'rpz zone: its network is no longer in the config; the zone keeps its last content');
    }
  }

  sharedStatus(): Record<string, unknown> {
    const s = this.shared;
    if (!s) return { mode: 'standalone', version: this.version };
    const e = s.currentEdits;
    return { mode: 'shared', version: this.version, rulesVersion: s.rulesVersion, editsEpoch: e.epoch, editsVersion: e.version, droppedEvents: s.droppedEvents, ...s.health() };
  }

  private onDone(ctx: RequestContext): void {
    this.observability.done(ctx);
    if (this.debug) logQuery(this.opts.logger, ctx);
    const d = ctx.decision;
    if (d?.kind === 'allowed' && d.wouldBlock) {
      const key = `${d.wouldBlock.policy.id}|${ctx.network?.name}|${ctx.client.address}|${ctx.query.name}`;
      if (this.reportedWouldBlock.has(key)) return;
      if (this.reportedWouldBlock.size >= 10_000) this.reportedWouldBlock.clear();
      this.reportedWouldBlock.add(key);
      this.opts.logger.info(
        { policy: d.wouldBlock.policy.id, network: ctx.network?.name, client: ctx.client.address, name: ctx.query.name, list: d.wouldBlock.list, rule: d.wouldBlock.rule },
        `dry-run: policy ${d.wouldBlock.policy.id} would block ${ctx.query.name}`,
      );
    }
  }

  /** A policy past its review date keeps enforcing and says so: a warning once a day per policy. */
  private checkPolicies(): void {
    const now = (this.opts.clock ?? Date.now)();
    const day = new Date(now).toISOString().slice(0, 10);
    for (const p of this.resolver.ruleSet.engine.policies) {
      const s = policyState(p, now);
      if (s.state !== 'review-overdue' || this.lastOverdueWarning.get(p.id) === day) continue;
      this.lastOverdueWarning.set(p.id, day);
      this.opts.logger.warn(
        { policy: p.id, review_by: p.config.review_by, overdueDays: -(s.reviewInDays ?? 0) },
        `policy ${p.id} is overdue for review (review_by ${p.config.review_by}); it is still enforced`,
      );
    }
  }

  /** Watch what this config reads, and schedule downloads of its url lists. */
  private afterLoad(loaded: LoadedRules): void {
    const { config } = loaded.loaded;
    if (config.watch) {
      const files = [this.opts.configFile, ...[...loaded.lists.resolved.lists.values()].map((d) => d.file), ...stateFilesToWatch(loaded), ...hostsFiles(loaded.loaded)];
      if (loaded.lists.resolved.catalog) files.push(loaded.lists.resolved.catalog.file);
      this.watcher.setFiles(files);
    } else {
      this.watcher.setFiles([]);
    }
    this.refresher.schedule(loaded);
    this.debug = this.opts.logger.isLevelEnabled('debug');
    this.checkPolicies();
    if (!this.policyTimer) {
      this.policyTimer = setInterval(() => this.checkPolicies(), 3_600_000);
      this.policyTimer.unref();
    }
  }

  private async listen(): Promise<void> {
    const log = this.opts.logger;
    this.debug = log.isLevelEnabled('debug');
    const hooks: ListenerHooks = {
      done: (ctx) => this.onDone(ctx),
      error: (err, where) => log.error({ err, where }, 'request error'),
    };
    const handler = () => this.resolver;
    for (const l of this.config.listeners) {
      // Port 0 (tests): TCP takes the port UDP was given, so one address:port serves both, as in
      // production; if another process holds that TCP port, try again with a new one.
      for (let attempt = 0; ; attempt++) {
        const started: (UdpListener | TcpListener)[] = [];
        const bound: BoundAddress[] = [];
        let port = l.port;
        try {
          for (const proto of l.protocols) {
            if (proto !== 'udp' && proto !== 'tcp') continue; // DoT and DoH: see below
            let note: string | undefined;
            let listener: UdpListener | TcpListener;
            if (proto === 'udp') {
              ({ listener, note } = createUdpListener(this.config.udp.io, { address: l.address, port, listenerNetwork: l.network, handler, hooks }));
            } else
              listener = new TcpListener(l.address, port, l.network, handler, hooks, () => ({
                idleTimeoutMs: this.config.tcp.idle_timeout_ms,
                maxConnections: this.config.tcp.max_connections,
                maxConnectionsPerClient: this.config.tcp.max_connections_per_client,
              }));
            started.push(listener);
            const a = await listener.start().catch((err: unknown) => {
              throw listenError(err, l.address, port, proto);
            });
            port = a.port;
            bound.push({ protocol: proto, ...a, io: listener instanceof TcpListener ? undefined : listener.io, note });
          }
        } catch (err) {
          await Promise.all(started.map((x) => x.stop(0)));
          if (l.port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 5) continue;
          throw err;
        }
        this.listeners.push(...started);
        this.bound.push(...bound);
        for (const b of bound) log.info({ protocol: b.protocol, address: b.address, port: b.port, network: l.network, io: b.io, io_note: b.note }, 'listening');
        break;
      }
      if (l.protocols.includes('dot')) await this.listenEncrypted(l, 'dot', hooks);
      if (l.protocols.includes('doh')) await this.listenEncrypted(l, 'doh', hooks);
    }
  }

  /** A DoT or DoH listener on its own port (`dot_port`, `doh_port`), with the listener's certificate. */
  private async listenEncrypted(l: ListenerConfig, proto: 'dot' | 'doh', hooks: ListenerHooks): Promise<void> {
    const port = listenerPort(l, proto);
    const certificate = this.certificate(l);
    const handler = () => this.resolver;
    const listener =
      proto === 'dot'
        ? createDotListener(
            l.address,
            port,
            l.network,
            handler,
            hooks,
            () => ({ idleTimeoutMs: this.config.dot.idle_timeout_ms, maxConnections: this.config.dot.max_connections, maxConnectionsPerClient: this.config.dot.max_connections_per_client }),
            certificate,
          )
        : new DohListener(l.address, port, l.network, handler, hooks, () => this.config.doh, certificate);
    const a = await listener.start().catch((err: unknown) => {
      throw listenError(err, l.address, port, proto);
    });
    this.listeners.push(listener);
    this.bound.push({ protocol: proto, ...a });
    this.opts.logger.info({ protocol: proto, address: a.address, port: a.port, network: l.network, cert: certificate.certFile }, 'listening');
  }

  /** The certificate of listener `l` (its files relative to the config file), shared by listeners naming the same files. */
  private certificate(l: ListenerConfig): TlsCertificate {
    if (!l.tls) throw new Error(`listener ${l.address}: dot and doh need tls: { cert_file, key_file }`); // the schema requires it
    const base = dirname(resolvePath(this.opts.configFile));
    const certFile = resolvePath(base, l.tls.cert_file);
    const keyFile = resolvePath(base, l.tls.key_file);
    const key = `${certFile}\0${keyFile}`;
    let c = this.certificates.get(key);
    if (!c) {
      c = new TlsCertificate(certFile, keyFile, this.opts.logger);
      this.certificates.set(key, c);
    }
    return c;
  }

  /** Summed over the batched UDP listeners: [send errors, oversized datagrams]. */
  udpDrops(): [number, number] {
    const total: [number, number] = [0, 0];
    for (const l of this.listeners) {
      if (!(l instanceof BatchedUdpListener)) continue;
      const [sendErrors, oversized] = l.stats();
      total[0] += sendErrors;
      total[1] += oversized;
    }
    return total;
  }

  tcpConnections(): number {
    let n = 0;
    for (const l of this.listeners) if (l instanceof TcpListener && l.transport === 'tcp') n += l.connections;
    return n;
  }

  /** Open connections of the DoT and DoH listeners. */
  encryptedConnections(): { dot: number; doh: number } {
    const n = { dot: 0, doh: 0 };
    for (const l of this.listeners) {
      if (l instanceof DohListener) n.doh += l.connections;
      else if (l instanceof TcpListener && l.transport === 'dot') n.dot += l.connections;
    }
    return n;
  }

  /** Port of the first listener of `protocol` (tests listen on port 0). */
  port(protocol: Transport = 'udp'): number {
    return this.bound.find((b) => b.protocol === protocol)?.port ?? 0;
  }

  /** Reload config and lists. Returns false (and keeps serving the old state) when they are broken. */
  reload(): Promise<boolean> {
    // Reloads do not overlap: a second request while one runs waits for it and then runs again.
    const run = async (): Promise<boolean> => {
      const log = this.opts.logger;
      // Certificates are read again on every reload (SIGHUP), whatever becomes of the config.
      for (const c of this.certificates.values()) c.reload();
      try {
        const loaded = await loadRuleSet(this.opts.configFile, log, { previous: this.loadedRules });
        const { rules } = loaded;
        if (JSON.stringify(rules.config.listeners) !== JSON.stringify(this.config.listeners) || rules.config.udp.io !== this.config.udp.io) {
          log.warn('listener changes (listeners, udp.io) take effect at the next restart');
        }
        if (JSON.stringify(rules.config.rpz) !== JSON.stringify(this.config.rpz)) log.warn('rpz zone changes (zones, listen, allow_transfer, notify, tsig) take effect at the next restart');
        this.loadedRules = loaded;
        this.applyRules(loaded);
        // Only a changed logging.level: a logger given a level of its own (tests) keeps it.
        if (rules.config.logging.level !== this.config.logging.level) log.level = rules.config.logging.level;
        this.config = rules.config;
        this.afterLoad(loaded);
        this.observability.reconfigure(loaded);
        await saveActivated(loaded, log);
        log.info({ config: this.opts.configFile }, 'reloaded');
        reportReloaded();
        this.reloadProblems = [];
        return true;
      } catch (err) {
        const lines = err instanceof LoadError ? err.lines : [(err as Error).message];
        this.reloadProblems = lines;
        log.error({ problems: lines }, `reload rejected, still serving the previous config:\n${lines.join('\n')}`);
        return false;
      }
    };
    const prev = this.reloading ?? Promise.resolve(true);
    const next = prev.then(run, run);
    this.reloading = next;
    return next;
  }

  /** What the admin API may make this resolver do (admin/backend.ts ResolverActions). */
  private adminActions(): ResolverActions {
    return {
      flushCache: (name) => Promise.resolve(this.flushCache(name)),
      reload: async (): Promise<ReloadResult> => {
        const accepted = await this.reload();
        return { accepted, problems: accepted ? [] : this.reloadProblems, version: this.version, processes: 1 };
      },
      query: (q) => this.queryForAdmin(q),
    };
  }

  /** Empty the answer cache, or only `name` and the names below it. In shared mode Redis keeps its copies. */
  flushCache(name: string | undefined): FlushResult {
    const flushed = this.resolver.cache.flush(name);
    this.opts.logger.info({ name: name ?? null, flushed }, name === undefined ? 'cache flushed' : `cache flushed for ${name} and below`);
    return { flushed, name: name ?? null, processes: 1 };
  }

  /**
   * One query through the real pipeline as if `q.client` had sent it over TCP (so no UDP rate
   * limit and no truncation), on no listener: not logged, not sent anywhere. It counts in the
   * resolver's counters (cache hits, forwards) as any query does.
   */
  async queryForAdmin(q: QueryRequest): Promise<QueryReport> {
    const msg = encodeQueryMessage(Math.floor(Math.random() * 0x10000), q.name, q.type);
    const started = performance.now();
    const ctx = await this.resolver.handle(msg, { address: q.client, port: 0, transport: 'tcp', listener: 'admin-api', listenerNetwork: undefined });
    return queryReport(q, ctx, performance.now() - started, this.version);
  }

  /** Stop listening, finish answers in flight (at most `graceMs`), close upstream sockets. */
  async stop(graceMs = 4000): Promise<void> {
    this.watcher.close();
    this.refresher.close();
    clearInterval(this.policyTimer);
    clearInterval(this.rpzTimer);
    await Promise.all(this.rpz.map((z) => z.stop()));
    this.rpz = [];
    await Promise.all(this.listeners.map((l) => l.stop(graceMs)));
    this.listeners = [];
    for (const c of this.certificates.values()) c.close();
    this.certificates.clear();
    this.resolver.close();
    await this.observability?.close();
    await this.shared?.close();
  }
}

function logQuery(log: Logger, ctx: RequestContext): void {
  const d = ctx.decision;
  log.debug(
    {
      client: ctx.client.address,
      transport: ctx.client.transport,
      network: ctx.network?.name,
      name: ctx.query.name,
      type: typeName(ctx.query.type),
      outcome: ctx.outcome,
      policy: d?.kind === 'blocked' ? d.policy?.id : d?.wouldBlock ? `${d.wouldBlock.policy.id} (dry-run, would block)` : d?.exception?.policy,
      exception: d?.kind === 'allowed' && d.exception ? d.exception.scope : undefined,
      list: d?.kind === 'blocked' ? d.list : undefined,
      rule: d?.kind === 'blocked' ? d.rule : undefined,
      cache: ctx.cacheHit ?? false,
      upstream: ctx.upstream,
      rcode: ctx.rcode !== undefined ? rcodeName(ctx.rcode) : undefined,
    },
    'query',
  );
}
