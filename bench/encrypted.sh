#!/usr/bin/env bash
# npm run bench:encrypted — the encrypted-DNS rows of `npm run bench` (which runs this as its last
# part; SKIP_ENCRYPTED=1 leaves it out). Loopback only; method and results: docs/performance.md.
#
#   1. listeners: `dnsperf -m dot` and `-m doh` against sluice's DoT and DoH listeners, Unbound's
#      DoT listener (tls-port) and dnsdist's DoT and DoH frontends (addTLSLocal, addDOHLocal), for
#      blocked names (sluice's list, Unbound's local-zones, a dnsdist SuffixMatchNode rule) and
#      cached names (each server's cache, warmed first; dnsdist: its packet cache); the servers
#      are pinned to CPU 1 and forward to the fake upstream as in `npm run bench`; sluice twice:
#      as configured by default (its SQLite query log on, the writer thread on the same core) and
#      as `sluice-nolog` (every network at log level none), like the peers, which keep no log;
#   2. forward: sluice answering over UDP and forwarding every query (unique names) to a DoT
#      upstream (dnsdist addTLSLocal in front of the fake upstream, on the upstream's CPU), against
#      the same sluice forwarding over plain UDP to the same dnsdist; saturation QPS and the p99
#      at half of each one's peak;
#   3. idle: 1,000 idle DoT connections and 1,000 idle DoH (HTTP/2) sessions opened to a fresh
#      sluice each (bench/idle-connections.mjs), its RSS before and after.
# A sluice listener or upstream that does not start (not built yet, or broken) gives rows marked
# "not available" instead of numbers; the peers' rows are measured all the same.
#
# Knobs (env): those of bench/run.sh (DUR RUNS LAT_DUR PRIME_DUR QUICK SERVER_CPUS PERF_CPUS
# UP_CPUS STEAL_MAX OTHER_MAX QUIET_WAIT NO_INSTALL), and ENC_PARTS ("listeners forward idle")
# ENC_SERVERS ("sluice sluice-nolog unbound dnsdist") ENC_PORT_BASE (5620: ports 5620-5639) IDLE_CONNS (1000)
# ENC_CLIENTS (4: dnsperf -c, one connection each) SLUICE_BIN (bin/sluice.js; another build's to
# compare) OUT (results folder; default /tmp/sluice-bench/encrypted-<date>) NET_EXTRA (YAML added to
# the loopback network of every sluice, e.g. ", log: { level: none }").
set -uo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"
source "$BENCH/lib.sh"

if [ -n "${QUICK:-}" ]; then DUR=${DUR:-2} RUNS=${RUNS:-1} LAT_DUR=${LAT_DUR:-2} PRIME_DUR=${PRIME_DUR:-1}; fi
DUR=${DUR:-6}
RUNS=${RUNS:-3}
LAT_DUR=${LAT_DUR:-5}
PRIME_DUR=${PRIME_DUR:-2}
STEAL_MAX=${STEAL_MAX:-5}
OTHER_MAX=${OTHER_MAX:-10}
ENC_PARTS=${ENC_PARTS:-listeners forward idle}
ENC_SERVERS=${ENC_SERVERS:-sluice sluice-nolog unbound dnsdist}
IDLE_CONNS=${IDLE_CONNS:-1000}
ENC_CLIENTS=${ENC_CLIENTS:-4}
MISS_N=${MISS_N:-$((DUR * 250000))}
PB=${ENC_PORT_BASE:-5620}
UP_PORT=$((PB + 9))
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
  SERVER_CPUS=${SERVER_CPUS:-1} PERF_CPUS=${PERF_CPUS:-0} UP_CPUS=${UP_CPUS:-0}
else
  SERVER_CPUS=${SERVER_CPUS:-} PERF_CPUS=${PERF_CPUS:-} UP_CPUS=${UP_CPUS:-}
fi
[ "$DUR" -ge 1 ] && [ "$DUR" -le 20 ] || { echo "bench: DUR must be 1..20" >&2; exit 2; }
[ "$LAT_DUR" -le 20 ] || { echo "bench: LAT_DUR must be <= 20" >&2; exit 2; }
[ "$IDLE_CONNS" -le 5000 ] || { echo "bench: IDLE_CONNS must be <= 5000" >&2; exit 2; }
ulimit -n 16384 2>/dev/null || true   # the idle part holds IDLE_CONNS sockets on each side

