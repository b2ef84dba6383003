# Helpers for bench/run.sh. Source it; do not run it.
# Everything talks to 127.0.0.1 only; every load run is bounded by `dnsperf -l`; only processes
# this shell started (recorded in STARTED) are stopped, by PID.

# ---------- processes -------------------------------------------------------------------------

STARTED=()
LASTPID=
START_NS=0

# pin CPUS CMD... : run CMD pinned to CPUS (taskset), or unpinned when CPUS is empty
pin() {
  local cpus=$1; shift
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# start_bg NAME CPUS CMD... : start CMD in the background, pinned; PID in LASTPID, log in $RUN/NAME.log
start_bg() {
  local name=$1 cpus=$2; shift 2
  START_NS=$(date +%s%N)
  # not through pin(): a function would leave a subshell between $! and the server
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@" >"$RUN/$name.log" 2>&1 &
  else "$@" >"$RUN/$name.log" 2>&1 &
  fi
  LASTPID=$!
  STARTED+=("$LASTPID")
}

# descendants PID : PID and all its descendants (a server's workers and threads' owners)
descendants() {
  local p=$1 c
  echo "$p"
  for c in $(pgrep -P "$p" 2>/dev/null); do descendants "$c"; done
}

# stop_pid PID : SIGTERM PID and its descendants, wait up to 6 s, then SIGKILL them
stop_pid() {
  local p=$1 all i
  all=$(descendants "$p")
  # shellcheck disable=SC2086
  kill $all 2>/dev/null
  for i in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  # shellcheck disable=SC2086
  kill -0 "$p" 2>/dev/null && kill -9 $all 2>/dev/null
  wait "$p" 2>/dev/null
  return 0
}

stop_all() {
  local p
  for p in "${STARTED[@]}"; do kill -0 "$p" 2>/dev/null && stop_pid "$p"; done
  STARTED=()
}

# sluice_config_dirs PORT STAMP : the temp folders kit-start.sh wrote a config for PORT into since
# STAMP was touched (to clean them up, whether sluice started or not)
sluice_config_dirs() {
  find /tmp -maxdepth 2 -path '/tmp/sluice-bench.*/sluice.yaml' -newer "$2" 2>/dev/null |
    xargs -r grep -l "port: $1 }" | xargs -r -n1 dirname
}

# ---------- /proc measurements ----------------------------------------------------------------

# cpu_ticks PID : utime+stime (1/100 s) of PID and its descendants, all threads
cpu_ticks() {
  local t=0 p v
  for p in $(descendants "$1"); do
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}')
    t=$((t + ${v:-0}))
  done
  echo $t
}

# mem_kb PID FIELD : sum of FIELD (VmRSS, VmHWM) over PID and its descendants, in kB
mem_kb() {
  local t=0 p v
  for p in $(descendants "$1"); do
    v=$(awk -v f="$2:" '$1==f{print $2}' "/proc/$p/status" 2>/dev/null)
    t=$((t + ${v:-0}))
  done
  echo $t
}

# steal_ticks : VM steal time summed over all CPUs (noise indicator)
steal_ticks() { awk '$1=="cpu"{print $9}' /proc/stat; }

# cpu_busy CPUS : user+nice+system ticks (not irq/softirq: packet work the server causes) of the CPUs in the list CPUS ("1", "0,1"),
# of all CPUs when CPUS is empty
cpu_busy() {
  awk -v l="${1:-}" 'BEGIN{n=split(l, c, ","); for(i=1;i<=n;i++) want["cpu" c[i]]=1; if(n==0) want["cpu"]=1}
    ($1 in want){b+=$2+$3+$4} END{print b+0}' /proc/stat
}

# wait_quiet : wait (at most QUIET_WAIT s) until the machine is quiet: over 1 s, less than
# OTHER_MAX % of one CPU busy (our idle servers use next to nothing). Other people's builds and
# tests on a shared machine would otherwise be measured as a slow server.
wait_quiet() {
  local end b0 b1 waited=
  end=$(( $(date +%s) + ${QUIET_WAIT:-60} ))
  while :; do
    b0=$(cpu_busy); sleep 1; b1=$(cpu_busy)
    [ $((b1 - b0)) -lt "$OTHER_MAX" ] && break
    [ -n "$waited" ] || { echo "bench:   waiting for other load to end ($((b1 - b0))% of a CPU busy)" >&2; waited=1; }
    [ "$(date +%s)" -lt "$end" ] || { echo "bench:   still busy after ${QUIET_WAIT:-60} s; measuring anyway" >&2; break; }
  done
}

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# ---------- DNS probes ------------------------------------------------------------------------

