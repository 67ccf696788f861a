package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/resolver/resolvertest"
	"github.com/typoguard/typoguard/resolver/upstream"
)

// exchangeFunc is an Exchanger without an address.
type exchangeFunc func(ctx context.Context, q *dns.Msg) (*dns.Msg, error)

func (f exchangeFunc) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) { return f(ctx, q) }

// fakeServer is an Exchanger with an address that answers with a fixed rcode
// or error.
type fakeServer struct {
	addr  string
	rcode int
	err   error
	nil   bool // return neither reply nor error
}

func (f fakeServer) Address() string { return f.addr }

func (f fakeServer) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	if f.err != nil || f.nil {
		return nil, f.err
	}
	r := new(dns.Msg)
	r.SetRcode(q, f.rcode)
	r.Ns = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "from.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{f.addr}}}
	return r, nil
}

// from reports which fakeServer sent r.
func from(r *dns.Msg) string {
	if r == nil || len(r.Ns) != 1 {
		return ""
	}
	return r.Ns[0].(*dns.TXT).Txt[0]
}

// observation is one call of Group.Observe.
type observation struct {
	addr string
	err  error
}

// observer collects Group.Observe calls.
type observer struct {
	mu   sync.Mutex // guards seen
	seen []observation
}

func (o *observer) observe(addr string, rtt time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, observation{addr, err})
}

func (o *observer) addrs() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var addrs []string
	for _, ob := range o.seen {
		addrs = append(addrs, ob.addr)
	}
	return strings.Join(addrs, " ")
}

func TestGroupFailover(t *testing.T) {
	errA := errors.New("a failed")
	errB := errors.New("b failed")
	tests := []struct {
		name     string
		servers  []upstream.Exchanger
		wantFrom string  // the server whose reply comes back; "" for none
		wantErrs []error // each must be in the returned error
		tried    string  // addresses observed, in order
	}{
		{
			name:     "first answers",
			servers:  []upstream.Exchanger{fakeServer{addr: "a"}, fakeServer{addr: "b"}},
			wantFrom: "a",
			tried:    "a",
		},
		{
			name:     "nxdomain is an answer",
			servers:  []upstream.Exchanger{fakeServer{addr: "a", rcode: dns.RcodeNameError}, fakeServer{addr: "b"}},
			wantFrom: "a",
			tried:    "a",
		},
		{
			name:     "error then answer",
			servers:  []upstream.Exchanger{fakeServer{addr: "a", err: errA}, fakeServer{addr: "b"}},
			wantFrom: "b",
			tried:    "a b",
		},
		{
			name:     "servfail then answer",
			servers:  []upstream.Exchanger{fakeServer{addr: "a", rcode: dns.RcodeServerFailure}, fakeServer{addr: "b"}},
			wantFrom: "b",
			tried:    "a b",
		},
		{
			name:     "refused then answer",
			servers:  []upstream.Exchanger{fakeServer{addr: "a", rcode: dns.RcodeRefused}, fakeServer{addr: "b"}},
			wantFrom: "b",
			tried:    "a b",
		},
		{
			name: "all rejected: the last rejection",
			servers: []upstream.Exchanger{
				fakeServer{addr: "a", rcode: dns.RcodeServerFailure},
				fakeServer{addr: "b", rcode: dns.RcodeRefused},
				fakeServer{addr: "c", err: errA},
			},
			wantFrom: "b",
			tried:    "a b c",
		},
		{
			name:     "all failed: every error",
			servers:  []upstream.Exchanger{fakeServer{addr: "a", err: errA}, fakeServer{addr: "b", err: errB}},
			wantErrs: []error{errA, errB},
			tried:    "a b",
		},
		{
			name:     "neither reply nor error is a failure",
			servers:  []upstream.Exchanger{fakeServer{addr: "a", nil: true}, fakeServer{addr: "b"}},
			wantFrom: "b",
			tried:    "a b",
		},
		{
			name: "exchanger without address",
			servers: []upstream.Exchanger{
				exchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) { return nil, errA }),
				fakeServer{addr: "b"},
			},
			wantFrom: "b",
			tried:    " b",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs observer
			g := &upstream.Group{Servers: tt.servers, Timeout: testTimeout, Observe: obs.observe}
			q := query("army.mil.", dns.TypeMX)
			r, err := g.Exchange(t.Context(), q)
			if got := from(r); got != tt.wantFrom {
				t.Errorf("reply from %q, want from %q (error %v)", got, tt.wantFrom, err)
			}
			if r != nil && r.Id != q.Id {
				t.Errorf("reply id = %d, want %d", r.Id, q.Id)
			}
			if (err != nil) != (len(tt.wantErrs) > 0) {
				t.Errorf("error = %v, want errors %v", err, tt.wantErrs)
			}
			for _, want := range tt.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("error %v does not hold %v", err, want)
				}
			}
			if got := obs.addrs(); got != tt.tried {
				t.Errorf("observed tries %q, want %q", got, tt.tried)
			}
		})
	}
}

