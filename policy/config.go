package policy

import (
	"net/netip"
	"time"

	"gopkg.in/yaml.v3"
)

// Settings are the parts of a policy file other than rules: where to listen,
// whom to serve, where to forward, how to cache and how to answer.
type Settings struct {
	Version         int
	Listen          []string       // host:port, UDP and TCP on each
	ACLAllow        []netip.Prefix // clients served; others get REFUSED
	ClientGroups    []ClientGroup  // in file order
	Upstreams       []string       // host:port; empty: the system's resolvers
	UpstreamTimeout time.Duration  // for one forwarded query, all tries together
	// UpstreamCAFile holds the roots (PEM) that DNS-over-TLS and HTTPS
	// upstreams' certificates are checked against, as written; "": the
	// system's roots.
	UpstreamCAFile string
	UpstreamCAPos  Position
	Cache          CacheSettings
	Answers        AnswerSettings
	Lookalikes     LookalikeSettings
	Explainer      ExplainerSettings
	RPZ            RPZSettings // parsed and checked; not served by this version
	Limits         LimitSettings
	RateLimit      RateLimitSettings
	Tests          []TestCase
	Metrics        string // host:port of the Prometheus listener; "" = off
	Log            LogSettings
}

// ClientGroup is a named set of client networks that rules can refer to.
type ClientGroup struct {
	Name     string
	Prefixes []netip.Prefix
	Pos      Position
}

// CacheSettings bound the cache of upstream replies.
type CacheSettings struct {
	Size           int // entries
	MinTTL         time.Duration
	MaxTTL         time.Duration
	MaxNegativeTTL time.Duration
	ServfailTTL    time.Duration
	// ServeStale is how long past its TTL an answer may still be served
	// when every upstream fails (RFC 8767); zero: never.
	ServeStale time.Duration
}

// AnswerSettings shape the answers synthesized for blocked names.
type AnswerSettings struct {
	TTL          time.Duration // of synthesized records and of the negative SOA
	SinkholeIPv4 netip.Addr    // zero: none
	SinkholeIPv6 netip.Addr    // zero: none
	SinkholeMX   string        // lower-case FQDN with trailing dot, answered locally
}

// LookalikeSettings name the domains the organisation writes to, whose
// lookalikes are blocked without being listed.
type LookalikeSettings struct {
	Protect    []string   // registrable domains, normalized
	ProtectPos []Position // of each protect entry
	Allow      []string   // near-names that are never lookalikes, nor names under them
	AllowPos   []Position
	Types      []uint16 // default MX, A, AAAA, ANY
	Action     Action   // a blocking action; default nxdomain
	Mode       Mode
	Clients    []string // client group names; empty: every client
	Pos        Position // of the lookalikes key; zero when absent

	types       typeSet
	clientNodes []*yaml.Node
}

// Configured reports whether the policy file has a lookalikes section.
func (l LookalikeSettings) Configured() bool { return l.Pos.Line > 0 }

// LogSettings choose the log's format and level.
type LogSettings struct {
	Format string // "json" or "text"
	Level  string // "debug", "info", "warn" or "error"
}

// TestCase is one expectation of the policy's tests: section.
type TestCase struct {
	Name   string
	Type   uint16
	Client netip.Addr // zero: any client outside every group
	Expect Action
	Pos    Position
}

// Rule is one compiled rule of a policy.
type Rule struct {
	Name        string
	Domains     []string     // as normalized, "*." kept for below-only
	DomainsFrom []string     // list file paths as written
	ListFormats []ListFormat // the format of each of DomainsFrom
	DomainCount int          // distinct domains, inline and from lists
	Types       []uint16     // empty: every type
	Action      Action
	Mode        Mode
	Clients     []string // client group names; empty: every client
	Servers     []string // host:port, for ActionForward
	Reason      string
	Owner       string
	Expires     time.Time // zero: never; the rule holds through that day (UTC)
	Expired     bool      // past Expires when loaded; such a rule never applies
	Pos         Position
	// Index is the rule's place among all of the policy's rules: those of
	// Rules, then those of LookalikeRules. A resolver keeps what it works
	// out per rule in a slice by it.
	Index int

	types   typeSet
	clients []netip.Prefix
}

// Exception reports whether the rule is an allow exception.
func (r *Rule) Exception() bool { return r.Action == ActionAllow }

// defaultSettings returns the settings of a policy file that sets nothing.
func defaultSettings() Settings {
	s := Settings{
		Version:         1,
		Listen:          []string{"127.0.0.1:5300"},
		UpstreamTimeout: 2 * time.Second,
		Cache: CacheSettings{
			Size:           100000,
			MaxTTL:         24 * time.Hour,
			MaxNegativeTTL: time.Hour,
			ServfailTTL:    5 * time.Second,
		},
		Answers: AnswerSettings{TTL: 5 * time.Minute, SinkholeMX: "sinkhole.typoguard.invalid."},
		Limits:  defaultLimits(),
		Log:     LogSettings{Format: "text", Level: "info"},
	}
	// Loopback and the private ranges (RFC 1918, RFC 4193).
	for _, p := range []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"} {
		s.ACLAllow = append(s.ACLAllow, netip.MustParsePrefix(p))
	}
	return s
}
