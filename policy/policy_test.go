package policy

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testNow is the clock of every test here, so expiry checks do not drift.
var testNow = func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }

// repoReadFile reads paths relative to the repository root, so that error
// messages name files as a user at the root would see them.
func repoReadFile(name string) ([]byte, error) { return os.ReadFile(filepath.Join("..", name)) }

// listsFrom is an Options.OpenList that serves the bytes read returns.
func listsFrom(read func(string) ([]byte, error)) func(string) (io.ReadCloser, int64, error) {
	return func(name string) (io.ReadCloser, int64, error) {
		data, err := read(name)
		if err != nil {
			return nil, 0, err
		}
		return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
	}
}

func parseRepoFile(t testing.TB, name string) (*Policy, error) {
	t.Helper()
	src, err := repoReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return Parse(name, src, Options{OpenList: listsFrom(repoReadFile), Now: testNow})
}

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse("test.yaml", []byte(src), Options{Now: testNow})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

func TestInvalidPoliciesGolden(t *testing.T) {
	files, err := filepath.Glob("../testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid policies found: %v", err)
	}
	for _, f := range files {
		name := strings.TrimPrefix(filepath.ToSlash(f), "../")
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := parseRepoFile(t, name)
			if err == nil {
				t.Fatalf("parsed without error: %d rules", len(p.Rules()))
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want ErrorList", err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./policy -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestEveryErrorKindReported(t *testing.T) {
	_, err := parseRepoFile(t, "testdata/invalid/everything.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	text := err.Error()
	for _, want := range []string{
		"unknown key \"deny\"",                     // unknown key
		"want a whole number",                      // wrong type
		"bad duration",                             // bad duration
		"bad CIDR",                                 // bad CIDR
		"bad IP address or CIDR",                   // bad IP
		"unknown action",                           // unknown action
		"unknown mode",                             // unknown mode
		"unknown record type",                      // unknown type
		"empty label",                              // invalid domain
		"over 63",                                  // label too long
		"over 253",                                 // name too long
		"which a host name cannot",                 // bad character
		"already used",                             // duplicate rule name
		"forward needs servers",                    // forward without servers
		"no client group named",                    // undefined group
		"expired on 2020-01-31",                    // expired exception
		"unknown expectation",                      // tests: bad expectation
		"mil is a public suffix",                   // lookalikes.protect: a suffix
		"is below its registrable domain army.mil", // lookalikes.protect: too deep
		"army.mil is already protected",            // lookalikes.protect: twice
		"not in the public-suffix list",            // lookalikes.protect: no real TLD
		"lookalikes.action: \"forward\" does not block",
		"lookalikes.clients: no client group named \"nobody\"",
		"explainer.listen: bad port in \"192.0.2.25:smtp\"",
		"explainer.listen: \"mail.example.net\" is not an IP address",
		"explainer.hostname: a host name cannot be a wildcard",
		"explainer.max_connections: 0 is not a positive number",
		"explainer.timeout: 10ms is under a second",
		"unknown key \"banner\" in explainer",
		"DNS over TLS needs the name its certificate is for",
		"want https://HOST[:PORT]/PATH, with no user, query or fragment",
		"rpz.listen: bad address \"127.0.0.1\" (want host:port)",
		"rpz.zone: a zone name cannot be a wildcard",
		"rpz.allow_transfer: bad CIDR \"10.0.0.0/33\"",
		"rpz.notify: \"ns2.example\" is not an IP address",
		"rpz.tsig algorithm: unsupported algorithm \"hmac-md5\" (want hmac-sha256)",
		"rpz.tsig: key xfr-key is already defined",
		"rpz.tsig key: needs secret_file",
		"unknown key \"serial\" in rpz",
		"limits.upstream_inflight: 0 is not a positive number",
		"limits.tcp_per_client: 32 is above tcp_connections 10",
		"unknown key \"tcp_idle\" in limits",
		"rate_limit.burst: 100 is below qps 200",
		"rate_limit.exempt: CIDR \"127.0.0.1/8\" has host bits set",
		"unknown key \"per\" in rate_limit",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no error containing %q in:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "testdata/invalid/everything.yaml:") {
			t.Errorf("line without file:line:col: %q", line)
		}
	}
}

func TestValidPolicies(t *testing.T) {
	files, _ := filepath.Glob("../testdata/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no valid policies found")
	}
	for _, f := range files {
		name := strings.TrimPrefix(filepath.ToSlash(f), "../")
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := parseRepoFile(t, name)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Tests) == 0 {
				t.Error("a valid example policy should carry tests")
			}
			for _, r := range p.RunTests() {
				if !r.Pass {
					t.Error(r)
				}
			}
		})
	}
}

