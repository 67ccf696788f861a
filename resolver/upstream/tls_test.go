package upstream_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/resolver/resolvertest"
	"github.com/typoguard/typoguard/resolver/upstream"
)

// testCerts is resolvertest.Certs without the PEM.
func testCerts(t *testing.T) (*x509.CertPool, tls.Certificate) {
	roots, _, cert := resolvertest.Certs(t)
	return roots, cert
}

// answerA answers every A query with 192.0.2.1.
func answerA(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.1")
	m.Answer = append(m.Answer, rr)
	w.WriteMsg(m)
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// startDoT runs a DNS-over-TLS server on loopback with cert.
func startDoT(t *testing.T, cert tls.Certificate) (string, *countingListener) {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: tls.NewListener(tcp, &tls.Config{Certificates: []tls.Certificate{cert}})}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(answerA)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return tcp.Addr().String(), ln
}

func aQuery(name string) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	return q
}

// TestTLSServer asks a DoT server on loopback: many queries at once share
// at most two connections, and a certificate for another name or from an
// unknown authority fails the exchange.
func TestTLSServer(t *testing.T) {
	roots, cert := testCerts(t)
	addr, ln := startDoT(t, cert)
	s := &upstream.TLSServer{Addr: addr, Name: "tls://" + addr + "#dns.test", Config: &tls.Config{RootCAs: roots, ServerName: "dns.test"}}
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			q := aQuery(strings.Repeat("a", 1+i%20) + ".example.")
			r, err := s.Exchange(context.Background(), q)
			if err != nil || r.Id != q.Id || len(r.Answer) != 1 || r.Answer[0].Header().Name != q.Question[0].Name {
				t.Errorf("query %d: %v, %v", i, r, err)
			}
		})
	}
	wg.Wait()
	if n := ln.n.Load(); n < 1 || n > 2 {
		t.Errorf("%d connections for 100 queries, want 1 or 2", n)
	}

	for _, tc := range []struct {
		cfg  *tls.Config
		want string
	}{
		{&tls.Config{RootCAs: roots, ServerName: "wrong.test"}, "certificate is valid for dns.test, not wrong.test"},
		{&tls.Config{ServerName: "dns.test"}, "certificate signed by unknown authority"},
	} {
		bad := &upstream.TLSServer{Addr: addr, Name: "tls://" + addr + "#" + tc.cfg.ServerName, Config: tc.cfg}
		_, err := bad.Exchange(context.Background(), aQuery("x.example."))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), bad.Name) {
			t.Errorf("%s: %v, want an error naming the server and %q", bad.Name, err, tc.want)
		}
	}
}

// TestTLSServerDown fails at once when nothing listens, and within its
// timeout when the server accepts but never answers the handshake.
func TestTLSServerDown(t *testing.T) {
	roots, _ := testCerts(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never a byte
		}
	}()
	s := &upstream.TLSServer{Addr: ln.Addr().String(), Name: "tls://silent", Timeout: 300 * time.Millisecond,
		Config: &tls.Config{RootCAs: roots, ServerName: "dns.test"}}
	start := time.Now()
	if _, err := s.Exchange(context.Background(), aQuery("x.example.")); err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("silent server: %v after %v", err, time.Since(start))
	}
}

// TestHTTPSServer asks a DoH server on loopback over HTTP/2: the query is
// a POST of ID 0, the reply gets the query's ID, and a certificate for
// another name fails the exchange.
func TestHTTPSServer(t *testing.T) {
	roots, cert := testCerts(t)
	var protos sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		body, _ := io.ReadAll(r.Body)
		q := new(dns.Msg)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/dns-message" || q.Unpack(body) != nil || q.Id != 0 {
			http.Error(w, "bad query", http.StatusBadRequest)
			return
		}
		m := new(dns.Msg)
		m.SetReply(q)
		rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 192.0.2.1")
		m.Answer = append(m.Answer, rr)
		b, _ := m.Pack()
		w.Header().Set("Content-Type", "application/dns-message")
		w.Write(b)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	s, err := upstream.NewHTTPSServer(srv.URL+"/dns-query", &tls.Config{RootCAs: roots}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		q := aQuery("h" + strings.Repeat("x", i) + ".example.")
		r, err := s.Exchange(context.Background(), q)
		if err != nil || r.Id != q.Id || len(r.Answer) != 1 {
			t.Fatalf("DoH: %v, %v", r, err)
		}
	}
	if _, ok := protos.Load("HTTP/2.0"); !ok {
		protos.Range(func(k, _ any) bool { t.Errorf("served over %v, want HTTP/2.0", k); return true })
	}

	// The same server under a name its certificate does not have.
	port := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "https://")).Port()
	wrong, err := upstream.NewHTTPSServer("https://localhost:"+strconv.Itoa(int(port))+"/dns-query", &tls.Config{RootCAs: roots}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Exchange(context.Background(), aQuery("x.example.")); err == nil || !strings.Contains(err.Error(), "certificate is valid for dns.test") {
		t.Errorf("DoH under the wrong name: %v", err)
	}
	if _, err := upstream.NewHTTPSServer("http://127.0.0.1/dns-query", nil, time.Second); err == nil {
		t.Error("an http:// URL was taken for DoH")
	}
}
