// Package resolver is typoguard's DNS server: it accepts queries, applies
// the client ACL and the policy, answers blocked names from policy, and
// forwards the rest through a cache to the upstream resolvers, inspecting
// what comes back.
package resolver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/cache"
	"github.com/typoguard/typoguard/resolver/upstream"
)

// Reason says why a reply is what it is.
type Reason uint8

// The reasons a reply can have.
const (
	ReasonResolved  Reason = iota // forwarded to an upstream
	ReasonCached                  // served from the cache
	ReasonBlocked                 // synthesized from the policy
	ReasonLocal                   // answered by typoguard itself (sinkhole host)
	ReasonRefused                 // client outside the ACL
	ReasonFailed                  // every upstream failed: SERVFAIL
	ReasonMalformed               // not a query typoguard can answer: FORMERR
)

var reasonNames = [...]string{"resolved", "cached", "blocked", "local", "refused", "failed", "malformed"}

// String names the reason for logs.
func (r Reason) String() string { return reasonNames[r] }

// Result is a reply and why it is so. Only the server's outermost handler
// writes it to the client.
type Result struct {
	Msg *dns.Msg
	// EDE is the Extended DNS Error (RFC 8914) the reply carries when the
	// client sent EDNS; nil: none. finish puts it in the reply's OPT.
	EDE      *dns.EDNS0_EDE
	Reason   Reason
	Decision policy.Decision // the deciding rule, also for would-blocks
	// Inspected names the record that led into a blocked name, when the
	// upstream answer was replaced for it.
	Inspected string
}

// Config is what a Server needs besides its policy.
type Config struct {
	Logger *slog.Logger // nil: discard
	// SystemUpstreams are used when the policy names no upstreams (the
	// nameservers of /etc/resolv.conf).
	SystemUpstreams []string
	Now             func() time.Time // nil: time.Now
	// NewUpstream makes the exchanger for a list of upstream addresses;
	// nil: an upstream.Group of upstream.Servers with failover.
	NewUpstream func(addrs []string, timeout time.Duration) upstream.Exchanger
	// Observer receives events for metrics; nil: none.
	Observer Observer
	// Auditor writes the audit log; nil: info lines through Logger.
	Auditor Auditor
}

// Server answers DNS queries under a policy that can be swapped while it
// serves. It is a dns.Handler.
type Server struct {
	log   *slog.Logger
	now   func() time.Time
	sys   []string
	newUp func(addrs []string, timeout time.Duration) upstream.Exchanger
	state atomic.Pointer[snapshot]
	obs   Observer
	// auditor writes the audit log.
	auditor Auditor
	// cacheMu serialises reloads, which may replace the cache, and guards
	// gens.
	cacheMu sync.Mutex
	gens    uint64 // snapshots made
	// cacheCounts count the hits, misses and evictions of every cache the
	// server has had.
	cacheCounts cache.Counters
	// fails holds back repeats of the warning that a route's upstreams
	// all failed.
	fails failLog
	// roots are the policy's upstream_ca_file roots while its routes are
	// made (nil: the system's); written and read under cacheMu.
	roots  *x509.CertPool
	flight singleflight.Group
	// lastUpstreamOK is when an upstream last answered, in Unix nanoseconds.
	lastUpstreamOK atomic.Int64

	serversMu sync.Mutex   // guards servers and udp
	servers   []*tcpServer // TCP
	udp       []*udpSocket
	inflight  sync.WaitGroup
	// misses hands UDP queries that need the upstreams to idle workers.
	misses chan *pending
	// rateLimited counts UDP queries answered truncated for their
	// client's rate; the summary logs what it added.
	rateLimited atomic.Uint64
	stopOnce    sync.Once
	stopped     chan struct{} // closed by Shutdown
}

// snapshot is everything one query reads, swapped whole on reload.
type snapshot struct {
	policy *policy.Policy
	// gen numbers the snapshots from 1, for what is kept with cache
	// entries while this policy is in force (see fastAnswer).
	gen   uint64
	cache *cache.Cache // nil: caching off
	rate  *rateLimiter // nil: no rate limit
	// plans says what each rule does with a query, with the exchanger of
	// every forwarding plan attached.
	plans plans
	// routes holds every plan's route by its servers and timeout, so that
	// a reload keeps those (and their failover memory) whose settings did
	// not change.
	routes map[string]*route
}

