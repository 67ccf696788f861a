package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// liveTests covers every action, a monitor-mode rule, an answer an
// upstream gives, a client case typoguard can send from (a loopback
// address) and one it cannot.
const liveTests = `client_groups:
  lab: [127.0.0.2/32, 10.0.5.0/24]
tests:
  - {name: army.ml, type: MX, expect: nxdomain}
  - {name: mail.army.ml, type: A, expect: nxdomain}
  - {name: partner.ml, type: MX, expect: allow}
  - {name: www.example.com, expect: allow}
  - {name: nodata.test, type: MX, expect: nodata}
  - {name: nullmx.test, type: MX, expect: null-mx}
  - {name: nullmx.test, type: A, expect: null-mx}
  - {name: sinkhole.test, type: MX, expect: sinkhole}
  - {name: sinkhole.test, type: AAAA, expect: sinkhole}
  - {name: sinkhole.test, type: TXT, expect: sinkhole}
  - {name: refuse.test, expect: refuse}
  - {name: db.corp.internal, expect: forward}
  - {name: monitored.example.com, expect: allow}
  - {name: lab.example.com, client: 127.0.0.2, expect: refuse}
  - {name: lab.example.com, expect: allow}
  - {name: lab.example.com, client: 10.0.5.7, expect: refuse}
`

// TestLiveTests runs a policy's tests against the real binary serving it
// (every case passes, the one from a client it cannot send from is
// skipped), then a policy file whose expectations the server does not
// meet: each difference is reported with its position and exit 1.
func TestLiveTests(t *testing.T) {
	_, upstream := newUpstream(t)
	corp := resolvertest.NewServer(t, resolvertest.NewZone(t, "db.corp.internal. 60 IN A 10.1.1.99"))
	lab := "  - {name: lab, domains: [lab.example.com], clients: [lab], action: refuse}\n"
	// The lab rule goes before the rest, as the first rule that matches
	// decides.
	src := strings.Replace(e2ePolicy(upstream, corp, liveTests), "rules:\n", "rules:\n"+lab, 1)
	g := startGuard(t, src)
	server := "127.0.0.1:" + g.port()

	out, errOut, code := runBinary(t, "test", "-config", g.file, "-server", server, "-v")
	if code != 0 || !strings.Contains(out, "15 passed, 0 failed, 1 skipped (against "+server+")") {
		t.Fatalf("live test: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		`army.ml MX: ok: nxdomain (typoguard rule "mali-is-not-mil" (nxdomain))`,
		`partner.ml MX: ok: allowed (an upstream's answer)`,
		`sinkhole.test TXT: ok: nodata (typoguard rule "sinkhole-test" (sinkhole))`,
		`lab.example.com A from 127.0.0.2: ok: refuse`,
		`lab.example.com A from 10.0.5.7: skipped: the server sees queries from this machine's address, not 10.0.5.7`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("live test output lacks %q:\n%s", want, out)
		}
	}

	// The same server, asked what another policy file expects.
	other := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(other, []byte(`tests:
  - {name: army.ml, type: MX, expect: allow}
  - {name: partner.ml, type: MX, expect: nxdomain}
  - {name: nullmx.test, type: MX, expect: nodata}
  - {name: www.example.com, expect: allow}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runBinary(t, "test", "-config", other, "-server", server)
	if code != 1 {
		t.Fatalf("live test of unmet expectations: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		other + `:2:5: army.ml MX: FAIL: the server answered nxdomain (typoguard rule "mali-is-not-mil" (nxdomain)), want allowed (an upstream's answer)`,
		other + `:3:5: partner.ml MX: FAIL: the server answered allowed (an upstream's answer), want nxdomain`,
		other + `:4:5: nullmx.test MX: FAIL: the server answered null-mx (typoguard rule "nullmx-test" (null-mx)), want nodata`,
		"1 passed, 3 failed, 0 skipped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("live test output lacks %q:\n%s", want, out)
		}
	}

	// Nothing listens: every case fails, none passes by default.
	g.stop(t)
	out, _, code = runBinary(t, "test", "-config", other, "-server", server)
	if code != 1 || !strings.Contains(out, "0 passed, 4 failed") || !strings.Contains(out, "no answer from "+server) {
		t.Errorf("live test against a stopped server: exit %d\n%s", code, out)
	}
}

// TestVersion holds `typoguard version` and `-version` to one line that
// names the module version, the VCS revision and the Go that built it,
// and the startup log line to the same.
func TestVersion(t *testing.T) {
	want := regexp.MustCompile(`^typoguard (\S+) \(revision (\S+), (go1\.\S+)\)\n$`)
	var first string
	for _, arg := range []string{"version", "-version", "--version"} {
		out, errOut, code := runBinary(t, arg)
		m := want.FindStringSubmatch(out)
		if code != 0 || m == nil || errOut != "" {
			t.Fatalf("typoguard %s: exit %d, %q %q; want %s", arg, code, out, errOut, want)
		}
		if first == "" {
			first = out
		} else if out != first {
			t.Errorf("typoguard %s = %q, typoguard version = %q", arg, out, first)
		}
	}
	m := want.FindStringSubmatch(first)
	_, upstream := newUpstream(t)
	g := startGuard(t, e2ePolicy(upstream, upstream, ""))
	line := g.waitLog(t, "serving", func(l map[string]any) bool { return l["msg"] == "serving" })
	if line["version"] != m[1] || line["revision"] != m[2] {
		t.Errorf("serving line %v; want version %s, revision %s", line, m[1], m[2])
	}
}
