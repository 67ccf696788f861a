package resolver

import (
	"context"
	"errors"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/cache"
)

// Observer receives what the server does, for metrics. Its methods are
// called on the query path, concurrently: they must be quick and safe for
// concurrent use. Labels it derives must never hold a query name or a
// client address.
type Observer interface {
	// Query is called once per answered query, from the serving loop of
	// lane (below cache.Lanes; 0 for queries over TCP and other slow
	// paths): counting by lane keeps loops on different cores from sharing
	// a counter.
	Query(lane int, qtype uint16, rcode int, reason Reason)
	// Block is called once per block and per monitor-mode would-block,
	// from the serving loop of lane, as Query is.
	Block(lane int, d policy.Decision)
	// PolicyLoaded is called when p comes into force, before any query is
	// answered under it: an Observer can work out per rule what it needs.
	PolicyLoaded(p *policy.Policy)
	// Upstream is called once per exchange with one upstream server.
	Upstream(addr string, rtt time.Duration, err error)
	// Panic is called when answering a query panicked.
	Panic()
	// RateLimited is called once per query answered truncated because its
	// client is over rate_limit.
	RateLimited()
	// TCPRefused is called once per TCP connection closed on arrival, over
	// limits.tcp_connections (perClient false) or tcp_per_client (true).
	TCPRefused(perClient bool)
}

// nopObserver observes nothing.
type nopObserver struct{}

func (nopObserver) Query(int, uint16, int, Reason)        {}
func (nopObserver) Block(int, policy.Decision)            {}
func (nopObserver) PolicyLoaded(*policy.Policy)           {}
func (nopObserver) Upstream(string, time.Duration, error) {}
func (nopObserver) Panic()                                {}
func (nopObserver) RateLimited()                          {}
func (nopObserver) TCPRefused(bool)                       {}

// CacheStats returns the cache's counters since the server started, across
// reloads that replaced the cache, and the entries it holds now.
func (s *Server) CacheStats() cache.Stats {
	if c := s.state.Load().cache; c != nil {
		return c.Stats()
	}
	return s.cacheCounts.Stats()
}

// readyWindow is how recently an upstream must have answered for the
// server to count as ready without asking one.
const readyWindow = 30 * time.Second

// Ready reports whether the server can resolve: a policy is loaded and an
// upstream answered within the last 30 seconds. When none has, it asks the
// default upstreams for the root's NS records and judges by the answer.
func (s *Server) Ready(ctx context.Context) error {
	snap := s.state.Load()
	if snap == nil || snap.policy == nil {
		return errors.New("no policy loaded")
	}
	if last := s.lastUpstreamOK.Load(); last != 0 && s.now().Sub(time.Unix(0, last)) < readyWindow {
		return nil
	}
	q := new(dns.Msg)
	q.SetQuestion(".", dns.TypeNS)
	q.SetEdns0(ednsSize, false)
	reply, err := snap.plans.none.up.ex.Exchange(ctx, q)
	if err != nil {
		return err
	}
	if reply.Rcode == dns.RcodeServerFailure || reply.Rcode == dns.RcodeRefused {
		return errors.New("upstreams answer " + dns.RcodeToString[reply.Rcode])
	}
	return nil
}
