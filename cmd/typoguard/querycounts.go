package main

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/typoguard/typoguard/resolver/cache"
)

// queryCounts counts answered queries by the serving loop's lane, query
// type and response code, and exports them as typoguard_queries_total,
// summed over lanes. A loop adds to counters of its own lane only, so
// loops on different cores share no counter; one Prometheus counter per
// series would be one word every core writes.
type queryCounts struct {
	desc  *prometheus.Desc
	lanes [cache.Lanes]atomic.Pointer[queryLane] // made on a lane's first query

	mu   sync.Mutex           // guards rare
	rare map[[2]string]uint64 // types from 256 and rcodes from 16 up, by label
}

// queryLane holds one lane's counts of the types below 256 and the rcodes
// below 16.
type queryLane [256][16]atomic.Uint64

func newQueryCounts() *queryCounts {
	return &queryCounts{
		desc: prometheus.NewDesc("typoguard_queries_total", "Queries answered, by query type and response code.",
			[]string{"type", "rcode"}, nil),
		rare: map[[2]string]uint64{},
	}
}

// add counts one query of qtype answered with rcode, on lane.
func (q *queryCounts) add(lane int, qtype uint16, rcode int) {
	if qtype >= 256 || rcode < 0 || rcode >= 16 || lane < 0 || lane >= cache.Lanes {
		q.mu.Lock()
		q.rare[[2]string{typeLabel(qtype), rcodeLabel(rcode)}]++
		q.mu.Unlock()
		return
	}
	l := q.lanes[lane].Load()
	if l == nil {
		q.lanes[lane].CompareAndSwap(nil, new(queryLane))
		l = q.lanes[lane].Load()
	}
	l[qtype][rcode].Add(1)
}

// Describe implements prometheus.Collector.
func (q *queryCounts) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

// Collect implements prometheus.Collector: the counts summed over lanes,
// and over the types that share a label ("other").
func (q *queryCounts) Collect(ch chan<- prometheus.Metric) {
	sums := map[[2]string]uint64{}
	for i := range q.lanes {
		l := q.lanes[i].Load()
		if l == nil {
			continue
		}
		for t := range l {
			for rc := range l[t] {
				if n := l[t][rc].Load(); n > 0 {
					sums[[2]string{typeLabel(uint16(t)), rcodeLabel(rc)}] += n
				}
			}
		}
	}
	q.mu.Lock()
	for k, n := range q.rare {
		sums[k] += n
	}
	q.mu.Unlock()
	for k, n := range sums {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.CounterValue, float64(n), k[0], k[1])
	}
}
