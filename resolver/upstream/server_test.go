package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/resolver/resolvertest"
	"github.com/typoguard/typoguard/resolver/upstream"
)

// testTimeout bounds exchanges expected to succeed; the servers are on
// loopback, so hitting it means a bug.
const testTimeout = 5 * time.Second

func query(name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	return q
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	wire, err := m.Pack()
	if err != nil {
		t.Fatalf("pack %v: %v", m, err)
	}
	return wire
}

func TestServerExchange(t *testing.T) {
	addr := resolvertest.NewServer(t, resolvertest.NewZone(t, "army.mil. 300 IN MX 10 mail.army.mil."))
	s := upstream.NewServer(addr)
	q := query("army.mil.", dns.TypeMX)
	before := pack(t, q)

	r, err := s.Exchange(testContext(t), q)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if r.Id != q.Id {
		t.Errorf("reply id = %d, want the query's %d", r.Id, q.Id)
	}
	if len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeMX {
		t.Errorf("answer:\n%s\nwant one MX", resolvertest.Records(r.Answer))
	}
	if opt := r.IsEdns0(); opt == nil || !opt.Do() {
		t.Errorf("reply OPT = %v, want the DO bit echoed", opt)
	}
	if after := pack(t, q); !bytes.Equal(before, after) {
		t.Errorf("query changed by Exchange:\n%v", q)
	}
	if s.Address() != addr {
		t.Errorf("Address() = %q, want %q", s.Address(), addr)
	}
}

func TestServerRetriesTruncatedOverTCP(t *testing.T) {
	zone := resolvertest.NewZone(t)
	const records = 40
	for i := range records {
		zone.Add(resolvertest.RR(t, fmt.Sprintf(`big.test. 300 IN TXT "a record long enough to overflow 1232 bytes: %d"`, i)))
	}
	var (
		mu       sync.Mutex
		networks []string
	)
	addr := resolvertest.NewServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		mu.Lock()
		networks = append(networks, w.RemoteAddr().Network())
		mu.Unlock()
		zone.ServeDNS(w, q)
	}))

	r, err := upstream.NewServer(addr).Exchange(testContext(t), query("big.test.", dns.TypeTXT))
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if r.Truncated || len(r.Answer) != records {
		t.Errorf("reply TC=%v with %d answers, want the full %d", r.Truncated, len(r.Answer), records)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(networks, " "); got != "udp tcp" {
		t.Errorf("queries arrived over %q, want \"udp tcp\"", got)
	}
}

func TestServerDropsMismatchedReplies(t *testing.T) {
	const (
		goodIP = "192.0.2.1"
		badIP  = "192.0.2.66"
	)
	// reply answers q with ip; edit changes it into the bogus variant.
	reply := func(t *testing.T, q *dns.Msg, ip string, edit func(*dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = []dns.RR{resolvertest.RR(t, q.Question[0].Name+" 300 IN A "+ip)}
		if edit != nil {
			edit(m)
		}
		return pack(t, m)
	}
	tests := []struct {
		name  string
		bogus func(t *testing.T, q *dns.Msg) []byte
	}{
		{name: "wrong id", bogus: func(t *testing.T, q *dns.Msg) []byte {
			return reply(t, q, badIP, func(m *dns.Msg) { m.Id = q.Id + 1 })
		}},
		{name: "wrong name", bogus: func(t *testing.T, q *dns.Msg) []byte {
			return reply(t, q, badIP, func(m *dns.Msg) { m.Question[0].Name = "army.ml." })
		}},
		{name: "wrong type", bogus: func(t *testing.T, q *dns.Msg) []byte {
			return reply(t, q, badIP, func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA })
		}},
		{name: "wrong class", bogus: func(t *testing.T, q *dns.Msg) []byte {
			return reply(t, q, badIP, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS })
		}},
		{name: "no question", bogus: func(t *testing.T, q *dns.Msg) []byte {
			return reply(t, q, badIP, func(m *dns.Msg) { m.Question = nil })
		}},
		{name: "query echoed back", bogus: func(t *testing.T, q *dns.Msg) []byte {
			return reply(t, q, badIP, func(m *dns.Msg) { m.Response = false })
		}},
		{name: "garbage", bogus: func(t *testing.T, q *dns.Msg) []byte {
			return []byte("\x00\x01 this is not a DNS message")
		}},
		{name: "shorter than a header", bogus: func(t *testing.T, q *dns.Msg) []byte {
			return []byte{0x12, 0x34, 0x81}
		}},
		{name: "garbage with the right id", bogus: func(t *testing.T, q *dns.Msg) []byte {
			wire := reply(t, q, badIP, nil)
			return wire[:len(wire)-3]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := resolvertest.NewRawServer(t, func(q *dns.Msg) [][]byte {
				return [][]byte{tt.bogus(t, q), reply(t, q, goodIP, nil)}
			})
			r, err := upstream.NewServer(addr).Exchange(testContext(t), query("army.mil.", dns.TypeA))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != goodIP {
				t.Errorf("accepted answer:\n%s\nwant the A %s that followed", resolvertest.Records(r.Answer), goodIP)
			}
		})
	}
}

