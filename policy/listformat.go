package policy

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// ListFormat is how a domains_from file names its domains.
type ListFormat uint8

// The list formats. Every format takes '#' comment lines and blank lines.
const (
	// ListPlain is one domain a line ("*.name": only the names below it),
	// or hosts-file lines "ADDRESS NAME...".
	ListPlain ListFormat = iota
	// ListAdblock is adblock-style filter lines: "||name^" names the domain
	// and every name below it; lines starting with '!' or '[' are comments.
	// Filters that name no domain (options after '$', exceptions "@@",
	// paths, cosmetic filters) are skipped and counted, not errors: real
	// filter lists are full of them.
	ListAdblock
	// ListRPZ is a Response Policy Zone file: "name CNAME ." names a
	// domain, "*.name CNAME ." the names below it; owner names are taken
	// relative to the zone's apex ($ORIGIN, or the SOA's owner). Other
	// policy actions and triggers are skipped and counted.
	ListRPZ
)

var listFormatNames = map[string]ListFormat{"plain": ListPlain, "adblock": ListAdblock, "rpz": ListRPZ}

func (f ListFormat) String() string {
	if names := [...]string{"plain", "adblock", "rpz"}; int(f) < len(names) {
		return names[f]
	}
	return fmt.Sprintf("ListFormat(%d)", uint8(f))
}

// ListFormatFor is the format of a domains_from file given without one: a
// name ending in .rpz or .zone is an RPZ file, anything else plain.
func ListFormatFor(path string) ListFormat {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".rpz", ".zone":
		return ListRPZ
	}
	return ListPlain
}

// listSkips counts a list file's lines that name no domain, by why.
type listSkips map[string]int