// New makes a server for the compiled policy p.
func New(p *policy.Policy, cfg Config) (*Server, error) {
	s := &Server{log: cfg.Logger, now: cfg.Now, sys: cfg.SystemUpstreams, newUp: cfg.NewUpstream, obs: cfg.Observer, misses: make(chan *pending), stopped: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	s.auditor = cfg.Auditor
	if s.auditor == nil {
		s.auditor = slogAuditor{s.log}
	}
	if s.newUp == nil {
		s.newUp = s.newGroup
	}
	if err := s.Reload(p); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload swaps in a new compiled policy. Queries already running finish
// under the old one; the cache is kept unless its settings changed, and so
// is each group of upstreams whose servers and timeout did not change.
func (s *Server) Reload(p *policy.Policy) error {
	addrs := p.Upstreams
	if len(addrs) == 0 {
		addrs = s.sys
	}
	if len(addrs) == 0 {
		return errors.New("no upstreams: the policy names none and the system has no nameservers")
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	old := s.state.Load()
	s.gens++
	snap := &snapshot{
		gen:    s.gens,
		policy: p,
		plans:  compilePlans(p, addrs),
		routes: map[string]*route{},
	}
	roots, rootsID := p.UpstreamRoots()
	s.roots = roots
	routeOf := func(addrs []string) *route {
		key := strings.Join(addrs, " ") + "/" + p.UpstreamTimeout.String() + "/" + rootsID
		if r, ok := snap.routes[key]; ok {
			return r
		}
		r, ok := (*route)(nil), false
		if old != nil {
			r, ok = old.routes[key]
		}
		if !ok {
			r = &route{ex: s.newUp(addrs, p.UpstreamTimeout), addrs: addrs}
		}
		snap.routes[key] = r
		return r
	}
	snap.plans.none.up = routeOf(addrs)
	for i := range snap.plans.byRule {
		if pl := &snap.plans.byRule[i]; pl.Kind == PlanForward {
			pl.up = routeOf(pl.Upstreams)
		}
	}
	// limits.upstream_inflight is shared out evenly: a slow route fills
	// its own share and leaves the others theirs.
	share := max(int64(p.Limits.UpstreamInflight)/int64(len(snap.routes)), 1)
	snap.plans.none.share = share
	for i := range snap.plans.byRule {
		snap.plans.byRule[i].share = share
	}
	if old != nil && old.policy.Cache == p.Cache {
		snap.cache = old.cache
	} else if p.Cache.Size > 0 {
		snap.cache = cache.New(cache.Config{
			Size:           p.Cache.Size,
			MinTTL:         p.Cache.MinTTL,
			MaxTTL:         p.Cache.MaxTTL,
			MaxNegativeTTL: p.Cache.MaxNegativeTTL,
			ServfailTTL:    p.Cache.ServfailTTL,
			ServeStale:     p.Cache.ServeStale,
			Counters:       &s.cacheCounts,
		}, s.now)
	}
	if old != nil && old.rate != nil && old.rate.sameSettings(p.RateLimit) {
		snap.rate = old.rate // its buckets go on
	} else {
		snap.rate = newRateLimiter(p.RateLimit)
	}
	s.obs.PolicyLoaded(p)
	s.state.Store(snap)
	return nil
}

// Upstreams returns the addresses queries are forwarded to under the policy
// in force: the policy's upstreams, or the system's when it names none.
func (s *Server) Upstreams() []string { return s.state.Load().plans.none.Upstreams }

// Policy returns the policy now in force.
func (s *Server) Policy() *policy.Policy { return s.state.Load().policy }

// newGroup makes the default exchanger: the servers in order with
// failover, each exchange observed.
func (s *Server) newGroup(addrs []string, timeout time.Duration) upstream.Exchanger {
	g := &upstream.Group{Timeout: timeout, Observe: func(addr string, rtt time.Duration, err error) {
		if err == nil {
			s.lastUpstreamOK.Store(s.now().UnixNano())
		}
		s.obs.Upstream(addr, rtt, err)
	}}
	for _, a := range addrs {
		// The group shares out the time; a server needs no cap of its own
		// below the policy's upstream_timeout.
		g.Servers = append(g.Servers, s.newExchanger(a, timeout))
	}
	return g
}

// newExchanger makes the exchanger for one upstream as the policy writes
// it: ip:port, tls://IP:PORT#NAME or an https URL. Encrypted ones check
// certificates against s.roots (nil: the system's) and need TLS 1.2.
func (s *Server) newExchanger(a string, timeout time.Duration) upstream.Exchanger {
	switch {
	case strings.HasPrefix(a, "tls://"):
		addr, name, _ := strings.Cut(strings.TrimPrefix(a, "tls://"), "#")
		return &upstream.TLSServer{Addr: addr, Name: a, Timeout: timeout,
			Config: &tls.Config{ServerName: name, RootCAs: s.roots, MinVersion: tls.VersionTLS12}}
	case strings.HasPrefix(a, "https://"):
		if srv, err := upstream.NewHTTPSServer(a, &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12}, timeout); err == nil {
			return srv
		}
		// The policy checked the URL; an exchanger that only fails is the
		// safe answer to one it did not.
		return failing{a}
	}
	srv := upstream.NewServer(a)
	srv.Timeout = timeout
	return srv
}

// failing is an upstream that cannot be used: every exchange fails.
type failing struct{ addr string }

func (f failing) Exchange(context.Context, *dns.Msg) (*dns.Msg, error) {
	return nil, fmt.Errorf("upstream %s cannot be used", f.addr)
}

// Address returns the upstream as the policy writes it.
func (f failing) Address() string { return f.addr }

// ServeDNS answers one query: it resolves it, shapes the reply for the
// transport and writes it. A panic while resolving answers SERVFAIL.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.inflight.Add(1)
	defer s.inflight.Done()
	start := s.now()
	client := addrOf(w.RemoteAddr())
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	var res Result
	s.safely(client, req, &res, func() { res = s.Resolve(context.Background(), client, req) })
	if err := w.WriteMsg(s.reply(client, req, res, udp, start)); err != nil {
		s.log.Debug("write reply", "client", client.String(), "err", err)
	}
}

// safely runs resolve, which fills res; if it panics, res becomes SERVFAIL
// and the panic is logged and counted.
func (s *Server) safely(client netip.Addr, req *dns.Msg, res *Result, resolve func()) {
	defer func() {
		if v := recover(); v != nil {
			s.obs.Panic()
			s.log.Error("panic while answering a query; answered SERVFAIL",
				"client", client.String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			*res = errorResult(req, dns.RcodeServerFailure, dns.ExtendedErrorCodeOther, "internal error", ReasonFailed)
		}
	}()
	resolve()
}

// reply shapes the result of req for the client and the transport, and
// observes it; start is when the query arrived.
func (s *Server) reply(client netip.Addr, req *dns.Msg, res Result, udp bool, start time.Time) *dns.Msg {
	reply := finish(req, res.Msg, res.EDE, udp)
	var qtype uint16
	if len(req.Question) == 1 {
		qtype = req.Question[0].Qtype
	}
	s.obs.Query(0, qtype, reply.Rcode, res.Reason)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.logQuery(client, req, reply, res, s.now().Sub(start))
	}
	return reply
}

// logQuery writes the debug line of one answered query.
func (s *Server) logQuery(client netip.Addr, req, reply *dns.Msg, res Result, took time.Duration) {
	attrs := []any{"client", client.String(), "rcode", dns.RcodeToString[reply.Rcode], "reason", res.Reason.String(),
		"duration_ms", float64(took.Microseconds()) / 1000}
	if len(req.Question) == 1 {
		attrs = append(attrs, "name", req.Question[0].Name, "type", dns.TypeToString[req.Question[0].Qtype])
	}
	if res.Decision.Rule != nil {
		attrs = append(attrs, "rule", res.Decision.Rule.Name)
	}
	if res.Inspected != "" {
		attrs = append(attrs, "via", res.Inspected)
	}
	s.log.Debug("query", attrs...)
}

// Resolve decides the reply to req from client: accept → ACL → policy →
// cache → forward → inspect. It never writes to the client.
func (s *Server) Resolve(ctx context.Context, client netip.Addr, req *dns.Msg) Result {
	snap := s.state.Load()
	res, done := s.resolveLocal(snap, client, req)
	if done {
		return res
	}
	pl := snap.plans.of(res.Decision)
	if !pl.up.acquire(pl.share) {
		return overShare(req, pl)
	}
	defer pl.up.release()
	return s.resolveUpstream(ctx, snap, client, req, res.Decision)
}

// resolveLocal answers what needs no upstream: a malformed query, a client
// outside the ACL, a name the policy answers, a cache hit. It reports false
// when the query must go to the upstreams, with the policy's decision in
// the result; it never blocks.
func (s *Server) resolveLocal(snap *snapshot, client netip.Addr, req *dns.Msg) (Result, bool) {
	p := snap.policy
	if res, ok := checkQuery(req); !ok {
		return res, true
	}
	if !allowed(p.ACLAllow, client) {
		return errorResult(req, dns.RcodeRefused, dns.ExtendedErrorCodeProhibited, "client not allowed by typoguard acl", ReasonRefused), true
	}
	q := req.Question[0]
	res, answered := policyAnswer(p, &snap.plans, client, req)
	d := res.Decision
	pl := snap.plans.of(d)
	if answered {
		s.audit(0, 0, pl, client, q, d, "", false)
		return res, true
	}
	var reply *dns.Msg
	ok := false
	if snap.cache != nil {
		key, _ := routeKey(pl, req)
		reply, ok = snap.cache.Get(key)
	}
	if !ok {
		if !req.RecursionDesired {
			// RFC 1034 §4.3.1: without RD, answer from what is at hand.
			return notCached(req), true
		}
		return Result{Decision: d}, false
	}
	s.audit(0, 0, pl, client, q, d, "", false)
	if reply.Rcode == dns.RcodeServerFailure {
		return Result{Msg: reply, EDE: failureEDE(reply), Reason: ReasonCached, Decision: d}, true
	}
	return s.inspected(snap, client, req, d, reply, ReasonCached), true
}

// notCached is the answer to a query with RD clear for a name the cache
// does not hold: typoguard asks no upstream for it, and says so.
func notCached(req *dns.Msg) Result {
	return errorResult(req, dns.RcodeRefused, dns.ExtendedErrorCodeNotAuthoritative,
		"typoguard: not in the cache, and the query asks for no recursion (RD clear)", ReasonRefused)
}

// staleTTL is the TTL of an answer served stale (RFC 8767 §4).
const staleTTL = 30

// staleEDE is the Stale Answer EDE that exchange puts in the OPT of an
// answer it served stale, or nil. An upstream's own OPT never has it: the
// cache keeps none.
func staleEDE(m *dns.Msg) *dns.EDNS0_EDE {
	if e := failureEDE(m); e != nil && e.InfoCode == dns.ExtendedErrorCodeStaleAnswer && strings.HasPrefix(e.ExtraText, "typoguard: ") {
		return e
	}
	return nil
}

// overShare is the answer to a query whose route has no place left for it
// to wait in: never queued, it is answered SERVFAIL at once.
func overShare(req *dns.Msg, pl *Plan) Result {
	return errorResult(req, dns.RcodeServerFailure, dns.ExtendedErrorCodeNoReachableAuthority,
		"typoguard: too many queries already wait for "+strings.Join(pl.up.addrs, ", "), ReasonFailed)
}

// resolveUpstream answers a query that resolveLocal could not, from the
// upstreams; d is the policy's decision on it. The caller holds a place on
// its plan's route (route.acquire).
func (s *Server) resolveUpstream(ctx context.Context, snap *snapshot, client netip.Addr, req *dns.Msg, d policy.Decision) Result {
	pl := snap.plans.of(d)
	s.audit(0, 0, pl, client, req.Question[0], d, "", false)
	reply := s.exchange(ctx, snap, pl, req)
	if reply.Rcode == dns.RcodeServerFailure {
		return Result{Msg: reply, EDE: failureEDE(reply), Reason: ReasonFailed, Decision: d}
	}
	res := s.inspected(snap, client, req, d, reply, ReasonResolved)
	if res.EDE == nil && res.Msg == reply {
		res.EDE = staleEDE(reply) // the one EDE an answer from the upstreams' side carries
	}
	return res
}

// inspected is the result for an upstream reply (from the cache or not):
// the reply itself, or the blocking answer of a name it leads into.
func (s *Server) inspected(snap *snapshot, client netip.Addr, req *dns.Msg, d policy.Decision, reply *dns.Msg, reason Reason) Result {
	q := req.Question[0]
	if bd, via, found := inspect(snap.policy, client, q, reply.Answer); found {
		pl := snap.plans.of(bd)
		s.audit(0, 0, pl, client, q, bd, via, reason == ReasonCached)
		if pl.Kind == PlanSynthesize {
			// The answer replaces the query name's own, so its SOA is the
			// query name's; the decision keeps the name it matched.
			return Result{Msg: synthesize(req, pl, q.Name, snap.policy.Answers), EDE: blockEDE(pl, bd), Reason: ReasonBlocked, Decision: bd, Inspected: via}
		}
	}
	return Result{Msg: reply, Reason: reason, Decision: d}
}

// policyAnswer is the answer the policy alone gives to req from client: a
// synthesized answer for a blocked name, or the sinkhole exchange's
// addresses. It reports false when the query goes on to the cache and the
// upstreams. The decision is in the result either way.
func policyAnswer(p *policy.Policy, ps *plans, client netip.Addr, req *dns.Msg) (Result, bool) {
	q := req.Question[0]
	d := p.Decide(client, q.Name, q.Qtype)
	if pl := ps.of(d); pl.Kind == PlanSynthesize {
		return Result{Msg: synthesize(req, pl, d.Domain, p.Answers), EDE: blockEDE(pl, d), Reason: ReasonBlocked, Decision: d}, true
	}
	if m, ok := sinkholeHostAnswer(req, ps, p.Answers); ok {
		return Result{Msg: m, Reason: ReasonLocal, Decision: d}, true
	}
	return Result{Decision: d}, false
}

// checkQuery accepts only a query with exactly one question; the server's
// MsgAcceptFunc rejects the rest before unpacking, this guards direct calls.
func checkQuery(req *dns.Msg) (Result, bool) {
	if req.Response || req.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNotImplemented)
		m.Question = nil
		return Result{Msg: m, Reason: ReasonMalformed}, false
	}
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcodeFormatError(req)
		return Result{Msg: m, Reason: ReasonMalformed}, false
	}
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		// RFC 6891 §6.1.3: an unsupported EDNS version gets BADVERS.
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeBadVers) // finish adds the OPT it needs
		return Result{Msg: m, Reason: ReasonMalformed}, false
	}
	return Result{}, true
}