W=/tmp/sluice-bench
D=$W/data
RUN=$W/run-encrypted                    # configs, certificates, logs, scratch query files
OUT=${OUT:-$W/encrypted-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$D" "$RUN" "$OUT"
trap 'stop_all; rm -f "$RUN/q_miss.txt"' EXIT
trap 'exit 130' INT TERM
log() { echo "bench: $*" >&2; }

# ---------- ports -----------------------------------------------------------------------------
# plain (UDP+TCP, for probes), DoT, DoH of each server under test; the fake upstream; the DoT
# proxy in front of it; the two forwarding sluices; the idle-connection sluice
S_PLAIN=$PB S_DOT=$((PB + 1)) S_DOH=$((PB + 2))
U_PLAIN=$((PB + 3)) U_DOT=$((PB + 4))
X_PLAIN=$((PB + 5)) X_DOT=$((PB + 6)) X_DOH=$((PB + 7))
P_PLAIN=$((PB + 10)) P_DOT=$((PB + 11))
F_UDP=$((PB + 12)) F_DOT=$((PB + 13))
I_PLAIN=$((PB + 14)) I_DOT=$((PB + 15)) I_DOH=$((PB + 16))
N_PLAIN=$((PB + 17)) N_DOT=$((PB + 18)) N_DOH=$((PB + 19))
enc_port() {
  case $1:$2 in
    sluice:dot) echo "$S_DOT" ;; sluice:doh) echo "$S_DOH" ;; unbound:dot) echo "$U_DOT" ;;
    sluice-nolog:dot) echo "$N_DOT" ;; sluice-nolog:doh) echo "$N_DOH" ;;
    dnsdist:dot) echo "$X_DOT" ;; dnsdist:doh) echo "$X_DOH" ;;
  esac
}
modes_of() { case $1 in unbound) echo dot ;; *) echo dot doh ;; esac; }
label() { case $2 in dot) echo "$1 DoT" ;; doh) echo "$1 DoH" ;; *) echo "$1" ;; esac; }

# ---------- tools, inputs, certificates -------------------------------------------------------

pkg_of() { case $1 in dnsperf) echo dnsperf ;; dig) echo bind9-dnsutils ;; unbound) echo unbound ;; dnsdist) echo dnsdist ;; openssl) echo openssl ;; h2load) echo nghttp2-client ;; esac; }
missing=()
for t in dnsperf dig unbound dnsdist openssl h2load; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ] && [ -z "${NO_INSTALL:-}" ] && command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
  log "installing with apt-get: ${missing[*]} (log $RUN/apt.log)"
  apt-get update -qq >"$RUN/apt.log" 2>&1 || log "apt-get update failed (see $RUN/apt.log)"
  for t in "${missing[@]}"; do
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$(pkg_of "$t")" >>"$RUN/apt.log" 2>&1 || log "could not install $(pkg_of "$t")"
  done
fi
for t in dnsperf dig node openssl h2load; do
  command -v "$t" >/dev/null || { log "$t is required (apt-get install $(pkg_of "$t"))"; exit 1; }
done
if [[ "$(dnsperf -h 2>&1)" != *"dot or doh"* ]]; then log "this dnsperf has no -m dot/doh (2.10 or later needed)"; exit 1; fi
servers=()
for s in $ENC_SERVERS; do
  case $s in sluice | sluice-nolog) servers+=("$s") ;; unbound | dnsdist)
    if command -v "$s" >/dev/null; then servers+=("$s"); else log "skipping $s: not installed"; fi ;;
  *) log "unknown server $s" ;; esac
done
if [ ! -d "$ROOT/dist" ]; then
  [ -d "$ROOT/node_modules" ] || (cd "$ROOT" && npm ci --no-audit --no-fund) || exit 1
  log "building sluice"; (cd "$ROOT" && npm run build >"$RUN/build.log" 2>&1) || { cat "$RUN/build.log"; exit 1; }
elif [ -n "$(find "$ROOT/src" -newer "$ROOT/dist/cli/main.js" -name '*.ts' -print -quit 2>/dev/null)" ]; then
  log "note: src/ has changes newer than dist/; run 'npm run build' to measure them"
