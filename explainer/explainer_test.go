package explainer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/typoguard/typoguard/policy"
)

// testPolicy sinkholes a listed lookalike, blocks ml and protects army.mil.
const testPolicy = `version: 1
answers:
  sinkhole_ipv4: 127.0.0.1
  sinkhole_mx: sinkhole.test
rules:
  - name: mali-is-not-mil
    domains: [ml]
    action: sinkhole
  - name: swapped-letters
    domains: [amry.mil]
    action: sinkhole
  - name: partner
    domains: [partner.ml]
    action: allow
lookalikes:
  protect: [army.mil]
  action: sinkhole
explainer:
  listen: ["127.0.0.1:0"]
  hostname: sinkhole.test
  timeout: 2s
`

func mustPolicy(t testing.TB, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("test.yaml", []byte(src), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// counts is an Observer that counts what it is told.
type counts struct {
	mu      sync.Mutex // guards the maps
	refused map[string]int
	conns   map[string]int
	errs    map[string]int
	evicted atomic.Int64
}

func newCounts() *counts {
	return &counts{refused: map[string]int{}, conns: map[string]int{}, errs: map[string]int{}}
}

func (c *counts) Refused(rule string) { c.mu.Lock(); c.refused[rule]++; c.mu.Unlock() }
func (c *counts) Connection(r string) { c.mu.Lock(); c.conns[r]++; c.mu.Unlock() }
func (c *counts) Evicted()            { c.evicted.Add(1) }
func (c *counts) Error(r string)      { c.mu.Lock(); c.errs[r]++; c.mu.Unlock() }

func (c *counts) get(m map[string]int, k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m[k]
}

// testServer is an explainer on loopback for one test.
type testServer struct {
	*Server
	addr string
	log  *syncBuffer
	obs  *counts
}

// startServer runs an explainer for policy src on 127.0.0.1 (or on addr,
// when given) until the test ends.
func startServer(t *testing.T, src string, edit func(*policy.ExplainerSettings)) *testServer {
	t.Helper()
	p := mustPolicy(t, src)
	e := p.Explainer
	if edit != nil {
		edit(&e)
	}
	var cur atomic.Pointer[policy.Policy]
	cur.Store(p)
	ts := &testServer{log: &syncBuffer{}, obs: newCounts()}
	ts.Server = New(e, Config{
		Policy:   cur.Load,
		Logger:   slogJSON(ts.log),
		Observer: ts.obs,
	})
	bound, err := ts.Listen(e.Listen)
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = bound[0].String()
	served := make(chan error, 1)
	go func() { served <- ts.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ts
}

// rcptError returns the server's reply to RCPT TO as "550 5.1.2 text".
func rcptError(t *testing.T, c *smtp.Client, rcpt string) string {
	t.Helper()
	err := c.Rcpt(rcpt)
	var te *textproto.Error
	if !errors.As(err, &te) {
		t.Fatalf("RCPT TO:<%s>: want an SMTP error, got %v", rcpt, err)
	}
	return fmt.Sprintf("%d %s", te.Code, te.Msg)
}

func TestDialogue(t *testing.T) {
	ts := startServer(t, testPolicy, nil)
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(nc, "sinkhole.test")
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	defer c.Close()
	if err := c.Hello("mta.example.org"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	for _, ext := range []string{"STARTTLS", "AUTH", "SMTPUTF8"} {
		if ok, _ := c.Extension(ext); ok {
			t.Errorf("EHLO advertises %s", ext)
		}
	}
	if ok, _ := c.Extension("ENHANCEDSTATUSCODES"); !ok {
		t.Errorf("EHLO does not advertise ENHANCEDSTATUSCODES")
	}
	if err := c.Mail("alice@example.org"); err != nil {
		t.Fatalf("MAIL FROM: %v", err)
	}
	cases := []struct{ rcpt, want string }{
		{"user@army.ml", `550 5.1.2 army.ml is not army.mil: the address looks like a mistyped army.mil (letter dropped from the suffix); this message was not sent - check the address (typoguard rule "lookalike of army.mil")`},
		{"user@mail.army.ml", `550 5.1.2 mail.army.ml is under army.ml, which is not army.mil: the address looks like a mistyped army.mil (letter dropped from the suffix); this message was not sent - check the address (typoguard rule "lookalike of army.mil")`},
		{"user@ARNY.mil", `550 5.1.2 arny.mil is not army.mil: the address looks like a mistyped army.mil (keyboard neighbour); this message was not sent - check the address (typoguard rule "lookalike of army.mil")`},
		{"user@amry.mil", `550 5.1.2 amry.mil is not army.mil: the address looks like a mistyped army.mil (letters swapped); this message was not sent - check the address (typoguard rule "swapped-letters")`},
		{"user@mail.bamako.ml", `550 5.7.1 mail.bamako.ml is blocked for mail by this organisation's policy (typoguard rule "mali-is-not-mil"); this message was not sent - check the address`},
		{"user@partner.ml", `550 5.7.1 partner.ml: this host is a typoguard sinkhole and accepts no mail; this message was not sent - check the address`},
		{"user@[192.0.2.1]", `550 5.1.2 this host is a typoguard sinkhole and accepts no mail; this message was not sent - check the address`},
	}
	for _, tc := range cases {
		if got := rcptError(t, c, tc.rcpt); got != tc.want {
			t.Errorf("RCPT TO:<%s>:\n got %s\nwant %s", tc.rcpt, got, tc.want)
		}
	}
	var te *textproto.Error
	if _, err := c.Data(); !errors.As(err, &te) || te.Code != 554 || te.Msg != "5.5.1 no valid recipients" {
		t.Errorf("DATA: want 554 5.5.1 no valid recipients, got %v", err)
	}
	if err := c.Verify("user@army.ml"); !errors.As(err, &te) || te.Code != 252 {
		// net/smtp reads 252 as an error: it only takes 250 for VRFY.
		t.Errorf("VRFY: want 252, got %v", err)
	}
	if err := c.Noop(); err != nil {
		t.Errorf("NOOP: %v", err)
	}
	if err := c.Reset(); err != nil {
		t.Errorf("RSET: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}

	if n := ts.obs.get(ts.obs.refused, "lookalike of army.mil"); n != 3 {
		t.Errorf("refused by lookalike of army.mil: %d, want 3", n)
	}
	if n := ts.obs.get(ts.obs.refused, ""); n != 2 {
		t.Errorf("refused without a rule: %d, want 2", n)
	}
	var audit []map[string]any
	for _, l := range ts.log.lines(t) {
		if l["msg"] == "refused at sinkhole" {
			audit = append(audit, l)
		}
	}
	if len(audit) != len(cases) {
		t.Fatalf("%d audit lines, want %d: %v", len(audit), len(cases), audit)
	}
	want := map[string]any{"client": "127.0.0.1", "from": "alice@example.org", "rcpt": "user@army.ml",
		"reply": "5.1.2", "rule": "lookalike of army.mil", "action": "sinkhole", "looks_like": "army.mil", "kind": "letter dropped from the suffix"}
	for k, v := range want {
		if audit[0][k] != v {
			t.Errorf("audit line %s=%v, want %v: %v", k, audit[0][k], v, audit[0])
		}
	}
}

// TestGreeting checks the raw greeting, and that a message is never taken
// even from a client that ignores the refusals.
func TestGreeting(t *testing.T) {
	ts := startServer(t, testPolicy, nil)
	c := dialRaw(t, ts.addr)
	c.expect(t, "220 sinkhole.test ESMTP")
	c.send(t, "HELO mta.example.org")
	c.expect(t, "250 ")
	c.send(t, "MAIL FROM:<alice@example.org>")
	c.expect(t, "250 ")
	c.send(t, "RCPT TO:<bob@army.ml>")
	c.expect(t, "550 5.1.2 army.ml is not army.mil")
	c.send(t, "DATA")
	c.expect(t, "554 5.5.1 no valid recipients")
	// The message body such a client sends next is read as commands.
	c.send(t, "Subject: hello")
	c.expect(t, "50")
	c.send(t, "QUIT")
	c.expect(t, "221 ")
}

// rawConn is a line-by-line SMTP client for tests.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{Conn: nc, r: bufio.NewReader(nc)}
}

func (c *rawConn) send(t *testing.T, line string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(line + "\r\n")); err != nil {
		t.Fatalf("send %q: %v", line, err)
	}
}

// readReply reads one reply, joining the lines of a multi-line one.
func (c *rawConn) readReply(wait time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(wait))
	var all []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return strings.Join(all, "\n"), err
		}
		line = strings.TrimRight(line, "\r\n")
		all = append(all, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(all, "\n"), nil
		}
	}
}

func (c *rawConn) expect(t *testing.T, prefix string) string {
	t.Helper()
	got, err := c.readReply(5 * time.Second)
	if err != nil {
		t.Fatalf("want a reply %q..., got %q and %v", prefix, got, err)
	}
	if !strings.HasPrefix(got, prefix) {
		t.Fatalf("reply %q, want %q...", got, prefix)
	}
	return got
}

func TestApplyChangesHostname(t *testing.T) {
	ts := startServer(t, testPolicy, nil)
	old := dialRaw(t, ts.addr)
	old.expect(t, "220 sinkhole.test ")
	e := mustPolicy(t, testPolicy).Explainer
	e.Hostname = "explainer.example.net"
	ts.Apply(e)
	c := dialRaw(t, ts.addr)
	c.expect(t, "220 explainer.example.net ")
	// The session that began before goes on as it was.
	old.send(t, "EHLO mta.example.org")
	old.expect(t, "250-")
	old.send(t, "QUIT")
	old.expect(t, "221 ")
}

func slogJSON(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