func allowed(acl []netip.Prefix, client netip.Addr) bool {
	client = client.Unmap()
	for _, p := range acl {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// routeKey returns the cache key of req under the forwarding plan pl, and
// the exchanger its misses go to.
func routeKey(pl *Plan, req *dns.Msg) (cache.Key, upstream.Exchanger) {
	key := cache.KeyOf(req)
	key.Route = pl.Route
	return key, pl.up.ex
}

// exchange answers an allowed query from the upstreams and caches the
// reply. Identical misses in flight at once share one exchange. A failure
// is a SERVFAIL reply.
func (s *Server) exchange(ctx context.Context, snap *snapshot, pl *Plan, req *dns.Msg) *dns.Msg {
	key, up := routeKey(pl, req)
	v, _, shared := s.flight.Do(key.String(), func() (any, error) {
		// The upstream gives the query its own ID.
		q := &dns.Msg{
			MsgHdr:   dns.MsgHdr{Opcode: dns.OpcodeQuery, RecursionDesired: true, CheckingDisabled: key.CD},
			Question: []dns.Question{{Name: key.Name, Qtype: key.Type, Qclass: key.Class}},
		}
		q.SetEdns0(ednsSize, key.DO)
		// The exchange outlives a caller that gives up, for the others
		// that share it (a context that cannot be cancelled needs no
		// wrapping).
		upCtx := ctx
		if ctx.Done() != nil {
			upCtx = context.WithoutCancel(ctx)
		}
		reply, err := up.Exchange(upCtx, q)
		failed := err != nil || reply.Rcode == dns.RcodeServerFailure || reply.Rcode == dns.RcodeRefused
		if failed && snap.cache != nil {
			// RFC 8767: an answer past its TTL, within cache.serve_stale,
			// rather than a failure.
			if stale, ok := snap.cache.Stale(key, staleTTL); ok {
				if log, held := s.fails.allow(failKey{pl.up, true}, s.now()); log {
					s.log.Warn("every upstream failed; answering from the cache, stale", "name", key.Name, "type", dns.TypeToString[key.Type], "err", err, "held_back", held)
				}
				stale.Extra = append(stale.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT},
					Option: []dns.EDNS0{&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeStaleAnswer, ExtraText: "typoguard: the upstreams failed; this answer is past its TTL"}}})
				return stale, nil
			}
		}
		if err != nil {
			if log, held := s.fails.allow(failKey{pl.up, false}, s.now()); log {
				s.log.Warn("every upstream failed; answering SERVFAIL", "name", key.Name, "type", dns.TypeToString[key.Type], "err", err, "held_back", held)
			}
		}
		reply = failure(q, reply, err, pl.up.addrs)
		// What the upstreams answered is kept, a SERVFAIL for a while too
		// (RFC 2308 §7.1); that none answered says nothing about the name,
		// and a flood of names to a dead upstream must not fill the cache.
		if snap.cache != nil && err == nil {
			snap.cache.Set(key, reply)
		}
		return reply, nil
	})
	// A shared reply is never mutated: each caller shapes its own copy.
	// The cache stored a copy of its own.
	m := v.(*dns.Msg)
	if shared {
		m = m.Copy()
	}
	return m
}

