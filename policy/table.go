package policy

import (
	"hash/maphash"
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

// fingerprint is a 128-bit hash of a lower-case name: a, hashName (FNV-1a
// from the last byte, which a suffix walk grows a byte at a time), and b,
// maphash under the table's random seed, worked out only when a matches.
// Two hashes this unlike collide together for two different names with
// odds of about one in 2^128 per pair, far below those of a bit flipped in
// memory.
type fingerprint struct{ a, b uint64 }

// table is an open-addressing hash set of domains, each tied to the rules
// that name it. A domain is held as its fingerprint, not its bytes, so an
// entry costs 21 bytes and a slot 4, however long its name (ten million
// names of 100 bytes: under 300 MB, not a gigabyte). It holds no pointer
// per domain, so the garbage collector has nothing to scan. Slots hold
// entry index + 1 (0 is an empty slot). A domain named by several rules
// keeps its first reference inline and the rest in more, in rule order.
type table struct {
	seed  maphash.Seed
	slots []uint32
	shift uint8 // 64 - log2(len(slots)), for home
	fps   []fingerprint
	rules []uint32 // the inline reference's rule, per entry
	flags []uint8  // the inline reference's flags, per entry
	more  map[uint32][]ref
}

func newTable(sizeHint int) *table {
	t := &table{seed: maphash.MakeSeed(), more: map[uint32][]ref{}}
	t.resize(slotsFor(sizeHint))
	return t
}

// count is the number of domains in the table.
func (t *table) count() int { return len(t.fps) }

// full reports whether the table holds as many entries as its uint32 slot
// values can name.
func (t *table) full() bool { return len(t.fps) >= 1<<32-2 }

// fingerprint returns the fingerprint of a lower-case name.
func (t *table) fingerprint(name []byte) fingerprint {
	return fingerprint{hashName(name), maphash.Bytes(t.seed, name) | 1}
}

// reserve makes room for n more entries, so that adding them neither
// rehashes the slots nor copies the entries.
func (t *table) reserve(n int) {
	if want := slotsFor(len(t.fps) + n); want > len(t.slots) {
		t.resize(want)
	}
	if cap(t.fps)-len(t.fps) < n {
		// Not slices.Grow: it clears the new capacity, writing every page,
		// and an estimate from a file's size may be over.
		t.fps = append(make([]fingerprint, 0, len(t.fps)+n), t.fps...)
		t.rules = append(make([]uint32, 0, len(t.rules)+n), t.rules...)
		t.flags = append(make([]uint8, 0, len(t.flags)+n), t.flags...)
	}
}

// home is the slot a name whose hashName is h is looked for from: the top
// bits of h times 2^64/phi (Fibonacci hashing), since FNV's low bits, which
// a mask would take, mix only the low bits of the bytes hashed.
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
		i := t.home(t.fps[s-1].a)
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// find returns the index of the entry for name, ignoring its case; h is
// the hashName of its lower-case form. A name's seeded hash is worked out
// only when its hashName matches.
func (t *table) find(h uint64, name string) (uint32, bool) {
	mask := uint64(len(t.slots) - 1)
	var b uint64
	for i := t.home(h); ; i = (i + 1) & mask {
		slot := t.slots[i]
		if slot == 0 {
			return 0, false
		}
		if fp := t.fps[slot-1]; fp.a == h {
			if b == 0 {
				b = t.seedHash(name)
			}
			if fp.b == b {
				return slot - 1, true
			}
		}
	}
}

// findFingerprint returns the index of the entry whose fingerprint is fp.
func (t *table) findFingerprint(fp fingerprint) (uint32, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := t.home(fp.a); ; i = (i + 1) & mask {
		slot := t.slots[i]
		if slot == 0 {
			return 0, false
		}
		if t.fps[slot-1] == fp {
			return slot - 1, true
		}
	}
}

// seedHash returns fingerprint.b for name, ignoring its case. It is never
// 0, which find takes for "not yet worked out".
func (t *table) seedHash(name string) uint64 {
	for i := 0; i < len(name); i++ {
		if 'A' <= name[i] && name[i] <= 'Z' {
			// The same bytes hash the same however they are written.
			var m maphash.Hash
			m.SetSeed(t.seed)
			for j := 0; j < len(name); j++ {
				c := name[j]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				m.WriteByte(c)
			}
			return m.Sum64() | 1
		}
	}
	return maphash.String(t.seed, name) | 1
}

// first returns the inline reference of entry e.
func (t *table) first(e uint32) ref { return ref{rule: t.rules[e], flags: t.flags[e]} }

// add ties the lower-case name to rule with flags. It reports whether the
// rule was new to the name (false when the rule named it before).
func (t *table) add(name []byte, rule uint32, flags uint8) bool {
	fp := t.fingerprint(name)
	if e, ok := t.findFingerprint(fp); ok {
		if t.rules[e] == rule {
			t.flags[e] |= flags
			return false
		}
		refs := t.more[e]
		for i := range refs {
			if refs[i].rule == rule {
				refs[i].flags |= flags
				return false
			}
		}
		t.more[e] = append(refs, ref{rule: rule, flags: flags})
		t.flags[e] |= refMore
		return true
	}
	if (len(t.fps)+1)*4 > len(t.slots)*3 {
		t.resize(len(t.slots) * 2)
	}
	t.fps = append(t.fps, fp)
	t.rules = append(t.rules, rule)
	t.flags = append(t.flags, flags)
	mask := uint64(len(t.slots) - 1)
	i := t.home(fp.a)
	for t.slots[i] != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = uint32(len(t.fps))
	return true
}

// refs calls fn for each reference of entry e, in rule order, until fn
// returns false.
func (t *table) refs(e uint32, fn func(ref) bool) {
	r := t.first(e)
	if !fn(ref{rule: r.rule, flags: r.flags &^ refMore}) || r.flags&refMore == 0 {
		return
	}
	for _, m := range t.more[e] {
		if !fn(m) {
			return
		}
	}
}

// walk calls fn, from the top-level domain down, for each suffix of name
// at a label boundary that the table holds, with the entry and the index
// in name where the suffix starts, until fn returns false. name is in the
// presentation form miekg/dns and dig use: case is ignored, and so is a
// trailing dot; an escaped "\." is no label boundary.
func (t *table) walk(name string, fn func(e uint32, start int) bool) {
	n := len(name)
	if n > 0 && name[n-1] == '.' && !escaped(name, n-1) {
		n--
	}
	h := uint64(fnvOffset) // hashName of the lower-case name[i+1:n]
	for i := n - 1; ; i-- {
		if i < 0 || name[i] == '.' && !escaped(name, i) {
			if i+1 < n {
				if e, ok := t.find(h, name[i+1:n]); ok && !fn(e, i+1) {
					return
				}
			}
			if i < 0 {
				return
			}
		}
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h = (h ^ uint64(c)) * fnvPrime
	}
}
