package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/resolvertest"
	"github.com/typoguard/typoguard/resolver/upstream"
)

// fakeUpstream is an upstream.Exchanger whose behaviour a test sets.
type fakeUpstream struct {
	exchange func(ctx context.Context, q *dns.Msg) (*dns.Msg, error)
	calls    atomic.Int64
}

func (f *fakeUpstream) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	f.calls.Add(1)
	return f.exchange(ctx, q)
}

// answerFrom returns an exchange func that answers from zone-text records.
func answerFrom(t testing.TB, records ...string) func(context.Context, *dns.Msg) (*dns.Msg, error) {
	var rrs []dns.RR
	for _, r := range records {
		rrs = append(rrs, resolvertest.RR(t, r))
	}
	return func(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.RecursionAvailable = true
		for _, rr := range rrs {
			if strings.EqualFold(rr.Header().Name, q.Question[0].Name) && (rr.Header().Rrtype == q.Question[0].Qtype || rr.Header().Rrtype == dns.TypeCNAME || rr.Header().Rrtype == dns.TypeDNAME) {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
		return m, nil
	}
}

// fakeWriter is a dns.ResponseWriter that keeps what is written.
type fakeWriter struct {
	remote net.Addr
	mu     sync.Mutex
	msgs   []*dns.Msg
}

func (w *fakeWriter) LocalAddr() net.Addr  { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *fakeWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fakeWriter) WriteMsg(m *dns.Msg) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, m)
	return nil
}
func (w *fakeWriter) Write([]byte) (int, error) { return 0, errors.New("not used") }
func (w *fakeWriter) Close() error              { return nil }
func (w *fakeWriter) TsigStatus() error         { return nil }
func (w *fakeWriter) TsigTimersOnly(bool)       {}
func (w *fakeWriter) Hijack()                   {}

func (w *fakeWriter) last() *dns.Msg {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.msgs[len(w.msgs)-1]
}

const testPolicy = `
upstreams: ["127.0.0.1:1"]
acl: {allow: [127.0.0.0/8, "::1/128"]}
client_groups: {mta: [127.0.0.25/32]}
answers: {ttl: 1m, sinkhole_ipv4: 192.0.2.25}
rules:
  - name: ml
    domains: [ml]
    types: [MX, A, AAAA, ANY]
    action: nxdomain
  - name: partner
    domains: [partner.ml]
    action: allow
  - name: mta-only
    domains: [mta-only.test]
    clients: [mta]
    action: refuse
  - name: watch
    domains: [watched.example]
    action: nxdomain
    mode: monitor
`

