package resolver

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/cache"
)

// fastZone is what the fake upstream of the fast-path tests knows.
var fastZone = []string{
	"www.example.com. 300 IN A 198.51.100.1",
	"www.example.com. 300 IN AAAA 2001:db8::1",
	"alias.example.com. 120 IN CNAME www.example.com.",
	"example.com. 3600 IN MX 10 mx.example.com.",
	"to-ml.example.com. 300 IN CNAME mail.army.ml.",
	"mx-ml.example.com. 300 IN MX 10 mx.army.ml.",
	"watched-mx.example.com. 300 IN MX 10 mx.watched.example.",
}

// fullPath answers req the way the full UDP path does: unpacked, resolved,
// shaped and packed.
func fullPath(t *testing.T, s *Server, req *dns.Msg) *dns.Msg {
	t.Helper()
	res := s.Resolve(t.Context(), localhost, req)
	b, err := finish(req, res.Msg, res.EDE, true).Pack()
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return m
}

// fastPolicy has a rule for every action, and lookalike protection.
const fastPolicy = testPolicy + `  - {name: nodata, domains: [nodata.test], action: nodata}
  - {name: "null \"mx\"", domains: [nullmx.test], action: null-mx}
  - {name: refused, domains: [refused.test], action: refuse}
  - {name: sink, domains: [sink.test], action: sinkhole}
lookalikes: {protect: [army.mil]}
`

func TestFastPathMatchesFullPath(t *testing.T) {
	up := &fakeUpstream{exchange: answerFrom(t, fastZone...)}
	s := newTestServer(t, fastPolicy, up)
	clock := time.Now()
	s.now = func() time.Time { return clock }
	s.state.Load().cache = cache.New(cache.Config{Size: 1000, MaxTTL: time.Hour, MaxNegativeTTL: time.Hour}, s.now)

	type variant struct {
		name    string
		qname   string
		qtype   uint16
		edns    bool
		do, cd  bool
		fast    bool // the fast path answers it
		udpSize uint16
	}
	cases := []variant{
		{name: "A, EDNS", qname: "www.example.com.", qtype: dns.TypeA, edns: true, fast: true},
		{name: "A, no EDNS", qname: "www.example.com.", qtype: dns.TypeA, fast: true},
		{name: "mixed case", qname: "WwW.ExAmPlE.CoM.", qtype: dns.TypeA, edns: true, fast: true},
		{name: "AAAA, DO and CD", qname: "www.example.com.", qtype: dns.TypeAAAA, edns: true, do: true, cd: true, fast: true},
		{name: "CNAME chain", qname: "alias.example.com.", qtype: dns.TypeA, edns: true, fast: true},
		{name: "MX", qname: "example.com.", qtype: dns.TypeMX, edns: true, fast: true},
		{name: "no data", qname: "www.example.com.", qtype: dns.TypeTXT, edns: true, fast: false}, // no SOA: not cached
		{name: "CNAME into a blocked name", qname: "to-ml.example.com.", qtype: dns.TypeA, edns: true, fast: false},
		{name: "MX into a blocked name", qname: "mx-ml.example.com.", qtype: dns.TypeMX, edns: true, fast: false},
		{name: "MX into a monitored name", qname: "watched-mx.example.com.", qtype: dns.TypeMX, edns: true, fast: false},
		{name: "nxdomain", qname: "mail.Army.ML.", qtype: dns.TypeMX, edns: true, fast: true},
		{name: "nxdomain, no EDNS", qname: "army.ml.", qtype: dns.TypeA, fast: true},
		{name: "nxdomain, DO", qname: "army.ml.", qtype: dns.TypeAAAA, edns: true, do: true, cd: true, fast: true},
		{name: "nodata", qname: "x.nodata.test.", qtype: dns.TypeTXT, edns: true, fast: true},
		{name: "null MX", qname: "nullmx.test.", qtype: dns.TypeMX, edns: true, fast: true},
		{name: "null MX, A", qname: "www.nullmx.test.", qtype: dns.TypeA, edns: true, fast: true},
		{name: "refuse", qname: "refused.test.", qtype: dns.TypeA, edns: true, fast: true},
		{name: "lookalike", qname: "mx.ARNY.mil.", qtype: dns.TypeMX, edns: true, fast: true},
		{name: "lookalike, lower case", qname: "mx.arny.mil.", qtype: dns.TypeA, edns: true, fast: true},
		{name: "sinkhole", qname: "sink.test.", qtype: dns.TypeMX, edns: true, fast: false},
		{name: "monitor", qname: "watched.example.", qtype: dns.TypeA, edns: true, fast: false},
		{name: "allow exception", qname: "partner.ml.", qtype: dns.TypeA, edns: true, fast: false}, // not cached yet
		{name: "escaped name", qname: `a\.b.example.com.`, qtype: dns.TypeA, fast: false},
	}
	buf := make([]byte, 0, maxUDPReply)
	q := wireQuery{name: make([]byte, 0, 256)}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := new(dns.Msg)
			req.SetQuestion(tc.qname, tc.qtype)
			req.CheckingDisabled = tc.cd
			if tc.edns {
				req.SetEdns0(4096, tc.do)
			}
			fullPath(t, s, req) // warm the cache
			clock = clock.Add(7 * time.Second)
			want := fullPath(t, s, req)
			pkt, err := req.Pack()
			if err != nil {
				t.Fatal(err)
			}
			out, ok := s.fastAnswer(s.state.Load(), localhost, pkt, buf, &q)
			if ok != tc.fast {
				t.Fatalf("fast path answered: %v, want %v", ok, tc.fast)
			}
			if !ok {
				return
			}
			got := new(dns.Msg)
			if err := got.Unpack(out); err != nil {
				t.Fatalf("fast reply does not unpack: %v", err)
			}
			// Names the cached reply compresses against the question take
			// the client's spelling of it, as in Unbound's replies; case
			// aside, the two must be the same.
			same := got.String() == want.String()
			if tc.qname != strings.ToLower(tc.qname) {
				same = strings.EqualFold(got.String(), want.String())
			}
			if !same {
				t.Errorf("fast path:\n%s\nfull path:\n%s", got, want)
			}
			if got.Question[0].Name != tc.qname {
				t.Errorf("question %q, want the client's spelling %q", got.Question[0].Name, tc.qname)
			}
		})
	}
}

