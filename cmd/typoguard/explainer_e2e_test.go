package main

import (
	"errors"
	"fmt"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"syscall"
	"testing"
)

// explainerPolicy sinkholes ml and the lookalikes of army.mil, with the
// explainer on a free loopback port; extra is added to the rules.
func explainerPolicy(upstream, hostname, extra string) string {
	return fmt.Sprintf(`version: 1
log: {format: json, level: info}
upstreams: [%q]
answers: {sinkhole_ipv4: 127.0.0.1, sinkhole_mx: sinkhole.test}
rules:
  - {name: mali-is-not-mil, domains: [ml], action: sinkhole}
%slookalikes: {protect: [army.mil], action: sinkhole}
explainer: {listen: ["127.0.0.1:0"], hostname: %s}
metrics: 127.0.0.1:0
`, upstream, extra, hostname)
}

// smtpRefusal opens a session with the explainer at addr, checks its
// greeting names hostname, and returns its reply to RCPT TO:<rcpt>.
func smtpRefusal(t *testing.T, addr, hostname, rcpt string) string {
	t.Helper()
	conn, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, greeting, err := conn.ReadResponse(220)
	conn.Close()
	if err != nil || !strings.HasPrefix(greeting, hostname+" ") {
		t.Fatalf("greeting %q, %v; want it to name %s", greeting, err, hostname)
	}
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mta.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@example.org"); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(rcpt)
	var te *textproto.Error
	if !errors.As(err, &te) {
		t.Fatalf("RCPT TO:<%s>: want a refusal, got %v", rcpt, err)
	}
	c.Quit()
	return fmt.Sprintf("%d %s", te.Code, te.Msg)
}

// explainedBounce returns the reply typoguard explain predicts for a mail
// server sent to the sinkhole for name.
func explainedBounce(t *testing.T, file, name string) string {
	t.Helper()
	out, errOut, code := runBinary(t, "explain", "-config", file, name, "MX")
	if code != 0 {
		t.Fatalf("explain %s: exit %d: %s", name, code, errOut)
	}
	_, after, ok := strings.Cut(out, "is refused at every recipient:\n")
	if !ok {
		t.Fatalf("explain %s prints no bounce:\n%s", name, out)
	}
	line, _, _ := strings.Cut(after, "\n")
	return strings.TrimSpace(line)
}

func TestE2EExplainer(t *testing.T) {
	_, upstream := newUpstream(t)
	g := startGuard(t, explainerPolicy(upstream, "sinkhole.test", ""))
	addr := fmt.Sprint(g.waitLog(t, "explainer listening", msgIs("explainer listening"))["addr"])

	if r := g.dig(t, "army.ml", "MX"); r.status != "NOERROR" || !strings.Contains(strings.Join(r.answer, "\n"), "MX 10 sinkhole.test.") {
		t.Fatalf("army.ml MX: %s %v, want the sinkhole MX", r.status, r.answer)
	}
	// The bounce a mail server gets is the one explain predicts.
	got := smtpRefusal(t, addr, "sinkhole.test", "user@army.ml")
	want := explainedBounce(t, g.file, "army.ml")
	if got != want || !strings.HasPrefix(got, "550 5.1.2 army.ml is not army.mil: ") {
		t.Errorf("RCPT TO:<user@army.ml>:\n got %s\nwant %s (from explain)", got, want)
	}

	// A reload changes the hostname and the policy of the next session.
	extra := "  - {name: bamako-mail, domains: [bamako.ml], action: sinkhole}\n"
	if err := os.WriteFile(g.file, []byte(explainerPolicy(upstream, "explainer.test", extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	g.waitLog(t, "policy reloaded", msgIs("policy reloaded"))
	got = smtpRefusal(t, addr, "explainer.test", "user@bamako.ml")
	if want := explainedBounce(t, g.file, "bamako.ml"); got != want || !strings.Contains(got, `"bamako-mail"`) {
		t.Errorf("after the reload, RCPT TO:<user@bamako.ml>:\n got %s\nwant %s (from explain)", got, want)
	}

	m := scrape(t, "http://"+g.metrics+"/metrics")
	for series, want := range map[string]float64{
		`typoguard_explainer_refused_total{rule="lookalike of army.mil"}`: 1,
		`typoguard_explainer_refused_total{rule="bamako-mail"}`:           1,
		`typoguard_explainer_connections_total{result="served"}`:          4,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	if _, ok := m["typoguard_explainer_sessions"]; !ok {
		t.Errorf("no typoguard_explainer_sessions gauge")
	}
	audit := g.countLog(func(l map[string]any) bool {
		return l["msg"] == "refused at sinkhole" && l["rcpt"] == "user@army.ml" && l["looks_like"] == "army.mil"
	})
	if audit != 1 {
		t.Errorf("%d audit lines for user@army.ml, want 1", audit)
	}
}