fi
node "$BENCH/gen-data.mjs" "$D" || exit 1
LIST=$D/block100k.txt

# A throwaway CA and one server certificate (ECDSA P-256, as most deployments now use) for every
# listener and the DoT upstream: names bench.sluice.test and localhost, address 127.0.0.1.
TLS=$RUN/tls
CA=$TLS/ca.pem CERT=$TLS/server.pem KEY=$TLS/server.key TLS_NAME=bench.sluice.test
make_certs() {
  rm -rf "$TLS"; mkdir -p "$TLS"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$TLS/ca.key" -out "$CA" \
    -days 2 -subj "/CN=sluice bench CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$KEY" -out "$TLS/server.csr" -subj "/CN=$TLS_NAME" &&
    printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$TLS_NAME" >"$TLS/ext.cnf" &&
    openssl x509 -req -in "$TLS/server.csr" -CA "$CA" -CAkey "$TLS/ca.key" -CAcreateserial -days 2 -extfile "$TLS/ext.cnf" -out "$CERT"
}
make_certs >"$RUN/openssl.log" 2>&1 || { log "openssl could not make the certificates ($RUN/openssl.log)"; exit 1; }
chmod 644 "$KEY"   # Unbound and dnsdist read it as they are started (root here)

if [ ! -f "$OUT/env.txt" ]; then
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpus: $NCPU x $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -sr)"
    echo "node: $(node -v)"
    echo "sluice: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
    echo "pinning: servers on CPU ${SERVER_CPUS:-any}, dnsperf on ${PERF_CPUS:-any}, fake upstream and DoT proxy on ${UP_CPUS:-any}"
  } >"$OUT/env.txt"
fi
{
  echo "encrypted: dnsperf $(dnsperf -h 2>&1 | awk '/^Version/{print $2}') -c $ENC_CLIENTS -q 100 -t 1; DoH: h2load $(h2load --version 2>/dev/null | awk '{print $2}') GET, -c $ENC_CLIENTS -m $((100 / ENC_CLIENTS)); DUR=${DUR}s RUNS=$RUNS LAT_DUR=${LAT_DUR}s"
  command -v unbound >/dev/null && echo "unbound: $(unbound -V 2>&1 | awk '/^Version/{print $2}')"
  command -v dnsdist >/dev/null && echo "dnsdist: $(dnsdist --version 2>&1 | awk 'NR==1{print $2}')"
  echo "openssl: $(openssl version | awk '{print $2}'), certificates ECDSA P-256"
} >>"$OUT/env.txt"

# ---------- probes and servers ----------------------------------------------------------------

