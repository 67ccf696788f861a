package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/resolvertest"
	"github.com/typoguard/typoguard/resolver/upstream"
)

// routedServer is a server whose upstreams are fakes chosen by their
// addresses.
func routedServer(t *testing.T, src string, routes map[string]*fakeUpstream) *Server {
	t.Helper()
	p, err := policy.Parse("limits.yaml", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(p, Config{NewUpstream: func(addrs []string, _ time.Duration) upstream.Exchanger {
		up, ok := routes[strings.Join(addrs, " ")]
		if !ok {
			t.Fatalf("no fake for upstreams %v", addrs)
		}
		return up
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUpstreamInflightCap fills the default route's share of
// limits.upstream_inflight with queries its upstream holds: the next miss
// for it is answered SERVFAIL at once with EDE 22, while a forward rule's
// route, with its own share, and blocked and cached names are answered as
// ever; once the held queries end, the route takes misses again.
func TestUpstreamInflightCap(t *testing.T) {
	const src = `
upstreams: ["127.0.0.1:1"]
acl: {allow: [127.0.0.0/8]}
limits: {upstream_inflight: 4}
rules:
  - {name: ml, domains: [ml], action: nxdomain}
  - {name: corp, domains: [corp.example], action: forward, servers: ["127.0.0.1:2"]}
`
	release := make(chan struct{})
	held := make(chan struct{}, 10)
	slow := &fakeUpstream{exchange: func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		if strings.HasPrefix(q.Question[0].Name, "held") {
			held <- struct{}{}
			<-release
		}
		return answerFrom(t, "cached.example. 300 IN A 192.0.2.1", "later.example. 300 IN A 192.0.2.2")(ctx, q)
	}}
	corp := &fakeUpstream{exchange: answerFrom(t, "www.corp.example. 300 IN A 192.0.2.9")}
	s := routedServer(t, src, map[string]*fakeUpstream{"127.0.0.1:1": slow, "127.0.0.1:2": corp})
	ask := func(name string) Result {
		return s.Resolve(t.Context(), localhost, query(name, dns.TypeA, true))
	}
	ask("cached.example.")

	// Two routes: each has 2 of the 4 places.
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { ask(fmt.Sprintf("held%d.example.", i)) })
	}
	for range 2 {
		<-held
	}
	start := time.Now()
	res := ask("more.example.")
	if res.Msg.Rcode != dns.RcodeServerFailure || res.EDE == nil || res.EDE.InfoCode != dns.ExtendedErrorCodeNoReachableAuthority ||
		!strings.Contains(res.EDE.ExtraText, "too many queries") {
		t.Errorf("a miss beyond the route's share: %s, EDE %v; want SERVFAIL with EDE 22", dns.RcodeToString[res.Msg.Rcode], res.EDE)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a miss beyond the share took %v: it waited", took)
	}
	for name, want := range map[string]int{"www.corp.example.": dns.RcodeSuccess, "army.ml.": dns.RcodeNameError, "cached.example.": dns.RcodeSuccess} {
		if got := ask(name).Msg.Rcode; got != want {
			t.Errorf("%s while the default route is full: %s, want %s", name, dns.RcodeToString[got], dns.RcodeToString[want])
		}
	}
	close(release)
	wg.Wait()
	if got := ask("later.example.").Msg.Rcode; got != dns.RcodeSuccess {
		t.Errorf("after the held queries ended: %s, want NOERROR", dns.RcodeToString[got])
	}
}

// TestServfailSaysWhy gives the upstream each way to fail: the SERVFAIL
// carries an EDE that names it; an upstream's own SERVFAIL or REFUSED is
// cached and keeps it, and no answer at all is not cached.
func TestServfailSaysWhy(t *testing.T) {
	reply := func(rcode int, ede *dns.EDNS0_EDE) func(context.Context, *dns.Msg) (*dns.Msg, error) {
		return func(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
			m := new(dns.Msg)
			m.SetRcode(q, rcode)
			if ede != nil {
				m.SetEdns0(1232, false)
				m.IsEdns0().Option = []dns.EDNS0{ede}
			}
			return m, nil
		}
	}
	fail := func(err error) func(context.Context, *dns.Msg) (*dns.Msg, error) {
		return func(context.Context, *dns.Msg) (*dns.Msg, error) { return nil, err }
	}
	for _, tc := range []struct {
		name     string
		exchange func(context.Context, *dns.Msg) (*dns.Msg, error)
		code     uint16
		text     string
		calls    int64 // upstream exchanges for the two queries
	}{
		{"timeout", fail(fmt.Errorf("forward: %w", os.ErrDeadlineExceeded)), dns.ExtendedErrorCodeNoReachableAuthority, "in time", 2},
		{"network error", fail(fmt.Errorf("forward: %w", syscall.ECONNREFUSED)), dns.ExtendedErrorCodeNetworkError, "could not be reached", 2},
		{"upstream SERVFAIL", reply(dns.RcodeServerFailure, nil), dns.ExtendedErrorCodeNoReachableAuthority, "answered SERVFAIL", 1},
		{"upstream SERVFAIL, bogus", reply(dns.RcodeServerFailure, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeDNSBogus, ExtraText: "signature invalid"}), dns.ExtendedErrorCodeDNSBogus, "signature invalid", 1},
		{"CNAME loop", func(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
			m := new(dns.Msg)
			m.SetReply(q)
			for _, r := range []string{"www.example.com. 300 IN CNAME a.example.com.", "a.example.com. 300 IN CNAME B.example.com.", "b.example.com. 300 IN CNAME www.example.com."} {
				m.Answer = append(m.Answer, resolvertest.RR(t, r))
			}
			return m, nil
		}, dns.ExtendedErrorCodeOther, "CNAME loop", 1},
		{"upstream REFUSED", reply(dns.RcodeRefused, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeProhibited}), dns.ExtendedErrorCodeNoReachableAuthority, "refused", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &fakeUpstream{exchange: tc.exchange}
			s := newTestServer(t, testPolicy, up)
			for _, from := range []string{"first", "second"} {
				res := s.Resolve(t.Context(), localhost, query("www.example.com.", dns.TypeA, true))
				reply := finish(query("www.example.com.", dns.TypeA, true), res.Msg, res.EDE, true)
				ede := failureEDE(reply)
				if reply.Rcode != dns.RcodeServerFailure || ede == nil || ede.InfoCode != tc.code || !strings.Contains(ede.ExtraText, tc.text) {
					t.Errorf("%s query: %s with EDE %v, want SERVFAIL with EDE %d %q", from, dns.RcodeToString[reply.Rcode], ede, tc.code, tc.text)
				}
			}
			if n := up.calls.Load(); n != tc.calls {
				t.Errorf("%d upstream exchanges for two queries, want %d", n, tc.calls)
			}
		})
	}
}

