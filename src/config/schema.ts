// The config schema: the single source of truth for the config's shape, defaults and
// documentation. Every object is strict so a typo in a key is an error, not a silent default.
import { z } from 'zod';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]*$/i, 'a name of letters, digits, "-" and "_"')
  .describe('An identifier: letters, digits, "-" and "_".');

const ipAddress = z.string().refine((s) => isIP(s) !== 0, 'an IPv4 or IPv6 address');

export const cidr = z.string().refine((s) => {
  try {
    if (!s.includes('/')) return isIP(s) !== 0;
    ipaddr.parseCIDR(s);
    return true;
  } catch {
    return false;
  }
}, 'a CIDR such as "10.0.0.0/8" or "2001:db8::/32" (or a single address)');

const port = z.number().int().min(0).max(65535);
const millis = (max: number) => z.number().int().min(1).max(max);

export const listenerSchema = z
  .strictObject({
    address: ipAddress.describe('Address to listen on, e.g. "127.0.0.1", "0.0.0.0" or "::".'),
    port: port.default(53).describe('Port to listen on (0 picks a free port, for tests).'),
    protocols: z
      .array(z.enum(['udp', 'tcp', 'dot', 'doh']))
      .min(1)
      .default(['udp', 'tcp'])
      .describe(
        'Transports served on this address: `udp` and `tcp` on `port`, `dot` (DNS over TLS, RFC 7858) on `dot_port`, `doh` (DNS over HTTPS, RFC 8484, HTTP/2 and HTTP/1.1) on `doh_port`. ' +
          '`dot` and `doh` need `tls`.',
      ),
    dot_port: port.default(853).describe('Port of the DNS-over-TLS listener (`dot` in protocols).'),
    doh_port: port.default(443).describe('Port of the DNS-over-HTTPS listener (`doh` in protocols); queries at `doh.path`.'),
    tls: z
      .strictObject({
        cert_file: z.string().min(1).describe('PEM certificate chain (server certificate first), relative to the config file. Replaced on disk or on SIGHUP: new handshakes use the new one; open connections are kept.'),
        key_file: z.string().min(1).describe('PEM private key of the certificate, relative to the config file.'),
      })
      .optional()
      .describe('Certificate of the `dot` and `doh` listeners (from the organisation\'s CA, or ACME).'),
    network: name
      .optional()
      .describe(
        'Network that every query arriving on this listener belongs to (one address per VLAN). ' +
          'Without it the client source address is looked up in the networks table.',
      ),
  })
  .describe('An address and port sluice answers on.')
  .superRefine((l, ctx) => {
    if ((l.protocols.includes('dot') || l.protocols.includes('doh')) && !l.tls) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: '`dot` and `doh` listeners need `tls: { cert_file, key_file }`' });
    }
  });

export const networkLogSchema = z
  .strictObject({
    level: z.enum(['all', 'blocked', 'none']).default('all').describe('Which queries of this network go to the query log.'),
    pseudonymize: z
      .boolean()
      .default(false)
      .describe('Log a keyed hash of the client address instead of the address (same device, same token; not reversible without the key).'),
  })
  .describe('Query logging for a network: query logs of staff are personal data.');

export const networkSchema = z
  .strictObject({
    cidrs: z.array(cidr).default([]).describe('Client address ranges; the longest matching prefix over all networks wins.'),
    profile: name.describe('Profile whose rules apply to clients of this network.'),
    log: networkLogSchema.prefault({}),
    rate_limit: z
      .strictObject({
        rate: z.number().min(0).default(0).describe('Queries per second per client address over UDP; 0 is unlimited.'),
        burst: z.number().int().min(1).default(100).describe('Queries a client may send at once before the rate applies.'),
        slip: z
          .number()
          .int()
          .min(0)
          .default(2)
          .describe('Every Nth query over the limit gets a truncated (TC) answer so a real client retries over TCP; the others are dropped. 0 drops all (as BIND/Unbound RRL).'),
      })
      .prefault({})
      .describe('Per-client rate limiting (token bucket).'),
    description: z.string().optional().describe('Free text for humans.'),
  })
  .describe('A client network.');

export const blockResponseSchema = z
  .strictObject({
    mode: z
      .enum(['nxdomain', 'null', 'refused', 'address'])
      .default('nxdomain')
      .describe(
        'nxdomain: NXDOMAIN with an SOA so clients cache it (RFC 2308); null: A 0.0.0.0 / AAAA ::, ' +
          'other types empty NOERROR; refused: REFUSED; address: the fixed ipv4/ipv6 addresses below.',
      ),
    ipv4: z.array(z.ipv4()).default([]).describe('Answers to A queries in mode "address".'),
    ipv6: z.array(z.ipv6()).default([]).describe('Answers to AAAA queries in mode "address".'),
    ttl: z.number().int().min(0).max(86400).default(60).describe('TTL of blocked answers, seconds.'),
  })
  .describe('How a blocked name is answered.');

export const profileSchema = z
  .strictObject({
    block: z.array(name).default([]).describe('Names of lists (see `lists`) whose domains are blocked.'),
    allow: z
      .array(z.string())
      .default([])
      .describe('Domains that are answered normally even when a blocked list has them (they win over block entries).'),
    block_response: blockResponseSchema.prefault({}),
    block_bypass: z
      .boolean()
      .default(true)
      .describe(
        'A profile that blocks anything (itself or through a policy) also blocks the `doh-bypass` list, when the config or catalog has one: ' +
          'public DNS-over-HTTPS/TLS endpoints would let devices resolve around sluice.',
      ),
    description: z.string().optional(),
  })
  .describe('The rules a network gets.');

