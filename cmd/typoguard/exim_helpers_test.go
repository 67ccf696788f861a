package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// eximEnv names the Exim binary the Exim mail test runs. Debian's
// exim4-daemon-light conflicts with Postfix, so .ci/run unpacks it without
// installing it and sets eximEnv to its exim4; elsewhere an installed
// exim4 is used.
const eximEnv = "TYPOGUARD_EXIM"

// eximUser is the user Debian's Exim is built to run as.
const eximUser = "Debian-exim"

// eximBinary finds the Exim binary: eximEnv, else exim4 on PATH or in
// /usr/sbin. Without one the test fails under CI=true and is skipped
// elsewhere; a path in eximEnv that is not there always fails it.
func eximBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(eximEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s=%s: %v", eximEnv, p, err)
		}
		return p
	}
	p, err := exec.LookPath("exim4")
	if err == nil {
		return p
	}
	if _, serr := os.Stat("/usr/sbin/exim4"); serr == nil {
		return "/usr/sbin/exim4"
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("Exim is required under CI=true: %v (set %s to an exim4 binary; .ci/run unpacks exim4-daemon-light)", err, eximEnv)
	}
	t.Skipf("exim4 not found (%v) and %s not set", err, eximEnv)
	return ""
}

// addEximUser makes eximUser exist inside network namespace ns and returns
// its uid and gid. When the machine has no such user, it writes copies of
// /etc/passwd and /etc/group with one added to /etc/netns/NS/, which `ip
// netns exec` mounts over the originals; the machine's own files are left
// alone, and the copies go with the namespace's directory.
func addEximUser(t *testing.T, ns string) (uid, gid int) {
	t.Helper()
	if u, err := user.Lookup(eximUser); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		return uid, gid
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	group, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	id, ok := freeSystemID(string(passwd), string(group))
	if !ok {
		t.Fatalf("no system uid below 1000 is free as a gid too, for %s", eximUser)
	}
	etc := filepath.Join("/etc/netns", ns)
	files := map[string]string{
		"passwd": withLine(string(passwd), fmt.Sprintf("%s:x:%d:%d:Exim for the typoguard mail test:/nonexistent:/usr/sbin/nologin", eximUser, id, id)),
		"group":  withLine(string(group), fmt.Sprintf("%s:x:%d:", eximUser, id)),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return id, id
}

// freeSystemID returns the highest id below 1000 that is neither a uid in
// passwd nor a gid in group.
func freeSystemID(passwd, group string) (int, bool) {
	used := map[int]bool{}
	for _, file := range []string{passwd, group} {
		for _, line := range strings.Split(file, "\n") {
			if f := strings.Split(line, ":"); len(f) >= 3 {
				if n, err := strconv.Atoi(f[2]); err == nil {
					used[n] = true
				}
			}
		}
	}
	for id := 999; id >= 100; id-- {
		if !used[id] {
			return id, true
		}
	}
	return 0, false
}

// withLine returns file with line appended, on a line of its own.
func withLine(file, line string) string {
	if file != "" && !strings.HasSuffix(file, "\n") {
		file += "\n"
	}
	return file + line + "\n"
}

// debianIgnoreTargetHosts is the ignore_target_hosts of the dnslookup
// router in Debian's exim4-config 4.96, its ROUTER_DNSLOOKUP_IGNORE_TARGET_HOSTS:
// an MX or address in these ranges is treated as no host at all.
const debianIgnoreTargetHosts = "<; 0.0.0.0 ; 127.0.0.0/8 ; 192.168.0.0/16 ; 172.16.0.0/12 ; 10.0.0.0/8 ; 169.254.0.0/16 ; 255.255.255.255 ; ::/128 ; ::1/128 ; fc00::/7 ; fe80::/10 ; 100::/64"

// exceptIgnored returns the list of ignored hosts with the given addresses
// taken out of it, the way a site exempts its sinkhole address: negated
// items in front, so that they match first.
func exceptIgnored(list string, hosts ...string) string {
	sep, rest, _ := strings.Cut(list, " ")
	for i := len(hosts) - 1; i >= 0; i-- {
		rest = "!" + hosts[i] + " ; " + rest
	}
	return sep + " " + rest
}

// eximConf is the configuration of a private Exim; %[1]s is its directory,
// %[2]s the Exim binary, %[3]s the dnslookup router's ignore_target_hosts.
// Its main options, routers, transport and retry rule are those Debian's
// exim4-config sets for an Internet site, without the ones for local
// delivery, TLS and authentication.
const eximConf = `# A private Exim for typoguard's mail test. Its only resolver is typoguard:
# /etc/resolv.conf in the test's network namespace names 127.0.0.1.
exim_path = %[2]s
primary_hostname = mta.guarded.test
spool_directory = %[1]s/spool
log_file_path = %[1]s/log/%%slog
pid_file_path = %[1]s/exim.pid
keep_environment =
daemon_smtp_ports = 25
local_interfaces = 127.0.0.1
# Only the lookups delivery makes: no reverse lookup or ident of clients.
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
dns_dnssec_ok = 1
smtputf8_advertise_hosts =
log_selector = +smtp_protocol_error +smtp_syntax_error +tls_certificate_verified +tls_peerdn

domainlist local_domains = @ : localhost
# The sender's organisation: this server relays for it, as Debian's
# dc_relay_domains does.
domainlist relay_to_domains = sender.test
hostlist relay_from_hosts = 127.0.0.0/8
acl_smtp_rcpt = acl_check_rcpt

begin acl

acl_check_rcpt:
  accept hosts = +relay_from_hosts
  deny message = relay not permitted

begin routers

# Debian's two dnslookup routers: the domains relayed for, with no target
# host ignored, then the rest of the Internet.
dnslookup_relay_to_domains:
  driver = dnslookup
  domains = ! +local_domains : +relay_to_domains
  transport = remote_smtp
  same_domain_copy_routing = yes
  no_more

dnslookup:
  driver = dnslookup
  domains = ! +local_domains
  transport = remote_smtp
  same_domain_copy_routing = yes
  ignore_target_hosts = %[3]s
  no_more

begin transports

remote_smtp:
  driver = smtp

begin retry

# Debian's: a temporary error is retried for four days, never bounced at once.
*                      *           F,2h,15m; G,16h,1h,1.5; F,4d,6h
`

// eximInstance is a private Exim: its own configuration, spool and logs
// under one directory. Exim gives up root for a configuration named with
// -C that its build does not trust, so every process of it runs as
// eximUser: enough to take mail over SMTP and deliver it over SMTP.
type eximInstance struct {
	binary string
	dir    string
}

// newEximInstance writes the configuration of an instance under dir, whose
// dnslookup router ignores the target hosts ignore, and makes its spool and
// log directories, owned by eximUser (uid, gid in the test's namespace).
func newEximInstance(t *testing.T, binary, dir, ignore string, uid, gid int) *eximInstance {
	t.Helper()
	e := &eximInstance{binary: binary, dir: dir}
	for _, d := range []string{dir, filepath.Join(dir, "spool"), filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if d != dir {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Exim reads a configuration owned by root and writable by no one else.
	if err := os.WriteFile(e.conf(), []byte(fmt.Sprintf(eximConf, dir, binary, ignore)), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// conf returns the path of the instance's configuration file.
func (e *eximInstance) conf() string { return filepath.Join(e.dir, "exim4.conf") }

// command returns the Exim command with args, on this instance.
func (e *eximInstance) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, e.binary, append([]string{"-C", e.conf()}, args...)...)
}

// checkRuns runs `exim -bV` on the instance inside network namespace ns,
// where eximUser exists. When Exim cannot run (a shared library missing,
// say) the test fails under CI=true and is skipped elsewhere.
func (e *eximInstance) checkRuns(t *testing.T, ip, ns string) {
	t.Helper()
	out, err := exec.Command(ip, "netns", "exec", ns, e.binary, "-C", e.conf(), "-bV").CombinedOutput()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s -bV: %v\n%s", e.binary, err, out)
	}
	t.Skipf("Exim does not run: %s -bV: %v\n%s", e.binary, err, out)
}

// startDaemon runs the instance's daemon in the foreground (-bdf) and waits
// until it answers on 127.0.0.1:25. Cleanup stops it with SIGTERM.
func (e *eximInstance) startDaemon(t *testing.T) {
	t.Helper()
	cmd := e.command(context.Background(), "-bdf")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("exim daemon still running 10s after SIGTERM; killed it")
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:25", time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("exim daemon exited: %v\n%s\nmainlog:\n%s\npaniclog:\n%s", err, out.String(), e.log("main"), e.log("panic"))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("exim daemon not answering on 127.0.0.1:25 within 10s: %v\nmainlog:\n%s", err, e.log("main"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// send hands one message to the instance on its command line and delivers
// it in the foreground (-odf), as a local program using sendmail does.
func (e *eximInstance) send(t *testing.T, from, to, subject string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := e.command(ctx, "-odf", "-oi", "-f", from, "--", to)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("From: <%s>\nTo: <%s>\nSubject: %s\n\nTest message for %s.\n", from, to, subject, to))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("exim -odf -f %s %s: %v\n%s\nmainlog:\n%s", from, to, err, out, e.log("main"))
	}
}

// lostPrivilege is what every process of an instance writes to the panic
// log as it gives up root (see eximInstance).
const lostPrivilege = "exim user lost privilege for using -C option"

// panics returns the lines of the panic log so far other than lostPrivilege.
func (e *eximInstance) panics() []string {
	var lines []string
	for _, l := range strings.Split(e.log("panic"), "\n") {
		if l != "" && !strings.HasSuffix(l, " "+lostPrivilege) {
			lines = append(lines, l)
		}
	}
	return lines
}

// log returns one of Exim's logs so far: "main", "reject" or "panic".
func (e *eximInstance) log(which string) string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "log", which+"log"))
	return string(b)
}

