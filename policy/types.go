package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Record type codes this package needs by name (RFC 1035 §3.2.2 and later).
const (
	TypeA    uint16 = 1
	TypeMX   uint16 = 15
	TypeAAAA uint16 = 28
	TypeANY  uint16 = 255
)

// typeCodes maps record type mnemonics to their IANA codes. The resolver's
// tests check it against miekg/dns, which this package does not import.
var typeCodes = map[string]uint16{
	"A": 1, "NS": 2, "MD": 3, "MF": 4, "CNAME": 5, "SOA": 6, "MB": 7, "MG": 8,
	"MR": 9, "NULL": 10, "WKS": 11, "PTR": 12, "HINFO": 13, "MINFO": 14, "MX": 15,
	"TXT": 16, "RP": 17, "AFSDB": 18, "X25": 19, "ISDN": 20, "RT": 21,
	"NSAPPTR": 23, "SIG": 24, "KEY": 25, "PX": 26, "GPOS": 27, "AAAA": 28,
	"LOC": 29, "NXT": 30, "EID": 31, "NIMLOC": 32, "SRV": 33, "ATMA": 34,
	"NAPTR": 35, "KX": 36, "CERT": 37, "DNAME": 39, "OPT": 41, "APL": 42,
	"DS": 43, "SSHFP": 44, "IPSECKEY": 45, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48,
	"DHCID": 49, "NSEC3": 50, "NSEC3PARAM": 51, "TLSA": 52, "SMIMEA": 53,
	"HIP": 55, "NINFO": 56, "RKEY": 57, "TALINK": 58, "CDS": 59, "CDNSKEY": 60,
	"OPENPGPKEY": 61, "CSYNC": 62, "ZONEMD": 63, "SVCB": 64, "HTTPS": 65,
	"SPF": 99, "UINFO": 100, "UID": 101, "GID": 102, "UNSPEC": 103, "NID": 104,
	"L32": 105, "L64": 106, "LP": 107, "EUI48": 108, "EUI64": 109,
	"NXNAME": 128, "TKEY": 249, "TSIG": 250, "IXFR": 251, "AXFR": 252,
	"MAILB": 253, "MAILA": 254, "ANY": 255, "URI": 256, "CAA": 257, "AVC": 258,
	"AMTRELAY": 260, "TA": 32768, "DLV": 32769,
}

var typeNames = func() map[uint16]string {
	m := make(map[uint16]string, len(typeCodes))
	for name, code := range typeCodes {
		m[code] = name
	}
	return m
}()

// TypeCodes returns a copy of the record type mnemonics this package knows.
func TypeCodes() map[string]uint16 {
	m := make(map[string]uint16, len(typeCodes))
	for k, v := range typeCodes {
		m[k] = v
	}
	return m
}

// ParseType reads a record type mnemonic such as "MX" or the generic form
// "TYPE65" (RFC 3597 §5), case-insensitively.
func ParseType(s string) (uint16, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if code, ok := typeCodes[u]; ok {
		return code, nil
	}
	if rest, ok := strings.CutPrefix(u, "TYPE"); ok {
		if n, err := strconv.ParseUint(rest, 10, 16); err == nil {
			return uint16(n), nil
		}
	}
	return 0, fmt.Errorf("unknown record type %q", s)
}

// TypeString names a record type code, "TYPEnnn" when it has no mnemonic.
func TypeString(t uint16) string {
	if name, ok := typeNames[t]; ok {
		return name
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// typeSet is a set of record types; the zero value holds every type.
type typeSet struct {
	some bool      // false: every type
	low  [4]uint64 // bit per type code below 256
	high []uint16  // codes from 256 up
}

func (s *typeSet) add(t uint16) {
	s.some = true
	if t < 256 {
		s.low[t/64] |= 1 << (t % 64)
		return
	}
	for _, h := range s.high {
		if h == t {
			return
		}
	}
	s.high = append(s.high, t)
}

func (s *typeSet) has(t uint16) bool {
	if !s.some {
		return true
	}
	if t < 256 {
		return s.low[t/64]&(1<<(t%64)) != 0
	}
	for _, h := range s.high {
		if h == t {
			return true
		}
	}
	return false
}

// covers reports whether every type in o is also in s.
func (s *typeSet) covers(o *typeSet) bool {
	if !s.some {
		return true
	}
	if !o.some {
		return false
	}
	for i := range s.low {
		if o.low[i]&^s.low[i] != 0 {
			return false
		}
	}
	for _, t := range o.high {
		if !s.has(t) {
			return false
		}
	}
	return true
}

// Action is what typoguard answers for a query a rule decides.
type Action uint8

// The actions a rule can take: five that answer from policy (blocking),
// allow, and conditional forwarding.
const (
	ActionAllow    Action = iota // forwarded to the upstreams as usual
	ActionNXDomain               // NXDOMAIN with an SOA
	ActionNoData                 // NOERROR, empty, with an SOA
	ActionNullMX                 // MX 0 . (RFC 7505) for MX, NODATA otherwise
	ActionSinkhole               // the sinkhole MX and addresses
	ActionRefuse                 // REFUSED
	ActionForward                // forwarded to the rule's own servers
)

var actionNames = [...]string{
	ActionAllow:    "allow",
	ActionNXDomain: "nxdomain",
	ActionNoData:   "nodata",
	ActionNullMX:   "null-mx",
	ActionSinkhole: "sinkhole",
	ActionRefuse:   "refuse",
	ActionForward:  "forward",
}

// String returns the action's name as written in a policy file.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Blocking reports whether the action answers from policy instead of
// forwarding.
func (a Action) Blocking() bool {
	return a != ActionAllow && a != ActionForward
}

// ParseAction reads an action name.
func ParseAction(s string) (Action, error) {
	for i, name := range actionNames {
		if s == name {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want one of %s)", s, strings.Join(actionNames[:], ", "))
}

// Mode says whether a rule is enforced or only logged.
type Mode uint8

// The rule modes.
const (
	ModeEnforce Mode = iota // the action is answered
	ModeMonitor             // answered as allow, logged as "would block"
)

// String returns the mode's name as written in a policy file.
func (m Mode) String() string {
	if m == ModeMonitor {
		return "monitor"
	}
	return "enforce"
}

// ParseMode reads a mode name.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "enforce":
		return ModeEnforce, nil
	case "monitor":
		return ModeMonitor, nil
	}
	return 0, fmt.Errorf("unknown mode %q (want enforce or monitor)", s)
}
