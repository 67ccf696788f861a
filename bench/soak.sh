#!/usr/bin/env bash
# Fault and soak test of typoguard: a steady load, an upstream that stops,
# miss floods to a silent upstream, reloads under load and slow TCP
# clients, each with the figures that say whether typoguard held. Every
# socket binds to and sends to 127.0.0.1 only; every phase is bounded in
# time. bench/README.md says what each phase measures.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bash bench/soak.sh [-steady SECONDS] [-rate QPS] [-flood SECONDS] [-keep]

  -steady SECONDS  length of the steady phase (default 600)
  -rate QPS        queries a second of the steady, stop and reload phases (default 2000)
  -flood SECONDS   length of each miss flood (default 15)
  -keep            keep the temporary directory (logs, policy, zone)

Needs dnsperf, nsd, dig, curl and python3; installs the first three from
Debian when missing.
EOF
}

steady=600 rate=2000 flood=15 keep=0 cache_size=10000
while (($#)); do
	case $1 in
	-h | -help | --help) usage; exit 0 ;;
	-keep) keep=1 ;;
	-steady | -rate | -flood)
		(($# >= 2)) || { echo "soak.sh: $1 needs a value" >&2; exit 2; }
		case $1 in -steady) steady=$2 ;; -rate) rate=$2 ;; -flood) flood=$2 ;; esac
		shift
		;;
	*) echo "soak.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
for v in "$steady" "$rate" "$flood"; do
	[[ $v =~ ^[0-9]+$ ]] && ((v > 0 && v <= 100000)) || { echo "soak.sh: want whole numbers from 1 to 100000" >&2; exit 2; }
done

# The loopback NSD every benchmark forwards to.
# shellcheck source=bench/nsd.sh
source "$(dirname "${BASH_SOURCE[0]}")/nsd.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/typoguard-soak.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if ((keep)); then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
die() { echo "soak.sh: $*" >&2; exit 1; }