func TestGroupSharesTimeBetweenTries(t *testing.T) {
	const (
		timeout = 300 * time.Millisecond
		servers = 3
	)
	var (
		mu     sync.Mutex // guards shares
		shares []time.Duration
	)
	dead := exchangeFunc(func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		deadline, ok := ctx.Deadline()
		mu.Lock()
		shares = append(shares, time.Until(deadline))
		mu.Unlock()
		if !ok {
			return nil, errors.New("try without a deadline")
		}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	g := &upstream.Group{Servers: []upstream.Exchanger{dead, dead, dead}, Timeout: timeout}
	if _, err := g.Exchange(t.Context(), query("army.mil.", dns.TypeMX)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exchange error = %v, want deadline exceeded", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(shares) != servers {
		t.Fatalf("%d tries, want %d", len(shares), servers)
	}
	for i, share := range shares {
		if share <= 0 || share > timeout/servers {
			t.Errorf("try %d had %v, want at most a third of %v", i, share, timeout)
		}
	}
}

func TestGroupWithServers(t *testing.T) {
	const timeout = 300 * time.Millisecond
	zone := resolvertest.NewZone(t, "army.mil. 300 IN MX 10 mail.army.mil.")
	live := resolvertest.NewServer(t, zone)
	servfail := resolvertest.NewServer(t, resolvertest.Rcode(dns.RcodeServerFailure))
	closed, stop := resolvertest.NewServerWithStop(t, zone)
	stop()

	tests := []struct {
		name  string
		addrs []string
		want  int // rcode of the reply; -1 when Exchange must fail
	}{
		{name: "silent then live", addrs: []string{resolvertest.NewSilentServer(t), live}, want: dns.RcodeSuccess},
		{name: "closed then live", addrs: []string{closed, live}, want: dns.RcodeSuccess},
		{name: "servfail then live", addrs: []string{servfail, live}, want: dns.RcodeSuccess},
		{name: "only servfail", addrs: []string{servfail}, want: dns.RcodeServerFailure},
		{name: "all silent", addrs: []string{resolvertest.NewSilentServer(t), resolvertest.NewSilentServer(t)}, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs observer
			g := &upstream.Group{Timeout: timeout, Observe: obs.observe}
			for _, addr := range tt.addrs {
				g.Servers = append(g.Servers, upstream.NewServer(addr))
			}
			start := time.Now()
			r, err := g.Exchange(t.Context(), query("army.mil.", dns.TypeMX))
			// A correctness bound, not a benchmark: the timeout covers every try.
			if elapsed := time.Since(start); elapsed > timeout+200*time.Millisecond {
				t.Errorf("Exchange took %v, over the %v timeout", elapsed, timeout)
			}
			if tt.want < 0 {
				if err == nil {
					t.Fatalf("Exchange succeeded:\n%v", r)
				}
				for _, addr := range tt.addrs {
					if !strings.Contains(err.Error(), addr) {
						t.Errorf("error %q does not name %s", err, addr)
					}
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("error %v is not a timeout", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if r.Rcode != tt.want {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.want])
			}
			if got, want := obs.addrs(), strings.Join(tt.addrs, " "); got != want {
				t.Errorf("observed tries %q, want %q", got, want)
			}
		})
	}
}

func TestGroupErrorsBeforeTrying(t *testing.T) {
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		servers []upstream.Exchanger
		want    string
		wantIs  error
	}{
		{name: "no servers", ctx: t.Context(), want: "forward army.mil. MX: no upstream servers"},
		{
			name:    "context canceled",
			ctx:     canceled,
			servers: []upstream.Exchanger{fakeServer{addr: "a"}, fakeServer{addr: "b"}},
			want:    "forward army.mil. MX: 2 of 2 upstreams not tried: context canceled",
			wantIs:  context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs observer
			g := &upstream.Group{Servers: tt.servers, Timeout: testTimeout, Observe: obs.observe}
			_, err := g.Exchange(tt.ctx, query("army.mil.", dns.TypeMX))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if got := obs.addrs(); got != "" {
				t.Errorf("observed tries %q, want none", got)
			}
		})
	}
}

func TestGroupConcurrentExchanges(t *testing.T) {
	const names = 50
	zone := resolvertest.NewZone(t)
	for i := range names {
		zone.Add(resolvertest.RR(t, fmt.Sprintf("n%d.test. 300 IN TXT \"%d\"", i, i)))
	}
	g := &upstream.Group{
		Servers: []upstream.Exchanger{
			upstream.NewServer(resolvertest.NewServer(t, resolvertest.Rcode(dns.RcodeRefused))),
			upstream.NewServer(resolvertest.NewServer(t, zone)),
		},
		Timeout: testTimeout,
	}
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() {
			r, err := g.Exchange(t.Context(), query(fmt.Sprintf("n%d.test.", i), dns.TypeTXT))
			if err != nil {
				t.Errorf("Exchange n%d: %v", i, err)
				return
			}
			if len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != fmt.Sprint(i) {
				t.Errorf("n%d answered:\n%s", i, resolvertest.Records(r.Answer))
			}
		})
	}
	wg.Wait()
}

func TestGroupTriesAFailedServerLast(t *testing.T) {
	dead := fakeServer{addr: "dead", err: errors.New("connection refused")}
	live := fakeServer{addr: "live", rcode: dns.RcodeSuccess}
	obs := &observer{}
	g := &upstream.Group{Servers: []upstream.Exchanger{dead, live}, Timeout: time.Second, Observe: obs.observe}
	q := new(dns.Msg)
	q.SetQuestion("army.mil.", dns.TypeMX)
	for range 3 {
		r, err := g.Exchange(context.Background(), q)
		if err != nil || from(r) != "live" {
			t.Fatalf("reply from %q, err %v", from(r), err)
		}
	}
	// The first query found the primary dead; the next two went straight
	// to the live server.
	if got := obs.addrs(); got != "dead live live live" {
		t.Errorf("tries %q, want %q", got, "dead live live live")
	}

	// With every server failing, each is still tried, in order.
	g = &upstream.Group{Servers: []upstream.Exchanger{dead, fakeServer{addr: "dead2", err: errors.New("timeout")}}, Timeout: time.Second, Observe: (&observer{}).observe}
	for range 2 {
		if _, err := g.Exchange(context.Background(), q); err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("all failing: %v", err)
		}
	}
}