// TestUpstreamInflightCapOverUDP fills the share over real UDP sockets:
// the query beyond it is answered at once, by the serving loop itself,
// with SERVFAIL and EDE 22, and a blocked name still is answered.
func TestUpstreamInflightCapOverUDP(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{}, 10)
	up := &fakeUpstream{exchange: func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		held <- struct{}{}
		<-release
		return answerFrom(t)(ctx, q)
	}}
	s := routedServer(t, "upstreams: [\"127.0.0.1:1\"]\nacl: {allow: [127.0.0.0/8]}\nlimits: {upstream_inflight: 2}\nrules: [{name: ml, domains: [ml], action: nxdomain}]\n",
		map[string]*fakeUpstream{"127.0.0.1:1": up})
	addr := serveOn(t, s, "127.0.0.1:0")
	defer close(release)
	c := &dns.Client{Timeout: 3 * time.Second}
	for i := range 2 {
		go c.Exchange(query(fmt.Sprintf("held%d.example.", i), dns.TypeA, true), addr)
		<-held
	}
	r, rtt, err := c.Exchange(query("more.example.", dns.TypeA, true), addr)
	if err != nil {
		t.Fatal(err)
	}
	ede := failureEDE(r)
	if r.Rcode != dns.RcodeServerFailure || ede == nil || ede.InfoCode != dns.ExtendedErrorCodeNoReachableAuthority {
		t.Errorf("beyond the share: %s, EDE %v; want SERVFAIL with EDE 22", dns.RcodeToString[r.Rcode], ede)
	}
	if rtt > time.Second {
		t.Errorf("beyond the share, answered in %v: it waited", rtt)
	}
	if r, _, err := c.Exchange(query("army.ml.", dns.TypeMX, true), addr); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("a blocked name while the route is full: %v %v", r, err)
	}
}

