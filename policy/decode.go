package policy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks a YAML node tree and gathers every problem it meets, each at
// the line and column of the node at fault.
type decoder struct {
	file string
	errs ErrorList
}

func (d *decoder) pos(n *yaml.Node) Position {
	return Position{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, Error{Pos: d.pos(n), Msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names a node's YAML type for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!int":
			return "a number"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!timestamp":
			return "a date"
		}
		return "a string"
	}
	return "something else"
}

// field handles the value of one mapping key.
type field func(v *yaml.Node)

// mapping calls the handler of each key of n; unknown and repeated keys are
// errors. A null node is an empty mapping.
func (d *decoder) mapping(n *yaml.Node, what string, fields map[string]field) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping, got %s", what, describe(n))
		return
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "%s: want a key, got %s", what, describe(k))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "%s: key %q is given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		h, ok := fields[k.Value]
		if !ok {
			d.errorf(k, "unknown key %q in %s (known: %s)", k.Value, what, knownKeys(fields))
			continue
		}
		h(v)
	}
}

func knownKeys(fields map[string]field) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// section reports whether a section's value is a mapping or nothing: a
// section that is there, however empty, as opposed to one of the wrong type.
func section(v *yaml.Node) bool {
	v = resolve(v)
	return v.Kind == yaml.MappingNode || isNull(v)
}

// list returns the items of a sequence; a null node is an empty list.
func (d *decoder) list(n *yaml.Node, what string) []*yaml.Node {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s: want a list, got %s", what, describe(n))
		return nil
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		items[i] = resolve(c)
	}
	return items
}

// str returns a string scalar.
func (d *decoder) str(n *yaml.Node, what string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.errorf(n, "%s: want a string, got %s", what, describe(n))
		return "", false
	}
	return n.Value, true
}

// scalar reads a string scalar and hands it to parse; parse's error is
// reported at the node as "what: error".
func (d *decoder) scalar(v *yaml.Node, what string, parse func(s string) error) {
	if s, ok := d.str(v, what); ok {
		if err := parse(s); err != nil {
			d.errorf(v, "%s: %v", what, err)
		}
	}
}

// boolean reads a true or false.
func (d *decoder) boolean(v *yaml.Node, what string, dst *bool) {
	rv := resolve(v)
	if rv.Kind != yaml.ScalarNode || rv.Tag != "!!bool" || rv.Decode(dst) != nil {
		d.errorf(v, "%s: want true or false, got %s", what, describe(rv))
	}
}

// strs calls fn with each item of a list of string scalars and its node.
func (d *decoder) strs(n *yaml.Node, what string, fn func(v *yaml.Node, s string)) {
	for _, item := range d.list(n, what) {
		if s, ok := d.str(item, what); ok {
			fn(item, s)
		}
	}
}

// listFile reads one domains_from entry: a path, whose format its name
// tells (ListFormatFor), or {path: FILE, format: FORMAT}.
func (d *decoder) listFile(n *yaml.Node) (path string, format ListFormat, ok bool) {
	if n.Kind != yaml.MappingNode {
		if path, ok = d.str(n, "domains_from"); ok {
			format = ListFormatFor(path)
		}
		return path, format, ok
	}
	var formatNode *yaml.Node
	formatOK := true
	d.mapping(n, "domains_from entry", map[string]field{
		"path": func(v *yaml.Node) { path, ok = d.str(v, "domains_from path") },
		"format": func(v *yaml.Node) {
			formatNode, formatOK = v, false
			d.scalar(v, "domains_from format", func(s string) error {
				f, known := listFormatNames[s]
				if !known {
					return fmt.Errorf("unknown format %q (want plain, adblock or rpz)", s)
				}
				format, formatOK = f, true
				return nil
			})
		},
	})
	if !ok {
		if path == "" {
			d.errorf(n, "domains_from entry: needs path")
		}
		return "", 0, false
	}
	if !formatOK {
		return "", 0, false
	}
	if formatNode == nil {
		format = ListFormatFor(path)
	}
	return path, format, true
}

