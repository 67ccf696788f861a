package main

import (
	"maps"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/typoguard/typoguard/policy"
)

// TestQueryCountsSumLanes counts on several lanes, and types that share
// the label "other" below and above 256: each series is exported once,
// with the sum.
func TestQueryCountsSumLanes(t *testing.T) {
	q := newQueryCounts()
	q.add(0, 1, 0)     // A NOERROR
	q.add(3, 1, 0)     // on another lane
	q.add(15, 1, 0)    // the last lane
	q.add(2, 15, 3)    // MX NXDOMAIN
	q.add(1, 200, 0)   // no mnemonic: other
	q.add(2, 65000, 0) // no mnemonic, above 256: other too
	q.add(99, 1, 0)    // a lane out of range still counts
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(q)
	got := gather(t, reg, "type", "rcode")
	want := map[string]float64{"A NOERROR": 4, "other NOERROR": 2, "MX NXDOMAIN": 1}
	if !maps.Equal(got, want) {
		t.Errorf("typoguard_queries_total series %v, want %v", got, want)
	}
}

// TestBlockCountsAcrossReload counts blocks by a rule on several lanes,
// then under a reloaded policy with the same rule, and once more by the
// old policy's rule (a query a reload overtook): one series, every count.
func TestBlockCountsAcrossReload(t *testing.T) {
	parse := func(extra string) *policy.Policy {
		p, err := policy.Parse("p.yaml", []byte("upstreams: [127.0.0.1:1]\nrules:\n"+extra+"  - {name: ml, domains: [ml], action: nxdomain}\n"), policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldP, newP := parse(""), parse("  - {name: other, domains: [other.example], action: refuse}\n")
	b := newBlockCounts()
	b.load(oldP)
	old := oldP.Decide(netip.MustParseAddr("127.0.0.1"), "army.ml.", policy.TypeA)
	b.add(0, old)
	b.add(5, old)
	b.load(newP)
	b.add(1, newP.Decide(netip.MustParseAddr("127.0.0.1"), "army.ml.", policy.TypeA))
	b.add(2, old)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b)
	got := gather(t, reg, "rule")
	if want := map[string]float64{"ml": 4, "other": 0}; !maps.Equal(got, want) { // other is exported before its first block
		t.Errorf("typoguard_blocks_total by rule %v, want %v", got, want)
	}
}

// gather returns the value of every series on reg, by the values of
// labels joined with spaces.
func gather(t *testing.T, reg *prometheus.Registry, labels ...string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			values := map[string]string{}
			for _, l := range m.GetLabel() {
				values[l.GetName()] = l.GetValue()
			}
			var key []string
			for _, l := range labels {
				key = append(key, values[l])
			}
			got[strings.Join(key, " ")] = m.GetCounter().GetValue()
		}
	}
	return got
}