// TestTruncationOnlyForIncompleteAnswers asks over real UDP, without EDNS,
// for an MX set that fits in 512 bytes with additional addresses that do
// not: the addresses are left out and TC stays clear (RFC 2181 §9). An
// answer that does not fit itself is cut and TC is set.
func TestTruncationOnlyForIncompleteAnswers(t *testing.T) {
	var zone []string
	for i := range 4 {
		zone = append(zone, fmt.Sprintf("bigmx.example.com. 300 IN MX 10 mx%d.bigmx.example.com.", i))
		for j := range 8 {
			zone = append(zone, fmt.Sprintf("mx%d.bigmx.example.com. 300 IN AAAA 2001:db8::%d:%d", i, i, j))
		}
	}
	for i := range 40 {
		zone = append(zone, fmt.Sprintf("bigtxt.example.com. 300 IN TXT %q", strings.Repeat("t", 40)+fmt.Sprint(i)))
	}
	rrs := zone
	up := &fakeUpstream{exchange: func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		m, err := answerFrom(t, rrs...)(ctx, q)
		if err == nil && q.Question[0].Qtype == dns.TypeMX {
			for _, r := range rrs {
				if strings.Contains(r, " AAAA ") {
					m.Extra = append(m.Extra, resolvertest.RR(t, r))
				}
			}
		}
		return m, err
	}}
	s := newTestServer(t, testPolicy, up)
	addr := serveOn(t, s, "127.0.0.1:0")
	c := &dns.Client{Timeout: 3 * time.Second}
	for _, tc := range []struct {
		name    string
		qtype   uint16
		answers int
		tc      bool
	}{
		{"bigmx.example.com.", dns.TypeMX, 4, false},
		{"bigtxt.example.com.", dns.TypeTXT, -1, true},
	} {
		for round := range 2 { // from the upstream, then from the cache
			r, _, err := c.Exchange(query(tc.name, tc.qtype, false), addr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Truncated != tc.tc || (tc.answers >= 0 && len(r.Answer) != tc.answers) {
				t.Errorf("%s round %d: TC %v with %d answers, %d additional; want TC %v", tc.name, round, r.Truncated, len(r.Answer), len(r.Extra), tc.tc)
			}
		}
	}
}

// TestTCPConnectionLimits opens TCP connections up to the per-client and
// total limits: one over either is closed at once, the ones within are
// answered, UDP is answered throughout, and a closed connection gives its
// place back.
func TestTCPConnectionLimits(t *testing.T) {
	up := &fakeUpstream{exchange: answerFrom(t, "www.example.com. 300 IN A 192.0.2.1")}
	s := routedServer(t, "upstreams: [\"127.0.0.1:1\"]\nacl: {allow: [127.0.0.0/8]}\nlimits: {tcp_connections: 3, tcp_per_client: 2}\nrules: [{name: ml, domains: [ml], action: nxdomain}]\n",
		map[string]*fakeUpstream{"127.0.0.1:1": up})
	obs := &tcpCounter{}
	s.obs = obs
	addr := serveOn(t, s, "127.0.0.1:0")
	dial := func(from string) *dns.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &dns.Conn{Conn: c}
	}
	// answered reports whether a query on c gets its answer.
	answered := func(c *dns.Conn) bool {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := c.WriteMsg(query("www.example.com.", dns.TypeA, false)); err != nil {
			return false
		}
		r, err := c.ReadMsg()
		return err == nil && r.Rcode == dns.RcodeSuccess
	}
	a1, a2 := dial("127.0.0.1"), dial("127.0.0.1")
	if !answered(a1) || !answered(a2) {
		t.Fatal("connections within the limits not answered")
	}
	if answered(dial("127.0.0.1")) {
		t.Error("a third connection from one client answered; tcp_per_client is 2")
	}
	b1 := dial("127.0.0.2")
	if !answered(b1) {
		t.Error("another client's first connection not answered")
	}
	if answered(dial("127.0.0.3")) {
		t.Error("a fourth connection answered; tcp_connections is 3")
	}
	if r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(query("www.example.com.", dns.TypeA, false), addr); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Errorf("UDP while TCP is full: %v %v", r, err)
	}
	if pc, tot := obs.perClient.Load(), obs.total.Load(); pc != 1 || tot != 1 {
		t.Errorf("observed %d refused per client and %d in all, want 1 and 1", pc, tot)
	}
	a1.Close()
	// The server sees the close when it next reads; give it that chance.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if answered(dial("127.0.0.3")) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("a closed connection's place was not given back")
}