func (d *decoder) integer(n *yaml.Node, what string) (int, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, "%s: want a whole number, got %s", what, describe(n))
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 0, 32)
	if err != nil {
		d.errorf(n, "%s: %q is not a whole number in range", what, n.Value)
		return 0, false
	}
	return int(v), true
}

// positive reads a whole number above zero into dst.
func (d *decoder) positive(v *yaml.Node, what string, dst *int) bool {
	n, ok := d.integer(v, what)
	if !ok {
		return false
	}
	if n < 1 {
		d.errorf(v, "%s: %d is not a positive number", what, n)
		return false
	}
	*dst = n
	return true
}

// duration reads a Go duration such as "30s" or "24h"; it may not be negative.
func (d *decoder) duration(n *yaml.Node, what string, dst *time.Duration) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.errorf(n, "%s: want a duration such as 30s or 24h, got %s", what, describe(n))
		return
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.errorf(n, "%s: bad duration %q (want a Go duration such as 30s, 5m or 24h)", what, n.Value)
		return
	}
	if v < 0 {
		d.errorf(n, "%s: duration %q is negative", what, n.Value)
		return
	}
	*dst = v
}

// prefix reads a CIDR prefix or a lone address (a /32 or /128).
func (d *decoder) prefix(n *yaml.Node, s, what string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			d.errorf(n, "%s: bad CIDR %q", what, s)
			return netip.Prefix{}, false
		}
		if p.Masked() != p {
			d.errorf(n, "%s: CIDR %q has host bits set (did you mean %s?)", what, s, p.Masked())
			return netip.Prefix{}, false
		}
		return p, true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		d.errorf(n, "%s: bad IP address or CIDR %q", what, s)
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// hostPort reads "ip:port", or a bare IP with defaultPort. Names are not
// accepted: typoguard must reach its upstreams without asking DNS.
func (d *decoder) hostPort(n *yaml.Node, s, what, defaultPort string, needIP bool) (string, bool) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if defaultPort == "" {
			d.errorf(n, "%s: bad address %q (want host:port)", what, s)
			return "", false
		}
		host, port = strings.Trim(s, "[]"), defaultPort
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && needIP) {
		d.errorf(n, "%s: bad port in %q", what, s)
		return "", false
	}
	if needIP || host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			d.errorf(n, "%s: %q is not an IP address", what, host)
			return "", false
		}
	}
	return net.JoinHostPort(host, port), true
}

// upstream reads a server to forward to: "ip:port", or a bare IP meaning
// port 53; "tls://IP[:PORT]#NAME", DNS over TLS to IP (port 853) whose
// certificate must be valid for NAME; or "https://HOST[:PORT]/PATH", DNS
// over HTTPS. It returns the server as the resolver takes it.
func (d *decoder) upstream(n *yaml.Node, s, what string) (string, bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return d.hostPort(n, s, what, "53", true)
	}
	switch strings.ToLower(scheme) {
	case "tls":
		addr, name, hasName := strings.Cut(rest, "#")
		if !hasName || name == "" {
			d.errorf(n, "%s: %q: DNS over TLS needs the name its certificate is for: tls://IP:PORT#NAME", what, s)
			return "", false
		}
		if _, ok := CanonicalName(name); !ok {
			d.errorf(n, "%s: %q: %q is not a host name to check the certificate against", what, s, name)
			return "", false
		}
		hp, ok := d.hostPort(n, addr, what, "853", true)
		if !ok {
			return "", false
		}
		return "tls://" + hp + "#" + strings.ToLower(strings.TrimSuffix(name, ".")), true
	case "https":
		u, err := url.Parse(s)
		switch {
		case err != nil:
			d.errorf(n, "%s: %q: not a URL: %v", what, s, err)
		case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
			d.errorf(n, "%s: %q: want https://HOST[:PORT]/PATH, with no user, query or fragment", what, s)
		default:
			u.Scheme = "https"
			return u.String(), true
		}
		return "", false
	}
	d.errorf(n, "%s: %q: unknown scheme %q (want ip:port, tls://IP:PORT#NAME or https://HOST/PATH)", what, s, scheme)
	return "", false
}

