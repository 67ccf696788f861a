package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"go.mau.fi/util/confusable"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// LookalikeRules returns the rule that decides the lookalikes of each
// protected domain, in the order of lookalikes.protect. The caller must not
// modify them.
func (p *Policy) LookalikeRules() []Rule { return p.lookRules }

// LookalikeOf judges name against lookalikes.protect alone, whatever the
// type, client and rules: which protected domain it looks like, how, and
// the lookalike domain within it (army.ml for mail.army.ml).
func (p *Policy) LookalikeOf(name string) (Lookalike, bool) {
	if p.look == nil {
		return Lookalike{}, false
	}
	m, ok := p.look.find(name, -1, true)
	if !ok {
		return Lookalike{}, false
	}
	return p.look.lookalike(name, m), true
}

// LookalikeVariants lists, by kind, the lookalikes of one protected domain
// that can be enumerated, each of them one the policy blocks; and, for the
// kinds matched by a rule instead (any suffix after it, any Unicode
// look-alike, any name under a lookalike), a description with examples.
// It reports false when domain is not protected.
func (p *Policy) LookalikeVariants(domain string) (LookalikeReport, bool) {
	if p.look == nil {
		return LookalikeReport{}, false
	}
	name, _, err := normalizeDomain(domain)
	if err != nil {
		return LookalikeReport{}, false
	}
	id, ok := p.look.byName[name]
	if !ok {
		return LookalikeReport{}, false
	}
	return p.look.report(id), true
}

// LookalikeReport is what lookalike protection blocks for one protected
// domain.
type LookalikeReport struct {
	Protected string
	Listed    []LookalikeGroup // enumerable kinds, in Kinds order
	Matched   []LookalikeRule  // kinds matched by a rule
}

// LookalikeGroup is the listed lookalikes of one kind.
type LookalikeGroup struct {
	Kind  LookalikeKind
	Names []string // sorted
}

// LookalikeRule describes a kind that no list can hold.
type LookalikeRule struct {
	Kind     LookalikeKind // KindNone for names under a lookalike
	Rule     string
	Examples []string // each one blocked
}

// Count returns the number of listed lookalikes.
func (r LookalikeReport) Count() int {
	n := 0
	for _, g := range r.Listed {
		n += len(g.Names)
	}
	return n
}

// report enumerates the lookalikes of protected domain id, keeping only
// the names the index itself finds to be lookalikes of that domain.
func (x *lookalikeIndex) report(id int32) LookalikeReport {
	d := &x.protected[id]
	byKind := map[LookalikeKind]map[string]bool{}
	keep := func(name string) {
		m, ok := x.find(name, -1, true)
		if !ok || m.id != id || m.start != 0 {
			return
		}
		if byKind[m.kind] == nil {
			byKind[m.kind] = map[string]bool{}
		}
		byKind[m.kind][name] = true
	}
	for _, v := range suffixTypos(d.suffix) {
		keep(d.label + "." + v.name)
	}
	for _, l := range labelEdits(d.label, "abcdefghijklmnopqrstuvwxyz0123456789-") {
		if validLabel(l) {
			keep(l + "." + d.suffix)
		}
	}
	for _, l := range glyphVariants(d.label) {
		keep(l + "." + d.suffix)
	}
	for i := 1; i < len(d.label); i++ {
		if d.label[i-1] != '-' && d.label[i] != '-' {
			keep(d.label[:i] + "." + d.label[i:] + "." + d.suffix)
		}
	}
	if i := strings.IndexByte(d.suffix, '.'); i >= 0 {
		keep(d.label + "." + d.suffix[i+1:])
	}
	for _, v := range dotVariants(d.name) {
		if _, ok := x.exact[v.name]; ok {
			keep(v.name)
		}
	}
	r := LookalikeReport{Protected: d.name}
	for _, k := range Kinds() {
		if len(byKind[k]) == 0 {
			continue
		}
		names := make([]string, 0, len(byKind[k]))
		for n := range byKind[k] {
			names = append(names, n)
		}
		sort.Strings(names)
		r.Listed = append(r.Listed, LookalikeGroup{Kind: k, Names: names})
	}
	r.Matched = x.ruleKinds(id)
	return r
}

