#!/usr/bin/env bash
# Throughput of typoguard and Unbound side by side: dnsperf against each in
# turn, both forwarding to the same NSD on loopback. Everything binds to and
# sends to 127.0.0.1 only. bench/README.md says what is measured and how.
set -euo pipefail
export LC_ALL=C
PATH=$PATH:/usr/sbin:/sbin
# The loopback NSD every benchmark forwards to.
# shellcheck source=bench/nsd.sh
source "$(dirname "${BASH_SOURCE[0]}")/nsd.sh"

usage() {
	cat <<'EOF'
usage: bash bench/compare.sh [-l SECONDS] [-r ROUNDS] [-w WORKLOADS] [-threads N] [-n DOMAINS] [-keep] [-profile DIR]

Measures typoguard and Unbound with dnsperf, each forwarding to the same NSD
on 127.0.0.1, and prints a table of both.

  -l SECONDS    length of one dnsperf run (default 10)
  -r ROUNDS     rounds; each runs every workload on both servers, the two
                servers taking turns to go first (default 3)
  -w WORKLOADS  comma list of hit, blocked, miss, big (default all four)
                  hit      1,000 names of the zone, cached before the run
                  blocked  random names under ml, half MX, half A: NXDOMAIN;
                           typoguard also with its audit log off (no audit)
                  miss     names never asked before: every query forwarded
                  big      start time, memory and hit QPS with a list of
                           DOMAINS blocked names loaded, and without it
  -threads N    1 (default): each server on CPU 0 with one thread
                (GOMAXPROCS=1, num-threads: 1), dnsperf and NSD on CPU 1.
                N > 1: N threads each, nothing pinned
  -n DOMAINS    size of the big workload's list (default 1000000)
  -keep         keep the temporary directory: configs, query files, logs
  -profile DIR  write a CPU profile of each typoguard run to DIR
                (WORKLOAD-typoguard-rROUND.pprof; go tool pprof -top)
  -h            this help

Installs dnsperf, unbound, nsd and dig from Debian if they are missing,
without starting their system services. Needs go and root (for apt-get).
EOF
}

seconds=10
rounds=3
workloads=hit,blocked,miss,big
threads=1
big_n=1000000
keep=0
profile_dir=
# Names of the miss workload, per second of a run: more than any server here
# answers, so that no name is asked twice in one run.
miss_per_second=${MISS_QPS_CAP:-100000}

die() {
	echo "compare.sh: $*" >&2
	exit 1
}

parse_args() {
	while (($#)); do
		case $1 in
		-h | -help | --help)
			usage
			exit 0
			;;
		-keep) keep=1 ;;
		-l | -r | -w | -threads | -n | -profile)
			(($# >= 2)) || die "$1 needs a value"
			case $1 in
			-l) seconds=$2 ;;
			-r) rounds=$2 ;;
			-w) workloads=$2 ;;
			-threads) threads=$2 ;;
			-n) big_n=$2 ;;
			-profile) profile_dir=$2 ;;
			esac
			shift
			;;
		*)
			echo "compare.sh: unknown option $1" >&2
			usage >&2
			exit 2
			;;
		esac
		shift
	done
	in_range "$seconds" 1 3600 || die "-l: want 1 to 3600 seconds, not '$seconds'"
	in_range "$rounds" 1 100 || die "-r: want 1 to 100 rounds, not '$rounds'"
	in_range "$threads" 1 64 || die "-threads: want 1 to 64, not '$threads'"
	in_range "$big_n" 1 10000000 || die "-n: want 1 to 10000000 domains, not '$big_n'"
	in_range "$miss_per_second" 1000 10000000 || die "MISS_QPS_CAP: want 1000 to 10000000"
	local w
	IFS=, read -ra selected <<<"$workloads"
	((${#selected[@]})) || die "-w: no workload"
	for w in "${selected[@]}"; do
		case $w in hit | blocked | miss | big) ;; *) die "-w: unknown workload '$w' (want hit, blocked, miss, big)" ;; esac
	done
}

in_range() {
	[[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3))
}

has_workload() {
	[[ ,$workloads, == *,$1,* ]]
}

# --- processes -------------------------------------------------------------