# answers PORT NAME [PATTERN] : does 127.0.0.1:PORT answer NAME (matching PATTERN)?
answers() {
  dig +time=1 +tries=1 +noedns @127.0.0.1 -p "$1" "$2" A 2>/dev/null | grep -Eq -- "${3:-status:}"
}

# wait_answer PORT NAME TIMEOUT_S [PATTERN] [PID] : poll every 20 ms until an answer (matching
# PATTERN); gives up early when PID has exited
wait_answer() {
  local port=$1 name=$2 to=$3 pat=${4:-status:} pid=${5:-} end
  end=$(( $(date +%s%N) + to * 1000000000 ))
  while [ "$(date +%s%N)" -lt "$end" ]; do
    answers "$port" "$name" "$pat" && return 0
    [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}
BLOCKED_RE='NXDOMAIN|	0\.0\.0\.0'   # a blocked answer: NXDOMAIN (Unbound) or 0.0.0.0 (sluice, dnsmasq)

# ---------- servers ---------------------------------------------------------------------------
# start_server NAME PORT LIST : start one server under test pinned to $SERVER_CPUS, forwarding to
# the fake upstream on 127.0.0.1:$UP_PORT and blocking every domain of LIST and its subdomains.

start_server() {
  local name=$1 port=$2 list=$3 conf
  case $name in
    sluice)
      start_bg "sluice-$port" "$SERVER_CPUS" bash "$BENCH/kit-start.sh" "$port" "127.0.0.1:$UP_PORT" "$list" \
        ${SLUICE_WORKERS:+"$SLUICE_WORKERS"} ;;
    sluice-dgram)
      SLUICE_UDP_IO=dgram start_bg "sluice-dgram-$port" "$SERVER_CPUS" bash "$BENCH/kit-start.sh" "$port" "127.0.0.1:$UP_PORT" "$list" \
        ${SLUICE_WORKERS:+"$SLUICE_WORKERS"} ;;
    sluice-base)
      [ -x "${SLUICE_BASE:-}/bin/sluice.js" ] || { echo "sluice-base needs SLUICE_BASE=<a built sluice checkout>" >&2; return 1; }
      start_bg "sluice-base-$port" "$SERVER_CPUS" bash "$SLUICE_BASE/bench/kit-start.sh" "$port" "127.0.0.1:$UP_PORT" "$list" \
        ${SLUICE_WORKERS:+"$SLUICE_WORKERS"} ;;
    dnsmasq)
      conf="$RUN/dnsmasq-$port.conf"
      { printf 'port=%s\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n' "$port"
        printf 'server=127.0.0.1#%s\ncache-size=10000\nuser=%s\npid-file=\nlog-facility=-\n' "$UP_PORT" "$(id -un)"
        sed 's#.*#address=/&/0.0.0.0#' "$list"; } >"$conf"
      start_bg "dnsmasq-$port" "$SERVER_CPUS" dnsmasq -k -C "$conf" ;;
    unbound)
      conf="$RUN/unbound-$port.conf"
      { printf 'server:\n  interface: 127.0.0.1@%s\n  port: %s\n  num-threads: 1\n' "$port" "$port"
        printf '  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  chroot: ""\n  username: ""\n'
        printf '  pidfile: ""\n  use-syslog: no\n  logfile: ""\n  verbosity: 0\n  module-config: "iterator"\n'
        printf '  msg-cache-size: 64m\n  rrset-cache-size: 128m\n  qname-minimisation: no\n'
        sed 's#.*#  local-zone: "&." always_nxdomain#' "$list"
        [ -z "${UNBOUND_EXTRA:-}" ] || printf '%s\n' "$UNBOUND_EXTRA"   # more server: lines (DoT listener)
        printf 'forward-zone:\n  name: "."\n  forward-addr: 127.0.0.1@%s\n' "$UP_PORT"; } >"$conf"
      start_bg "unbound-$port" "$SERVER_CPUS" unbound -d -c "$conf" ;;
    node-ceiling)
      start_bg "node-ceiling-$port" "$SERVER_CPUS" node "$BENCH/dgram-responder.mjs" "$port" ;;
    dnsdist)
      # a rule for the list (SuffixMatchNode: each domain and its subdomains, NXDOMAIN as Unbound
      # answers) and a packet cache in front of the fake upstream; DNSDIST_EXTRA adds Lua lines
      # (the DoT/DoH frontends). No security polling: it would ask a public name.
      conf="$RUN/dnsdist-$port.conf"
      { printf 'setSecurityPollSuffix("")\nsetLocal("127.0.0.1:%s")\nsetACL({"127.0.0.0/8"})\n' "$port"
        printf 'newServer({address="127.0.0.1:%s", name="up"})\n' "$UP_PORT"
        if [ -n "$list" ]; then
          printf 'local smn = newSuffixMatchNode()\nfor line in io.lines("%s") do smn:add(line) end\n' "$list"
          printf 'addAction(SuffixMatchNodeRule(smn, true), RCodeAction(DNSRCode.NXDOMAIN))\n'
          printf 'getPool(""):setCache(newPacketCache(100000, {maxTTL=86400, minTTL=0}))\n'
        fi
        [ -z "${DNSDIST_EXTRA:-}" ] || printf '%s\n' "$DNSDIST_EXTRA"; } >"$conf"
      start_bg "dnsdist-$port" "${DNSDIST_CPUS-$SERVER_CPUS}" dnsdist --supervised --disable-syslog -C "$conf" ;;
    *) echo "unknown server $name" >&2; return 1 ;;
  esac
}