// TestWireCacheHammer sends many queries at once over real UDP from many
// goroutines, names in random case and random IDs, and checks every reply's
// ID, question and TTL.
func TestWireCacheHammer(t *testing.T) {
	var zone []string
	for i := range 50 {
		zone = append(zone, fmt.Sprintf("host%d.example.com. 300 IN A 198.51.100.%d", i, i))
	}
	up := &fakeUpstream{exchange: answerFrom(t, zone...)}
	s := newTestServer(t, testPolicy, up)
	addr := serveOn(t, s, "127.0.0.1:0")

	const workers, each = 8, 400
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- hammer(addr, w, each)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// hammer sends n queries from one socket and checks each reply.
func hammer(addr string, seed, n int) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	rnd := rand.New(rand.NewPCG(uint64(seed), 1))
	buf := make([]byte, 2048)
	for range n {
		i := rnd.IntN(50)
		name := []byte(fmt.Sprintf("host%d.example.com.", i))
		for j := range name {
			if rnd.IntN(2) == 0 {
				name[j] = strings.ToUpper(string(name[j]))[0]
			}
		}
		req := new(dns.Msg)
		req.SetQuestion(string(name), dns.TypeA)
		req.Id = uint16(rnd.Uint32())
		if rnd.IntN(2) == 0 {
			req.SetEdns0(1232, false)
		}
		b, _ := req.Pack()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(b); err != nil {
			return err
		}
		nr, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:nr]); err != nil {
			return fmt.Errorf("%s: reply does not unpack: %v", name, err)
		}
		switch {
		case m.Id != req.Id:
			return fmt.Errorf("%s: reply ID %d, want %d", name, m.Id, req.Id)
		case len(m.Question) != 1 || m.Question[0].Name != string(name) || m.Question[0].Qtype != dns.TypeA:
			return fmt.Errorf("%s: reply question %v", name, m.Question)
		case len(m.Answer) != 1:
			return fmt.Errorf("%s: answer %v", name, m.Answer)
		case m.Answer[0].Header().Ttl == 0 || m.Answer[0].Header().Ttl > 300:
			return fmt.Errorf("%s: TTL %d", name, m.Answer[0].Header().Ttl)
		case m.Answer[0].(*dns.A).A.String() != fmt.Sprintf("198.51.100.%d", i):
			return fmt.Errorf("%s: answer %v", name, m.Answer[0])
		case (req.IsEdns0() != nil) != (m.IsEdns0() != nil):
			return fmt.Errorf("%s: OPT in the query %v, in the reply %v", name, req.IsEdns0() != nil, m.IsEdns0() != nil)
		}
	}
	return nil
}

