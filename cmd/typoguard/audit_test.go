package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// slogAuditLine is the audit line as slog's handler writes it, for
// comparison: the attributes in the order the resolver's own slog auditor
// gives them.
func slogAuditLine(t time.Time, json bool, a resolver.AuditLine) string {
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if json {
		h = slog.NewJSONHandler(&buf, nil)
	}
	r := slog.NewRecord(t, slog.LevelInfo, a.Verdict, 0)
	r.AddAttrs(slog.String("client", a.Client.String()), slog.String("name", a.Name), slog.String("type", a.Type),
		slog.String("rule", a.Rule), slog.String("action", a.Action), slog.String("mode", a.Mode), slog.Bool("cached", a.Cached))
	if a.LooksLike != "" {
		r.AddAttrs(slog.String("looks_like", a.LooksLike), slog.String("kind", a.Kind))
	}
	if a.Via != "" {
		r.AddAttrs(slog.String("via", a.Via))
	}
	h.Handle(context.Background(), r)
	return buf.String()
}

// appendAuditLine appends the audit line a, logged at t, as Audit formats
// it, with its shared parts rendered for it alone.
func appendAuditLine(b []byte, t time.Time, json bool, a resolver.AuditLine) []byte {
	return appendAuditWith(b, t, renderFixed(json, a), a)
}

func TestAuditLineIsSlogs(t *testing.T) {
	base := resolver.AuditLine{Verdict: "blocked", Client: netip.MustParseAddr("127.0.0.1"), Name: "army.ml.", Type: "MX",
		Rule: "mali-is-not-mil", Action: "nxdomain", Mode: "enforce"}
	cases := map[string]func(*resolver.AuditLine){
		"plain":       func(*resolver.AuditLine) {},
		"would block": func(a *resolver.AuditLine) { a.Verdict, a.Mode, a.Cached = "would block", "monitor", true },
		"lookalike": func(a *resolver.AuditLine) {
			a.Rule, a.LooksLike, a.Kind = "lookalike of army.mil", "army.mil", "letter dropped from the suffix"
		},
		"via":           func(a *resolver.AuditLine) { a.Via = "alias.example.com. 300 IN CNAME mail.army.ml." },
		"IPv6 client":   func(a *resolver.AuditLine) { a.Client = netip.MustParseAddr("2001:db8::5") },
		"escaped name":  func(a *resolver.AuditLine) { a.Name = `a\.b\"c\\d\009.example.` },
		"rule quotes":   func(a *resolver.AuditLine) { a.Rule = `say "no" = yes` },
		"control bytes": func(a *resolver.AuditLine) { a.Rule = "tab\there\nnew\rline\x00\x1f\x7f" },
		"unicode": func(a *resolver.AuditLine) {
			a.Rule, a.Name = "règle ✓ \u2028\u2029 \u00a0", "xn--bcher-kva.example."
		},
		"bad UTF-8":  func(a *resolver.AuditLine) { a.Rule = "bad\xff\xfe utf8" },
		"empty rule": func(a *resolver.AuditLine) { a.Rule = "" },
		"TYPE65":     func(a *resolver.AuditLine) { a.Type = "TYPE65" },
	}
	times := []time.Time{
		time.Date(2026, 12, 1, 22, 41, 12, 95185964, time.UTC),
		time.Date(2026, 12, 1, 22, 41, 12, 0, time.UTC),
		time.Date(2026, 12, 1, 22, 41, 12, 100000000, time.FixedZone("CET", 3600)),
		time.Date(2026, 12, 1, 22, 41, 12, 5, time.UTC),
		time.Date(2026, 12, 1, 22, 41, 12, 999999999, time.UTC),
		time.Date(2026, 12, 1, 22, 41, 12, 120400, time.UTC),
	}
	for name, edit := range cases {
		for _, json := range []bool{true, false} {
			for _, tm := range times {
				a := base
				edit(&a)
				want := slogAuditLine(tm, json, a)
				if got := string(appendAuditLine(nil, tm, json, a)); got != want {
					t.Errorf("%s (json %v, %s):\n got %q\nwant %q", name, json, tm, got, want)
				}
			}
		}
	}
}

// Lines of different rules, verdicts and formats, one after another, each
// get their own shared parts: what Audit keeps from the last line is used
// only for a line it fits.
func TestAuditSharedPartsFollowTheLine(t *testing.T) {
	var out bytes.Buffer
	l := newLogSwitch(&out, policy.LogSettings{Format: "json", Level: "info"})
	a := resolver.AuditLine{Verdict: "blocked", Client: netip.MustParseAddr("127.0.0.1"), Name: "army.ml.", Type: "MX",
		Rule: "mali-is-not-mil", Action: "nxdomain", Mode: "enforce"}
	b := a
	b.Verdict, b.Rule, b.Action, b.Mode = "would block", "watch", "null_mx", "monitor"
	c := a
	c.Action = "refuse"
	lines := []resolver.AuditLine{a, a, b, c, a}
	json := []bool{true, true, true, true, false}
	for i, line := range lines {
		if i == len(lines)-1 {
			l.set(policy.LogSettings{Format: "text", Level: "info"})
		}
		auditLog{l}.Audit(line)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.SplitAfter(out.String(), "\n")
	if len(got) != len(lines)+1 || got[len(lines)] != "" {
		t.Fatalf("%d lines written, want %d:\n%s", len(got)-1, len(lines), out.String())
	}
	// The time is Audit's own: compare what follows it.
	rest := func(s string) string { return s[strings.Index(s, "level"):] }
	for i, line := range lines {
		want := slogAuditLine(time.Now(), json[i], line)
		if rest(got[i]) != rest(want) {
			t.Errorf("line %d:\n got %q\nwant %q", i, got[i], want)
		}
	}
}

// BenchmarkAuditFormat is the cost of formatting one audit line, ours and
// slog's.
func BenchmarkAuditFormat(b *testing.B) {
	a := resolver.AuditLine{Verdict: "blocked", Client: netip.MustParseAddr("127.0.0.1"), Name: "x1234.army.ml.", Type: "MX",
		Rule: "mali-is-not-mil", Action: "nxdomain", Mode: "enforce"}
	now := time.Now()
	b.Run("typoguard", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		fx := renderFixed(true, a) // as Audit keeps it from line to line
		for b.Loop() {
			buf = appendAuditWith(buf[:0], now, fx, a)
		}
	})
	b.Run("slog", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			slogAuditLine(now, true, a)
		}
	})
}
