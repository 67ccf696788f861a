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
	// Lookalike is set for a lookalike of a protected domain, or the names
	// under one; nil otherwise.
	Lookalike *Lookalike

	prefix uint64 // the first 8 bytes of the name's labels from the right, for sorting
	prio   int32  // the order of the rule that gave it, for the first to win
	out    bool   // from a rule the export leaves out: it decides the name, with no entry
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
//
// Every rule's names go into one slice, tagged with the rule's place; a
// sort by name, then place, puts the first rule on each name first, and
// one pass keeps it: no map of names, one copy of each.
func (x *Exporter) Export(p *Policy, widenTypes bool) (*Export, error) {
	x.widen = widenTypes
	if e, ok := x.err.(listsOver); ok {
		r := &p.rules[e.rule]
		return nil, fmt.Errorf("export: over %d records (the bound, -max-records): the lists of rule %q at line %d take it over", e.max, r.Name, r.Pos.Line)
	}
	ex := &Export{ByKind: map[LookalikeKind]int{}}
	n := 0
	for i := range p.rules {
		n += 2 * (len(p.rules[i].Domains) + len(x.lists[i]))
	}
	reports := make([]LookalikeReport, len(p.lookRules))
	for i := range p.lookRules {
		reports[i], _ = p.LookalikeVariants(p.lookRules[i].Domains[0])
		n += 2 * reports[i].Count()
	}
	// Each rule's bound: the entries it adds, counted before the names
	// are deduplicated, can only be more than it keeps.
	over := func(what string) error {
		return fmt.Errorf("export: over %d records (the bound, -max-records) at %s", x.max, what)
	}
	all := make([]ExportEntry, 0, n)
	why := make([]string, len(p.rules)+len(p.lookRules)) // by prio: why it is left out
	add := func(r *Rule, prio int, name string, below bool, l *Lookalike) {
		e := ExportEntry{Name: name, Below: below, Action: r.Action, Rule: r, Lookalike: l, prefix: sortPrefix(name, below), prio: int32(prio), out: why[prio] != ""}
		if r.Action == ActionForward {
			e.Action = ActionAllow
		}
		all = append(all, e)
	}
	for i := range p.rules {
		r := &p.rules[i]
		why[i] = x.leftOutWhy(r)
		for _, d := range r.Domains {
			name, below := strings.CutPrefix(d, "*.")
			if !below {
				add(r, i, name, false, nil)
			}
			add(r, i, name, true, nil)
		}
		for _, k := range x.lists[i] {
			if !k.below {
				add(r, i, k.name, false, nil)
			}
			add(r, i, k.name, true, nil)
		}
		x.lists[i] = nil
	}
	x.lists = nil
	for i := range p.lookRules {
		r, prio := &p.lookRules[i], len(p.rules)+i
		why[prio] = x.leftOutWhy(r)
		for _, g := range reports[i].Listed {
			for _, name := range g.Names {
				l, _ := p.LookalikeOf(name)
				add(r, prio, name, false, &l)
				add(r, prio, name, true, &l)
			}
		}
	}
	slices.SortFunc(all, func(a, b ExportEntry) int {
		if c := CompareExportEntries(&a, &b); c != 0 {
			return c
		}
		return int(a.prio - b.prio)
	})
	// Keep the first entry of each name; then drop those of left-out rules,
	// counting what each rule keeps.
	kept := make([]int, len(why))
	out := all[:0]
	for i := range all {
		if i > 0 && all[i].Name == all[i-1].Name && all[i].Below == all[i-1].Below {
			continue
		}
		kept[all[i].prio]++
		if !all[i].out {
			if e := &all[i]; e.Lookalike != nil && !e.Below {
				ex.ByKind[e.Lookalike.Kind]++
			}
			out = append(out, all[i])
		}
	}
	clear(all[len(out):]) // no pointers held past the end
	ex.Entries = slices.Clip(out)
	total := 0
	for prio, n := range kept {
		r, what := x.ruleAt(p, prio)
		switch {
		case why[prio] != "":
			if n > 0 && !r.Expired {
				ex.LeftOut = append(ex.LeftOut, ExportLeftOut{Rule: r.Name, Why: why[prio], Entries: n})
			}
			continue
		case len(r.Types) > 0:
			ex.Widened = append(ex.Widened, r.Name)
		}
		ex.ByRule = append(ex.ByRule, ExportCount{Rule: r.Name, Entries: n})
		if total += n; total > x.max {
			return nil, over(fmt.Sprintf("%s (%d entries)", what, n))
		}
	}
	for i, rep := range reports {
		if why[len(p.rules)+i] != "" {
			continue
		}
		for _, m := range rep.Matched {
			if m.Kind != KindNone { // names under a lookalike are exported as *.name
				ex.Unseen = append(ex.Unseen, fmt.Sprintf("%s: %s (%s), e.g. %s", rep.Protected, m.Kind, m.Rule, m.Examples[0]))
			}
		}
	}
	return ex, nil
}

