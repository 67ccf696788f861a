package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// repoPath is a path relative to the repository root, for the test's own
// file access (the binary runs from the root).
func repoPath(p string) string { return filepath.Join("..", "..", p) }

// golden compares got with testdata/golden/NAME, rewriting it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := repoPath(filepath.Join("testdata", "golden", name))
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/typoguard -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\ngot:\n%s\nwant:\n%s", file, got, want)
	}
}

func TestCheckInvalidPolicy(t *testing.T) {
	out, errOut, code := runBinary(t, "check", "-config", "testdata/invalid/everything.yaml")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "testdata/invalid/everything.yaml:") {
			t.Errorf("not file:line:col: %q", l)
		}
	}
	golden(t, "check-everything.txt", errOut)
}

func TestCheckExamplePolicy(t *testing.T) {
	out, errOut, code := runBinary(t, "check", "-config", "testdata/example.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"testdata/example.yaml: OK",
		"our-partner-in-mali: partner.ml; expires 2099-06-30",
		"lookalikes:    of army.mil, navy.mil, mod.uk: nxdomain (enforce) for MX,A,AAAA,ANY; every client",
		"letter dropped from the suffix 4,",
		"never blocked as lookalikes: arm.mil",
		"negative trust anchor",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckContractPolicy runs check on the documented example: it is
// valid, and check says at the rpz section which rules its zone leaves out.
func TestCheckContractPolicy(t *testing.T) {
	out, errOut, code := runBinary(t, "check", "-config", "testdata/contract.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"testdata/contract.yaml: OK",
		"testdata/contract.yaml:60:3: warning: rpz: \"mali-is-not-mil\", \"mali-addresses-for-mail-servers\", lookalike protection scoped to query types, which RPZ has none of, so the zone leaves them out: set rpz.widen_types: true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func TestExplain(t *testing.T) {
	const example = "testdata/example.yaml"
	tests := []struct {
		name   string
		args   []string
		golden string
	}{
		{"blocked MX", []string{"army.ml", "MX"}, "explain-army.ml-MX.txt"},
		{"allowed exception", []string{"partner.ml", "MX"}, "explain-partner.ml-MX.txt"},
		{"client group", []string{"-client", "10.0.5.7", "mail.army.ml", "A"}, "explain-mta-A.txt"},
		{"null-mx", []string{"army-mil.example", "MX"}, "explain-null-mx.txt"},
		{"sinkhole", []string{"hq.nvy.mil", "MX"}, "explain-sinkhole.txt"},
		{"monitor", []string{"example-trial.com", "MX"}, "explain-monitor.txt"},
		{"listed domain", []string{"malijet.ml", "MX"}, "explain-malijet.ml-MX.txt"},
		{"lookalike under a lookalike", []string{"smtp.arny.mil", "A"}, "explain-lookalike.txt"},
		{"lookalike exempted", []string{"arm.mil", "MX"}, "explain-lookalike-allowed.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"explain", "-config", example}, tc.args...)
			out, errOut, code := runBinary(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, tc.golden, out)
		})
	}
	out, _, _ := runBinary(t, "explain", "-config", example, "malijet.ml", "MX")
	for _, want := range []string{`"mali-is-not-mil" at testdata/example.yaml:35:5`, "status: NXDOMAIN", "AUTHORITY SECTION", "IN\tSOA", "EDE: 15 (Blocked)"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain malijet.ml MX lacks %q:\n%s", want, out)
		}
	}
	// A lookalike is a more specific match than the rule on ml.
	out, _, _ = runBinary(t, "explain", "-config", example, "mail.army.ml", "MX")
	for _, want := range []string{`"lookalike of army.mil" at testdata/example.yaml:`, "why:      army.ml looks like army.mil (letter dropped from the suffix)",
		"army.ml.\t300\tIN\tSOA", "typoguard: army.ml looks like army.mil (letter dropped from the suffix)"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain mail.army.ml MX lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = runBinary(t, "explain", "-config", example, "partner.ml", "MX")
	if !strings.Contains(out, "allowed and forwarded") || !strings.Contains(out, "our-partner-in-mali") {
		t.Errorf("explain partner.ml MX:\n%s", out)
	}
}

func TestTestCommand(t *testing.T) {
	out, errOut, code := runBinary(t, "test", "-config", "testdata/example.yaml")
	if code != 0 || !strings.HasSuffix(out, " passed, 0 failed\n") {
		t.Fatalf("exit %d, output:\n%s%s", code, out, errOut)
	}

	src, err := os.ReadFile(repoPath("testdata/example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const testCase = "{name: partner.ml, type: MX, expect: allow}"
	at := strings.Index(string(src), testCase)
	if at < 0 {
		t.Fatal("example test case not found")
	}
	line := strings.Count(string(src[:at]), "\n") + 1
	broken := strings.Replace(string(src), testCase, "{name: partner.ml, type: MX, expect: nxdomain}", 1)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "lists"), 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := os.ReadFile(repoPath("testdata/lists/lookalikes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "lists", "lookalikes.txt"), list, 0o644)
	file := filepath.Join(dir, "policy.yaml")
	os.WriteFile(file, []byte(broken), 0o644)
	out, _, code = runBinary(t, "test", "-config", file)
	if code != 1 {
		t.Errorf("exit %d with a broken expectation, want 1", code)
	}
	if !strings.Contains(out, fmt.Sprintf("%s:%d:5: partner.ml MX: expected nxdomain, got allow", file, line)) || !strings.HasSuffix(out, " passed, 1 failed\n") {
		t.Errorf("output:\n%s", out)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"check"}, {"explain", "-config", "x"}, {"test"}} {
		if _, _, code := runBinary(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	for _, args := range [][]string{{"lookalikes"}, {"lookalikes", "army.mil", "-check"}} {
		if _, _, code := runBinary(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestLookalikesCommand(t *testing.T) {
	for _, c := range []struct {
		args   []string
		golden string
	}{
		{[]string{"lookalikes", "army.mil"}, "lookalikes-army.mil.txt"},
		{[]string{"lookalikes", "-config", "testdata/example.yaml", "mod.uk"}, "lookalikes-example-mod.uk.txt"},
		{[]string{"lookalikes", "-config", "testdata/example.yaml", "-check", "army.ml", "mail.arny.mil", "arm.mil", "army.com",
			"xn--rmy-5cd.mil", "mail.army.mil", "armymil.com", "army.mil.example.org", "m0d.uk", "nvy.mil"}, "lookalikes-check.txt"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, errOut, code := runBinary(t, c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, c.golden, out)
		})
	}
	for _, bad := range []string{"mil", "mail.army.mil", "army.invalidtld"} {
		if _, errOut, code := runBinary(t, "lookalikes", bad); code != 1 || !strings.HasPrefix(errOut, "argument:1: ") {
			t.Errorf("lookalikes %s: exit %d %q, want 1 and argument:1: ...", bad, code, errOut)
		}
	}
}
