package resolver

import (
	"net/netip"
	"sync"
	"time"

	"github.com/typoguard/typoguard/policy"
)

// rateBuckets is how many token buckets a rate limiter has: a fixed table,
// so that clients without number (spoofed sources, say) cannot make it
// grow; two clients whose addresses hash alike share a bucket.
const rateBuckets = 1 << 16

// rateLimiter holds each client address (an IPv6 client by its /56, which
// one host may rotate through) to rate_limit.qps, with bursts of
// rate_limit.burst: a token bucket per client. Clients under
// rate_limit.exempt are never limited.
type rateLimiter struct {
	settings policy.RateLimitSettings
	qps      float64 // tokens a nanosecond, times 1e9
	burst    float64
	buckets  []rateBucket
}

// rateBucket is one client's tokens.
type rateBucket struct {
	mu     sync.Mutex // guards the fields below
	client netip.Addr // whose bucket it is now
	tokens float64
	last   int64 // Unix nanoseconds of the last refill
}

// newRateLimiter returns the limiter of s, or nil when s limits nothing.
func newRateLimiter(s policy.RateLimitSettings) *rateLimiter {
	if s.QPS <= 0 {
		return nil
	}
	return &rateLimiter{settings: s, qps: float64(s.QPS), burst: float64(s.Burst), buckets: make([]rateBucket, rateBuckets)}
}

// sameSettings reports whether r limits as s would.
func (r *rateLimiter) sameSettings(s policy.RateLimitSettings) bool {
	a := r.settings
	if a.QPS != s.QPS || a.Burst != s.Burst || len(a.Exempt) != len(s.Exempt) {
		return false
	}
	for i := range a.Exempt {
		if a.Exempt[i] != s.Exempt[i] {
			return false
		}
	}
	return true
}

// allow reports whether client may have a query answered at now (Unix
// nanoseconds), taking a token if so.
func (r *rateLimiter) allow(client netip.Addr, now int64) bool {
	client = client.Unmap()
	for _, p := range r.settings.Exempt {
		if p.Contains(client) {
			return true
		}
	}
	if client.Is6() {
		p, _ := client.WithZone("").Prefix(56)
		client = p.Addr()
	}
	b := &r.buckets[bucketOf(client)]
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != client {
		// A new client, or one whose bucket another took: start full.
		b.client, b.tokens, b.last = client, r.burst, now
	}
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = min(r.burst, b.tokens+float64(elapsed)*r.qps/1e9)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// bucketOf hashes a client address into the table.
func bucketOf(a netip.Addr) uint32 {
	h := uint32(2166136261)
	for _, c := range a.As16() {
		h = (h ^ uint32(c)) * 16777619
	}
	return h % rateBuckets
}

// rateSummaryEvery is how often the log says how many queries were
// answered truncated for their client's rate: one line, never one per
// query.
const rateSummaryEvery = 10 * time.Second

// summarizeRateLimit logs, until Shutdown, the queries rate-limited in
// each rateSummaryEvery that had any.
func (s *Server) summarizeRateLimit() {
	t := time.NewTicker(rateSummaryEvery)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-s.stopped:
			return
		case <-t.C:
		}
		if n := s.rateLimited.Load(); n != last {
			s.log.Warn("rate limit: queries answered truncated, their clients over rate_limit", "queries", n-last, "seconds", rateSummaryEvery.Seconds())
			last = n
		}
	}
}