// queue returns what is still in the instance's queue, as `exim -bp` lists
// it: nothing when the queue is empty.
func (e *eximInstance) queue(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := e.command(ctx, "-bp").CombinedOutput()
	if err != nil {
		t.Errorf("exim -bp: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// eximDelivery is one delivery line of Exim's main log: what became of one
// recipient in one attempt.
type eximDelivery struct {
	line string // from the message ID on, without the time
	flag string // "=>" delivered, "**" failed (bounced), "==" deferred
	to   string
	rest string // router, transport, host and, after a failure, its reason
}

var eximDeliveryRe = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (\S+ (=>|\*\*|==) ([^ :]+):? (.*))$`)

// deliveries parses the delivery lines of the main log so far.
func (e *eximInstance) deliveries() []eximDelivery {
	var ds []eximDelivery
	sc := bufio.NewScanner(strings.NewReader(e.log("main")))
	for sc.Scan() {
		if m := eximDeliveryRe.FindStringSubmatch(sc.Text()); m != nil {
			ds = append(ds, eximDelivery{line: m[1], flag: m[2], to: m[3], rest: m[4]})
		}
	}
	return ds
}

// eximDeliveriesTo returns the delivery lines of one recipient, in order.
func eximDeliveriesTo(ds []eximDelivery, rcpt string) []eximDelivery {
	var out []eximDelivery
	for _, d := range ds {
		if strings.EqualFold(d.to, rcpt) {
			out = append(out, d)
		}
	}
	return out
}
