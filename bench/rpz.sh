#!/usr/bin/env bash
# The RPZ feed under load: typoguard with a policy of 1,000 protected
# domains and a 1,000,000-name list serves its zone to a real Unbound on
# loopback, which takes it by AXFR, while dnsperf asks typoguard for cached
# names. Prints the export's size and time, the transfer's time, and the
# cache-hit latency quiet and during the transfer. Everything binds to and
# sends to 127.0.0.1 only; Unbound forwards only to the NSD it runs beside.
# Usage: bash bench/rpz.sh [-n DOMAINS] [-p PROTECTED] [-keep]
set -euo pipefail
export LC_ALL=C
PATH=$PATH:/usr/sbin:/sbin
n=1000000 protected=1000 keep=0
while (($#)); do
	case $1 in
	-n) n=$2; shift 2 ;;
	-p) protected=$2; shift 2 ;;
	-keep) keep=1; shift ;;
	*) echo "usage: bash bench/rpz.sh [-n DOMAINS] [-p PROTECTED] [-keep]" >&2; exit 2 ;;
	esac
done
# The loopback NSD every benchmark forwards to.
# shellcheck source=bench/nsd.sh
source "$(dirname "${BASH_SOURCE[0]}")/nsd.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/typoguard-rpz.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if ((keep)); then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
die() { echo "rpz.sh: $*" >&2; exit 1; }
for c in dnsperf nsd unbound dig taskset; do command -v "$c" >/dev/null || die "$c is needed (apt-get install dnsperf nsd unbound bind9-dnsutils)"; done

base=$((20000 + RANDOM % 8000))
nsd_port=$base tg_port=$((base + 1)) rpz_port=$((base + 2)) ub_port=$((base + 3))

(cd "$root" && go build -o "$tmp/typoguard" ./cmd/typoguard && go run ./bench/genlist -n "$n" >"$tmp/big.txt")
# PROTECTED random registrable domains: words of 5 to 10 letters under a
# few suffixes.
awk -v p="$protected" 'BEGIN {
	srand(1); split("mil gov com org net uk de fr", tld, " ")
	while (count < p) {
		w = ""; len = 5 + int(rand() * 6)
		for (i = 0; i < len; i++) w = w substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 26), 1)
		d = w "." tld[1 + int(rand() * 8)]
		if (!(d in seen)) { seen[d] = 1; list = list (count ? ", " : "") d; count++ }
	}
	print list
}' >"$tmp/protect.txt"
cat >"$tmp/policy.yaml" <<EOF
listen: ["127.0.0.1:$tg_port"]
upstreams: ["127.0.0.1:$nsd_port"]
log: {format: json}
rules:
  - {name: feed, domains_from: [big.txt], action: nxdomain}
  - {name: mali-is-not-mil, domains: [ml], types: [MX, A, AAAA, ANY], action: nxdomain}
lookalikes:
  protect: [army.mil, navy.mil, mod.uk, $(cat "$tmp/protect.txt")]
rpz:
  listen: 127.0.0.1:$rpz_port
  zone: rpz.typoguard.internal
  allow_transfer: [127.0.0.1/32]
  widen_types: true
EOF

mkdir -p "$tmp/nsd" "$tmp/ub"
{
	printf '$ORIGIN bench.test.\n$TTL 3600\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 127.0.0.1\n'
	for i in $(seq 0 999); do echo "host$i IN A 198.51.100.$((i % 254 + 1))"; done
} >"$tmp/nsd/bench.test.zone"
nsd_conf "$tmp/nsd" "$nsd_port" bench.test >"$tmp/nsd/nsd.conf"
printf '. 3600000 NS a.root.bench.test.\na.root.bench.test. 3600000 A 127.0.0.1\n' >"$tmp/ub/root.hints"
{
	cat <<EOF
server:
  interface: 127.0.0.1@$ub_port
  outgoing-interface: 127.0.0.1
  access-control: 127.0.0.0/8 allow
  do-ip6: no
  num-threads: 1
  module-config: "respip iterator"
  do-not-query-localhost: no
EOF
	for p in 0.0.0.0/2 64.0.0.0/3 96.0.0.0/4 112.0.0.0/5 120.0.0.0/6 124.0.0.0/7 126.0.0.0/8 128.0.0.0/1 ::/0; do echo "  do-not-query-address: $p"; done
	cat <<EOF
  root-hints: "$tmp/ub/root.hints"
  chroot: ""
  username: ""
  directory: "$tmp/ub"
  pidfile: "$tmp/ub/unbound.pid"
  use-syslog: no
  logfile: "$tmp/ub/unbound.log"
  verbosity: 1
  local-zone: "test." nodefault
remote-control:
  control-enable: no
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$nsd_port
rpz:
  name: "rpz.typoguard.internal."
  primary: 127.0.0.1@$rpz_port
EOF
} >"$tmp/ub/unbound.conf"
unbound-checkconf "$tmp/ub/unbound.conf" >/dev/null || die "unbound-checkconf rejects $tmp/ub/unbound.conf"
for i in $(seq 0 999); do echo "host$i.bench.test A"; done >"$tmp/hit.txt"