func TestExamplePolicy(t *testing.T) {
	p, err := parseRepoFile(t, "testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tests) == 0 {
		t.Fatal("example has no tests")
	}
	for _, r := range p.RunTests() {
		if !r.Pass {
			t.Error(r)
		}
	}
	if !p.Lookalikes.Configured() || len(p.Lookalikes.Protect) != 3 {
		t.Errorf("lookalikes = %+v", p.Lookalikes)
	}
	for _, w := range p.Warnings() {
		if strings.Contains(w.Msg, "not enforced") {
			t.Errorf("warning %q: lookalikes are enforced", w)
		}
	}
}

// TestContractExample keeps the documented example configuration loading:
// every section it shows is parsed, and those this version does not act on
// say so, each once, at the section.
func TestContractExample(t *testing.T) {
	p, err := parseRepoFile(t, "testdata/contract.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.RunTests() {
		if !r.Pass {
			t.Error(r)
		}
	}
	var got []string
	for _, w := range p.Warnings() {
		got = append(got, w.String())
	}
	want := []string{
		"testdata/contract.yaml:57:3: warning: explainer listens on 192.0.2.25:25, but no rule answers sinkhole with an address it serves on port 25 (answers.sinkhole_ipv4/_ipv6): no mail server will be sent to it",
		`testdata/contract.yaml:60:3: warning: rpz: "mali-is-not-mil", "mali-addresses-for-mail-servers", lookalike protection scoped to query types, which RPZ has none of, so the zone leaves them out: set rpz.widen_types: true to serve them for every type`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r := p.RPZ
	if r.Listen != "127.0.0.1:5353" || r.Zone != "rpz.typoguard.internal." || len(r.AllowTransfer) != 1 || len(r.Notify) != 1 || r.Notify[0] != "10.0.0.53:53" {
		t.Errorf("rpz = %+v", r)
	}
	if l := p.Limits; l.UpstreamInflight != 1024 || l.TCPConnections != 1000 || l.TCPPerClient != 32 {
		t.Errorf("limits = %+v", l)
	}
	if rl := p.RateLimit; rl.QPS != 200 || rl.Burst != 400 || len(rl.Exempt) != 1 || rl.Exempt[0] != netip.MustParsePrefix("127.0.0.0/8") {
		t.Errorf("rate_limit = %+v", rl)
	}
}

func TestNotEnforcedWarnedOnlyWhenPresent(t *testing.T) {
	count := func(p *Policy) int {
		n := 0
		for _, w := range p.Warnings() {
			if strings.Contains(w.Msg, "not enforced") {
				n++
			}
		}
		return n
	}
	if n := count(mustParse(t, "rules: []\n")); n != 0 {
		t.Errorf("%d not-enforced warnings without the sections, want 0", n)
	}
	// An empty section is there all the same; limits, rate_limit and rpz
	// are enforced.
	if n := count(mustParse(t, "limits:\nrate_limit: {qps: 1}\nrpz: {listen: 127.0.0.1:5353, zone: rpz.example}\n")); n != 0 {
		t.Errorf("%d not-enforced warnings for limits, rate_limit and rpz, want none", n)
	}
}

func TestDefaultPolicy(t *testing.T) {
	p, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Listen, ","); got != "127.0.0.1:5300" {
		t.Errorf("listen = %s", got)
	}
	if len(p.Upstreams) != 0 {
		t.Errorf("upstreams = %v, want none (the system's)", p.Upstreams)
	}
	client := netip.MustParseAddr("127.0.0.1")
	for _, qt := range []uint16{TypeMX, TypeA, TypeAAAA, TypeANY} {
		if d := p.Decide(client, "army.ml.", qt); !d.Blocked() || d.Action != ActionNXDomain {
			t.Errorf("army.ml %s: %+v, want nxdomain", TypeString(qt), d)
		}
	}
	if d := p.Decide(client, "army.ml.", 16); d.Blocked() {
		t.Errorf("army.ml TXT blocked: %+v", d)
	}
	for _, r := range p.RunTests() {
		if !r.Pass {
			t.Error(r)
		}
	}
}