// ruleAt is the rule of place prio (rules, then lookalike rules) and how
// an error names it.
func (x *Exporter) ruleAt(p *Policy, prio int) (*Rule, string) {
	if prio < len(p.rules) {
		r := &p.rules[prio]
		return r, fmt.Sprintf("rule %q at line %d", r.Name, r.Pos.Line)
	}
	r := &p.lookRules[prio-len(p.rules)]
	return r, "lookalikes of " + r.Domains[0]
}

// CompareNames orders names as DNSSEC does (RFC 4034 §6.1): by labels
// from the right, each compared as bytes, a name before the names under
// it. aBelow and bBelow put "*" in front of a or b, which then comes
// right after the name itself, as "*" sorts before any byte of a host
// name's label.
func CompareNames(a string, aBelow bool, b string, bBelow bool) int {
	for {
		la, okA := nextLabel(&a, &aBelow)
		lb, okB := nextLabel(&b, &bBelow)
		switch {
		case !okA && !okB:
			return 0
		case !okA:
			return -1
		case !okB:
			return 1
		}
		if c := strings.Compare(la, lb); c != 0 {
			return c
		}
	}
}

// nextLabel takes the rightmost label off *name, then "*" once *name is
// used up if *below is set; it reports false when nothing is left.
func nextLabel(name *string, below *bool) (string, bool) {
	if *name == "" {
		if *below {
			*below = false
			return "*", true
		}
		return "", false
	}
	i := strings.LastIndexByte(*name, '.')
	l := (*name)[i+1:]
	if i < 0 {
		*name = ""
	} else {
		*name = (*name)[:i]
	}
	return l, true
}

// CompareExportEntries orders entries as an Export holds them: as DNSSEC
// orders names (RFC 4034 §6.1), a name's wildcard right after it.
func CompareExportEntries(a, b *ExportEntry) int {
	if a.prefix != b.prefix {
		if a.prefix < b.prefix {
			return -1
		}
		return 1
	}
	return CompareNames(a.Name, a.Below, b.Name, b.Below)
}

// sortPrefix packs, big-endian, the first 8 bytes of the name's labels
// from the right, each followed by a 0 byte (which sorts before any byte
// of a label), and "*" for below: two names whose prefixes differ compare
// as the prefixes do, so most comparisons of a sort are one of integers.
func sortPrefix(name string, below bool) uint64 {
	var v uint64
	n := 0
	put := func(c byte) bool {
		if n == 8 {
			return false
		}
		v |= uint64(c) << (56 - 8*n)
		n++
		return true
	}
	for {
		l, ok := nextLabel(&name, &below)
		if !ok {
			return v
		}
		for i := 0; i < len(l); i++ {
			if !put(l[i]) {
				return v
			}
		}
		if !put(0) {
			return v
		}
	}
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
