package resolver

import (
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/upstream"
)

// PlanKind says how the server answers the queries a plan covers.
type PlanKind uint8

// The kinds of plan.
const (
	PlanForward    PlanKind = iota // forwarded through the cache to Upstreams
	PlanSynthesize                 // answered from policy, never forwarded
)

// Plan is what the server does with the queries one rule decides, or with
// those no rule decides, worked out once when a policy is loaded. Resolving,
// the fast path, explain and the audit line all read it, so a rule means
// the same everywhere. What varies per query — the matched domain that owns
// a synthesized SOA, the lookalike's reason — stays in the policy.Decision.
type Plan struct {
	Kind PlanKind
	// Verdict is the audit line a query under the plan is logged with:
	// "blocked", "would block" for a monitor-mode block, "" for none.
	Verdict string

	// For PlanSynthesize: the reply's RCODE, its Extended DNS Error
	// (RFC 8914), and which records answer.
	Rcode  int
	EDE    uint16
	Answer PlanAnswer
	// text is the EDE's text when it is the same for every query the
	// rule decides (a listed rule's); "" when it names the query's
	// lookalike, which ruleText works out per query.
	text string

	// For PlanForward: the servers misses go to (the rule's own for an
	// enforced forward rule, else the default upstreams), and the route
	// that keeps their replies apart in the cache ("" for the default
	// upstreams).
	Upstreams []string
	Route     string
	// up is where the misses go, attached by the server at reload; share
	// is how many of them may wait on it at once.
	up    *route
	share int64
}

// route is one list of upstream servers that misses go to, with the
// queries waiting on it. A reload keeps a route whose servers and timeout
// did not change, and with it the exchanger's failover memory and count.
type route struct {
	ex       upstream.Exchanger
	addrs    []string
	inflight atomic.Int64 // queries waiting on ex
}

// acquire takes one of share places for a query to wait on r; it reports
// false when all are taken, and the query must not wait.
func (r *route) acquire(share int64) bool {
	if r.inflight.Add(1) > share {
		r.inflight.Add(-1)
		return false
	}
	return true
}

// release gives back a place acquire took.
func (r *route) release() { r.inflight.Add(-1) }

// PlanAnswer says which records a synthesized reply holds.
type PlanAnswer uint8

// The answers of a synthesized reply. Every reply without an answer record,
// REFUSED aside, carries the SOA of the matched domain (RFC 2308 §3).
const (
	AnswerNone     PlanAnswer = iota // none
	AnswerNullMX                     // MX 0 "." to an MX query (RFC 7505 §3)
	AnswerSinkhole                   // the sinkhole exchange, or its addresses
)

// plans holds the plan of every rule of a policy, by Rule.Index, and the
// plan of queries no rule decides.
type plans struct {
	byRule []Plan
	none   Plan
	// sinkholeHost is the sinkhole exchange's name, lower-case, whose A
	// and AAAA queries typoguard answers itself; "" when there is no
	// sinkhole address to answer with.
	sinkholeHost string
}

// of returns the plan of the queries d decides.
func (ps *plans) of(d policy.Decision) *Plan {
	if d.Rule == nil {
		return &ps.none
	}
	return &ps.byRule[d.Rule.Index]
}

// compilePlans works out the plan of every rule of p; defaults are the
// upstreams of queries no rule sends elsewhere. Exchangers are the
// server's to attach.
func compilePlans(p *policy.Policy, defaults []string) plans {
	rules, look := p.Rules(), p.LookalikeRules()
	ps := plans{byRule: make([]Plan, len(rules)+len(look)), none: Plan{Kind: PlanForward, Upstreams: defaults}}
	if a := p.Answers; a.SinkholeMX != "" && (a.SinkholeIPv4.IsValid() || a.SinkholeIPv6.IsValid()) {
		ps.sinkholeHost = strings.ToLower(dns.Fqdn(a.SinkholeMX))
	}
	for _, list := range [][]policy.Rule{rules, look} {
		for i := range list {
			r := &list[i]
			ps.byRule[r.Index] = planOf(r, defaults)
		}
	}
	for i := range rules {
		if pl := &ps.byRule[rules[i].Index]; pl.Kind == PlanSynthesize {
			pl.text = ruleText(policy.Decision{Action: rules[i].Action, Mode: rules[i].Mode, Rule: &rules[i]})
		}
	}
	return ps
}

// planOf is the plan of rule r.
func planOf(r *policy.Rule, defaults []string) Plan {
	d := policy.Decision{Action: r.Action, Mode: r.Mode, Rule: r}
	switch {
	case d.Blocked():
		pl := Plan{Kind: PlanSynthesize, Verdict: "blocked", EDE: dns.ExtendedErrorCodeBlocked}
		switch r.Action {
		case policy.ActionNXDomain:
			pl.Rcode = dns.RcodeNameError
		case policy.ActionRefuse:
			pl.Rcode, pl.EDE = dns.RcodeRefused, dns.ExtendedErrorCodeProhibited
		case policy.ActionNullMX:
			pl.Answer = AnswerNullMX
		case policy.ActionSinkhole:
			pl.Answer = AnswerSinkhole
		}
		return pl
	case d.Forwarded():
		return Plan{Kind: PlanForward, Upstreams: r.Servers, Route: r.Name}
	}
	pl := Plan{Kind: PlanForward, Upstreams: defaults}
	if d.WouldBlock() {
		pl.Verdict = "would block"
	}
	return pl
}