// TestTCPPipelinedOutOfOrder sends, on one TCP connection, a query its
// upstream holds and then a blocked and a cached one: those two are
// answered at once, before the first (RFC 7766 §6.2.1.1), which is
// answered when the upstream lets go; then a client that trickles a
// message is closed.
func TestTCPPipelinedOutOfOrder(t *testing.T) {
	release := make(chan struct{})
	up := &fakeUpstream{exchange: func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		if strings.HasPrefix(q.Question[0].Name, "slow") {
			<-release
		}
		return answerFrom(t, "slow.example. 300 IN A 192.0.2.1", "cached.example. 300 IN A 192.0.2.2")(ctx, q)
	}}
	s := routedServer(t, "upstreams: [\"127.0.0.1:1\"]\nacl: {allow: [127.0.0.0/8]}\nrules: [{name: ml, domains: [ml], action: nxdomain}]\n",
		map[string]*fakeUpstream{"127.0.0.1:1": up})
	s.Resolve(t.Context(), localhost, query("cached.example.", dns.TypeA, false))
	addr := serveOn(t, s, "127.0.0.1:0")
	defer close(release)
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &dns.Conn{Conn: nc}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	names := []string{"slow.example.", "army.ml.", "cached.example."}
	ids := map[uint16]string{}
	for _, n := range names {
		q := query(n, dns.TypeA, false)
		ids[q.Id] = n
		if err := c.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		r, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("the answers behind the held query did not come: %v", err)
		}
		if n := ids[r.Id]; n == "slow.example." {
			t.Fatal("the held query was answered before the upstream let it go")
		}
	}
	release <- struct{}{}
	if r, err := c.ReadMsg(); err != nil || ids[r.Id] != "slow.example." {
		t.Fatalf("the held query, once let go: %v %v", r, err)
	}

	// A client that sends two bytes of length and then trickles.
	tr, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.Write([]byte{0, 40, 0x12})
	tr.SetReadDeadline(time.Now().Add(tcpReadTimeout + 3*time.Second))
	start := time.Now()
	if _, err := tr.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a trickling client was not closed within %v (err %v)", tcpReadTimeout, err)
	}
	if took := time.Since(start); took > tcpReadTimeout+time.Second {
		t.Errorf("a trickling client was closed after %v", took)
	}
}

// TestNoRecursionDesired asks with RD clear: a cached name is answered
// from the cache, a blocked one by the policy, and an uncached one is
// refused with EDE 20 without asking the upstream (RFC 1034 §4.3.1); each
// reply keeps RD clear.
func TestNoRecursionDesired(t *testing.T) {
	up := &fakeUpstream{exchange: answerFrom(t, "cached.example. 300 IN A 192.0.2.2", "other.example. 300 IN A 192.0.2.3")}
	s := newTestServer(t, testPolicy, up)
	s.Resolve(t.Context(), localhost, query("cached.example.", dns.TypeA, true))
	addr := serveOn(t, s, "127.0.0.1:0")
	c := &dns.Client{Timeout: 2 * time.Second}
	for _, tc := range []struct {
		name  string
		rcode int
		ede   uint16
	}{
		{"cached.example.", dns.RcodeSuccess, 0},
		{"army.ml.", dns.RcodeNameError, dns.ExtendedErrorCodeBlocked},
		{"other.example.", dns.RcodeRefused, dns.ExtendedErrorCodeNotAuthoritative},
	} {
		q := query(tc.name, dns.TypeMX, true)
		if tc.rcode == dns.RcodeSuccess {
			q = query(tc.name, dns.TypeA, true)
		}
		q.RecursionDesired = false
		r, _, err := c.Exchange(q, addr)
		if err != nil {
			t.Fatal(err)
		}
		ede := failureEDE(r)
		if r.Rcode != tc.rcode || r.RecursionDesired || (tc.ede != 0 && (ede == nil || ede.InfoCode != tc.ede)) {
			t.Errorf("%s with RD clear: %s, RD %v, EDE %v; want %s", tc.name, dns.RcodeToString[r.Rcode], r.RecursionDesired, ede, dns.RcodeToString[tc.rcode])
		}
	}
	if n := up.calls.Load(); n != 1 {
		t.Errorf("%d upstream exchanges, want only the one that filled the cache", n)
	}
}

