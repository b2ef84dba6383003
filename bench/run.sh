#!/usr/bin/env bash
# npm run bench — sluice beside dnsmasq, Unbound and Node's bare-dgram ceiling, on this machine,
# loopback only. Method and results: docs/performance.md.
#
#   1. installs dnsperf, dig, dnsmasq and Unbound with apt-get when missing (a peer that cannot be
#      installed is skipped); builds sluice if dist/ is missing; generates the inputs in /tmp;
#   2. starts a fake upstream (bench/responder.c, or bench/dgram-responder.mjs without cc) and the
#      servers, each blocking the same 100k-domain list and forwarding to the same upstream; the
#      servers are pinned to CPU 1, dnsperf and the upstream to CPU 0 (when there are 2+ CPUs);
#   3. per server and kind (blocked, cached, miss; `ceiling` for the Node ceiling): prime, then
#      RUNS saturation runs of DUR s (`dnsperf -c 4 -q 100 -t 1 -l DUR`) interleaved with every
#      other cell, median QPS; then one run of LAT_DUR s at half the median QPS (dnsperf -Q, -v)
#      for average and p99 latency and lost queries;
#   4. 1M-domain list load: time from exec to the first blocked answer and RSS after it (REPEAT
#      times, median), for sluice, dnsmasq and Unbound;
#   5. the encrypted-DNS rows (bench/encrypted.sh, also `npm run bench:encrypted` alone): DoT and
#      DoH listeners of sluice, Unbound and dnsdist, forwarding over a DoT upstream, and the RSS of
#      1,000 idle DoT/DoH connections (SKIP_ENCRYPTED=1 leaves them out; knobs in that script);
#   6. prints one table; raw dnsperf outputs and TSVs go to /tmp/sluice-bench/<date>/ (also
#      /tmp/sluice-bench/latest).
#
# Knobs (env): DUR (6, <= 20) RUNS (3) QUICK=1 (DUR=2 RUNS=1, no 1M load) SKIP_1M=1 REPEAT (3, 1M
# loads per server) LAT_DUR (5) SERVERS ("sluice sluice-dgram dnsmasq unbound node-ceiling"; sluice-dgram
# is sluice with `udp.io: dgram`, to show what the batched UDP socket gives; sluice-base is the sluice
# checked out and built in SLUICE_BASE, e.g. `git worktree add /tmp/base main && (cd /tmp/base && npm ci
# && npm run build)`, to compare a change with what it changes in the same run) SLUICE_WORKERS
# (passed to kit-start.sh; the config gets `workers: N`) SERVER_CPUS (1) PERF_CPUS (0) UP_CPUS (0)
# PORT_BASE (5590) NO_INSTALL=1 (never run apt-get) STEAL_MAX (5) OTHER_MAX (10): a run during which
# the VM lost more than STEAL_MAX % of CPU time to steal, or other processes used more than
# OTHER_MAX % of one CPU, is repeated (twice at most); before each run the bench waits (at most
# QUIET_WAIT s, default 60) until the machine is quiet, i.e. other processes' load < OTHER_MAX %.
set -uo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"
source "$BENCH/lib.sh"

if [ -n "${QUICK:-}" ]; then DUR=${DUR:-2} RUNS=${RUNS:-1} LAT_DUR=${LAT_DUR:-2} PRIME_DUR=${PRIME_DUR:-1} SKIP_1M=1; fi
DUR=${DUR:-6}
RUNS=${RUNS:-3}
LAT_DUR=${LAT_DUR:-5}
PRIME_DUR=${PRIME_DUR:-2}
REPEAT=${REPEAT:-3}
STEAL_MAX=${STEAL_MAX:-5}
OTHER_MAX=${OTHER_MAX:-10}
SERVERS=${SERVERS:-sluice sluice-dgram dnsmasq unbound node-ceiling}
DNSPERF_OPTS="-c 4 -q 100 -t 1"
MISS_N=${MISS_N:-$((DUR * 250000))}    # unique names per miss run: more than DUR s at 250k/s
PORT_BASE=${PORT_BASE:-5590}
UP_PORT=$((PORT_BASE + 9))
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ]; then
  SERVER_CPUS=${SERVER_CPUS:-1} PERF_CPUS=${PERF_CPUS:-0} UP_CPUS=${UP_CPUS:-0}
