package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// freePort returns a TCP and UDP port free on 127.0.0.1 just now, for a
// server that must be told its port in a configuration file.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// digAt asks addr's port on 127.0.0.1 with real dig and parses the reply.
func digAt(t *testing.T, port int, args ...string) digResult {
	t.Helper()
	full := append([]string{"@127.0.0.1", "-p", fmt.Sprint(port), "+time=2", "+tries=1", "+nocookie"}, args...)
	out, err := exec.Command(digPath(t), full...).CombinedOutput()
	if err != nil && !strings.Contains(string(out), ";; ") {
		t.Fatalf("dig %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return parseDig(string(out))
}

// rpzUpstream is the zone behind every resolver of the RPZ tests: the
// names the policy lets through resolve, and so would the blocked ones if
// the zone reached the resolver.
func rpzUpstream(t *testing.T) string {
	return resolvertest.NewServer(t, resolvertest.NewZone(t,
		"army.mil. 300 IN A 192.0.2.10", "army.mil. 300 IN MX 10 mail.army.mil.", "mail.army.mil. 300 IN A 192.0.2.11",
		"army.ml. 300 IN MX 10 mail.army.ml.", "army.ml. 300 IN A 192.0.2.20", "mail.army.ml. 300 IN A 192.0.2.21",
		"arny.mil. 300 IN A 192.0.2.30", "mail.arny.mil. 300 IN A 192.0.2.31",
		"partner.ml. 300 IN A 192.0.2.40", "new.example. 300 IN A 192.0.2.50"))
}

// rpzPolicy is a policy that serves its zone on 127.0.0.1:rpzPort, to
// 127.0.0.1 only, and tells notify of each new serial; extra rules go at
// the end of its rules.
func rpzPolicy(upstream string, rpzPort int, notify, tsig, extra string) string {
	return fmt.Sprintf(`upstreams: ["%s"]
log: {format: json}
rules:
  - {name: mali-is-not-mil, domains: [ml], types: [MX, A, AAAA, ANY], action: nxdomain}
  - {name: partner, domains: [partner.ml], action: allow}
%slookalikes:
  protect: [army.mil, navy.mil, mod.uk]
rpz:
  listen: 127.0.0.1:%d
  zone: rpz.typoguard.internal
  allow_transfer: [127.0.0.1/32]
  widen_types: true
%s%s`, upstream, extra, rpzPort, notify, tsig)
}

// startUnbound runs Unbound on 127.0.0.1:port with the zone rpz.typoguard.internal
// from primary, forwarding every other query to upstream only. It is
// stopped, by its PID, when the test ends.
func startUnbound(t *testing.T, port int, primary, upstream string) {
	t.Helper()
	bin := resolvertest.NeedTool(t, "unbound", "unbound")
	dir := t.TempDir()
	host, uport, _ := net.SplitHostPort(upstream)
	// The forward-zone for "." is all it asks; root hints naming only
	// 127.0.0.1 and every other address on the do-not-query list keep it
	// on this machine even so.
	if err := os.WriteFile(filepath.Join(dir, "root.hints"), []byte(". 3600000 NS a.root.rpz.test.\na.root.rpz.test. 3600000 A 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var noQuery strings.Builder
	for _, p := range []string{"0.0.0.0/2", "64.0.0.0/3", "96.0.0.0/4", "112.0.0.0/5", "120.0.0.0/6", "124.0.0.0/7", "126.0.0.0/8", "128.0.0.0/1", "::/0"} {
		fmt.Fprintf(&noQuery, "  do-not-query-address: %s\n", p)
	}
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1@%d
  outgoing-interface: 127.0.0.1
  access-control: 127.0.0.0/8 allow
  do-ip6: no
  num-threads: 1
  module-config: "respip iterator"
  do-not-query-localhost: no
%s  root-hints: "%s/root.hints"
  chroot: ""
  username: ""
  directory: "%s"
  pidfile: "%s/unbound.pid"
  use-syslog: no
  logfile: "%s/unbound.log"
  verbosity: 1
  local-zone: "test." nodefault
  local-zone: "example." nodefault
remote-control:
  control-enable: no
forward-zone:
  name: "."
  forward-addr: %s@%s
rpz:
  name: "rpz.typoguard.internal."
  primary: %s
  rpz-log: yes
`, port, noQuery.String(), dir, dir, dir, dir, host, uport, primary)
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, exec.Command(bin, "-d", "-c", path), filepath.Join(dir, "unbound.out"), filepath.Join(dir, "unbound.log"))
}

// startDaemon starts cmd with its output to the file out, and stops it by
// its PID (SIGTERM, then SIGKILL after 10 s) when the test ends; when the
// test failed, it logs out and the other logs.
func startDaemon(t *testing.T, cmd *exec.Cmd, out string, logs ...string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		f.Close()
		if t.Failed() {
			for _, l := range append([]string{out}, logs...) {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", filepath.Base(l), b)
			}
		}
	})
}

// waitStatus asks name and type of the resolver on port until it answers
// with status, for up to limit; it returns the last answer.
func waitStatus(t *testing.T, port int, name, qtype, status string, limit time.Duration) (digResult, bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := digAt(t, port, name, qtype)
		if r.status == status || time.Now().After(deadline) {
			return r, r.status == status
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestE2ERPZUnbound: a real Unbound takes typoguard's zone from a running
// typoguard, blocks what typoguard blocks and lets through what it lets
// through, and follows a reload by NOTIFY within 10 s; transfers from an
// address outside allow_transfer are refused.
func TestE2ERPZUnbound(t *testing.T) {
	digPath(t)
	upstream := rpzUpstream(t)
	rpzPort, ubPort := freePort(t), freePort(t)
	notify := fmt.Sprintf("  notify: [\"127.0.0.1:%d\"]\n", ubPort)
	g := startGuard(t, rpzPolicy(upstream, rpzPort, notify, "", ""))
	g.waitLog(t, "rpz listening", func(l map[string]any) bool { return l["msg"] == "rpz listening" })
	startUnbound(t, ubPort, fmt.Sprintf("127.0.0.1@%d", rpzPort), upstream)

	if r, ok := waitStatus(t, ubPort, "army.ml", "MX", "NXDOMAIN", 10*time.Second); !ok {
		t.Fatalf("army.ml MX through Unbound: %s, want NXDOMAIN:\n%s", r.status, r.out)
	}
	for _, c := range []struct{ name, qtype, status string }{
		{"arny.mil", "A", "NXDOMAIN"},      // a lookalike of army.mil
		{"mail.arny.mil", "A", "NXDOMAIN"}, // a name under it
		{"mail.army.ml", "MX", "NXDOMAIN"},
		{"army.mil", "A", "NOERROR"},   // the protected domain itself
		{"partner.ml", "A", "NOERROR"}, // an allowed near-name under ml
		{"new.example", "A", "NOERROR"},
	} {
		if r := digAt(t, ubPort, c.name, c.qtype); r.status != c.status || (c.status == "NOERROR" && len(r.answer) == 0) {
			t.Errorf("%s %s through Unbound: %s, want %s:\n%s", c.name, c.qtype, r.status, c.status, r.out)
		}
	}

	// A reload that blocks one more name reaches Unbound by NOTIFY and a
	// transfer: refresh in the SOA is 300 s, so only NOTIFY can do it.
	extra := "  - {name: late, domains: [new.example], action: nxdomain}\n"
	if err := os.WriteFile(g.file, []byte(rpzPolicy(upstream, rpzPort, notify, "", extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	start := time.Now()
	r, ok := waitStatus(t, ubPort, "new.example", "A", "NXDOMAIN", 10*time.Second)
	if !ok {
		t.Fatalf("new.example through Unbound 10 s after the reload: %s, want NXDOMAIN:\n%s", r.status, r.out)
	}
	t.Logf("the reload reached Unbound in %v", time.Since(start).Round(time.Millisecond))
	g.waitLog(t, "Unbound's answer to NOTIFY", func(l map[string]any) bool { return l["msg"] == "rpz notify" })
	xfr := g.waitLog(t, "the transfer after the reload", func(l map[string]any) bool {
		return l["msg"] == "rpz transfer" && l["kind"] != "AXFR"
	})
	t.Logf("Unbound's transfer after the reload: %v, %v records", xfr["kind"], xfr["records"])

	// 127.0.0.2 is outside allow_transfer.
	out, _ := exec.Command(digPath(t), "@127.0.0.1", "-p", fmt.Sprint(rpzPort), "-b", "127.0.0.2", "+time=2", "+tries=1", "rpz.typoguard.internal", "AXFR").CombinedOutput()
	if strings.Contains(string(out), "CNAME") || !strings.Contains(string(out), "Transfer failed") {
		t.Errorf("AXFR from 127.0.0.2:\n%s", out)
	}
	g.waitLog(t, "the refusal logged", func(l map[string]any) bool {
		return l["msg"] == "rpz request refused" && l["client"] == "127.0.0.2" && l["why"] == "address not in rpz.allow_transfer"
	})
}

// startBIND runs BIND's named on 127.0.0.1:port as a secondary of the zone
// rpz.typoguard.internal from 127.0.0.1:rpzPort, signed with key (name,
// base64 secret), and with that zone as its response policy; it forwards
// every other query to upstream only. It is stopped, by its PID, when the
// test ends.
func startBIND(t *testing.T, port, rpzPort int, keyName, secret, upstream string) {
	t.Helper()
	bin := resolvertest.NeedTool(t, "named", "bind9")
	dir := t.TempDir()
	host, uport, _ := net.SplitHostPort(upstream)
	// Forwarding only, to upstream; root hints naming only 127.0.0.1 and
	// every other address marked bogus keep it on this machine even so.
	if err := os.WriteFile(filepath.Join(dir, "root.hints"), []byte(". 3600000 NS a.root.rpz.test.\na.root.rpz.test. 3600000 A 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var bogus strings.Builder
	for _, p := range []string{"0.0.0.0/2", "64.0.0.0/3", "96.0.0.0/4", "112.0.0.0/5", "120.0.0.0/6", "124.0.0.0/7", "126.0.0.0/8", "128.0.0.0/1", "::/0"} {
		fmt.Fprintf(&bogus, "server %s { bogus yes; };\n", p)
	}
	conf := fmt.Sprintf(`options {
	directory "%[1]s";
	pid-file "%[1]s/named.pid";
	listen-on port %[2]d { 127.0.0.1; };
	listen-on-v6 { none; };
	query-source address 127.0.0.1;
	transfer-source 127.0.0.1;
	notify-source 127.0.0.1;
	recursion yes;
	allow-query { 127.0.0.0/8; };
	allow-recursion { 127.0.0.0/8; };
	forward only;
	forwarders { %[3]s port %[4]s; };
	dnssec-validation no;
	notify no;
	empty-zones-enable no;
	// A new version of the zone applies at once, not after the default
	// 60 s.
	response-policy { zone "rpz.typoguard.internal" min-update-interval 1; } qname-wait-recurse no;
};
controls { };
%[5]s
key "%[6]s" { algorithm hmac-sha256; secret "%[7]s"; };
zone "." { type hint; file "%[1]s/root.hints"; };
zone "rpz.typoguard.internal" {
	type secondary;
	primaries { 127.0.0.1 port %[8]d key "%[6]s"; };
	file "%[1]s/rpz.db";
	allow-notify { 127.0.0.1; };
};
`, dir, port, host, uport, bogus.String(), strings.TrimSuffix(keyName, "."), secret, rpzPort)
	path := filepath.Join(dir, "named.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if checkconf, err := exec.LookPath("named-checkconf"); err == nil {
		if out, err := exec.Command(checkconf, path).CombinedOutput(); err != nil {
			t.Fatalf("named-checkconf: %v\n%s\n%s", err, out, conf)
		}
	}
	startDaemon(t, exec.Command(bin, "-g", "-n", "1", "-c", path), filepath.Join(dir, "named.log"))
}

// TestE2ERPZBIND: BIND 9, as a TSIG-signed secondary of typoguard's zone
// with it as its response policy, blocks what typoguard blocks and lets
// through what it lets through, and follows a reload by NOTIFY; a
// transfer with a wrong key, or none, is refused.
func TestE2ERPZBIND(t *testing.T) {
	digPath(t)
	upstream := rpzUpstream(t)
	rpzPort, bindPort := freePort(t), freePort(t)
	const keyName, secret = "xfr.typoguard.test", "c2VjcmV0LWZvci10aGUtcnB6LXRlc3QtMDEyMzQ1Njc4OQ=="
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "xfr.key"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notify := fmt.Sprintf("  notify: [\"127.0.0.1:%d\"]\n", bindPort)
	tsig := fmt.Sprintf("  tsig:\n    - {name: %s, secret_file: %s}\n", keyName, filepath.Join(dir, "xfr.key"))
	g := startGuard(t, rpzPolicy(upstream, rpzPort, notify, tsig, ""))
	g.waitLog(t, "rpz listening", func(l map[string]any) bool { return l["msg"] == "rpz listening" })
	startBIND(t, bindPort, rpzPort, keyName, secret, upstream)

	if r, ok := waitStatus(t, bindPort, "army.ml", "MX", "NXDOMAIN", 15*time.Second); !ok {
		t.Fatalf("army.ml MX through BIND: %s, want NXDOMAIN:\n%s", r.status, r.out)
	}
	for _, c := range []struct{ name, qtype, status string }{
		{"arny.mil", "A", "NXDOMAIN"},
		{"mail.arny.mil", "A", "NXDOMAIN"},
		{"army.mil", "A", "NOERROR"},
		{"partner.ml", "A", "NOERROR"},
		{"new.example", "A", "NOERROR"},
	} {
		if r := digAt(t, bindPort, c.name, c.qtype); r.status != c.status || (c.status == "NOERROR" && len(r.answer) == 0) {
			t.Errorf("%s %s through BIND: %s, want %s:\n%s", c.name, c.qtype, r.status, c.status, r.out)
		}
	}
	extra := "  - {name: late, domains: [new.example], action: nxdomain}\n"
	if err := os.WriteFile(g.file, []byte(rpzPolicy(upstream, rpzPort, notify, tsig, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	start := time.Now()
	if r, ok := waitStatus(t, bindPort, "new.example", "A", "NXDOMAIN", 10*time.Second); !ok {
		t.Fatalf("new.example through BIND 10 s after the reload: %s, want NXDOMAIN:\n%s", r.status, r.out)
	}
	t.Logf("the reload reached BIND in %v", time.Since(start).Round(time.Millisecond))

	for _, c := range []struct {
		args []string
		why  string
	}{
		{[]string{"-y", "hmac-sha256:" + keyName + ":" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC0wMTIzNDU2Nzg5"}, "bad TSIG: dns: bad signature"},
		{nil, "no TSIG, and rpz.tsig keys are set"},
	} {
		args := append([]string{"@127.0.0.1", "-p", fmt.Sprint(rpzPort), "+time=2", "+tries=1"}, c.args...)
		out, _ := exec.Command(digPath(t), append(args, "rpz.typoguard.internal", "AXFR")...).CombinedOutput()
		if strings.Contains(string(out), "CNAME") {
			t.Errorf("AXFR %v was answered:\n%s", c.args, out)
		}
		g.waitLog(t, "the refusal: "+c.why, func(l map[string]any) bool { return l["msg"] == "rpz request refused" && l["why"] == c.why })
	}
}

// TestE2ERPZOverBound: a policy whose zone would pass rpz.max_records is
// served all the same, without a zone: the log says why, queries are
// answered by the policy, and a transfer is refused.
func TestE2ERPZOverBound(t *testing.T) {
	digPath(t)
	upstream := rpzUpstream(t)
	rpzPort := freePort(t)
	g := startGuard(t, rpzPolicy(upstream, rpzPort, "  max_records: 100\n", "", ""))
	g.waitLog(t, "why there is no zone", func(l map[string]any) bool {
		msg, _ := l["msg"].(string)
		return l["level"] == "ERROR" && strings.HasPrefix(msg, "rpz: the zone is not served or updated: export: over 100 records") && strings.Contains(msg, "lookalikes of army.mil")
	})
	if r := g.dig(t, "arny.mil", "A"); r.status != "NXDOMAIN" {
		t.Errorf("arny.mil A from typoguard itself: %s, want NXDOMAIN", r.status)
	}
	out, _ := exec.Command(digPath(t), "@127.0.0.1", "-p", fmt.Sprint(rpzPort), "+time=2", "+tries=1", "rpz.typoguard.internal", "AXFR").CombinedOutput()
	if strings.Contains(string(out), "CNAME") {
		t.Errorf("AXFR without a zone was answered:\n%s", out)
	}
	g.waitLog(t, "the refusal", func(l map[string]any) bool {
		return l["msg"] == "rpz request refused" && l["why"] == "no zone to serve: the log says why"
	})
}