// TestRejectsKeepQuestionAndOPT sends over UDP and TCP a query with an
// unknown opcode and one without a question, both with EDNS: NOTIMP and
// FORMERR come back with the question when there was one, an OPT, and no
// flag of the query but RD (RFC 6891 §7).
func TestRejectsKeepQuestionAndOPT(t *testing.T) {
	s := newTestServer(t, testPolicy, &fakeUpstream{exchange: answerFrom(t)})
	addr := serveOn(t, s, "127.0.0.1:0")
	status := query("www.example.com.", dns.TypeA, true)
	status.Opcode = dns.OpcodeStatus
	status.AuthenticatedData, status.CheckingDisabled = true, true
	empty := query("www.example.com.", dns.TypeA, true)
	empty.Question = nil
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		for _, tc := range []struct {
			q        *dns.Msg
			rcode    int
			question bool
		}{{status, dns.RcodeNotImplemented, true}, {empty, dns.RcodeFormatError, false}} {
			r, _, err := c.Exchange(tc.q, addr)
			if err != nil {
				t.Fatalf("%s: %v", network, err)
			}
			if r.Rcode != tc.rcode || r.IsEdns0() == nil || (len(r.Question) == 1) != tc.question ||
				r.Opcode != tc.q.Opcode || r.AuthenticatedData || r.CheckingDisabled || r.RecursionAvailable || !r.RecursionDesired {
				t.Errorf("%s %s: got\n%v", network, dns.RcodeToString[tc.rcode], r)
			}
		}
	}
}