// ruleKinds describes the kinds matched by a rule, with examples that the
// index is checked to block.
func (x *lookalikeIndex) ruleKinds(id int32) []LookalikeRule {
	d := &x.protected[id]
	var out []LookalikeRule
	add := func(k LookalikeKind, rule string, candidates ...string) {
		var ex []string
		for _, c := range candidates {
			if m, ok := x.find(c, -1, true); ok && m.id == id && (k == KindNone || m.kind == k || m.unicode && k == KindConfusable) {
				ex = append(ex, c)
			}
		}
		if len(ex) > 0 {
			out = append(out, LookalikeRule{Kind: k, Rule: rule, Examples: ex})
		}
	}
	var levels []string
	for _, l := range []string{"co", "com", "ac", "gov", "org", "net", "mil", "edu", "ltd", "plc", "me"} {
		if realSuffix(l + "." + d.suffix) {
			levels = append(levels, d.label+"."+l+"."+d.suffix)
		}
	}
	add(KindSuffixLevelAdded, d.label+".<second level>."+d.suffix+" for any real second-level suffix", levels...)
	dropped := strings.ReplaceAll(d.name, ".", "")
	hyphen := strings.ReplaceAll(d.name, ".", "-")
	add(KindDotDropped, dropped+".<any suffix>, and each dot dropped alone", dropped+".com", dropped+"."+d.suffix, "mail."+dropped+".net")
	add(KindDotHyphen, hyphen+".<any suffix>, and each dot hyphenated alone", hyphen+".com", hyphen+".org")
	add(KindUnderOther, d.name+".<any domain> and "+d.name+"-<anything>.<any suffix>", d.name+".com", d.name+"-mail.net", d.name+".example.org")
	add(KindConfusable, "IDN labels whose Unicode look-alike characters fold to a lookalike or to "+d.name, confusableExamples(d)...)
	under := []string{}
	for _, v := range suffixTypos(d.suffix) {
		under = append(under, "mail."+d.label+"."+v.name)
		break
	}
	if l := labelEdits(d.label, "x"); len(l) > 0 && validLabel(l[0]) {
		under = append(under, "smtp."+l[0]+"."+d.suffix)
	}
	add(KindNone, "every name under a lookalike", under...)
	return out
}

// validLabel reports whether s can be a host name label.
func validLabel(s string) bool {
	return s != "" && len(s) <= 63 && s[0] != '-' && s[len(s)-1] != '-' && checkName(s) == nil
}

// glyphVariants returns label with one letter written as the characters
// that resemble it (m as rn, w as vv, o as 0, ...).
func glyphVariants(label string) []string {
	var out []string
	for i := 0; i < len(label); i++ {
		for _, g := range glyphsOf(label[i]) {
			out = append(out, label[:i]+g+label[i+1:])
		}
	}
	return out
}

// glyphsOf returns what skeleton reads as the letter c.
func glyphsOf(c byte) []string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	var out []string
	for i := 0; i < len(chars); i++ {
		a := chars[i]
		if a != c && visualClass(a) == visualClass(c) {
			out = append(out, string(a))
		}
		for j := 0; j < len(chars); j++ {
			if pairGlyph(a, chars[j]) == c {
				out = append(out, string([]byte{a, chars[j]}))
			}
		}
	}
	return out
}

// confusableExamples writes the protected label with one letter swapped
// for a Unicode character that the confusables table maps to it, and with
// one letter given an accent, as A-labels.
func confusableExamples(d *protectedDomain) []string {
	var out []string
	for i := 0; i < len(d.label) && len(out) < 2; i++ {
		for r := rune(0x0430); r <= 0x045f; r++ { // Cyrillic small letters
			if confusable.GetReplacement(r) == d.label[i:i+1] {
				if a, err := idna.ToASCII(d.label[:i] + string(r) + d.label[i+1:] + "." + d.suffix); err == nil {
					out = append(out, a)
				}
				break
			}
		}
	}
	for i := 0; i < len(d.label); i++ {
		if c := d.label[i]; c >= 'a' && c <= 'z' {
			accented := norm.NFC.String(d.label[:i+1] + "\u0301" + d.label[i+1:])
			if utf8.RuneCountInString(accented) == len(d.label) {
				if a, err := idna.ToASCII(accented + "." + d.suffix); err == nil {
					out = append(out, a)
					break
				}
			}
		}
	}
	return out
}