const decisionPolicy = `
client_groups:
  mta: [10.0.5.0/24, "fd00:5::/64"]
answers:
  sinkhole_ipv4: 192.0.2.25
rules:
  - name: ml-mx
    domains: [ml]
    types: [MX, ANY]
    action: nxdomain
  - name: ml-addresses-mta
    domains: [ml]
    types: [A, AAAA]
    clients: [mta]
    action: nxdomain
  - name: partner
    domains: [partner.ml]
    action: allow
  - name: deeper-block
    domains: [bad.partner.ml]
    action: refuse
  - name: below-only
    domains: ["*.nvy.mil"]
    action: sinkhole
  - name: trial
    domains: [trial.example]
    action: null-mx
    mode: monitor
  - name: unicode
    domains: [bücher.example]
    action: nodata
  - name: punycode
    domains: [xn--mnchen-3ya.example]
    action: nodata
  - name: corp
    domains: [corp.internal]
    action: forward
    servers: [10.1.1.53]
  - name: first-wins
    domains: [same.example]
    action: nxdomain
  - name: second-loses
    domains: [same.example]
    types: [MX]
    action: refuse
`

func TestDecide(t *testing.T) {
	p := mustParse(t, decisionPolicy)
	anyone := netip.MustParseAddr("192.168.1.10")
	mta := netip.MustParseAddr("10.0.5.7")
	mta6 := netip.MustParseAddr("fd00:5::25")
	tests := []struct {
		name   string
		client netip.Addr
		qname  string
		qtype  uint16
		rule   string // "" = no rule
		action Action
		domain string
	}{
		{"apex", anyone, "ml.", TypeMX, "ml-mx", ActionNXDomain, "ml."},
		{"subdomain", anyone, "army.ml.", TypeMX, "ml-mx", ActionNXDomain, "ml."},
		{"deep subdomain", anyone, "a.b.c.army.ml.", TypeANY, "ml-mx", ActionNXDomain, "ml."},
		{"no trailing dot", anyone, "army.ml", TypeMX, "ml-mx", ActionNXDomain, "ml"},
		{"mixed case", anyone, "ArMy.Ml.", TypeMX, "ml-mx", ActionNXDomain, "Ml."},
		{"other type unblocked", anyone, "army.ml.", 16, "", ActionAllow, ""},
		{"not a suffix match", anyone, "html.", TypeMX, "", ActionAllow, ""},
		{"mil untouched", anyone, "army.mil.", TypeMX, "", ActionAllow, ""},
		{"client group applies", mta, "mx.army.ml.", TypeA, "ml-addresses-mta", ActionNXDomain, "ml."},
		{"client group v6", mta6, "mx.army.ml.", TypeAAAA, "ml-addresses-mta", ActionNXDomain, "ml."},
		{"client outside group", anyone, "mx.army.ml.", TypeA, "", ActionAllow, ""},
		{"v4-mapped client", netip.MustParseAddr("::ffff:10.0.5.7"), "mx.army.ml.", TypeA, "ml-addresses-mta", ActionNXDomain, "ml."},
		{"allow exception", anyone, "partner.ml.", TypeMX, "partner", ActionAllow, "partner.ml."},
		{"allow below exception", mta, "mail.partner.ml.", TypeA, "partner", ActionAllow, "partner.ml."},
		{"deeper rule beats exception", anyone, "x.bad.partner.ml.", TypeMX, "deeper-block", ActionRefuse, "bad.partner.ml."},
		{"star form: below", anyone, "hq.nvy.mil.", TypeA, "below-only", ActionSinkhole, "nvy.mil."},
		{"star form: not apex", anyone, "nvy.mil.", TypeA, "", ActionAllow, ""},
		{"monitor", anyone, "trial.example.", TypeMX, "trial", ActionNullMX, "trial.example."},
		{"unicode rule, A-label query", anyone, "xn--bcher-kva.example.", TypeMX, "unicode", ActionNoData, "xn--bcher-kva.example."},
		{"punycode rule", anyone, "www.XN--MNCHEN-3YA.example.", TypeA, "punycode", ActionNoData, "XN--MNCHEN-3YA.example."},
		{"forward", anyone, "db.corp.internal.", TypeA, "corp", ActionForward, "corp.internal."},
		{"same domain: first in file", anyone, "same.example.", TypeMX, "first-wins", ActionNXDomain, "same.example."},
		{"escaped dot is no boundary", anyone, `evil\.army.ml.com.`, TypeMX, "", ActionAllow, ""},
		{"escaped dot inside blocked", anyone, `a\.b.ml.`, TypeMX, "ml-mx", ActionNXDomain, "ml."},
		{"root", anyone, ".", TypeMX, "", ActionAllow, ""},
		{"empty", anyone, "", TypeMX, "", ActionAllow, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.client, tc.qname, tc.qtype)
			rule := ""
			if d.Rule != nil {
				rule = d.Rule.Name
			}
			if rule != tc.rule || d.Action != tc.action || d.Domain != tc.domain {
				t.Errorf("Decide(%s, %q, %s) = rule %q action %s domain %q; want rule %q action %s domain %q",
					tc.client, tc.qname, TypeString(tc.qtype), rule, d.Action, d.Domain, tc.rule, tc.action, tc.domain)
			}
		})
	}
}

