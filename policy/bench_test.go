package policy

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// bigList makes a list file of n distinct domains shaped like a real
// blocklist's (one to three labels before a registrable domain).
func bigList(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"mail", "login", "secure", "cdn", "track", "ads", "portal", "update", "army", "navy", "mod", "gov", "pay", "cloud"}
	tlds := []string{"com", "net", "org", "ml", "info", "xyz", "co.uk", "top"}
	var b bytes.Buffer
	b.Grow(n * 28)
	b.WriteString("# generated blocklist\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s-%s%d.%s\n", words[rng.IntN(len(words))], words[rng.IntN(len(words))], i, tlds[rng.IntN(len(tlds))])
	}
	return b.Bytes()
}

var (
	bigOnce   sync.Once
	bigData   []byte
	bigPolicy = []byte("rules:\n  - name: feed\n    domains_from: [big.txt]\n    action: nxdomain\n  - name: ml\n    domains: [ml]\n    types: [MX, A, AAAA, ANY]\n    action: nxdomain\n")
)

func bigOptions() Options {
	bigOnce.Do(func() { bigData = bigList(1_000_000) })
	return Options{Now: testNow, OpenList: listsFrom(func(string) ([]byte, error) { return bigData, nil })}
}

func BenchmarkDecide(b *testing.B) {
	small := mustParse(b, decisionPolicy)
	big, err := Parse("big.yaml", bigPolicy, bigOptions())
	if err != nil {
		b.Fatal(err)
	}
	client := netip.MustParseAddr("10.0.5.7")
	cases := []struct {
		name  string
		p     *Policy
		qname string
	}{
		{"10rules/blocked", small, "mail.army.ml."},
		{"10rules/forwarded", small, "www.example.com."},
		{"10rules/exception", small, "mx.partner.ml."},
		{"1Mdomains/blocked", big, "secure-army500000.co.uk."},
		{"1Mdomains/blocked-sub", big, "www.mail.secure-army500000.co.uk."},
		{"1Mdomains/forwarded", big, "www.example.com."},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.p.Decide(client, c.qname, TypeMX)
			}
		})
	}
	// A thousand names no rule touches, in turn, as bench/compare.sh's hit
	// workload asks them: the table's probes of each are not all in the
	// CPU's caches.
	var names []string
	for i := range 1000 {
		names = append(names, fmt.Sprintf("host%d.example.com.", i))
	}
	for _, c := range []struct {
		name string
		p    *Policy
	}{{"10rules/forwarded-1000names", small}, {"1Mdomains/forwarded-1000names", big}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.p.Decide(client, names[i], TypeMX)
				i = (i + 1) % len(names)
			}
		})
	}
}

// BenchmarkLoad1MDomains loads a policy whose list holds a million domains
// and reports the heap the compiled policy keeps.
func BenchmarkLoad1MDomains(b *testing.B) {
	opts := bigOptions()
	b.SetBytes(int64(len(bigData)))
	p := benchmarkLoad(b, "big.yaml", bigPolicy, opts)
	if p.DomainCount() < 1_000_000 {
		b.Fatalf("only %d domains", p.DomainCount())
	}
	runtime.KeepAlive(p)
}

// TestLoad1MDomainsFromFile loads a million-domain list through the real
// file path once, as a correctness check on the large-table path.
func TestLoad1MDomainsFromFile(t *testing.T) {
	if testing.Short() {
		t.Skip("large list")
	}
	dir := t.TempDir()
	data := bigList(1_000_000)
	if err := os.WriteFile(filepath.Join(dir, "big.txt"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "policy.yaml")
	p, err := Parse(file, bigPolicy, Options{Now: testNow, OpenList: listsFrom(os.ReadFile)})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Rules()[0].DomainCount; got != 1_000_000 {
		t.Errorf("DomainCount = %d", got)
	}
	if !p.Decide(netip.Addr{}, "x."+lastName(data), TypeMX).Blocked() {
		t.Error("last domain of the list not blocked")
	}
	if p.Decide(netip.Addr{}, "mail-army1000001.com.", TypeMX).Blocked() {
		t.Error("a name not in the list is blocked")
	}
}

func lastName(list []byte) string {
	list = bytes.TrimSpace(list)
	return string(list[bytes.LastIndexByte(list, '\n')+1:])
}

// protectedDomains makes n distinct registrable domains shaped like the
// ones an organisation writes to, the first of them army.mil.
func protectedDomains(n int) []string {
	rng := rand.New(rand.NewPCG(3, 4))
	words := []string{"army", "navy", "defence", "ministry", "agency", "health", "police", "council", "office", "mission", "embassy", "command"}
	suffixes := []string{"mil", "gov", "gov.uk", "int", "de", "fr", "org", "com", "co.uk", "nato.int"}
	out := []string{"army.mil"}
	seen := map[string]bool{"army.mil": true}
	for len(out) < n {
		d := fmt.Sprintf("%s%s%d.%s", words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1000), suffixes[rng.IntN(len(suffixes))])
		if _, _, ok := splitRegistrable(d); ok && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// BenchmarkDecideLookalikes decides queries with lookalike protection on.
func BenchmarkDecideLookalikes(b *testing.B) {
	client := netip.MustParseAddr("10.0.5.7")
	for _, n := range []int{10, 1000} {
		p, err := ForDomains(protectedDomains(n))
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct{ name, qname string }{
			{"forwarded", "www.example.com."},
			{"forwarded-long", "static.cdn.images.example-content-delivery.net."},
			{"protected", "mail.army.mil."},
			{"suffix-typo", "army.ml."},
			{"label-typo", "mail.arny.mil."},
			{"dot-game", "army.mil-mail.net."},
			{"idn", "xn--rmy-5cd.mil."},
		} {
			b.Run(fmt.Sprintf("%dprotected/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p.Decide(client, c.qname, TypeMX)
				}
			})
		}
	}
}

// BenchmarkLoadLookalikes compiles 1,000 protected domains and reports the
// heap they keep.
func BenchmarkLoadLookalikes(b *testing.B) {
	domains := protectedDomains(1000)
	var src bytes.Buffer
	src.WriteString("lookalikes:\n  protect:\n")
	for _, d := range domains {
		fmt.Fprintf(&src, "    - %s\n", d)
	}
	p := benchmarkLoad(b, "look.yaml", src.Bytes(), Options{Now: testNow})
	if len(p.LookalikeRules()) != 1000 {
		b.Fatalf("%d protected domains", len(p.LookalikeRules()))
	}
}

// benchmarkLoad parses src in a loop, then reports the heap one parsed
// policy keeps, and returns that policy.
func benchmarkLoad(b *testing.B, file string, src []byte, opts Options) *Policy {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(file, src, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := Parse(file, src, opts)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MB-kept")
	return p
}