// serveOn serves s on one UDP and TCP address until the test ends and
// returns the UDP address.
func serveOn(t *testing.T, s *Server, addr string) string {
	t.Helper()
	bound, err := s.Listen([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return bound[0].Addr.String()
}

// TestWildcardRepliesFromQueriedAddress listens on 0.0.0.0 and asks at
// 127.0.0.2: the reply must come from 127.0.0.2, or a client's connected
// socket (and dig) would not take it.
func TestWildcardRepliesFromQueriedAddress(t *testing.T) {
	for _, tc := range []struct{ listen, to []string }{
		{[]string{"0.0.0.0:0"}, []string{"127.0.0.2", "127.0.0.3"}},
		{[]string{"[::]:0"}, []string{"::1"}},
		{[]string{":0"}, []string{"127.0.0.2", "::1"}}, // both families
	} {
		t.Run(tc.listen[0], func(t *testing.T) {
			if strings.Contains(strings.Join(tc.to, " "), ":") {
				if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					c.Close()
				}
			}
			askEach(t, tc.listen[0], tc.to)
		})
	}
}

// askEach serves on listen and asks at each address in to, on a connected
// socket that takes replies from that address only.
func askEach(t *testing.T, listen string, tos []string) {
	up := &fakeUpstream{exchange: answerFrom(t, fastZone...)}
	s := newTestServer(t, testPolicy, up)
	addr := serveOn(t, s, listen)
	_, port, _ := net.SplitHostPort(addr)
	for _, to := range tos {
		for _, name := range []string{"mail.army.ml.", "www.example.com.", "www.example.com."} {
			c, err := net.Dial("udp", net.JoinHostPort(to, port))
			if err != nil {
				t.Fatal(err)
			}
			req := new(dns.Msg)
			req.SetQuestion(name, dns.TypeA)
			b, _ := req.Pack()
			c.Write(b)
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 1500)
			n, err := c.Read(buf) // a connected socket takes replies from to only
			c.Close()
			if err != nil {
				t.Fatalf("%s at %s: no reply from that address: %v", name, to, err)
			}
			m := new(dns.Msg)
			if err := m.Unpack(buf[:n]); err != nil || m.Id != req.Id {
				t.Fatalf("%s at %s: bad reply %v %v", name, to, m, err)
			}
		}
	}
}

// BenchmarkFastHit is a cache hit answered by the fast path, from the
// query's bytes to the reply's.
func BenchmarkFastHit(b *testing.B) {
	up := &fakeUpstream{exchange: answerFrom(b, fastZone...)}
	s := newTestServer(b, testPolicy, up)
	req := query("www.example.com.", dns.TypeA, true)
	s.Resolve(b.Context(), localhost, req)
	pkt, _ := req.Pack()
	benchFast(b, s, pkt)
}

// benchFast answers pkt by the fast path b.N times.
func benchFast(b *testing.B, s *Server, pkt []byte) {
	buf := make([]byte, 0, maxUDPReply)
	q := wireQuery{name: make([]byte, 0, 256), spelled: make([]byte, 0, 256)}
	snap := s.state.Load()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.fastAnswer(snap, localhost, pkt, buf, &q); !ok {
			b.Fatal("not answered by the fast path")
		}
	}
}

