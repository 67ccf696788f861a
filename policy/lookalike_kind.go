package policy

import "strings"

// LookalikeKind names the slip that turns a protected domain into a
// lookalike.
type LookalikeKind uint8

// The kinds of lookalike, by the part of the name they change.
const (
	KindNone LookalikeKind = iota

	// A slip in the public suffix (the result is a real suffix).
	KindSuffixDropped      // army.mil → army.ml
	KindSuffixDoubled      // army.mil → army.mill
	KindSuffixSwapped      // army.mil → army.iml
	KindSuffixReplaced     // army.mil → army.mit
	KindSuffixInserted     // nato.int → nato.into
	KindSuffixLevelAdded   // mod.uk → mod.co.uk
	KindSuffixLevelDropped // gchq.gov.uk → gchq.uk

	// A slip in the registrable label.
	KindOmission      // arny.mil → ary.mil
	KindRepetition    // army.mil → armmy.mil
	KindTransposition // army.mil → amry.mil
	KindInsertion     // army.mil → armoy.mil
	KindReplacement   // army.mil → arxy.mil
	KindKeyboard      // army.mil → arny.mil (n next to m)
	KindBitFlip       // army.mil → arey.mil (one bit of one byte)
	KindVowelSwap     // nato.int → nati.int
	KindHyphenAdded   // army.mil → ar-my.mil
	KindHyphenRemoved // cabinet-office.gov.uk → cabinetoffice.gov.uk
	KindLookAlike     // army.mil → arrny.mil, nat0.int
	KindConfusable    // army.mil with a Cyrillic а

	// Dot games.
	KindDotDropped // army.mil → armymil.com
	KindDotHyphen  // army.mil → army-mil.com
	KindUnderOther // army.mil → army.mil.com, army.mil-mail.net
	KindLabelSplit // army.mil → ar.my.mil
	kindCount
)

var kindNames = [kindCount]string{
	KindNone:               "not a lookalike",
	KindSuffixDropped:      "letter dropped from the suffix",
	KindSuffixDoubled:      "letter doubled in the suffix",
	KindSuffixSwapped:      "letters swapped in the suffix",
	KindSuffixReplaced:     "letter replaced in the suffix",
	KindSuffixInserted:     "letter inserted in the suffix",
	KindSuffixLevelAdded:   "second-level suffix inserted",
	KindSuffixLevelDropped: "second-level suffix dropped",
	KindOmission:           "letter dropped",
	KindRepetition:         "letter doubled",
	KindTransposition:      "letters swapped",
	KindInsertion:          "letter inserted",
	KindReplacement:        "letter replaced",
	KindKeyboard:           "keyboard neighbour",
	KindBitFlip:            "bit flip",
	KindVowelSwap:          "vowel swapped",
	KindHyphenAdded:        "hyphen added",
	KindHyphenRemoved:      "hyphen removed",
	KindLookAlike:          "look-alike characters",
	KindConfusable:         "Unicode look-alike characters",
	KindDotDropped:         "dot dropped",
	KindDotHyphen:          "dot turned into a hyphen",
	KindUnderOther:         "protected name under another domain",
	KindLabelSplit:         "label split by a dot",
}

// String describes the kind as logs, EDE texts and explain show it.
func (k LookalikeKind) String() string {
	if k < kindCount {
		return kindNames[k]
	}
	return "lookalike"
}

// Kinds returns every kind of lookalike, in the order reports list them.
func Kinds() []LookalikeKind {
	out := make([]LookalikeKind, 0, kindCount-1)
	for k := KindSuffixDropped; k < kindCount; k++ {
		out = append(out, k)
	}
	return out
}

// suffixKind is the suffix counterpart of a label slip.
func suffixKind(k LookalikeKind) LookalikeKind {
	switch k {
	case KindOmission, KindHyphenRemoved:
		return KindSuffixDropped
	case KindRepetition:
		return KindSuffixDoubled
	case KindTransposition:
		return KindSuffixSwapped
	case KindInsertion, KindHyphenAdded:
		return KindSuffixInserted
	case KindNone:
		return KindNone
	}
	return KindSuffixReplaced
}