export const listSchema = z
  .strictObject({
    file: z.string().min(1).optional().describe('Path of the list file, relative to the config file.'),
    url: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe('An http(s) source for the list instead of `file`; the last good copy is kept in `state_dir`.'),
    refresh_minutes: z.number().int().min(1).default(1440).describe('How often a `url` list is checked for a new version.'),
    format: z.enum(['auto', 'plain', 'hosts', 'adblock']).default('auto').describe('Format of a `url` list.'),
    description: z.string().optional(),
  })
  .refine((l) => (l.file === undefined) !== (l.url === undefined), { message: 'a list has either `file` or `url`', path: ['file'] })
  .describe('A named list of domains.');

export const remoteListsSchema = z
  .strictObject({
    timeout_ms: millis(120000).default(30000).describe('Time limit for one download.'),
    max_bytes: z.number().int().min(1024).default(64 * 1024 * 1024).describe('Downloads larger than this are rejected.'),
  })
  .describe('Downloading `url` lists.');

const plainUpstream = z
  .string()
  .refine(
    (s) => s === 'system' || parseUpstreamAddress(s) !== undefined || parseEncryptedUpstream(s) !== undefined,
    'an upstream such as "192.0.2.53", "192.0.2.53:5353", "[2001:db8::53]:53", "system", "tls://192.0.2.53", "tls://192.0.2.53#dns.example.org" or "https://192.0.2.53/dns-query"',
  )
  .refine((s) => parseEncryptedUpstream(s)?.hostIsName !== true, 'a tls:// or https:// upstream named by host name needs `bootstrap` addresses: write it as { url: ..., bootstrap: [...] }');

const encryptedUpstream = z
  .strictObject({
    url: z
      .string()
      .refine((s) => parseEncryptedUpstream(s) !== undefined, 'a "tls://host[:port]" (DNS over TLS) or "https://host[:port]/path" (DNS over HTTPS) URL')
      .describe('"tls://host[:853]" (DNS over TLS, RFC 7858) or "https://host[:443]/dns-query" (DNS over HTTPS, RFC 8484, HTTP/2).'),
    tls_name: z.string().min(1).optional().describe('Name the server certificate must carry (and SNI); default: the URL\'s host (for an address: an IP in the certificate).'),
    bootstrap: z
      .array(ipAddress)
      .min(1)
      .optional()
      .describe('Addresses of the server, so that reaching it never needs DNS; each is an upstream of its own (tried in order). Needed when the URL names a host.'),
    spki_pins: z
      .array(z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'a base64 SHA-256 digest of the SubjectPublicKeyInfo (44 characters)'))
      .min(1)
      .optional()
      .describe('Pin set (RFC 7858 §4.2): the connection is accepted only when a certificate of the chain has one of these SPKI SHA-256 digests (base64), as `openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64` prints.'),
    ca_file: z.string().min(1).optional().describe('PEM file of the CA(s) that sign the server certificate, relative to the config file (default: the system CAs).'),
    fallback: z
      .enum(['none', 'plain'])
      .default('none')
      .describe('`plain`: while the encrypted connection cannot be made (refused, TLS or certificate failure), ask the same address over plain DNS on port 53. Off unless configured: it sends the queries in clear text.'),
    method: z.enum(['post', 'get']).default('post').describe('DNS over HTTPS: POST (application/dns-message) or GET (?dns=).'),
  })
  .refine((u) => u.bootstrap !== undefined || parseEncryptedUpstream(u.url)?.hostIsName !== true, {
    message: 'an upstream named by host name needs `bootstrap` addresses, so that reaching it never needs DNS',
    path: ['bootstrap'],
  })
  .describe('An encrypted upstream with its verification settings.');

const upstreamAddress = z.union([plainUpstream, encryptedUpstream]);

export const upstreamsSchema = z
  .strictObject({
    default: z
      .array(upstreamAddress)
      .min(1)
      .default(['system'])
      .describe('Upstream servers tried in order; "system" means the nameservers of /etc/resolv.conf.'),
    conditional: z
      .array(
        z.strictObject({
          zone: z.string().min(1).describe('Queries for this zone and below go to `servers`.'),
          servers: z.array(upstreamAddress).min(1),
        }),
      )
      .default([])
      .describe('Conditional forwarding, e.g. an internal Active Directory zone to its DNS servers.'),
    timeout_ms: millis(10000)
      .default(1000)
      .describe(
        'Longest wait for one attempt before the next is sent (to the next upstream, or again to the same one with a fresh ID and port). ' +
          'Each upstream\'s own timeout is learned from its round-trip times (smoothed RTT + 4 × variance, as Unbound\'s infra cache), between `min_timeout_ms` and this.',
      ),
    min_timeout_ms: millis(10000).default(200).describe('Shortest wait for one attempt, however fast the upstream has been (Unbound: infra-cache-min-rtt).'),
    trust_ad: z
      .boolean()
      .optional()
      .describe(
        'Pass on the AD (authenticated data) bit of upstream answers to clients that ask for it (DO or AD set): the upstreams validate DNSSEC. ' +
          'Default: true for upstreams given by address, false for `system` (the resolvers of /etc/resolv.conf, which may not validate).',
      ),
    total_timeout_ms: millis(30000).default(3000).describe('Upper bound for resolving one query; a late answer that arrives before it is used. SERVFAIL (or a stale answer) after it.'),
    sockets: z.number().int().min(1).max(256).default(16).describe('UDP sockets in the upstream pool (source ports).'),
    socket_max_queries: z
      .number()
      .int()
      .min(1)
      .default(4096)
      .describe('A pool socket is replaced by one with a fresh random port after this many queries (RFC 5452).'),
    tls_connections: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(2)
      .describe('Persistent connections per DNS-over-TLS upstream, each carrying many queries at once (RFC 7766 pipelining; answers may come out of order). DNS over HTTPS uses one HTTP/2 connection per upstream.'),
    tls_idle_timeout_ms: z
      .number()
      .int()
      .min(1000)
      .max(3600000)
      .default(30000)
      .describe('An idle connection to a DoT/DoH upstream is closed after this long; the next query opens it again (with TLS session resumption).'),
  })
  .describe('Where allowed queries are forwarded.');

