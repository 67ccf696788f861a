package policy

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultMaxExportRecords is the most entries an export writes unless told
// otherwise.
const DefaultMaxExportRecords = 5_000_000

// ExportEntry is one blocking decision, or exception, in the form that
// resolvers and mail relays take: a name, or the names under it.
type ExportEntry struct {
	Name  string // lower-case A-labels, no trailing dot
	Below bool   // the names under Name ("*.Name"), not Name itself
	// Action is what the resolver answers; ActionAllow for an exception
	// (an allow or forward rule) that must win over a block above it.
	Action Action
	Rule   *Rule // the deciding rule; a lookalike rule for a lookalike
	// Lookalike is set (Kind not KindNone) for a lookalike of a protected
	// domain, or a name under one.
	Lookalike Lookalike

	key string // dnsKey, for sorting
}

// Decision is the decision the entry stands for, as Decide would give it
// for Name.
func (e ExportEntry) Decision() Decision {
	return Decision{Action: e.Action, Mode: e.Rule.Mode, Rule: e.Rule, Domain: e.Name, Lookalike: e.Lookalike}
}

// ExportLeftOut is a rule, or lookalike protection of one domain, whose
// decisions an export cannot express, and how many entries it would have
// had.
type ExportLeftOut struct {
	Rule    string
	Why     string
	Entries int
}

// Export is a policy's blocking decisions, sorted in DNS order (by labels
// from the right), each name once, with what they came from.
type Export struct {
	Entries []ExportEntry
	// ByRule counts the entries of each rule, in rule order, lookalike
	// rules last; ByKind counts lookalike domains by kind (each is two
	// entries: the domain, and the names under it).
	ByRule  []ExportCount
	ByKind  map[LookalikeKind]int
	LeftOut []ExportLeftOut
	// Widened names the type-scoped rules exported for every type.
	Widened []string
	// Unseen describes the lookalikes matched by a rule that no list can
	// hold, which a consumer of the export does not see.
	Unseen []string
}

// ExportCount is the number of entries of one rule.
type ExportCount struct {
	Rule    string
	Entries int
}

// Exporter gathers a policy's decisions for export. Its ListDomain is
// given to Parse as Options.ListDomain, so that list files are read once;
// Export then makes the export of the parsed policy.
type Exporter struct {
	max   int                 // the most entries
	widen bool                // Export's widenTypes
	lists map[int][]exportKey // list domains by rule index
	held  int                 // list domains held
	err   error
}

// exportKey is a name, or the names under it.
type exportKey struct {
	name  string
	below bool
}

// NewExporter returns an Exporter of at most max entries (0:
// DefaultMaxExportRecords).
func NewExporter(max int) *Exporter {
	if max <= 0 {
		max = DefaultMaxExportRecords
	}
	return &Exporter{max: max, lists: map[int][]exportKey{}}
}

// ListDomain takes one domain of the lists of the rule at index rule: the
// domain itself and the names under it, or (below) only those. It is
// Options.ListDomain.
func (x *Exporter) ListDomain(rule int, name string, below bool) {
	if x.err != nil {
		return
	}
	// Each domain is at least one entry; the bound keeps memory bounded
	// however many domains the lists hold.
	if x.held++; x.held > x.max {
		x.err = listsOver{rule: rule, max: x.max}
		x.lists = nil
		return
	}
	x.lists[rule] = append(x.lists[rule], exportKey{name, below})
}

// listsOver is the error of lists that hold more domains than an export
// may write: at the rule at index rule.
type listsOver struct{ rule, max int }

func (e listsOver) Error() string { return fmt.Sprintf("export: over %d records", e.max) }

// leftOutWhy says why an export cannot hold rule r's decisions, or ""
// when it can.
func (x *Exporter) leftOutWhy(r *Rule) string {
	switch {
	case r.Expired:
		return "expired"
	case r.Mode == ModeMonitor:
		return "mode monitor: typoguard itself only logs it"
	case len(r.Clients) > 0:
		return "scoped to client groups, which an export cannot tell apart"
	case len(r.Types) > 0 && !x.widen:
		return "scoped to query types, which an export has none of (widen_types exports it for every type)"
	}
	return ""
}

