#!/usr/bin/env bash
# npm run bench:querylog — what the query-log store costs and holds, on this machine, loopback only.
# Method and results: docs/performance.md, "Query log store". Uses bench/lib.sh (pinning, the fake C
# upstream, dnsperf runs, the quiet-machine checks) as bench/run.sh does.
#
#   1. saturation on one core: the reference deployment's shape (config/sluice.yaml: four networks,
#      two profiles, the app-ban policy with its exception, the catalog's lists, plus the bench's
#      100k-domain list in the policy), `workers: 1`, in three configs at once, interleaved round by
#      round: none (every network at log level none), store (the SQLite store, the default) and
#      jsonl (JSONL files, `store: {kind: none}`); blocked, cached and miss queries, the median of
#      RUNS runs of DUR s each (`dnsperf -c 4 -q 100 -t 1`), ratios store/none and jsonl/none, and
#      the events the store dropped (from /metrics, and `covers.dropped` of `sluice log query`).
#      The store's server is stopped (SIGSTOP) while the others are measured: its writer would
#      otherwise spend the backlog left by its own runs on the shared server core. After the
#      rounds, one OVERFLOW_DUR s run (cached) of the store alone, so that its spill overflows
#      (drops); then it is stopped (SIGTERM: it writes its spill and notes the drops) and
#      `sluice log query --json` reads `covers.dropped` from the file;
#   2. RSS of the store's and the JSONL server after the saturation runs;
#   3. a fixed FIXED_RATE q/s (50,000) for FIXED_DUR s (60) on a fresh store server, mix FIXED_MIX:
#      realistic (1 % blocked, 60 % cached, 39 % forwarded), light (1 % blocked, 89 % cached, 10 %
#      forwarded), cached (1 % blocked, 99 % cached) or blocked (the blocked queries); auto (the
#      default): realistic when the log-none server forwarded at least twice the mix's forwarded
#      rate at saturation, else blocked; then FIXED_MIX2 (cached) for FIXED2_DUR s. Every
#      event stored (after a SIGTERM, which writes what waits in the spill: rows counted with
#      sqlite3 and `sluice log query` against dnsperf's completed queries) and p99 over every query
#      (dnsperf -v); the same mix on a log-none server for FIXED_CONTROL_DUR s as a control;
#   4. ingest into SQLite without DNS (bench/querylog-sqlite.mjs ingest): INGEST_RATE (150,000)
#      events/s for INGEST_DUR s through the writer thread (INGEST_CPUS: 0,1), then its raw capacity (flush());
#      bytes per event after wal_checkpoint(TRUNCATE);
#   5. `sluice report devices --since 30d` (the CLI, as users run it) over SIZES stored events (2M
#      and 20M, 1 % blocked, over 30 days), seeded through SqliteStore in flush()ed batches;
#   6. PostgreSQL: bench/querylog-pg.mjs (ingest >= 50k/s, devices <= 1 s) when the database answers;
#   7. one table of targets, measured values, met/missed. Raw outputs in
#      /tmp/sluice-bench-querylog/<date-time>/ (latest: /tmp/sluice-bench-querylog/latest).
#
# Knobs (env): QUICK=1 (DUR=2 RUNS=1, overflow 5 s, fixed rate 10 s, ingest 10 s, 2M only,
# PostgreSQL 10 s / 2M)
# DUR (5, <= 20) RUNS (3) OVERFLOW_DUR (20) FIXED_RATE (50000) FIXED_DUR (60) FIXED_MIX
# (auto|realistic|light|cached|blocked) FIXED_CONTROL_DUR (15; 0 = none) FIXED_MIX2 (cached; empty =
# none) FIXED2_DUR (30) FIXED_FLOOR_DUR (10: the C responder on the server's core at the same rate,
# the machine's own latency floor; 0 = none) INGEST_RATE (150000) INGEST_DUR (60) SIZES ("2000000 20000000")
# PG (auto|0) PG_RATE (60000) PG_DURATION (60) PG_SIZES ("20000000,2000000") SERVER_CPUS (1)
# PERF_CPUS (0) UP_CPUS (0) PORT_BASE (5640) NO_INSTALL=1 STEAL_MAX (5) OTHER_MAX (10) QUIET_WAIT
# (60) as in bench/run.sh. SKIP="sat fixed ingest report pg" skips parts.
set -uo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"
source "$BENCH/lib.sh"

if [ -n "${QUICK:-}" ]; then
  DUR=${DUR:-2} RUNS=${RUNS:-1} PRIME_DUR=${PRIME_DUR:-1} OVERFLOW_DUR=${OVERFLOW_DUR:-5} FIXED_DUR=${FIXED_DUR:-10} FIXED2_DUR=${FIXED2_DUR:-5} FIXED_CONTROL_DUR=${FIXED_CONTROL_DUR:-5}
  INGEST_DUR=${INGEST_DUR:-10} SIZES=${SIZES:-2000000} PG_DURATION=${PG_DURATION:-10} PG_SIZES=${PG_SIZES:-2000000}
  REPORT_RUNS=${REPORT_RUNS:-3}