// A date ("2026-11-01", a whole day in the policy's time zone) or an ISO date-time with offset.
const dateOrTime = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:\d{2}))?$/, 'a date such as "2026-11-01" or a date-time such as "2026-11-01T08:00:00+01:00"')
  .refine((s) => !Number.isNaN(Date.parse(s.length === 10 ? `${s}T00:00:00Z` : s)), 'a real calendar date');

const timeZone = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, 'an IANA time zone such as "Europe/Brussels"');

const clockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$|^24:00$/, 'a time such as "08:30"');

export const exceptionSchema = z
  .strictObject({
    network: name.optional().describe('A whole network that the policy does not apply to.'),
    clients: z.array(cidr).optional().describe('Client addresses or CIDRs the policy does not apply to.'),
    lists: z.array(name).optional().describe('Only these lists of the policy are excepted (default: all of them).'),
    reason: z.string().min(1).describe('Why the exception exists.'),
    approved_by: z.string().min(1).describe('Who approved it.'),
    until: dateOrTime.optional().describe('The exception stops applying after this date.'),
  })
  .refine((e) => (e.network === undefined) !== (e.clients === undefined), { message: 'an exception names either `network` or `clients`', path: ['network'] })
  .describe('Clients or a network that a policy lets through.');

export const scheduleSchema = z
  .strictObject({
    timezone: timeZone.optional().describe('Time zone of the windows (default: the policy time zone).'),
    windows: z
      .array(
        z.strictObject({
          days: z.array(z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])).min(1),
          from: clockTime,
          to: clockTime.describe('End of the window; a time before `from` means the next day.'),
        }),
      )
      .min(1),
  })
  .describe('The policy only applies inside these weekly windows.');

export const policySchema = z
  .strictObject({
    title: z.string().min(1).describe('What the policy is, for people.'),
    reference: z.string().min(1).describe('The legal basis: decision, circular, advice, with dates.'),
    block: z.array(name).min(1).describe('Lists the policy blocks.'),
    networks: z.array(name).default([]).describe('Networks it applies to.'),
    profiles: z.array(name).default([]).describe('Or: every network with one of these profiles.'),
    mode: z.enum(['enforce', 'dry-run']).default('enforce').describe('dry-run logs what it would block but answers normally.'),
    from: dateOrTime.describe('Not enforced before this date.'),
    until: dateOrTime.optional().describe('Lapses after this date.'),
    review_by: dateOrTime.optional().describe('The date by which the policy must be re-evaluated; it keeps enforcing after it.'),
    timezone: timeZone.default('UTC').describe('Time zone for dates without a time.'),
    exceptions: z.array(exceptionSchema).default([]),
    schedule: scheduleSchema.optional(),
  })
  .describe('A ban with a lifecycle: effective dates, review date, exceptions, schedule.');

export const cacheSchema = z
  .strictObject({
    max_entries: z.number().int().min(0).default(100000).describe('Maximum cached answers; least recently used are evicted. Answers over 4 KiB are not cached. 0 disables.'),
    min_ttl: z.number().int().min(0).default(0).describe('Cached TTLs are raised to at least this.'),
    max_ttl: z.number().int().min(0).default(86400).describe('Cached TTLs are lowered to at most this.'),
    negative_max_ttl: z.number().int().min(0).default(3600).describe('Upper bound for caching NXDOMAIN/NODATA (RFC 2308 §5).'),
    serve_stale_seconds: z
      .number()
      .int()
      .min(0)
      .default(86400)
      .describe(
        'When no upstream answers (timeouts, unreachable, SERVFAIL), answer from expired cache entries up to this long past their expiry (RFC 8767), ' +
          'with TTL `stale_ttl`. Never when the upstream reports a DNSSEC validation failure (EDE 6-12). 0 disables.',
      ),
    stale_ttl: z.number().int().min(1).max(3600).default(30).describe('TTL of a stale answer (RFC 8767 §4: 30 s recommended).'),
    prefetch: z
      .boolean()
      .default(true)
      .describe('Refresh a cached answer in the background when it is asked for in the last 10 % of its TTL, so popular names never expire under clients (Unbound: prefetch).'),
  })
  .describe('The answer cache.');

export const tcpSchema = z
  .strictObject({
    idle_timeout_ms: millis(600000).default(10000).describe('A TCP connection with no query for this long is closed (RFC 7766).'),
    max_connections: z.number().int().min(1).default(1000).describe('Connections beyond this are refused.'),
    max_connections_per_client: z.number().int().min(1).default(20).describe('Connections from one client address beyond this are refused.'),
  })
  .describe('DNS over TCP.');

export const dotSchema = z
  .strictObject({
    idle_timeout_ms: millis(600000).default(30000).describe('A DNS-over-TLS connection with no query for this long is closed (RFC 7858 §3.4 asks for longer than plain TCP).'),
    max_connections: z.number().int().min(1).default(5000).describe('Connections beyond this are refused.'),
    max_connections_per_client: z.number().int().min(1).default(20).describe('Connections from one client address beyond this are refused.'),
  })
  .describe('The DNS-over-TLS listeners (`dot` in a listener\'s protocols).');