// inspect looks for a record in an upstream answer section that leads into a name
// the policy blocks: a CNAME or DNAME target (checked for the query's type),
// an MX exchange or SRV target (checked for the query's type and for A and
// AAAA, which the client will ask next). It returns the decision of the
// first such name and the record that led there.
func inspect(p *policy.Policy, client netip.Addr, q dns.Question, answer []dns.RR) (policy.Decision, string, bool) {
	var monitor policy.Decision
	var monitorVia string
	for _, rr := range answer {
		target, ok := cache.Target(rr)
		if !ok {
			continue
		}
		types := [3]uint16{q.Qtype, dns.TypeA, dns.TypeAAAA}
		n := 1 // a CNAME or DNAME target is checked for the query's type only
		if t := rr.Header().Rrtype; t == dns.TypeMX || t == dns.TypeSRV {
			n = 3 // the client asks for the exchange's or target's addresses next
		}
		for i, t := range types[:n] {
			if i > 0 && t == q.Qtype {
				continue // asked already
			}
			d := p.Decide(client, target, t)
			if d.Blocked() {
				return d, strings.Join(strings.Fields(rr.String()), " "), true
			}
			if d.WouldBlock() && monitor.Rule == nil {
				monitor, monitorVia = d, strings.Join(strings.Fields(rr.String()), " ")
			}
		}
	}
	return monitor, monitorVia, monitor.Rule != nil
}

