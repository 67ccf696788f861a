package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// exportTestPolicy is a policy for the export tests: a wide block, an
// exception under it, a list, a type-scoped rule and lookalike protection.
const exportTestPolicy = `upstreams: ["127.0.0.1:1"]
rules:
  - {name: mali-is-not-mil, domains: [ml], action: nxdomain}
  - {name: partner, domains: [partner.ml], action: allow}
  - {name: feed, domains_from: [list.txt], action: null-mx}
  - {name: mx-only, domains: [mxonly.example], types: [MX], action: nxdomain}
lookalikes:
  protect: [army.mil]
`

// writeExportPolicy writes policy, with list.txt, to a new directory and
// returns the policy file's path.
func writeExportPolicy(t *testing.T, policy string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "list.txt"), []byte("bad.example\n*.sub.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExportFormats(t *testing.T) {
	path := writeExportPolicy(t, exportTestPolicy)
	cases := []struct {
		format   string
		args     []string
		want     []string // lines the output must hold
		wantNot  []string // substrings it must not
		comments string
	}{
		{"rpz", nil, []string{
			"rpz.typoguard.internal.\t300\tIN\tSOA\tlocalhost. hostmaster.localhost. ",
			"ml.rpz.typoguard.internal.\t300\tIN\tCNAME\t.",
			"*.ml.rpz.typoguard.internal.\t300\tIN\tCNAME\t.",
			"partner.ml.rpz.typoguard.internal.\t300\tIN\tCNAME\trpz-passthru.",
			"bad.example.rpz.typoguard.internal.\t300\tIN\tMX\t0 .",
			"*.sub.example.rpz.typoguard.internal.\t300\tIN\tMX\t0 .",
			`; left out: rule "mx-only", 2 entries: scoped to query types, which an export has none of (widen_types exports it for every type)`,
			`; left out: rule "lookalike of army.mil", 676 entries: scoped to query types, which an export has none of (widen_types exports it for every type)`,
		}, []string{"army.ml.rpz", "mxonly.example.rpz"}, ";"},
		{"rpz", []string{"-widen-types", "-zone", "feed.example."}, []string{
			"army.ml.feed.example.\t300\tIN\tCNAME\t.",
			"*.arny.mil.feed.example.\t300\tIN\tCNAME\t.",
			"mxonly.example.feed.example.\t300\tIN\tCNAME\t.",
			`; widened: rule "lookalike of army.mil" is scoped to query types, and exported for every type`,
			";   lookalikes, keyboard neighbour: 27",
		}, []string{"\narmy.mil.feed.example.", "left out"}, ";"},
		{"postfix", []string{"-widen-types"}, []string{
			`arny.mil REJECT 5.1.2 arny.mil is not army.mil: the address looks like a mistyped army.mil (keyboard neighbour); this message was not sent - check the address (typoguard rule "lookalike of army.mil")`,
			`.arny.mil REJECT 5.1.2 arny.mil is not army.mil: the address looks like a mistyped army.mil (keyboard neighbour); this message was not sent - check the address (typoguard rule "lookalike of army.mil")`,
			"partner.ml DUNNO", ".partner.ml DUNNO",
			`bad.example REJECT 5.7.1 bad.example is blocked for mail by this organisation's policy (typoguard rule "feed"); this message was not sent - check the address`,
		}, []string{"\narmy.mil "}, "#"},
		{"hosts", nil, []string{"0.0.0.0 ml", "0.0.0.0 bad.example",
			"# left out: 3 entries for the names under a domain and 2 exceptions: a hosts file has neither"},
			[]string{"partner.ml", "sub.example"}, "#"},
		{"plain", nil, []string{"ml", "bad.example", "*.sub.example", "# left out: 2 exceptions: a plain list has none"},
			[]string{"partner.ml", "*.ml", "*.bad.example"}, "#"},
	}
	for _, c := range cases {
		out, errOut, code := runBinary(t, append([]string{"export", "-config", path, "-format", c.format}, c.args...)...)
		if code != 0 {
			t.Fatalf("export -format %s %v: exit %d: %s", c.format, c.args, code, errOut)
		}
		lines := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			lines[l] = true
			if strings.HasPrefix(l, c.comments+" ") {
				continue
			}
		}
		for _, w := range c.want {
			if !lines[w] && !(strings.HasSuffix(w, " ") && strings.Contains(out, "\n"+w)) {
				t.Errorf("export -format %s %v: no line %q in:\n%s", c.format, c.args, w, out)
			}
		}
		for _, w := range c.wantNot {
			if strings.Contains(out, w) {
				t.Errorf("export -format %s %v: holds %q", c.format, c.args, w)
			}
		}
		if !strings.HasPrefix(out, c.comments+" typoguard export -format "+c.format+" of "+path+"\n"+c.comments+" policy input digest (SHA-256): ") {
			t.Errorf("export -format %s: header:\n%.300s", c.format, out)
		}
	}
}

func TestExportRefusals(t *testing.T) {
	path := writeExportPolicy(t, exportTestPolicy)
	out := filepath.Join(t.TempDir(), "zone")
	if _, errOut, code := runBinary(t, "export", "-config", path, "-format", "rpz", "-o", out); code != 0 {
		t.Fatalf("export -o: exit %d: %s", code, errOut)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), "partner.ml.rpz.typoguard.internal.") {
		t.Errorf("-o %s: %v, %.200q", out, err, b)
	}
	if _, errOut, code := runBinary(t, "export", "-config", path, "-format", "bind"); code != 2 || !strings.Contains(errOut, `unknown -format "bind"`) {
		t.Errorf("-format bind: exit %d, %s", code, errOut)
	}
	_, errOut, code := runBinary(t, "export", "-config", path, "-format", "rpz", "-widen-types", "-max-records", "100")
	if code != 1 || !strings.Contains(errOut, "over 100 records") || !strings.Contains(errOut, "lookalikes of army.mil") {
		t.Errorf("-max-records 100: exit %d, %s", code, errOut)
	}
}
