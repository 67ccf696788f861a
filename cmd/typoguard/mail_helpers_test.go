package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mailTool finds a program the mail test needs (ip, postfix, postqueue).
// Without it the test fails under CI=true and is skipped elsewhere, as with
// dig. Root is needed as well: for the network namespace, port 25 and 53, and
// Postfix itself.
func mailTool(t *testing.T, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the mail test needs root under CI=true (network namespace, ports 25 and 53, Postfix)")
		}
		t.Skip("the mail test needs root (network namespace, ports 25 and 53, Postfix)")
	}
	p, err := exec.LookPath(name)
	if err != nil {
		// root's PATH usually has /usr/sbin; sudo and some CI shells do not.
		if _, serr := os.Stat("/usr/sbin/" + name); serr == nil {
			return "/usr/sbin/" + name
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v (apt-get install postfix iproute2)", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// mustRun runs a command and fails the test with its output if it fails.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newMailNetns creates a network namespace with loopback up (so every
// 127.0.0.x is a local address in it) and an /etc/netns/NAME/resolv.conf
// naming 127.0.0.1, which `ip netns exec` mounts over /etc/resolv.conf for
// whatever runs inside. Cleanup stops whatever is still running in the
// namespace (only processes there: all of them were started by this test),
// deletes the namespace and removes the files it wrote.
func newMailNetns(t *testing.T, ip string) string {
	t.Helper()
	name := fmt.Sprintf("typoguard-mail-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		// Root without CAP_SYS_ADMIN, as in an unprivileged container.
		if os.Getenv("CI") == "true" {
			t.Fatalf("the mail test needs a network namespace under CI=true: ip netns add: %v\n%s", err, out)
		}
		t.Skipf("cannot create a network namespace: ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if pids := drainNetns(ip, name, 10*time.Second); len(pids) > 0 {
			t.Errorf("processes %v still running in network namespace %s after the test; killed them", pids, name)
		}
		if out, err := exec.Command(ip, "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v\n%s", name, err, out)
		}
	})
	mustRun(t, ip, "-n", name, "link", "set", "lo", "up")

	const netnsRoot = "/etc/netns"
	_, statErr := os.Stat(netnsRoot)
	createdRoot := errors.Is(statErr, os.ErrNotExist)
	etc := filepath.Join(netnsRoot, name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(etc)
		if createdRoot {
			os.Remove(netnsRoot) // only if empty: someone else may have added theirs
		}
	})
	resolv := "# typoguard mail test: typoguard is the only resolver\nnameserver 127.0.0.1\noptions timeout:2 attempts:1\n"
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte(resolv), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// drainNetns waits up to wait for the processes in network namespace name to
// exit (Postfix daemons leave shortly after their master), then kills the ones
// that remain and returns their PIDs.
func drainNetns(ip, name string, wait time.Duration) []string {
	deadline := time.Now().Add(wait)
	for {
		out, err := exec.Command(ip, "netns", "pids", name).Output()
		pids := strings.Fields(string(out))
		if err != nil || len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				if n, err := strconv.Atoi(pid); err == nil {
					syscall.Kill(n, syscall.SIGKILL)
				}
			}
			return pids
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// smtpSink is a minimal SMTP server on port 25 of one loopback address that
// records every connection and every message it accepts. With rejectRcpt set
// it answers every RCPT TO with that reply instead, as the SMTP responder
// behind a sinkhole address does.
type smtpSink struct {
	name       string
	addr       string
	rejectRcpt string // e.g. "550 5.7.1 ..."; empty: accept every recipient

	ln net.Listener
	wg sync.WaitGroup // the accept loop and the sessions

	mu    sync.Mutex // guards the fields below
	conns []string   // remote address of every connection accepted
	open  map[net.Conn]bool
	msgs  []sinkMessage
	rcpts []string // every RCPT TO received, accepted or not
}

// sinkMessage is one message a sink accepted.
type sinkMessage struct {
	From string // reverse path; "" for a bounce (RFC 5321 §4.5.5)
	To   []string
	Data string // lines end in \n, dot-stuffing undone
}

func newSMTPSink(t *testing.T, name, ip, rejectRcpt string) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "25"))
	if err != nil {
		t.Fatalf("SMTP sink %s: %v", name, err)
	}
	s := &smtpSink{name: name, addr: ln.Addr().String(), rejectRcpt: rejectRcpt, ln: ln, open: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *smtpSink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		s.conns = append(s.conns, c.RemoteAddr().String())
		s.open[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(c)
			s.mu.Lock()
			delete(s.open, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// session speaks the server side of RFC 5321 just far enough for Postfix.
func (s *smtpSink) session(c net.Conn) {
	c.SetDeadline(time.Now().Add(time.Minute))
	tc := textproto.NewConn(c)
	reply := func(line string) bool { return tc.PrintfLine("%s", line) == nil }
	if !reply("220 " + s.name + " ESMTP test sink") {
		return
	}
	var (
		from string
		to   []string
		mail bool // MAIL FROM seen in this transaction
	)
	for {
		line, err := tc.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		ok := true
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			ok = reply("250 " + s.name)
		case "MAIL":
			from, to, mail = pathOf(arg), nil, true
			ok = reply("250 2.1.0 Ok")
		case "RCPT":
			rcpt := pathOf(arg)
			s.mu.Lock()
			s.rcpts = append(s.rcpts, rcpt)
			s.mu.Unlock()
			switch {
			case !mail:
				ok = reply("503 5.5.1 Error: need MAIL command")
			case s.rejectRcpt != "":
				ok = reply(s.rejectRcpt)
			default:
				to = append(to, rcpt)
				ok = reply("250 2.1.5 Ok")
			}
		case "DATA":
			if len(to) == 0 {
				ok = reply("554 5.5.1 Error: no valid recipients")
				break
			}
			if !reply("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			data, err := io.ReadAll(tc.DotReader())
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, sinkMessage{From: from, To: to, Data: string(data)})
			s.mu.Unlock()
			from, to, mail = "", nil, false
			ok = reply("250 2.0.0 Ok: queued")
		case "RSET":
			from, to, mail = "", nil, false
			ok = reply("250 2.0.0 Ok")
		case "NOOP":
			ok = reply("250 2.0.0 Ok")
		case "QUIT":
			reply("221 2.0.0 Bye")
			return
		default:
			ok = reply("502 5.5.2 Error: command not recognized")
		}
		if !ok {
			return
		}
	}
}

// pathOf returns the address inside <...> of a MAIL FROM or RCPT TO argument.
func pathOf(arg string) string {
	_, rest, ok := strings.Cut(arg, "<")
	if !ok {
		return ""
	}
	addr, _, _ := strings.Cut(rest, ">")
	return addr
}

func (s *smtpSink) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// connections returns the remote address of every connection so far.
func (s *smtpSink) connections() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.conns...)
}

