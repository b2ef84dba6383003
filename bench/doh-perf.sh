#!/usr/bin/env bash
# A DNS-over-HTTPS load generator with dnsperf's command line and output, for bench/encrypted.sh:
# dnsperf 2.10's own `-m doh` stalls (one stream at a time per connection, and long waits: it
# finished 2-26 queries a second against dnsdist and Unbound here), so DoH load comes from
# h2load (nghttp2-client, C, HTTP/2): GET requests, one per line of the dnsperf query file
# (RFC 8484 `?dns=`, ID 0), over C connections with Q/C streams each, as dnsperf -c C -q Q.
#
#   doh-perf.sh -s 127.0.0.1 -p PORT -d QUERYFILE [-l SECONDS | -n 1] [-c C] [-q Q] [-Q RATE] [-v] [-t S]
#
# Prints dnsperf's "Queries sent/completed/lost", "Queries per second" and "Average Latency (s)"
# lines, and with -v one "> NOERROR SECONDS" line per answered request (HTTP 200), so that
# bench/lib.sh's sat_run and lat_run read it as they read dnsperf. Other dnsperf options (-m,
# -O, -t) are accepted and ignored.
set -uo pipefail
host=127.0.0.1 port=443 data= dur= runs= clients=1 outstanding=100 rate= verbose=
while getopts 's:p:d:l:n:c:q:Q:t:m:O:v' o; do
  case $o in
    s) host=$OPTARG ;; p) port=$OPTARG ;; d) data=$OPTARG ;; l) dur=$OPTARG ;; n) runs=$OPTARG ;;
    c) clients=$OPTARG ;; q) outstanding=$OPTARG ;; Q) rate=$OPTARG ;; v) verbose=1 ;; *) ;;
  esac
done
[ -n "$data" ] && [ -f "$data" ] || { echo "doh-perf: -d QUERYFILE is required" >&2; exit 2; }
command -v h2load >/dev/null || { echo "doh-perf: h2load is required (apt-get install nghttp2-client)" >&2; exit 1; }
work=${DOH_PERF_DIR:-/tmp/sluice-bench/run-encrypted}
mkdir -p "$work"
uris="$work/uris-$port-$(basename "$data")"
if [ ! -s "$uris" ] || [ "$data" -nt "$uris" ]; then
  node -e '
    const fs = require("fs");
    const [file, base] = process.argv.slice(1);
    const out = [];
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      const [name, type] = line.trim().split(/\s+/);
      if (!name) continue;
      const labels = name.split(".").filter(Boolean);
      const q = Buffer.alloc(12 + labels.reduce((n, l) => n + l.length + 1, 1) + 4);
      q.writeUInt16BE(0x0100, 2); q.writeUInt16BE(1, 4);
      let o = 12;
      for (const l of labels) { q[o++] = l.length; o += q.write(l, o, "ascii"); }
      q[o++] = 0;
      q.writeUInt16BE(type === "AAAA" ? 28 : 1, o); q.writeUInt16BE(1, o + 2);
      out.push(base + q.toString("base64url"));
    }
    fs.writeFileSync(file === "-" ? 1 : process.argv[3], out.join("\n") + "\n");
  ' "$data" "https://$host:$port/dns-query?dns=" "$uris.tmp" && mv "$uris.tmp" "$uris" || exit 1
fi
streams=$(( (outstanding + clients - 1) / clients ))
args=(-c "$clients" -m "$streams" -i "$uris")
if [ -n "$dur" ]; then args+=(-D "$dur"); else args+=(-n "$(( $(wc -l <"$uris") * ${runs:-1} ))"); fi
# --rps is per connection
[ -z "$rate" ] || args+=(--rps "$(( (rate + clients - 1) / clients ))")
log=
if [ -n "$verbose" ]; then log=$(mktemp "$work/h2load-log.XXXXXX"); args+=(--log-file "$log"); fi
echo "[Status] Command line: h2load ${args[*]}"
out=$(h2load "${args[@]}" 2>&1)
echo "$out" | sed 's/^/# /'
# "finished in 5.00s, 33508.50 req/s, 2.05MB/s"; "requests: T total, S started, D done, OK succeeded, ..."
# "time for request: min max mean sd": mean with a unit (us, ms, s)
echo "$out" | awk '
  /^finished in/ {secs = $3 + 0; qps = $4 + 0}
  /^requests:/ {sent = $2 + 0; ok = $8 + 0}
  /^time for request:/ {m = $6; v = m + 0; if (m ~ /us$/) v /= 1e6; else if (m ~ /ms$/) v /= 1e3; lat = v}
  END {
    lost = sent - ok; if (lost < 0) lost = 0
    printf "\nStatistics:\n\n  Queries sent:         %d\n  Queries completed:    %d (%.2f%%)\n", sent, ok, (sent ? 100 * ok / sent : 0)
    printf "  Queries lost:         %d (%.2f%%)\n\n  Run time (s):         %.6f\n", lost, (sent ? 100 * lost / sent : 100), secs
    printf "  Queries per second:   %.6f\n\n  Average Latency (s):  %.6f\n", (secs ? ok / secs : 0), lat
  }'
if [ -n "$log" ]; then
  # start time (us), HTTP status, microseconds to the end of the response
  awk -F'\t' '$2 == 200 {printf "> NOERROR %.6f\n", $3 / 1e6}' "$log"
  rm -f "$log"
fi
