#!/usr/bin/env bash
# Load a policy with a million-domain list into the real binary and report
# the load time it logs and its resident memory once loaded.
# Usage: bash bench/biglist.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
go build -o "$dir/typoguard" ./cmd/typoguard
go run ./bench/genlist -n "$n" > "$dir/big.txt"
cat > "$dir/policy.yaml" <<YAML
upstreams: ["127.0.0.1:1"]
log: {format: json}
rules:
  - {name: feed, domains_from: [big.txt], action: nxdomain}
  - {name: ml, domains: [ml], types: [MX, A, AAAA, ANY], action: nxdomain}
YAML
"$dir/typoguard" serve -config "$dir/policy.yaml" -listen 127.0.0.1:0 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do grep -q '"msg":"serving"' "$dir/log" && break; sleep 0.1; done
sleep 1
echo "domains: $n ($(du -h "$dir/big.txt" | cut -f1) list file)"
grep '"msg":"serving"' "$dir/log" | sed 's/.*"domains":\([0-9]*\).*"load_ms":\([0-9]*\).*/loaded \1 domains in \2 ms/'
grep -E 'VmRSS|VmHWM' "/proc/$pid/status"
