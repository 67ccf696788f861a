package policy

import (
	"strings"
	"testing"
	"time"
)

func TestExplainerSettings(t *testing.T) {
	p := mustParse(t, `
answers: {sinkhole_ipv4: 192.0.2.25, sinkhole_mx: sinkhole.example.net.}
rules:
  - {name: s, domains: [ml], action: sinkhole}
explainer:
  listen: ["192.0.2.25", "[2001:db8::25]:2525"]
`)
	e := p.Explainer
	if !e.Configured() || strings.Join(e.Listen, " ") != "192.0.2.25:25 [2001:db8::25]:2525" {
		t.Errorf("listen %v, want port 25 added to the bare address", e.Listen)
	}
	if e.Hostname != "sinkhole.example.net" || e.MaxConnections != 1000 || e.MaxPerClient != 50 || e.Timeout != 30*time.Second {
		t.Errorf("defaults: %+v", e)
	}
	if e.SessionLimit() != 5*time.Minute {
		t.Errorf("session limit %s, want 5m", e.SessionLimit())
	}
	if mustParse(t, "version: 1\n").Explainer.Configured() {
		t.Errorf("an explainer without the section")
	}
}

func TestExplainerWarnings(t *testing.T) {
	const sinkhole = "rules:\n  - {name: s, domains: [ml], action: sinkhole}\n"
	cases := []struct {
		name, src string
		want      []string // substrings, one warning each; none: no explainer warning
	}{
		{"sinkhole with its explainer", `answers: {sinkhole_ipv4: 192.0.2.25}
` + sinkhole + `explainer: {listen: ["192.0.2.25:25"]}`, nil},
		{"explainer on the wildcard", `answers: {sinkhole_ipv4: 192.0.2.25, sinkhole_ipv6: "2001:db8::25"}
` + sinkhole + `explainer: {listen: ["0.0.0.0:25", "[::]:25"]}`, nil},
		{"explainer on every address", `answers: {sinkhole_ipv4: 192.0.2.25}
` + sinkhole + `explainer: {listen: [":25"]}`, nil},
		{"sinkhole without explainer", `answers: {sinkhole_ipv4: 192.0.2.25}
` + sinkhole, []string{`rule "s" answer sinkhole with 192.0.2.25, but no explainer listens on 192.0.2.25:25`}},
		{"explainer on another port", `answers: {sinkhole_ipv4: 192.0.2.25}
` + sinkhole + `explainer: {listen: ["192.0.2.25:2525"]}`, []string{
			"no explainer listens on 192.0.2.25:25",
			"explainer listens on 192.0.2.25:2525, but no rule answers sinkhole",
		}},
		{"one family without explainer", `answers: {sinkhole_ipv4: 192.0.2.25, sinkhole_ipv6: "2001:db8::25"}
` + sinkhole + `explainer: {listen: ["192.0.2.25"]}`, []string{"no explainer listens on [2001:db8::25]:25"}},
		{"explainer without sinkhole", `answers: {sinkhole_ipv4: 192.0.2.25}
explainer: {listen: ["192.0.2.25:25"]}`, []string{"explainer listens on 192.0.2.25:25, but no rule answers sinkhole"}},
		{"lookalikes sinkholed", `answers: {sinkhole_ipv4: 192.0.2.25}
lookalikes: {protect: [army.mil], action: sinkhole}`, []string{"lookalike protection answer sinkhole with 192.0.2.25"}},
		{"private sinkhole address", `answers: {sinkhole_ipv4: 10.0.0.25}
` + sinkhole + `explainer: {listen: ["10.0.0.25:25"]}`, []string{`10.0.0.25 is in 10.0.0.0/8, which Debian's stock Exim ignores`}},
		{"private IPv6 sinkhole address", `answers: {sinkhole_ipv6: "fd00::25"}
` + sinkhole + `explainer: {listen: ["[fd00::25]:25"]}`, []string{`fd00::25 is in fc00::/7`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.src)
			var got []string
			for _, w := range p.Warnings() {
				if strings.Contains(w.Msg, "explainer") || strings.Contains(w.Msg, "Exim") {
					got = append(got, w.Msg)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i, want := range tc.want {
				if !strings.Contains(got[i], want) {
					t.Errorf("warning %q, want it to say %q", got[i], want)
				}
			}
		})
	}
}