// warnLookalikes reports protected domains that look like each other and
// exceptions that let a lookalike through.
func (c *compiler) warnLookalikes() {
	p := c.p
	if p.look == nil {
		return
	}
	for id, d := range p.look.protected {
		if m, ok := p.look.find(d.name, int32(id), false); ok && m.start == 0 {
			other := p.look.protected[m.id].name
			p.warnings = append(p.warnings, Warning{Pos: p.Lookalikes.ProtectPos[id],
				Msg: fmt.Sprintf("lookalikes.protect: %s looks like %s (%s): both are protected, so neither is blocked as the other's lookalike", d.name, other, m.kind)})
		}
	}
	for i, a := range p.Lookalikes.Allow {
		if _, ok := p.look.find(a, -1, false); ok {
			continue
		}
		p.warnings = append(p.warnings, Warning{Pos: p.Lookalikes.AllowPos[i],
			Msg: fmt.Sprintf("lookalikes.allow: %s is not a lookalike of any protected domain; the entry changes nothing", a)})
	}
	for i := range p.rules {
		r := &p.rules[i]
		if r.Action != ActionAllow && r.Action != ActionForward {
			continue
		}
		for _, dom := range r.Domains {
			dom = strings.TrimPrefix(dom, "*.")
			l, ok := p.LookalikeOf(dom)
			if !ok || labelCount(dom) < labelCount(l.Name) {
				continue
			}
			p.warnings = append(p.warnings, Warning{Pos: r.Pos,
				Msg: fmt.Sprintf("rule %q exempts %s from lookalike protection: it looks like %s (%s)", r.Name, dom, l.Of, l)})
		}
	}
}

// LookalikeCounts returns, per kind, how many lookalikes of the protected
// domains can be listed, for check's summary.
func (p *Policy) LookalikeCounts() map[LookalikeKind]int {
	out := map[LookalikeKind]int{}
	if p.look == nil {
		return out
	}
	for id := range p.look.protected {
		for _, g := range p.look.report(int32(id)).Listed {
			out[g.Kind] += len(g.Names)
		}
	}
	return out
}

// ForDomains compiles a policy that protects domains from lookalikes and
// does nothing else, for reviewing lookalikes without a policy file. An
// error names each domain that cannot be protected, as "argument N".
func ForDomains(domains []string) (*Policy, error) {
	p := &Policy{Settings: defaultSettings(), File: "command line"}
	l := &p.Lookalikes
	*l = LookalikeSettings{Pos: Position{File: p.File, Line: 1}, Action: ActionNXDomain,
		Types: []uint16{TypeMX, TypeA, TypeAAAA, TypeANY}}
	for _, t := range l.Types {
		l.types.add(t)
	}
	var errs ErrorList
	for i, s := range domains {
		name, err := protectedName(s)
		if err != nil {
			errs = append(errs, Error{Pos: Position{File: "argument", Line: i + 1}, Msg: err.Error()})
			continue
		}
		if slices.Contains(l.Protect, name) {
			continue
		}
		l.Protect = append(l.Protect, name)
		l.ProtectPos = append(l.ProtectPos, Position{File: "argument", Line: i + 1})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	p.table = newTable(0)
	c := compiler{d: &decoder{file: p.File}, p: p}
	c.compileLookalikes(nil)
	c.warnLookalikes()
	return p, nil
}

// ProtectedBy returns the protected domain that name is, or is under.
func (p *Policy) ProtectedBy(name string) (string, bool) {
	if p.look == nil {
		return "", false
	}
	n := strings.ToLower(strings.TrimSuffix(name, "."))
	for {
		if id, ok := p.look.byName[n]; ok {
			return p.look.protected[id].name, true
		}
		i := strings.IndexByte(n, '.')
		if i < 0 {
			return "", false
		}
		n = n[i+1:]
	}
}

// LookalikeExempted returns what name would look like if lookalikes.allow
// did not exempt it; it reports false when the name is no exempted
// lookalike.
func (p *Policy) LookalikeExempted(name string) (Lookalike, bool) {
	if p.look == nil || !p.look.exempt(strings.ToLower(strings.TrimSuffix(name, "."))) {
		return Lookalike{}, false
	}
	m, ok := p.look.find(name, -1, false)
	if !ok {
		return Lookalike{}, false
	}
	return p.look.lookalike(name, m), true
}