// finish shapes a reply for the client: its ID and question spelling, RA
// set, AA clear, RD and CD echoed, and for UDP cut to the client's buffer
// (512 without EDNS) with TC set. It is the one place a reply gets its
// OPT: whatever OPT m has (an upstream's) goes, and a client that sent
// EDNS gets typoguard's, with ede when there is one.
func finish(req, m *dns.Msg, ede *dns.EDNS0_EDE, udp bool) *dns.Msg {
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	if m.Opcode == dns.OpcodeQuery {
		m.Question = req.Question
	}
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	m.RecursionAvailable = true
	m.Authoritative = false
	m.Extra = cache.WithoutOPT(m.Extra)
	clientOPT := req.IsEdns0()
	if clientOPT != nil {
		opt := replyOPT(clientOPT.Do())
		if ede != nil {
			opt.Option = append(opt.Option, ede)
		}
		if !udp && askedKeepalive(clientOPT) {
			// RFC 7828 §3.3.2: the idle timeout, in units of 100 ms.
			opt.Option = append(opt.Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE, Timeout: uint16(tcpIdleTimeout / (100 * time.Millisecond))})
		}
		m.Extra = append(m.Extra, opt)
	}
	if !udp {
		m.Compress = true
		return m
	}
	size := dns.MinMsgSize
	if clientOPT != nil {
		size = min(max(int(clientOPT.UDPSize()), dns.MinMsgSize), ednsSize)
	}
	answers := len(m.Answer)
	m.Truncate(size)
	// Truncate sets TC whenever it drops a record; RFC 2181 §9 wants it
	// only when the answer itself is incomplete, not for authority or
	// additional records left out.
	if m.Truncated && len(m.Answer) == answers {
		m.Truncated = false
	}
	return m
}

