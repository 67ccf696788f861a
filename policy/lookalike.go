package policy

import (
	"strings"

	"golang.org/x/net/publicsuffix"
)

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashName hashes a lower-case name from its last byte to its first (FNV-1a
// backwards), so a name's tails can be hashed in one pass from its end.
func hashName[S string | []byte](name S) uint64 {
	h := uint64(fnvOffset)
	for i := len(name) - 1; i >= 0; i-- {
		h = (h ^ uint64(name[i])) * fnvPrime
	}
	return h
}

// Lookalike says which protected domain a name looks like, and by what
// slip.
type Lookalike struct {
	Of string // the protected domain, such as "army.mil"
	// Name is the lookalike domain as the query spelled it, without the
	// trailing dot: army.ml for mail.army.ml, and also when the name was
	// reached through a CNAME or an MX exchange.
	Name string
	Kind LookalikeKind
	// Unicode is set when the name matched only once the look-alike
	// characters of its IDN labels were folded to ASCII.
	Unicode bool
}

// String describes the slip: "letter dropped from the suffix", or for an
// IDN "Unicode look-alike characters, letter dropped".
func (l Lookalike) String() string {
	if l.Unicode && l.Kind != KindConfusable {
		return KindConfusable.String() + ", " + l.Kind.String()
	}
	return l.Kind.String()
}

// protectedDomain is one entry of lookalikes.protect, split at its public
// suffix.
type protectedDomain struct {
	name     string    // army.mil
	label    string    // army: the registrable label
	suffix   string    // mil: the ICANN public suffix
	skeleton [2]string // of label: pairs read from the left, from the right
}

// variantHit ties a listed variant to its protected domain.
type variantHit struct {
	id   int32
	kind LookalikeKind
}

// lookalikeIndex finds the lookalikes of the protected domains. Everything
// is worked out at load, so a query costs a walk over its labels and a few
// hash lookups whatever the number of protected domains; the public-suffix
// list is consulted only to confirm a candidate.
type lookalikeIndex struct {
	protected []protectedDomain
	byName    map[string]int32    // protected domain → index
	allow     map[string]struct{} // lookalikes.allow: never a lookalike, nor any name under one
	suffixes  map[string]struct{} // the protected domains' suffixes
	// exact holds the registrable lookalikes that can be listed: suffix
	// typos (army.ml) and dot variants under a real suffix (gchqgov.uk).
	exact map[string]variantHit
	// labels maps a registrable label to the protected domains that have it.
	labels map[string][]int32
	// near maps the hash of each protected label and label skeleton, and of
	// each of them less one character, to the protected domains: two labels
	// one slip apart share at least one such key (a deletion neighbourhood).
	near map[uint64][]int32
	// whole maps the hash of each protected label to its domains, for a
	// label split in two by a dot.
	whole map[uint64][]int32
	// dotted holds the protected names and their dot variants (armymil,
	// army-mil) as they appear inside another name.
	dotted    map[string]variantHit
	maxDotted int // longest key of dotted
	// keys holds the hashName of every key of the string maps above and
	// nearKeys the keys of near, so that most lookups of a name that is
	// no lookalike end at a bit test.
	keys, nearBits filter
}

// filter is a Bloom filter with two probes: has never misses a key that
// was added, and is wrong for about one key in seventy that was not.
type filter struct {
	bits []uint64
	mask uint64
}

// newFilter sizes a filter for n keys at 16 bits a key.
func newFilter(n int) filter {
	size := uint64(1024)
	for size < uint64(n)*16 {
		size *= 2
	}
	return filter{bits: make([]uint64, size/64), mask: size - 1}
}

func (f *filter) add(h uint64) {
	a, b := h&f.mask, (h>>32|h<<32)&f.mask
	f.bits[a/64] |= 1 << (a % 64)
	f.bits[b/64] |= 1 << (b % 64)
}

func (f *filter) has(h uint64) bool {
	a, b := h&f.mask, (h>>32|h<<32)&f.mask
	return f.bits[a/64]&(1<<(a%64)) != 0 && f.bits[b/64]&(1<<(b%64)) != 0
}

// icannSuffix returns the ICANN public suffix of a lower-case name without
// trailing dot, skipping the private section (hosting platforms such as
// github.io are not where a mistyped address leads). It reports false
// when the top-level domain is not in the list.
func icannSuffix(name string) (string, bool) {
	s, icann := publicsuffix.PublicSuffix(name)
	for !icann {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return "", false
		}
		s, icann = publicsuffix.PublicSuffix(s[i+1:])
	}
	return s, true
}