func TestMonitorMode(t *testing.T) {
	p := mustParse(t, decisionPolicy)
	d := p.Decide(netip.MustParseAddr("127.0.0.1"), "trial.example.", TypeMX)
	if d.Blocked() || !d.WouldBlock() || d.Effective() != ActionAllow {
		t.Errorf("monitor decision: blocked=%v wouldBlock=%v effective=%s", d.Blocked(), d.WouldBlock(), d.Effective())
	}
}

func TestForwardServers(t *testing.T) {
	p := mustParse(t, decisionPolicy)
	d := p.Decide(netip.Addr{}, "x.corp.internal", TypeA)
	if d.Rule == nil || len(d.Rule.Servers) != 1 || d.Rule.Servers[0] != "10.1.1.53:53" {
		t.Fatalf("forward rule servers: %+v", d.Rule)
	}
}

// TestEncryptedUpstreams reads DNS-over-TLS and HTTPS upstreams, default
// upstreams and a forward rule's servers alike, and refuses each malformed
// one at its position, never taking it for plain DNS.
func TestEncryptedUpstreams(t *testing.T) {
	p := mustParse(t, `upstreams: ["tls://10.0.0.2#DNS.Example.NET.", "tls://[2001:db8::2]:8853#dns.example.net", "HTTPS://dns.example.net/dns-query", "https://10.0.0.3:8443/q"]
rules:
  - {name: corp, domains: [corp.internal], action: forward, servers: ["tls://10.1.1.53#ns.corp.internal"]}
`)
	want := []string{"tls://10.0.0.2:853#dns.example.net", "tls://[2001:db8::2]:8853#dns.example.net", "https://dns.example.net/dns-query", "https://10.0.0.3:8443/q"}
	if !slices.Equal(p.Upstreams, want) {
		t.Errorf("upstreams %q, want %q", p.Upstreams, want)
	}
	if s := p.Rules()[0].Servers; !slices.Equal(s, []string{"tls://10.1.1.53:853#ns.corp.internal"}) {
		t.Errorf("forward servers %q", s)
	}
	tests := []struct {
		name, src, want string
	}{
		{"DoT without a name", `upstreams: ["tls://10.0.0.2:853"]`,
			`p.yaml:1:13: upstreams: "tls://10.0.0.2:853": DNS over TLS needs the name its certificate is for: tls://IP:PORT#NAME`},
		{"DoT to a host name", `upstreams: ["tls://dns.example.net:853#dns.example.net"]`,
			`p.yaml:1:13: upstreams: "dns.example.net" is not an IP address`},
		{"DoT with a bad name", `upstreams: ["tls://10.0.0.2#bad..name"]`,
			`p.yaml:1:13: upstreams: "tls://10.0.0.2#bad..name": "bad..name" is not a host name to check the certificate against`},
		{"DoH with a query", `upstreams: ["https://dns.example.net/dns-query?dns=x"]`,
			`p.yaml:1:13: upstreams: "https://dns.example.net/dns-query?dns=x": want https://HOST[:PORT]/PATH, with no user, query or fragment`},
		{"DoT forward server", "rules:\n  - {name: corp, domains: [corp.internal], action: forward, servers: [\"tls://10.1.1.53:853\"]}",
			`p.yaml:2:71: servers: "tls://10.1.1.53:853": DNS over TLS needs the name`},
		{"other scheme", `upstreams: ["udp://10.0.0.2:53"]`,
			`p.yaml:1:13: upstreams: "udp://10.0.0.2:53": unknown scheme "udp" (want ip:port, tls://IP:PORT#NAME or https://HOST/PATH)`},
		{"CA file that is no PEM", "upstream_ca_file: ca.pem\nupstreams: [\"tls://10.0.0.2#dns.example.net\"]",
			`p.yaml:1:19: upstream_ca_file: ca.pem holds no PEM certificate`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.src), Options{Now: testNow, OpenList: listsFrom(func(string) ([]byte, error) { return []byte("not a certificate"), nil })})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a line starting %s", err, tc.want)
			}
		})
	}
}