pids=()          # every process this script started and has not reaped
made_policy_rc=0 # whether /usr/sbin/policy-rc.d is ours, to be removed
tmp=

# launch LOG CMD...: runs CMD in the background, output to LOG, and sets
# launched to its PID. CMD runs as that PID: env and taskset exec.
launch() {
	local log=$1
	shift
	"$@" </dev/null >"$log" 2>&1 &
	launched=$!
	pids+=("$launched")
}

# alive PID: the process exists and has not exited (a zombie counts as
# exited; it stays unreaped, so its PID is not reused, until stop_pid).
alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[[ ${s%% *} != Z ]]
}

# stop_pid PID: SIGTERM, up to 10 s to exit, then SIGKILL; reaps it.
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		alive "$pid" || break
		sleep 0.05
	done
	if alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	forget "$pid"
}

# forget PID: PID has been reaped; it is no longer ours to stop.
forget() {
	local i kept=()
	for i in "${pids[@]}"; do
		[[ $i == "$1" ]] || kept+=("$i")
	done
	pids=("${kept[@]}")
}

remove_policy_rc() {
	if ((made_policy_rc)); then
		rm -f /usr/sbin/policy-rc.d
		made_policy_rc=0
	fi
}

cleanup() {
	local rc=$? pid
	trap - EXIT
	for pid in "${pids[@]}"; do
		stop_pid "$pid"
	done
	remove_policy_rc
	if [[ -n $tmp ]]; then
		if ((keep)); then
			echo "kept $tmp" >&2
		else
			rm -rf "$tmp"
		fi
	fi
	exit "$rc"
}