export const dohSchema = z
  .strictObject({
    path: z
      .string()
      .regex(/^\/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$/, 'a path such as "/dns-query"')
      .default('/dns-query')
      .describe('Path of the DoH endpoint (GET ?dns= and POST application/dns-message); the DoH template is https://HOST{path}{?dns}.'),
    client_ids: z
      .record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, "-" and "_"'), name)
      .default({})
      .describe(
        'Device groups named by path, as Blocky and AdGuard Home do: a query to `{path}/ID` belongs to the network given here. ' +
          'It never widens access: it applies only to a client whose own address (or listener) already puts it in a network; an unknown ID is answered 404.',
      ),
    idle_timeout_ms: millis(600000).default(30000).describe('A DoH connection with no request for this long is closed.'),
    max_connections: z.number().int().min(1).default(5000).describe('Connections beyond this are refused.'),
    max_connections_per_client: z.number().int().min(1).default(20).describe('Connections from one client address beyond this are refused.'),
    max_concurrent_streams: z.number().int().min(1).max(1000).default(100).describe('HTTP/2 streams (requests) one connection may have open at once.'),
    max_request_bytes: z.number().int().min(512).max(65535).default(65535).describe('A DNS message in a request longer than this is answered 413.'),
  })
  .describe('The DNS-over-HTTPS listeners (`doh` in a listener\'s protocols).');

export const ddrSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'Answer `_dns.resolver.arpa` SVCB queries (RFC 9462) with this resolver\'s DoT and DoH endpoints, so Windows 11, Apple and Android devices upgrade to them by themselves; also `_dns.<name>` SVCB. ' +
          'Without a `dot` or `doh` listener (or a name) the records are left out, but resolver.arpa is still answered here, never forwarded (RFC 9462 §6.5). `false`: resolver.arpa is resolved as any other name.',
      ),
    name: z
      .string()
      .min(1)
      .optional()
      .describe('Name of the encrypted resolver (the SVCB target), which its certificate carries; default: the first DNS name (not a wildcard) of the first `dot`/`doh` listener\'s certificate.'),
    ipv4hint: z.array(ipAddress).optional().describe('Addresses clients use to reach the encrypted endpoints; default: the listeners\' IPv4 addresses, except a wildcard.'),
    ipv6hint: z.array(ipAddress).optional().describe('As `ipv4hint`, for IPv6.'),
  })
  .describe('Discovery of Designated Resolvers (RFC 9462).');

export const udpSchema = z
  .strictObject({
    io: z
      .enum(['auto', 'batched', 'dgram'])
      .default('auto')
      .describe(
        'How UDP datagrams are read and sent. `batched`: the native socket built with sluice (Linux recvmmsg/sendmmsg, ' +
          'up to 64 datagrams per system call; workers share the port with SO_REUSEPORT). `dgram`: Node\'s own socket, one ' +
          'datagram at a time. `auto`: batched when it is built, else dgram (the log line `listening` says which).',
      ),
  })
  .describe('DNS over UDP.');

export const queryLogStoreSchema = z
  .strictObject({
    kind: z
      .enum(['sqlite', 'postgres', 'none'])
      .default('sqlite')
      .describe('Where events are kept for reports and every time range beyond the live tail: `sqlite` (embedded, in state_dir), `postgres` (several resolvers and Grafana share one database), or `none` (memory ring only).'),
    path: z.string().min(1).default('querylog.db').describe('SQLite: the database file, relative to state_dir.'),
    url: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL')
      .optional()
      .describe('PostgreSQL: connection URL without the password, e.g. "postgres://sluice@db.example:5432/sluice".'),
    url_env: z.string().default('SLUICE_QUERYLOG_URL').describe('PostgreSQL: environment variable with a whole connection URL; it wins over `url`.'),
    password_env: z.string().default('SLUICE_QUERYLOG_PASSWORD').describe('PostgreSQL: environment variable holding the password (never in the config).'),
    spool: z.string().min(1).default('querylog-spool.db').describe('PostgreSQL: local SQLite spool (relative to state_dir) for events written while the database is away.'),
    retention_days: z.number().int().min(1).default(30).describe('Raw events older than this are deleted (query logs of staff are personal data).'),
    rollup_retention_days: z.number().int().min(1).default(400).describe('The daily rollup (counts per day, network, client, policy, list and decision) is kept this long, for trends beyond the raw retention.'),
    spill_events: z.number().int().min(1000).default(100_000).describe('Events held in memory while the store is slow or away (PostgreSQL: then in the local spool, up to 10 times as many); beyond this batches are dropped and counted. SQLite holds them in its writer thread as binary batches outside the JavaScript heap (about 100 bytes each); PostgreSQL as objects for the first 10,000 and as binary batches beyond.'),
  })
  .describe('The query-log store behind reports, `sluice log`, the admin API and the dashboard.');