// rawRule is a rule as decoded, before its domains are compiled.
type rawRule struct {
	Rule
	domainNodes []*yaml.Node
	listNodes   []*yaml.Node
	clientNodes []*yaml.Node
	hasAction   bool // the key is present, valid or not
	hasDomains  bool // domains or domains_from is present
}

// rawTest is a tests: case as decoded.
type rawTest struct {
	TestCase
	nameNode *yaml.Node
}

// decodeFile decodes the whole document into settings and raw rules.
func (d *decoder) decodeFile(root *yaml.Node, now time.Time) (Settings, []rawRule) {
	s := defaultSettings()
	var rules []rawRule
	d.mapping(root, "the policy file", map[string]field{
		"version": func(v *yaml.Node) {
			if n, ok := d.integer(v, "version"); ok {
				if n != 1 {
					d.errorf(v, "version: %d is not supported (this typoguard reads version 1)", n)
				}
				s.Version = n
			}
		},
		"listen": func(v *yaml.Node) { s.Listen = d.listenAddrs(v, "listen", "") },
		"acl": func(v *yaml.Node) {
			d.mapping(v, "acl", map[string]field{
				"allow": func(v *yaml.Node) {
					s.ACLAllow = nil
					d.strs(v, "acl.allow", func(n *yaml.Node, a string) {
						if p, ok := d.prefix(n, a, "acl.allow"); ok {
							s.ACLAllow = append(s.ACLAllow, p)
						}
					})
				},
			})
		},
		"client_groups": func(v *yaml.Node) { s.ClientGroups = d.clientGroups(v) },
		"upstreams": func(v *yaml.Node) {
			d.strs(v, "upstreams", func(n *yaml.Node, a string) {
				if hp, ok := d.upstream(n, a, "upstreams"); ok {
					s.Upstreams = append(s.Upstreams, hp)
				}
			})
		},
		"upstream_ca_file": func(v *yaml.Node) {
			if f, ok := d.str(v, "upstream_ca_file"); ok {
				s.UpstreamCAFile, s.UpstreamCAPos = f, d.pos(v)
			}
		},
		"upstream_timeout": func(v *yaml.Node) {
			d.duration(v, "upstream_timeout", &s.UpstreamTimeout)
			if s.UpstreamTimeout == 0 {
				d.errorf(v, "upstream_timeout: must be above zero")
			}
		},
		"cache": func(v *yaml.Node) {
			d.mapping(v, "cache", map[string]field{
				"size": func(v *yaml.Node) {
					if n, ok := d.integer(v, "cache.size"); ok {
						if n < 0 {
							d.errorf(v, "cache.size: %d is negative (0 turns the cache off)", n)
						}
						s.Cache.Size = n
					}
				},
				"min_ttl":          func(v *yaml.Node) { d.duration(v, "cache.min_ttl", &s.Cache.MinTTL) },
				"max_ttl":          func(v *yaml.Node) { d.duration(v, "cache.max_ttl", &s.Cache.MaxTTL) },
				"max_negative_ttl": func(v *yaml.Node) { d.duration(v, "cache.max_negative_ttl", &s.Cache.MaxNegativeTTL) },
				"servfail_ttl":     func(v *yaml.Node) { d.duration(v, "cache.servfail_ttl", &s.Cache.ServfailTTL) },
				"serve_stale": func(v *yaml.Node) {
					d.duration(v, "cache.serve_stale", &s.Cache.ServeStale)
					if s.Cache.ServeStale > 7*24*time.Hour {
						d.errorf(v, "cache.serve_stale: %s is above a week (RFC 8767 suggests 1 to 3 days)", s.Cache.ServeStale)
					}
				},
			})
			if s.Cache.MinTTL > s.Cache.MaxTTL {
				d.errorf(v, "cache: min_ttl %s is above max_ttl %s", s.Cache.MinTTL, s.Cache.MaxTTL)
			}
		},
		"answers": func(v *yaml.Node) { d.answers(v, &s.Answers) },
		"rules": func(v *yaml.Node) {
			for _, item := range d.list(v, "rules") {
				rules = append(rules, d.rule(item, now))
			}
		},
		"lookalikes": func(v *yaml.Node) { s.Lookalikes = d.lookalikes(v) },
		"explainer":  func(v *yaml.Node) { d.explainer(v, &s) },
		"rpz":        func(v *yaml.Node) { s.RPZ = d.rpz(v) },
		"limits":     func(v *yaml.Node) { s.Limits = d.limits(v) },
		"rate_limit": func(v *yaml.Node) { s.RateLimit = d.rateLimit(v) },
		"tests": func(v *yaml.Node) {
			// A broken case fails the whole parse, so every case is kept.
			for _, item := range d.list(v, "tests") {
				s.Tests = append(s.Tests, d.testCase(item))
			}
		},
		"metrics": func(v *yaml.Node) {
			if a, ok := d.str(v, "metrics"); ok && a != "" {
				if hp, ok := d.hostPort(v, a, "metrics", "", false); ok {
					s.Metrics = hp
				}
			}
		},
		"log": func(v *yaml.Node) {
			d.mapping(v, "log", map[string]field{
				"format": func(v *yaml.Node) {
					if f, ok := d.str(v, "log.format"); ok {
						if f != "json" && f != "text" {
							d.errorf(v, "log.format: unknown format %q (want json or text)", f)
						}
						s.Log.Format = f
					}
				},
				"level": func(v *yaml.Node) {
					if l, ok := d.str(v, "log.level"); ok {
						switch l {
						case "debug", "info", "warn", "error":
						default:
							d.errorf(v, "log.level: unknown level %q (want debug, info, warn or error)", l)
						}
						s.Log.Level = l
					}
				},
			})
		},
	})
	return s, rules
}

