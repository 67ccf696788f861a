package policy

import (
	"fmt"
	"strings"
	"testing"
)

// TestTableFingerprints fills a table and checks that every name it holds
// is found, under any case and with or without the trailing dot, at the
// right entry, and that no other name is: near names, parents, children
// and names of other lengths.
func TestTableFingerprints(t *testing.T) {
	tb := newTable(0) // grown from empty: every resize is exercised
	const n = 50_000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("host%d.example%d.test", i, i%97)
		if !tb.add([]byte(names[i]), uint32(i), refApex|refBelow) {
			t.Fatalf("add %s: reported as known", names[i])
		}
	}
	if tb.add([]byte(names[7]), 7, refApex) {
		t.Fatalf("re-adding %s under the same rule reported it new", names[7])
	}
	if got := tb.count(); got != n {
		t.Fatalf("count = %d, want %d", got, n)
	}
	for i, name := range names {
		for _, q := range []string{name, strings.ToUpper(name) + ".", "a." + name} {
			var hits []int
			tb.walk(q, func(e uint32, start int) bool {
				if tb.first(e).rule != uint32(i) {
					t.Errorf("walk(%q): entry %d is rule %d's, want %d's", q, e, tb.first(e).rule, i)
				}
				hits = append(hits, start)
				return true
			})
			if len(hits) != 1 || !strings.EqualFold(strings.TrimSuffix(q[hits[0]:], "."), name) {
				t.Errorf("walk(%q) found suffixes at %v, want only %s", q, hits, name)
			}
		}
		for _, q := range []string{name[1:], "x" + name, name + "x", "example" + fmt.Sprint(i%97) + ".test", name[:len(name)-1]} {
			tb.walk(q, func(e uint32, start int) bool {
				t.Errorf("walk(%q) found entry %d at %d (rule %d)", q, e, start, tb.first(e).rule)
				return true
			})
		}
	}
}
