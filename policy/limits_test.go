package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestLimitSettings(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want LimitSettings
	}{
		{"absent", "rules: []\n", defaultLimits()},
		{"empty", "limits:\n", LimitSettings{UpstreamInflight: 1024, TCPConnections: 1000, TCPPerClient: 32, ListBytes: MaxListBytes, ListDomains: MaxDomains, Pos: Position{"test.yaml", 1, 8}}},
		{"given", "limits:\n  upstream_inflight: 500\n  tcp_connections: 100\n  tcp_per_client: 100\n  list_bytes: 1000000\n  list_domains: 5000\n",
			LimitSettings{UpstreamInflight: 500, TCPConnections: 100, TCPPerClient: 100, ListBytes: 1_000_000, ListDomains: 5000, Pos: Position{"test.yaml", 2, 3}}},
		{"per client follows a smaller total", "limits: {tcp_connections: 10}\n",
			LimitSettings{UpstreamInflight: 1024, TCPConnections: 10, TCPPerClient: 10, ListBytes: MaxListBytes, ListDomains: MaxDomains, Pos: Position{"test.yaml", 1, 9}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustParse(t, tc.src).Limits; got != tc.want {
				t.Errorf("limits = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRateLimitSettings(t *testing.T) {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name       string
		src        string
		qps, burst int
		exempt     []netip.Prefix
		configured bool
	}{
		{"absent", "rules: []\n", 0, 0, nil, false},
		{"burst defaults to twice qps", "rate_limit: {qps: 200}\n", 200, 400, loopback, true},
		{"burst capped", "rate_limit: {qps: 2000000000}\n", 2000000000, 1<<31 - 1, loopback, true},
		{"burst equal to qps", "rate_limit: {qps: 50, burst: 50}\n", 50, 50, loopback, true},
		{"exempt replaced", "rate_limit: {qps: 5, exempt: [10.0.0.0/8, \"::1\"]}\n", 5, 10,
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}, true},
		{"exempt nobody", "rate_limit: {qps: 5, exempt: []}\n", 5, 10, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.src).RateLimit
			if r.QPS != tc.qps || r.Burst != tc.burst || !slices.Equal(r.Exempt, tc.exempt) || r.Configured() != tc.configured {
				t.Errorf("rate_limit = %+v, want qps %d burst %d exempt %v configured %v", r, tc.qps, tc.burst, tc.exempt, tc.configured)
			}
		})
	}
}

// TestLimitErrors covers what the all-errors file cannot hold: missing keys
// and errors that one file shows only once.
func TestLimitErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"rate_limit empty", "rate_limit:\n", "p.yaml:1:12: rate_limit: needs qps"},
		{"limits not a number", "limits: {upstream_inflight: lots}\n", "p.yaml:1:29: limits.upstream_inflight: want a whole number, got a string"},
		{"limits too large", "limits: {tcp_connections: 99999999999}\n", `limits.tcp_connections: "99999999999" is not a whole number in range`},
		{"limits negative", "limits: {tcp_per_client: -1}\n", "limits.tcp_per_client: -1 is not a positive number"},
		{"limits per client over default total", "limits: {tcp_per_client: 5000}\n", "p.yaml:1:26: limits.tcp_per_client: 5000 is above tcp_connections 1000"},
		{"rate_limit without qps", "rate_limit:\n  burst: 10\n", "p.yaml:2:3: rate_limit: needs qps"},
		{"rate_limit qps zero", "rate_limit: {qps: 0}\n", "rate_limit.qps: 0 is not a positive number"},
		{"rate_limit qps fraction", "rate_limit: {qps: 2.5}\n", "rate_limit.qps: want a whole number, got a number"},
		{"rate_limit exempt bad", "rate_limit: {qps: 10, exempt: [localhost]}\n", `rate_limit.exempt: bad IP address or CIDR "localhost"`},
		{"serve_stale too long", "cache: {serve_stale: 200h}\n", "p.yaml:1:22: cache.serve_stale: 200h0m0s is above a week"},
		{"serve_stale not a duration", "cache: {serve_stale: yes}\n", `p.yaml:1:22: cache.serve_stale: bad duration "yes"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.src), Options{Now: testNow})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