func TestShadowedRuleWarning(t *testing.T) {
	p := mustParse(t, decisionPolicy)
	var found bool
	for _, w := range p.Warnings() {
		if strings.Contains(w.Msg, `"second-loses" can never apply`) {
			found = true
		}
		if strings.Contains(w.Msg, `"ml-addresses-mta" can never apply`) {
			t.Errorf("false warning: %s", w)
		}
	}
	if !found {
		t.Errorf("no warning for the shadowed rule; warnings: %v", p.Warnings())
	}
}

func TestDomainsFromList(t *testing.T) {
	lists := map[string]string{
		"lists/feed.txt": "# comment\nOne.Example\n\n0.0.0.0 two.example three.example # x\n::1 localhost ip6-localhost\n*.four.example\nfive.example.\n",
	}
	read := func(name string) ([]byte, error) {
		if s, ok := lists[filepath.ToSlash(name)]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	p, err := Parse("policy.yaml", []byte("rules:\n  - name: feed\n    domains_from: [lists/feed.txt]\n    action: nxdomain\n"),
		Options{OpenList: listsFrom(read), Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Rules()[0].DomainCount; got != 5 {
		t.Errorf("DomainCount = %d, want 5", got)
	}
	for name, blocked := range map[string]bool{
		"one.example": true, "x.two.example": true, "three.example": true,
		"four.example": false, "a.four.example": true, "five.example": true, "localhost": false,
	} {
		if got := p.Decide(netip.Addr{}, name, TypeMX).Blocked(); got != blocked {
			t.Errorf("%s blocked = %v, want %v", name, got, blocked)
		}
	}
}

func TestSkipExpired(t *testing.T) {
	src := "rules:\n  - name: ml\n    domains: [ml]\n    action: nxdomain\n  - name: old\n    domains: [partner.ml]\n    action: allow\n    expires: 2026-11-23\n"
	if _, err := Parse("p.yaml", []byte(src), Options{Now: testNow}); err == nil || !strings.Contains(err.Error(), "p.yaml:5:5: rule \"old\" expired on 2026-11-23") {
		t.Fatalf("err = %v", err)
	}
	p, err := Parse("p.yaml", []byte(src), Options{Now: testNow, SkipExpired: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(netip.Addr{}, "partner.ml", TypeMX); !d.Blocked() {
		t.Errorf("expired exception still applies: %+v", d)
	}
	// The last day itself still holds.
	today := strings.Replace(src, "2026-11-23", "2026-11-24", 1)
	if _, err := Parse("p.yaml", []byte(today), Options{Now: testNow}); err != nil {
		t.Errorf("exception on its last day: %v", err)
	}
}

func TestRunTestsReportsFailure(t *testing.T) {
	p := mustParse(t, "rules:\n  - name: ml\n    domains: [ml]\n    action: nxdomain\ntests:\n  - {name: army.ml, type: MX, expect: nxdomain}\n  - {name: army.ml, type: MX, expect: allow}\n")
	res := p.RunTests()
	if !res[0].Pass || res[1].Pass {
		t.Fatalf("results: %v", res)
	}
	if got := res[1].String(); !strings.HasPrefix(got, "test.yaml:7:5: army.ml MX: expected allow, got nxdomain") {
		t.Errorf("failure line = %q", got)
	}
}

func TestParseType(t *testing.T) {
	for in, want := range map[string]uint16{"MX": 15, "mx": 15, "AAAA": 28, "ANY": 255, "TYPE65": 65, "CAA": 257} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "BOGUS", "TYPE70000", "TYPE-1"} {
		if _, err := ParseType(in); err == nil {
			t.Errorf("ParseType(%q) succeeded", in)
		}
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	p := mustParse(t, decisionPolicy)
	client := netip.MustParseAddr("10.0.5.7")
	allocs := testing.AllocsPerRun(100, func() {
		p.Decide(client, "mail.bad.partner.ML.", TypeMX)
		p.Decide(client, "www.example.com.", TypeA)
	})
	if allocs != 0 {
		t.Errorf("Decide allocates %.1f times per call", allocs)
	}
}

func FuzzParse(f *testing.F) {
	list := []byte("a.example\n0.0.0.0 b.example c.example # x\n*.d.example\n")
	for _, name := range []string{"testdata/example.yaml", "testdata/contract.yaml", "testdata/invalid/everything.yaml", "testdata/invalid/syntax.yaml"} {
		if src, err := repoReadFile(name); err == nil {
			f.Add(src, list, "army.ml.")
		}
	}
	f.Add([]byte(decisionPolicy), list, `a\.b.ml.`)
	f.Add([]byte("rules: [{name: x, domains_from: [l.txt], action: refuse}]"), []byte("bücher.example\n::1 localhost\nbad..x\n"), "b.a")
	f.Add([]byte("rules: [{name: x, domains_from: [l.rpz, {path: l.txt, format: adblock}], action: refuse}]"),
		[]byte("$ORIGIN z.\n@ SOA a. b. (1 2\n 3 4 5)\nbad.example CNAME .\n*.w.example CNAME .\n||ads.example^\n@@||x^\n"), "a.w.example")
	f.Fuzz(func(t *testing.T, src, listFile []byte, qname string) {
		p, err := Parse("fuzz.yaml", src, Options{Now: testNow, OpenList: listsFrom(func(string) ([]byte, error) {
			return listFile, nil
		})})
		if err != nil {
			var el ErrorList
			if !errors.As(err, &el) || len(el) == 0 {
				t.Fatalf("error %T without positions: %v", err, err)
			}
			return
		}
		for _, client := range []netip.Addr{{}, netip.MustParseAddr("10.0.5.7"), netip.MustParseAddr("::1")} {
			for _, qt := range []uint16{TypeA, TypeMX, TypeANY, 65535} {
				d := p.Decide(client, qname, qt)
				if d.Rule == nil && d.Action != ActionAllow {
					t.Fatalf("no rule but action %s", d.Action)
				}
				if d.Rule != nil && !p.Touches(qname) {
					t.Fatalf("rule %q decides %q, yet Touches says no rule could", d.Rule.Name, qname)
				}
				if d.Rule != nil && !strings.HasSuffix(strings.ToLower(strings.TrimSuffix(qname, ".")), strings.ToLower(strings.TrimSuffix(d.Domain, "."))) {
					t.Fatalf("matched domain %q is not a suffix of %q", d.Domain, qname)
				}
			}
		}
		p.RunTests()
	})
}

func TestListenConflicts(t *testing.T) {
	tests := []struct {
		listen string
		ok     bool
	}{
		{`["0.0.0.0:53", "[::]:53"]`, true},
		{`["127.0.0.1:53", "[::1]:53"]`, true},
		{`["10.0.0.53:53", "[fd00::53]:53", "127.0.0.1:53"]`, true},
		{`["0.0.0.0:53", "[::]:5300"]`, true},
		{`["127.0.0.1:0", "127.0.0.1:0"]`, true},
		{`["10.0.0.53:53", "0.0.0.0:53"]`, false},
		{`["[::]:53", "[fd00::53]:53"]`, false},
		{`[":53", "[::1]:53"]`, false},
		{`["127.0.0.1:53", "127.0.0.1:53"]`, false},
	}
	for _, tc := range tests {
		_, err := Parse("l.yaml", []byte("listen: "+tc.listen+"\n"), Options{})
		if (err == nil) != tc.ok {
			t.Errorf("listen %s: err %v, want ok %v", tc.listen, err, tc.ok)
		}
	}
}

func TestListDomainsBounded(t *testing.T) {
	files := map[string]string{"a.txt": "one.example\ntwo.example\n", "b.txt": "three.example\nfour.example\nfive.example\n"}
	src := "limits: {list_domains: 4}\nrules:\n  - {name: a, domains_from: [a.txt, b.txt], action: nxdomain}\n"
	_, err := Parse("p.yaml", []byte(src), Options{OpenList: listsFrom(func(name string) ([]byte, error) {
		return []byte(files[filepath.Base(name)]), nil
	})})
	if err == nil || !strings.Contains(err.Error(), "b.txt:3: the policy's lists hold 4 domains, the most a policy may") {
		t.Errorf("got %v, want the fifth domain refused at b.txt:3", err)
	}
}

// TestTouches holds Touches to its promise: a name it says no rule
// touches is allowed, by no rule, for every client and type.
func TestTouches(t *testing.T) {
	p := mustParse(t, decisionPolicy)
	clients := []netip.Addr{netip.MustParseAddr("10.0.5.7"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("2001:db8::1")}
	types := []uint16{TypeA, TypeAAAA, TypeMX, TypeANY, 16, 33}
	for _, name := range []string{"mail.army.ml.", "army.ml", "www.example.com.", "mx.partner.ml.", "example.org.", "arny.mil.", "x.y.z.example.", "com."} {
		touched := p.Touches(name)
		some := false
		for _, c := range clients {
			for _, q := range types {
				if d := p.Decide(c, name, q); d.Rule != nil || d.Action != ActionAllow {
					some = true
				}
			}
		}
		if some && !touched {
			t.Errorf("Touches(%q) = false, but a rule decides it", name)
		}
	}
	if p.Touches("www.example.com.") {
		t.Errorf("Touches(www.example.com.) = true; no rule or lookalike is near it")
	}
}

// TestListReading holds the list reader to its line numbers and bounds:
// blank, comment and CRLF lines, a line longer than its buffer between
// good ones, a last line without a newline, and limits.list_bytes both
// from the size a file reports and from what it turns out to hold.
func TestListReading(t *testing.T) {
	long := strings.Repeat("x", 70_000)
	files := map[string]string{
		"a.txt":   "one.example\r\n   \n\t# note\n#" + strings.Repeat("c", MaxListLine) + "\n" + long + "\ntwo.example\n\n  three.example  \nfour.example",
		"big.txt": strings.Repeat("five.example\n", 10),
	}
	sizes := map[string]int64{"a.txt": int64(len(files["a.txt"])), "big.txt": 0} // big.txt does not tell its size
	open := func(name string) (io.ReadCloser, int64, error) {
		base := filepath.Base(name)
		return io.NopCloser(strings.NewReader(files[base])), sizes[base], nil
	}
	src := "limits: {list_bytes: 100}\nrules:\n  - {name: a, domains_from: [a.txt, big.txt], action: nxdomain}\n"
	_, err := Parse("p.yaml", []byte(src), Options{OpenList: open, Now: testNow})
	want := []string{
		fmt.Sprintf("p.yaml:3:30: domains_from: cannot read a.txt: %d bytes, over the limit of 100 (limits.list_bytes)", sizes["a.txt"]),
		"big.txt:8: cannot read: over the limit of 100 bytes (limits.list_bytes) once read",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}

	src = "rules:\n  - {name: a, domains_from: [a.txt], action: nxdomain}\n"
	_, err = Parse("p.yaml", []byte(src), Options{OpenList: open, Now: testNow})
	want = []string{
		fmt.Sprintf("a.txt:4: line is %d bytes long, over the limit of %d", MaxListLine+1, MaxListLine),
		fmt.Sprintf("a.txt:5: line is %d bytes long, over the limit of %d", len(long), MaxListLine),
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	files["a.txt"] = strings.Replace(files["a.txt"], long+"\n", "", 1)
	files["a.txt"] = strings.Replace(files["a.txt"], "#"+strings.Repeat("c", MaxListLine)+"\n", "", 1)
	sizes["a.txt"] = int64(len(files["a.txt"]))
	p, err := Parse("p.yaml", []byte(src), Options{OpenList: open, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Rules()[0].DomainCount; got != 4 {
		t.Errorf("DomainCount = %d, want 4", got)
	}
	for _, name := range []string{"one.example", "two.example", "three.example", "four.example"} {
		if d := p.Decide(netip.Addr{}, name, TypeA); d.Action != ActionNXDomain {
			t.Errorf("%s: %s, want nxdomain", name, d.Action)
		}
	}
}

// TestListFormats reads an adblock list and an RPZ zone, by format key and
// by file name: the domains each names, below-only where it says so, what
// each skips counted in a warning, and its errors with their lines.
func TestListFormats(t *testing.T) {
	files := map[string]string{
		"filters.txt": `[Adblock Plus 2.0]
! Title: test list
||ads.example^
||Tracker.Example.NET^
||cdn.example^$third-party
@@||good.example^
||paths.example/banner
example.org##.ad-box
/banner[0-9]+/
`,
		"feed.rpz": `$TTL 300
@ SOA ns.feed.rpz. hostmaster.feed.rpz. (
        1 3600 600 86400 300 ) ; serial refresh retry expire minimum
  NS ns.feed.rpz.
$ORIGIN feed.rpz.
bad.example        CNAME .
*.wild.example 60 IN CNAME .
nodata.example     CNAME *.
pass.example       CNAME rpz-passthru.
local.example      A 192.0.2.1
32.1.2.0.192.rpz-ip CNAME .
abs.example.feed.rpz. CNAME .
`,
		"zone.txt": `$ORIGIN feed.rpz.
bad.example CNAME .
outside.example.org. CNAME .
$INCLUDE other.zone
`,
	}
	open := func(name string) (io.ReadCloser, int64, error) {
		s := files[filepath.Base(name)]
		return io.NopCloser(strings.NewReader(s)), int64(len(s)), nil
	}
	src := `rules:
  - name: feeds
    domains_from: [{path: filters.txt, format: adblock}, feed.rpz]
    action: nxdomain
`
	p, err := Parse("p.yaml", []byte(src), Options{OpenList: open, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	r := p.Rules()[0]
	if fmt.Sprint(r.ListFormats) != "[adblock rpz]" || r.DomainCount != 5 {
		t.Errorf("formats %v, %d domains; want [adblock rpz], 5", r.ListFormats, r.DomainCount)
	}
	for name, want := range map[string]Action{
		"ads.example": ActionNXDomain, "x.ads.example": ActionNXDomain, "tracker.example.net": ActionNXDomain,
		"cdn.example": ActionAllow, "good.example": ActionAllow, "paths.example": ActionAllow,
		"bad.example": ActionNXDomain, "a.bad.example": ActionNXDomain, "a.wild.example": ActionNXDomain,
		"wild.example": ActionAllow, "nodata.example": ActionAllow, "pass.example": ActionAllow,
		"local.example": ActionAllow, "abs.example": ActionNXDomain, "feed.rpz": ActionAllow,
	} {
		if got := p.Decide(netip.Addr{}, name, TypeA).Action; got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
	var warns []string
	for _, w := range p.Warnings() {
		warns = append(warns, w.String())
	}
	for _, want := range []string{
		"p.yaml:3:20: warning: filters.txt, read as adblock: 5 lines name no domain and were skipped: 3 filters not of the form ||name^ (paths, cosmetic filters, patterns), 1 exceptions (@@), 1 filters with options ($...)",
		"p.yaml:3:58: warning: feed.rpz, read as rpz: 4 lines name no domain and were skipped: 1 CNAME *. (nodata), 1 CNAME rpz-passthru. (exceptions), 1 local data (A records), 1 triggers other than a query name (rpz-ip, rpz-nsdname, ...)",
	} {
		if !slices.Contains(warns, want) {
			t.Errorf("no warning\n  %s\nin\n  %s", want, strings.Join(warns, "\n  "))
		}
	}

	_, err = Parse("p.yaml", []byte(`rules:
  - {name: z, domains_from: [{path: zone.txt, format: rpz}, {path: filters.txt, format: hosts}, {format: plain}, plain.txt], action: nxdomain}
`), Options{OpenList: func(name string) (io.ReadCloser, int64, error) {
		if filepath.Base(name) == "plain.txt" {
			s := "fine.example\n||ads.example^\n"
			return io.NopCloser(strings.NewReader(s)), int64(len(s)), nil
		}
		return open(name)
	}, Now: testNow})
	want := []string{
		`p.yaml:2:89: domains_from format: unknown format "hosts" (want plain, adblock or rpz)`,
		`p.yaml:2:97: domains_from entry: needs path`,
		`zone.txt:3: owner outside.example.org is not in the zone feed.rpz.`,
		`zone.txt:4: $INCLUDE is not followed in an RPZ list`,
		`plain.txt:2: "||ads.example^" is an adblock filter: give this list format: adblock`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
}
