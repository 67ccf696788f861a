package policy

import (
	"strings"
	"unicode"

	"go.mau.fi/util/confusable"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/unicode/runenames"
)

// foldName turns every IDN label of the lower-case A-label name into the
// ASCII letters it looks like, so the result can be judged as an ASCII
// name: Unicode confusables (UTS #39: Cyrillic а, Greek ο) become their
// prototype, and Latin letters with diacritics, hooks, strokes, tails or as
// small capitals become their base letter (á, ạ, ŧ, ᴍ, ɱ, ƒ). One
// character with no ASCII look-alike (a schwa, a Cyrillic м), however
// often it is used, becomes unknownLetter: it may stand for any letter. A
// label that folds no further is kept as it is. It reports false when no
// label changed.
func foldName(name string) (string, bool) {
	var b strings.Builder
	changed := false
	var unknown rune
	for rest := name; rest != ""; {
		label := rest
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			label, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if folded, ok := foldLabel(label, &unknown); ok {
			b.WriteString(folded)
			changed = true
			continue
		}
		b.WriteString(label)
	}
	return b.String(), changed
}

// unknownLetter stands for a character that folds to no ASCII letter; it
// equals no character of a host name.
const unknownLetter = '*'

// foldLabel folds one xn-- label; see foldName. *unknown is the character
// already standing as unknownLetter in the name, or 0.
func foldLabel(label string, unknown *rune) (string, bool) {
	if !strings.HasPrefix(label, "xn--") {
		return "", false
	}
	u, err := idna.Punycode.ToUnicode(label)
	if err != nil {
		return "", false
	}
	out := make([]byte, 0, len(u))
	was := *unknown
	for _, r := range norm.NFD.String(u) {
		var ok bool
		if out, ok = foldRune(out, r, true); !ok {
			if *unknown != 0 && *unknown != r {
				*unknown = was
				return "", false
			}
			*unknown = r
			out = append(out, unknownLetter)
		}
	}
	if len(out) == 0 || len(out) > 63 || out[0] == '-' || out[len(out)-1] == '-' {
		*unknown = was
		return "", false
	}
	return string(out), true
}

// foldRune appends the ASCII form of r to dst. Latin letters are read by
// their Unicode name before the confusables table, so a small capital M
// stays an m (the table makes it a turned w); other scripts go through the
// table when confusables is set.
func foldRune(dst []byte, r rune, confusables bool) ([]byte, bool) {
	switch {
	case r < 0x80:
		c := byte(unicode.ToLower(r))
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			return append(dst, c), true
		}
		return dst, false
	case unicode.Is(unicode.Mn, r):
		return dst, true // a combining mark: an accent, a dot below
	}
	if c, ok := latinBase(r); ok {
		return append(dst, c), true
	}
	if !confusables {
		return dst, false
	}
	proto := confusable.GetReplacement(r)
	if proto == "" {
		return dst, false
	}
	for _, p := range norm.NFD.String(proto) {
		var ok bool
		if dst, ok = foldRune(dst, p, false); !ok {
			return dst, false
		}
	}
	return dst, true
}

// latinBase returns the base letter of a Latin letter named "LATIN ...
// LETTER [SMALL] [CAPITAL] [DOTLESS] [SCRIPT] X [WITH ...|BAR]".
func latinBase(r rune) (byte, bool) {
	name := runenames.Name(r)
	rest, ok := strings.CutPrefix(name, "LATIN ")
	if !ok {
		return 0, false
	}
	i := strings.Index(rest, "LETTER ")
	if i < 0 {
		return 0, false
	}
	rest = rest[i+len("LETTER "):]
	for _, mod := range []string{"SMALL ", "CAPITAL ", "DOTLESS ", "SCRIPT "} {
		rest = strings.TrimPrefix(rest, mod)
	}
	if len(rest) == 0 || rest[0] < 'A' || rest[0] > 'Z' || len(rest) > 1 && !strings.HasPrefix(rest[1:], " WITH ") && rest[1:] != " BAR" {
		return 0, false
	}
	return rest[0] + ('a' - 'A'), true
}
