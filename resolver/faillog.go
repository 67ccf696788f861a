package resolver

import (
	"sync"
	"time"
)

// failLogEvery is how often the warning that every upstream of a route
// failed is logged at most, per route and kind: a dead upstream under load
// must not write a line per query.
const failLogEvery = 10 * time.Second

// failLog holds back repeats of the failed-exchange warnings, counting
// them, so the next line logged can say how many there were.
type failLog struct {
	mu   sync.Mutex
	last map[failKey]*failMark
}

type failKey struct {
	route *route
	stale bool // answered from the cache, stale, rather than SERVFAIL
}

type failMark struct {
	at   time.Time
	held int
}

// allow reports whether a warning of key may be logged at now, and how
// many were held back since the last one that was.
func (f *failLog) allow(key failKey, now time.Time) (bool, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		f.last = map[failKey]*failMark{}
	}
	m, ok := f.last[key]
	if ok && now.Sub(m.at) < failLogEvery {
		m.held++
		return false, 0
	}
	if len(f.last) >= 256 {
		// Routes replaced by reloads: forget the marks that have run out.
		for k, old := range f.last {
			if now.Sub(old.at) >= failLogEvery {
				delete(f.last, k)
			}
		}
	}
	held := 0
	if ok {
		held = m.held
	}
	f.last[key] = &failMark{at: now}
	return true, held
}