func newTestServer(t testing.TB, src string, up *fakeUpstream) *Server {
	t.Helper()
	p, err := policy.Parse("test.yaml", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(p, Config{NewUpstream: func([]string, time.Duration) upstream.Exchanger { return up }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func query(name string, qtype uint16, edns bool) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	if edns {
		q.SetEdns0(4096, false)
	}
	return q
}

var localhost = netip.MustParseAddr("127.0.0.1")

func TestResolve(t *testing.T) {
	up := &fakeUpstream{}
	up.exchange = answerFrom(t,
		"partner.ml. 300 IN MX 10 mx.partner.ml.",
		"www.example.com. 300 IN A 198.51.100.1",
		"watched.example. 300 IN A 198.51.100.2",
		"alias.example.com. 300 IN CNAME x.army.ml.",
		"trap.example.com. 300 IN MX 10 mx.evil.ml.",
		"deep.example.com. 300 IN DNAME army.ml.",
	)
	s := newTestServer(t, testPolicy, up)
	tests := []struct {
		name   string
		client string
		qname  string
		qtype  uint16
		rcode  int
		reason Reason
		rule   string
	}{
		{"blocked", "127.0.0.1", "army.ml.", dns.TypeMX, dns.RcodeNameError, ReasonBlocked, "ml"},
		{"exception forwarded", "127.0.0.1", "partner.ml.", dns.TypeMX, dns.RcodeSuccess, ReasonResolved, "partner"},
		{"ordinary forwarded", "127.0.0.1", "www.example.com.", dns.TypeA, dns.RcodeSuccess, ReasonResolved, ""},
		{"then cached", "127.0.0.1", "WWW.example.com.", dns.TypeA, dns.RcodeSuccess, ReasonCached, ""},
		{"client group applies", "127.0.0.25", "x.mta-only.test.", dns.TypeA, dns.RcodeRefused, ReasonBlocked, "mta-only"},
		{"outside acl", "192.0.2.1", "www.example.com.", dns.TypeA, dns.RcodeRefused, ReasonRefused, ""},
		{"monitor forwards", "127.0.0.1", "watched.example.", dns.TypeA, dns.RcodeSuccess, ReasonResolved, "watch"},
		{"cname into ml", "127.0.0.1", "alias.example.com.", dns.TypeA, dns.RcodeNameError, ReasonBlocked, "ml"},
		{"mx exchange under ml", "127.0.0.1", "trap.example.com.", dns.TypeMX, dns.RcodeNameError, ReasonBlocked, "ml"},
		{"dname into ml", "127.0.0.1", "deep.example.com.", dns.TypeA, dns.RcodeNameError, ReasonBlocked, "ml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := s.Resolve(context.Background(), netip.MustParseAddr(tc.client), query(tc.qname, tc.qtype, true))
			rule := ""
			if res.Decision.Rule != nil {
				rule = res.Decision.Rule.Name
			}
			if res.Msg.Rcode != tc.rcode || res.Reason != tc.reason || rule != tc.rule {
				t.Errorf("rcode %s reason %s rule %q; want %s %s %q\n%s", dns.RcodeToString[res.Msg.Rcode], res.Reason, rule,
					dns.RcodeToString[tc.rcode], tc.reason, tc.rule, res.Msg)
			}
		})
	}
}

func TestBlockedAnswerNeverNeedsUpstream(t *testing.T) {
	up := &fakeUpstream{exchange: func(context.Context, *dns.Msg) (*dns.Msg, error) { return nil, errors.New("down") }}
	s := newTestServer(t, testPolicy, up)
	res := s.Resolve(context.Background(), localhost, query("army.ml.", dns.TypeMX, true))
	if res.Msg.Rcode != dns.RcodeNameError || up.calls.Load() != 0 {
		t.Fatalf("rcode %s, upstream calls %d", dns.RcodeToString[res.Msg.Rcode], up.calls.Load())
	}
	soa, ok := res.Msg.Ns[0].(*dns.SOA)
	if !ok || soa.Hdr.Name != "ml." || soa.Hdr.Ttl != 60 || soa.Minttl != 60 {
		t.Errorf("authority %v, want SOA of ml. with TTL and MINIMUM 60", res.Msg.Ns)
	}
	ede := res.EDE
	if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeBlocked || !strings.Contains(ede.ExtraText, `"ml"`) {
		t.Errorf("EDE %+v", ede)
	}
	res = s.Resolve(context.Background(), localhost, query("www.example.com.", dns.TypeA, true))
	if res.Msg.Rcode != dns.RcodeServerFailure {
		t.Errorf("upstream down: %s, want SERVFAIL", dns.RcodeToString[res.Msg.Rcode])
	}
}

func TestIdenticalMissesShareOneExchange(t *testing.T) {
	release := make(chan struct{})
	up := &fakeUpstream{}
	answer := answerFrom(t, "www.example.com. 300 IN A 198.51.100.1")
	up.exchange = func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		<-release
		return answer(ctx, q)
	}
	s := newTestServer(t, strings.Replace(testPolicy, "rules:", "cache: {size: 0}\nrules:", 1), up)
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := s.Resolve(context.Background(), localhost, query("www.example.com.", dns.TypeA, false))
			if len(res.Msg.Answer) != 1 {
				t.Errorf("answer %v", res.Msg.Answer)
			}
		}()
	}
	// Without sharing, every one of the n queries reaches the upstream
	// while the first is held; give them the chance to.
	deadline := time.Now().Add(300 * time.Millisecond)
	for up.calls.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := up.calls.Load(); got != 1 {
		t.Errorf("%d upstream exchanges for %d identical misses, want 1", got, n)
	}
}

