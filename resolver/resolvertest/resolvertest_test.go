package resolvertest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// exchangeTimeout bounds each test query; the servers are on loopback.
const exchangeTimeout = 2 * time.Second

func query(name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	return q
}

func exchange(t *testing.T, network, addr string, q *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: exchangeTimeout}
	r, _, err := c.Exchange(q, addr)
	if err != nil {
		t.Fatalf("exchange %s over %s: %v", q.Question[0].String(), network, err)
	}
	return r
}

func TestNewServerServesUDPAndTCP(t *testing.T) {
	addr := NewServer(t, NewZone(t, "a.test. 60 IN A 192.0.2.1"))
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("address = %q, want 127.0.0.1:PORT", addr)
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := exchange(t, network, addr, query("a.test.", dns.TypeA))
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("reply:\n%v\nwant one A record", r)
			}
		})
	}
}

func TestNewServerWithStop(t *testing.T) {
	addr, stop := NewServerWithStop(t, Rcode(dns.RcodeSuccess))
	exchange(t, "udp", addr, query("a.test.", dns.TypeA))
	stop()
	stop() // a second stop, and the one at cleanup, are no-ops

	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c := &dns.Client{Net: network, Timeout: exchangeTimeout}
			if r, _, err := c.Exchange(query("a.test.", dns.TypeA), addr); err == nil {
				t.Fatalf("stopped server answered:\n%v", r)
			}
		})
	}
}