else
  SERVER_CPUS=${SERVER_CPUS:-} PERF_CPUS=${PERF_CPUS:-} UP_CPUS=${UP_CPUS:-}
fi
[ "$DUR" -ge 1 ] && [ "$DUR" -le 20 ] || { echo "bench: DUR must be 1..20" >&2; exit 2; }
[ "$LAT_DUR" -le 20 ] || { echo "bench: LAT_DUR must be <= 20" >&2; exit 2; }

W=/tmp/sluice-bench
D=$W/data                               # generated inputs (kept between runs)
RUN=$W/run                              # configs, logs, scratch query files
OUT=$W/$(date +%Y%m%d-%H%M%S)           # this run's results
mkdir -p "$D" "$RUN" "$OUT"
ln -sfn "$OUT" "$W/latest"
SLUICE_DIRS=()
cleanup() {
  stop_all
  [ ${#SLUICE_DIRS[@]} -eq 0 ] || rm -rf "${SLUICE_DIRS[@]}"
  rm -f "$RUN/q_miss.txt"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "bench: $*" >&2; }

port_of() {
  case $1 in sluice) echo "$PORT_BASE" ;; dnsmasq) echo $((PORT_BASE + 1)) ;;
    unbound) echo $((PORT_BASE + 2)) ;; node-ceiling) echo $((PORT_BASE + 3)) ;; sluice-dgram) echo $((PORT_BASE + 4)) ;; sluice-base) echo $((PORT_BASE + 5)) ;; esac
}
label_of() { if [ "${1%-dgram}" = sluice ] && [ -n "${SLUICE_WORKERS:-}" ]; then echo "$1 x$SLUICE_WORKERS"; else echo "$1"; fi; }
bin_of() { case $1 in dnsmasq) echo dnsmasq ;; unbound) echo unbound ;; *) echo node ;; esac; }

# ---------- 1. tools, build, inputs -----------------------------------------------------------

pkg_of() { case $1 in dnsperf) echo dnsperf ;; dig) echo bind9-dnsutils ;; dnsmasq) echo dnsmasq-base ;; unbound) echo unbound ;; esac; }
missing=()
for t in dnsperf dig dnsmasq unbound; do command -v "$t" >/dev/null || missing+=("$t"); done
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
for t in dnsperf dig node; do
  command -v "$t" >/dev/null || { log "$t is required (apt-get install $(pkg_of "$t"))"; exit 1; }
done
servers=()
for s in $SERVERS; do
  if command -v "$(bin_of "$s")" >/dev/null; then servers+=("$s"); else log "skipping $s: $(bin_of "$s") is not installed"; fi
done
[ ${#servers[@]} -gt 0 ] || { log "no server to measure"; exit 1; }

if [ ! -d "$ROOT/dist" ]; then
  [ -d "$ROOT/node_modules" ] || (cd "$ROOT" && npm ci --no-audit --no-fund) || exit 1
  log "building sluice"; (cd "$ROOT" && npm run build >"$RUN/build.log" 2>&1) || { cat "$RUN/build.log"; exit 1; }
elif [ -n "$(find "$ROOT/src" -newer "$ROOT/dist/cli/main.js" -name '*.ts' -print -quit 2>/dev/null)" ]; then
  log "note: src/ has changes newer than dist/; run 'npm run build' to measure them"
fi
if [ -n "${SKIP_1M:-}" ]; then node "$BENCH/gen-data.mjs" "$D" || exit 1; else node "$BENCH/gen-data.mjs" "$D" --1m || exit 1; fi
LIST=$D/block100k.txt

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpus: $NCPU x $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
  echo "memory: $(awk '/^MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "node: $(node -v)"
  echo "dnsperf: $(dnsperf -h 2>&1 | awk '/^Version/{print $2}')"
  command -v dnsmasq >/dev/null && echo "dnsmasq: $(dnsmasq --version | awk 'NR==1{print $3}')"
  command -v unbound >/dev/null && echo "unbound: $(unbound -V 2>&1 | awk '/^Version/{print $2}')"
  echo "sluice: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')${SLUICE_WORKERS:+, workers $SLUICE_WORKERS}"
  echo "pinning: servers on CPU ${SERVER_CPUS:-any}, dnsperf on ${PERF_CPUS:-any}, fake upstream on ${UP_CPUS:-any}"
  echo "runs: DUR=${DUR}s RUNS=$RUNS LAT_DUR=${LAT_DUR}s dnsperf $DNSPERF_OPTS"
} >"$OUT/env.txt"

# ---------- 2. start everything ---------------------------------------------------------------

start_upstream || exit 1
echo "upstream: $UPSTREAM_KIND responder on 127.0.0.1:$UP_PORT" >>"$OUT/env.txt"
log "fake upstream ($UPSTREAM_KIND) on $UP_PORT; results in $OUT"

# start_checked NAME PORT LIST TIMEOUT : start a server and wait for its first blocked answer
# (any answer for the ceiling); PID in LASTPID, ms from exec to that answer in UP_MS
start_checked() {
  local s=$1 port=$2 list=$3 to=$4 pat=$BLOCKED_RE
  [ "$s" = node-ceiling ] && pat='status:'
  if answers "$port" probe.example; then log "port $port is already answering: skipping $s"; return 1; fi
  touch "$RUN/start.stamp"
  start_server "$s" "$port" "$list" || return 1
  local pid=$LASTPID ok=1
  wait_answer "$port" www.tiktok.com "$to" "$pat" "$pid" || ok=
  UP_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))
  [ "${s%-dgram}" = sluice ] && SLUICE_DIRS+=($(sluice_config_dirs "$port" "$RUN/start.stamp"))
  if [ -z "$ok" ]; then
    log "$s gave no blocked answer on $port (exited, or not within ${to}s); log: $RUN/$s-$port.log"
    tail -5 "$RUN/$s-$port.log" >&2; stop_pid "$pid"; return 1
  fi
  LASTPID=$pid
}