// summary says what was skipped, most first: "3 with options ($...), 1
// exception (@@)".
func (s listSkips) summary() string {
	kinds := slices.Collect(maps.Keys(s))
	slices.SortFunc(kinds, func(a, b string) int {
		if s[a] != s[b] {
			return s[b] - s[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", s[k], k)
	}
	return strings.Join(parts, ", ")
}

func (s listSkips) total() int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

// adblockLine reads one line of an adblock filter list: the domain of a
// "||name^" filter, or why the line names none (skip), or "" for a
// comment.
func adblockLine(line []byte) (domain []byte, skip string) {
	switch {
	case len(line) == 0 || line[0] == '!' || line[0] == '[':
		return nil, ""
	case bytes.HasPrefix(line, []byte("@@")):
		return nil, "exceptions (@@)"
	case !bytes.HasPrefix(line, []byte("||")):
		return nil, "filters not of the form ||name^ (paths, cosmetic filters, patterns)"
	}
	rest := line[2:]
	end := bytes.IndexByte(rest, '^')
	if end < 0 {
		return nil, "filters not of the form ||name^ (paths, cosmetic filters, patterns)"
	}
	if tail := rest[end+1:]; len(tail) > 0 {
		if tail[0] == '$' {
			return nil, "filters with options ($...)"
		}
		return nil, "filters not of the form ||name^ (paths, cosmetic filters, patterns)"
	}
	name := rest[:end]
	if bytes.ContainsAny(name, "/*:?=&") {
		return nil, "filters not of the form ||name^ (paths, cosmetic filters, patterns)"
	}
	return name, ""
}

// rpzReader follows the state of an RPZ zone file across its lines. Owner
// names are kept relative to the zone's apex ("" is the apex itself): a
// relative name with no $ORIGIN before it is relative to the apex, whose
// name the file need not give.
type rpzReader struct {
	origin string // $ORIGIN, lower case with its trailing dot; "" before one
	apex   string // the apex's name, when the file gives it (SOA owner or first $ORIGIN)
	owner  string // the last owner, relative to the apex, for lines that start blank
	seen   bool   // an owner came before
	paren  bool   // inside a parenthesised record (an SOA)
}

// line reads one zone file line: the QNAME trigger of a "CNAME ." record
// (below: "*.name"), or why the line is skipped (skip), or an error; a
// line of zone structure (SOA, NS, $TTL) gives none of the three.
func (z *rpzReader) line(line []byte) (domain string, below bool, skip string, err error) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	if z.paren {
		if bytes.IndexByte(line, ')') >= 0 {
			z.paren = false
		}
		return "", false, "", nil
	}
	startsBlank := len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
	fields := strings.Fields(string(line))
	if len(fields) == 0 {
		return "", false, "", nil
	}
	if bytes.IndexByte(line, '(') >= 0 && bytes.IndexByte(line, ')') < 0 {
		z.paren = true
	}
	switch strings.ToUpper(fields[0]) {
	case "$ORIGIN":
		if len(fields) != 2 || !strings.HasSuffix(fields[1], ".") {
			return "", false, "", fmt.Errorf("$ORIGIN wants one absolute name (ending in a dot)")
		}
		z.origin = strings.ToLower(fields[1])
		if z.apex == "" {
			z.apex = z.origin
		}
		return "", false, "", nil
	case "$TTL":
		return "", false, "", nil
	case "$INCLUDE", "$GENERATE":
		return "", false, "", fmt.Errorf("%s is not followed in an RPZ list", fields[0])
	}
	if !startsBlank {
		if z.owner, err = z.relative(fields[0]); err != nil {
			return "", false, "", err
		}
		z.seen = true
		fields = fields[1:]
	} else if !z.seen {
		return "", false, "", fmt.Errorf("a record with no owner name before it")
	}
	// [TTL] [class] type rdata, TTL and class in either order.
	for len(fields) > 0 && (isTTL(fields[0]) || strings.EqualFold(fields[0], "IN")) {
		fields = fields[1:]
	}
	if len(fields) == 0 {
		return "", false, "", fmt.Errorf("a record without a type")
	}
	rrtype, rdata := strings.ToUpper(fields[0]), fields[1:]
	name := z.owner
	switch {
	case rrtype == "SOA" || rrtype == "NS":
		return "", false, "", nil
	case name == "":
		return "", false, "records at the zone's apex", nil
	}
	last := name[strings.LastIndexByte(name, '.')+1:]
	if strings.HasPrefix(last, "rpz-") {
		return "", false, "triggers other than a query name (rpz-ip, rpz-nsdname, ...)", nil
	}
	if rrtype != "CNAME" {
		return "", false, "local data (" + rrtype + " records)", nil
	}
	if len(rdata) != 1 {
		return "", false, "", fmt.Errorf("CNAME wants one target")
	}
	switch target := strings.ToLower(rdata[0]); target {
	case ".":
	case "*.":
		return "", false, "CNAME *. (nodata)", nil
	case "rpz-passthru.":
		return "", false, "CNAME rpz-passthru. (exceptions)", nil
	case "rpz-drop.", "rpz-tcp-only.":
		return "", false, "CNAME " + target, nil
	default:
		return "", false, "CNAME to a name (local data)", nil
	}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		return rest, true, "", nil
	}
	return name, false, "", nil
}

// relative makes an owner name relative to the apex, lower case: "@" is
// the origin, a name without a trailing dot is relative to the origin (to
// the apex when no $ORIGIN came before).
func (z *rpzReader) relative(name string) (string, error) {
	name = strings.ToLower(name)
	var abs string
	switch {
	case name == "@" && z.origin == "":
		return "", nil
	case name == "@":
		abs = z.origin
	case strings.HasSuffix(name, "."):
		abs = name
	case z.origin == "":
		return name, nil
	default:
		abs = name + "." + z.origin
	}
	switch {
	case z.apex == "":
		return "", fmt.Errorf("owner %s is absolute, but the zone's name is not known: give $ORIGIN first", name)
	case abs == z.apex:
		return "", nil
	case strings.HasSuffix(abs, "."+z.apex):
		return strings.TrimSuffix(abs, "."+z.apex), nil
	}
	return "", fmt.Errorf("owner %s is not in the zone %s", strings.TrimSuffix(abs, "."), z.apex)
}

// isTTL reports a zone file TTL field: digits, or units such as 1h30m.
func isTTL(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return false
	}
	for _, c := range strings.ToLower(s) {
		if !(c >= '0' && c <= '9' || strings.ContainsRune("smhdw", c)) {
			return false
		}
	}
	return true
}