# cpu_ticks PID: user plus system time of the whole process, in clock ticks.
cpu_ticks() {
	local s f
	s=$(<"/proc/$1/stat")
	s=${s##*) }
	read -ra f <<<"$s"
	echo $((f[11] + f[12]))
}

rss_mib() {
	awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"
}

# cpu_busy_ticks N: time CPU N was not idle (user, nice, system, irq,
# softirq, steal), in clock ticks. For CPU 0 less the pinned server's own
# time, it is what else ran there: another process, or the hypervisor
# (steal). For CPU 1 it shows whether dnsperf and NSD had room left.
cpu_busy_ticks() {
	awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

now_us() {
	echo "${EPOCHREALTIME/./}"
}

# --- installation ----------------------------------------------------------

ensure_tools() {
	local -a pkgs=()
	command -v dnsperf >/dev/null || pkgs+=(dnsperf)
	command -v unbound >/dev/null || pkgs+=(unbound)
	command -v nsd >/dev/null || pkgs+=(nsd)
	command -v dig >/dev/null || pkgs+=(bind9-dnsutils)
	command -v taskset >/dev/null || pkgs+=(util-linux)
	command -v go >/dev/null || die "go is needed to build typoguard"
	((${#pkgs[@]})) || return 0
	((EUID == 0)) || die "${pkgs[*]} missing; run as root to install them with apt-get"
	command -v apt-get >/dev/null || die "${pkgs[*]} missing, and no apt-get to install them"
	echo "installing ${pkgs[*]} from Debian, without starting their services" >&2
	# A policy-rc.d that says no keeps the postinst scripts from starting
	# the servers; an existing one is left as it is.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		made_policy_rc=1
		printf '#!/bin/sh\n# bench/compare.sh: no service starts while it installs packages\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
	fi
	local -a install=(apt-get install -y -q --no-install-recommends "${pkgs[@]}")
	if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" >"$tmp/apt.log" 2>&1; then
		apt-get update -q >>"$tmp/apt.log" 2>&1 || true
		DEBIAN_FRONTEND=noninteractive "${install[@]}" >>"$tmp/apt.log" 2>&1 ||
			die "apt-get install ${pkgs[*]} failed: $(tail -n 5 "$tmp/apt.log")"
	fi
	remove_policy_rc
	local p
	for p in "${pkgs[@]}"; do
		case $p in unbound | nsd) quiesce_service "$p" ;; esac
	done
}

# quiesce_service NAME: the package NAME was just installed here; keep its
# system service from running now or at boot. Its binary was missing before,
# so a running instance can only be the one its postinst started.
quiesce_service() {
	local svc=$1
	if command -v systemctl >/dev/null; then
		systemctl disable --quiet "$svc" >/dev/null 2>&1 || true
	fi
	if [[ -d /run/systemd/system ]]; then
		if systemctl is-active --quiet "$svc"; then
			echo "stopping the $svc service its package started" >&2
			systemctl stop "$svc"
		fi
	elif [[ -x /etc/init.d/$svc ]]; then
		update-rc.d "$svc" disable >/dev/null 2>&1 || true
		if "/etc/init.d/$svc" status >/dev/null 2>&1; then
			echo "stopping the $svc service its package started" >&2
			invoke-rc.d "$svc" stop || echo "warning: invoke-rc.d $svc stop failed; it is left as it is" >&2
		fi
	fi
}

# warn_foreign: DNS servers running that this script did not start share the
# CPUs; they are named, never touched.
warn_foreign() {
	local c f
	for f in /proc/[0-9]*/comm; do
		c=$(cat "$f" 2>/dev/null) || continue
		case $c in unbound | nsd | named | dnsmasq | typoguard | dnsperf)
			f=${f#/proc/}
			echo "warning: a $c (pid ${f%/comm}) this script did not start is running; results may suffer" >&2
			;;
		esac
	done
}

# --- ports -----------------------------------------------------------------

ports_taken=()
nsd_port='' tg_port='' ub_port=''

# port_in_use PORT: any TCP or UDP socket, IPv4 or IPv6, has PORT locally.
port_in_use() {
	local hex f files=()
	printf -v hex ':%04X' "$1"
	for f in /proc/net/tcp /proc/net/udp /proc/net/tcp6 /proc/net/udp6; do
		[[ -r $f ]] && files+=("$f")
	done
	awk -v h="$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }' "${files[@]}"
}

# pick_port VAR: sets VAR to a port nothing here uses, from 10000 up to the
# ephemeral range, so that no outgoing socket (of the servers, dnsperf, or
# anything else here) takes it between picking and binding.
pick_port() {
	local p i low
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range
	((low > 11000)) || die "the ephemeral port range starts at $low; want room below it"
	for ((i = 0; i < 500; i++)); do
		p=$((10000 + RANDOM % (low - 10000)))
		[[ " ${ports_taken[*]} " == *" $p "* ]] && continue
		port_in_use "$p" && continue
		ports_taken+=("$p")
		printf -v "$1" %s "$p"
		return 0
	done
	die "no free port found"
}

# --- files -----------------------------------------------------------------

gen_zone() {
	{
		cat <<'EOF'
$ORIGIN bench.test.
$TTL 86400
@       IN SOA ns1 hostmaster 1 3600 600 86400 3600
@       IN NS  ns1
ns1     IN A   127.0.0.1
*.miss  IN A   192.0.2.1
EOF
		awk 'BEGIN { for (i = 0; i < 1000; i++) printf "host%d IN A 198.51.100.%d\n", i, i % 254 + 1 }'
	} >"$tmp/nsd/bench.test.zone"
}

gen_queries() {
	awk 'BEGIN { for (i = 0; i < 1000; i++) printf "host%d.bench.test A\n", i }' >"$tmp/q/hit.txt"
	awk 'BEGIN {
		srand(1); cs = "abcdefghijklmnopqrstuvwxyz0123456789"
		for (i = 0; i < 100000; i++) {
			l = ""; n = 5 + int(rand() * 8)
			for (j = 0; j < n; j++) l = l substr(cs, 1 + int(rand() * 36), 1)
			printf "%s%s.ml %s\n", (i % 4 < 2 ? "" : "mail."), l, (i % 2 ? "A" : "MX")
		}
	}' >"$tmp/q/blocked.txt"
	miss_names=0
	if has_workload miss; then
		miss_names=$((miss_per_second * seconds))
		awk -v n="$miss_names" 'BEGIN { for (i = 0; i < n; i++) printf "u%d.miss.bench.test A\n", i }' >"$tmp/q/miss.txt"
	fi
}

# gen_big_list: the big workload's list for typoguard (domains_from) and the
# same names as Unbound local-zones.
gen_big_list() {
	(cd "$root" && go build -o "$tmp/genlist" ./bench/genlist)
	"$tmp/genlist" -n "$big_n" >"$tmp/tg/big/big.txt"
	awk 'BEGIN { print "server:" } !/^#/ && NF { printf "local-zone: \"%s.\" always_nxdomain\n", $1 }' \
		"$tmp/tg/big/big.txt" >"$tmp/ub/big-zones.conf"
}

# write_nsd_conf: the authoritative upstream (bench/nsd.sh).
write_nsd_conf() {
	nsd_conf "$tmp/nsd" "$nsd_port" bench.test "$threads" >"$tmp/nsd/nsd.conf"
}

# write_policies: one policy without the list, the same with the audit log
# off (quiet), and one with the list, each in its own directory (typoguard
# watches its policy's directory).
write_policies() {
	local cache=$((miss_names + 10000)) d
	for d in plain quiet big; do
		{
			cat <<EOF
version: 1
listen: ["127.0.0.1:$tg_port"]
upstreams: ["127.0.0.1:$nsd_port"]
cache: {size: $cache}
log: {format: json, level: $([[ $d == quiet ]] && echo warn || echo info)}
rules:
  - {name: mali-is-not-mil, domains: [ml], types: [MX, A, AAAA, ANY], action: nxdomain}
EOF
			[[ $d != big ]] || echo "  - {name: feed, domains_from: [big.txt], action: nxdomain}"
		} >"$tmp/tg/$d/policy.yaml"
	done
}

# write_unbound_confs: a forwarder that only ever talks to the loopback NSD.
# Besides the forward-zone for ".", three things keep it there: every
# address but 127.0.0.0/8 is on the do-not-query list, outgoing queries are
# sent from 127.0.0.1 (the kernel routes those nowhere else), and the root
# hints, never needed with a forward-zone for ".", name only 127.0.0.1.
write_unbound_confs() {
	local reuse=no d
	((threads == 1)) || reuse=yes
	printf '. 3600000 NS a.root.bench.test.\na.root.bench.test. 3600000 A 127.0.0.1\n' >"$tmp/ub/root.hints"
	for d in plain big; do
		{
			cat <<EOF
server:
  interface: 127.0.0.1@$ub_port
  outgoing-interface: 127.0.0.1
  access-control: 127.0.0.0/8 allow
  do-ip6: no
  num-threads: $threads
  so-reuseport: $reuse
  module-config: "iterator"
  do-not-query-localhost: no
  do-not-query-address: 0.0.0.0/2
  do-not-query-address: 64.0.0.0/3
  do-not-query-address: 96.0.0.0/4
  do-not-query-address: 112.0.0.0/5
  do-not-query-address: 120.0.0.0/6
  do-not-query-address: 124.0.0.0/7
  do-not-query-address: 126.0.0.0/8
  do-not-query-address: 128.0.0.0/1
  do-not-query-address: ::/0
  root-hints: "$tmp/ub/root.hints"
  qname-minimisation: no
  prefetch: no
  msg-cache-size: 512m
  rrset-cache-size: 1g
  chroot: ""
  username: ""
  directory: "$tmp/ub"
  pidfile: "$tmp/ub/unbound-$d.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  log-queries: no
  log-replies: no
  log-local-actions: no
  log-servfail: no
  statistics-interval: 0
  local-zone: "test." nodefault
  local-zone: "ml." always_nxdomain
EOF
			[[ $d == plain ]] || echo "include: \"$tmp/ub/big-zones.conf\""
			cat <<EOF
remote-control:
  control-enable: no
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$nsd_port
EOF
		} >"$tmp/ub/$d.conf"
	done
	unbound-checkconf "$tmp/ub/plain.conf" >/dev/null || die "unbound-checkconf rejects $tmp/ub/plain.conf"
}

# --- servers ---------------------------------------------------------------

# The query wait_answer sends: host0.bench.test A, ID 0x4141 ("AA"), RD.
probe_query='\x41\x41\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05host0\x05bench\x04test\x00\x00\x01\x00\x01'

# wait_answer PORT PID LIMIT_S: sends one small query to 127.0.0.1:PORT every
# 10 ms until an answer comes back, then checks with dig that the answer is
# the zone's. Fails once PID has exited or LIMIT_S passed. A probe costs no
# process start, so the time to a first answer is measured to about 10 ms.
wait_answer() {
	local port=$1 pid=$2 deadline i byte rc answered=0 answer
	deadline=$(($(now_us) + $3 * 1000000))
	exec 3<>"/dev/udp/127.0.0.1/$port"
	for ((i = 0; i < 100000; i++)); do
		# shellcheck disable=SC2059 # the query is the format: its \x escapes
		printf "$probe_query" >&3 2>/dev/null || true
		# Reading one byte takes the whole datagram; its first is the ID's.
		# A closed port fails the read at once (ICMP port unreachable), so
		# that case sleeps; a timeout (status > 128) has waited already.
		rc=0
		IFS= read -r -t 0.01 -N 1 byte <&3 2>/dev/null || rc=$?
		if ((rc == 0)) && [[ $byte == A ]]; then
			answered=1
			break
		fi
		if ! alive "$pid" || (($(now_us) >= deadline)); then
			break
		fi
		((rc > 128)) || sleep 0.01
	done
	exec 3>&-
	((answered)) || return 1
	answer=$(dig +short +tries=2 +time=2 -b 127.0.0.1 @127.0.0.1 -p "$port" host0.bench.test A 2>&1) || true
	[[ $answer =~ ^[0-9.]+$ ]]
}

start_nsd() {
	nsd-checkconf "$tmp/nsd/nsd.conf" || die "nsd-checkconf rejects $tmp/nsd/nsd.conf"
	launch "$tmp/logs/nsd.out" "${pin_upstream[@]}" nsd -d -c "$tmp/nsd/nsd.conf"
	nsd_pid=$launched
	wait_answer "$nsd_port" "$nsd_pid" 30 ||
		die "NSD did not answer on 127.0.0.1:$nsd_port: $(tail -n 5 "$tmp/logs/nsd.out" "$tmp/nsd/nsd.log" 2>/dev/null)"
}

# start_server SERVER VARIANT LOG: starts typoguard or Unbound with the plain
# or big config; sets srv_pid, srv_port and start_ms (start to first answer).
start_server() {
	local server=$1 variant=$2 log=$3 t0 limit=30
	[[ $variant != big ]] || limit=600
	t0=$(now_us)
	case $server in
	typoguard)
		srv_port=$tg_port
		local prof=()
		if [[ -n $profile_dir ]]; then
			prof=(-cpuprofile "$profile_dir/$(basename "$log" .log).pprof")
		fi
		launch "$log" env GOMAXPROCS="$threads" "${pin_server[@]}" "$tmp/typoguard" serve \
			-config "$tmp/tg/$variant/policy.yaml" -listen "127.0.0.1:$tg_port" "${prof[@]}"
		;;
	unbound)
		srv_port=$ub_port
		launch "$log" "${pin_server[@]}" unbound -d -c "$tmp/ub/$variant.conf"
		;;
	esac
	srv_pid=$launched
	if ! wait_answer "$srv_port" "$srv_pid" "$limit"; then
		alive "$srv_pid" || die "$server ($variant) exited: $(tail -n 5 "$log")"
		die "$server ($variant) did not answer on 127.0.0.1:$srv_port within $limit s: $(tail -n 5 "$log")"
	fi
	start_ms=$((($(now_us) - t0) / 1000))
}

# --- runs ------------------------------------------------------------------

# dnsperf_run OUT PORT FILE ARGS...: one dnsperf run, bounded in time. It
# runs in the background so that a signal to this script stops it at once.
dnsperf_run() {
	local out=$1 port=$2 file=$3 rc=0
	shift 3
	launch "$out" timeout -k 5 $((seconds + 60)) "${pin_client[@]}" \
		dnsperf -s 127.0.0.1 -a 127.0.0.1 -p "$port" -d "$file" -c 8 -q 64 "$@"
	wait "$launched" || rc=$?
	forget "$launched"
	((rc == 0)) || die "dnsperf failed: $(tail -n 5 "$out")"
}

# parse_dnsperf OUT: prints sent, completed, lost, qps, latency (ms), run
# time (s), average response size (bytes) and the response codes,
# tab-separated.
parse_dnsperf() {
	awk '
		/Queries sent:/ { sent = $3 }
		/Queries completed:/ { done = $3 }
		/Queries lost:/ { lost = $3 }
		/Response codes:/ { sub(/.*Response codes: */, ""); rcodes = $0 }
		/Run time \(s\):/ { run = $4 }
		/Average packet size:/ { size = $NF }
		/Queries per second:/ { qps = $4 }
		/Average Latency \(s\):/ { lat = $4 * 1000 }
		END {
			if (qps == "") exit 1
			printf "%d\t%d\t%d\t%.0f\t%.3f\t%s\t%d\t%s\n", sent, done, lost, qps, lat, run, size, rcodes
		}' "$1"
}

# pct TICKS SECONDS: clock ticks as % of one core over SECONDS, at least 0
# (the counters are read a moment apart).
pct() {
	awk -v d="$1" -v hz="$clk_tck" -v s="$2" 'BEGIN { v = s > 0 ? 100 * d / hz / s : 0; printf "%.1f", v < 0 ? 0 : v }'
}

# measure WORKLOAD SERVER ROUND FILE EXPECT [EXTRA]: one timed dnsperf run
# against the running server; appends a row to results.tsv and prints it.
# CPU shares are of dnsperf's run time, as % of one core: the server's;
# in pinned runs also the rest of CPU 0's busy time, and CPU 1's (dnsperf
# and NSD).
measure() {
	local workload=$1 server=$2 round=$3 file=$4 expect=$5 extra=${6:-$'-\t-'}
	local out="$tmp/logs/$workload-$server-r$round.dnsperf" s0 s1 a0 a1 b0 b1 row
	local sent completed lost qps lat run size rcodes cpu other=- client=- share note=''
	s0=$(cpu_ticks "$srv_pid") a0=$(cpu_busy_ticks 0) b0=$(cpu_busy_ticks 1)
	dnsperf_run "$out" "$srv_port" "$file" -l "$seconds"
	s1=$(cpu_ticks "$srv_pid") a1=$(cpu_busy_ticks 0) b1=$(cpu_busy_ticks 1)
	row=$(parse_dnsperf "$out") || die "cannot read dnsperf output $out"
	IFS=$'\t' read -r sent completed lost qps lat run size rcodes <<<"$row"
	cpu=$(pct $((s1 - s0)) "$run")
	if ((threads == 1)); then
		other=$(pct $((a1 - a0 - (s1 - s0))) "$run")
		client=$(pct $((b1 - b0)) "$run")
	fi
	share=$(awk -v r="$rcodes" -v e="$expect" -v n="$completed" 'BEGIN {
		k = split(r, f, /[ ,]+/); for (i = 1; i < k; i++) if (f[i] == e) c = f[i + 1]
		printf "%.2f", (n > 0 ? 100 * c / n : 0) }')
	if awk -v s="$share" 'BEGIN { exit !(s < 99) }'; then
		note+="  WARNING: only $share% $expect ($rcodes)"
	fi
	if [[ $workload == miss ]] && ((sent > miss_names)); then
		note+="  WARNING: miss names repeated (raise MISS_QPS_CAP)"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$server" "$round" \
		"$qps" "$lat" "$lost" "$cpu" "$other" "$client" "$extra" >>"$tmp/results.tsv"
	local cpus="cpu $cpu%"
	((threads > 1)) || cpus+="  cpu0 other $other%  cpu1 $client%"
	printf 'round %d/%d  %-10s %-9s %7s qps  lat %6s ms  lost %4s  %s  %s %s%%, %s B%s\n' \
		"$round" "$rounds" "$workload" "$server" "$qps" "$lat" "$lost" "$cpus" "$expect" "$share" "$size" "$note"
}

warm() {
	dnsperf_run "$tmp/logs/warm.dnsperf" "$srv_port" "$tmp/q/hit.txt" -n 1
}

# run_workload WORKLOAD SERVER ROUND: a fresh server for each run, so no run
# inherits another's cache.
run_workload() {
	local workload=$1 server=$2 round=$3 variant log rss audit
	case $workload in
	hit | blocked | miss)
		log="$tmp/logs/$workload-$server-r$round.log"
		start_server "$server" plain "$log"
		case $workload in
		hit)
			warm
			measure hit "$server" "$round" "$tmp/q/hit.txt" NOERROR
			;;
		blocked) measure blocked "$server" "$round" "$tmp/q/blocked.txt" NXDOMAIN ;;
		miss) measure miss "$server" "$round" "$tmp/q/miss.txt" NOERROR ;;
		esac
		stop_pid "$srv_pid"
		if [[ $workload == blocked && $server == typoguard ]]; then
			audit=$(grep -c '"msg":"blocked"' "$log" || true)
			echo "                    typoguard audit log: $audit lines"
			((keep)) || rm -f "$log"
			# The same load with the audit log off: what the log costs.
			log="$tmp/logs/blocked-quiet-$server-r$round.log"
			start_server "$server" quiet "$log"
			measure blocked-quiet "$server" "$round" "$tmp/q/blocked.txt" NXDOMAIN
			stop_pid "$srv_pid"
		fi
		((keep)) || rm -f "$log"
		;;
	big)
		for variant in plain big; do
			log="$tmp/logs/big-$variant-$server-r$round.log"
			start_server "$server" "$variant" "$log"
			rss=$(rss_mib "$srv_pid")
			warm
			measure "big-$variant" "$server" "$round" "$tmp/q/hit.txt" NOERROR "$start_ms"$'\t'"$rss"
			echo "                    start to first answer $start_ms ms, VmRSS $rss MiB after load"
			stop_pid "$srv_pid"
		done
		;;
	esac
}

