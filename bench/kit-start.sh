#!/usr/bin/env bash
# Start sluice for a benchmark: kit-start.sh PORT UPSTREAM(host:port) LIST [WORKERS]
# Writes a config that blocks every domain of LIST (and its subdomains) for 127.0.0.0/8 and forwards
# everything else to UPSTREAM, then runs `sluice serve` in the foreground.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=$1 upstream=$2 list=$3 workers=${4:-}
dir=$(mktemp -d /tmp/sluice-bench.XXXXXX)
cat > "$dir/sluice.yaml" <<YAML
listeners:
  - { address: 127.0.0.1, port: $port }
networks:
  loopback: { cidrs: [127.0.0.0/8], profile: bench }
profiles:
  bench: { block: [bench], block_response: { mode: "null" } }
lists:
  bench: { file: "$list" }
upstreams:
  default: ["$upstream"]
logging: { level: warn }
YAML
# one process unless asked for more (the config default, "auto", is one per core)
echo "workers: ${workers:-1}" >> "$dir/sluice.yaml"
echo "watch: false" >> "$dir/sluice.yaml"
# UDP through the batched native socket (auto) or node:dgram, to compare the two
echo "udp: { io: ${SLUICE_UDP_IO:-auto} }" >> "$dir/sluice.yaml"
# as users run it: the script itself, whose shebang carries the node flags (src/server/node-flags.ts)
exec "$here/../bin/sluice.js" serve --config "$dir/sluice.yaml"