# start_upstream : the fake upstream (C responder with recvmmsg/sendmmsg batches when cc exists,
# else the Node responder), pinned to $UP_CPUS beside dnsperf
start_upstream() {
  if [ -z "${UPSTREAM_KIND:-}" ]; then
    UPSTREAM_KIND=node
    if command -v cc >/dev/null; then
      if [ -x "$W/responder" ] && [ "$W/responder" -nt "$BENCH/responder.c" ] \
        || cc -O2 -o "$W/responder" "$BENCH/responder.c" 2>"$RUN/cc.log"; then
        UPSTREAM_KIND=c
      else
        echo "bench: cc could not build bench/responder.c (see $RUN/cc.log); Node upstream instead" >&2
      fi
    fi
  fi
  # Something else answering on the port would silently become the upstream of every cache miss.
  if answers "$UP_PORT" probe.example; then
    echo "bench: port $UP_PORT (fake upstream) is already answering; stop that process or set PORT_BASE" >&2
    return 1
  fi
  if [ "$UPSTREAM_KIND" = c ]; then
    start_bg upstream "$UP_CPUS" "$W/responder" "$UP_PORT" 32
  else
    start_bg upstream "$UP_CPUS" node "$BENCH/dgram-responder.mjs" "$UP_PORT"
  fi
  UPSTREAM_PID=$LASTPID
  wait_answer "$UP_PORT" up.example 5 '192\.0\.2\.1' "$UPSTREAM_PID" || { echo "bench: fake upstream did not start ($RUN/upstream.log)" >&2; return 1; }
}

# up_ticks : CPU ticks of the upstream side: the fake upstream and EXTRA_UP_PIDS (a DoT proxy in
# front of it), so that their work is not counted as other processes' load
up_ticks() {
  local t=0 p
  for p in "$UPSTREAM_PID" ${EXTRA_UP_PIDS:-}; do t=$((t + $(cpu_ticks "$p"))); done
  echo $t
}

# ---------- dnsperf runs ----------------------------------------------------------------------

# gen_miss FILE N : N unique names never asked before (a new tag per file), all forwarded
MISS_SEQ=0
gen_miss() {
  MISS_SEQ=$((MISS_SEQ + 1))
  awk -v n="$2" -v t="m$(date +%s%N | cut -c8-16)x$MISS_SEQ" \
    'BEGIN{for(i=0;i<n;i++) printf "u%d.%s.miss-example.org A\n", i, t}' >"$1"
}

# qfile KIND : the query file for KIND (for miss: a fresh file of unique names)
qfile() {
  case $1 in
    blocked) echo "$D/q_blocked.txt" ;;
    cached|ceiling) echo "$D/q_cached.txt" ;;
    miss) gen_miss "$RUN/q_miss.txt" "$MISS_N"; echo "$RUN/q_miss.txt" ;;
  esac
}

# perf ARGS : dnsperf (or PERF_TOOL, a program with its command line and output: bench/doh-perf.sh)
perf() { pin "$PERF_CPUS" "${PERF_TOOL:-dnsperf}" -s 127.0.0.1 "$@"; }