// askedKeepalive reports whether a client's OPT carries the
// edns-tcp-keepalive option, which asks the server's idle timeout.
func askedKeepalive(opt *dns.OPT) bool {
	for _, o := range opt.Option {
		if o.Option() == dns.EDNS0TCPKEEPALIVE {
			return true
		}
	}
	return false
}

// AuditLine is one block or would-block, as the audit log records it.
type AuditLine struct {
	Verdict   string // "blocked" or "would block"
	Client    netip.Addr
	Name      string // as the client spelled it
	Type      string
	Rule      string
	Action    string
	Mode      string
	Cached    bool   // the answer that led to the block came from the cache
	LooksLike string // the protected domain, for a lookalike; else ""
	Kind      string // how it looks like it, for a lookalike; else ""
	Via       string // the record that led into the blocked name; else ""
	// Time is when the query was read; the zero Time stands for the
	// moment the line is written.
	Time time.Time
}

// Auditor writes the audit log. Its methods are called on the query path,
// concurrently: they must be quick and never block. Audit must not keep
// the line's strings once it returns: they may be views of buffers that
// the next query reuses.
type Auditor interface {
	// Enabled reports whether audit lines are written at all.
	Enabled() bool
	// Audit writes one line.
	Audit(AuditLine)
}

// slogAuditor writes audit lines at info level through a logger.
type slogAuditor struct{ log *slog.Logger }