fi
DUR=${DUR:-5}
OVERFLOW_DUR=${OVERFLOW_DUR:-20}
RUNS=${RUNS:-3}
PRIME_DUR=${PRIME_DUR:-2}
FIXED_RATE=${FIXED_RATE:-50000}
FIXED_DUR=${FIXED_DUR:-60}
FIXED_MIX=${FIXED_MIX:-auto}
FIXED_CONTROL_DUR=${FIXED_CONTROL_DUR:-15}
FIXED_MIX2=${FIXED_MIX2:-cached}
FIXED2_DUR=${FIXED2_DUR:-30}
FIXED_FLOOR_DUR=${FIXED_FLOOR_DUR:-10}
INGEST_RATE=${INGEST_RATE:-150000}
INGEST_DUR=${INGEST_DUR:-60}
SIZES=${SIZES:-2000000 20000000}
REPORT_RUNS=${REPORT_RUNS:-5}
PG=${PG:-auto}
PG_RATE=${PG_RATE:-60000}
PG_DURATION=${PG_DURATION:-60}
PG_SIZES=${PG_SIZES:-20000000,2000000}
STEAL_MAX=${STEAL_MAX:-5}
OTHER_MAX=${OTHER_MAX:-10}
SKIP=${SKIP:-}
DNSPERF_OPTS="-c 4 -q 100 -t 1"
MISS_N=${MISS_N:-$((DUR * 250000))}
PORT_BASE=${PORT_BASE:-5640}
UP_PORT=$((PORT_BASE + 9))
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
  SERVER_CPUS=${SERVER_CPUS:-1} PERF_CPUS=${PERF_CPUS:-0} UP_CPUS=${UP_CPUS:-0}
  INGEST_CPUS=${INGEST_CPUS:-0,1}
else
  SERVER_CPUS=${SERVER_CPUS:-} PERF_CPUS=${PERF_CPUS:-} UP_CPUS=${UP_CPUS:-}
  INGEST_CPUS=${INGEST_CPUS:-}
fi
[ "$DUR" -ge 1 ] && [ "$DUR" -le 20 ] || { echo "bench: DUR must be 1..20" >&2; exit 2; }
[ "$OVERFLOW_DUR" -ge 0 ] && [ "$OVERFLOW_DUR" -le 60 ] || { echo "bench: OVERFLOW_DUR must be 0..60" >&2; exit 2; }
[ "$FIXED_DUR" -ge 1 ] && [ "$FIXED_DUR" -le 120 ] || { echo "bench: FIXED_DUR must be 1..120" >&2; exit 2; }
[ "$INGEST_DUR" -ge 1 ] && [ "$INGEST_DUR" -le 120 ] || { echo "bench: INGEST_DUR must be 1..120" >&2; exit 2; }
skip() { [[ " $SKIP " == *" $1 "* ]]; }

W=/tmp/sluice-bench-querylog
D=$W/data                               # generated inputs (kept between runs)
RUN=$W/run                              # configs, logs, scratch query files
OUT=$W/$(date +%Y%m%d-%H%M%S)           # this run's results
mkdir -p "$D" "$RUN" "$OUT"
ln -sfn "$OUT" "$W/latest"
TOKEN=bench-querylog-admin-token-0123456789
TMPDIRS=()
cleanup() {
  local p
  for p in "${STOPPED[@]:-}"; do [ -n "$p" ] && kill -CONT "$p" 2>/dev/null; done
  stop_all
  [ ${#TMPDIRS[@]} -eq 0 ] || rm -rf "${TMPDIRS[@]}"
  rm -f "$RUN/q_miss.txt" "$RUN/q_mix.txt"
}
STOPPED=()
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
log() { echo "bench: $*" >&2; }
# result KEY VALUE : one line of results.tsv, read by bench/querylog-report.mjs
result() { printf '%s\t%s\n' "$1" "$2" >>"$OUT/results.tsv"; }
printf 'key\tvalue\n' >"$OUT/results.tsv"
ms_now() { date +%s%3N; }
START_S=$(date +%s)

# ---------- 1. tools, build, inputs -----------------------------------------------------------

pkg_of() { case $1 in dnsperf) echo dnsperf ;; dig) echo bind9-dnsutils ;; sqlite3) echo sqlite3 ;; curl) echo curl ;; esac; }
missing=()
for t in dnsperf dig sqlite3 curl; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ] && [ -z "${NO_INSTALL:-}" ] && command -v apt-get >/dev/null; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if [ -z "$SUDO" ] || sudo -n true 2>/dev/null; then
    log "installing with apt-get: ${missing[*]} (log $RUN/apt.log)"
    $SUDO apt-get update -qq >"$RUN/apt.log" 2>&1 || log "apt-get update failed (see $RUN/apt.log)"
    for t in "${missing[@]}"; do
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$(pkg_of "$t")" >>"$RUN/apt.log" 2>&1 \
        || log "could not install $(pkg_of "$t")"
    done
  else
    log "not root and no sudo: cannot install ${missing[*]}"
  fi
fi
for t in dnsperf dig node curl sqlite3; do
  command -v "$t" >/dev/null || { log "$t is required (apt-get install $(pkg_of "$t"))"; exit 1; }
done