# prime PORT KIND : untimed warm-up (JIT, caches): the cached names once, then PRIME_DUR s of load
# (PERF_MODE: the transport options of the first run, e.g. "-m dot"; DNSPERF_OPTS for the second)
prime() {
  [ "$2" = cached ] && perf -p "$1" ${PERF_MODE:-} -d "$D/q_cached_prime.txt" -n 1 -l 5 -t 1 >/dev/null 2>&1
  perf -p "$1" -d "$(qfile "$2")" -l "$PRIME_DUR" $DNSPERF_OPTS >/dev/null 2>&1
}

# children_ticks VAR : set VAR to the CPU ticks of this shell's finished children (dnsperf, awk,
# ...): cutime+cstime of $BASHPID, read without a subshell (a subshell would be another process)
children_ticks() {
  local st f
  read -r st <"/proc/$BASHPID/stat"
  read -ra f <<<"${st##*) }"
  printf -v "$1" '%s' $(( f[13] + f[14] ))
}

# sat_run PORT KIND PID OUT : one saturation run of DUR s; prints
#   qps avg_ms lost lost_pct server_cpu_pct other_pct steal_pct
# other_pct: CPU time (user+system, all CPUs) used by anything but the server, the fake upstream
# and dnsperf - other processes on this machine - in % of one CPU; steal_pct: VM steal, all CPUs
sat_run() {
  local port=$1 kind=$2 pid=$3 out=$4 q t0 t1 s0 s1 b0 b1 u0 u1 c0 c1
  q=$(qfile "$kind")
  t0=$(cpu_ticks "$pid"); u0=$(up_ticks); children_ticks c0
  s0=$(steal_ticks); b0=$(cpu_busy)
  perf -p "$port" -d "$q" -l "$DUR" $DNSPERF_OPTS >"$out" 2>&1
  b1=$(cpu_busy); s1=$(steal_ticks)
  t1=$(cpu_ticks "$pid"); u1=$(up_ticks); children_ticks c1
  awk -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v o=$(( (b1 - b0) - (t1 - t0) - (u1 - u0) - (c1 - c0) )) \
    -v d="$DUR" -v n="$NCPU" '
    /Queries per second/{q=$4} /Average Latency/ && a==""{a=$4*1000}   # the first: DoT/DoH add a connection latency
    /Queries lost/{l=$3; p=$4; gsub(/[()%]/,"",p)}
    END{if(o<0) o=0
        printf "%.0f %.3f %s %s %.0f %.0f %.1f\n", q, a, (l==""?"-":l), (p==""?"100":p), t/d, o/d, s/(d*n)}' "$out"
}

# lat_run PORT KIND RATE PID OUT : LAT_DUR s at a fixed offered RATE (dnsperf -Q) with per-query
# output (-v); prints  rate avg_ms p50_ms p99_ms lost sent other_pct (as in sat_run)
lat_run() {
  local port=$1 kind=$2 rate=$3 pid=$4 out=$5 q pct t0 t1 b0 b1 u0 u1 c0 c1
  q=$(qfile "$kind")
  t0=$(cpu_ticks "$pid"); u0=$(up_ticks); children_ticks c0; b0=$(cpu_busy)
  perf -p "$port" -d "$q" -l "$LAT_DUR" -Q "$rate" $DNSPERF_OPTS -v >"$out" 2>&1
  b1=$(cpu_busy); t1=$(cpu_ticks "$pid"); u1=$(up_ticks); children_ticks c1
  pct=$(awk '/^> /{print $NF}' "$out" | sort -n |
    awk '{a[NR]=$1} END{if(NR==0){print "- -"; exit} printf "%.3f %.3f", a[int(NR*.5)+1]*1000, a[int(NR*.99)+(NR*.99>int(NR*.99))]*1000}')
  echo "$rate $(awk '/Average Latency/{printf "%.3f", $4*1000; exit}' "$out") $pct" \
    "$(awk '/Queries lost/{print $3} /Queries sent/{s=$3} END{print s}' "$out" | paste -sd' ')" \
    "$(awk -v o=$(( (b1 - b0) - (t1 - t0) - (u1 - u0) - (c1 - c0) )) -v d="$LAT_DUR" 'BEGIN{printf "%.0f", (o < 0 ? 0 : o) / d}')"
}
