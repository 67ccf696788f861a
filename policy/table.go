package policy

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// Flags of a rule reference: which names a domain entry stands for.
const (
	refApex  uint8 = 1 << 0 // the domain itself ("ml")
	refBelow uint8 = 1 << 1 // every name below it ("ml" and "*.ml")
	refMore  uint8 = 1 << 7 // the entry has further references in table.more
)

// ref ties a domain entry to a rule.
type ref struct {
	rule  uint32
	flags uint8
}

// table is an open-addressing hash set of domains, each tied to the rules
// that name it. It holds no pointer per domain, so a million domains cost
// the garbage collector nothing to scan: entries live in one byte slice as
//
//	[name length][name bytes][flags][rule index, 4 bytes little-endian]
//
// and slots hold entry offset + 1 (0 is an empty slot). A domain named by
// several rules keeps its first reference inline and the rest in more,
// in rule order. Names are stored lower-case without the trailing dot and
// hashed from their last byte to their first, so a lookup hashes a query
// name once while it walks its suffixes from the top-level domain down.
type table struct {
	slots   []uint32
	shift   uint8 // 64 - log2(len(slots)), for home
	entries []byte
	count   int
	more    map[uint32][]ref
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashName hashes a lower-case name from its last byte to its first.
func hashName[S string | []byte](name S) uint64 {
	h := uint64(fnvOffset)
	for i := len(name) - 1; i >= 0; i-- {
		h = (h ^ uint64(name[i])) * fnvPrime
	}
	return h
}

func newTable(sizeHint int) *table {
	t := &table{more: map[uint32][]ref{}}
	t.resize(slotsFor(sizeHint))
	return t
}

// fits reports whether an entry for name still fits the uint32 offsets of
// the slots.
func (t *table) fits(name []byte) bool { return len(t.entries)+len(name)+7 < math.MaxUint32 }

// reserve makes room for n more entries of b bytes in all, so that adding
// them neither rehashes the slots nor copies the entries.
func (t *table) reserve(n, b int) {
	if want := slotsFor(t.count + n); want > len(t.slots) {
		t.resize(want)
	}
	if cap(t.entries)-len(t.entries) < b {
		// Not slices.Grow: it clears the new capacity, writing every page.
		e := make([]byte, len(t.entries), len(t.entries)+b)
		copy(e, t.entries)
		t.entries = e
	}
}

// home is the slot a name of hash h is looked for from: the top bits of
// h times 2^64/phi (Fibonacci hashing), since FNV's low bits, which a mask
// would take, mix only the low bits of the bytes hashed.
func (t *table) home(h uint64) uint64 { return (h * 0x9E3779B97F4A7C15) >> t.shift }

// slotsFor returns a power of two that keeps n entries at most 3/4 full.
func slotsFor(n int) int {
	want := n*4/3 + 16
	return 1 << bits.Len(uint(want-1))
}

func (t *table) resize(n int) {
	old := t.slots
	t.slots = make([]uint32, n)
	t.shift = uint8(64 - bits.TrailingZeros(uint(n)))
	mask := uint64(n - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		n := uint32(t.entries[s-1])
		i := t.home(hashName(t.entries[s : s+n]))
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// nameEqualFold reports whether the entry at off holds s, compared
// ASCII-case-insensitively.
func nameEqualFold[S string | []byte](t *table, off uint32, s S) bool {
	n := int(t.entries[off])
	if n != len(s) {
		return false
	}
	stored := t.entries[off+1 : off+1+uint32(n)]
	for i := 0; i < n; i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != stored[i] {
			return false
		}
	}
	return true
}

// find returns the offset of the entry for s, whose hash is h.
func find[S string | []byte](t *table, h uint64, s S) (uint32, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(h); ; i = (i + 1) & mask {
		slot := t.slots[i]
		if slot == 0 {
			return 0, false
		}
		if nameEqualFold(t, slot-1, s) {
			return slot - 1, true
		}
	}
}

// flagsAt returns the inline reference's flags byte position of entry off.
func (t *table) flagsAt(off uint32) uint32 { return off + 1 + uint32(t.entries[off]) }

// first returns the inline reference of the entry at off.
func (t *table) first(off uint32) ref {
	f := t.flagsAt(off)
	return ref{
		rule:  binary.LittleEndian.Uint32(t.entries[f+1:]),
		flags: t.entries[f],
	}
}

// add ties the lower-case name to rule with flags. It reports whether the
// rule was new to the name (false when the rule named it before).
func (t *table) add(name []byte, rule uint32, flags uint8) bool {
	h := hashName(name)
	if off, ok := find(t, h, name); ok {
		f := t.flagsAt(off)
		inline := t.first(off)
		if inline.rule == rule {
			t.entries[f] |= flags
			return false
		}
		refs := t.more[off]
		for i := range refs {
			if refs[i].rule == rule {
				refs[i].flags |= flags
				return false
			}
		}
		t.more[off] = append(refs, ref{rule: rule, flags: flags})
		t.entries[f] |= refMore
		return true
	}
	if (t.count+1)*4 > len(t.slots)*3 {
		t.resize(len(t.slots) * 2)
	}
	off := uint32(len(t.entries))
	t.entries = append(t.entries, byte(len(name)))
	t.entries = append(t.entries, name...)
	t.entries = append(t.entries, flags)
	t.entries = binary.LittleEndian.AppendUint32(t.entries, rule)
	mask := uint64(len(t.slots) - 1)
	i := t.home(h)
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = off + 1
	t.count++
	return true
}

// refs calls fn for each reference of the entry at off, in rule order,
// until fn returns false.
func (t *table) refs(off uint32, fn func(ref) bool) {
	r := t.first(off)
	if !fn(ref{rule: r.rule, flags: r.flags &^ refMore}) || r.flags&refMore == 0 {
		return
	}
	for _, m := range t.more[off] {
		if !fn(m) {
			return
		}
	}
}