export const queryLogSchema = z
  .strictObject({
    instance: z.string().min(1).optional().describe('Name of this resolver in the log (default: the host name).'),
    buffer_events: z.number().int().min(100).default(20000).describe('Events waiting for the sinks; beyond this they are dropped and counted, never the query.'),
    memory_events: z.number().int().min(0).default(100000).describe('With `store.kind: none`: events kept in memory for the dashboard, `sluice log` and reports (with a store, they read the store and no events are kept in memory).'),
    file: z
      .strictObject({
        dir: z.string().default('querylog').describe('Directory for daily JSONL files, relative to state_dir.'),
        retention_days: z.number().int().min(1).default(30).describe('Files older than this are deleted.'),
      })
      .optional()
      .describe('Also write the log to rotating JSONL files.'),
    store: queryLogStoreSchema.prefault({}),
    dnstap: z
      .strictObject({
        socket: z.string().min(1).optional().describe('Unix socket of the dnstap collector (an absolute path), e.g. "/run/dnstap/dnstap.sock".'),
        tcp: z
          .string()
          .refine((s) => {
            const m = /^(?:\[[^\]]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(s);
            return m !== null && Number(m[1]) >= 1 && Number(m[1]) <= 65535;
          }, 'a "host:port" such as "127.0.0.1:6000" or "[::1]:6000"')
          .optional()
          .describe('TCP address of the dnstap collector, "host:port".'),
        identity: z.string().min(1).optional().describe('The dnstap `identity` of every message (default: `query_log.instance`).'),
        buffer_bytes: z
          .number()
          .int()
          .min(64 * 1024)
          .default(4 * 1024 * 1024)
          .describe('Bytes waiting to be sent to the collector; beyond this batches are dropped and counted.'),
      })
      .refine((d) => (d.socket === undefined) !== (d.tcp === undefined), { message: 'give exactly one of `socket` or `tcp`', path: ['socket'] })
      .optional()
      .describe('Also send the log as dnstap over Frame Streams to a collector (fstrm_capture, go-dnscollector, Vector).'),
    pseudonymize_key_env: z
      .string()
      .default('SLUICE_LOG_KEY')
      .describe('Environment variable with the key for pseudonymising client addresses; without it a key is generated in state_dir.'),
  })
  .describe('The query log: one event per query.');

export const adminSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Serve the admin API, /metrics and the dashboard.'),
    address: ipAddress.default('127.0.0.1').describe('Bind address; keep it on loopback or a management network.'),
    port: port.default(8053),
    token: z.string().min(16).optional().describe('Bearer token for everything but /healthz. Prefer token_env.'),
    token_env: z
      .string()
      .default('SLUICE_ADMIN_TOKEN')
      .describe('Environment variable holding the token; without token or this variable a token is generated in state_dir/admin-token.'),
    viewer_token: z
      .string()
      .min(16)
      .optional()
      .describe('Bearer token that may only read: GET of the query log, summary, reports, lists and policies (/api/...) and /metrics, never /api/admin/ or another method. Prefer viewer_token_env. Without it or its variable there is no viewer token.'),
    viewer_token_env: z.string().default('SLUICE_VIEWER_TOKEN').describe('Environment variable holding the viewer token (at least 16 characters).'),
    metrics_token: z
      .string()
      .min(16)
      .optional()
      .describe('Bearer token that may only GET /metrics, for Prometheus. Prefer metrics_token_env. Without it or its variable there is no metrics token.'),
    metrics_token_env: z.string().default('SLUICE_METRICS_TOKEN').describe('Environment variable holding the metrics token (at least 16 characters).'),
    metrics_public: z
      .boolean()
      .default(false)
      .describe('Serve /metrics without any token. Only with `address` on loopback or a management network that only the monitoring can reach.'),
  })
  .superRefine((a, ctx) => {
    const given: [string, string | undefined][] = [['token', a.token], ['viewer_token', a.viewer_token], ['metrics_token', a.metrics_token]];
    for (const [i, [key, value]] of given.entries()) {
      const same = given.slice(0, i).find(([, other]) => value !== undefined && other === value);
      if (same) ctx.addIssue({ code: 'custom', path: [key], message: `is the same as ${same[0]}: each role needs a token of its own` });
    }
  })
  .describe('The admin HTTP server.');

const hostPort = z.strictObject({ host: z.string().min(1), port: port });

export const redisSchema = z
  .strictObject({
    url: z.string().regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL').optional().describe('A single Redis server, e.g. "redis://10.0.0.20:6379/0".'),
    sentinel: z
      .strictObject({ name: z.string().min(1).describe('The master group name.'), sentinels: z.array(hostPort).min(1) })
      .optional()
      .describe('Redis Sentinel for high availability.'),
    cluster: z.strictObject({ nodes: z.array(hostPort).min(1) }).optional().describe('Redis Cluster seed nodes.'),
    key_prefix: z.string().default('sluice:').describe('Prefix of every key and channel sluice uses.'),
    username: z.string().min(1).optional().describe('ACL user (Redis 6+); also possible in the URL, "redis://sluice@10.0.0.20:6379".'),
    password_env: z.string().default('SLUICE_REDIS_PASSWORD').describe('Environment variable holding the password (never in the config); it wins over a password in the URL.'),
    tls: z
      .union([
        z.boolean(),
        z.strictObject({
          ca_file: z.string().optional().describe('PEM file of the CA that signed the server certificate (default: the system CAs).'),
          cert_file: z.string().optional().describe('PEM client certificate, for a server that asks for one.'),
          key_file: z.string().optional().describe('PEM key of the client certificate.'),
          server_name: z.string().optional().describe('Name to check in the server certificate (and send as SNI), when it differs from the host.'),
        }),
      ])
      .default(false)
      .describe('Connect with TLS: true, or the files to use. A rediss:// URL turns it on too.'),
    unhealthy_after_ms: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        'Report this instance unhealthy when Redis has been unreachable this long (0: never). Every instance loses Redis at once, and each still answers from its last state, so by default an outage does not take the resolvers out of a load balancer.',
      ),
    stream_maxlen: z.number().int().min(1000).default(1_000_000).describe('Approximate length bound of the shared query log stream.'),
    buffer_events: z.number().int().min(0).default(100_000).describe('Query log events kept while Redis is away, replayed on reconnect; beyond this they are dropped and counted.'),
    heartbeat_ms: z.number().int().min(200).default(2000).describe('How often an instance publishes its policy version.'),
    shared_cache: z
      .boolean()
      .default(false)
      .describe(
        'Also write answers to Redis, and fill a cold cache from there at start and on reconnect, so a new or restarted instance answers from what the others resolved. Queries never wait on Redis.',
      ),
  })
  .refine((r) => [r.url, r.sentinel, r.cluster].filter((x) => x !== undefined).length === 1, { message: 'give exactly one of url, sentinel or cluster', path: ['url'] })
  .refine((r) => !r.cluster || /\{[^}]+\}/.test(r.key_prefix), {
    message: 'with a Redis Cluster, key_prefix needs a hash tag, e.g. "{sluice}:", so that an edit and its version change in one transaction',
    path: ['key_prefix'],
  })
  .describe('Shared state for several resolvers: runtime list edits, the query log, policy versions.');