need=()
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v nsd >/dev/null || need+=(nsd)
command -v dig >/dev/null || need+=(bind9-dnsutils)
if ((${#need[@]})); then
	((EUID == 0)) || die "missing ${need[*]}; run as root to install them"
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v python3 >/dev/null || die "python3 is needed for the silent upstream and the slow TCP clients"
command -v curl >/dev/null || die "curl is needed to read goroutines from /debug/pprof"

# Ports: fixed offsets from a random base below the ephemeral range.
base=$((20000 + RANDOM % 8000))
nsd_port=$base tg_port=$((base + 1)) metrics_port=$((base + 2)) silent_port=$((base + 3))

(cd "$root" && go build -o "$tmp/typoguard" ./cmd/typoguard)

mkdir -p "$tmp/nsd"
{
	cat <<'EOF'
$ORIGIN soak.test.
$TTL 300
@       IN SOA ns1 hostmaster 1 3600 600 86400 300
@       IN NS  ns1
ns1     IN A   127.0.0.1
*.miss  IN A   192.0.2.1
*.up    IN A   192.0.2.2
EOF
	for i in $(seq 0 999); do echo "host$i IN A 198.51.100.$((i % 254 + 1))"; done
} >"$tmp/nsd/soak.test.zone"
nsd_conf "$tmp/nsd" "$nsd_port" soak.test >"$tmp/nsd/nsd.conf"

# policy DEFAULT_UPSTREAM [EXTRA_RULE]: the policy file, its default
# upstreams at DEFAULT_UPSTREAM and a forward rule to NSD for up.soak.test.
policy() {
	cat >"$tmp/policy.yaml.new" <<EOF
listen: ["127.0.0.1:$tg_port"]
upstreams: ["$1"]
upstream_timeout: 2s
metrics: 127.0.0.1:$metrics_port
log: {format: json, level: info}
cache: {size: $cache_size}
rules:
  - {name: ml, domains: [ml], types: [MX, A, AAAA, ANY], action: nxdomain}
  - {name: healthy, domains: [up.soak.test], action: forward, servers: ["127.0.0.1:$nsd_port"]}
${2:-}
EOF
	mv "$tmp/policy.yaml.new" "$tmp/policy.yaml"
}

start_nsd() {
	nsd -d -c "$tmp/nsd/nsd.conf" </dev/null >>"$tmp/nsd.out" 2>&1 &
	nsd_pid=$!
	pids+=("$nsd_pid")
	for _ in $(seq 50); do
		dig +short +tries=1 +time=1 @127.0.0.1 -p "$nsd_port" host1.soak.test A >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "NSD did not answer on 127.0.0.1:$nsd_port"
}

rss() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$tg_pid/status"; }
goroutines() { curl -s "127.0.0.1:$metrics_port/debug/pprof/goroutine?debug=1" | awk 'NR == 1 { print $4 }'; }
entries() { curl -s "127.0.0.1:$metrics_port/metrics" | awk '$1 == "typoguard_cache_entries" { print $2 }'; }
heap() { curl -s "127.0.0.1:$metrics_port/metrics" | awk '$1 == "go_memstats_heap_inuse_bytes" { printf "%.0f", $2 / 1048576 }'; }
# latency NAME TYPE: dig's query time in ms, or "lost".
latency() {
	dig +tries=1 +time=2 @127.0.0.1 -p "$tg_port" "$1" "$2" 2>/dev/null | awk '/Query time/ { t = $4 } END { print (t == "" ? "lost" : t) }'
}
# probe: latencies of a blocked, a cached and a healthy-route name.
probe() {
	echo "blocked $(latency "x$RANDOM.ml" MX) ms, cached $(latency host1.soak.test A) ms, healthy $(latency "h$RANDOM.up.soak.test" A) ms"
}
# perf LOG QUERIES QPS SECONDS: dnsperf against typoguard, in the background.
perf() {
	dnsperf -s 127.0.0.1 -p "$tg_port" -d "$2" -Q "$3" -l "$4" -t 3 -q 20000 >"$1" 2>&1 &
	perf_pid=$!
	pids+=("$perf_pid")
}
# perf_summary LOG: sent, lost and response codes of a dnsperf run.
perf_summary() {
	awk '/Queries sent:/ { s = $3 } /Queries lost:/ { l = $3 } /Response codes:/ { sub(/.*codes: */, ""); r = $0 }
		END { printf "sent %s, lost %s, %s\n", s, l, r }' "$1"
}

# mix NAME SECONDS: a query file for SECONDS at the rate, of cached names
# (60%), blocked names (20%) and misses to NSD (20%, each name once; NAME
# keeps them apart from other files').
mix() {
	awk -v n=$((rate * ($2 + 10))) -v p="$1" 'BEGIN {
		for (i = 0; i < n; i++) {
			k = i % 10
			if (k < 6) printf "host%d.soak.test A\n", i % 1000
			else if (k < 8) printf "m%d.ml MX\n", i
			else printf "%s%d.miss.soak.test A\n", p, i
		}
	}' >"$tmp/$1.txt"
}
mix steady "$steady"
mix stop 30
mix reload 60
awk -v n=$((20000 * flood + 1000)) 'BEGIN { for (i = 0; i < n; i++) printf "f%d.flood.test A\n", i }' >"$tmp/flood.txt"

start_nsd
policy "127.0.0.1:$nsd_port"
"$tmp/typoguard" serve -config "$tmp/policy.yaml" 2>"$tmp/typoguard.log" &
tg_pid=$!
pids+=("$tg_pid")
for _ in $(seq 50); do [[ $(latency host1.soak.test A) != lost ]] && break; sleep 0.1; done
echo "== typoguard $(cd "$root" && git rev-parse --short HEAD) on 127.0.0.1:$tg_port, NSD on :$nsd_port; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "quiet: $(probe); rss $(rss) MiB, goroutines $(goroutines)"

# --- 1. steady -------------------------------------------------------------
echo "== 1. steady: $rate qps for $steady s (60% cached, 20% blocked, 20% misses)"
perf "$tmp/steady.dnsperf" "$tmp/steady.txt" "$rate" "$steady"
# Warm-up: until the cache is full, then one turnover of it (every entry
# evicted once, by the misses, 20% of the rate), so that the garbage of
# evictions is part of the memory measured from then on; at most half the
# phase.
warm=0
while ((warm < steady / 2)) && [[ $(entries) != "$cache_size" ]]; do
	sleep 1
	warm=$((warm + 1))
done
turnover=$((cache_size / (rate / 5 > 0 ? rate / 5 : 1) + 1))
((warm + turnover > steady / 2)) && turnover=$((steady / 2 - warm))
sleep "$turnover"
warm=$((warm + turnover))
rss_warm=$(rss) rss_max=$rss_warm entries_warm=$(entries) series="$rss_warm" heaps="$(heap)"
for ((t = warm; t < steady; t += 10)); do
	sleep $((steady - t < 10 ? steady - t : 10))
	r=$(rss)
	((r > rss_max)) && rss_max=$r
	if (((t + 10 - warm) % 60 == 0)); then series+=" $r" heaps+=" $(heap)"; fi
done
wait "$perf_pid" || true
echo "steady: $(perf_summary "$tmp/steady.dnsperf")"
echo "steady: warm-up $warm s (the cache full, then turned over once); rss after warm-up $rss_warm MiB, highest after $rss_max MiB, growth $(((rss_max - rss_warm) * 100 / rss_warm))%, at end $(rss) MiB; cache entries after warm-up $entries_warm, at end $(entries)"
echo "steady: every 60 s from the warm-up: rss MiB $series; Go heap in use MiB $heaps"

# --- 2. the upstream stops --------------------------------------------------
echo "== 2. upstream stopped 10 s into 30 s at $rate qps"
g0=$(goroutines)
perf "$tmp/stop.dnsperf" "$tmp/stop.txt" "$rate" 30
sleep 10
kill "$nsd_pid"
wait "$nsd_pid" 2>/dev/null || true
sleep 5
echo "upstream down: $(probe)"
wait "$perf_pid" || true
echo "stop: $(perf_summary "$tmp/stop.dnsperf")"
sleep 8 # the idle workers and sockets end after 5 s
echo "stop: goroutines before $g0, after $(goroutines)"
start_nsd

# --- 3. miss floods to a silent upstream ------------------------------------
python3 - "$silent_port" $((flood * 2 + 200)) <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(1)
end = time.time() + int(sys.argv[2])
while time.time() < end:
    try:
        s.recv(4096)
    except OSError:
        pass
EOF
pids+=($!)
reloads() { grep -c '"msg":"policy reloaded"' "$tmp/typoguard.log" || true; }
# The probe's cached name, asked once more while the upstream answers: its
# TTL (300 s) then outlasts both floods, however long the phases before.
latency host1.soak.test A >/dev/null
n=$(reloads)
policy "127.0.0.1:$silent_port"
for _ in $(seq 100); do (($(reloads) > n)) && break; sleep 0.1; done
for q in 5000 20000; do
	echo "== 3. miss flood: $q qps of unique names for $flood s, default upstream silent"
	before=$(rss) peak=0
	perf "$tmp/flood$q.dnsperf" "$tmp/flood.txt" "$q" "$flood"
	sleep $((flood / 2))
	during=$(probe)
	for ((t = 0; t < flood; t++)); do
		r=$(rss)
		((r > peak)) && peak=$r
		sleep 1
	done
	wait "$perf_pid" || true
	echo "flood $q: $(perf_summary "$tmp/flood$q.dnsperf")"
	echo "flood $q: during: $during"
	sleep 60
	echo "flood $q: rss before $before MiB, peak $peak MiB, 60 s after $(rss) MiB"
done
n=$(reloads)
policy "127.0.0.1:$nsd_port"
for _ in $(seq 100); do (($(reloads) > n)) && break; sleep 0.1; done

# --- 4. reloads under load --------------------------------------------------
echo "== 4. 100 reloads under $rate qps"
n=$(reloads)
perf "$tmp/reload.dnsperf" "$tmp/reload.txt" "$rate" 60
for i in $(seq 100); do
	policy "127.0.0.1:$nsd_port" "  - {name: r$i, domains: [r$i.example], action: nxdomain}"
	for _ in $(seq 50); do (($(reloads) >= n + i)) && break; sleep 0.05; done
done
done_reloads=$(($(reloads) - n))
wait "$perf_pid" || true
echo "reloads: $done_reloads done; $(perf_summary "$tmp/reload.dnsperf")"

# --- 5. slow TCP clients ----------------------------------------------------
echo "== 5. 5000 TCP clients trickling a byte a second for 20 s"
python3 - "$tg_port" 5000 20 >"$tmp/slow.out" <<'EOF' &
import socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
conns = []
for _ in range(n):
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
        c.setblocking(False)
        conns.append(c)
    except OSError:
        pass
print("opened", len(conns))
end = time.time() + secs
while time.time() < end:
    alive = []
    for c in conns:
        try:
            c.send(b"\x00")
            alive.append(c)
        except OSError:
            c.close()
    conns = alive
    time.sleep(1)
print("still open after", secs, "s:", len(conns))
EOF
slow_pid=$!
pids+=("$slow_pid")
sleep 10
echo "slow clients: during: $(probe); rss $(rss) MiB, goroutines $(goroutines)"
wait "$slow_pid" || true
echo "slow clients: $(tr '\n' ' ' <"$tmp/slow.out")"
echo "slow clients: refused at the caps: $(curl -s "127.0.0.1:$metrics_port/metrics" | awk '/^typoguard_tcp_refused_total/ { printf "%s %s  ", $1, $2 }')"
echo "== done: rss $(rss) MiB, goroutines $(goroutines)"