// realSuffix reports whether s is itself an ICANN public suffix.
func realSuffix(s string) bool {
	ps, icann := publicsuffix.PublicSuffix(s)
	return icann && ps == s
}

// splitRegistrable splits a lower-case domain into its registrable label
// and ICANN public suffix; ok is false for a name that is a public suffix,
// has an unlisted top-level domain, or lies below its registrable domain.
func splitRegistrable(name string) (label, suffix string, ok bool) {
	suffix, ok = icannSuffix(name)
	if !ok || len(suffix) >= len(name) {
		return "", "", false
	}
	label = name[:len(name)-len(suffix)-1]
	return label, suffix, !strings.Contains(label, ".")
}

// newLookalikeIndex indexes the protected domains (valid registrable
// domains) and the exempted names.
func newLookalikeIndex(protect, allow []string) *lookalikeIndex {
	x := &lookalikeIndex{
		byName:   map[string]int32{},
		allow:    map[string]struct{}{},
		suffixes: map[string]struct{}{},
		exact:    map[string]variantHit{},
		labels:   map[string][]int32{},
		near:     map[uint64][]int32{},
		whole:    map[uint64][]int32{},
		dotted:   map[string]variantHit{},
	}
	for _, a := range allow {
		x.allow[a] = struct{}{}
	}
	typosOf := map[string][]variant{} // the suffixes' typos, worked out once each
	for _, name := range protect {
		if _, dup := x.byName[name]; dup {
			continue
		}
		label, suffix, ok := splitRegistrable(name)
		if !ok {
			continue
		}
		id := int32(len(x.protected))
		d := protectedDomain{name: name, label: label, suffix: suffix,
			skeleton: [2]string{string(skeleton(nil, label)), string(skeletonRight(nil, label))}}
		x.protected = append(x.protected, d)
		x.byName[name] = id
		x.suffixes[suffix] = struct{}{}
		x.labels[label] = append(x.labels[label], id)
		x.whole[polyHash(label)] = appendID(x.whole[polyHash(label)], id)
		addNear := func(key uint64) bool {
			x.near[key] = appendID(x.near[key], id)
			return true
		}
		nearKeys(label, addNear)
		nearKeys(d.skeleton[0], addNear)
		nearKeys(d.skeleton[1], addNear)
		typos, ok := typosOf[suffix]
		if !ok {
			typos = suffixTypos(suffix)
			typosOf[suffix] = typos
		}
		for _, v := range typos {
			if _, taken := x.exact[label+"."+v.name]; !taken {
				x.exact[label+"."+v.name] = variantHit{id: id, kind: v.kind}
			}
		}
		x.addDotted(name, variantHit{id: id, kind: KindUnderOther})
		for _, v := range dotVariants(name) {
			x.addDotted(v.name, variantHit{id: id, kind: v.kind})
			if l, _, ok := splitRegistrable(v.name); ok && l != "" {
				if _, taken := x.exact[v.name]; !taken {
					x.exact[v.name] = variantHit{id: id, kind: v.kind}
				}
			}
		}
	}
	x.keys = newFilter(len(x.byName) + len(x.allow) + len(x.suffixes) + len(x.exact) + len(x.labels) + len(x.dotted))
	for _, m := range []map[string]int32{x.byName} {
		for k := range m {
			x.keys.add(hashName(k))
		}
	}
	for _, m := range []map[string]struct{}{x.allow, x.suffixes} {
		for k := range m {
			x.keys.add(hashName(k))
		}
	}
	for _, m := range []map[string]variantHit{x.exact, x.dotted} {
		for k := range m {
			x.keys.add(hashName(k))
		}
	}
	for k := range x.labels {
		x.keys.add(hashName(k))
	}
	x.nearBits = newFilter(len(x.near))
	for k := range x.near {
		x.nearBits.add(k)
	}
	return x
}

