package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// The Exim mail test is the Postfix mail test (TestMailPostfix) with Exim 4,
// Debian's default mail server, in Postfix's place: the same namespace,
// servers, zone, policy and messages, and the same proof that every
// lookalike bounces in the first attempt without reaching the lookalike's
// server. Exim takes the mail over SMTP on 127.0.0.1:25 and routes it by MX
// from DNS with Debian's routers.
//
// Debian's dnslookup router ignores MX hosts and addresses on loopback and
// in the private ranges (debianIgnoreTargetHosts). Every server of the test
// is on 127.0.0.x, so the instance that delivers takes 127.0.0.0/8 out of
// that list, as a site takes out its sinkhole address. A second instance
// keeps Debian's list as it is and shows what that does to mail for the
// sinkhole: it bounces at once, without the responder's reason.

// eximChildEnv marks the copy of the test binary that runs inside the
// network namespace and names the directory it keeps the Exim instances in.
const eximChildEnv = "TYPOGUARD_EXIM_TEST_DIR"

// eximRoutingFailures is the reason Exim must log for each lookalike of
// mailCases that it fails at routing, from what typoguard answered.
var eximRoutingFailures = map[string]string{
	"user@army.ml":          "Unrouteable address",
	"user@arny.mil":         "Unrouteable address",
	"user@arrny.mil":        "an MX or SRV record indicated no SMTP service",
	"user@armv.mil":         "Unrouteable address",
	"user@trap.example":     "Unrouteable address",
	"user@alias.example":    "Unrouteable address",
	"user@cname-mx.example": "all relevant MX records point to non-existent hosts",
}

// eximReason returns the reason Exim must log for the failure of the
// lookalike c: for mail that reached typoguard's explainer, its reply.
func eximReason(c mailCase) (string, bool) {
	if reply, ok := strings.CutPrefix(c.explained, "smtp; "); ok {
		return "R=dnslookup T=remote_smtp H=sinkhole.guarded.test [127.0.0.5]: SMTP error from remote mail server after RCPT TO:<" + c.rcpt + ">: " + reply, true
	}
	reason, ok := eximRoutingFailures[c.rcpt]
	return reason, ok
}

// stockRcpt is the recipient of the message to the sinkhole domain that the
// instance with Debian's list of ignored hosts delivers.
const stockRcpt = "stock-list@amry.mil"