# --- report ----------------------------------------------------------------

header() {
	local v
	echo "== typoguard vs Unbound, dnsperf -c 8 -q 64, $rounds round(s) of $seconds s, workloads $workloads"
	if ((threads == 1)); then
		echo "   1 thread: servers on CPU 0 (typoguard GOMAXPROCS=1, Unbound num-threads 1); dnsperf and NSD on CPU 1"
	else
		echo "   $threads threads: typoguard GOMAXPROCS=$threads, Unbound num-threads $threads, NSD server-count $threads; nothing pinned"
	fi
	v=$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)
	echo "   typoguard $v, $(unbound -V 2>/dev/null | head -n 1 | tr 'V' 'v' | sed 's/^/unbound /'), nsd $(dpkg-query -W -f '${Version}' nsd 2>/dev/null), dnsperf $(dpkg-query -W -f '${Version}' dnsperf 2>/dev/null)"
	echo "   $(nproc) CPUs: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "   NSD on 127.0.0.1:$nsd_port, typoguard on :$tg_port, Unbound on :$ub_port"
}

# summary: per workload and server, the median QPS with min-max over rounds,
# the median average latency, lost queries summed, the median CPU shares,
# and typoguard's median QPS over Unbound's; then the big workload's start
# time and memory.
summary() {
	echo
	awk -F'\t' -v big_n="$big_n" '
		function sorted(arr, k, n, out,    i, j, v) {
			for (i = 1; i <= n; i++) {
				v = arr[k, i] + 0
				for (j = i - 1; j >= 1 && out[j] > v; j--) out[j + 1] = out[j]
				out[j + 1] = v
			}
		}
		function median(arr, k, n,    s) {
			sorted(arr, k, n, s)
			return n % 2 ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
		}
		function share(arr, k) {
			return unpinned ? "-" : sprintf("%.1f", median(arr, k, n[k]))
		}
		function label(w) {
			if (w == "big-plain") return "hit, no list"
			if (w == "big-big") return "hit, " big_n " list"
			if (w == "blocked-quiet") return "blocked, no audit"
			return w
		}
		{
			k = $1 SUBSEP $2; i = ++n[k]
			qps[k, i] = $4; lat[k, i] = $5; lost[k] += $6; cpu[k, i] = $7
			cost[k, i] = $4 > 0 ? $7 * 1e4 / $4 : 0
			if ($8 == "-") unpinned = 1; else { other[k, i] = $8; client[k, i] = $9 }
			if ($10 != "-") { start[k, i] = $10; rss[k, i] = $11; big = 1 }
			if (!($1 in seen)) { seen[$1] = 1; order[++nw] = $1 }
		}
		END {
			printf "%-18s %-10s %7s %-15s %7s %6s %6s %6s %6s %6s %10s\n", "workload", "server", "QPS", "(min-max)", \
				"lat ms", "lost", "CPU %", "us/q", "CPU0+", "CPU1 %", "tg/unbound"
			for (w = 1; w <= nw; w++) {
				tk = order[w] SUBSEP "typoguard"; uk = order[w] SUBSEP "unbound"
				ratio = ""
				if ((tk in n) && (uk in n) && median(qps, uk, n[uk]) > 0)
					ratio = sprintf("%.2f", median(qps, tk, n[tk]) / median(qps, uk, n[uk]))
				for (s = 1; s <= 2; s++) {
					srv = s == 1 ? "typoguard" : "unbound"; k = order[w] SUBSEP srv
					if (!(k in n)) continue
					sorted(qps, k, n[k], q)
					if (!unpinned && median(other, k, n[k]) > 10) busy = 1
					if (!unpinned && median(client, k, n[k]) >= 95) saturated = 1
					printf "%-18s %-10s %7.0f %-15s %7.3f %6d %6.1f %6.1f %6s %6s %10s\n", label(order[w]), srv,
						median(qps, k, n[k]), sprintf("(%.0f-%.0f)", q[1], q[n[k]]), median(lat, k, n[k]), lost[k],
						median(cpu, k, n[k]), median(cost, k, n[k]), share(other, k), share(client, k), s == 1 ? ratio : ""
				}
			}
			print "Medians over rounds; lost: summed. CPU %: the server, % of one core; us/q: its CPU time per"
			print "answer, in microseconds. Pinned runs: CPU0+ is the rest of CPU 0 busy time (should be near 0);"
			print "CPU1 % is dnsperf and NSD (near 100: the load generator, not the server, set the QPS)."
			print "tg/unbound: typoguard median QPS over Unbound median QPS."
			if (busy) print "WARNING: over 10% of CPU 0 went to something else: the machine was not quiet."
			if (saturated) print "NOTE: CPU 1 was saturated in some rows: their QPS is the load generator limit; compare us/q there."
			if (!big) exit
			printf "\n%-18s %-10s %20s %10s\n", "big: loaded", "server", "start to answer ms", "VmRSS MiB"
			for (v = 1; v <= 2; v++) {
				w = v == 1 ? "big-plain" : "big-big"
				for (s = 1; s <= 2; s++) {
					srv = s == 1 ? "typoguard" : "unbound"; k = w SUBSEP srv
					if (!(k in n)) continue
					printf "%-18s %-10s %20.0f %10.0f\n", v == 1 ? "no list" : big_n " domains", srv,
						median(start, k, n[k]), median(rss, k, n[k])
				}
			}
			print "Medians over rounds. Start: from process start to its first answer; VmRSS: right after it."
		}' "$tmp/results.tsv"
}