# dist/ is what is measured: build it when it is missing or older than src/.
if [ ! -d "$ROOT/dist" ] || [ -n "$(find "$ROOT/src" -newer "$ROOT/dist/cli/main.js" -name '*.ts' -print -quit 2>/dev/null)" ]; then
  [ -d "$ROOT/node_modules" ] || (cd "$ROOT" && npm ci --no-audit --no-fund) || exit 1
  log "building sluice (dist/ is missing or older than src/; log $RUN/build.log)"
  if ! (cd "$ROOT" && npm run build >"$RUN/build.log" 2>&1); then
    [ -f "$ROOT/dist/cli/main.js" ] || { cat "$RUN/build.log"; exit 1; }
    log "the build failed (see $RUN/build.log); measuring the dist/ that is there"
  fi
fi
node "$BENCH/gen-data.mjs" "$D" || exit 1
LIST=$D/block100k.txt

# The fixed-rate mix, FIXED_RATE x DUR x 1.1 lines so that dnsperf never wraps (a wrapped forwarded
# name would be a cache hit): of every 100 queries 1 blocked, CACHED_PCT cached (the 100 allowed
# names) and the rest forwarded (names never asked before); `blocked`: the blocked queries only.
mix_cached_pct() { case $1 in light) echo 89 ;; cached) echo 99 ;; allcached) echo 100 ;; *) echo 60 ;; esac; }
gen_mix() {
  local n=$(( FIXED_RATE * $1 * 11 / 10 ))
  if [ "$FIXED_MIX" = blocked ]; then
    awk -v n="$n" '{b[NR]=$0} END{for(i=0;i<n;i++) print b[i % NR + 1]}' "$D/q_blocked.txt" >"$RUN/q_mix.txt"
  else
    awk -v n="$n" -v cp="$(mix_cached_pct "$FIXED_MIX")" -v t="x$(date +%s%N | cut -c8-16)" '
      FILENAME==ARGV[1]{b[++nb]=$0; next} {c[++nc]=$0}
      END{for(i=0;i<n;i++){r=i%100; if(r==0) print b[int(i/100)%nb+1]; else if(r<=cp) print c[i%nc+1]; else printf "f%d.%s.fwd-example.org A\n", i, t}}' \
      "$D/q_blocked.txt" "$D/q_cached_prime.txt" >"$RUN/q_mix.txt"
  fi
}
# qfile KIND : as in lib.sh, plus `mix` (the fixed-rate mix written by gen_mix)
qfile() {
  case $1 in
    blocked) echo "$D/q_blocked.txt" ;;
    cached) echo "$D/q_cached.txt" ;;
    miss) gen_miss "$RUN/q_miss.txt" "$MISS_N"; echo "$RUN/q_miss.txt" ;;
    mix) echo "$RUN/q_mix.txt" ;;
  esac
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpus: $NCPU x $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
  echo "memory: $(awk '/^MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "node: $(node -v)"
  echo "dnsperf: $(dnsperf -h 2>&1 | awk '/^Version/{print $2}')"
  echo "sqlite3 (CLI): $(sqlite3 --version | awk '{print $1}'); better-sqlite3: $(node -p "require('$ROOT/node_modules/better-sqlite3/package.json').version")"
  echo "sluice: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), dist/ built $(date -u -r "$ROOT/dist/querylog/store/sqlite-store.js" '+%H:%M UTC')"
  echo "pinning: servers on CPU ${SERVER_CPUS:-any}, dnsperf on ${PERF_CPUS:-any}, fake upstream on ${UP_CPUS:-any}; the node helpers on ${SERVER_CPUS:-any}"
  echo "runs: DUR=${DUR}s RUNS=$RUNS dnsperf $DNSPERF_OPTS; fixed ${FIXED_RATE}/s x ${FIXED_DUR}s (mix $FIXED_MIX); ingest ${INGEST_RATE}/s x ${INGEST_DUR}s; sizes $SIZES"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/env.txt"

# ---------- servers ---------------------------------------------------------------------------

# write_config DIR MODE PORT ADMIN_PORT [LIST] : the reference deployment's shape with the bench's
# list added to the app-ban policy, forwarding to the fake upstream, one worker, the admin API (for
# /metrics) on ADMIN_PORT. MODE: none | store | jsonl. Without LIST (the report configs): no bench list.
write_config() {
  local dir=$1 mode=$2 port=$3 aport=$4 list=${5:-} internal='' guest='log: { level: blocked, pseudonymize: true }' ql from review benchlist=''
  [ -z "$list" ] || benchlist="  bench: { file: \"$list\" }"
  case $mode in
    none) internal=', log: { level: none }'; guest='log: { level: none }'; ql='  store: { kind: none }' ;;
    store) ql='  store: { kind: sqlite, retention_days: 30, rollup_retention_days: 400 }' ;;
    jsonl) ql=$'  store: { kind: none }\n  file: { retention_days: 30 }' ;;
  esac
  from=$(date -u -d '30 days ago' +%F); review=$(date -u -d '150 days' +%F)
  mkdir -p "$dir"
  cat >"$dir/sluice.yaml" <<YAML
# written by bench/querylog.sh ($mode): config/sluice.yaml's shape, on port $port
listeners:
  - { address: 127.0.0.1, port: $port, protocols: [udp, tcp] }
networks:
  internal: { cidrs: [127.0.0.0/24, "::1/128"], profile: staff$internal }
  guest: { cidrs: [127.0.0.2/32], profile: open, $guest }
  school: { cidrs: [127.0.0.3/32], profile: open$internal }
  comms: { cidrs: [127.0.0.4/32], profile: staff$internal }