func TestMailExim(t *testing.T) {
	if dir := os.Getenv(eximChildEnv); dir != "" {
		testEximInNetns(t, dir)
		return
	}
	ip := mailTool(t, "ip")
	binary := eximBinary(t)

	// Exim runs as eximUser: its directory must be reachable by it, which
	// t.TempDir's 0700 is not.
	dir, err := os.MkdirTemp("", "typoguard-exim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ns := newMailNetns(t, ip)
	uid, gid := addEximUser(t, ns)
	site := newEximInstance(t, binary, filepath.Join(dir, "site"), exceptIgnored(debianIgnoreTargetHosts, "127.0.0.0/8"), uid, gid)
	newEximInstance(t, binary, filepath.Join(dir, "stock"), debianIgnoreTargetHosts, uid, gid)
	site.checkRuns(t, ip, ns)

	runInNetns(t, ip, ns, "TestMailExim", eximChildEnv+"="+dir, eximEnv+"="+binary)
}

// testEximInNetns is the test proper, run inside the network namespace.
func testEximInNetns(t *testing.T, dir string) {
	checkInTestNetns(t, eximChildEnv)
	binary := eximBinary(t)
	site := &eximInstance{binary: binary, dir: filepath.Join(dir, "site")}
	stock := &eximInstance{binary: binary, dir: filepath.Join(dir, "stock")}

	right := newSMTPSink(t, "mx.army.mil", "127.0.0.2", "")
	wrong := newSMTPSink(t, "lookalike-server", "127.0.0.3", "")
	senderMX := newSMTPSink(t, "mx.sender.test", "127.0.0.4", "")

	upstream := resolvertest.NewServer(t, resolvertest.NewZone(t, mailZone...))
	g := startGuardAt(t, mailPolicy(upstream), "127.0.0.1:53")
	site.startDaemon(t)

	start := time.Now()
	for _, c := range mailCases {
		submit(t, mailSender, c.rcpt, "typoguard mail test: "+c.name)
	}
	if waiting := waitForExim(site, senderMX, rcptsOf(mailCases)); len(waiting) > 0 {
		t.Errorf("after %s still waiting for:\n%s", mailDeadline, strings.Join(waiting, "\n"))
	}
	t.Logf("every outcome and bounce in %s", time.Since(start).Round(time.Millisecond))

	all := site.deliveries()
	for _, c := range mailCases {
		t.Run(c.name, func(t *testing.T) {
			ds := eximDeliveriesTo(all, c.rcpt)
			for _, d := range ds {
				t.Logf("%s", d.line)
			}
			if c.rule == "" {
				checkEximDelivered(t, c, ds, right)
				return
			}
			checkEximBounced(t, c, ds, wrong, senderMX, g)
		})
	}
	t.Run("sinkhole with Debian's ignore_target_hosts", func(t *testing.T) {
		checkStockSinkhole(t, stock, senderMX, g)
	})

	if conns := wrong.connections(); len(conns) > 0 {
		t.Errorf("the lookalikes' server (127.0.0.3) was reached: %d connections, recipients %v, %d messages accepted",
			len(conns), wrong.recipients(), len(wrong.messages()))
	}
	for _, e := range []*eximInstance{site, stock} {
		if q := e.queue(t); q != "" {
			t.Errorf("mail left in the queue of %s (deferred or frozen, not bounced):\n%s", e.dir, q)
		}
	}
	for _, e := range []*eximInstance{site, stock} {
		if p := e.panics(); len(p) > 0 {
			t.Errorf("Exim panicked (%s):\n%s", e.dir, strings.Join(p, "\n"))
		}
	}
	if t.Failed() {
		for _, e := range []*eximInstance{site, stock} {
			t.Logf("Exim main log of %s:\n%s", e.dir, e.log("main"))
		}
		t.Logf("typoguard log: %v", g.logLines())
	}
}

// rcptsOf returns the recipients of cases.
func rcptsOf(cases []mailCase) []string {
	var rcpts []string
	for _, c := range cases {
		rcpts = append(rcpts, c.rcpt)
	}
	return rcpts
}

// waitForExim waits up to mailDeadline for an outcome of every rcpt in e's
// log (delivered, failed or deferred: with no queue runner, a deferred
// message stays so), and for the bounce of every failed one at the sender's
// server. It returns what it is still waiting for.
func waitForExim(e *eximInstance, senderMX *smtpSink, rcpts []string) []string {
	deadline := time.Now().Add(mailDeadline)
	for {
		var waiting []string
		ds, atSender := e.deliveries(), senderMX.messages()
		for _, rcpt := range rcpts {
			got := eximDeliveriesTo(ds, rcpt)
			switch {
			case len(got) == 0:
				waiting = append(waiting, rcpt+": no delivery line in Exim's log")
			case got[len(got)-1].flag == "**" && bounceFor(atSender, rcpt) == nil:
				waiting = append(waiting, rcpt+": failed, but no bounce at the sender's server")
			}
		}
		if len(waiting) == 0 || time.Now().After(deadline) {
			return waiting
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkEximDelivered checks that the message of c went to the right server
// in one attempt.
func checkEximDelivered(t *testing.T, c mailCase, ds []eximDelivery, right *smtpSink) {
	if len(ds) != 1 || ds[0].flag != "=>" {
		t.Fatalf("want one delivery line, =>; got %d: %v", len(ds), ds)
	}
	if !strings.Contains(ds[0].rest, " H=mx.army.mil [127.0.0.2] ") {
		t.Errorf("delivered elsewhere than the right server 127.0.0.2: %s", ds[0].line)
	}
	checkReceived(t, c, right)
}

// checkEximBounced checks that the message of c failed in the first
// attempt, for the reason eximReasons gives, without reaching the wrong
// server, that the bounce reached the sender, and that typoguard blocked
// it by c.rule.
func checkEximBounced(t *testing.T, c mailCase, ds []eximDelivery, wrong, senderMX *smtpSink, g *guard) {
	if slices.Contains(wrong.recipients(), c.rcpt) {
		t.Errorf("Exim gave %s to the lookalike's server (127.0.0.3)", c.rcpt)
	}
	if len(ds) != 1 || ds[0].flag != "**" {
		t.Fatalf("want exactly one delivery line, a failure (**) in the first attempt; got %d: %v", len(ds), ds)
	}
	d := ds[0]
	if strings.Contains(d.rest, "[127.0.0.3]") {
		t.Errorf("the lookalike's server was contacted: %s", d.line)
	}
	want, ok := eximReason(c)
	if !ok {
		t.Fatalf("eximRoutingFailures has no reason for %s", c.rcpt)
	}
	if d.rest != want {
		t.Errorf("logged %q\nwant   %q", d.rest, want)
	}
	// The bounce's text says why in a line of its own: Exim's reason, or
	// the explainer's reply, which its Diagnostic-Code must carry too.
	why, explained := strings.CutPrefix(c.explained, "smtp; ")
	if !explained {
		why = want
	}
	if bounce := checkEximBounce(t, senderMX, c.rcpt, "\n    "+why+"\n"); bounce != nil && explained {
		checkExplained(t, c, bounce.Data, g)
	}
	checkBlocked(t, g, c.rule)
}

// checkEximBounce checks that the bounce about rcpt reached the sender's
// server from <> and has text in it, and returns it; nil if there is none.
func checkEximBounce(t *testing.T, senderMX *smtpSink, rcpt, text string) *sinkMessage {
	t.Helper()
	bounce := bounceFor(senderMX.messages(), rcpt)
	if bounce == nil {
		t.Errorf("no bounce for %s reached the sender's server (127.0.0.4); it has %v", rcpt, senderMX.messages())
		return nil
	}
	if bounce.From != "" || !slices.Equal(bounce.To, []string{mailSender}) {
		t.Errorf("bounce from <%s> to %v, want from <> to %s", bounce.From, bounce.To, mailSender)
	}
	for _, want := range []string{"\nAction: failed\n", text} {
		if !strings.Contains(bounce.Data, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce.Data)
		}
	}
	if !regexp.MustCompile(`(?m)^Status: 5\.\d{1,3}\.\d{1,3}$`).MatchString(bounce.Data) {
		t.Errorf("bounce has no permanent Status: 5.x.x:\n%s", bounce.Data)
	}
	if testing.Verbose() {
		t.Logf("bounce for %s:\n%s", rcpt, bounce.Data)
	}
	return bounce
}

// checkStockSinkhole delivers one message for the sinkhole domain with
// Debian's list of ignored target hosts unchanged: Exim takes the sinkhole
// address for no host at all and fails the address at routing, so the mail
// bounces at once but never reaches the responder there, and the bounce
// cannot say why.
func checkStockSinkhole(t *testing.T, stock *eximInstance, senderMX *smtpSink, g *guard) {
	stock.send(t, mailSender, stockRcpt, "typoguard mail test: sinkhole, Debian's ignore_target_hosts")
	if waiting := waitForExim(stock, senderMX, []string{stockRcpt}); len(waiting) > 0 {
		t.Fatalf("after %s still waiting for:\n%s", mailDeadline, strings.Join(waiting, "\n"))
	}
	ds := eximDeliveriesTo(stock.deliveries(), stockRcpt)
	for _, d := range ds {
		t.Logf("%s", d.line)
	}
	if len(ds) != 1 || ds[0].flag != "**" {
		t.Fatalf("want exactly one delivery line, a failure (**) in the first attempt; got %d: %v", len(ds), ds)
	}
	const want = "all relevant MX records point to non-existent hosts"
	if ds[0].rest != want {
		t.Errorf("logged %q, want %q", ds[0].rest, want)
	}
	if log := stock.log("main"); strings.Contains(log, "127.0.0.5") {
		t.Errorf("the instance with Debian's list reached or tried the sinkhole address 127.0.0.5:\n%s", log)
	}
	for _, l := range g.logLines() {
		if l["msg"] == "refused at sinkhole" && l["rcpt"] == stockRcpt {
			t.Errorf("typoguard's explainer was asked for %s: %v", stockRcpt, l)
		}
	}
	checkEximBounce(t, senderMX, stockRcpt, "\n    "+want+"\n")
	checkBlocked(t, g, "swapped-letters")
}

func TestExceptIgnored(t *testing.T) {
	// What a Debian site with its sinkhole at 10.0.0.25 sets
	// ROUTER_DNSLOOKUP_IGNORE_TARGET_HOSTS to, in one line of
	// exim4.conf.localmacros, so that Exim reaches the responder there.
	got := exceptIgnored(debianIgnoreTargetHosts, "10.0.0.25")
	want := "<; !10.0.0.25 ; 0.0.0.0 ; 127.0.0.0/8 ; 192.168.0.0/16 ; 172.16.0.0/12 ; 10.0.0.0/8 ; 169.254.0.0/16 ; 255.255.255.255 ; ::/128 ; ::1/128 ; fc00::/7 ; fe80::/10 ; 100::/64"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
