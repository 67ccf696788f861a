package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Decision is what the policy says about one query.
type Decision struct {
	Action Action // ActionAllow when no rule applies
	Mode   Mode
	// Rule is the deciding rule; nil when none applies and the query goes to
	// the upstreams.
	Rule *Rule
	// Domain is the suffix of the query name that the rule matched, as the
	// query spelled it: the owner of a synthesized SOA. For a lookalike it
	// is the lookalike domain (army.ml for mail.army.ml).
	Domain string
	// Lookalike is set (Kind not KindNone) when the rule is lookalike
	// protection's: which protected domain the name looks like, and how.
	Lookalike Lookalike
}

// Text describes the decision for people: "army.ml looks like army.mil
// (letter dropped from the suffix)", or for a listed domain `rule
// "mali-is-not-mil" (nxdomain)`. EDE texts, audit lines and explain share it.
func (d Decision) Text() string { return string(d.AppendText(nil)) }

// AppendText appends Text to b, without allocating when b has room.
func (d Decision) AppendText(b []byte) []byte {
	if l := d.Lookalike; l.Kind != KindNone {
		for i := 0; i < len(l.Name); i++ {
			c := l.Name[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		b = append(b, " looks like "...)
		b = append(b, l.Of...)
		b = append(b, " ("...)
		if l.Unicode && l.Kind != KindConfusable {
			b = append(b, KindConfusable.String()...)
			b = append(b, ", "...)
		}
		b = append(b, l.Kind.String()...)
		return append(b, ')')
	}
	if d.Rule == nil {
		return append(b, "no rule applies"...)
	}
	b = append(b, "rule "...)
	b = strconv.AppendQuote(b, d.Rule.Name)
	b = append(b, " ("...)
	b = append(b, d.Action.String()...)
	return append(b, ')')
}

// Blocked reports whether the answer comes from the policy instead of the
// upstreams.
func (d Decision) Blocked() bool { return d.Action.Blocking() && d.Mode == ModeEnforce }

// WouldBlock reports whether a monitor-mode rule would have blocked the query.
func (d Decision) WouldBlock() bool { return d.Action.Blocking() && d.Mode == ModeMonitor }

// Effective is the action actually applied: a rule in monitor mode is
// not, so a monitor-mode block is answered as allow, and a monitor-mode
// forward goes to the default upstreams as any allowed query does.
func (d Decision) Effective() Action {
	if d.Mode == ModeMonitor && (d.Action.Blocking() || d.Action == ActionForward) {
		return ActionAllow
	}
	return d.Action
}

// Forwarded reports whether the query goes to the deciding rule's own
// servers: an enforced forward rule.
func (d Decision) Forwarded() bool { return d.Action == ActionForward && d.Mode == ModeEnforce }

// Decide answers for a query of type qtype for name from client. Names are
// compared case-insensitively, with or without the trailing dot, in the
// presentation form miekg/dns and dig use (an escaped "\." is no label
// boundary). Among the rules that apply to the name, type and client, the
// one on the most specific domain wins; on the same domain, the first in the
// file. The cost grows with the name's length, not the number of rules.
func (p *Policy) Decide(client netip.Addr, name string, qtype uint16) Decision {
	var best Decision
	p.table.walk(name, func(e uint32, start int) bool {
		if r := p.firstApplying(e, start == 0, client, qtype); r != nil {
			best = Decision{Action: r.Action, Mode: r.Mode, Rule: r, Domain: name[start:]}
		}
		return true
	})
	if p.look != nil {
		return p.decideLookalike(client, name, qtype, best)
	}
	return best
}

// Touches reports whether any rule or lookalike protection could decide a
// query for name, for some client and some type. When it reports false,
// Decide gives ActionAllow and no rule for every client and type, so a
// caller may keep that answer for the name while p is in force. It errs
// towards true: a name under a listed domain touches, whatever the rule's
// types and clients.
func (p *Policy) Touches(name string) bool {
	touches := false
	p.table.walk(name, func(uint32, int) bool {
		touches = true
		return false
	})
	if !touches && p.look != nil {
		_, touches = p.look.find(name, -1, true)
	}
	return touches
}

// decideLookalike returns the lookalike decision for name when it is a
// lookalike that lookalike protection covers for this type and client, and
// no rule on a domain as specific or more (such as an allow exception)
// decides first; otherwise it returns best.
func (p *Policy) decideLookalike(client netip.Addr, name string, qtype uint16, best Decision) Decision {
	if !p.lookRules[0].applies(client, qtype) {
		return best
	}
	m, ok := p.look.find(name, -1, true)
	if !ok {
		return best
	}
	domain := name[m.start:]
	if best.Rule != nil && labelCount(best.Domain) >= labelCount(domain) {
		return best
	}
	r := &p.lookRules[m.id]
	return Decision{Action: r.Action, Mode: r.Mode, Rule: r, Domain: domain, Lookalike: p.look.lookalike(name, m)}
}

// labelCount counts the labels of a name, with or without the trailing dot.
func labelCount(name string) int {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return 0
	}
	return strings.Count(name, ".") + 1
}

// firstApplying returns the first rule, in file order, tied to entry e
// that applies to the query; apex says the entry is the whole name.
func (p *Policy) firstApplying(e uint32, apex bool, client netip.Addr, qtype uint16) *Rule {
	want := refBelow
	if apex {
		want = refApex
	}
	t := p.table
	first := t.first(e)
	if first.flags&want != 0 {
		if r := &p.rules[first.rule]; r.applies(client, qtype) {
			return r
		}
	}
	if first.flags&refMore == 0 {
		return nil
	}
	for _, x := range t.more[e] {
		if x.flags&want != 0 {
			if r := &p.rules[x.rule]; r.applies(client, qtype) {
				return r
			}
		}
	}
	return nil
}

// applies reports whether the rule covers the type and the client.
func (r *Rule) applies(client netip.Addr, qtype uint16) bool {
	if !r.types.has(qtype) {
		return false
	}
	if len(r.Clients) == 0 {
		return true
	}
	client = client.Unmap()
	for _, p := range r.clients {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// escaped reports whether the byte at i is escaped by an odd number of
// backslashes before it.
func escaped(s string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}

// TestResult is the outcome of one case of a policy's tests: section.
type TestResult struct {
	Case     TestCase
	Decision Decision
	Got      Action // the action answered (monitor-mode blocks answer allow)
	Pass     bool
}

// String describes the outcome as "file:line:col: name TYPE: ...".
func (r TestResult) String() string {
	c := r.Case
	head := fmt.Sprintf("%s: %s %s", c.Pos, c.Name, TypeString(c.Type))
	if c.Client.IsValid() {
		head += " from " + c.Client.String()
	}
	got := r.Got.String()
	if d := r.Decision; d.Rule != nil {
		got += fmt.Sprintf(" by rule %q (line %d)", d.Rule.Name, d.Rule.Pos.Line)
		if d.WouldBlock() {
			got += fmt.Sprintf(", in monitor mode: would be %s", d.Action)
		}
	} else {
		got += " (no rule applies)"
	}
	if r.Pass {
		return fmt.Sprintf("%s: ok, %s", head, got)
	}
	return fmt.Sprintf("%s: expected %s, got %s", head, c.Expect, got)
}

// RunTests decides every case of the policy's tests: section offline.
func (p *Policy) RunTests() []TestResult {
	out := make([]TestResult, len(p.Tests))
	for i, c := range p.Tests {
		d := p.Decide(c.Client, c.Name, c.Type)
		got := d.Effective()
		out[i] = TestResult{Case: c, Decision: d, Got: got, Pass: got == c.Expect}
	}
	return out
}