declare -A PID
cells=()
for s in "${servers[@]}"; do
  port=$(port_of "$s")
  start_checked "$s" "$port" "$LIST" 120 || continue
  PID[$s]=$LASTPID
  log "$(label_of "$s") on $port (pid $LASTPID), answering ${UP_MS} ms after exec"
  if [ "$s" = node-ceiling ]; then cells+=("$s:ceiling"); else cells+=("$s:blocked" "$s:cached" "$s:miss"); fi
done
[ ${#cells[@]} -gt 0 ] || exit 1

# ---------- 3. throughput and latency ---------------------------------------------------------

printf 'server\tkind\tqps_median\tqps_runs\tsat_avg_ms\tsat_lost\tcpu_pct\tlat_rate\tlat_avg_ms\tlat_p50_ms\tlat_p99_ms\tlat_lost\tlat_sent\trss_mb\tother_pct\tsteal_pct\tlat_other_pct\n' >"$OUT/results.tsv"
over() { awk -v v="$1" -v m="$2" 'BEGIN{exit !(v > m)}'; }

log "priming ${#cells[@]} cells"
for c in "${cells[@]}"; do
  s=${c%%:*}; k=${c#*:}
  prime "$(port_of "$s")" "$k"
  : >"$RUN/cell-$s-$k.runs"
done
n=${#cells[@]}
for r in $(seq 1 "$RUNS"); do
  for i in $(seq 0 $((n - 1))); do           # rotate the order each round: drifts hit every cell alike
    c=${cells[$(( (i + r - 1) % n ))]}; s=${c%%:*}; k=${c#*:}
    for try in 1 2 3; do
      wait_quiet
      row=$(sat_run "$(port_of "$s")" "$k" "${PID[$s]}" "$OUT/$s-$k.run$r.txt")
      read -r _ _ _ _ _ other steal <<<"$row"
      { over "$steal" "$STEAL_MAX" || over "$other" "$OTHER_MAX"; } && [ "$try" -lt 3 ] || break
      log "  steal $steal% (max $STEAL_MAX) or other load $other% (max $OTHER_MAX) during $s $k, repeating"
    done
    echo "$row" >>"$RUN/cell-$s-$k.runs"
    log "round $r/$RUNS $(label_of "$s") $k: $(echo "$row" | awk '{printf "%s QPS, avg %s ms, lost %s, server CPU %s%%, other load %s%%, steal %s%%", $1, $2, $3, $5, $6, $7}')"
  done
done
for c in "${cells[@]}"; do
  s=${c%%:*}; k=${c#*:}; f="$RUN/cell-$s-$k.runs"
  med=$(awk '{print $1}' "$f" | median)
  rate=$(awk -v m="$med" 'BEGIN{r=int(m/2); print (r < 100 ? 100 : r)}')
  for try in 1 2 3; do
    wait_quiet
    s0=$(steal_ticks)
    lat=$(lat_run "$(port_of "$s")" "$k" "$rate" "${PID[$s]}" "$OUT/$s-$k.lat.txt")
    st=$(awk -v s=$(( $(steal_ticks) - s0 )) -v d="$LAT_DUR" -v n="$NCPU" 'BEGIN{printf "%.1f", s/(d*n)}')
    { over "$st" "$STEAL_MAX" || over "${lat##* }" "$OTHER_MAX"; } && [ "$try" -lt 3 ] || break
    log "  latency run of $s $k: steal $st% (max $STEAL_MAX) or other load ${lat##* }% (max $OTHER_MAX), repeating"
  done
  read -r qps avg lost _pct cpu other steal < <(awk -v m="$med" '$1==m{print; exit}' "$f")
  read -r lrate lavg p50 p99 llost lsent lother <<<"$lat"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\n' "$(label_of "$s")" "$k" "$qps" \
    "$(awk '{print $1}' "$f" | paste -sd,)" "$avg" "$lost" "$cpu" "$lrate" "$lavg" "$p50" "$p99" "$llost" "$lsent" \
    "$(awk -v k="$(mem_kb "${PID[$s]}" VmRSS)" 'BEGIN{print k/1024}')" "$other" "$steal" "$lother" >>"$OUT/results.tsv"
  log "$(label_of "$s") $k: median $qps QPS; at $lrate/s avg $lavg ms, p99 $p99 ms, lost $llost of $lsent (other load $lother%)"
done
for s in "${!PID[@]}"; do stop_pid "${PID[$s]}"; done

# ---------- 4. 1M list load -------------------------------------------------------------------

printf 'server\tlist_lines\tload_ms_median\tload_ms_runs\trss_mb\thwm_mb\n' >"$OUT/listload.tsv"
if [ -z "${SKIP_1M:-}" ]; then
  big=$D/block1m.txt
  for s in "${servers[@]}"; do
    [ "$s" = node-ceiling ] || [ "$s" = sluice-dgram ] || [ "$s" = sluice-base ] && continue   # the same loader as sluice
    port=$(port_of "$s"); ups=(); rss=0; hwm=0
    for i in $(seq 1 "$REPEAT"); do
      wait_quiet
      start_checked "$s" "$port" "$big" 300 || break
      pid=$LASTPID; ups+=("$UP_MS")
      sleep 1
      rss=$(mem_kb "$pid" VmRSS); hwm=$(mem_kb "$pid" VmHWM)
      stop_pid "$pid"
      log "1M list: $(label_of "$s") blocked after $UP_MS ms, RSS $((rss / 1024)) MB (peak $((hwm / 1024)) MB)"
    done
    [ ${#ups[@]} -gt 0 ] || continue
    printf '%s\t%s\t%s\t%s\t%.0f\t%.0f\n' "$(label_of "$s")" "$(wc -l <"$big")" "$(printf '%s\n' "${ups[@]}" | median)" \
      "$(IFS=,; echo "${ups[*]}")" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" "$(awk -v k="$hwm" 'BEGIN{print k/1024}')" >>"$OUT/listload.tsv"
  done
fi

# ---------- 5. encrypted DNS (bench/encrypted.sh: DoT/DoH listeners, a DoT upstream, idle connections)

if [ -z "${SKIP_ENCRYPTED:-}" ]; then
  stop_pid "$UPSTREAM_PID"   # encrypted.sh starts its own on its own ports
  DUR=$DUR RUNS=$RUNS LAT_DUR=$LAT_DUR PRIME_DUR=$PRIME_DUR MISS_N=$MISS_N STEAL_MAX=$STEAL_MAX OTHER_MAX=$OTHER_MAX \
    SERVER_CPUS=$SERVER_CPUS PERF_CPUS=$PERF_CPUS UP_CPUS=$UP_CPUS UPSTREAM_KIND=$UPSTREAM_KIND OUT=$OUT ENC_FROM_RUN=1 \
    bash "$BENCH/encrypted.sh" || log "the encrypted-DNS part failed (see above)"
fi

# ---------- 6. report -------------------------------------------------------------------------

OTHER_MAX=$OTHER_MAX node "$BENCH/report.mjs" "$OUT" | tee "$OUT/report.md"
gzip -f "$OUT"/*.lat.txt 2>/dev/null   # the per-query outputs are large; keep them compressed
