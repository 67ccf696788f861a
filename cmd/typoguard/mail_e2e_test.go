package main

import (
	"bufio"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// The mail end-to-end test proves what the resolver is for: a real Postfix
// whose only resolver is typoguard delivers mail for the protected domain and
// bounces mail for its lookalikes in the first attempt, without ever
// connecting to the lookalike's server, and the sender gets the bounce.
//
// Everything runs on the loopback of a network namespace the test creates,
// where every 127.0.0.x is a local address and /etc/resolv.conf names
// 127.0.0.1 (`ip netns exec` mounts /etc/netns/NAME/resolv.conf there):
//
//	127.0.0.1:53  typoguard, in front of a fake upstream (resolvertest.Zone)
//	127.0.0.1:25  Postfix's smtpd, where the test submits the mail
//	127.0.0.2:25  the right server: MX of army.mil
//	127.0.0.3:25  the wrong server: every lookalike's MX and address
//	127.0.0.4:25  the sender's server: MX of sender.test, receives the bounces
//	127.0.0.5:25  typoguard's explainer at the sinkhole address: 550 to all
//
// The test re-runs its own binary inside the namespace with mailChildEnv set
// to a directory for Postfix's files; that child does the work.

// mailChildEnv marks the copy of the test binary that runs inside the
// network namespace and names the directory it keeps Postfix in.
const mailChildEnv = "TYPOGUARD_MAIL_TEST_DIR"

// mailSender is the envelope sender of every test message: bounces go to it.
const mailSender = "alice@sender.test"

// mailZone is what the fake upstream knows. Every lookalike leads to the
// wrong server, so a block that fails shows up as mail delivered there.
var mailZone = []string{
	"sender.test. 300 IN MX 10 mx.sender.test.",
	"mx.sender.test. 300 IN A 127.0.0.4",

	"army.mil. 300 IN MX 10 mx.army.mil.",
	"mx.army.mil. 300 IN A 127.0.0.2",

	"army.ml. 300 IN MX 10 mx.army.ml.",
	"army.ml. 300 IN A 127.0.0.3",
	"mx.army.ml. 300 IN A 127.0.0.3",
	"arrny.mil. 300 IN MX 10 mx.arrny.mil.",
	"arrny.mil. 300 IN A 127.0.0.3",
	"mx.arrny.mil. 300 IN A 127.0.0.3",
	"armv.mil. 300 IN MX 10 mx.armv.mil.",
	"armv.mil. 300 IN A 127.0.0.3",
	"mx.armv.mil. 300 IN A 127.0.0.3",
	"amry.mil. 300 IN MX 10 mx.amry.mil.",
	"amry.mil. 300 IN A 127.0.0.3",
	"mx.amry.mil. 300 IN A 127.0.0.3",
	// A lookalike no rule lists: lookalike protection of army.mil blocks it.
	"arny.mil. 300 IN MX 10 mx.arny.mil.",
	"arny.mil. 300 IN A 127.0.0.3",
	"mx.arny.mil. 300 IN A 127.0.0.3",

	// Names outside ml whose answers lead into it.
	"trap.example. 300 IN MX 10 mx.evil.ml.",
	"mx.evil.ml. 300 IN A 127.0.0.3",
	"alias.example. 300 IN CNAME army.ml.",
	"cname-mx.example. 300 IN MX 10 mx.cname-mx.example.",
	"mx.cname-mx.example. 300 IN CNAME mx.army.ml.",
}

// mailPolicy is typoguard's policy for the test, forwarding to upstream.
func mailPolicy(upstream string) string {
	return fmt.Sprintf(`version: 1
log: {format: json, level: info}
upstreams: [%q]
upstream_timeout: 2s
acl:
  allow: [127.0.0.0/8, "::1/128"]
answers:
  ttl: 1m
  sinkhole_ipv4: 127.0.0.5
  sinkhole_mx: sinkhole.guarded.test
rules:
  - name: mali-is-not-mil
    domains: [ml]
    types: [MX, A, AAAA, ANY]
    action: nxdomain
  - name: rn-looks-like-m
    domains: [arrny.mil]
    action: null-mx
  - name: v-next-to-y
    domains: [armv.mil]
    action: nodata
  - name: swapped-letters
    domains: [amry.mil]
    action: sinkhole
lookalikes:
  protect: [army.mil]
explainer:
  listen: ["127.0.0.5:25"]
  hostname: sinkhole.guarded.test
`, upstream)
}

// mailCase is one message and what must become of it.
type mailCase struct {
	name string
	rcpt string
	rule string // the typoguard rule that blocks it; "" for mail to deliver
	dsn  string // the DSN Postfix must log: exact when complete ("5.4.4"), else a prefix ("5.")
	// explained is what the bounce's Diagnostic-Code must say, when the
	// mail reached typoguard's explainer.
	explained string
}

var mailCases = []mailCase{
	{"protected domain delivered", "user@army.mil", "", "2.0.0", ""},
	{"nxdomain", "user@army.ml", "lookalike of army.mil", "5.4.4", ""},
	{"unlisted lookalike", "user@arny.mil", "lookalike of army.mil", "5.4.4", ""},
	{"null-mx", "user@arrny.mil", "rn-looks-like-m", "5.1.0", ""},
	{"nodata", "user@armv.mil", "v-next-to-y", "5.", ""},
	{"sinkhole", "user@amry.mil", "swapped-letters", "5.1.2",
		`smtp; 550 5.1.2 amry.mil is not army.mil: the address looks like a mistyped army.mil (letters swapped); this message was not sent - check the address (typoguard rule "swapped-letters")`},
	{"MX exchange under ml", "user@trap.example", "mali-is-not-mil", "5.", ""},
	{"domain is a CNAME into ml", "user@alias.example", "lookalike of army.mil", "5.", ""},
	{"MX exchange is a CNAME into ml", "user@cname-mx.example", "lookalike of army.mil", "5.", ""},
}

// mailDeadline bounds the wait for every message's outcome and every bounce.
const mailDeadline = 45 * time.Second

func TestMailPostfix(t *testing.T) {
	if dir := os.Getenv(mailChildEnv); dir != "" {
		testMailInNetns(t, dir)
		return
	}
	ip := mailTool(t, "ip")
	mailTool(t, "postfix")
	mailTool(t, "postqueue")

	// Postfix's daemons drop to the postfix user: its directory must be
	// reachable by it, which t.TempDir's 0700 is not.
	dir, err := os.MkdirTemp("", "typoguard-mail")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ns := newMailNetns(t, ip)
	runInNetns(t, ip, ns, "TestMailPostfix", mailChildEnv+"="+dir)
}

// testMailInNetns is the test proper, run inside the network namespace.
func testMailInNetns(t *testing.T, dir string) {
	checkInTestNetns(t, mailChildEnv)

	right := newSMTPSink(t, "mx.army.mil", "127.0.0.2", "")
	wrong := newSMTPSink(t, "lookalike-server", "127.0.0.3", "")
	senderMX := newSMTPSink(t, "mx.sender.test", "127.0.0.4", "")

	upstream := resolvertest.NewServer(t, resolvertest.NewZone(t, mailZone...))
	g := startGuardAt(t, mailPolicy(upstream), "127.0.0.1:53")
	pf := startPostfix(t, dir)

	start := time.Now()
	for _, c := range mailCases {
		submit(t, mailSender, c.rcpt, "typoguard mail test: "+c.name)
	}

	// Wait for an outcome for every message, and for the bounce of every
	// bounced one to reach the sender's server.
	deadline := time.Now().Add(mailDeadline)
	for {
		waiting := waitingFor(pf.deliveries(), senderMX.messages())
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s still waiting for:\n%s", mailDeadline, strings.Join(waiting, "\n"))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("every outcome and bounce in %s", time.Since(start).Round(time.Millisecond))

	all := pf.deliveries()
	for _, c := range mailCases {
		t.Run(c.name, func(t *testing.T) {
			ds := deliveriesTo(all, c.rcpt)
			for _, d := range ds {
				t.Logf("%s", d.line)
			}
			if c.rule == "" {
				checkDelivered(t, c, ds, right)
				return
			}
			checkBounced(t, c, ds, wrong, senderMX, g)
		})
	}

	if conns := wrong.connections(); len(conns) > 0 {
		t.Errorf("the lookalikes' server (127.0.0.3) was reached: %d connections, recipients %v, %d messages accepted",
			len(conns), wrong.recipients(), len(wrong.messages()))
	}
	if q := pf.drainedQueue(t, 10*time.Second); q != "" {
		t.Errorf("mail left in Postfix's queue (deferred, not bounced):\n%s", q)
	}
	if t.Failed() {
		t.Logf("Postfix log:\n%s", pf.log())
		t.Logf("typoguard log: %v", g.logLines())
	}
}

// waitingFor lists the messages without a final outcome yet: no delivery
// status, or bounced without the bounce at the sender's server.
func waitingFor(ds []delivery, atSender []sinkMessage) []string {
	var waiting []string
	for _, c := range mailCases {
		got := deliveriesTo(ds, c.rcpt)
		switch {
		case len(got) == 0:
			waiting = append(waiting, c.rcpt+": no delivery status in Postfix's log")
		case got[len(got)-1].status == "bounced" && bounceFor(atSender, c.rcpt) == nil:
			waiting = append(waiting, c.rcpt+": bounced, but no bounce at the sender's server")
		}
	}
	return waiting
}

func checkDelivered(t *testing.T, c mailCase, ds []delivery, right *smtpSink) {
	if len(ds) != 1 || ds[0].status != "sent" {
		t.Fatalf("want one delivery status, sent; got %d: %v", len(ds), ds)
	}
	if d := ds[0]; d.dsn != c.dsn || !strings.HasSuffix(d.relay, "[127.0.0.2]:25") {
		t.Errorf("dsn=%s relay=%s, want dsn=%s via the right server 127.0.0.2", d.dsn, d.relay, c.dsn)
	}
	checkReceived(t, c, right)
}

// checkReceived checks that the right server got the message of c.
func checkReceived(t *testing.T, c mailCase, right *smtpSink) {
	t.Helper()
	for _, m := range right.messages() {
		if slices.Equal(m.To, []string{c.rcpt}) && m.From == mailSender && strings.Contains(m.Data, "Subject: typoguard mail test: "+c.name) {
			return
		}
	}
	t.Errorf("the right server got no message for %s from %s; it has %v", c.rcpt, mailSender, right.messages())
}

func checkBounced(t *testing.T, c mailCase, ds []delivery, wrong, senderMX *smtpSink, g *guard) {
	if slices.Contains(wrong.recipients(), c.rcpt) {
		t.Errorf("Postfix gave %s to the lookalike's server (127.0.0.3)", c.rcpt)
	}
	if len(ds) != 1 {
		t.Fatalf("want exactly one delivery attempt, a permanent failure; got %d: %v", len(ds), ds)
	}
	d := ds[0]
	if d.status != "bounced" {
		t.Fatalf("status=%s, want bounced in the first attempt: %s", d.status, d.line)
	}
	if ok := d.dsn == c.dsn || (strings.Count(c.dsn, ".") < 2 && strings.HasPrefix(d.dsn, c.dsn)); !ok {
		t.Errorf("dsn=%s, want %s: %s", d.dsn, c.dsn, d.line)
	}
	if strings.Contains(d.relay, "[127.0.0.3]") {
		t.Errorf("relay=%s: the lookalike's server was contacted", d.relay)
	}

	bounce := bounceFor(senderMX.messages(), c.rcpt)
	if bounce == nil {
		t.Errorf("no bounce for %s reached the sender's server (127.0.0.4); it has %v", c.rcpt, senderMX.messages())
	} else {
		if bounce.From != "" || !slices.Equal(bounce.To, []string{mailSender}) {
			t.Errorf("bounce from <%s> to %v, want from <> to %s", bounce.From, bounce.To, mailSender)
		}
		for _, want := range []string{"Action: failed", "Status: " + d.dsn} {
			if !strings.Contains(bounce.Data, want) {
				t.Errorf("bounce lacks %q:\n%s", want, bounce.Data)
			}
		}
		if c.explained != "" {
			checkExplained(t, c, bounce.Data, g)
		}
	}

	checkBlocked(t, g, c.rule)
}

// checkExplained checks that the bounce's Diagnostic-Code (RFC 3464 §2.3.6)
// carries the explainer's reply, and that typoguard logged the refusal.
func checkExplained(t *testing.T, c mailCase, bounce string, g *guard) {
	t.Helper()
	code := diagnosticCode(bounce)
	if code != c.explained {
		t.Errorf("bounce Diagnostic-Code:\n got %q\nwant %q\nbounce:\n%s", code, c.explained, bounce)
	} else {
		t.Logf("the sender was told: Diagnostic-Code: %s\nthe whole bounce:\n%s", code, bounce)
	}
	for _, l := range g.logLines() {
		if l["msg"] == "refused at sinkhole" && l["rcpt"] == c.rcpt && l["rule"] == c.rule {
			return
		}
	}
	t.Errorf("typoguard logged no refusal at the sinkhole of %s by rule %q", c.rcpt, c.rule)
}

// diagnosticCode returns the Diagnostic-Code field (RFC 3464 §2.3.6) of
// the first recipient in a delivery status notification: the
// message/delivery-status part of its multipart/report, decoded and
// unfolded. It returns "" when there is none.
func diagnosticCode(dsn string) string {
	msg, err := mail.ReadMessage(strings.NewReader(dsn))
	if err != nil {
		return ""
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return ""
	}
	parts := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := parts.NextRawPart()
		if err != nil {
			return ""
		}
		t, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if t != "message/delivery-status" && t != "message/global-delivery-status" {
			continue
		}
		// Postfix breaks the long lines of a message/global-delivery-status
		// part (RFC 6533, sent when the message came with SMTPUTF8) with
		// quoted-printable soft breaks, though it labels the part 7bit; a
		// quoted-printable reader takes them out and leaves the rest as is.
		var body io.Reader = quotedprintable.NewReader(part)
		// The per-message fields, then per-recipient groups of fields, each
		// group a header block of its own.
		r := textproto.NewReader(bufio.NewReader(body))
		for {
			h, err := r.ReadMIMEHeader()
			if code := h.Get("Diagnostic-Code"); code != "" {
				return code
			}
			if err != nil {
				return ""
			}
		}
	}
}

// deliveriesTo returns the delivery statuses of one recipient, in order.
func deliveriesTo(ds []delivery, rcpt string) []delivery {
	var out []delivery
	for _, d := range ds {
		if strings.EqualFold(d.to, rcpt) {
			out = append(out, d)
		}
	}
	return out
}

// nameservers returns the nameserver addresses of a resolv.conf.
func nameservers(resolvConf string) []string {
	var ns []string
	for _, line := range strings.Split(resolvConf, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			ns = append(ns, f[1])
		}
	}
	return ns
}