profiles:
  staff:
    block: [doh-bypass, local-additions]
    block_response: { mode: nxdomain, ttl: 60 }
  open:
    block: []
policies:
  app-ban:
    title: Ban of TikTok and ten other apps on work devices and the internal network
    reference: bench/querylog.sh
    block: [tiktok, bytedance-shared, lemon8, capcut, temu, pinduoduo, wechat, ucbrowser, camscanner, shein, turbovpn, shareit${list:+, bench}]
    networks: [internal, comms]
    mode: enforce
    from: $from
    review_by: $review
    timezone: Europe/Brussels
    exceptions:
      - network: comms
        lists: [tiktok, bytedance-shared]
        reason: The communications team runs the city's official TikTok account
        approved_by: bench
        until: $review
catalog: $ROOT/blocklists/catalog.yaml
lists:
  local-additions: { file: $ROOT/config/lists/local-additions.txt }
$benchlist
state_dir: $dir/var
upstreams:
  default: ["127.0.0.1:$UP_PORT"]
  timeout_ms: 1000
  total_timeout_ms: 3000
cache:
  max_entries: 100000
logging: { level: warn }
query_log:
  instance: bench
$ql
admin: { enabled: true, address: 127.0.0.1, port: $aport, token: "$TOKEN" }
workers: 1
watch: false
YAML
}

# metric APORT NAME : the sum of every series of NAME (a prefix: 'x{stage="store"}' picks one) on /metrics
metric() {
  curl -s -m 5 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/metrics" |
    awk -v n="$2" 'index($0, n) == 1 && (substr($0, length(n) + 1, 1) ~ /[ {]/ || substr(n, length(n)) == "}") {s += $NF} END {printf "%.0f\n", s}'
}
# store_drops APORT : events of this server that never reached the store (its buffer, its spill)
store_drops() {
  echo $(( $(metric "$1" 'sluice_querylog_dropped_events_total{stage="buffer"}') + $(metric "$1" 'sluice_querylog_dropped_events_total{stage="store"}') ))
}
# wait_drained APORT MAX_S : wait until the store's spill is empty (at most MAX_S s)
wait_drained() {
  local t0 p
  t0=$(date +%s)
  while :; do
    p=$(metric "$1" sluice_querylog_store_pending_events)
    [ "${p:-0}" -eq 0 ] && break
    [ $(( $(date +%s) - t0 )) -lt "$2" ] || break
    sleep 0.5
  done
}
# stop_graceful PID MAX_S : SIGTERM, then wait up to MAX_S s for the exit (the owner notes its drops
# in the store, the store writes its spill); prints the ms it took
stop_graceful() {
  local p=$1 t0 i
  t0=$(date +%s%N)
  kill -TERM "$p" 2>/dev/null
  for i in $(seq 1 $(( $2 * 10 ))); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
  stop_pid "$p"
}

declare -A PID APORT PORT DIR
# start_mode NAME MODE PORT APORT : write a config into a fresh folder and start sluice on it
start_mode() {
  local name=$1 mode=$2 port=$3 aport=$4 dir
  dir=$(mktemp -d "$RUN/$name.XXXXXX"); TMPDIRS+=("$dir")
  write_config "$dir" "$mode" "$port" "$aport" "$LIST"
  if answers "$port" probe.example; then log "port $port is already answering: stop that process or set PORT_BASE"; return 1; fi
  start_bg "$name" "$SERVER_CPUS" "$ROOT/bin/sluice.js" serve --config "$dir/sluice.yaml"
  local pid=$LASTPID
  if ! wait_answer "$port" www.tiktok.com 60 "$BLOCKED_RE" "$pid"; then
    log "$name gave no blocked answer on $port; log: $RUN/$name.log"; tail -5 "$RUN/$name.log" >&2; stop_pid "$pid"; return 1
  fi
  PID[$name]=$pid APORT[$name]=$aport PORT[$name]=$port DIR[$name]=$dir
  log "$name ($mode) on $port, admin $aport, pid $pid, answering $(( ($(date +%s%N) - START_NS) / 1000000 )) ms after exec"
}
pause() { kill -STOP "$1" 2>/dev/null && STOPPED+=("$1"); }
resume() {
  local p keep=()
  kill -CONT "$1" 2>/dev/null
  for p in "${STOPPED[@]:-}"; do [ -n "$p" ] && [ "$p" != "$1" ] && keep+=("$p"); done
  STOPPED=("${keep[@]:-}")
}
over() { awk -v v="$1" -v m="$2" 'BEGIN{exit !(v > m)}'; }
rss_mb() { awk -v k="$(mem_kb "$1" VmRSS)" 'BEGIN{printf "%.0f", k/1024}'; }
hwm_mb() { awk -v k="$(mem_kb "$1" VmHWM)" 'BEGIN{printf "%.0f", k/1024}'; }

start_upstream || exit 1
echo "upstream: $UPSTREAM_KIND responder on 127.0.0.1:$UP_PORT" >>"$OUT/env.txt"
log "fake upstream ($UPSTREAM_KIND) on $UP_PORT; results in $OUT"
BENCH_T0=$(ms_now)

# ---------- 2. saturation, one core -----------------------------------------------------------

