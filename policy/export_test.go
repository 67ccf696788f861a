package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

const exportPolicy = `
rules:
  - {name: ml, domains: [ml], action: nxdomain}
  - {name: partner, domains: [partner.ml], action: allow}
  - {name: corp, domains: [corp.internal], action: forward, servers: ["127.0.0.1:53"]}
  - {name: feed, domains_from: [list.txt], action: null-mx}
  - {name: again, domains: [bad.example], action: nodata}
  - {name: mx-only, domains: [mxonly.example], types: [MX], action: nxdomain}
  - {name: watch, domains: [watch.example, arny.mil], mode: monitor, action: nxdomain}
  - {name: mta, domains: [mta.example], clients: [mta], action: nxdomain}
client_groups: {mta: [10.0.0.0/8]}
lookalikes:
  protect: [army.mil]
`

// exportOf parses src, with list.txt holding list, and exports it.
func exportOf(t *testing.T, src, list string, max int, widen bool) (*Export, error) {
	t.Helper()
	x := NewExporter(max)
	p, err := Parse("export.yaml", []byte(src), Options{Now: testNow, ListDomain: x.ListDomain,
		OpenList: listsFrom(func(string) ([]byte, error) { return []byte(list), nil })})
	if err != nil {
		t.Fatal(err)
	}
	return x.Export(p, widen)
}

// entryText shows an entry as "[*.]name action rule".
func entryText(e ExportEntry) string {
	name := e.Name
	if e.Below {
		name = "*." + name
	}
	return fmt.Sprintf("%s %s %s", name, e.Action, e.Rule.Name)
}

func TestExport(t *testing.T) {
	ex, err := exportOf(t, exportPolicy, "bad.example\n*.sub.example\n", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ex.Entries {
		if e.Lookalike == nil {
			got = append(got, entryText(e))
		}
	}
	// DNS order; each name once, decided by the first rule on it; forward
	// and allow as exceptions; type-, client- and mode-scoped rules left
	// out, and the names they decide not exported by a later rule either.
	want := []string{
		"bad.example null-mx feed", "*.bad.example null-mx feed",
		"*.sub.example null-mx feed",
		"corp.internal allow corp", "*.corp.internal allow corp",
		"ml nxdomain ml", "*.ml nxdomain ml",
		"partner.ml allow partner", "*.partner.ml allow partner",
	}
	if !slices.Equal(got, want) {
		t.Errorf("rule entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range ex.Entries {
		if e.Name == "arny.mil" {
			t.Errorf("arny.mil is decided by the monitor-mode rule watch, yet exported as %s", entryText(e))
		}
	}
	var leftOut []string
	for _, l := range ex.LeftOut {
		leftOut = append(leftOut, fmt.Sprintf("%s %d", l.Rule, l.Entries))
	}
	if want := []string{"mx-only 2", "watch 4", "mta 2", "lookalike of army.mil 674"}; !slices.Equal(leftOut, want) {
		t.Errorf("left out %v, want %v", leftOut, want)
	}
	if len(ex.Widened) != 0 {
		t.Errorf("widened %v without widenTypes", ex.Widened)
	}

	ex, err = exportOf(t, exportPolicy, "bad.example\n", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"mx-only", "lookalike of army.mil"}; !slices.Equal(ex.Widened, want) {
		t.Errorf("widened %v, want %v", ex.Widened, want)
	}
	found := map[string]ExportEntry{}
	for _, e := range ex.Entries {
		found[entryText(e)] = e
	}
	for _, w := range []string{"army.ml nxdomain lookalike of army.mil", "*.army.ml nxdomain lookalike of army.mil", "amry.mil nxdomain lookalike of army.mil", "mxonly.example nxdomain mx-only"} {
		if _, ok := found[w]; !ok {
			t.Errorf("no entry %q", w)
		}
	}
	if e := found["army.ml nxdomain lookalike of army.mil"]; e.Lookalike == nil || e.Lookalike.Of != "army.mil" {
		t.Errorf("army.ml: lookalike %+v", e.Lookalike)
	}
	if len(ex.Unseen) == 0 {
		t.Error("no lookalike kinds reported as unseen by a consumer")
	}
	kinds := 0
	for _, n := range ex.ByKind {
		kinds += n
	}
	if byRule := ex.ByRule[len(ex.ByRule)-1]; byRule.Entries != 2*kinds {
		t.Errorf("lookalike rule has %d entries for %d lookalike domains", byRule.Entries, kinds)
	}
	for i := 1; i < len(ex.Entries); i++ {
		if CompareExportEntries(&ex.Entries[i-1], &ex.Entries[i]) >= 0 {
			t.Fatalf("entries out of order at %d: %s, %s", i, entryText(ex.Entries[i-1]), entryText(ex.Entries[i]))
		}
	}
}

func TestExportBound(t *testing.T) {
	var list strings.Builder
	for i := range 100 {
		fmt.Fprintf(&list, "n%d.example\n", i)
	}
	_, err := exportOf(t, exportPolicy, list.String(), 50, true)
	if err == nil || !strings.Contains(err.Error(), `over 50 records`) || !strings.Contains(err.Error(), `rule "feed" at line 6`) {
		t.Errorf("lists over the bound: %v", err)
	}
	_, err = exportOf(t, exportPolicy, "a.example\n", 100, true)
	if err == nil || !strings.Contains(err.Error(), "lookalikes of army.mil") {
		t.Errorf("lookalikes over the bound: %v", err)
	}
	if _, err := exportOf(t, exportPolicy, "a.example\n", 10000, true); err != nil {
		t.Errorf("within the bound: %v", err)
	}
}

func TestDNSKeyOrder(t *testing.T) {
	names := []string{"a.example", "*.a.example", "example", "b.a.example", "z.example", "*.example", "-.a.example", "0.a.example"}
	slices.SortFunc(names, func(a, b string) int {
		an, ab := strings.CutPrefix(a, "*.")
		bn, bb := strings.CutPrefix(b, "*.")
		return CompareNames(an, ab, bn, bb)
	})
	want := []string{"example", "*.example", "a.example", "*.a.example", "-.a.example", "0.a.example", "b.a.example", "z.example"}
	if !slices.Equal(names, want) {
		t.Errorf("order %v, want %v", names, want)
	}
}