# enc_answers MODE PORT NAME [PATTERN] : does 127.0.0.1:PORT answer NAME over MODE (udp, dot, doh)?
enc_answers() {
  local opt=
  case $1 in dot) opt=+tls ;; doh) opt=+https=/dns-query ;; esac
  dig +time=2 +tries=1 +noedns $opt @127.0.0.1 -p "$2" "$3" A 2>/dev/null | grep -Eq -- "${4:-status:}"
}
# wait_enc MODE PORT NAME TIMEOUT_S PATTERN PID : poll until an answer; gives up when PID exited
wait_enc() {
  local end=$(( $(date +%s) + $4 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    enc_answers "$1" "$2" "$3" "$5" && return 0
    kill -0 "$6" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# sluice_conf FILE PLAIN DOT DOH UPSTREAM_YAML : a config as bench/kit-start.sh writes (the list
# blocked for 127.0.0.0/8, answer 0.0.0.0), with DoT and DoH on DOT and DOH when they are not
# empty, and the connection limits raised: every bench client comes from 127.0.0.1
sluice_conf() {
  local f=$1 plain=$2 dot=$3 doh=$4 up=$5 protos=udp,tcp extra=
  [ -z "$dot" ] || { protos="$protos, dot"; extra="$extra, dot_port: $dot"; }
  [ -z "$doh" ] || { protos="$protos, doh"; extra="$extra, doh_port: $doh"; }
  [ -z "$dot$doh" ] || extra="$extra, tls: { cert_file: \"$CERT\", key_file: \"$KEY\" }"
  cat >"$f" <<YAML
listeners:
  - { address: 127.0.0.1, port: $plain, protocols: [$protos]$extra }
networks:
  loopback: { cidrs: [127.0.0.0/8], profile: bench${NET_EXTRA:-} }
profiles:
  bench: { block: [bench], block_response: { mode: "null" } }
lists:
  bench: { file: "$LIST" }
upstreams:
  default: [$up]
dot: { max_connections: 10000, max_connections_per_client: 10000, idle_timeout_ms: 300000 }
doh: { max_connections: 10000, max_connections_per_client: 10000, idle_timeout_ms: 300000 }
logging: { level: warn }
workers: 1
watch: false
YAML
}

# start_sluice NAME PLAIN DOT DOH UPSTREAM_YAML : start sluice pinned to SERVER_CPUS and wait for
# its first blocked answer over UDP; PID in LASTPID. NA_REASON says why when it fails.
start_sluice() {
  local name=$1 plain=$2 conf="$RUN/$1.yaml"
  NA_REASON=
  if answers "$plain" probe.example; then NA_REASON="port $plain already answers"; return 1; fi
  sluice_conf "$conf" "$plain" "$3" "$4" "$5"
  start_bg "$name" "$SERVER_CPUS" "${SLUICE_BIN:-$ROOT/bin/sluice.js}" serve --config "$conf"
  if ! wait_answer "$plain" www.tiktok.com 60 "$BLOCKED_RE" "$LASTPID"; then
    NA_REASON=$(grep -m1 -iE 'error|invalid|unknown|not ' "$RUN/$name.log" | cut -c1-160)
    NA_REASON="sluice did not start (${NA_REASON:-no blocked answer over UDP}; log $RUN/$name.log)"
    stop_pid "$LASTPID"; return 1
  fi
}

# na_row SERVER MODE KIND REASON : a row without numbers
na_row() { printf '%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tnot available: %s\n' "$1" "$2" "$3" "${4:-}"; }

HDR='server\ttransport\tkind\tqps_median\tqps_runs\tsat_avg_ms\tsat_lost\tcpu_pct\tlat_rate\tlat_avg_ms\tlat_p50_ms\tlat_p99_ms\tlat_lost\tlat_sent\trss_mb\tother_pct\tsteal_pct\tlat_other_pct\tnote\n'
over() { awk -v v="$1" -v m="$2" 'BEGIN{exit !(v > m)}'; }

# perf_opts MODE PORT : dnsperf's transport options for a cell; tool_of MODE : the load generator
tool_of() { if [ "$1" = doh ]; then echo "$BENCH/doh-perf.sh"; else echo dnsperf; fi; }
perf_opts() {
  case $1 in
    dot) echo "-m dot" ;;
    doh) echo "-m doh" ;;   # for bench/doh-perf.sh, which ignores it
    *) echo "" ;;
  esac
}