export const hardeningSchema = z
  .strictObject({
    any_queries: z
      .enum(['minimal', 'refuse'])
      .default('minimal')
      .describe('ANY queries: a minimal HINFO answer (RFC 8482) or REFUSED. Never forwarded: ANY is an amplification tool.'),
    cname_inspection: z
      .boolean()
      .default(true)
      .describe('Block an allowed name whose answer has a CNAME chain to a blocked name (apps hide behind CDN aliases).'),
    rebinding_protection: z
      .boolean()
      .default(false)
      .describe('Remove private-range addresses (RFC 1918, loopback, link-local, ULA) from answers for names outside `rebinding_allow`.'),
    rebinding_allow: z.array(z.string()).default([]).describe('Zones whose answers may contain private addresses (internal zones).'),
    rate_limit_clients: z.number().int().min(100).default(100000).describe('Clients tracked by the rate limiter at most (memory bound).'),
    upstream_backoff_ms: z
      .number()
      .int()
      .min(100)
      .default(5000)
      .describe('An upstream that failed two queries in a row is skipped for this long, then probed by one query at a time; each failed probe doubles the period, up to 60 s.'),
  })
  .describe('Defences against abuse and bypass.');

const addressPort = z.string().refine((s) => parseUpstreamAddress(s) !== undefined, 'an address and port such as "127.0.0.1:5300" or "[::1]:5300" (the port defaults to 53)');

export const rpzZoneSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^([a-z0-9_-]{1,63}\.)+$|^([a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}$/i, 'a zone name such as "rpz.sluice."')
      .describe('The zone name the secondaries configure, e.g. "rpz.sluice.".'),
    network: name.describe("The network whose effective rules the zone carries (its profile, the policies in force for it, its exceptions as passthru)."),
    listen: addressPort.describe('Where sluice answers SOA queries (UDP, TCP) and AXFR/IXFR (TCP) for this zone, e.g. "127.0.0.1:5300".'),
    allow_transfer: z.array(cidr).default(['127.0.0.1/32', '::1/128']).describe('Addresses that may query and transfer the zone; others get REFUSED.'),
    notify: z.array(addressPort).default([]).describe('Secondaries sent a NOTIFY (RFC 1996) whenever the zone changes, e.g. "192.0.2.53:53".'),
    ttl: z.number().int().min(0).max(86400).default(300).describe('TTL of the zone\'s records (and the SOA minimum), seconds.'),
    tsig: z
      .strictObject({
        name: z.string().min(1).describe('Key name, as the secondaries name it, e.g. "xfr-key.".'),
        algorithm: z.literal('hmac-sha256').default('hmac-sha256').describe('The MAC algorithm; HMAC-SHA256 only.'),
        secret: z
          .string()
          .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'the key in base64')
          .optional()
          .describe('The shared key in base64 (e.g. from `tsig-keygen`); or secret_env.'),
        secret_env: z.string().min(1).optional().describe('Environment variable holding the key in base64.'),
      })
      .optional()
      .describe('With a key, AXFR and IXFR must be signed with it (TSIG, RFC 8945), and the answers are signed; recommended.'),
  })
  .describe('A Response Policy Zone served by zone transfer (docs/rpz.md).');

export const loggingSchema = z
  .strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Each query is logged at debug.'),
  })
  .describe('Process log (pino JSON on stdout).');

export const clientNamesSchema = z
  .strictObject({
    static: z
      .record(ipAddress, z.string().regex(/^[^\s]{1,253}$/, 'a name without spaces'))
      .default({})
      .describe('Names of client addresses, e.g. `"10.20.0.15": comms-laptop-01`. They win over the hosts files.'),
    hosts_files: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Files in /etc/hosts format (`10.20.0.15 comms-laptop-01 [aliases]`; the first name of a line is used), such as an export of the DHCP leases; relative to the config file, read at start and on every reload (and watched).',
      ),
    reverse: z
      .boolean()
      .default(false)
      .describe(
        'Name the other clients by a PTR lookup of their address, through the `upstreams.conditional` server whose zone covers the reverse name (e.g. `zone: 10.in-addr.arpa` served by the internal DNS): never through the default upstreams, never on the query path. Kept for an hour (five minutes when there is no name).',
      ),
  })
  .describe('Names shown beside client addresses in `sluice log`, the reports, the admin API and the dashboard; never on a network that pseudonymises.');

