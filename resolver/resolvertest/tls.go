package resolvertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// CertName is the name, beside 127.0.0.1, that Certs' certificate is for.
const CertName = "dns.test"

// Certs makes a CA, valid for an hour, and a certificate it signs for
// CertName and 127.0.0.1; it returns the CA's certificate as a pool and as
// PEM, and the server's certificate.
func Certs(t testing.TB) (roots *x509.CertPool, caPEM []byte, cert tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "typoguard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: CertName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{CertName}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return roots, caPEM, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// NewTLSServer serves h over DNS over TLS on 127.0.0.1 with cert, until
// the test ends, and returns its address.
func NewTLSServer(t testing.TB, h dns.Handler, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: h}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// NewHTTPSServer serves h over DNS over HTTPS (POST, HTTP/2) on 127.0.0.1
// with cert, until the test ends, and returns its URL.
func NewHTTPSServer(t testing.TB, h dns.Handler, cert tls.Certificate) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, dns.MaxMsgSize))
		q := new(dns.Msg)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/dns-message" || q.Unpack(body) != nil {
			http.Error(w, "want a POST of application/dns-message", http.StatusBadRequest)
			return
		}
		rw := &httpWriter{}
		h.ServeDNS(rw, q)
		if rw.m == nil {
			http.Error(w, "no answer", http.StatusServiceUnavailable)
			return
		}
		b, _ := rw.m.Pack()
		w.Header().Set("Content-Type", "application/dns-message")
		w.Write(b)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL + "/dns-query"
}

// httpWriter is the dns.ResponseWriter a DoH request is answered through.
type httpWriter struct{ m *dns.Msg }

func (w *httpWriter) LocalAddr() net.Addr       { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (w *httpWriter) RemoteAddr() net.Addr      { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (w *httpWriter) WriteMsg(m *dns.Msg) error { w.m = m; return nil }
func (w *httpWriter) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	w.m = m
	return len(b), nil
}
func (w *httpWriter) Close() error        { return nil }
func (w *httpWriter) TsigStatus() error   { return nil }
func (w *httpWriter) TsigTimersOnly(bool) {}
func (w *httpWriter) Hijack()             {}