# measure_cells TSV CELL... : CELL is LABEL|MODE|PORT|KIND|PID|TAG (MODE: the client's transport;
# TAG: the row's transport column, the upstream's for the forwarding rows); prime each, RUNS interleaved
# saturation rounds, then one latency run at half the median; appends a row per cell to TSV
measure_cells() {
  local tsv=$1; shift
  local cells=("$@") n=$# c r i try row other steal med rate lat st lbl mode port kind pid tag f e0
  for c in "${cells[@]}"; do
    IFS='|' read -r lbl mode port kind pid tag <<<"$c"
    PERF_TOOL=$(tool_of "$mode") PERF_MODE=$(perf_opts "$mode" "$port") DNSPERF_OPTS="-c $ENC_CLIENTS -q 100 -t 1 $(perf_opts "$mode" "$port")" prime "$port" "$kind"
    : >"$RUN/cell-${lbl// /_}-$kind.runs"
  done
  for r in $(seq 1 "$RUNS"); do
    for i in $(seq 0 $((n - 1))); do
      c=${cells[$(( (i + r - 1) % n ))]}
      IFS='|' read -r lbl mode port kind pid tag <<<"$c"
      for try in 1 2 3; do
        wait_quiet
        e0=$(up_ticks)
        row=$(PERF_TOOL=$(tool_of "$mode") DNSPERF_OPTS="-c $ENC_CLIENTS -q 100 -t 1 $(perf_opts "$mode" "$port")" sat_run "$port" "$kind" "$pid" "$OUT/enc-${lbl// /_}-$kind.run$r.txt")
        row="$row $(( ($(up_ticks) - e0) / DUR ))"   # the upstream side's CPU %: fake upstream (+ DoT proxy)
        read -r _ _ _ _ _ other steal <<<"$row"
        { over "$steal" "$STEAL_MAX" || over "$other" "$OTHER_MAX"; } && [ "$try" -lt 3 ] || break
        log "  steal $steal% or other load $other% during $lbl $kind, repeating"
      done
      echo "$row" >>"$RUN/cell-${lbl// /_}-$kind.runs"
      log "round $r/$RUNS $lbl $kind: $(echo "$row" | awk '{printf "%s QPS, avg %s ms, lost %s, server CPU %s%%, other load %s%%", $1, $2, $3, $5, $6}')"
    done
  done
  for c in "${cells[@]}"; do
    IFS='|' read -r lbl mode port kind pid tag <<<"$c"
    f="$RUN/cell-${lbl// /_}-$kind.runs"
    med=$(awk '{print $1}' "$f" | median)
    rate=$(awk -v m="$med" 'BEGIN{r=int(m/2); print (r < 100 ? 100 : r)}')
    for try in 1 2 3; do
      wait_quiet
      local s0; s0=$(steal_ticks)
      lat=$(PERF_TOOL=$(tool_of "$mode") DNSPERF_OPTS="-c $ENC_CLIENTS -q 100 -t 1 $(perf_opts "$mode" "$port")" lat_run "$port" "$kind" "$rate" "$pid" "$OUT/enc-${lbl// /_}-$kind.lat.txt")
      st=$(awk -v s=$(( $(steal_ticks) - s0 )) -v d="$LAT_DUR" -v n="$NCPU" 'BEGIN{printf "%.1f", s/(d*n)}')
      { over "$st" "$STEAL_MAX" || over "${lat##* }" "$OTHER_MAX"; } && [ "$try" -lt 3 ] || break
      log "  latency run of $lbl $kind: steal $st% or other load ${lat##* }%, repeating"
    done
    local qps avg lost cpu upcpu lrate lavg p50 p99 llost lsent lother
    read -r qps avg lost _ cpu other steal upcpu < <(awk -v m="$med" '$1==m{print; exit}' "$f")
    read -r lrate lavg p50 p99 llost lsent lother <<<"$lat"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\tupstream side CPU %s%%\n' "${lbl% *}" "$tag" "$kind" "$qps" \
      "$(awk '{print $1}' "$f" | paste -sd,)" "$avg" "$lost" "$cpu" "$lrate" "$lavg" "$p50" "$p99" "$llost" "$lsent" \
      "$(awk -v k="$(mem_kb "$pid" VmRSS)" 'BEGIN{print k/1024}')" "$other" "$steal" "$lother" "$upcpu" >>"$tsv"
    log "$lbl $kind: median $qps QPS; at $lrate/s avg $lavg ms, p99 $p99 ms, lost $llost of $lsent"
  done
}

start_upstream || exit 1
# the same answers over TCP on the same port: dnsdist asks over TCP for what came over DoT
start_bg upstream-tcp "$UP_CPUS" node "$BENCH/tcp-responder.mjs" "$UP_PORT"
TCP_UP_PID=$LASTPID EXTRA_UP_PIDS=$LASTPID
log "fake upstream ($UPSTREAM_KIND, and bench/tcp-responder.mjs) on $UP_PORT; results in $OUT"

# ---------- 1. listeners ----------------------------------------------------------------------

