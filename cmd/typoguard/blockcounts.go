package main

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/cache"
)

// blockCounts counts blocks and would-blocks by rule, action and mode, and
// exports them as typoguard_blocks_total. Each series has a counter per
// serving loop's lane, summed when scraped, so that loops on different
// cores share no counter; and the series of the policy in force are looked
// up by the rule's index in a table made when the policy is loaded, so a
// block costs no map lookup.
type blockCounts struct {
	desc  *prometheus.Desc
	table atomic.Pointer[blockTable]

	mu     sync.Mutex // guards series
	series map[[3]string]*blockSeries
}

// blockSeries is one series: its labels and its count on each lane.
type blockSeries struct {
	labels [3]string // rule, action, mode
	lanes  [cache.Lanes]struct {
		n atomic.Uint64
		_ [56]byte // one lane to a cache line
	}
}

// blockTable holds the series of a policy's rules by Rule.Index, and the
// rules themselves, to tell a rule of that policy from one of another.
type blockTable struct {
	rules  []*policy.Rule
	series []*blockSeries
}

func newBlockCounts() *blockCounts {
	return &blockCounts{
		desc: prometheus.NewDesc("typoguard_blocks_total",
			"Queries blocked (mode enforce) or that would have been (mode monitor), by rule and action.",
			[]string{"rule", "action", "mode"}, nil),
		series: map[[3]string]*blockSeries{},
	}
}

// seriesOf returns the series of rule r, making it on first use. A rule of
// a later policy with the same name, action and mode counts on.
func (b *blockCounts) seriesOf(r *policy.Rule) *blockSeries {
	labels := [3]string{r.Name, r.Action.String(), r.Mode.String()}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.series[labels]
	if s == nil {
		s = &blockSeries{labels: labels}
		b.series[labels] = s
	}
	return s
}

// load makes the table of p's blocking rules, whose series are then
// exported from zero.
func (b *blockCounts) load(p *policy.Policy) {
	rules, look := p.Rules(), p.LookalikeRules()
	t := &blockTable{rules: make([]*policy.Rule, len(rules)+len(look)), series: make([]*blockSeries, len(rules)+len(look))}
	for _, list := range [][]policy.Rule{rules, look} {
		for i := range list {
			if r := &list[i]; r.Action.Blocking() {
				t.rules[r.Index], t.series[r.Index] = r, b.seriesOf(r)
			}
		}
	}
	b.table.Store(t)
}

// add counts one block by d on lane.
func (b *blockCounts) add(lane int, d policy.Decision) {
	lane %= cache.Lanes
	if t := b.table.Load(); t != nil && d.Rule.Index < len(t.rules) && t.rules[d.Rule.Index] == d.Rule {
		t.series[d.Rule.Index].lanes[lane].n.Add(1)
		return
	}
	// A query still answered under the policy a reload just replaced.
	b.seriesOf(d.Rule).lanes[lane].n.Add(1)
}

// Describe implements prometheus.Collector.
func (b *blockCounts) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

// Collect implements prometheus.Collector: each series summed over lanes.
func (b *blockCounts) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.series {
		var n uint64
		for i := range s.lanes {
			n += s.lanes[i].n.Load()
		}
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.CounterValue, float64(n), s.labels[:]...)
	}
}
