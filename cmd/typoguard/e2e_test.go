package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// binary is the typoguard binary the end-to-end tests run, built once.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "typoguard-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "typoguard")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build typoguard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// guard is a running typoguard process on a loopback port.
type guard struct {
	addr    string // 127.0.0.1:PORT, UDP and TCP
	metrics string // host:port of /metrics, when the policy turns it on
	cmd     *exec.Cmd
	file    string // its policy file

	mu   sync.Mutex // guards logs
	logs []map[string]any
	done chan struct{} // closed when stderr is drained
}

// startGuard writes the policy to a file and runs `typoguard serve` on it,
// listening on 127.0.0.1:0. It returns once both listeners are up; the
// test's cleanup stops it with SIGTERM and checks that it exits 0.
func startGuard(t *testing.T, policyYAML string) *guard {
	t.Helper()
	return startGuardFileAt(t, writePolicy(t, policyYAML), "127.0.0.1:0")
}

// startGuardAt is startGuard listening on one given address, such as
// 127.0.0.1:53 where a libc resolver looks.
func startGuardAt(t *testing.T, policyYAML, listen string) *guard {
	t.Helper()
	return startGuardFileAt(t, writePolicy(t, policyYAML), listen)
}

// startGuardFile is startGuard on a policy file already in place.
func startGuardFile(t *testing.T, file string) *guard {
	t.Helper()
	return startGuardFileAt(t, file, "127.0.0.1:0")
}

func writePolicy(t *testing.T, policyYAML string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(policyYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// startGuardFileAt runs `typoguard serve` on the policy file, listening on
// listen, and returns once its UDP and TCP listeners are up.
func startGuardFileAt(t *testing.T, file, listen string) *guard {
	t.Helper()
	cmd := exec.Command(binary, "serve", "-config", file, "-listen", listen)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &guard{cmd: cmd, file: file, done: make(chan struct{})}
	ready := make(chan string, 8)
	go func() {
		defer close(g.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				line = map[string]any{"msg": sc.Text()}
			}
			g.mu.Lock()
			g.logs = append(g.logs, line)
			g.mu.Unlock()
			switch line["msg"] {
			case "listening":
				// Never block the reader: typoguard would stall on stderr.
				select {
				case ready <- fmt.Sprint(line["net"], " ", line["addr"]):
				default:
				}
			case "metrics listening":
				g.mu.Lock()
				g.metrics = fmt.Sprint(line["addr"])
				g.mu.Unlock()
			}
		}
	}()
	got := map[string]string{}
	timeout := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case l := <-ready:
			netw, addr, _ := strings.Cut(l, " ")
			got[netw] = addr
		case <-g.done:
			t.Fatalf("typoguard exited before listening: %v", g.logLines())
		case <-timeout:
			cmd.Process.Kill()
			t.Fatalf("typoguard did not report listening within 10s: %v", g.logLines())
		}
	}
	if got["udp"] != got["tcp"] {
		t.Fatalf("udp on %s but tcp on %s", got["udp"], got["tcp"])
	}
	g.addr = got["udp"]
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Cleanup(func() { g.stop(t) })
	return g
}

// stop sends SIGTERM and checks that typoguard exits 0.
func (g *guard) stop(t *testing.T) {
	if g.cmd.ProcessState != nil {
		return
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	errc := make(chan error, 1)
	go func() { <-g.done; errc <- g.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("typoguard exit after SIGTERM: %v; log: %v", err, g.logLines())
		}
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		t.Errorf("typoguard did not exit within 10s of SIGTERM")
	}
}

// waitLog waits up to 5s for a log line that match accepts.
func (g *guard) waitLog(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range g.logLines() {
			if match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line %s within 5s; log: %v", what, g.logLines())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countLog counts the log lines that match accepts.
func (g *guard) countLog(match func(map[string]any) bool) int {
	n := 0
	for _, l := range g.logLines() {
		if match(l) {
			n++
		}
	}
	return n
}

func (g *guard) logLines() []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]map[string]any(nil), g.logs...)
}

// port returns the guard's port for dig -p.
func (g *guard) port() string {
	_, p, _ := net.SplitHostPort(g.addr)
	return p
}

// digPath finds dig. Without it the test fails under CI=true and is skipped
// elsewhere.
func digPath(t *testing.T) string { return resolvertest.NeedTool(t, "dig", "bind9-dnsutils") }

// digResult is dig's output, parsed.
type digResult struct {
	out        string
	status     string
	flags      []string
	answer     []string
	authority  []string
	additional []string
	ede        string // e.g. "15 (Blocked): (typoguard rule ...)"
	hasOPT     bool
	question   string
}

var (
	statusRe = regexp.MustCompile(`status: ([A-Z]+)`)
	flagsRe  = regexp.MustCompile(`;; flags: ([a-z ]*);`)
	edeRe    = regexp.MustCompile(`; EDE: (.*)`)
)

// dig asks the guard with real dig and parses the reply.
func (g *guard) dig(t *testing.T, args ...string) digResult {
	t.Helper()
	full := append([]string{"@127.0.0.1", "-p", g.port(), "+time=4", "+tries=1", "+nocookie"}, args...)
	out, err := exec.Command(digPath(t), full...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return parseDig(string(out))
}

func parseDig(out string) digResult {
	r := digResult{out: out}
	if m := statusRe.FindStringSubmatch(out); m != nil {
		r.status = m[1]
	}
	if m := flagsRe.FindStringSubmatch(out); m != nil {
		r.flags = strings.Fields(m[1])
	}
	if m := edeRe.FindStringSubmatch(out); m != nil {
		r.ede = m[1]
	}
	var section *[]string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; OPT PSEUDOSECTION"):
			r.hasOPT = true
			section = nil
		case strings.HasPrefix(line, ";; QUESTION SECTION"):
			section = nil
		case strings.HasPrefix(line, ";; ANSWER SECTION"):
			section = &r.answer
		case strings.HasPrefix(line, ";; AUTHORITY SECTION"):
			section = &r.authority
		case strings.HasPrefix(line, ";; ADDITIONAL SECTION"):
			section = &r.additional
		case strings.TrimSpace(line) == "":
			section = nil
		case strings.HasPrefix(line, ";") && r.question == "" && strings.Contains(line, "\tIN\t"):
			r.question = strings.Fields(strings.TrimPrefix(line, ";"))[0]
		case section != nil && !strings.HasPrefix(line, ";"):
			*section = append(*section, strings.Join(strings.Fields(line), " "))
		}
	}
	return r
}

func (r digResult) hasFlag(f string) bool {
	for _, x := range r.flags {
		if x == f {
			return true
		}
	}
	return false
}

// ttlOf returns the TTL of the first answer record.
func (r digResult) ttlOf(t *testing.T) int {
	t.Helper()
	if len(r.answer) == 0 {
		t.Fatalf("no answer:\n%s", r.out)
	}
	ttl, err := strconv.Atoi(strings.Fields(r.answer[0])[1])
	if err != nil {
		t.Fatalf("bad TTL in %q", r.answer[0])
	}
	return ttl
}

// runBinary runs a typoguard subcommand from the repository root, as the
// README does, and returns its output and exit code.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = filepath.Join("..", "..")
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return o.String(), e.String(), ee.ExitCode()
		}
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}