// TestServeStale lets a cached answer expire while the upstream is down:
// with cache.serve_stale it is served with TTL 30 and EDE 3 until
// serve_stale has passed, then SERVFAIL; without it, SERVFAIL at once.
func TestServeStale(t *testing.T) {
	for _, stale := range []bool{true, false} {
		t.Run(fmt.Sprintf("serve_stale=%v", stale), func(t *testing.T) {
			src := testPolicy
			if stale {
				src += "cache: {serve_stale: 1h}\n"
			}
			p, err := policy.Parse("stale.yaml", []byte(src), policy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			var down bool
			up := &fakeUpstream{exchange: func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
				if down {
					return nil, fmt.Errorf("forward: %w", os.ErrDeadlineExceeded)
				}
				return answerFrom(t, "www.example.com. 300 IN A 192.0.2.1")(ctx, q)
			}}
			s, err := New(p, Config{Now: func() time.Time { return now }, NewUpstream: func([]string, time.Duration) upstream.Exchanger { return up }})
			if err != nil {
				t.Fatal(err)
			}
			ask := func() (*dns.Msg, *dns.EDNS0_EDE) {
				req := query("www.example.com.", dns.TypeA, true)
				res := s.Resolve(t.Context(), localhost, req)
				r := finish(req, res.Msg, res.EDE, true)
				return r, failureEDE(r)
			}
			ask()
			down = true
			now = now.Add(301 * time.Second)
			r, ede := ask()
			if stale {
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != staleTTL || ede == nil || ede.InfoCode != dns.ExtendedErrorCodeStaleAnswer {
					t.Errorf("expired, upstream down: %v, EDE %v; want the answer with TTL 30 and EDE 3", r, ede)
				}
			} else if r.Rcode != dns.RcodeServerFailure {
				t.Errorf("expired, upstream down, no serve_stale: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
			}
			now = now.Add(time.Hour)
			if r, _ := ask(); r.Rcode != dns.RcodeServerFailure {
				t.Errorf("past serve_stale: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
			}
		})
	}
}

// TestRateLimitOverUDP sends a client's queries faster than rate_limit
// allows: the first burst are answered, the rest get a bare truncated
// reply (TC, the question, no records), counted; a client in the exempt
// list is never limited; and a bucket refills with time.
func TestRateLimitOverUDP(t *testing.T) {
	up := &fakeUpstream{exchange: answerFrom(t, "www.example.com. 300 IN A 192.0.2.1")}
	obs := &rateCounter{}
	p, err := policy.Parse("rl.yaml", []byte(testPolicy+"rate_limit: {qps: 5, burst: 5, exempt: [127.0.0.2/32]}\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(p, Config{Observer: obs, NewUpstream: func([]string, time.Duration) upstream.Exchanger { return up }})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveOn(t, s, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)
	ask := func(from string) (answered, truncated int) {
		d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("udp", net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		co := &dns.Conn{Conn: c}
		for range 20 {
			q := query("www.example.com.", dns.TypeA, false)
			co.SetDeadline(time.Now().Add(2 * time.Second))
			if err := co.WriteMsg(q); err != nil {
				t.Fatal(err)
			}
			r, err := co.ReadMsg()
			if err != nil {
				t.Fatalf("from %s: %v", from, err)
			}
			switch {
			case r.Truncated && len(r.Answer) == 0 && len(r.Question) == 1 && r.Id == q.Id:
				truncated++
			case !r.Truncated && len(r.Answer) == 1:
				answered++
			default:
				t.Fatalf("from %s: reply %v", from, r)
			}
		}
		return answered, truncated
	}
	// The burst of five is answered, and one more for each fifth of a
	// second the twenty queries took.
	start := time.Now()
	a, tr := ask("127.0.0.1")
	most := 5 + int(time.Since(start)/(200*time.Millisecond)) + 1
	if a < 5 || a > most || a+tr != 20 {
		t.Errorf("limited client: %d answered, %d truncated; want 5 to %d answered", a, tr, most)
	}
	if n := obs.limited.Load(); n != int64(tr) {
		t.Errorf("%d rate-limited queries observed, want the %d truncated", n, tr)
	}
	if a, _ := ask("127.0.0.2"); a != 20 {
		t.Errorf("exempt client: %d of 20 answered", a)
	}
}

// TestRateLimiterRefills holds one client to its rate over a clock of the
// test's, and keeps another client apart.
func TestRateLimiterRefills(t *testing.T) {
	r := newRateLimiter(policy.RateLimitSettings{QPS: 10, Burst: 2})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	now := int64(1e9)
	for i, want := range []bool{true, true, false, false} {
		if got := r.allow(a, now); got != want {
			t.Fatalf("query %d at once: allowed %v, want %v", i, got, want)
		}
	}
	if !r.allow(b, now) {
		t.Error("another client was held by the first one's rate")
	}
	// Another address in the same IPv6 /56 shares its bucket.
	if !r.allow(netip.MustParseAddr("2001:db8::2"), now) || r.allow(netip.MustParseAddr("2001:db8:0:ff::9"), now) {
		t.Error("an IPv6 client's /56 is not one bucket")
	}
	now += 1e8 // a tenth of a second: one token at 10 a second
	if !r.allow(a, now) || r.allow(a, now) {
		t.Error("a tenth of a second did not refill exactly one token")
	}
}

// rateCounter is an Observer that counts rate-limited queries.
type rateCounter struct {
	nopObserver
	limited atomic.Int64
}

func (c *rateCounter) RateLimited() { c.limited.Add(1) }

// tcpCounter is an Observer that counts TCP connections refused.
type tcpCounter struct {
	nopObserver
	perClient, total atomic.Int64
}

func (c *tcpCounter) TCPRefused(perClient bool) {
	if perClient {
		c.perClient.Add(1)
	} else {
		c.total.Add(1)
	}
}

// TestTCPKeepalive asks over TCP with the edns-tcp-keepalive option: the
// reply gives the idle timeout (RFC 7828); over UDP it never does.
func TestTCPKeepalive(t *testing.T) {
	s := newTestServer(t, testPolicy, &fakeUpstream{exchange: answerFrom(t)})
	addr := serveOn(t, s, "127.0.0.1:0")
	for _, network := range []string{"tcp", "udp"} {
		q := query("army.ml.", dns.TypeMX, true)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_TCP_KEEPALIVE{Code: dns.EDNS0TCPKEEPALIVE})
		r, _, err := (&dns.Client{Net: network, Timeout: 2 * time.Second}).Exchange(q, addr)
		if err != nil {
			t.Fatal(err)
		}
		var timeout uint16
		found := false
		for _, o := range r.IsEdns0().Option {
			if k, ok := o.(*dns.EDNS0_TCP_KEEPALIVE); ok {
				found, timeout = true, k.Timeout
			}
		}
		if network == "tcp" && (!found || timeout != 100) {
			t.Errorf("over TCP: keepalive %v with timeout %d, want 100 (10 s)", found, timeout)
		}
		if network == "udp" && found {
			t.Error("over UDP: the reply carries edns-tcp-keepalive (RFC 7828 §3.2.1 forbids it)")
		}
	}
}

// TestTCPShortMessageCloses sends a length shorter than a DNS header:
// the connection is closed at once, not read on.
func TestTCPShortMessageCloses(t *testing.T) {
	s := newTestServer(t, testPolicy, &fakeUpstream{exchange: answerFrom(t)})
	addr := serveOn(t, s, "127.0.0.1:0")
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0, 0, 0, 3, 1, 2, 3})
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a zero-length message left the connection open (err %v)", err)
	}
}