// listenAddrs reads a list of addresses to listen on (a bare address takes
// defaultPort, or is an error when it is ""), and reports those that
// cannot all be bound.
func (d *decoder) listenAddrs(v *yaml.Node, what, defaultPort string) []string {
	var addrs []string
	var nodes []*yaml.Node
	d.strs(v, what, func(n *yaml.Node, a string) {
		if hp, ok := d.hostPort(n, a, what, defaultPort, false); ok {
			addrs = append(addrs, hp)
			nodes = append(nodes, n)
		}
	})
	d.listenConflicts(addrs, nodes)
	return addrs
}

// listenConflicts reports listen addresses that cannot all be bound: on
// one port, a wildcard ("0.0.0.0" for IPv4, "::" for IPv6, or no host for
// both) takes every address of its family, so no other address of that
// family may share the port.
func (d *decoder) listenConflicts(addrs []string, nodes []*yaml.Node) {
	type bind struct {
		port     string
		v4, v6   bool
		wildcard bool
	}
	parse := func(a string) bind {
		host, port, _ := net.SplitHostPort(a)
		if host == "" {
			return bind{port: port, v4: true, v6: true, wildcard: true}
		}
		ip, _ := netip.ParseAddr(host)
		return bind{port: port, v4: ip.Is4(), v6: !ip.Is4(), wildcard: ip.IsUnspecified()}
	}
	for i := range addrs {
		a := parse(addrs[i])
		for j := 0; j < i; j++ {
			b := parse(addrs[j])
			if a.port != b.port || a.port == "0" || !(a.v4 && b.v4 || a.v6 && b.v6) {
				continue
			}
			if a.wildcard || b.wildcard || addrs[i] == addrs[j] {
				d.errorf(nodes[i], "listen: %s and %s cannot both be bound: they share port %s and one takes every address of the other's family", addrs[j], addrs[i], a.port)
				break
			}
		}
	}
}