// Export makes the export of p, whose list domains x was given while p
// was parsed. widenTypes exports rules scoped to query types (lookalike
// protection's MX, A, AAAA and ANY among them) as blocking every type, as
// an RPZ trigger or an access map has no type; otherwise they are left
// out. It fails when the export would hold more than the bound, naming the
// rule or protected domain that takes it over.
func (x *Exporter) Export(p *Policy, widenTypes bool) (*Export, error) {
	x.widen = widenTypes
	if e, ok := x.err.(listsOver); ok {
		r := &p.rules[e.rule]
		return nil, fmt.Errorf("export: over %d records (the bound, -max-records): the lists of rule %q at line %d take it over", e.max, r.Name, r.Pos.Line)
	}
	ex := &Export{ByKind: map[LookalikeKind]int{}}
	claimed := map[exportKey]bool{}
	total := 0
	// claim takes key for entry e (nil: for a left-out rule, which then
	// decides the name without an entry) unless an earlier rule has it.
	claim := func(k exportKey, e *ExportEntry) bool {
		if claimed[k] {
			return false
		}
		claimed[k] = true
		if e != nil {
			e.Name, e.Below, e.key = k.name, k.below, dnsKey(k.name, k.below)
			ex.Entries = append(ex.Entries, *e)
		}
		return true
	}
	over := func(what string) error {
		return fmt.Errorf("export: over %d records (the bound, -max-records) at %s", x.max, what)
	}
	for i := range p.rules {
		r := &p.rules[i]
		keys := ruleKeys(r, x.lists[i])
		why := x.leftOutWhy(r)
		var e *ExportEntry
		if why == "" {
			if r.Action == ActionForward {
				e = &ExportEntry{Action: ActionAllow, Rule: r}
			} else {
				e = &ExportEntry{Action: r.Action, Rule: r}
			}
		}
		n := 0
		for _, k := range keys {
			if claim(k, e) {
				n++
			}
		}
		if why != "" {
			if n > 0 && !r.Expired {
				ex.LeftOut = append(ex.LeftOut, ExportLeftOut{Rule: r.Name, Why: why, Entries: n})
			}
			continue
		}
		if len(r.Types) > 0 {
			ex.Widened = append(ex.Widened, r.Name)
		}
		ex.ByRule = append(ex.ByRule, ExportCount{Rule: r.Name, Entries: n})
		if total += n; total > x.max {
			return nil, over(fmt.Sprintf("rule %q at line %d (%d entries)", r.Name, r.Pos.Line, n))
		}
	}
	for i := range p.lookRules {
		r := &p.lookRules[i]
		protected := r.Domains[0]
		why := x.leftOutWhy(r)
		rep, _ := p.LookalikeVariants(protected)
		n := 0
		for _, g := range rep.Listed {
			for _, name := range g.Names {
				l, _ := p.LookalikeOf(name)
				for _, below := range []bool{false, true} {
					var e *ExportEntry
					if why == "" {
						e = &ExportEntry{Action: r.Action, Rule: r, Lookalike: l}
					}
					if claim(exportKey{name, below}, e) {
						n++
						if why == "" && !below {
							ex.ByKind[l.Kind]++
						}
					}
				}
			}
		}
		if why != "" {
			if n > 0 {
				ex.LeftOut = append(ex.LeftOut, ExportLeftOut{Rule: r.Name, Why: why, Entries: n})
			}
			continue
		}
		if len(r.Types) > 0 {
			ex.Widened = append(ex.Widened, r.Name)
		}
		ex.ByRule = append(ex.ByRule, ExportCount{Rule: r.Name, Entries: n})
		if total += n; total > x.max {
			return nil, over(fmt.Sprintf("lookalikes of %s (%d entries)", protected, n))
		}
		for _, m := range rep.Matched {
			if m.Kind != KindNone { // names under a lookalike are exported as *.name
				ex.Unseen = append(ex.Unseen, fmt.Sprintf("%s: %s (%s), e.g. %s", protected, m.Kind, m.Rule, m.Examples[0]))
			}
		}
	}
	x.lists = nil
	slices.SortFunc(ex.Entries, func(a, b ExportEntry) int { return CompareExportEntries(&a, &b) })
	return ex, nil
}

// CompareExportEntries orders entries as an Export holds them: as DNSSEC
// orders names (RFC 4034 §6.1), a name's wildcard right after it.
func CompareExportEntries(a, b *ExportEntry) int { return strings.Compare(a.key, b.key) }

// ruleKeys returns the names rule r decides: its domains, then its lists'.
func ruleKeys(r *Rule, lists []exportKey) []exportKey {
	keys := make([]exportKey, 0, 2*(len(r.Domains)+len(lists)))
	add := func(name string, below bool) {
		if !below {
			keys = append(keys, exportKey{name, false})
		}
		keys = append(keys, exportKey{name, true})
	}
	for _, d := range r.Domains {
		name, below := strings.CutPrefix(d, "*.")
		add(name, below)
	}
	for _, k := range lists {
		add(k.name, k.below)
	}
	return keys
}

// dnsKey is a sort key that orders entries as DNSSEC orders names (RFC
// 4034 §6.1): the labels from the right, each ended by a 0 byte, which
// sorts before any byte of a label, so that a name comes before the names
// under it. The names under a name ("*.name") come right after it, as "*"
// sorts before any byte of a host name's label.
func dnsKey(name string, below bool) string {
	var b strings.Builder
	b.Grow(len(name) + 3)
	for name != "" {
		i := strings.LastIndexByte(name, '.')
		b.WriteString(name[i+1:])
		b.WriteByte(0)
		if i < 0 {
			break
		}
		name = name[:i]
	}
	if below {
		b.WriteString("*\x00")
	}
	return b.String()
}

// ExportSize bounds the entries an export of p holds, without reading its
// lists again: each domain of a rule it can express is at most two entries
// (the domain, and the names under it), and so is each lookalike that can
// be listed. scoped is what widenTypes adds: the type-scoped rules'.
func (p *Policy) ExportSize() (entries, scoped int) {
	x := NewExporter(0)
	count := func(r *Rule, n int) {
		x.widen = false
		switch why := x.leftOutWhy(r); {
		case why == "":
			entries += 2 * n
		case len(r.Types) > 0 && !r.Expired && r.Mode != ModeMonitor && len(r.Clients) == 0:
			scoped += 2 * n
		}
	}
	for i := range p.rules {
		count(&p.rules[i], p.rules[i].DomainCount)
	}
	for i := range p.lookRules {
		rep, _ := p.LookalikeVariants(p.lookRules[i].Domains[0])
		count(&p.lookRules[i], rep.Count())
	}
	return entries, scoped
}