modes=(none store jsonl)
if ! skip sat; then
  i=0
  for m in "${modes[@]}"; do
    start_mode "$m" "$m" $((PORT_BASE + i)) $((PORT_BASE + 10 + i)) || exit 1
    i=$((i + 1))
  done
  cells=()
  for k in blocked cached miss; do for m in "${modes[@]}"; do cells+=("$m:$k"); done; done
  printf 'mode\tkind\tround\tqps\tavg_ms\tlost\tlost_pct\tserver_cpu_pct\tother_pct\tsteal_pct\tstore_written\tstore_dropped\tstore_pending_after\n' >"$OUT/saturation.tsv"
  log "priming ${#cells[@]} cells"
  for c in "${cells[@]}"; do m=${c%%:*}; k=${c#*:}; prime "${PORT[$m]}" "$k"; : >"$RUN/cell-$m-$k.runs"; done
  pause "${PID[store]}"
  n=${#cells[@]}
  for r in $(seq 1 "$RUNS"); do
    for i in $(seq 0 $((n - 1))); do
      c=${cells[$(( (i + (r - 1) * 3) % n ))]}; m=${c%%:*}; k=${c#*:}
      for try in 1 2 3; do
        wait_quiet
        [ "$m" = store ] && resume "${PID[store]}"
        w0=$(metric "${APORT[$m]}" sluice_querylog_store_written_total); d0=$(store_drops "${APORT[$m]}")
        row=$(sat_run "${PORT[$m]}" "$k" "${PID[$m]}" "$OUT/sat-$m-$k.run$r.txt")
        w1=$(metric "${APORT[$m]}" sluice_querylog_store_written_total); d1=$(store_drops "${APORT[$m]}")
        pend=$(metric "${APORT[$m]}" sluice_querylog_store_pending_events)
        [ "$m" = store ] && pause "${PID[store]}"
        read -r _ _ _ _ _ other steal <<<"$row"
        { over "$steal" "$STEAL_MAX" || over "$other" "$OTHER_MAX"; } && [ "$try" -lt 3 ] || break
        log "  steal $steal% (max $STEAL_MAX) or other load $other% (max $OTHER_MAX) during $m $k, repeating"
      done
      echo "$row $((w1 - w0)) $((d1 - d0)) $pend" >>"$RUN/cell-$m-$k.runs"
      printf '%s\t%s\t%s\t%s\n' "$m" "$k" "$r" "$(echo "$row $((w1 - w0)) $((d1 - d0)) $pend" | tr ' ' '\t')" >>"$OUT/saturation.tsv"
      log "round $r/$RUNS $m $k: $(echo "$row" | awk '{printf "%s QPS, avg %s ms, lost %s, server CPU %s%%, other load %s%%, steal %s%%", $1, $2, $3, $5, $6, $7}')$([ "$m" = store ] && echo ", store wrote $((w1 - w0)), dropped $((d1 - d0)), pending $pend")"
    done
  done
  resume "${PID[store]}"
  for c in "${cells[@]}"; do
    m=${c%%:*}; k=${c#*:}; f="$RUN/cell-$m-$k.runs"
    med=$(awk '{print $1}' "$f" | median)
    result "sat.$m.$k.qps" "$med"
    result "sat.$m.$k.runs" "$(awk '{print $1}' "$f" | paste -sd,)"
    result "sat.$m.$k.cpu" "$(awk -v m="$med" '$1==m{print $5; exit}' "$f")"
    result "sat.$m.$k.other" "$(awk '{print $6}' "$f" | sort -n | tail -1)"
    if [ "$m" = store ]; then
      result "sat.store.$k.written" "$(awk '{s+=$8} END{print s}' "$f")"
      result "sat.store.$k.dropped" "$(awk '{s+=$9} END{print s}' "$f")"
      result "sat.store.$k.offered" "$(awk '{s+=$8+$9} END{print s}' "$f")"
    fi
  done

  # One longer run of the store alone, so that its spill overflows: the drops, as `covers` tells them.
  if [ "$OVERFLOW_DUR" -gt 0 ]; then
    wait_quiet
    w0=$(metric "${APORT[store]}" sluice_querylog_store_written_total); d0=$(store_drops "${APORT[store]}")
    p0=$(metric "${APORT[store]}" sluice_querylog_store_pending_events)
    row=$(DUR=$OVERFLOW_DUR sat_run "${PORT[store]}" cached "${PID[store]}" "$OUT/sat-store-overflow.txt")
    w1=$(metric "${APORT[store]}" sluice_querylog_store_written_total); d1=$(store_drops "${APORT[store]}")
    result sat.overflow.seconds "$OVERFLOW_DUR"; result sat.overflow.qps "${row%% *}"
    result sat.overflow.pending_before "$p0"; result sat.overflow.written "$((w1 - w0))"; result sat.overflow.dropped "$((d1 - d0))"
    log "overflow run of the store, cached, ${OVERFLOW_DUR}s: ${row%% *} QPS, wrote $((w1 - w0)), dropped $((d1 - d0)) (spill held $p0 at the start)"
  fi

  # ---------- 3. RSS after the saturation runs, and the drops as `covers` reports them ----------
  result rss.store.mb "$(rss_mb "${PID[store]}")"; result rss.store.hwm_mb "$(hwm_mb "${PID[store]}")"
  result rss.store.pending "$(metric "${APORT[store]}" sluice_querylog_store_pending_events)"
  result rss.jsonl.mb "$(rss_mb "${PID[jsonl]}")"; result rss.jsonl.hwm_mb "$(hwm_mb "${PID[jsonl]}")"
  result rss.none.mb "$(rss_mb "${PID[none]}")"; result rss.none.hwm_mb "$(hwm_mb "${PID[none]}")"
  log "RSS after the saturation runs: store $(rss_mb "${PID[store]}") MB (peak $(hwm_mb "${PID[store]}"), $(metric "${APORT[store]}" sluice_querylog_store_pending_events) events in its spill), jsonl $(rss_mb "${PID[jsonl]}") MB (peak $(hwm_mb "${PID[jsonl]}")), none $(rss_mb "${PID[none]}") MB"
  result sat.store.dropped_metrics "$(store_drops "${APORT[store]}")"
  result sat.store.written_metrics "$(metric "${APORT[store]}" sluice_querylog_store_written_total)"
  stop_pid "${PID[none]}"; stop_pid "${PID[jsonl]}"
  # SIGTERM: the owner notes its drops in the store (for covers) and the store writes its spill.
  result sat.store.stop_ms "$(stop_graceful "${PID[store]}" 120)"
  pin "$SERVER_CPUS" "$ROOT/bin/sluice.js" log query --config "${DIR[store]}/sluice.yaml" --since "$BENCH_T0" --limit 1 --json >"$OUT/sat-store-covers.json" 2>"$OUT/sat-store-covers.err"
  result sat.store.covers_dropped "$(jq -r '.covers.dropped // "-"' "$OUT/sat-store-covers.json" 2>/dev/null || echo -)"
  result sat.store.covers_total "$(jq -r '.total // "-"' "$OUT/sat-store-covers.json" 2>/dev/null || echo -)"
  log "store at saturation: dropped $(awk -F'\t' '$1=="sat.store.dropped_metrics"{print $2}' "$OUT/results.tsv") (/metrics), covers.dropped $(jq -r '.covers.dropped' "$OUT/sat-store-covers.json" 2>/dev/null), $(jq -r '.total' "$OUT/sat-store-covers.json" 2>/dev/null) stored; the stop took $(awk -F'\t' '$1=="sat.store.stop_ms"{print $2}' "$OUT/results.tsv") ms"
fi

# ---------- 4. fixed rate ---------------------------------------------------------------------

fixed_check() {  # fixed_check NAME DUR LABEL : one fixed-rate run of DUR s of mix $FIXED_MIX on server NAME; results under fixed.LABEL.
  local name=$1 dur=$2 l=$3 pid=${PID[$1]} aport=${APORT[$1]} db t0 k0 c0 w0 d0 lat completed rows total stop
  db=${DIR[$name]}/var/querylog.db
  gen_mix "$dur"
  wait_quiet
  c0=$( [ -f "$db" ] && sqlite3 -readonly "$db" 'SELECT count(*) FROM events' 2>/dev/null || echo 0)
  w0=$(metric "$aport" sluice_querylog_store_written_total); d0=$(store_drops "$aport")
  t0=$(ms_now); k0=$(cpu_ticks "$pid")
  lat=$(LAT_DUR=$dur DNSPERF_OPTS="-c 4 -q 1000 -t 1" lat_run "${PORT[$name]}" mix "$FIXED_RATE" "$pid" "$OUT/fixed-$name-$FIXED_MIX.lat.txt")
  read -r _ lavg p50 p99 llost lsent lother <<<"$lat"
  completed=$(awk '/Queries completed/{print $3}' "$OUT/fixed-$name-$FIXED_MIX.lat.txt")
  result "fixed.$l.rate" "$FIXED_RATE"; result "fixed.$l.seconds" "$dur"; result "fixed.$l.mix" "$FIXED_MIX"
  result "fixed.$l.sent" "$lsent"; result "fixed.$l.completed" "$completed"; result "fixed.$l.lost" "$llost"
  result "fixed.$l.avg_ms" "$lavg"; result "fixed.$l.p50_ms" "$p50"; result "fixed.$l.p99_ms" "$p99"; result "fixed.$l.other" "$lother"
  result "fixed.$l.p999_ms" "$(gzip -cdf "$OUT/fixed-$name-$FIXED_MIX.lat.txt" | awk '/^> /{print $NF}' | sort -n | awk '{a[NR]=$1} END{if(NR) printf "%.3f", a[int(NR*.999)+1]*1000}')"
  result "fixed.$l.achieved" "$(awk '/Queries per second/{printf "%.0f", $4}' "$OUT/fixed-$name-$FIXED_MIX.lat.txt")"
  result "fixed.$l.server_cpu" "$(( ($(cpu_ticks "$pid") - k0) / dur ))"
  result "fixed.$l.server_rss_mb" "$(rss_mb "$pid")"
  log "fixed $FIXED_RATE/s x ${dur}s ($FIXED_MIX) on $name: completed $completed of $lsent, avg $lavg ms, p50 $p50 ms, p99 $p99 ms, other load $lother%"
  [ "${l%%.*}" = store ] || return 0
  result "fixed.$l.pending_at_end" "$(metric "$aport" sluice_querylog_store_pending_events)"
  result "fixed.$l.dropped" "$(( $(store_drops "$aport") - d0 ))"
  result "fixed.$l.written_at_end" "$(( $(metric "$aport" sluice_querylog_store_written_total) - w0 ))"
  # SIGTERM: the store writes what waits in its spill before the exit.
  stop=$(stop_graceful "$pid" 120)
  result "fixed.$l.stop_ms" "$stop"
  rows=$(( $(sqlite3 -readonly "$db" 'SELECT count(*) FROM events') - c0 ))
  result "fixed.$l.rows" "$rows"
  pin "$SERVER_CPUS" "$ROOT/bin/sluice.js" log query --config "${DIR[$name]}/sluice.yaml" --since "$t0" --limit 1 --json >"$OUT/fixed-covers-$FIXED_MIX.json" 2>"$OUT/fixed-covers-$FIXED_MIX.err"
  total=$(jq -r '.total // "-"' "$OUT/fixed-covers-$FIXED_MIX.json" 2>/dev/null || echo -)
  result "fixed.$l.cli_total" "$total"
  result "fixed.$l.covers_dropped" "$(jq -r '.covers.dropped // "-"' "$OUT/fixed-covers-$FIXED_MIX.json" 2>/dev/null || echo -)"
  log "fixed: $rows rows stored (sqlite3), $total by \`sluice log query --since\`, for $completed completed queries; dropped $(awk -F'\t' -v k="fixed.$l.dropped" '$1==k{print $2}' "$OUT/results.tsv"); $(awk -F'\t' -v k="fixed.$l.pending_at_end" '$1==k{print $2}' "$OUT/results.tsv") were in the spill at the end, written in the ${stop} ms of the stop"
}
if ! skip fixed; then
  if [ "$FIXED_MIX" = auto ]; then
    # Forwarding must keep up: the log-none server forwarded at least twice the realistic mix's
    # forwarded rate at saturation, else the mix measures an overloaded server, not the log.
    fwd=$(awk -F'\t' '$1=="sat.none.miss.qps"{print $2}' "$OUT/results.tsv")
    need=$(( FIXED_RATE * 39 / 100 * 2 ))
    if [ -n "$fwd" ] && [ "$fwd" -ge "$need" ]; then FIXED_MIX=realistic; else FIXED_MIX=blocked; fi
    result fixed.auto_reason "log-none forwarded ${fwd:-?} q/s at saturation; the realistic mix forwards $((FIXED_RATE * 39 / 100)) q/s, which must be at most half of that: the $FIXED_MIX mix"
    log "fixed-rate mix: $FIXED_MIX (log-none forwarded ${fwd:-?} q/s at saturation; the realistic mix forwards $((FIXED_RATE * 39 / 100)) q/s)"
  fi
  # The machine's own floor: the C responder (no DNS logic at all) on the server's core, same rate.
  if [ "$UPSTREAM_KIND" = c ] && [ "$FIXED_FLOOR_DUR" -gt 0 ]; then
    start_bg floor "$SERVER_CPUS" "$W/responder" $((PORT_BASE + 6)) 32
    PID[floor]=$LASTPID PORT[floor]=$((PORT_BASE + 6))
    if wait_answer "${PORT[floor]}" up.example 5 '192\.0\.2\.1' "${PID[floor]}"; then
      wait_quiet
      lat=$(LAT_DUR=$FIXED_FLOOR_DUR DNSPERF_OPTS="-c 4 -q 1000 -t 1" lat_run "${PORT[floor]}" cached "$FIXED_RATE" "${PID[floor]}" "$OUT/fixed-floor.lat.txt")
      read -r _ lavg p50 p99 _ _ lother <<<"$lat"
      result fixed.floor.seconds "$FIXED_FLOOR_DUR"; result fixed.floor.p50_ms "$p50"; result fixed.floor.p99_ms "$p99"; result fixed.floor.other "$lother"
      log "floor: the C responder on CPU ${SERVER_CPUS:-any} at $FIXED_RATE/s for ${FIXED_FLOOR_DUR}s: p50 $p50 ms, p99 $p99 ms"
    fi
    stop_pid "${PID[floor]}"
  fi
  mixes=("$FIXED_MIX"); [ -z "$FIXED_MIX2" ] || [ "$FIXED_MIX2" = "$FIXED_MIX" ] || mixes+=("$FIXED_MIX2")
  n=0
  for FIXED_MIX in "${mixes[@]}"; do
    dur=$FIXED_DUR; [ "$n" -eq 0 ] || dur=$FIXED2_DUR
    result "fixed.mix$n" "$FIXED_MIX"
    primekind=cached; [ "$FIXED_MIX" = blocked ] && primekind=blocked
    start_mode fixed store $((PORT_BASE + 3)) $((PORT_BASE + 13)) || exit 1
    prime "${PORT[fixed]}" "$primekind" >/dev/null 2>&1
    wait_drained "${APORT[fixed]}" 60
    fixed_check fixed "$dur" "store.$FIXED_MIX"
    if [ "$FIXED_CONTROL_DUR" -gt 0 ]; then
      start_mode control none $((PORT_BASE + 4)) $((PORT_BASE + 14)) || exit 1
      prime "${PORT[control]}" "$primekind" >/dev/null 2>&1
      fixed_check control "$FIXED_CONTROL_DUR" "none.$FIXED_MIX"
      stop_pid "${PID[control]}"
    fi
    n=$((n + 1))
  done
fi
stop_pid "$UPSTREAM_PID"

# ---------- 5. ingest without DNS, bytes per event --------------------------------------------

if ! skip ingest; then
  wait_quiet
  log "ingest: ${INGEST_RATE}/s offered for ${INGEST_DUR}s through the writer thread, then ${INGEST_DUR}s raw (flush())"
  # The generator and the writer thread each get a core (INGEST_CPUS): on one core the niced
  # writer gets only what the generator leaves, which measures the generator.
  RATE=$INGEST_RATE DURATION=$INGEST_DUR pin "$INGEST_CPUS" node "$BENCH/querylog-sqlite.mjs" ingest "$W/ingest" >"$OUT/ingest.json" 2>"$OUT/ingest.log" \
    || { log "ingest failed: $(tail -3 "$OUT/ingest.log")"; }
  rm -rf "$W/ingest"
fi

# ---------- 6. report latency over 2M and 20M events -------------------------------------------

if ! skip report; then
  for n in $SIZES; do
    dir=$W/report-$n; rm -rf "$dir"; mkdir -p "$dir"
    write_config "$dir" store $((PORT_BASE + 5)) $((PORT_BASE + 15))
    sed -i 's/^admin: .*/admin: { enabled: false }/' "$dir/sluice.yaml"
    wait_quiet
    log "seeding $n events (1 % blocked, 30 days) through SqliteStore"
    pin "$SERVER_CPUS" node "$BENCH/querylog-sqlite.mjs" seed "$dir/var/querylog.db" "$n" >"$OUT/seed-$n.json" 2>"$OUT/seed-$n.log" \
      || { log "seeding failed: $(tail -3 "$OUT/seed-$n.log")"; continue; }
    for since in 30d 3d; do
      [ "$since" = 3d ] && [ "$n" != "$(echo "$SIZES" | tr ' ' '\n' | sort -n | tail -1)" ] && continue
      wait_quiet
      : >"$RUN/report.ms"
      for r in $(seq 1 "$REPORT_RUNS"); do
        s0=$(date +%s%N)
        pin "$SERVER_CPUS" "$ROOT/bin/sluice.js" report devices --since "$since" --config "$dir/sluice.yaml" --json >"$OUT/report-$n-$since.json" 2>"$OUT/report-$n-$since.err"
        echo $(( ($(date +%s%N) - s0) / 1000000 )) >>"$RUN/report.ms"
      done
      result "report.$n.$since.ms" "$(median <"$RUN/report.ms")"
      result "report.$n.$since.runs" "$(paste -sd, "$RUN/report.ms")"
      result "report.$n.$since.counted" "$(jq '[.rows[]?.count // empty] | add // 0' "$OUT/report-$n-$since.json" 2>/dev/null || echo -)"
      log "report devices --since $since over $n events: $(median <"$RUN/report.ms") ms (runs $(paste -sd, "$RUN/report.ms"))"
    done
    RUNS=$REPORT_RUNS pin "$SERVER_CPUS" node "$BENCH/querylog-sqlite.mjs" devices "$dir/var/querylog.db" >"$OUT/devices-inproc-$n.json" 2>/dev/null
    # 'sluice --help': the CLI's own start-up (node, the modules), the floor under every report
    : >"$RUN/start.ms"
    for r in $(seq 1 "$REPORT_RUNS"); do
      s0=$(date +%s%N); pin "$SERVER_CPUS" "$ROOT/bin/sluice.js" --help >/dev/null 2>&1; echo $(( ($(date +%s%N) - s0) / 1000000 )) >>"$RUN/start.ms"
    done
    result cli.start.ms "$(median <"$RUN/start.ms")"
    rm -rf "$dir"
  done
fi

# ---------- 7. PostgreSQL (bench/querylog-pg.mjs) ----------------------------------------------

if ! skip pg && [ "$PG" != 0 ]; then
  pgurl=${SLUICE_BENCH_PG_URL:-${SLUICE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
  if node -e "const pg=require('$ROOT/node_modules/pg'); const c=new pg.Client({connectionString: process.argv[1], connectionTimeoutMillis: 3000}); c.connect().then(()=>c.end()).then(()=>process.exit(0), ()=>process.exit(1))" "$pgurl" 2>/dev/null; then
    wait_quiet
    log "PostgreSQL: bench/querylog-pg.mjs ingest (${PG_RATE}/s x ${PG_DURATION}s), devices ($PG_SIZES)"
    JSON=1 RATE=$PG_RATE DURATION=$PG_DURATION SIZES=$PG_SIZES pin "$SERVER_CPUS" node "$BENCH/querylog-pg.mjs" ingest devices >"$OUT/pg.json" 2>"$OUT/pg.log" \
      || log "querylog-pg.mjs failed: $(tail -3 "$OUT/pg.log")"
  else
    log "PostgreSQL does not answer at ${pgurl%%@*}@…: skipping its part (set SLUICE_BENCH_PG_URL)"
    echo "postgres: not reachable, skipped" >>"$OUT/env.txt"
  fi
fi

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); elapsed $(( ($(date +%s) - START_S) / 60 )) min $(( ($(date +%s) - START_S) % 60 )) s" >>"$OUT/env.txt"
node "$BENCH/querylog-report.mjs" "$OUT" | tee "$OUT/report.md"
gzip -f "$OUT"/*.lat.txt 2>/dev/null
exit 0