func TestZone(t *testing.T) {
	z := NewZone(t,
		"a.test. 60 IN A 192.0.2.1",
		"a.test. 60 IN A 192.0.2.2",
		"a.test. 60 IN MX 10 mx.a.test.",
		"www.test. 60 IN CNAME a.test.",
		"dangling.test. 60 IN CNAME nowhere.test.",
		"deep.under.test. 60 IN TXT \"x\"",
	)
	addr := NewServer(t, z)

	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string // record types, in order
		soa    bool
	}{
		{name: "records of the asked type", qname: "a.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, answer: []string{"A", "A"}},
		{name: "name case-insensitive", qname: "A.TeSt.", qtype: dns.TypeMX, rcode: dns.RcodeSuccess, answer: []string{"MX"}},
		{name: "nodata", qname: "a.test.", qtype: dns.TypeAAAA, rcode: dns.RcodeSuccess, soa: true},
		{name: "empty non-terminal is nodata", qname: "under.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, soa: true},
		{name: "nxdomain", qname: "missing.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, soa: true},
		{name: "cname followed", qname: "www.test.", qtype: dns.TypeA, rcode: dns.RcodeSuccess, answer: []string{"CNAME", "A", "A"}},
		{name: "cname asked for", qname: "www.test.", qtype: dns.TypeCNAME, rcode: dns.RcodeSuccess, answer: []string{"CNAME"}},
		{name: "cname to a missing name", qname: "dangling.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, answer: []string{"CNAME"}, soa: true},
		{name: "any", qname: "a.test.", qtype: dns.TypeANY, rcode: dns.RcodeSuccess, answer: []string{"A", "A", "MX"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := exchange(t, "udp", addr, query(tt.qname, tt.qtype))
			if r.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			var got []string
			for _, rr := range r.Answer {
				got = append(got, dns.TypeToString[rr.Header().Rrtype])
			}
			if strings.Join(got, " ") != strings.Join(tt.answer, " ") {
				t.Errorf("answer types = %v, want %v\n%s", got, tt.answer, Records(r.Answer))
			}
			hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
			if hasSOA != tt.soa {
				t.Errorf("authority:\n%s\nwant SOA: %v", Records(r.Ns), tt.soa)
			}
			if !r.RecursionAvailable {
				t.Error("RA not set")
			}
		})
	}

	if got, want := z.Queries(), len(tests); got != want {
		t.Errorf("Queries() = %d, want %d", got, want)
	}
	if got := z.QueriesFor("A.TEST", dns.TypeA); got != 1 {
		t.Errorf("QueriesFor(A.TEST, A) = %d, want 1", got)
	}
	if got := z.QueriesFor("never.test.", dns.TypeA); got != 0 {
		t.Errorf("QueriesFor(never.test., A) = %d, want 0", got)
	}
}

func TestZoneTruncatesUDP(t *testing.T) {
	z := NewZone(t)
	const records = 40
	for i := range records {
		z.Add(RR(t, fmt.Sprintf("big.test. 60 IN TXT \"a text record long enough to need many bytes, number %d\"", i)))
	}
	addr := NewServer(t, z)

	edns := query("big.test.", dns.TypeTXT)
	edns.SetEdns0(1232, true)
	tests := []struct {
		name      string
		network   string
		q         *dns.Msg
		truncated bool
	}{
		{name: "udp without edns", network: "udp", q: query("big.test.", dns.TypeTXT), truncated: true},
		{name: "udp with edns 1232", network: "udp", q: edns, truncated: true},
		{name: "tcp without edns", network: "tcp", q: query("big.test.", dns.TypeTXT)},
		{name: "tcp with edns 1232", network: "tcp", q: edns},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := exchange(t, tt.network, addr, tt.q)
			if r.Truncated != tt.truncated {
				t.Errorf("TC = %v, want %v", r.Truncated, tt.truncated)
			}
			if !tt.truncated && len(r.Answer) != records {
				t.Errorf("%d answers, want %d", len(r.Answer), records)
			}
			if opt := tt.q.IsEdns0(); opt != nil {
				ropt := r.IsEdns0()
				if ropt == nil || !ropt.Do() {
					t.Errorf("reply OPT = %v, want one with DO", ropt)
				}
				r.Compress = true // as it came on the wire
				if tt.network == "udp" && r.Len() > int(opt.UDPSize()) {
					t.Errorf("reply is %d bytes, over the %d asked for", r.Len(), opt.UDPSize())
				}
			}
		})
	}
}

func TestZoneOnQuery(t *testing.T) {
	var seen atomic.Int64
	z := NewZone(t, "a.test. 60 IN A 192.0.2.1")
	z.OnQuery = func(q *dns.Msg) { seen.Add(1) }
	z.SOA = nil
	addr := NewServer(t, z)

	r := exchange(t, "udp", addr, query("missing.test.", dns.TypeA))
	if seen.Load() != 1 {
		t.Errorf("OnQuery called %d times, want 1", seen.Load())
	}
	if len(r.Ns) != 0 {
		t.Errorf("authority with SOA unset:\n%s", Records(r.Ns))
	}
}

func TestRcode(t *testing.T) {
	for _, rcode := range []int{dns.RcodeServerFailure, dns.RcodeRefused} {
		t.Run(dns.RcodeToString[rcode], func(t *testing.T) {
			addr := NewServer(t, Rcode(rcode))
			q := query("a.test.", dns.TypeA)
			r := exchange(t, "udp", addr, q)
			if r.Rcode != rcode || r.Id != q.Id || len(r.Answer) != 0 {
				t.Fatalf("reply:\n%v\nwant empty %s to id %d", r, dns.RcodeToString[rcode], q.Id)
			}
		})
	}
}

func TestNewRawServer(t *testing.T) {
	addr := NewRawServer(t, func(q *dns.Msg) [][]byte {
		m := new(dns.Msg)
		m.SetReply(q)
		wire, err := m.Pack()
		if err != nil {
			t.Errorf("pack reply: %v", err)
		}
		return [][]byte{[]byte("not dns"), wire}
	})
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(exchangeTimeout)); err != nil {
		t.Fatal(err)
	}
	q := query("a.test.", dns.TypeA)
	wire, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("garbage is ignored")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(wire); err != nil {
		t.Fatal(err)
	}

	buf := make([]byte, dns.MaxMsgSize)
	for i, want := range []string{"not dns", "reply"} {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read datagram %d: %v", i, err)
		}
		r := new(dns.Msg)
		unpacked := r.Unpack(buf[:n]) == nil
		if got := map[bool]string{false: "not dns", true: "reply"}[unpacked]; got != want {
			t.Errorf("datagram %d is %s, want %s", i, got, want)
		}
		if unpacked && r.Id != q.Id {
			t.Errorf("reply id = %d, want %d", r.Id, q.Id)
		}
	}
}

func TestNewSilentServer(t *testing.T) {
	addr := NewSilentServer(t)
	c := &dns.Client{Net: "udp", Timeout: 100 * time.Millisecond}
	_, _, err := c.Exchange(query("a.test.", dns.TypeA), addr)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("exchange with silent server: %v, want a timeout", err)
	}
}

// fatalTB records a Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	failure string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.failure = format
	runtime.Goexit()
}

func TestRR(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string // "" when the test must fail
	}{
		{name: "mx", text: "army.mil. 300 IN MX 10 mail.army.mil.", want: "army.mil.\t300\tIN\tMX\t10 mail.army.mil."},
		{name: "syntax error", text: "army.mil. 300 IN MX ten"},
		{name: "no record", text: "; only a comment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &fatalTB{TB: t}
			var rr dns.RR
			done := make(chan struct{})
			go func() {
				defer close(done)
				rr = RR(tb, tt.text)
			}()
			<-done
			switch {
			case tt.want == "" && tb.failure == "":
				t.Fatalf("RR(%q) = %v, want the test failed", tt.text, rr)
			case tt.want != "" && tb.failure != "":
				t.Fatalf("RR(%q) failed the test: %s", tt.text, tb.failure)
			case tt.want != "" && rr.String() != tt.want:
				t.Fatalf("RR(%q) = %q, want %q", tt.text, rr.String(), tt.want)
			}
		})
	}
}