func (d *decoder) clientGroups(v *yaml.Node) []ClientGroup {
	v = resolve(v)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		d.errorf(v, "client_groups: want a mapping of group names to networks, got %s", describe(v))
		return nil
	}
	var groups []ClientGroup
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := resolve(v.Content[i]), v.Content[i+1]
		name, ok := d.str(k, "client_groups")
		if !ok {
			continue
		}
		if seen[name] {
			d.errorf(k, "client_groups: group %q is defined twice", name)
			continue
		}
		seen[name] = true
		g := ClientGroup{Name: name, Pos: d.pos(k)}
		what := "client_groups." + name
		d.strs(val, what, func(n *yaml.Node, a string) {
			if p, ok := d.prefix(n, a, what); ok {
				g.Prefixes = append(g.Prefixes, p)
			}
		})
		groups = append(groups, g)
	}
	return groups
}

func (d *decoder) answers(v *yaml.Node, a *AnswerSettings) {
	addr := func(v *yaml.Node, what string, want4 bool, dst *netip.Addr) {
		s, ok := d.str(v, what)
		if !ok {
			return
		}
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			d.errorf(v, "%s: bad IP address %q", what, s)
			return
		}
		if ip.Unmap().Is4() != want4 {
			family := "an IPv6"
			if want4 {
				family = "an IPv4"
			}
			d.errorf(v, "%s: %q is not %s address", what, s, family)
			return
		}
		*dst = ip.Unmap()
	}
	d.mapping(v, "answers", map[string]field{
		"ttl": func(v *yaml.Node) {
			d.duration(v, "answers.ttl", &a.TTL)
			if a.TTL > 0x7fffffff*time.Second {
				d.errorf(v, "answers.ttl: %s is over the largest DNS TTL", a.TTL)
			}
		},
		"sinkhole_ipv4": func(v *yaml.Node) { addr(v, "answers.sinkhole_ipv4", true, &a.SinkholeIPv4) },
		"sinkhole_ipv6": func(v *yaml.Node) { addr(v, "answers.sinkhole_ipv6", false, &a.SinkholeIPv6) },
		"sinkhole_mx": func(v *yaml.Node) {
			if name, ok := d.hostName(v, "answers.sinkhole_mx"); ok {
				a.SinkholeMX = name + "."
			}
		},
	})
}

// hostName reads a host name, normalized; a wildcard is an error.
func (d *decoder) hostName(v *yaml.Node, what string) (string, bool) {
	s, ok := d.str(v, what)
	if !ok {
		return "", false
	}
	name, below, err := normalizeDomain(s)
	if err == nil && below {
		err = fmt.Errorf("a host name cannot be a wildcard")
	}
	if err != nil {
		d.errorf(v, "%s: %v", what, err)
		return "", false
	}
	return name, true
}

// types reads a list of record types into the rule's set and list.
func (d *decoder) types(v *yaml.Node, what string) ([]uint16, typeSet) {
	var list []uint16
	var set typeSet
	items := d.list(v, what)
	if resolve(v).Kind == yaml.SequenceNode && len(items) == 0 {
		d.errorf(v, "%s: empty list (leave the key out for every type)", what)
	}
	for _, item := range items {
		s, ok := d.str(item, what)
		if !ok {
			continue
		}
		t, err := ParseType(s)
		if err != nil {
			d.errorf(item, "%s: %v", what, err)
			continue
		}
		if !set.has(t) || !set.some {
			list = append(list, t)
		}
		set.add(t)
	}
	return list, set
}