func (x *lookalikeIndex) addDotted(key string, h variantHit) {
	if _, taken := x.dotted[key]; !taken {
		x.dotted[key] = h
		x.maxDotted = max(x.maxDotted, len(key))
	}
}

// appendID adds id to ids unless it is already the last one.
func appendID(ids []int32, id int32) []int32 {
	if n := len(ids); n > 0 && ids[n-1] == id {
		return ids
	}
	return append(ids, id)
}

// variant is one listed lookalike of a protected domain.
type variant struct {
	name string
	kind LookalikeKind
}

// suffixTypos returns the real public suffixes one slip away from suffix:
// a letter dropped, doubled, swapped with its neighbour, replaced by any
// other letter, or one inserted.
func suffixTypos(suffix string) []variant {
	var out []variant
	seen := map[string]bool{suffix: true}
	try := func(s string) {
		if seen[s] || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
			return
		}
		seen[s] = true
		if realSuffix(s) {
			out = append(out, variant{name: s, kind: suffixKind(slip(s, suffix))})
		}
	}
	for _, s := range labelEdits(suffix, "abcdefghijklmnopqrstuvwxyz") {
		try(s)
	}
	return out
}

// labelEdits returns every string one slip from s over the given alphabet:
// each character dropped, each neighbouring pair swapped, each character
// replaced and each position given an extra character. Dots in s are kept
// in place. The result may hold duplicates and s itself.
func labelEdits(s, alphabet string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			continue
		}
		out = append(out, s[:i]+s[i+1:])
		if i+1 < len(s) && s[i+1] != '.' && s[i] != s[i+1] {
			out = append(out, s[:i]+string(s[i+1])+string(s[i])+s[i+2:])
		}
		for j := 0; j < len(alphabet); j++ {
			if alphabet[j] != s[i] {
				out = append(out, s[:i]+string(alphabet[j])+s[i+1:])
			}
		}
	}
	for i := 0; i <= len(s); i++ {
		for j := 0; j < len(alphabet); j++ {
			out = append(out, s[:i]+string(alphabet[j])+s[i:])
		}
	}
	return out
}

// dotVariants returns name with one of its dots, or all of them, dropped
// or turned into a hyphen: army.mil → armymil, army-mil.
func dotVariants(name string) []variant {
	var out []variant
	seen := map[string]bool{}
	add := func(s string, k LookalikeKind) {
		if !seen[s] {
			seen[s] = true
			out = append(out, variant{name: s, kind: k})
		}
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			add(name[:i]+name[i+1:], KindDotDropped)
			add(name[:i]+"-"+name[i+1:], KindDotHyphen)
		}
	}
	add(strings.ReplaceAll(name, ".", ""), KindDotDropped)
	add(strings.ReplaceAll(name, ".", "-"), KindDotHyphen)
	return out
}

// lookalikeMatch is what the index found in one name.
type lookalikeMatch struct {
	id      int32
	kind    LookalikeKind
	start   int // offset in the name where the lookalike domain begins
	unicode bool
}

// lookalike describes the match m found in name.
func (x *lookalikeIndex) lookalike(name string, m lookalikeMatch) Lookalike {
	n := strings.TrimSuffix(name, ".")
	return Lookalike{Of: x.protected[m.id].name, Name: n[m.start:], Kind: m.kind, Unicode: m.unicode}
}

// find judges a name (any case, with or without the trailing dot, in the
// presentation form miekg/dns uses). Protected domains, names under them
// and, when useAllow is set, lookalikes.allow entries and names under them
// are never lookalikes. self, when not negative, is a protected domain left
// out of the index for the question: check asks whether one protected
// domain looks like another.
func (x *lookalikeIndex) find(name string, self int32, useAllow bool) (lookalikeMatch, bool) {
	n := len(name)
	if n > 0 && name[n-1] == '.' {
		n--
	}
	name = name[:n]
	lower := true
	for i := 0; i < n; i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_':
		case c >= 'A' && c <= 'Z':
			lower = false
		default:
			return lookalikeMatch{}, false // escaped bytes: no host name
		}
	}
	if n == 0 || n > 253 {
		return lookalikeMatch{}, false
	}
	if !lower {
		name = strings.ToLower(name)
	}
	m, ok := x.findLower(name, self)
	if !ok && strings.Contains(name, "xn--") {
		m, ok = x.findFolded(name, self)
	}
	if ok && useAllow && x.exempt(name) {
		return lookalikeMatch{}, false
	}
	return m, ok
}

