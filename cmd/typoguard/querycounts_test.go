package main

import (
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["type"]+" "+labels["rcode"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"A NOERROR": 4, "other NOERROR": 2, "MX NXDOMAIN": 1}
	if !maps.Equal(got, want) {
		t.Errorf("typoguard_queries_total series %v, want %v", got, want)
	}
}