func (d *decoder) rule(n *yaml.Node, now time.Time) rawRule {
	r := rawRule{Rule: Rule{Pos: d.pos(n)}}
	hasName := false
	d.mapping(n, "rule", map[string]field{
		"name": func(v *yaml.Node) {
			if s, ok := d.str(v, "rule name"); ok {
				if strings.TrimSpace(s) == "" {
					d.errorf(v, "rule name: empty")
				}
				r.Name, hasName = s, true
			}
		},
		"domains": func(v *yaml.Node) {
			r.hasDomains = true
			d.strs(v, "domains", func(n *yaml.Node, s string) {
				r.domainNodes = append(r.domainNodes, n)
			})
		},
		"domains_from": func(v *yaml.Node) {
			r.hasDomains = true
			for _, item := range d.list(v, "domains_from") {
				if path, format, ok := d.listFile(item); ok {
					r.listNodes = append(r.listNodes, item)
					r.DomainsFrom = append(r.DomainsFrom, path)
					r.ListFormats = append(r.ListFormats, format)
				}
			}
		},
		"types": func(v *yaml.Node) { r.Types, r.types = d.types(v, "types") },
		"action": func(v *yaml.Node) {
			r.hasAction = true
			d.scalar(v, "action", func(s string) (err error) {
				r.Action, err = ParseAction(s)
				return err
			})
		},
		"mode": func(v *yaml.Node) {
			d.scalar(v, "mode", func(s string) (err error) {
				r.Mode, err = ParseMode(s)
				return err
			})
		},
		"clients": func(v *yaml.Node) {
			d.strs(v, "clients", func(n *yaml.Node, s string) {
				r.clientNodes = append(r.clientNodes, n)
				r.Clients = append(r.Clients, s)
			})
		},
		"servers": func(v *yaml.Node) {
			d.strs(v, "servers", func(n *yaml.Node, s string) {
				if hp, ok := d.upstream(n, s, "servers"); ok {
					r.Servers = append(r.Servers, hp)
				}
			})
		},
		"reason": func(v *yaml.Node) { r.Reason, _ = d.str(v, "reason") },
		"owner":  func(v *yaml.Node) { r.Owner, _ = d.str(v, "owner") },
		"expires": func(v *yaml.Node) {
			v = resolve(v)
			if v.Kind != yaml.ScalarNode || (v.Tag != "!!str" && v.Tag != "!!timestamp") {
				d.errorf(v, "expires: want a date such as 2027-06-30, got %s", describe(v))
				return
			}
			t, err := time.Parse(time.DateOnly, v.Value)
			if err != nil {
				d.errorf(v, "expires: bad date %q (want YYYY-MM-DD)", v.Value)
				return
			}
			r.Expires = t
			// The rule holds through the whole of its last day, in UTC.
			r.Expired = !now.Before(t.Add(24 * time.Hour))
		},
	})
	if resolve(n).Kind != yaml.MappingNode {
		return r
	}
	if !hasName {
		d.errorf(n, "rule: needs a name (shown in logs, metrics and answers)")
	}
	if !r.hasAction {
		d.errorf(n, "rule %q: needs an action", r.Name)
	}
	if !r.hasDomains {
		d.errorf(n, "rule %q: needs domains or domains_from", r.Name)
	}
	switch {
	case r.Action == ActionForward && len(r.Servers) == 0:
		d.errorf(n, "rule %q: action forward needs servers", r.Name)
	case r.Action != ActionForward && len(r.Servers) > 0:
		d.errorf(n, "rule %q: servers apply only to action forward", r.Name)
	}
	return r
}