# --- main ------------------------------------------------------------------

main() {
	parse_args "$@"
	root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/typoguard-compare.XXXXXX")
	cd "$tmp"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mkdir -p "$tmp/nsd" "$tmp/ub" "$tmp/tg/plain" "$tmp/tg/quiet" "$tmp/tg/big" "$tmp/q" "$tmp/logs"
	ensure_tools
	warn_foreign
	clk_tck=$(getconf CLK_TCK)
	pin_server=() pin_client=() pin_upstream=()
	if ((threads == 1)); then
		(($(nproc) >= 2)) || die "pinning needs 2 CPUs; this machine has $(nproc)"
		pin_server=(taskset -c 0) pin_client=(taskset -c 1) pin_upstream=(taskset -c 1)
	fi
	pick_port nsd_port
	pick_port tg_port
	pick_port ub_port
	echo "building typoguard and generating zones and queries in $tmp" >&2
	(cd "$root" && go build -o "$tmp/typoguard" ./cmd/typoguard)
	gen_zone
	gen_queries
	has_workload big && gen_big_list
	write_nsd_conf
	write_policies
	write_unbound_confs
	start_nsd
	header
	local round w server order
	for ((round = 1; round <= rounds; round++)); do
		order="typoguard unbound"
		((round % 2)) || order="unbound typoguard"
		for w in "${selected[@]}"; do
			for server in $order; do
				run_workload "$w" "$server" "$round"
			done
		done
	done
	summary
}

main "$@"
