package policy

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ExplainerSettings configure the SMTP responder at the sinkhole address,
// which refuses every recipient with a reply that says why.
type ExplainerSettings struct {
	Listen   []string // host:port, TCP; empty: no explainer
	Hostname string   // the greeting and EHLO name, without a trailing dot
	// MaxConnections caps the sessions open at once; MaxPerClient caps
	// those from one client address.
	MaxConnections int
	MaxPerClient   int
	// Timeout is how long the responder waits for each command; a whole
	// session lasts at most SessionTimeouts times as long.
	Timeout time.Duration
	Pos     Position // of the explainer key; zero when absent
}

// SessionTimeouts is how many explainer timeouts a whole SMTP session may
// last, however busy the client keeps it.
const SessionTimeouts = 10

// Configured reports whether the policy runs an explainer.
func (e ExplainerSettings) Configured() bool { return len(e.Listen) > 0 }

// SessionLimit is the longest an SMTP session may last.
func (e ExplainerSettings) SessionLimit() time.Duration { return SessionTimeouts * e.Timeout }

func defaultExplainer() ExplainerSettings {
	return ExplainerSettings{MaxConnections: 1000, MaxPerClient: 50, Timeout: 30 * time.Second}
}

func (d *decoder) explainer(v *yaml.Node, s *Settings) {
	e := defaultExplainer()
	e.Pos = d.pos(resolve(v))
	hasListen := false
	d.mapping(v, "explainer", map[string]field{
		"listen": func(v *yaml.Node) {
			rv := resolve(v)
			hasListen = !isNull(rv) && (rv.Kind != yaml.SequenceNode || len(rv.Content) > 0)
			e.Listen = d.listenAddrs(v, "explainer.listen", "25")
		},
		"hostname": func(v *yaml.Node) {
			if name, ok := d.hostName(v, "explainer.hostname"); ok {
				e.Hostname = name
			}
		},
		"max_connections":            func(v *yaml.Node) { d.positive(v, "explainer.max_connections", &e.MaxConnections) },
		"max_connections_per_client": func(v *yaml.Node) { d.positive(v, "explainer.max_connections_per_client", &e.MaxPerClient) },
		"timeout": func(v *yaml.Node) {
			d.duration(v, "explainer.timeout", &e.Timeout)
			if e.Timeout < time.Second {
				d.errorf(v, "explainer.timeout: %s is under a second (RFC 5321 §4.5.3.2 asks for minutes)", e.Timeout)
			}
		},
	})
	if resolve(v).Kind == yaml.MappingNode && !hasListen {
		d.errorf(v, "explainer: needs listen, the addresses mail servers reach at the sinkhole (e.g. [\"192.0.2.25:25\"])")
	}
	if e.MaxPerClient > e.MaxConnections {
		e.MaxPerClient = e.MaxConnections
	}
	s.Explainer = e
}

// eximIgnoredHosts are the targets Debian's stock Exim router never
// connects to (ROUTER_DNSLOOKUP_IGNORE_TARGET_HOSTS, the ignore_target_hosts
// of its dnslookup router in exim4-config 4.96): an MX there makes Exim
// bounce at once, without reaching the explainer.
var eximIgnoredHosts = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/32"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("100::/64"),
}

// sinkholeRules names the rules (and lookalike protection) whose action is
// sinkhole, and the position of the first.
func (p *Policy) sinkholeRules() ([]string, Position) {
	var names []string
	var first Position
	for i := range p.rules {
		if r := &p.rules[i]; r.Action == ActionSinkhole && !r.Expired {
			if len(names) == 0 {
				first = r.Pos
			}
			names = append(names, "rule "+strconv.Quote(r.Name))
		}
	}
	if p.Lookalikes.Configured() && p.Lookalikes.Action == ActionSinkhole {
		if len(names) == 0 {
			first = p.Lookalikes.Pos
		}
		names = append(names, "lookalike protection")
	}
	return names, first
}

// explainerServes reports whether an explainer listen address receives the
// mail servers' connections to addr: the same address or a wildcard of its
// family, on port 25.
func (e ExplainerSettings) explainerServes(addr netip.Addr) bool {
	for _, l := range e.Listen {
		host, port, _ := net.SplitHostPort(l)
		if port != "25" {
			continue
		}
		if host == "" {
			return true
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if ip == addr || (ip.IsUnspecified() && ip.Is4() == addr.Is4()) {
			return true
		}
	}
	return false
}

// warnExplainer warns when sinkholed mail has no explainer to be refused
// by, when an explainer waits at an address no sinkhole answer names, and
// when a stock Exim would never connect to the sinkhole.
func (c *compiler) warnExplainer() {
	p := c.p
	rules, first := p.sinkholeRules()
	var sinks []netip.Addr
	for _, a := range []netip.Addr{p.Answers.SinkholeIPv4, p.Answers.SinkholeIPv6} {
		if a.IsValid() {
			sinks = append(sinks, a)
		}
	}
	e := p.Explainer
	if len(rules) > 0 {
		for _, a := range sinks {
			if !e.explainerServes(a) {
				c.warnf(first, "%s answer sinkhole with %s, but no explainer listens on %s: a mail server finds nothing there that refuses the mail, so it retries for days instead of bouncing (add explainer.listen: [%q])",
					strings.Join(rules, ", "), a, net.JoinHostPort(a.String(), "25"), net.JoinHostPort(a.String(), "25"))
			}
			for _, pre := range eximIgnoredHosts {
				if pre.Contains(a) {
					c.warnf(first, "the sinkhole address %s is in %s, which Debian's stock Exim ignores as a mail host (ROUTER_DNSLOOKUP_IGNORE_TARGET_HOSTS): Exim bounces such mail at once, but without the explainer's reason, unless the site puts \"!%s ;\" first in that list (see the README's \"Tell the sender\")", a, pre, a)
					break
				}
			}
		}
	}
	if !e.Configured() {
		return
	}
	served := false
	for _, a := range sinks {
		served = served || (len(rules) > 0 && e.explainerServes(a))
	}
	if !served {
		c.warnf(e.Pos, "explainer listens on %s, but no rule answers sinkhole with an address it serves on port 25 (answers.sinkhole_ipv4/_ipv6): no mail server will be sent to it",
			strings.Join(e.Listen, ", "))
	}
}

// warnf adds a warning at pos.
func (c *compiler) warnf(pos Position, format string, args ...any) {
	c.p.warnings = append(c.p.warnings, Warning{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}
