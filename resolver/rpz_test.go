package resolver

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
)

// testZone is the RPZ of a policy of rules only.
func testZone(t *testing.T, rules string) *RPZ {
	t.Helper()
	p, err := policy.Parse("rpz.yaml", []byte("answers: {sinkhole_ipv4: 192.0.2.25}\nrules:\n"+rules), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := policy.NewExporter(0).Export(p, false)
	if err != nil {
		t.Fatal(err)
	}
	return NewRPZ("rpz.test.", 7, p, ex)
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	return out
}

func TestRPZRecords(t *testing.T) {
	z := testZone(t, `  - {name: a, domains: [ml], action: nxdomain}
  - {name: b, domains: [partner.ml], action: allow}
  - {name: c, domains: ["*.sub.example"], action: nodata}
  - {name: d, domains: [sink.example], action: sinkhole}
  - {name: e, domains: [refused.example], action: refuse}
`)
	var got []dns.RR
	z.Records(func(rr dns.RR) bool { got = append(got, rr); return true })
	want := []string{
		"rpz.test. 300 IN SOA localhost. hostmaster.localhost. 7 300 60 2419200 300",
		"rpz.test. 300 IN NS localhost.",
		"sinkhole.typoguard.invalid.rpz.test. 300 IN A 192.0.2.25",
		"sink.example.rpz.test. 300 IN MX 10 sinkhole.typoguard.invalid.",
		"sink.example.rpz.test. 300 IN A 192.0.2.25",
		"*.sink.example.rpz.test. 300 IN MX 10 sinkhole.typoguard.invalid.",
		"*.sink.example.rpz.test. 300 IN A 192.0.2.25",
		"*.sub.example.rpz.test. 300 IN CNAME *.",
		"ml.rpz.test. 300 IN CNAME .",
		"*.ml.rpz.test. 300 IN CNAME .",
		"partner.ml.rpz.test. 300 IN CNAME rpz-passthru.",
		"*.partner.ml.rpz.test. 300 IN CNAME rpz-passthru.",
	}
	if g := rrStrings(got); !slices.Equal(g, want) {
		t.Errorf("records:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
	if z.Skipped != 2 || z.Len() != 7 {
		t.Errorf("skipped %d (refuse), len %d", z.Skipped, z.Len())
	}
	// The text form is the records' String, line by line.
	var b strings.Builder
	if err := z.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		text = append(text, strings.Join(strings.Fields(l), " "))
	}
	if !slices.Equal(text, want) {
		t.Errorf("text:\n%s\nwant:\n%s", strings.Join(text, "\n"), strings.Join(want, "\n"))
	}
}

func TestDiffZones(t *testing.T) {
	a := testZone(t, `  - {name: a, domains: [x.example], action: nxdomain}
  - {name: b, domains: [y.example], action: nodata}
  - {name: c, domains: [gone.example], action: nxdomain}
`)
	b := testZone(t, `  - {name: a, domains: [x.example], action: nxdomain}
  - {name: b, domains: [y.example], action: nxdomain}
  - {name: d, domains: [new.example], action: allow}
`)
	deleted, added := diffZones(a, b)
	wantDeleted := []string{
		"gone.example.rpz.test. 300 IN CNAME .", "*.gone.example.rpz.test. 300 IN CNAME .",
		"y.example.rpz.test. 300 IN CNAME *.", "*.y.example.rpz.test. 300 IN CNAME *.",
	}
	wantAdded := []string{
		"new.example.rpz.test. 300 IN CNAME rpz-passthru.", "*.new.example.rpz.test. 300 IN CNAME rpz-passthru.",
		"y.example.rpz.test. 300 IN CNAME .", "*.y.example.rpz.test. 300 IN CNAME .",
	}
	if g := rrStrings(deleted); !slices.Equal(g, wantDeleted) {
		t.Errorf("deleted:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(wantDeleted, "\n"))
	}
	if g := rrStrings(added); !slices.Equal(g, wantAdded) {
		t.Errorf("added:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(wantAdded, "\n"))
	}
	if d, a := diffZones(b, b); len(d)+len(a) != 0 {
		t.Errorf("a zone differs from itself: -%v +%v", d, a)
	}
}