// slip classifies q as one slip away from l: a character dropped,
// doubled, inserted or replaced, or two neighbours swapped (Damerau
// distance 1). It returns KindNone for equal strings and for anything
// further apart.
func slip(q, l string) LookalikeKind {
	n, m := len(q), len(l)
	i := 0
	for i < n && i < m && q[i] == l[i] {
		i++
	}
	switch {
	case n == m:
		if i == n {
			return KindNone
		}
		if q[i+1:] == l[i+1:] {
			return replacementKind(l[i], q[i])
		}
		if i+1 < n && q[i] == l[i+1] && q[i+1] == l[i] && q[i+2:] == l[i+2:] {
			return KindTransposition
		}
	case n == m+1:
		if q[i+1:] != l[i:] {
			return KindNone
		}
		c := q[i]
		switch {
		case c == '-':
			return KindHyphenAdded
		case i > 0 && q[i-1] == c, i+1 < n && q[i+1] == c:
			return KindRepetition
		}
		return KindInsertion
	case n+1 == m:
		if q[i:] != l[i+1:] {
			return KindNone
		}
		if l[i] == '-' {
			return KindHyphenRemoved
		}
		return KindOmission
	}
	return KindNone
}

// replacementKind names the replacement of want by got: the most telling
// reason first.
func replacementKind(want, got byte) LookalikeKind {
	switch {
	case visualClass(want) == visualClass(got):
		return KindLookAlike
	case isVowel(want) && isVowel(got):
		return KindVowelSwap
	case keyboardNeighbours(want, got):
		return KindKeyboard
	case bitFlip(want, got):
		return KindBitFlip
	}
	return KindReplacement
}

func isVowel(c byte) bool { return strings.IndexByte("aeiou", c) >= 0 }

// bitFlip reports whether a and b differ in exactly one bit, as a memory
// or transmission error makes them (bitsquatting).
func bitFlip(a, b byte) bool {
	x := a ^ b
	return x != 0 && x&(x-1) == 0
}

// keyboardRows are the rows of the QWERTY, QWERTZ and AZERTY layouts,
// each offset half a key from the row above.
var keyboardRows = [...][4]string{
	{"1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"},
	{"1234567890", "qwertzuiop", "asdfghjkl", "yxcvbnm"},
	{"1234567890", "azertyuiop", "qsdfghjklm", "wxcvbn"},
}

// keyboardNeighbours reports whether a and b are adjacent keys on one of
// the common layouts.
func keyboardNeighbours(a, b byte) bool {
	for _, rows := range keyboardRows {
		for r, row := range rows {
			i := strings.IndexByte(row, a)
			if i < 0 {
				continue
			}
			if i > 0 && row[i-1] == b || i+1 < len(row) && row[i+1] == b {
				return true
			}
			// Staggered rows: the row above touches columns i and i+1,
			// the row below columns i-1 and i.
			if r > 0 && (at(rows[r-1], i) == b || at(rows[r-1], i+1) == b) {
				return true
			}
			if r+1 < len(rows) && (at(rows[r+1], i-1) == b || at(rows[r+1], i) == b) {
				return true
			}
		}
	}
	return false
}

func at(s string, i int) byte {
	if i < 0 || i >= len(s) {
		return 0
	}
	return s[i]
}

// visualClass maps characters that are told apart only by the font (o and
// 0; l, 1 and i; c and e) to one class; any other character is its own
// class.
func visualClass(c byte) byte {
	switch c {
	case '0':
		return 'o'
	case '1', 'i':
		return 'l'
	case 'c':
		return 'e'
	}
	return c
}

// skeleton appends the visual skeleton of the lower-case label s to dst:
// sequences that read as one letter in common fonts (rn, nn and rr as m,
// vv as w, cl as d) become that letter, and characters told apart only by the font share a class. Two
// labels with equal skeletons look alike; the skeleton is never longer than
// the label. Pairs are read from the left; skeletonRight reads them from
// the right, as "arrny" needs (a, r, rn).
func skeleton(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if i+1 < len(s) {
			if c := pairGlyph(s[i], s[i+1]); c != 0 {
				dst = append(dst, c)
				i++
				continue
			}
		}
		dst = append(dst, visualClass(s[i]))
	}
	return dst
}

// skeletonRight is skeleton with pairs read from the right.
func skeletonRight(dst []byte, s string) []byte {
	start := len(dst)
	for i := len(s) - 1; i >= 0; i-- {
		if i > 0 {
			if c := pairGlyph(s[i-1], s[i]); c != 0 {
				dst = append(dst, c)
				i--
				continue
			}
		}
		dst = append(dst, visualClass(s[i]))
	}
	for i, j := start, len(dst)-1; i < j; i, j = i+1, j-1 {
		dst[i], dst[j] = dst[j], dst[i]
	}
	return dst
}

// pairGlyph returns the letter that the two characters a, b resemble, or 0.
func pairGlyph(a, b byte) byte {
	switch uint16(a)<<8 | uint16(b) {
	case 'r'<<8 | 'n', 'n'<<8 | 'n', 'r'<<8 | 'r':
		return 'm'
	case 'v'<<8 | 'v':
		return 'w'
	case 'c'<<8 | 'l':
		return 'd'
	}
	return 0
}
