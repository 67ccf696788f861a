package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// TestE2EEncryptedUpstreams runs typoguard forwarding over DNS over TLS
// and over HTTPS to servers on loopback whose certificates a test CA
// signs (upstream_ca_file), and asks it with dig; then with the wrong
// name to check the certificate against: the answer is SERVFAIL, the log
// says why, and nothing is asked in plain text.
func TestE2EEncryptedUpstreams(t *testing.T) {
	digPath(t)
	_, caPEM, cert := resolvertest.Certs(t)
	zone := resolvertest.NewZone(t, upstreamRecords...)
	dot := resolvertest.NewTLSServer(t, zone, cert)
	doh := resolvertest.NewHTTPSServer(t, zone, cert)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	start := func(upstream string) *guard {
		t.Helper()
		file := filepath.Join(dir, "policy.yaml")
		src := `version: 1
log: {format: json, level: info}
upstreams: ["` + upstream + `"]
upstream_ca_file: ca.pem
upstream_timeout: 1s
acl: {allow: [127.0.0.0/8]}
rules:
  - {name: mali-is-not-mil, domains: [ml], types: [MX, A, AAAA, ANY], action: nxdomain}
`
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return startGuardFile(t, file)
	}
	for _, up := range []string{"tls://" + dot + "#" + resolvertest.CertName, doh} {
		g := start(up)
		if r := g.dig(t, "www.example.com", "A"); r.status != "NOERROR" || len(r.answer) != 1 || !strings.Contains(r.answer[0], "198.51.100.20") {
			t.Errorf("%s: www.example.com A: %s %v", up, r.status, r.answer)
		}
		if r := g.dig(t, "army.ml", "MX"); r.status != "NXDOMAIN" {
			t.Errorf("%s: army.ml MX: %s", up, r.status)
		}
		g.stop(t)
	}

	g := start("tls://" + dot + "#wrong.test")
	if r := g.dig(t, "www.example.com", "A"); r.status != "SERVFAIL" {
		t.Errorf("a DoT upstream under the wrong name: %s, want SERVFAIL", r.status)
	}
	line := g.waitLog(t, "the certificate failure", func(l map[string]any) bool {
		return l["msg"] == "every upstream failed; answering SERVFAIL" && strings.Contains(l["err"].(string), "certificate is valid for "+resolvertest.CertName+", not wrong.test")
	})
	if !strings.Contains(line["err"].(string), "tls://"+dot+"#wrong.test") {
		t.Errorf("the log line does not name the upstream: %v", line)
	}
	if n := zone.Queries(); n != 2 {
		t.Errorf("the upstream zone was asked %d times, want 2 (one over each encrypted transport)", n)
	}
}
