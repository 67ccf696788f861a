package resolver

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/upstream"
)

// planPolicy has a forward rule of each mode, a monitor-mode block, and a
// block, for the tests of what each rule means.
const planPolicy = `
upstreams: ["127.0.0.1:1"]
acl: {allow: [127.0.0.0/8]}
rules:
  - {name: corp, domains: [corp.example], action: forward, servers: ["127.0.0.1:2"]}
  - {name: trial, domains: [trial.example], action: forward, servers: ["127.0.0.1:3"], mode: monitor}
  - {name: watch, domains: [watch.example], action: nxdomain, mode: monitor}
  - {name: ml, domains: [ml], action: nxdomain}
tests:
  - {name: corp.example, type: A, expect: forward}
  - {name: trial.example, type: A, expect: allow}
  - {name: watch.example, type: A, expect: allow}
  - {name: army.ml, type: MX, expect: nxdomain}
`

// TestOneMeaningPerRule asks each rule's name through Resolve, Explain and
// the policy's own tests: where a query goes must agree in all three.
func TestOneMeaningPerRule(t *testing.T) {
	p, err := policy.Parse("plan.yaml", []byte(planPolicy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	asked := map[string]string{} // query name: the servers it was sent to
	s, err := New(p, Config{NewUpstream: func(addrs []string, _ time.Duration) upstream.Exchanger {
		return &fakeUpstream{exchange: func(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
			mu.Lock()
			asked[q.Question[0].Name] = strings.Join(addrs, " ")
			mu.Unlock()
			m := new(dns.Msg)
			m.SetReply(q)
			return m, nil
		}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		servers   string // "" for a name never forwarded
		verdict   string
		effective policy.Action
	}{
		{"corp.example.", "127.0.0.1:2", "", policy.ActionForward},
		{"trial.example.", "127.0.0.1:1", "", policy.ActionAllow},
		{"watch.example.", "127.0.0.1:1", "would block", policy.ActionAllow},
		{"army.ml.", "", "blocked", policy.ActionNXDomain},
		{"www.example.", "127.0.0.1:1", "", policy.ActionAllow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Resolve(t.Context(), localhost, query(tc.name, dns.TypeA, false))
			mu.Lock()
			got := asked[tc.name]
			mu.Unlock()
			if got != tc.servers {
				t.Errorf("Resolve sent it to %q, want %q", got, tc.servers)
			}
			e, err := Explain(p, p.Upstreams, localhost, tc.name, dns.TypeA)
			if err != nil {
				t.Fatal(err)
			}
			if tc.servers != "" && strings.Join(e.Plan.Upstreams, " ") != tc.servers {
				t.Errorf("Explain says it goes to %v, want %q", e.Plan.Upstreams, tc.servers)
			}
			if e.Plan.Verdict != tc.verdict {
				t.Errorf("Explain's audit verdict %q, want %q", e.Plan.Verdict, tc.verdict)
			}
			if got := e.Decision.Effective(); got != tc.effective {
				t.Errorf("the decision's effective action %s, want %s", got, tc.effective)
			}
		})
	}
	for _, r := range p.RunTests() {
		if !r.Pass {
			t.Errorf("policy test: %s", r)
		}
	}
}