// findFolded judges an IDN by the ASCII name its labels look like. A
// character with no ASCII look-alike is tried as each letter and digit.
func (x *lookalikeIndex) findFolded(name string, self int32) (lookalikeMatch, bool) {
	folded, changed := foldName(name)
	if !changed {
		return lookalikeMatch{}, false
	}
	if !strings.Contains(folded, string(unknownLetter)) {
		return x.findFoldedAs(name, folded, self)
	}
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := 0; i < len(letters); i++ {
		if m, ok := x.findFoldedAs(name, strings.ReplaceAll(folded, string(unknownLetter), letters[i:i+1]), self); ok {
			return m, true
		}
	}
	return lookalikeMatch{}, false
}

// findFoldedAs judges the IDN name by its ASCII form folded.
func (x *lookalikeIndex) findFoldedAs(name, folded string, self int32) (lookalikeMatch, bool) {
	nd := labelDots(folded, nil)
	m, ok := x.findLower(folded, self)
	if ok {
		m.unicode = true
	} else {
		// The folded name is a protected domain or below one: the IDN
		// stands for it.
		for i := len(nd) - 1; i >= -1 && !ok; i-- {
			tail := folded[after(nd, i):]
			if id, hit := x.byName[tail]; hit && id != self {
				m, ok = lookalikeMatch{id: id, kind: KindConfusable, start: after(nd, i), unicode: true}, true
			}
		}
		if !ok {
			return lookalikeMatch{}, false
		}
	}
	// Point start at the same label of the original name: folding keeps
	// the labels, not their lengths.
	labels := strings.Count(folded[m.start:], ".") + 1
	pos := len(name)
	for ; labels > 0 && pos >= 0; labels-- {
		pos = strings.LastIndexByte(name[:pos], '.')
	}
	m.start = pos + 1
	return m, true
}

// labelDots appends the offsets of the dots of name to dots.
func labelDots(name string, dots []int) []int {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			dots = append(dots, i)
		}
	}
	return dots
}

// after returns the offset of label i+1: 0 for i < 0, else the byte after
// dot i.
func after(dots []int, i int) int {
	if i < 0 {
		return 0
	}
	return dots[i] + 1
}

// exempt reports whether name is a lookalikes.allow entry or under one.
func (x *lookalikeIndex) exempt(name string) bool {
	if len(x.allow) == 0 {
		return false
	}
	for s := name; ; {
		if _, ok := x.allow[s]; ok {
			return true
		}
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return false
		}
		s = s[i+1:]
	}
}

// findLower judges a lower-case name without trailing dot.
func (x *lookalikeIndex) findLower(name string, self int32) (lookalikeMatch, bool) {
	var dotsBuf [15]int
	dots := labelDots(name, dotsBuf[:0])
	// tails[i+1] is the hashName of the tail after dot i (tails[0]: the
	// whole name), hashed from the last byte as hashName does.
	var tailsBuf [16]uint64
	tails := tailsBuf[:]
	if len(dots)+1 > len(tails) {
		tails = make([]uint64, len(dots)+1)
	}
	h := uint64(fnvOffset)
	for i, end := len(dots)-1, len(name); i >= -1; i-- {
		start := after(dots, i)
		for j := end - 1; j >= start; j-- {
			h = (h ^ uint64(name[j])) * fnvPrime
		}
		tails[i+1] = h
		h = (h ^ '.') * fnvPrime
		end = start - 1
	}
	// A protected domain, any name under one, and exempted names are never
	// lookalikes: a protected domain is a registrable domain, so a name
	// under it ends with it.
	for i := -1; i < len(dots); i++ {
		if !x.keys.has(tails[i+1]) {
			continue
		}
		if id, ok := x.byName[name[after(dots, i):]]; ok && id != self {
			return lookalikeMatch{}, false
		}
	}
	if m, ok := x.findRegistrable(name, dots, tails, self); ok {
		return m, true
	}
	return x.findDotted(name, self)
}