// BenchmarkFastHitParallel runs the fast path on every GOMAXPROCS at once,
// over 64 cached names: with nothing shared but the cache's shards, the
// time per answer per core should stay near flat as -cpu grows.
func BenchmarkFastHitParallel(b *testing.B) {
	var zone []string
	var pkts [][]byte
	for i := range 64 {
		name := fmt.Sprintf("host%d.example.com.", i)
		zone = append(zone, name+" 300 IN A 198.51.100.1")
		pkt, _ := query(name, dns.TypeA, true).Pack()
		pkts = append(pkts, pkt)
	}
	up := &fakeUpstream{exchange: answerFrom(b, zone...)}
	s := newTestServer(b, testPolicy, up)
	for i := range 64 {
		s.Resolve(b.Context(), localhost, query(fmt.Sprintf("host%d.example.com.", i), dns.TypeA, true))
	}
	snap := s.state.Load()
	var lanes atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, maxUDPReply)
		// Each goroutine is a serving loop, with its own lane.
		q := laneQuery(&lanes)
		i := rand.IntN(64)
		for pb.Next() {
			i = (i + 1) % 64
			if _, ok := s.fastAnswer(snap, localhost, pkts[i], buf, q); !ok {
				b.Fatal("not answered by the fast path")
			}
		}
	})
}

// BenchmarkFastBlocked is a blocked name answered by the fast path, with
// the audit line off and on. On, the line is handed to an Auditor that
// keeps nothing: the resolver's side of it; typoguard's own formatting and
// writing of the line is cmd/typoguard's BenchmarkAuditLine/auditor.
func BenchmarkFastBlocked(b *testing.B) {
	for _, audit := range []bool{false, true} {
		b.Run(fmt.Sprintf("audit=%v", audit), func(b *testing.B) {
			up := &fakeUpstream{exchange: answerFrom(b, fastZone...)}
			s := newTestServer(b, fastPolicy, up)
			if audit {
				s.auditor = &lineCounter{}
			}
			// x.nodata.test is blocked by a rule; the other two by lookalike
			// protection, whose confirmation of a candidate costs one allocation
			// inside x/net/publicsuffix (the error of its IP-address check).
			for _, name := range []string{"x.nodata.test.", "mail.army.ml.", "mx.arny.mil."} {
				b.Run(name, func(b *testing.B) {
					pkt, _ := query(name, dns.TypeMX, true).Pack()
					benchFast(b, s, pkt)
				})
			}
		})
	}
}

// lineCounter is an Auditor that counts the lines it is given.
type lineCounter struct{ n int }

func (c *lineCounter) Enabled() bool   { return true }
func (c *lineCounter) Audit(AuditLine) { c.n++ }

// BenchmarkFastBlockedParallel answers a name a rule blocks on every
// GOMAXPROCS at once, each goroutine on a lane of its own, as the serving
// loops do; audit lines go to an auditor that keeps nothing.
func BenchmarkFastBlockedParallel(b *testing.B) {
	s := newTestServer(b, fastPolicy, &fakeUpstream{exchange: answerFrom(b, fastZone...)})
	s.auditor = &discardAuditor{}
	pkt, _ := query("x.nodata.test.", dns.TypeMX, true).Pack()
	snap := s.state.Load()
	var lanes atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, maxUDPReply)
		q := laneQuery(&lanes)
		for pb.Next() {
			if _, ok := s.fastAnswer(snap, localhost, pkt, buf, q); !ok {
				b.Fatal("not answered by the fast path")
			}
		}
	})
}

// discardAuditor is an Auditor that keeps nothing and shares nothing.
type discardAuditor struct{}

func (*discardAuditor) Enabled() bool   { return true }
func (*discardAuditor) Audit(AuditLine) {}