func TestServeDNSPanicAnswersServfail(t *testing.T) {
	up := &fakeUpstream{exchange: func(context.Context, *dns.Msg) (*dns.Msg, error) { panic("boom") }}
	s := newTestServer(t, testPolicy, up)
	obs := &panicCounter{}
	s.obs = obs
	w := &fakeWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}}
	s.ServeDNS(w, query("www.example.com.", dns.TypeA, false))
	if got := w.last(); got.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", dns.RcodeToString[got.Rcode])
	}
	if n := obs.panics.Load(); n != 1 {
		t.Errorf("observed %d panics, want 1", n)
	}
	// The server lives on.
	s.ServeDNS(w, query("army.ml.", dns.TypeMX, false))
	if got := w.last(); got.Rcode != dns.RcodeNameError {
		t.Errorf("after the panic: %s", dns.RcodeToString[got.Rcode])
	}
}

func TestFinishShapesReply(t *testing.T) {
	req := query("ArMy.Ml.", dns.TypeMX, false)
	req.Id = 4242
	req.CheckingDisabled = true
	m := new(dns.Msg)
	m.SetQuestion("army.ml.", dns.TypeMX)
	m.Authoritative = true
	for i := 0; i < 60; i++ {
		m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr("army.ml.", dns.TypeTXT, 60), Txt: []string{strings.Repeat("x", 50)}})
	}
	m.SetEdns0(4096, true) // an upstream OPT must not reach the client
	got := finish(req, m, nil, true)
	if got.Id != 4242 || got.Question[0].Name != "ArMy.Ml." || got.Authoritative || !got.RecursionAvailable || !got.CheckingDisabled || !got.RecursionDesired {
		t.Errorf("header/question not shaped: %+v", got.MsgHdr)
	}
	if !got.Truncated || got.IsEdns0() != nil {
		t.Errorf("truncated %v, OPT %v; want TC and no OPT for a client without EDNS", got.Truncated, got.IsEdns0())
	}
	if packed, _ := got.Pack(); len(packed) > 512 {
		t.Errorf("reply of %d bytes to a 512-byte client", len(packed))
	}

	req = query("army.ml.", dns.TypeMX, true)
	req.IsEdns0().SetDo(true)
	got = finish(req, &dns.Msg{Answer: []dns.RR{}}, nil, false)
	if opt := got.IsEdns0(); opt == nil || opt.UDPSize() != ednsSize || !opt.Do() {
		t.Errorf("EDNS client: OPT %v, want udp %d with DO", opt, ednsSize)
	}
}

func TestBadEDNSVersion(t *testing.T) {
	s := newTestServer(t, testPolicy, &fakeUpstream{exchange: answerFrom(t)})
	q := query("www.example.com.", dns.TypeA, true)
	q.IsEdns0().SetVersion(1)
	res := s.Resolve(context.Background(), localhost, q)
	if res.Msg.Rcode != dns.RcodeBadVers {
		t.Errorf("rcode %d, want BADVERS", res.Msg.Rcode)
	}
}