// findRegistrable looks for the slips that change the registrable domain:
// a suffix typo, a label typo or look-alike, a second-level suffix added
// or dropped, a label split by a dot. Each candidate is confirmed against
// the public-suffix list.
func (x *lookalikeIndex) findRegistrable(name string, dots []int, tails []uint64, self int32) (lookalikeMatch, bool) {
	for i := len(dots) - 1; i >= -1; i-- {
		start := after(dots, i)
		tail := name[start:]
		known := x.keys.has(tails[i+1])
		if known {
			if h, ok := x.exact[tail]; ok && h.id != self && x.confirm(name, tail) {
				return lookalikeMatch{id: h.id, kind: h.kind, start: start}, true
			}
		}
		if i < 0 {
			break
		}
		// tail is a candidate suffix; label the label before it.
		rs := after(dots, i-1)
		label := name[rs:dots[i]]
		if _, ok := x.suffixes[tail]; known && ok {
			if i > 0 {
				if m, ok := x.findSplit(name, dots, i, tail, self); ok {
					return m, true
				}
			}
			if m, ok := x.findLabelTypo(name, label, tail, rs, self); ok {
				return m, true
			}
		}
		if !x.keys.has(hashName(label)) {
			continue
		}
		for _, id := range x.labels[label] {
			d := &x.protected[id]
			kind := KindNone
			switch {
			case id == self:
			case strings.HasSuffix(tail, "."+d.suffix):
				kind = KindSuffixLevelAdded
			case strings.HasSuffix(d.suffix, "."+tail):
				kind = KindSuffixLevelDropped
			}
			if kind != KindNone && x.confirm(name, name[rs:]) {
				return lookalikeMatch{id: id, kind: kind, start: rs}, true
			}
		}
	}
	return lookalikeMatch{}, false
}

// confirm reports whether registrable, a tail of name, is the name's
// registrable domain by the ICANN section of the public-suffix list.
func (x *lookalikeIndex) confirm(name, registrable string) bool {
	i := strings.IndexByte(registrable, '.')
	if i < 0 {
		return false
	}
	s, ok := icannSuffix(name)
	return ok && s == registrable[i+1:]
}

// findLabelTypo looks for a protected domain under suffix whose label is
// one slip, or one look-alike, away from label.
func (x *lookalikeIndex) findLabelTypo(name, label, suffix string, start int, self int32) (lookalikeMatch, bool) {
	if len(label) > 63 {
		return lookalikeMatch{}, false
	}
	var leftBuf, rightBuf [64]byte
	left := skeleton(leftBuf[:0], label)
	right := skeletonRight(rightBuf[:0], label)
	var found lookalikeMatch
	probe := func(key uint64) bool {
		if !x.nearBits.has(key) {
			return true
		}
		for _, id := range x.near[key] {
			d := &x.protected[id]
			if id == self || d.suffix != suffix || d.label == label {
				continue
			}
			kind := slip(label, d.label)
			if kind == KindNone && (skeletonNear(string(left), d) || skeletonNear(string(right), d)) {
				kind = KindLookAlike
			}
			if kind != KindNone && x.confirm(name, name[start:]) {
				found = lookalikeMatch{id: id, kind: kind, start: start}
				return false
			}
		}
		return true
	}
	if !nearKeys(label, probe) {
		return found, true
	}
	if string(left) != label && !nearKeys(string(left), probe) {
		return found, true
	}
	if string(right) != string(left) && !nearKeys(string(right), probe) {
		return found, true
	}
	return lookalikeMatch{}, false
}

// skeletonNear reports whether skel is one of d's label skeletons or one
// slip from one.
func skeletonNear(skel string, d *protectedDomain) bool {
	for _, s := range d.skeleton {
		if skel == s || slip(skel, s) != KindNone {
			return true
		}
	}
	return false
}

