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

//go:generate go run ../resolver/internal/gentypes -o types_table.go

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