func TestReloadAppliesAtOnce(t *testing.T) {
	up := &fakeUpstream{exchange: answerFrom(t, "www.example.com. 300 IN A 198.51.100.1")}
	s := newTestServer(t, testPolicy, up)
	if res := s.Resolve(context.Background(), localhost, query("www.example.com.", dns.TypeA, false)); res.Reason != ReasonResolved {
		t.Fatalf("before reload: %s", res.Reason)
	}
	p, err := policy.Parse("new.yaml", []byte(testPolicy+"  - {name: new, domains: [example.com], action: nxdomain}\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(p); err != nil {
		t.Fatal(err)
	}
	// The cached answer is not served: the policy applies to every answer.
	if res := s.Resolve(context.Background(), localhost, query("www.example.com.", dns.TypeA, false)); res.Reason != ReasonBlocked {
		t.Errorf("after reload: %s, want blocked", res.Reason)
	}
}

func TestTypeCodesMatchMiekg(t *testing.T) {
	for name, code := range policy.TypeCodes() {
		if want, ok := dns.StringToType[name]; ok && want != code {
			t.Errorf("%s: policy says %d, miekg/dns %d", name, code, want)
		}
	}
	for _, name := range []string{"A", "AAAA", "MX", "ANY", "SRV", "CNAME", "TXT", "HTTPS", "CAA"} {
		if _, ok := policy.TypeCodes()[name]; !ok {
			t.Errorf("policy lacks %s", name)
		}
	}
}

// BenchmarkServeDNS measures the whole in-process query path, without
// sockets, for a blocked name and for a cache hit.
func BenchmarkServeDNS(b *testing.B) {
	up := &fakeUpstream{exchange: answerFrom(b, "www.example.com. 300 IN A 198.51.100.1")}
	s := newTestServer(b, testPolicy, up)
	w := &discardWriter{fakeWriter{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}}}
	for _, bc := range []struct {
		name string
		q    *dns.Msg
	}{
		{"blocked", query("mail.army.ml.", dns.TypeMX, true)},
		{"cache-hit", query("www.example.com.", dns.TypeA, true)},
	} {
		s.ServeDNS(w, bc.q) // warm the cache
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, bc.q)
			}
		})
	}
}

// discardWriter is a ResponseWriter that packs the reply, as the real one
// does, and drops it.
type discardWriter struct{ fakeWriter }

func (w *discardWriter) RemoteAddr() net.Addr { return w.remote }
func (w *discardWriter) WriteMsg(m *dns.Msg) error {
	_, err := m.Pack()
	return err
}

var _ upstream.Exchanger = (*fakeUpstream)(nil)

func TestForwardRuleKeepsItsOwnCache(t *testing.T) {
	src := `
upstreams: ["127.0.0.1:1"]
client_groups: {inside: [127.0.0.25/32]}
rules:
  - {name: corp, domains: [corp.example], clients: [inside], action: forward, servers: ["127.0.0.1:2"]}
`
	p, err := policy.Parse("f.yaml", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	public := &fakeUpstream{exchange: answerFrom(t, "www.corp.example. 300 IN A 198.51.100.1")}
	corp := &fakeUpstream{exchange: answerFrom(t, "www.corp.example. 300 IN A 10.1.1.1")}
	s, err := New(p, Config{NewUpstream: func(addrs []string, _ time.Duration) upstream.Exchanger {
		if addrs[0] == "127.0.0.1:2" {
			return corp
		}
		return public
	}})
	if err != nil {
		t.Fatal(err)
	}
	inside, outside := netip.MustParseAddr("127.0.0.25"), netip.MustParseAddr("127.0.0.1")
	for range 2 { // the second round comes from the cache
		for _, c := range []struct {
			client netip.Addr
			want   string
		}{{inside, "10.1.1.1"}, {outside, "198.51.100.1"}} {
			res := s.Resolve(context.Background(), c.client, query("www.corp.example.", dns.TypeA, false))
			if len(res.Msg.Answer) != 1 || res.Msg.Answer[0].(*dns.A).A.String() != c.want {
				t.Errorf("from %s: %v, want %s", c.client, res.Msg.Answer, c.want)
			}
		}
	}
	if public.calls.Load() != 1 || corp.calls.Load() != 1 {
		t.Errorf("upstream calls: public %d, corp %d; want 1 each", public.calls.Load(), corp.calls.Load())
	}
}

// panicCounter is an Observer that counts panics only.
type panicCounter struct {
	nopObserver
	panics atomic.Int64
}

func (c *panicCounter) Panic() { c.panics.Add(1) }