func TestServerMatchesNameCaseInsensitively(t *testing.T) {
	addr := resolvertest.NewRawServer(t, func(q *dns.Msg) [][]byte {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Question[0].Name = strings.ToUpper(q.Question[0].Name)
		return [][]byte{pack(t, m)}
	})
	if _, err := upstream.NewServer(addr).Exchange(testContext(t), query("Army.Mil.", dns.TypeA)); err != nil {
		t.Fatalf("Exchange: %v", err)
	}
}

// countingServer is a zone server that records the ID and source port of
// every UDP query it gets.
type countingServer struct {
	mu    sync.Mutex
	ids   map[uint16]int
	ports map[int]int
}

func newCountingServer(t *testing.T, wait func()) (*countingServer, string) {
	c := &countingServer{ids: map[uint16]int{}, ports: map[int]int{}}
	zone := resolvertest.NewZone(t, "a.test. 300 IN A 192.0.2.1")
	addr := resolvertest.NewServer(t, dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		c.mu.Lock()
		c.ids[q.Id]++
		c.ports[w.RemoteAddr().(*net.UDPAddr).Port]++
		c.mu.Unlock()
		if wait != nil {
			wait()
		}
		zone.ServeDNS(w, q)
	}))
	return c, addr
}

func TestServerIDsAndSourcePorts(t *testing.T) {
	c, addr := newCountingServer(t, nil)
	s := upstream.NewServer(addr)
	q := query("a.test.", dns.TypeA)

	const exchanges = 4000
	for range exchanges {
		r, err := s.Exchange(testContext(t), q)
		if err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		if r.Id != q.Id {
			t.Fatalf("reply id = %d, want the query's %d", r.Id, q.Id)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Random 16-bit IDs: about 120 of 4,000 collide by chance.
	if len(c.ids) < exchanges*7/8 {
		t.Errorf("%d exchanges used only %d distinct ids", exchanges, len(c.ids))
	}
	// Each socket carries at most MuxUses queries on its random port. The
	// kernel may, rarely, give a later socket a port used before, so a
	// port may count two sockets' queries, but not more.
	if min := exchanges / upstream.MuxUses; len(c.ports) < min*7/8 {
		t.Errorf("%d exchanges used only %d distinct source ports, want about %d or more", exchanges, len(c.ports), min)
	}
	for port, n := range c.ports {
		if n > 2*upstream.MuxUses {
			t.Errorf("source port %d carried %d queries, want at most %d", port, n, upstream.MuxUses)
		}
	}
}

func TestServerQueriesInFlightUseSeveralPorts(t *testing.T) {
	const inFlight = 32
	// The server answers none until all of them have arrived.
	var arrived sync.WaitGroup
	arrived.Add(inFlight)
	c, addr := newCountingServer(t, func() { arrived.Done(); arrived.Wait() })
	s := upstream.NewServer(addr)
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Go(func() {
			if _, err := s.Exchange(testContext(t), query(fmt.Sprintf("q%d.a.test.", i), dns.TypeA)); err != nil {
				t.Errorf("Exchange: %v", err)
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	// 32 queries over 16 sockets picked at random: all on three ports or
	// fewer has a chance below 1e-20.
	if len(c.ports) < 4 {
		t.Errorf("%d queries in flight at once left from %d source ports, want several", inFlight, len(c.ports))
	}
}

func TestServerErrors(t *testing.T) {
	tests := []struct {
		name     string
		addr     func(t testing.TB) string
		server   func(addr string) *upstream.Server
		ctx      func(t *testing.T) context.Context
		q        *dns.Msg
		wantText string // the error; ADDR stands for the server's address
		prefix   bool   // wantText is only the start of the error
		wantIs   error
	}{
		{
			name:     "context deadline",
			addr:     resolvertest.NewSilentServer,
			ctx:      func(t *testing.T) context.Context { return contextWithTimeout(t, 100*time.Millisecond) },
			wantText: "forward army.mil. MX to ADDR over udp: i/o timeout",
			wantIs:   os.ErrDeadlineExceeded,
		},
		{
			name: "server timeout",
			addr: resolvertest.NewSilentServer,
			server: func(addr string) *upstream.Server {
				return &upstream.Server{Addr: addr, Timeout: 100 * time.Millisecond}
			},
			wantText: "forward army.mil. MX to ADDR over udp: i/o timeout",
			wantIs:   os.ErrDeadlineExceeded,
		},
		{
			name: "truncated and no tcp",
			addr: func(t testing.TB) string {
				return resolvertest.NewRawServer(t, func(q *dns.Msg) [][]byte {
					m := new(dns.Msg)
					m.SetReply(q)
					m.Truncated = true
					wire, err := m.Pack()
					if err != nil {
						t.Errorf("pack reply: %v", err)
					}
					return [][]byte{wire}
				})
			},
			wantText: "forward army.mil. MX to ADDR over tcp: ",
			prefix:   true,
		},
		{
			name:     "two questions",
			addr:     resolvertest.NewSilentServer,
			q:        &dns.Msg{Question: []dns.Question{{Name: "a.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, {Name: "b.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}},
			wantText: "forward to ADDR: query has 2 questions, want 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.addr(t)
			s := upstream.NewServer(addr)
			if tt.server != nil {
				s = tt.server(addr)
			}
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			}
			q := tt.q
			if q == nil {
				q = query("army.mil.", dns.TypeMX)
			}
			r, err := s.Exchange(ctx, q)
			if err == nil {
				t.Fatalf("Exchange succeeded:\n%v", r)
			}
			want := strings.ReplaceAll(tt.wantText, "ADDR", addr)
			if got := err.Error(); got != want && !(tt.prefix && strings.HasPrefix(got, want)) {
				t.Errorf("error = %q, want %q", got, want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
		})
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestServerCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr := resolvertest.NewRawServer(t, func(q *dns.Msg) [][]byte {
		cancel() // while the exchange waits for a reply that never comes
		return nil
	})
	_, err := upstream.NewServer(addr).Exchange(ctx, query("army.mil.", dns.TypeMX))
	want := "forward army.mil. MX to " + addr + " over udp: context canceled"
	if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Fatalf("Exchange error = %v, want %q", err, want)
	}
}

// TestServerOversizedUDPReplies: a reply over the 1232 bytes a query
// offers but within 4096 (a server that ignores the offer) is taken; one
// larger than that comes in cut short and is dropped, and the exchange
// ends with an error within its deadline rather than a wrong answer.
func TestServerOversizedUDPReplies(t *testing.T) {
	for _, c := range []struct {
		records int
		ok      bool
	}{{20, true}, {60, false}} {
		addr := resolvertest.NewRawServer(t, func(q *dns.Msg) [][]byte {
			m := new(dns.Msg)
			m.SetReply(q)
			for i := range c.records {
				m.Answer = append(m.Answer, resolvertest.RR(t, fmt.Sprintf(`big.test. 300 IN TXT "record %03d of a reply larger than the query offered, padded out"`, i)))
			}
			return [][]byte{pack(t, m)}
		})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		r, err := upstream.NewServer(addr).Exchange(ctx, query("big.test.", dns.TypeTXT))
		cancel()
		size := 0
		if r != nil {
			size = r.Len()
		}
		switch {
		case c.ok && (err != nil || len(r.Answer) != c.records || size <= 1232):
			t.Errorf("%d records: %v, %d bytes", c.records, err, size)
		case !c.ok && err == nil:
			t.Errorf("%d records: answered, %d bytes, %d records", c.records, size, len(r.Answer))
		}
	}
}
