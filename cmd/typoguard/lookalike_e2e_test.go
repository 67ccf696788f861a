package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// lookalikeRecords is what the fake upstream knows: real answers for the
// protected domain, and answers that would deliver mail for its lookalikes.
var lookalikeRecords = []string{
	"army.mil. 300 IN MX 10 mx.army.mil.",
	"mx.army.mil. 300 IN A 198.51.100.10",
	"mail.army.mil. 300 IN A 198.51.100.11",
	"army.ml. 300 IN MX 10 mx.army.ml.",
	"arny.mil. 300 IN MX 10 mx.arny.mil.",
	"mail.amry.mil. 300 IN A 203.0.113.67",
	"xn--rmy-5cd.mil. 300 IN MX 10 mx.xn--rmy-5cd.mil.",
	"alias.example.com. 300 IN CNAME mail.arny.mil.",
	"mail.arny.mil. 300 IN A 203.0.113.68",
}

// TestE2ELookalikes asks a guard that protects army.mil, and has no rule
// of its own, with real dig: its lookalikes are blocked with EDE 15 naming
// what they look like, and army.mil itself is forwarded.
func TestE2ELookalikes(t *testing.T) {
	digPath(t)
	upstream := resolvertest.NewServer(t, resolvertest.NewZone(t, lookalikeRecords...))
	g := startGuard(t, fmt.Sprintf(`version: 1
log: {format: json, level: info}
upstreams: [%q]
upstream_timeout: 1s
acl:
  allow: [127.0.0.0/8]
lookalikes:
  protect: [army.mil]
`, upstream))
	for _, c := range []struct {
		name, qtype, lookalike, kind string
	}{
		{"army.ml", "MX", "army.ml", "letter dropped from the suffix"},
		{"arny.mil", "MX", "arny.mil", "keyboard neighbour"},
		{"mail.amry.mil", "A", "amry.mil", "letters swapped"},
		{"xn--rmy-5cd.mil", "MX", "xn--rmy-5cd.mil", "Unicode look-alike characters"}, // аrmy.mil, Cyrillic а
		{"alias.example.com", "A", "mail.arny.mil", "keyboard neighbour"},             // through a CNAME
	} {
		r := g.dig(t, c.name, c.qtype)
		if r.status != "NXDOMAIN" {
			t.Errorf("%s %s: status %s, want NXDOMAIN\n%s", c.name, c.qtype, r.status, r.out)
			continue
		}
		want := fmt.Sprintf("15 (Blocked): (typoguard: %s looks like army.mil (%s))", strings.TrimPrefix(c.lookalike, "mail."), c.kind)
		if r.ede != want {
			t.Errorf("%s %s: EDE %q, want %q", c.name, c.qtype, r.ede, want)
		}
		if len(r.authority) != 1 || !strings.Contains(r.authority[0], " SOA ") {
			t.Errorf("%s %s: authority %v, want the SOA", c.name, c.qtype, r.authority)
		}
	}
	for _, c := range []struct{ name, qtype, answer string }{
		{"army.mil", "MX", "army.mil. 300 IN MX 10 mx.army.mil."},
		{"mail.army.mil", "A", "mail.army.mil. 300 IN A 198.51.100.11"},
	} {
		r := g.dig(t, c.name, c.qtype)
		if r.status != "NOERROR" || len(r.answer) != 1 || r.answer[0] != c.answer || r.ede != "" {
			t.Errorf("%s %s: want %q forwarded, got %s %v EDE %q", c.name, c.qtype, c.answer, r.status, r.answer, r.ede)
		}
	}
	line := g.waitLog(t, "audit line for arny.mil", func(m map[string]any) bool {
		return m["msg"] == "blocked" && m["name"] == "arny.mil."
	})
	if line["rule"] != "lookalike of army.mil" || line["looks_like"] != "army.mil" || line["kind"] != "keyboard neighbour" {
		t.Errorf("audit line %v", line)
	}
}