func (d *decoder) lookalikes(v *yaml.Node) LookalikeSettings {
	l := LookalikeSettings{Pos: d.pos(resolve(v)), Action: ActionNXDomain,
		Types: []uint16{TypeMX, TypeA, TypeAAAA, TypeANY}}
	for _, t := range l.Types {
		l.types.add(t)
	}
	seen := map[string]Position{}
	hasProtect := false
	d.mapping(v, "lookalikes", map[string]field{
		"protect": func(v *yaml.Node) {
			hasProtect = true
			d.strs(v, "lookalikes.protect", func(n *yaml.Node, s string) {
				name, err := protectedName(s)
				if err != nil {
					d.errorf(n, "lookalikes.protect: %v", err)
					return
				}
				if first, dup := seen[name]; dup {
					d.errorf(n, "lookalikes.protect: %s is already protected at line %d", name, first.Line)
					return
				}
				seen[name] = d.pos(n)
				l.Protect = append(l.Protect, name)
				l.ProtectPos = append(l.ProtectPos, d.pos(n))
			})
		},
		"allow": func(v *yaml.Node) {
			d.strs(v, "lookalikes.allow", func(n *yaml.Node, s string) {
				name, below, err := normalizeDomain(s)
				if err == nil && below {
					err = fmt.Errorf("allow names a domain and everything under it; write it without \"*.\"")
				}
				if err != nil {
					d.errorf(n, "lookalikes.allow: %v", err)
					return
				}
				l.Allow = append(l.Allow, name)
				l.AllowPos = append(l.AllowPos, d.pos(n))
			})
		},
		"types": func(v *yaml.Node) { l.Types, l.types = d.types(v, "lookalikes.types") },
		"action": func(v *yaml.Node) {
			if s, ok := d.str(v, "lookalikes.action"); ok {
				a, err := ParseAction(s)
				switch {
				case err != nil:
					d.errorf(v, "lookalikes.action: %v", err)
				case !a.Blocking():
					d.errorf(v, "lookalikes.action: %q does not block (want nxdomain, nodata, null-mx, sinkhole or refuse)", s)
				default:
					l.Action = a
				}
			}
		},
		"mode": func(v *yaml.Node) {
			d.scalar(v, "lookalikes.mode", func(s string) (err error) {
				l.Mode, err = ParseMode(s)
				return err
			})
		},
		"clients": func(v *yaml.Node) {
			d.strs(v, "lookalikes.clients", func(n *yaml.Node, s string) {
				l.clientNodes = append(l.clientNodes, n)
				l.Clients = append(l.Clients, s)
			})
		},
	})
	if resolve(v).Kind == yaml.MappingNode && !hasProtect {
		d.errorf(v, "lookalikes: needs protect, the domains whose lookalikes are blocked")
	}
	return l
}

// protectedName normalizes a lookalikes.protect entry, which must be a
// registrable domain: one label under a public suffix of the ICANN section
// of the public-suffix list.
func protectedName(s string) (string, error) {
	name, below, err := normalizeDomain(s)
	if err != nil {
		return "", err
	}
	if below {
		return "", fmt.Errorf("protect names a domain, not a wildcard")
	}
	suffix, ok := icannSuffix(name)
	switch {
	case !ok:
		return "", fmt.Errorf("%s: its top-level domain is not in the public-suffix list", name)
	case suffix == name:
		return "", fmt.Errorf("%s is a public suffix, not a domain an organisation writes to", name)
	}
	if label := name[:len(name)-len(suffix)-1]; strings.Contains(label, ".") {
		reg := label[strings.LastIndexByte(label, '.')+1:] + "." + suffix
		return "", fmt.Errorf("%s is below its registrable domain %s: protect %s, which covers every name under it", name, reg, reg)
	}
	return name, nil
}

func (d *decoder) testCase(n *yaml.Node) TestCase {
	tc := TestCase{Type: TypeA, Pos: d.pos(n)}
	hasName, hasExpect := false, false
	d.mapping(n, "test", map[string]field{
		"name": func(v *yaml.Node) {
			hasName = true
			d.scalar(v, "test name", func(s string) error {
				name, below, err := normalizeDomain(s)
				if err == nil && below {
					err = errors.New("a test asks for one name, not a wildcard")
				}
				tc.Name = name
				return err
			})
		},
		"type": func(v *yaml.Node) {
			d.scalar(v, "test type", func(s string) (err error) {
				tc.Type, err = ParseType(s)
				return err
			})
		},
		"client": func(v *yaml.Node) {
			d.scalar(v, "test client", func(s string) error {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("bad IP address %q", s)
				}
				tc.Client = a.Unmap()
				return nil
			})
		},
		"expect": func(v *yaml.Node) {
			hasExpect = true
			d.scalar(v, "test expect", func(s string) (err error) {
				if tc.Expect, err = ParseAction(s); err != nil {
					return fmt.Errorf("unknown expectation %q (want one of %s)", s, strings.Join(actionNames[:], ", "))
				}
				return nil
			})
		},
	})
	if resolve(n).Kind == yaml.MappingNode {
		if !hasName {
			d.errorf(n, "test: needs a name")
		}
		if !hasExpect {
			d.errorf(n, "test: needs expect")
		}
	}
	return tc
}
