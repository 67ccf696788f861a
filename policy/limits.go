package policy

import (
	"math"
	"net/netip"

	"gopkg.in/yaml.v3"
)

// LimitSettings bound what clients and upstreams can make typoguard hold.
type LimitSettings struct {
	UpstreamInflight int      // queries waiting on upstreams at once, shared evenly per route; default 1024, as Unbound's num-queries-per-thread (about 16 KiB each)
	TCPConnections   int      // client TCP connections open at once; default 1000
	TCPPerClient     int      // of those, from one client address; default 32, at most TCPConnections
	ListBytes        int      // the largest domains_from file read; default MaxListBytes
	ListDomains      int      // domains all lists together may hold; default MaxDomains
	Pos              Position // of the limits section; zero when absent
}

// Configured reports whether the policy file has a limits section.
func (l LimitSettings) Configured() bool { return l.Pos.Line > 0 }

func defaultLimits() LimitSettings {
	return LimitSettings{UpstreamInflight: 1024, TCPConnections: 1000, TCPPerClient: 32, ListBytes: MaxListBytes, ListDomains: MaxDomains}
}

// RateLimitSettings bound the queries one client address may send over UDP.
type RateLimitSettings struct {
	QPS    int            // queries a second per client address; 0: no rate limit
	Burst  int            // queries a client may send at once; at least QPS, default twice it
	Exempt []netip.Prefix // clients never limited; default loopback
	Pos    Position       // of the rate_limit section; zero when absent
}

// Configured reports whether the policy file has a rate_limit section.
func (r RateLimitSettings) Configured() bool { return r.Pos.Line > 0 }

func (d *decoder) limits(v *yaml.Node) LimitSettings {
	l := defaultLimits()
	var perClient *yaml.Node
	connectionsOK := true
	d.mapping(v, "limits", map[string]field{
		"upstream_inflight": func(v *yaml.Node) { d.positive(v, "limits.upstream_inflight", &l.UpstreamInflight) },
		"tcp_connections": func(v *yaml.Node) {
			connectionsOK = d.positive(v, "limits.tcp_connections", &l.TCPConnections)
		},
		"tcp_per_client": func(v *yaml.Node) {
			if d.positive(v, "limits.tcp_per_client", &l.TCPPerClient) {
				perClient = v
			}
		},
		"list_bytes":   func(v *yaml.Node) { d.positive(v, "limits.list_bytes", &l.ListBytes) },
		"list_domains": func(v *yaml.Node) { d.positive(v, "limits.list_domains", &l.ListDomains) },
	})
	if !section(v) {
		return defaultLimits()
	}
	l.Pos = d.pos(resolve(v))
	switch {
	case perClient == nil:
		l.TCPPerClient = min(l.TCPPerClient, l.TCPConnections)
	case connectionsOK && l.TCPPerClient > l.TCPConnections:
		d.errorf(perClient, "limits.tcp_per_client: %d is above tcp_connections %d", l.TCPPerClient, l.TCPConnections)
	}
	return l
}

func (d *decoder) rateLimit(v *yaml.Node) RateLimitSettings {
	r := RateLimitSettings{Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	var burst *yaml.Node
	hasQPS := false
	d.mapping(v, "rate_limit", map[string]field{
		"qps": func(v *yaml.Node) {
			hasQPS = true
			d.positive(v, "rate_limit.qps", &r.QPS)
		},
		"burst": func(v *yaml.Node) {
			if d.positive(v, "rate_limit.burst", &r.Burst) {
				burst = v
			}
		},
		"exempt": func(v *yaml.Node) {
			r.Exempt = nil
			d.strs(v, "rate_limit.exempt", func(n *yaml.Node, s string) {
				if p, ok := d.prefix(n, s, "rate_limit.exempt"); ok {
					r.Exempt = append(r.Exempt, p)
				}
			})
		},
	})
	if !section(v) {
		return RateLimitSettings{}
	}
	r.Pos = d.pos(resolve(v))
	switch {
	case !hasQPS:
		d.errorf(v, "rate_limit: needs qps, the queries a second allowed per client address")
	case burst == nil:
		r.Burst = int(min(2*int64(r.QPS), math.MaxInt32))
	case r.Burst < r.QPS:
		d.errorf(burst, "rate_limit.burst: %d is below qps %d", r.Burst, r.QPS)
	}
	return r
}