// findSplit looks for a protected label split in two by a dot (ar.my.mil):
// the two labels before the suffix that starts after dot i.
func (x *lookalikeIndex) findSplit(name string, dots []int, i int, suffix string, self int32) (lookalikeMatch, bool) {
	xs := after(dots, i-2)
	first, second := name[xs:dots[i-1]], name[dots[i-1]+1:dots[i]]
	if len(first)+len(second) > 63 {
		return lookalikeMatch{}, false
	}
	for _, id := range x.whole[polyHash2(first, second)] {
		d := &x.protected[id]
		if id != self && d.suffix == suffix && len(d.label) == len(first)+len(second) &&
			strings.HasPrefix(d.label, first) && strings.HasSuffix(d.label, second) &&
			x.confirm(name, name[dots[i-1]+1:]) {
			return lookalikeMatch{id: id, kind: KindLabelSplit, start: xs}, true
		}
	}
	return lookalikeMatch{}, false
}

// findDotted looks for a protected name, or one with a dot dropped or
// hyphenated, at the start of a label and followed by a dot or a hyphen
// with a real suffix after it (army.mil.com, army.mil-mail.net,
// armymil.com).
func (x *lookalikeIndex) findDotted(name string, self int32) (lookalikeMatch, bool) {
	if x.maxDotted == 0 {
		return lookalikeMatch{}, false
	}
	for i := 0; ; {
		for j := i + 1; j < len(name) && j-i <= x.maxDotted; j++ {
			if c := name[j]; c != '.' && c != '-' {
				continue
			}
			if !x.keys.has(hashName(name[i:j])) {
				continue
			}
			h, ok := x.dotted[name[i:j]]
			if !ok || h.id == self {
				continue
			}
			// The variant must lie wholly before the public suffix.
			if s, ok := icannSuffix(name); ok && len(name)-len(s) > j {
				return lookalikeMatch{id: h.id, kind: h.kind, start: i}, true
			}
		}
		next := strings.IndexByte(name[i:], '.')
		if next < 0 {
			return lookalikeMatch{}, false
		}
		i += next + 1
	}
}

// polyBase is the base of the polynomial hash that lets nearKeys hash a
// string less any one character in constant time.
const polyBase = 0x100000001b3

// finish mixes a polynomial hash with the string's length.
func finish(h uint64, n int) uint64 {
	h ^= uint64(n) * 0x9e3779b97f4a7c15
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

func polyHash(s string) uint64 {
	var h uint64
	for i := 0; i < len(s); i++ {
		h = h*polyBase + uint64(s[i])
	}
	return finish(h, len(s))
}

// polyHash2 is polyHash(a + b) without building the string.
func polyHash2(a, b string) uint64 {
	var h uint64
	for i := 0; i < len(a); i++ {
		h = h*polyBase + uint64(a[i])
	}
	for i := 0; i < len(b); i++ {
		h = h*polyBase + uint64(b[i])
	}
	return finish(h, len(a)+len(b))
}

// polyInverse is the inverse of polyBase modulo 2^64 (polyBase is odd).
const polyInverse = 0xce965057aff6957b

// nearKeys calls fn with the hash of s and of each string s less one
// character (its deletion neighbourhood), each once, until fn returns
// false. The hashes equal polyHash of those strings.
func nearKeys(s string, fn func(key uint64) bool) bool {
	n := len(s)
	var whole uint64
	pow := uint64(1) // polyBase^(n-1), then down by one each step
	for i := 0; i < n; i++ {
		whole = whole*polyBase + uint64(s[i])
		if i > 0 {
			pow *= polyBase
		}
	}
	if !fn(finish(whole, n)) {
		return false
	}
	// Less character i: the prefix s[:i] moves up by polyBase^(n-1-i), the
	// rest keeps its place; rest = whole - pre*polyBase^(n-i) - s[i]*polyBase^(n-1-i).
	var pre uint64
	for i := 0; i < n; i++ {
		rest := whole - pre*pow*polyBase - uint64(s[i])*pow
		if i == 0 || s[i] != s[i-1] { // dropping either of two equal neighbours gives one string
			if !fn(finish(pre*pow+rest, n-1)) {
				return false
			}
		}
		pre = pre*polyBase + uint64(s[i])
		pow *= polyInverse
	}
	return true
}