if [[ " $ENC_PARTS " == *" listeners "* ]]; then
  printf "$HDR" >"$OUT/encrypted.tsv"
  cells=() pids=()
  for s in "${servers[@]}"; do
    case $s in
      sluice)
        if ! start_sluice sluice-enc "$S_PLAIN" "$S_DOT" "$S_DOH" "\"127.0.0.1:$UP_PORT\""; then
          log "sluice: $NA_REASON"
          for m in dot doh; do for k in blocked cached; do na_row sluice "$m" "$k" "$NA_REASON" >>"$OUT/encrypted.tsv"; done; done
          continue
        fi ;;
      sluice-nolog)
        if ! NET_EXTRA=', log: { level: none }' start_sluice sluice-enc-nolog "$N_PLAIN" "$N_DOT" "$N_DOH" "\"127.0.0.1:$UP_PORT\""; then
          log "sluice-nolog: $NA_REASON"
          for m in dot doh; do for k in blocked cached; do na_row sluice-nolog "$m" "$k" "$NA_REASON" >>"$OUT/encrypted.tsv"; done; done
          continue
        fi ;;
      unbound)
        UNBOUND_EXTRA=$(printf '  interface: 127.0.0.1@%s\n  tls-port: %s\n  tls-service-key: "%s"\n  tls-service-pem: "%s"\n  incoming-num-tcp: 1000' \
          "$U_DOT" "$U_DOT" "$KEY" "$CERT") start_server unbound "$U_PLAIN" "$LIST" || continue
        wait_answer "$U_PLAIN" www.tiktok.com 120 "$BLOCKED_RE" "$LASTPID" || { log "unbound did not start ($RUN/unbound-$U_PLAIN.log)"; stop_pid "$LASTPID"; continue; } ;;
      dnsdist)
        DNSDIST_EXTRA=$(printf 'addTLSLocal("127.0.0.1:%s", "%s", "%s")\naddDOHLocal("127.0.0.1:%s", "%s", "%s", "/dns-query")' \
          "$X_DOT" "$CERT" "$KEY" "$X_DOH" "$CERT" "$KEY") start_server dnsdist "$X_PLAIN" "$LIST" || continue
        wait_answer "$X_PLAIN" www.tiktok.com 120 "$BLOCKED_RE" "$LASTPID" || { log "dnsdist did not start ($RUN/dnsdist-$X_PLAIN.log)"; stop_pid "$LASTPID"; continue; } ;;
    esac
    pid=$LASTPID
    for m in $(modes_of "$s"); do
      port=$(enc_port "$s" "$m")
      if wait_enc "$m" "$port" www.tiktok.com 15 "$BLOCKED_RE" "$pid"; then
        cells+=("$(label "$s" "$m")|$m|$port|blocked|$pid|$m" "$(label "$s" "$m")|$m|$port|cached|$pid|$m")
        log "$(label "$s" "$m") answers on $port (pid $pid)"
      else
        reason="no blocked answer over $m on port $port within 15 s"
        log "$(label "$s" "$m"): $reason"
        for k in blocked cached; do na_row "$s" "$m" "$k" "$reason" >>"$OUT/encrypted.tsv"; done
      fi
    done
    pids+=("$pid")
  done
  [ ${#cells[@]} -eq 0 ] || measure_cells "$OUT/encrypted.tsv" "${cells[@]}"
  for p in "${pids[@]}"; do stop_pid "$p"; done
fi

# ---------- 2. forwarding over a DoT upstream -------------------------------------------------

if [[ " $ENC_PARTS " == *" forward "* ]]; then
  printf "$HDR" >"$OUT/forward.tsv"
  # The upstream: dnsdist on the fake upstream's CPU answering every query itself (A 192.0.2.1,
  # as the fake upstream), over UDP on P_PLAIN and DoT on P_DOT: the two sluices differ only by
  # the transport to it. (Through to the fake upstream it would ask over TCP for what came over
  # DoT, one more hop that plain UDP would not pay.)
  DNSDIST_CPUS=$UP_CPUS DNSDIST_EXTRA=$(printf 'addAction(AllRule(), SpoofAction({"192.0.2.1"}, {ttl=300}))\naddTLSLocal("127.0.0.1:%s", "%s", "%s")' "$P_DOT" "$CERT" "$KEY") \
    start_server dnsdist "$P_PLAIN" "" && proxy=$LASTPID || proxy=
  if [ -n "$proxy" ] && wait_enc dot "$P_DOT" up.example 60 '192\.0\.2\.1' "$proxy"; then
    EXTRA_UP_PIDS="$TCP_UP_PID $proxy"
    cells=()
    for u in udp dot; do
      if [ $u = udp ]; then up="\"127.0.0.1:$P_PLAIN\"" port=$F_UDP
      else up="{ url: \"tls://127.0.0.1:$P_DOT\", tls_name: \"$TLS_NAME\", ca_file: \"$CA\" }" port=$F_DOT; fi
      if start_sluice "sluice-fwd-$u" "$port" "" "" "$up" && wait_answer "$port" "probe$RANDOM.fwd.example" 15 '192\.0\.2\.1' "$LASTPID"; then
        cells+=("sluice $u|udp|$port|miss|$LASTPID|$u")
        log "sluice forwarding over $u on $port (pid $LASTPID)"
      else
        [ -n "$NA_REASON" ] || { NA_REASON="no forwarded answer over a $u upstream"; stop_pid "$LASTPID"; }
        log "sluice forwarding over $u: $NA_REASON"
        na_row sluice "$u" miss "$NA_REASON" >>"$OUT/forward.tsv"
      fi
    done
    [ ${#cells[@]} -eq 0 ] || measure_cells "$OUT/forward.tsv" "${cells[@]}"
    for c in "${cells[@]}"; do IFS='|' read -r _ _ _ _ pid _ <<<"$c"; stop_pid "$pid"; done
    EXTRA_UP_PIDS=$TCP_UP_PID
  else
    log "the DoT upstream (dnsdist) did not start ($RUN/dnsdist-$P_PLAIN.log)"
    for u in udp dot; do na_row sluice "$u" miss "the DoT upstream (dnsdist) did not start" >>"$OUT/forward.tsv"; done
  fi
  [ -z "$proxy" ] || stop_pid "$proxy"
fi

# ---------- 3. idle connections ---------------------------------------------------------------

if [[ " $ENC_PARTS " == *" idle "* ]]; then
  printf 'listener\tconnections\topen\trss_before_mb\trss_after_mb\textra_mb\topen_s\tnote\n' >"$OUT/idle.tsv"
  # a short list: loading 100k rules leaves garbage whose later collection would hide the cost
  { head -1000 "$LIST"; echo tiktok.com; } >"$RUN/idle-list.txt"
  for m in dot doh; do
    wait_quiet
    if [ $m = dot ]; then dp=$I_DOT hp=; port=$I_DOT; else dp= hp=$I_DOH; port=$I_DOH; fi
    if LIST=$RUN/idle-list.txt start_sluice "sluice-idle-$m" "$I_PLAIN" "$dp" "$hp" "\"127.0.0.1:$UP_PORT\"" && wait_enc "$m" "$port" www.tiktok.com 15 "$BLOCKED_RE" "$LASTPID"; then
      pid=$LASTPID
      if pin "$PERF_CPUS" node "$BENCH/idle-connections.mjs" --mode "$m" --port "$port" --count "$IDLE_CONNS" --pid "$pid" \
        --ca "$CA" --servername "$TLS_NAME" >"$OUT/idle-$m.json" 2>"$RUN/idle-$m.log"; then
        node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
          console.log([r.mode, r.count, r.open, (r.rssBeforeKb / 1024).toFixed(1), (r.rssAfterKb / 1024).toFixed(1), (r.extraKb / 1024).toFixed(1), r.openSeconds.toFixed(1), ""].join("\t"))' \
          "$OUT/idle-$m.json" >>"$OUT/idle.tsv"
        log "idle $m: $(tail -1 "$OUT/idle.tsv" | awk -F'\t' '{printf "%s of %s open, RSS %s -> %s MB (+%s MB)", $3, $2, $4, $5, $6}')"
      else
        printf '%s\t%s\t-\t-\t-\t-\t-\tnot available: %s\n' "$m" "$IDLE_CONNS" "$(tail -1 "$RUN/idle-$m.log" | cut -c1-160)" >>"$OUT/idle.tsv"
        log "idle $m: the client failed ($RUN/idle-$m.log)"
      fi
      stop_pid "$pid"
    else
      [ -n "$NA_REASON" ] || { NA_REASON="no blocked answer over $m on port $port"; stop_pid "$LASTPID"; }
      printf '%s\t%s\t-\t-\t-\t-\t-\tnot available: %s\n' "$m" "$IDLE_CONNS" "$NA_REASON" >>"$OUT/idle.tsv"
      log "idle $m: $NA_REASON"
    fi
  done
fi

stop_all
# standalone: print the report of this folder (under npm run bench, bench/run.sh prints it)
[ -n "${ENC_FROM_RUN:-}" ] || OTHER_MAX=$OTHER_MAX node "$BENCH/report.mjs" "$OUT" | tee "$OUT/report.md"
gzip -f "$OUT"/*.lat.txt 2>/dev/null
exit 0
