package policy

import (
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// idnaProfile converts Unicode names to A-labels as a lookup would
// (RFC 5891 §5). Underscores are let through here and judged by checkName,
// so service names such as _dmarc.example.org stay expressible.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
)

// normalizeDomain turns a domain as written in a policy into lower-case
// A-label form without the trailing dot. A leading "*." means "only the
// names below", reported as below=true with the "*." removed.
func normalizeDomain(s string) (name string, onlyBelow bool, err error) {
	name = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		name, onlyBelow = rest, true
	}
	if strings.HasSuffix(name, ".") && !strings.HasSuffix(name, "..") {
		name = name[:len(name)-1]
	}
	if name == "" {
		return "", false, fmt.Errorf("invalid domain %q: empty name", s)
	}
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		name = strings.ToLower(name)
		if strings.Contains(name, "xn--") {
			if _, err := idnaProfile.ToUnicode(name); err != nil {
				return "", false, fmt.Errorf("invalid domain %q: bad IDN label: %v", s, err)
			}
		}
	} else {
		a, err := idnaProfile.ToASCII(name)
		if err != nil {
			return "", false, fmt.Errorf("invalid domain %q: not a valid IDN: %v", s, err)
		}
		name = a
	}
	if err := checkName(name); err != nil {
		return "", false, fmt.Errorf("invalid domain %q: %v", s, err)
	}
	return name, onlyBelow, nil
}

// checkName checks a lower-case name without trailing dot against the
// limits of RFC 1035 §2.3.4 and the hostname syntax of RFC 1123 §2.1
// (letters, digits and inner hyphens; underscores allowed for service
// labels).
func checkName[S string | []byte](name S) error {
	if len(name) > 253 {
		return fmt.Errorf("name is %d octets long, over 253", len(name))
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			continue
		}
		label := name[start:i]
		switch {
		case len(label) == 0:
			return fmt.Errorf("empty label")
		case len(label) > 63:
			return fmt.Errorf("label %q is %d octets long, over 63", label, len(label))
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for j := 0; j < len(label); j++ {
			c := label[j]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("label %q holds %q, which a host name cannot", label, rune(c))
			}
		}
		start = i + 1
	}
	return nil
}

// displayDomain shows a normalized domain as a policy writes it.
func displayDomain(name string, onlyBelow bool) string {
	if onlyBelow {
		return "*." + name
	}
	return name
}

// CanonicalName returns a domain name as typoguard compares it: lower-case
// A-labels without the trailing dot. It reports false for anything that is
// not a host name, such as an address literal or a wildcard.
func CanonicalName(s string) (string, bool) {
	name, below, err := normalizeDomain(s)
	if err != nil || below {
		return "", false
	}
	return name, true
}