// TestFastPathMemoEndsWithPolicy hits a cached name no rule touches until
// the hit is marked so, then reloads a policy that blocks it: the next hit
// is blocked, not served from the mark.
func TestFastPathMemoEndsWithPolicy(t *testing.T) {
	up := &fakeUpstream{exchange: answerFrom(t, fastZone...)}
	s := newTestServer(t, testPolicy, up)
	req := query("www.example.com.", dns.TypeA, true)
	s.Resolve(t.Context(), localhost, req)
	pkt, _ := req.Pack()
	buf := make([]byte, 0, maxUDPReply)
	q := wireQuery{name: make([]byte, 0, 256), spelled: make([]byte, 0, 256)}
	for range 2 {
		if _, ok := s.fastAnswer(s.state.Load(), localhost, pkt, buf, &q); !ok {
			t.Fatal("a plain hit not answered by the fast path")
		}
	}
	p, err := policy.Parse("v.yaml", []byte(testPolicy+"  - {name: now-blocked, domains: [www.example.com], action: nxdomain}\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(p); err != nil {
		t.Fatal(err)
	}
	out, ok := s.fastAnswer(s.state.Load(), localhost, pkt, buf, &q)
	m := new(dns.Msg)
	if !ok || m.Unpack(out) != nil || m.Rcode != dns.RcodeNameError {
		t.Fatalf("after the reload: answered %v, %v; want NXDOMAIN", ok, m)
	}
}

// laneQuery is a parallel benchmark goroutine's query buffer, on the next
// lane, as a serving loop's is; padded so that no two goroutines write one
// cache line.
func laneQuery(lanes *atomic.Int64) *wireQuery {
	l := &struct {
		_ [64]byte
		q wireQuery
		_ [64]byte
	}{q: wireQuery{name: make([]byte, 0, 256), spelled: make([]byte, 0, 256), lane: int(lanes.Add(1)-1) % cache.Lanes}}
	return &l.q
}

// lineKeeper is an Auditor that keeps every line it is given.
type lineKeeper struct{ lines []AuditLine }

func (k *lineKeeper) Enabled() bool     { return true }
func (k *lineKeeper) Audit(l AuditLine) { k.lines = append(k.lines, l) }

// A blocked query's audit line carries the time its batch was read, and a
// query no loop read leaves the time to the Auditor.
func TestFastBlockedAuditTime(t *testing.T) {
	s := newTestServer(t, fastPolicy, &fakeUpstream{exchange: answerFrom(t, fastZone...)})
	k := &lineKeeper{}
	s.auditor = k
	pkt, _ := query("x.nodata.test.", dns.TypeMX, false).Pack()
	buf := make([]byte, 0, maxUDPReply)
	q := wireQuery{name: make([]byte, 0, 256), spelled: make([]byte, 0, 256)}
	read := time.Date(2026, 12, 2, 15, 4, 5, 123456789, time.UTC)
	for _, now := range []int64{read.UnixNano(), 0} {
		q.now = now
		if _, ok := s.fastAnswer(s.state.Load(), localhost, pkt, buf, &q); !ok {
			t.Fatal("not answered by the fast path")
		}
	}
	if len(k.lines) != 2 {
		t.Fatalf("%d audit lines, want 2", len(k.lines))
	}
	if got := k.lines[0].Time; !got.Equal(read) {
		t.Errorf("line of a query read at %s has time %s", read, got)
	}
	if got := k.lines[1].Time; !got.IsZero() {
		t.Errorf("line of a query with no read time has time %s, want none", got)
	}
}

// BenchmarkMiss is a query for a name never asked before, as the UDP loop
// and a miss worker answer it: the fast path declines it, the full path
// forwards it, caches the reply and packs the answer. The upstream is an
// in-process fake, so what is measured is typoguard's own work.
func BenchmarkMiss(b *testing.B) {
	up := &fakeUpstream{exchange: func(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.RecursionAvailable = true
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(198, 51, 100, 1)}}
		return m, nil
	}}
	s := newTestServer(b, testPolicy, up)
	s.state.Load().cache = cache.New(cache.Config{Size: 100000, MaxTTL: time.Hour, MaxNegativeTTL: time.Hour}, s.now)
	pkt, _ := query("h00000000.example.com.", dns.TypeA, true).Pack()
	digits := bytes.Index(pkt, []byte("00000000"))
	buf, out := make([]byte, 0, maxUDPReply), make([]byte, 0, maxUDPReply)
	q := wireQuery{name: make([]byte, 0, 256), spelled: make([]byte, 0, 256)}
	snap := s.state.Load()
	b.ReportAllocs()
	var n uint32
	for b.Loop() {
		n++
		for i := range 8 {
			pkt[digits+i] = "0123456789abcdef"[n>>(28-4*i)&0xF]
		}
		if _, ok := s.fastAnswer(snap, localhost, pkt, buf, &q); ok {
			b.Fatal("a miss answered by the fast path")
		}
		_, p := s.answerUDP(localhost, pkt, buf)
		if p == nil {
			b.Fatal("not forwarded")
		}
		if packInto(s.answerUpstream(localhost, p), out, s) == nil {
			b.Fatal("not packed")
		}
	}
}