export const configSchema = z
  .strictObject({
    listeners: z.array(listenerSchema).min(1).describe('Where sluice answers.'),
    networks: z.record(name, networkSchema).describe('Client networks by name. Clients in no network are refused.'),
    profiles: z.record(name, profileSchema).describe('Rule sets by name.'),
    policies: z.record(name, policySchema).default({}).describe('Bans with a lifecycle, by id.'),
    lists: z.record(name, listSchema).default({}).describe('Domain lists by name (in addition to those of `catalog`).'),
    catalog: z
      .string()
      .optional()
      .describe('A list catalog (blocklists/catalog.yaml) whose lists can be used by name, relative to the config file.'),
    state_dir: z
      .string()
      .default('state')
      .describe('Where sluice keeps what it writes: downloaded lists, the audit log, locks. Relative to the config file.'),
    site_dir: z
      .string()
      .default('lists')
      .describe(
        "Where the site's own lists live: `sluice lists new` creates them here, beside the config (with the default, `/etc/sluice/lists` for `/etc/sluice/sluice.yaml`), " +
          "never in the curated catalog's directory, which an upgrade replaces. Relative to the config file.",
      ),
    workers: z
      .union([z.literal('auto'), z.number().int().min(1).max(256)])
      .default('auto')
      .describe('Resolver processes sharing the listeners; "auto" is one per CPU core.'),
    watch: z.boolean().default(true).describe('Apply edits to the config and list files automatically (within 2 s).'),
    remote_lists: remoteListsSchema.prefault({}),
    upstreams: upstreamsSchema.prefault({}),
    cache: cacheSchema.prefault({}),
    udp: udpSchema.prefault({}),
    tcp: tcpSchema.prefault({}),
    dot: dotSchema.prefault({}),
    doh: dohSchema.prefault({}),
    ddr: ddrSchema.prefault({}),
    client_names: clientNamesSchema.prefault({}),
    logging: loggingSchema.prefault({}),
    query_log: queryLogSchema.prefault({}),
    admin: adminSchema.prefault({}),
    redis: redisSchema.optional(),
    hardening: hardeningSchema.prefault({}),
    rpz: z.array(rpzZoneSchema).default([]).describe('Response Policy Zones for other resolvers (BIND, Unbound, PowerDNS, Knot) to transfer.'),
  })
  .superRefine((cfg, ctx) => {
    cfg.rpz.forEach((z, i) => {
      if (!(z.network in cfg.networks)) ctx.addIssue({ code: 'custom', path: ['rpz', i, 'network'], message: `unknown network "${z.network}"` });
      if (z.tsig && (z.tsig.secret === undefined) === (z.tsig.secret_env === undefined)) {
        ctx.addIssue({ code: 'custom', path: ['rpz', i, 'tsig', 'secret'], message: 'give the key as either secret or secret_env' });
      }
    });
    for (const [i, l] of cfg.listeners.entries()) {
      if (l.network !== undefined && !(l.network in cfg.networks)) {
        ctx.addIssue({ code: 'custom', path: ['listeners', i, 'network'], message: `unknown network "${l.network}"` });
      }
    }
    for (const [n, net] of Object.entries(cfg.networks)) {
      if (!(net.profile in cfg.profiles)) {
        ctx.addIssue({ code: 'custom', path: ['networks', n, 'profile'], message: `unknown profile "${net.profile}"` });
      }
    }
    for (const [p, prof] of Object.entries(cfg.profiles)) {
      for (const [i, l] of prof.block.entries()) {
        // Lists of a catalog are only known once it is read (see lists/catalog.ts).
        if (!(l in cfg.lists) && cfg.catalog === undefined) {
          ctx.addIssue({ code: 'custom', path: ['profiles', p, 'block', i], message: `unknown list "${l}"` });
        }
      }
      const br = prof.block_response;
      if (br.mode === 'address' && br.ipv4.length === 0 && br.ipv6.length === 0) {
        ctx.addIssue({ code: 'custom', path: ['profiles', p, 'block_response', 'ipv4'], message: 'mode "address" needs ipv4 or ipv6 addresses' });
      }
    }
    for (const [id, p] of Object.entries(cfg.policies)) {
      p.networks.forEach((n, i) => {
        if (!(n in cfg.networks)) ctx.addIssue({ code: 'custom', path: ['policies', id, 'networks', i], message: `unknown network "${n}"` });
      });
      p.profiles.forEach((n, i) => {
        if (!(n in cfg.profiles)) ctx.addIssue({ code: 'custom', path: ['policies', id, 'profiles', i], message: `unknown profile "${n}"` });
      });
      if (p.networks.length === 0 && p.profiles.length === 0) {
        ctx.addIssue({ code: 'custom', path: ['policies', id, 'networks'], message: 'a policy applies to at least one network or profile' });
      }
      p.block.forEach((l, i) => {
        if (!(l in cfg.lists) && cfg.catalog === undefined) ctx.addIssue({ code: 'custom', path: ['policies', id, 'block', i], message: `unknown list "${l}"` });
      });
      p.exceptions.forEach((e, i) => {
        if (e.network !== undefined && !(e.network in cfg.networks)) ctx.addIssue({ code: 'custom', path: ['policies', id, 'exceptions', i, 'network'], message: `unknown network "${e.network}"` });
        e.lists?.forEach((l, j) => {
          if (!p.block.includes(l)) ctx.addIssue({ code: 'custom', path: ['policies', id, 'exceptions', i, 'lists', j], message: `"${l}" is not one of the policy's lists` });
        });
      });
      if (p.until !== undefined && p.until < p.from) ctx.addIssue({ code: 'custom', path: ['policies', id, 'until'], message: 'must not be before `from`' });
    }
    if (cfg.cache.min_ttl > cfg.cache.max_ttl) {
      ctx.addIssue({ code: 'custom', path: ['cache', 'min_ttl'], message: 'must not exceed cache.max_ttl' });
    }
    if (cfg.upstreams.timeout_ms > cfg.upstreams.total_timeout_ms) {
      ctx.addIssue({ code: 'custom', path: ['upstreams', 'timeout_ms'], message: 'must not exceed upstreams.total_timeout_ms' });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type ListenerConfig = z.infer<typeof listenerSchema>;
export type ListenerProtocol = ListenerConfig['protocols'][number];

/** The port a listener serves `protocol` on: `port` for UDP and TCP, `dot_port`, `doh_port`. */
export function listenerPort(l: ListenerConfig, protocol: ListenerProtocol): number {
  return protocol === 'dot' ? l.dot_port : protocol === 'doh' ? l.doh_port : l.port;
}
export type NetworkConfig = z.infer<typeof networkSchema>;
export type ProfileConfig = z.infer<typeof profileSchema>;
export type BlockResponseConfig = z.infer<typeof blockResponseSchema>;
export type RedisConfig = z.infer<typeof redisSchema>;
export type PolicyConfig = z.infer<typeof policySchema>;
export type ExceptionConfig = z.infer<typeof exceptionSchema>;
export type ScheduleConfig = z.infer<typeof scheduleSchema>;
export type UpstreamsConfig = z.infer<typeof upstreamsSchema>;
export type UpstreamConfig = z.infer<typeof upstreamAddress>;
export type DohConfig = z.infer<typeof dohSchema>;
export type DotConfig = z.infer<typeof dotSchema>;
export type DdrConfig = z.infer<typeof ddrSchema>;
export type RpzZoneConfig = z.infer<typeof rpzZoneSchema>;

export interface UpstreamAddress {
  /** The server's address (never a name: reaching an upstream needs no DNS). */
  host: string;
  port: number;
  /** false: this upstream's AD bit is not passed on (upstreams.trust_ad). */
  trustAd?: boolean;
  /** Set for DNS over TLS or HTTPS; plain DNS (UDP, TCP on truncation) without it. */
  encrypted?: EncryptedUpstream;
}

/** How to reach an encrypted upstream, and what its certificate must show. */
export interface EncryptedUpstream {
  protocol: 'dot' | 'doh';
  /** The URL as configured (the metrics label and the logs name the upstream by it). */
  url: string;
  /** The name checked in the certificate and sent as SNI; undefined: `host` is an address, checked as an IP SAN. */
  tlsName: string | undefined;
  /** DoH: the request path, e.g. "/dns-query"; and the :authority. */
  path: string;
  authority: string;
  /** SPKI SHA-256 pins in base64 (RFC 7858 §4.2); empty: the CA chain decides. */
  pins: readonly string[];
  /** Absolute path of a CA file; undefined: the system CAs. */
  caFile: string | undefined;
  /** Ask `host`:53 in plain DNS while the encrypted connection cannot be made. */
  fallbackPlain: boolean;
  method: 'post' | 'get';
}

/** A parsed tls:// or https:// URL: the host (a name or address), port, path, and the #tls-name if given. */
export interface EncryptedUrl {
  protocol: 'dot' | 'doh';
  host: string;
  hostIsName: boolean;
  port: number;
  path: string;
  tlsName: string | undefined;
}

/** "tls://192.0.2.1[:853][#name]", "https://dns.example[:443]/dns-query" → its parts; undefined when it is neither. */
export function parseEncryptedUpstream(s: string): EncryptedUrl | undefined {
  const m = /^(tls|https):\/\//.exec(s);
  if (!m) return undefined;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return undefined;
  }
  if (u.username || u.password || u.search) return undefined;
  const protocol = m[1] === 'tls' ? 'dot' : 'doh';
  if (protocol === 'dot' && u.pathname !== '' && u.pathname !== '/') return undefined;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (host === '') return undefined;
  const port = u.port === '' ? (protocol === 'dot' ? 853 : 443) : Number(u.port);
  const tlsName = u.hash.length > 1 ? decodeURIComponent(u.hash.slice(1)) : undefined;
  const path = protocol === 'doh' ? (u.pathname === '/' || u.pathname === '' ? '/dns-query' : u.pathname) : '';
  return { protocol, host: isIP(host) !== 0 ? canonicalHost(host) : host.toLowerCase(), hostIsName: isIP(host) === 0, port, path, tlsName };
}

/** "192.0.2.1", "192.0.2.1:5353", "::1", "[::1]:5353" → host and port. */
export function parseUpstreamAddress(s: string): UpstreamAddress | undefined {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracket) return withPort(bracket[1]!, bracket[2]);
  if (isIP(s) !== 0) return { host: canonicalHost(s), port: 53 };
  const hostPort = /^([^:]+):(\d+)$/.exec(s);
  if (hostPort) return withPort(hostPort[1]!, hostPort[2]);
  return undefined;
}

function withPort(host: string, portText: string | undefined): UpstreamAddress | undefined {
  if (isIP(host) === 0) return undefined;
  const p = portText === undefined ? 53 : Number(portText);
  return p >= 1 && p <= 65535 ? { host: canonicalHost(host), port: p } : undefined;
}

/** IPv6 in its one text form (RFC 5952): replies are matched to the server asked by address text. */
function canonicalHost(host: string): string {
  if (isIP(host) !== 6) return host;
  const a = ipaddr.IPv6.parse(host);
  return a.isIPv4MappedAddress() ? a.toIPv4Address().toString() : a.toString();
}