taskset -c 1 nsd -d -c "$tmp/nsd/nsd.conf" >"$tmp/nsd.out" 2>&1 &
pids+=($!)
echo "== typoguard $(cd "$root" && git rev-parse --short HEAD): $n list names, $((protected + 3)) protected domains; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "%e %M" -o "$tmp/export.time" "$tmp/typoguard" export -config "$tmp/policy.yaml" -format rpz -o "$tmp/zone.rpz"
read -r secs kb <"$tmp/export.time"
echo "export: $(grep -c . "$tmp/zone.rpz") lines in ${secs} s, ${kb} KB resident at most"
grep '^;   lookalikes, \|^; entries' "$tmp/zone.rpz" | sed 's/^; */export: /'

start=$(date +%s%N)
# typoguard, and dnsperf's light load, on CPU 0; Unbound and NSD on CPU 1,
# as when the secondary is another machine: what the transfer costs
# typoguard's answers is then typoguard's alone, and the client measuring
# them is not starved by Unbound taking in the zone. GOMAXPROCS=2, this
# machine's default, though on one CPU.
GOMAXPROCS=2 taskset -c 0 "$tmp/typoguard" serve -config "$tmp/policy.yaml" 2>"$tmp/typoguard.log" &
tg=$!
pids+=("$tg")
for _ in $(seq 600); do grep -q '"msg":"serving"' "$tmp/typoguard.log" && break; sleep 0.1; done
grep -q '"msg":"serving"' "$tmp/typoguard.log" || die "typoguard did not start: $(tail -3 "$tmp/typoguard.log")"
echo "serve: answering $((($(date +%s%N) - start) / 1000000)) ms after start, VmRSS $(awk '/^VmRSS/ {print int($2 / 1024)}' /proc/$tg/status) MiB"
for i in $(seq 0 9); do dig +short @127.0.0.1 -p "$tg_port" "host$i.bench.test" >/dev/null; done
taskset -c 0 dnsperf -s 127.0.0.1 -p "$tg_port" -d "$tmp/hit.txt" -l 5 -Q 1000 >/dev/null 2>&1 # fills the cache
latency() { awk '/Average Latency/ { printf "%.3f ms (min %.3f, max %.3f ms)", $4 * 1000, $6 * 1000, $8 * 1000 }' "$1"; }
taskset -c 0 dnsperf -s 127.0.0.1 -p "$tg_port" -d "$tmp/hit.txt" -l 10 -Q 2000 >"$tmp/quiet.dnsperf" 2>&1
echo "quiet: cache-hit latency $(latency "$tmp/quiet.dnsperf") at 2000 qps"

# The transfer takes a few seconds: measure over those, not diluted.
taskset -c 0 dnsperf -s 127.0.0.1 -p "$tg_port" -d "$tmp/hit.txt" -l 3 -Q 2000 >"$tmp/during.dnsperf" 2>&1 &
perf=$!
pids+=("$perf")
sleep 0.2
xfr_start=$(date +%s%N)
taskset -c 1 unbound -d -c "$tmp/ub/unbound.conf" >"$tmp/ub/unbound.out" 2>&1 &
pids+=($!)
for _ in $(seq 600); do grep -q '"msg":"rpz transfer"' "$tmp/typoguard.log" && break; sleep 0.05; done
line=$(grep '"msg":"rpz transfer"' "$tmp/typoguard.log" | head -1) || die "no transfer within 30 s: $(tail -3 "$tmp/ub/unbound.log")"
echo "transfer: $(sed 's/.*"kind":"\([^"]*\)".*"records":\([0-9]*\).*"ms":\([0-9]*\).*/\1 of \2 records in \3 ms (typoguard'"'"'s side)/' <<<"$line"); Unbound started to transfer done $((($(date +%s%N) - xfr_start) / 1000000)) ms"
for _ in $(seq 100); do [[ $(dig +tries=1 +time=1 @127.0.0.1 -p "$ub_port" arny.mil A 2>/dev/null) == *NXDOMAIN* ]] && break; sleep 0.1; done
echo "unbound: arny.mil A $(dig +tries=1 +time=2 @127.0.0.1 -p "$ub_port" arny.mil A | grep -o 'status: [A-Z]*'), host1.bench.test A $(dig +tries=1 +time=2 @127.0.0.1 -p "$ub_port" host1.bench.test A | grep -o 'status: [A-Z]*')"
wait "$perf" || true
echo "during: cache-hit latency $(latency "$tmp/during.dnsperf") at 2000 qps over the 3 s from Unbound's start; lost $(awk '/Queries lost:/ {print $3}' "$tmp/during.dnsperf")"