func (a slogAuditor) Enabled() bool { return a.log.Enabled(context.Background(), slog.LevelInfo) }

func (a slogAuditor) Audit(l AuditLine) {
	// LogAttrs with a fixed array of attributes: no boxing of each value.
	var attrs [10]slog.Attr
	as := append(attrs[:0],
		slog.String("client", l.Client.String()),
		slog.String("name", strings.Clone(l.Name)), // a handler may keep its record
		slog.String("type", l.Type),
		slog.String("rule", l.Rule),
		slog.String("action", l.Action),
		slog.String("mode", l.Mode),
		slog.Bool("cached", l.Cached),
	)
	if l.LooksLike != "" {
		as = append(as, slog.String("looks_like", l.LooksLike), slog.String("kind", l.Kind))
	}
	if l.Via != "" {
		as = append(as, slog.String("via", l.Via))
	}
	if l.Time.IsZero() {
		a.log.LogAttrs(context.Background(), slog.LevelInfo, l.Verdict, as...)
		return
	}
	r := slog.NewRecord(l.Time, slog.LevelInfo, l.Verdict, 0)
	r.AddAttrs(as...)
	a.log.Handler().Handle(context.Background(), r)
}

// audit logs the query q from client when its plan pl says so: a block or
// a would-block, decided by d; lane is the serving loop's, and at when it
// read the query in Unix nanoseconds (0: now).
func (s *Server) audit(lane int, at int64, pl *Plan, client netip.Addr, q dns.Question, d policy.Decision, via string, cached bool) {
	if pl.Verdict == "" {
		return
	}
	s.obs.Block(lane, d)
	if !s.auditor.Enabled() {
		return
	}
	l := AuditLine{
		Verdict: pl.Verdict,
		Client:  client,
		Name:    q.Name,
		Type:    dns.TypeToString[q.Qtype],
		Rule:    d.Rule.Name,
		Action:  d.Action.String(),
		Mode:    d.Mode.String(),
		Cached:  cached,
		Via:     via,
	}
	if lk := d.Lookalike; lk.Kind != policy.KindNone {
		l.LooksLike, l.Kind = lk.Of, lk.String()
	}
	if l.Type == "" {
		l.Type = policy.TypeString(q.Qtype)
	}
	if at != 0 {
		l.Time = time.Unix(0, at)
	}
	s.auditor.Audit(l)
}

// addrOf returns the IP of a client address, unmapped from IPv4-in-IPv6.
func addrOf(a net.Addr) netip.Addr {
	var ip net.IP
	switch v := a.(type) {
	case *net.UDPAddr:
		ip = v.IP
	case *net.TCPAddr:
		ip = v.IP
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap.Addr().Unmap()
		}
		return netip.Addr{}
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}