// recipients returns every RCPT TO address received so far.
func (s *smtpSink) recipients() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rcpts...)
}

// messages returns the messages accepted so far.
func (s *smtpSink) messages() []sinkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkMessage(nil), s.msgs...)
}

// postfixInstance is a private Postfix: its own configuration, queue and log
// file under one directory, its smtpd on 127.0.0.1:25, chroot off so that
// its DNS lookups read the namespace's /etc/resolv.conf.
type postfixInstance struct {
	postfix, postqueue string
	configDir          string
	logFile            string
}

// postfixMainCF is main.cf; %[1]s is the instance's directory.
const postfixMainCF = `# A private Postfix for typoguard's mail test. Its only resolver is
# typoguard: /etc/resolv.conf in the test's network namespace names 127.0.0.1.
compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
# Postfix logs here, not to syslog, and only under maillog_file_prefixes.
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = mta.guarded.test
mydomain = guarded.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
relayhost =
inet_interfaces = 127.0.0.1
inet_protocols = all
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
# Deliver by MX from DNS, as a mail server facing the Internet does.
smtp_host_lookup = dns
smtp_dns_support_level = enabled
`

// postfixMasterCF is master.cf: the services a relay needs, none chrooted
// (a chroot would read its own copy of resolv.conf), logging through postlogd
// to maillog_file.
const postfixMasterCF = `# service type  private unpriv  chroot  wakeup  maxproc command
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// startPostfix writes the configuration under dir (which must be readable by
// the postfix user), with extra lines at the end of main.cf, starts the
// instance and waits until its smtpd answers. Cleanup stops it and waits
// for its master to exit.
func startPostfix(t *testing.T, dir string, extra ...string) *postfixInstance {
	t.Helper()
	p := &postfixInstance{
		postfix:   mailTool(t, "postfix"),
		postqueue: mailTool(t, "postqueue"),
		configDir: filepath.Join(dir, "etc"),
		logFile:   filepath.Join(dir, "maillog"),
	}
	// postfix start creates what is inside the queue directory, not the
	// directory itself.
	for _, d := range []string{p.configDir, filepath.Join(dir, "spool")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mainCF := fmt.Sprintf(postfixMainCF, dir) + strings.Join(extra, "\n") + "\n"
	for name, text := range map[string]string{"main.cf": mainCF, "master.cf": postfixMasterCF} {
		if err := os.WriteFile(filepath.Join(p.configDir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Postfix reports its errors to its log, and on stderr only to a
	// terminal.
	if out, err := exec.Command(p.postfix, "-c", p.configDir, "start").CombinedOutput(); err != nil {
		t.Fatalf("postfix start: %v\n%s\nmaillog:\n%s", err, out, p.log())
	}
	t.Cleanup(func() { p.stop(t) })

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:25", time.Second)
		if err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix smtpd not answering on 127.0.0.1:25 within 10s: %v\nmaillog:\n%s", err, p.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// running reports whether the instance's master is running.
func (p *postfixInstance) running() bool {
	return exec.Command(p.postfix, "-c", p.configDir, "status").Run() == nil
}

func (p *postfixInstance) stop(t *testing.T) {
	if out, err := exec.Command(p.postfix, "-c", p.configDir, "stop").CombinedOutput(); err != nil {
		t.Errorf("postfix stop: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.running() {
		if time.Now().After(deadline) {
			exec.Command(p.postfix, "-c", p.configDir, "abort").Run()
			t.Errorf("postfix still running 10s after postfix stop; aborted it")
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// log returns Postfix's log so far.
func (p *postfixInstance) log() string {
	b, _ := os.ReadFile(p.logFile)
	return string(b)
}

// queue returns what is still in the queue, as postqueue -j prints it: one
// JSON object a message, nothing when the queue is empty.
func (p *postfixInstance) queue(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(p.postqueue, "-c", p.configDir, "-j").CombinedOutput()
	if err != nil {
		t.Errorf("postqueue -j: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// drainedQueue waits up to wait for the queue to empty, and returns what is
// still in it then. A message whose last recipient has just bounced stays
// in the active queue for a moment while Postfix finishes its bounce; a
// deferred one stays for good.
func (p *postfixInstance) drainedQueue(t *testing.T, wait time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		q := p.queue(t)
		if q == "" || time.Now().After(deadline) {
			return q
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// delivery is one delivery-status line of Postfix's log: what became of one
// recipient in one attempt.
type delivery struct {
	line   string // from "postfix/..." on, without time and host
	to     string
	relay  string // "none" when no server was reached
	dsn    string // RFC 3463 enhanced status code, e.g. 5.4.4
	status string // sent, bounced, deferred, expired, ...
	reason string // the text in parentheses
}

var deliveryRe = regexp.MustCompile(`(postfix/\S+\[\d+\]: [0-9A-Za-z]+: to=<([^>]*)>, (?:orig_to=<[^>]*>, )?relay=([^,]+), .*\bdsn=([0-9.]+), status=(\w+) \((.*)\))$`)

// deliveries parses the delivery-status lines of Postfix's log so far.
func (p *postfixInstance) deliveries() []delivery {
	var ds []delivery
	for _, line := range strings.Split(p.log(), "\n") {
		if m := deliveryRe.FindStringSubmatch(line); m != nil {
			ds = append(ds, delivery{line: m[1], to: m[2], relay: m[3], dsn: m[4], status: m[5], reason: m[6]})
		}
	}
	return ds
}

// submit hands one message to Postfix's smtpd on 127.0.0.1:25, as a mail
// client inside the organisation does.
func submit(t *testing.T, from, to, subject string) {
	t.Helper()
	c, err := smtp.Dial("127.0.0.1:25")
	if err != nil {
		t.Fatalf("connect to postfix: %v", err)
	}
	defer c.Close()
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.%s@sender.test>\r\n\r\nTest message for %s.\r\n",
		from, to, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), strings.ReplaceAll(to, "@", "."), to)
	steps := []struct {
		what string
		do   func() error
	}{
		{"HELO", func() error { return c.Hello("client.sender.test") }},
		{"MAIL FROM", func() error { return c.Mail(from) }},
		{"RCPT TO", func() error { return c.Rcpt(to) }},
		{"DATA", func() error {
			w, err := c.Data()
			if err != nil {
				return err
			}
			if _, err := io.WriteString(w, msg); err != nil {
				return err
			}
			return w.Close()
		}},
		{"QUIT", c.Quit},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("submit to <%s>: %s: %v", to, s.what, err)
		}
	}
}

// bounceFor finds the delivery status notification (RFC 3464) about rcpt
// among msgs, with or without a space after "rfc822;" (Exim writes none).
func bounceFor(msgs []sinkMessage, rcpt string) *sinkMessage {
	re := regexp.MustCompile(`(?mi)^Final-Recipient: *rfc822; *` + regexp.QuoteMeta(rcpt) + `$`)
	for i, m := range msgs {
		if re.MatchString(m.Data) {
			return &msgs[i]
		}
	}
	return nil
}

// checkBlocked checks that typoguard logged a block by rule.
func checkBlocked(t *testing.T, g *guard, rule string) {
	t.Helper()
	for _, l := range g.logLines() {
		if l["msg"] == "blocked" && l["rule"] == rule {
			return
		}
	}
	t.Errorf("typoguard logged no block by rule %q", rule)
}

// checkInTestNetns fails the test unless /etc/resolv.conf names only
// 127.0.0.1, as it does in the network namespace of newMailNetns; childEnv
// is what marked this process as the copy that should run there.
func checkInTestNetns(t *testing.T, childEnv string) {
	t.Helper()
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if ns := nameservers(string(resolv)); !slices.Equal(ns, []string{"127.0.0.1"}) {
		t.Fatalf("%s set but /etc/resolv.conf names %v, not just 127.0.0.1: not inside the test's network namespace", childEnv, ns)
	}
}

// runInNetns runs this test binary's test name inside network namespace ns
// with env added, and fails t with the child's output if it fails. The
// child's output is quoted, so that its RUN/PASS/FAIL lines are not read as
// t's.
func runInNetns(t *testing.T, ip, ns, name string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", ns,
		os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1", "-test.timeout=90s")
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	quoted := "| " + strings.ReplaceAll(strings.TrimRight(out.String(), "\n"), "\n", "\n| ")
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		t.Fatalf("%s in network namespace %s failed after %s: %v\n%s", name, ns, took, err, quoted)
	}
	if testing.Verbose() {
		t.Logf("%s in network namespace %s passed in %s:\n%s", name, ns, took, quoted)
	}
}
