# nsd_conf DIR PORT ZONE [SERVERS]: an NSD configuration, on stdout, for the
# benchmarks' loopback upstream: 127.0.0.1:PORT only, its files under DIR,
# serving ZONE from DIR/ZONE.zone with SERVERS processes (default 1).
# Debian builds NSD with response rate limiting, 200 answers a second to
# one source by default; every query here comes from 127.0.0.1, so it is
# turned off. Sourced by compare.sh, soak.sh and rpz.sh.
nsd_conf() {
	cat <<EOF_NSD
server:
  ip-address: 127.0.0.1
  port: $2
  do-ip6: no
  server-count: ${4:-1}
  username: ""
  zonesdir: "$1"
  database: ""
  zonelistfile: "$1/zone.list"
  xfrdfile: "$1/xfrd.state"
  xfrdir: "$1"
  pidfile: "$1/nsd.pid"
  logfile: "$1/nsd.log"
  verbosity: 0
  hide-version: yes
  minimal-responses: yes
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: $3
  zonefile: $3.zone
EOF_NSD
}
