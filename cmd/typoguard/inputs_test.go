package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/typoguard/typoguard/policy"
)

// TestHostileInputFiles gives check list and policy files no policy should
// make typoguard read whole: each is refused, at once, with its position.
func TestHostileInputFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo.txt")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Sparse: over the limit without taking the disk.
	if err := os.Truncate(big, policy.MaxListBytes+1); err != nil {
		t.Fatal(err)
	}
	write("long.txt", "ok.example\n"+strings.Repeat("a", policy.MaxListLine+1)+"\nfine.example\n")
	file := write("policy.yaml", `version: 1
upstreams: ["127.0.0.1:1"]
rules:
  - {name: zero, domains_from: [/dev/zero], action: nxdomain}
  - {name: dir, domains_from: [/tmp], action: nxdomain}
  - {name: fifo, domains_from: [fifo.txt], action: nxdomain}
  - {name: big, domains_from: [big.txt], action: nxdomain}
  - {name: long, domains_from: [long.txt], action: nxdomain}
`)
	_, errOut, code := runBinary(t, "check", "-config", file)
	if code != 1 {
		t.Fatalf("check exit %d, want 1:\n%s", code, errOut)
	}
	for _, want := range []string{
		file + ":4:33: domains_from: cannot read /dev/zero: not a regular file (a device)",
		file + ":5:32: domains_from: cannot read /tmp: not a regular file (a directory)",
		file + ":6:33: domains_from: cannot read " + fifo + ": not a regular file (a named pipe)",
		file + fmt.Sprintf(":7:32: domains_from: cannot read %s: %d bytes, over the limit of %d (limits.list_bytes)", big, policy.MaxListBytes+1, policy.MaxListBytes),
		filepath.Join(dir, "long.txt") + fmt.Sprintf(":2: line is %d bytes long, over the limit of %d", policy.MaxListLine+1, policy.MaxListLine),
	} {
		if !strings.Contains(errOut, want+"\n") {
			t.Errorf("check does not say\n  %s\nin:\n%s", want, errOut)
		}
	}

	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, policy.MaxPolicyBytes+1); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runBinary(t, "check", "-config", huge)
	if want := fmt.Sprintf("%d bytes, over the limit of %d", policy.MaxPolicyBytes+1, policy.MaxPolicyBytes); code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("check of a policy file over the limit: exit %d, %q; want 1 and %q", code, errOut, want)
	}
}

// TestE2EReloadRefusesHostileList reloads a running typoguard onto a list
// that is /dev/zero: the reload fails at once and the old policy keeps
// answering.
func TestE2EReloadRefusesHostileList(t *testing.T) {
	_, upstream := newUpstream(t)
	g := startGuard(t, e2ePolicy(upstream, upstream, ""))
	if r := g.dig(t, "army.ml", "MX"); r.status != "NXDOMAIN" {
		t.Fatalf("before: army.ml MX %s", r.status)
	}
	hostile := e2ePolicy(upstream, upstream, "  - {name: zero, domains_from: [/dev/zero], action: nxdomain}\n")
	if err := os.WriteFile(g.file, []byte(hostile), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	g.waitLog(t, "reload failed", msgIs("reload failed; the old policy keeps serving"))
	if g.countLog(func(l map[string]any) bool {
		e, _ := l["error"].(string)
		return l["msg"] == "policy error" && strings.Contains(e, "cannot read /dev/zero: not a regular file (a device)")
	}) != 1 {
		t.Errorf("no policy error naming /dev/zero; log: %v", g.logLines())
	}
	if r := g.dig(t, "army.ml", "MX"); r.status != "NXDOMAIN" {
		t.Errorf("after the refused reload: army.ml MX %s", r.status)
	}
	if r := g.dig(t, "www.example.com", "A"); r.status != "NOERROR" {
		t.Errorf("after the refused reload: www.example.com A %s", r.status)
	}
}

// TestListFilesStreamed gives check list files inside the size bound that
// are all garbage: a gibibyte of zero bytes on one line, and a file whose
// every line is wrong. Each is refused with its position, and check holds
// no more than a buffer of either: its peak resident memory stays far
// under the file's size.
func TestListFilesStreamed(t *testing.T) {
	dir := t.TempDir()
	zeros := filepath.Join(dir, "zeros.txt")
	if err := os.WriteFile(zeros, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(zeros, policy.MaxListBytes); err != nil { // sparse
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte(strings.Repeat("not a domain!\n", 100_000)), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(`version: 1
upstreams: ["127.0.0.1:1"]
rules:
  - {name: zeros, domains_from: [zeros.txt], action: nxdomain}
  - {name: bad, domains_from: [bad.txt], action: nxdomain}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "check", "-config", file)
	var e strings.Builder
	cmd.Stderr = &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("check: %v, want exit 1:\n%s", err, e.String())
	}
	errOut := e.String()
	for _, want := range []string{
		zeros + fmt.Sprintf(":1: line is %d bytes long, over the limit of %d\n", policy.MaxListBytes, policy.MaxListLine),
		bad + ":1: want one domain",
		bad + fmt.Sprintf(":%d: %d errors: the rest of this file is not read\n", policy.MaxListErrors, policy.MaxListErrors),
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("check does not say\n  %s\nin:\n%s", want, errOut)
		}
	}
	if n := strings.Count(errOut, bad+":"); n != policy.MaxListErrors+1 {
		t.Errorf("%d lines about %s, want %d", n, bad, policy.MaxListErrors+1)
	}
	// Maxrss is in KiB on Linux.
	if rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10; rss > 100<<20 {
		t.Errorf("check of a %d-byte list peaked at %d MiB resident", policy.MaxListBytes, rss>>20)
	}
}
