#!/usr/bin/env bash
# npm run soak — sluice under a bounded mixed load for a few minutes (loopback only): blocked,
# cached and never-seen names at a fixed rate from dnsperf, with a fake upstream. Reports memory
# at start and end (and its peak), the answered ratio and errors, and exits non-zero when queries
# were lost or memory kept growing.
#
# Knobs (env): MINUTES (3) RATE (queries/s, 5000) PORT (5690) UPSTREAM_PORT (5691)
set -uo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
MINUTES=${MINUTES:-3}
RATE=${RATE:-5000}
PORT=${PORT:-5690}
UPSTREAM_PORT=${UPSTREAM_PORT:-5691}
OUT=${OUT:-/tmp/sluice-soak}
mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

if ! command -v dnsperf >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf >/dev/null || { echo "soak: dnsperf missing" >&2; exit 1; }
fi
[ -f "$ROOT/dist/cli/main.js" ] || (cd "$ROOT" && npm run build >/dev/null)

# inputs: 20k blocked domains; a query mix of 40% blocked, 40% cached (100 names), 20% unique
node -e '
const fs = require("fs");
const block = Array.from({ length: 20000 }, (_, i) => `soak-app${i}.example`);
fs.writeFileSync(process.argv[1] + "/block.txt", block.join("\n") + "\n");
const lines = [];
for (let i = 0; i < 2000000; i++) {
  const r = i % 5;
  if (r < 2) lines.push(`www.${block[(i * 7919) % block.length]} A`);
  else if (r < 4) lines.push(`host${i % 100}.cached.example ${i % 2 ? "AAAA" : "A"}`);
  else lines.push(`u${i}.miss.example A`);
}
fs.writeFileSync(process.argv[1] + "/queries.txt", lines.join("\n") + "\n");
' "$OUT"

if command -v cc >/dev/null && cc -O2 -o "$OUT/responder" "$BENCH/responder.c" 2>/dev/null; then
  "$OUT/responder" "$UPSTREAM_PORT" 32 & pids+=($!)
else
  node "$BENCH/dgram-responder.mjs" "$UPSTREAM_PORT" & pids+=($!)
fi
"$BENCH/kit-start.sh" "$PORT" "127.0.0.1:$UPSTREAM_PORT" "$OUT/block.txt" >"$OUT/sluice.log" 2>&1 & pids+=($!)
for _ in $(seq 1 100); do
  dig +short +tries=1 +time=1 -p "$PORT" @127.0.0.1 probe.soak.example >/dev/null 2>&1 && break
  sleep 0.1
done
spid=$(pgrep -f "sluice.js serve --config /tmp/sluice-bench" | tail -1)
rss() { awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$spid/status"; }
rss_start=$(rss)
echo "soak: sluice pid $spid, RSS at start ${rss_start} MB; ${MINUTES} min at ${RATE} q/s"

peak=$rss_start
( while sleep 10; do r=$(rss) || break; echo "$(date +%s) $r"; done ) >"$OUT/rss.log" & pids+=($!)
dnsperf -s 127.0.0.1 -p "$PORT" -d "$OUT/queries.txt" -l $((MINUTES * 60)) -Q "$RATE" -c 8 -t 2 >"$OUT/dnsperf.txt" 2>&1
rss_end=$(rss)
peak=$(awk -v p="$peak" '{ if ($2 > p) p = $2 } END { print p }' "$OUT/rss.log")
sent=$(awk '/Queries sent:/ { print $3 }' "$OUT/dnsperf.txt")
done_=$(awk '/Queries completed:/ { print $3 }' "$OUT/dnsperf.txt")
lost=$(awk '/Queries lost:/ { print $3 }' "$OUT/dnsperf.txt")
qps=$(awk '/Queries per second:/ { print $4 }' "$OUT/dnsperf.txt")
code() { grep -o "$1 [0-9]*" "$OUT/dnsperf.txt" | head -1 | awk '{ print $2 }'; }
noerr=$(code NOERROR)
nx=$(code NXDOMAIN)
servfail=$(code SERVFAIL)
errors=$(grep -c '"level":50' "$OUT/sluice.log")
ratio=$(awk -v d="$done_" -v s="$sent" 'BEGIN { printf "%.4f", (s ? d / s : 0) }')
cat <<REPORT

| measure | value |
| --- | --- |
| duration, rate | ${MINUTES} min at ${RATE} q/s (achieved ${qps} q/s) |
| queries sent / answered / lost | ${sent} / ${done_} / ${lost} |
| answered ratio | ${ratio} |
| NOERROR / NXDOMAIN / SERVFAIL | ${noerr:-0} / ${nx:-0} / ${servfail:-0} |
| RSS start / peak / end | ${rss_start} / ${peak} / ${rss_end} MB |
| errors in the server log | ${errors} |

raw output: $OUT (dnsperf.txt, rss.log, sluice.log)
REPORT
[ "${lost:-1}" = 0 ] && [ "$errors" = 0 ]
