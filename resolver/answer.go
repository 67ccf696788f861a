package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
)

// ednsSize is the UDP payload size typoguard offers clients and asks of
// upstreams: the DNS Flag Day 2020 value that avoids IP fragmentation.
const ednsSize = 1232

// soaNS and soaMbox name typoguard in the SOA of synthesized answers; under
// .invalid (RFC 6761) they can never collide with a real zone.
const (
	soaNS   = "blocked.typoguard.invalid."
	soaMbox = "hostmaster.typoguard.invalid."
)

// synthesize builds the answer that the synthesizing plan pl gives to req,
// as the README's action table says: an SOA for owner in the authority
// section of every negative answer (RFC 2308 §3) and the configured TTL;
// its Extended DNS Error is blockEDE's. The server and `typoguard explain`
// both use it, so explain shows exactly what would be sent; the fast path
// writes the same reply straight to the wire (fastBlocked).
func synthesize(req *dns.Msg, pl *Plan, owner string, a policy.AnswerSettings) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = false
	m.RecursionAvailable = true
	m.Rcode = pl.Rcode
	q := req.Question[0]
	ttl := ttlSeconds(a.TTL)
	switch pl.Answer {
	case AnswerNullMX:
		if q.Qtype == dns.TypeMX {
			// RFC 7505 §3: a single MX with preference 0 and exchange ".".
			m.Answer = []dns.RR{&dns.MX{Hdr: hdr(q.Name, dns.TypeMX, ttl), Preference: 0, Mx: "."}}
		}
	case AnswerSinkhole:
		m.Answer, m.Extra = sinkholeRecords(q.Name, q.Qtype, ttl, a)
	}
	if m.Rcode != dns.RcodeRefused && len(m.Answer) == 0 {
		m.Ns = []dns.RR{negativeSOA(strings.ToLower(dns.Fqdn(owner)), ttl)}
	}
	return m
}

// blockEDE is the Extended DNS Error of a reply synthesized under pl for a
// query d decided: the plan's code and the rule's text (RFC 8914).
func blockEDE(pl *Plan, d policy.Decision) *dns.EDNS0_EDE {
	text := pl.text
	if text == "" {
		text = ruleText(d)
	}
	return &dns.EDNS0_EDE{InfoCode: pl.EDE, ExtraText: text}
}

// ruleText names the deciding rule for the EDE text: `typoguard rule
// "mali-is-not-mil" (nxdomain)`, or for a lookalike "typoguard: army.ml
// looks like army.mil (letter dropped from the suffix)".
func ruleText(d policy.Decision) string { return string(appendRuleText(nil, d)) }

// appendRuleText appends ruleText to b.
func appendRuleText(b []byte, d policy.Decision) []byte {
	switch {
	case d.Rule == nil:
		return append(b, "typoguard"...)
	case d.Lookalike.Kind != policy.KindNone:
		return d.AppendText(append(b, "typoguard: "...))
	}
	return d.AppendText(append(b, "typoguard "...))
}

// sinkholeRecords answers MX with the sinkhole exchange and its addresses,
// and A/AAAA with the sinkhole address; other types get nothing.
func sinkholeRecords(name string, qtype uint16, ttl uint32, a policy.AnswerSettings) (answer, extra []dns.RR) {
	addrs := func(owner string, want uint16) []dns.RR {
		var rrs []dns.RR
		if a.SinkholeIPv4.IsValid() && (want == dns.TypeA || want == dns.TypeANY) {
			rrs = append(rrs, &dns.A{Hdr: hdr(owner, dns.TypeA, ttl), A: net.IP(a.SinkholeIPv4.AsSlice())})
		}
		if a.SinkholeIPv6.IsValid() && (want == dns.TypeAAAA || want == dns.TypeANY) {
			rrs = append(rrs, &dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA, ttl), AAAA: net.IP(a.SinkholeIPv6.AsSlice())})
		}
		return rrs
	}
	switch qtype {
	case dns.TypeMX:
		return []dns.RR{&dns.MX{Hdr: hdr(name, dns.TypeMX, ttl), Preference: 10, Mx: a.SinkholeMX}},
			addrs(a.SinkholeMX, dns.TypeANY)
	case dns.TypeA, dns.TypeAAAA:
		return addrs(name, qtype), nil
	}
	return nil, nil
}

// sinkholeHostAnswer answers A and AAAA queries for the sinkhole exchange
// itself, so that a mail server following the sinkhole MX reaches the
// sinkhole address whatever the upstreams know of that name.
func sinkholeHostAnswer(req *dns.Msg, ps *plans, a policy.AnswerSettings) (*dns.Msg, bool) {
	q := req.Question[0]
	if ps.sinkholeHost == "" || (q.Qtype != dns.TypeA && q.Qtype != dns.TypeAAAA) || !strings.EqualFold(dns.Fqdn(q.Name), ps.sinkholeHost) {
		return nil, false
	}
	if (q.Qtype == dns.TypeA && !a.SinkholeIPv4.IsValid()) || (q.Qtype == dns.TypeAAAA && !a.SinkholeIPv6.IsValid()) {
		return nil, false
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.Answer, _ = sinkholeRecords(q.Name, q.Qtype, ttlSeconds(a.TTL), a)
	return m, true
}

// negativeSOA is the SOA of a synthesized negative answer; its MINIMUM and
// TTL are equal, so caches keep the answer for exactly ttl (RFC 2308 §5).
func negativeSOA(owner string, ttl uint32) *dns.SOA {
	return &dns.SOA{
		Hdr:     hdr(owner, dns.TypeSOA, ttl),
		Ns:      soaNS,
		Mbox:    soaMbox,
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  ttl,
	}
}

func hdr(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

func ttlSeconds(d time.Duration) uint32 {
	s := d / time.Second
	if s > 0x7fffffff {
		s = 0x7fffffff
	}
	return uint32(s)
}

// replyOPT is the OPT record of a reply, without options: typoguard's UDP
// size and the client's DO bit. finish adds it to every answer; only the
// replies to malformed queries, which finish does not shape, add it
// themselves (unpackQuery).
func replyOPT(do bool) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(ednsSize)
	o.SetDo(do)
	return o
}

// errorResult is a reply with rcode, for reason, and the Extended DNS
// Error code with text.
func errorResult(req *dns.Msg, rcode int, code uint16, text string, reason Reason) Result {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	return Result{Msg: m, EDE: &dns.EDNS0_EDE{InfoCode: code, ExtraText: text}, Reason: reason}
}

// failure turns what the upstreams gave for q into the reply to keep and
// answer: reply itself when it answers, else a SERVFAIL whose Extended DNS
// Error says why (RFC 8914): no upstream answered in time (22, No
// Reachable Authority), every try failed on the network (23, Network
// Error), or the upstreams answered SERVFAIL (their own EDE kept when they
// gave one) or REFUSED (22). addrs are the servers asked. The EDE travels
// in the message's OPT, which the cache keeps for a SERVFAIL, until
// failureEDE takes it out for the reply.
func failure(q, reply *dns.Msg, err error, addrs []string) *dns.Msg {
	servers := strings.Join(addrs, ", ")
	var ede *dns.EDNS0_EDE
	switch {
	case err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)):
		ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNoReachableAuthority, ExtraText: "typoguard: no upstream answered in time (" + servers + ")"}
	case err != nil:
		ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNetworkError, ExtraText: "typoguard: the upstreams could not be reached (" + servers + ")"}
	case reply.Rcode == dns.RcodeServerFailure:
		if ede = failureEDE(reply); ede == nil {
			ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNoReachableAuthority, ExtraText: "typoguard: the upstreams answered SERVFAIL (" + servers + ")"}
		}
	case reply.Rcode == dns.RcodeRefused:
		ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNoReachableAuthority, ExtraText: "typoguard: the upstreams refused the query (" + servers + ")"}
	case cnameLoop(q.Question[0].Name, reply.Answer):
		ede = &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeOther, ExtraText: "typoguard: the upstreams answered a CNAME loop (" + servers + ")"}
	default:
		return reply
	}
	m := new(dns.Msg)
	m.SetRcode(q, dns.RcodeServerFailure)
	m.Extra = []dns.RR{&dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}, Option: []dns.EDNS0{ede}}}
	return m
}

// cnameLoop reports whether the CNAME chain from name through answer comes
// back to a name it has passed (RFC 1034 §3.6.2: a chain must end).
func cnameLoop(name string, answer []dns.RR) bool {
	next := map[string]string{}
	for _, rr := range answer {
		if c, ok := rr.(*dns.CNAME); ok {
			next[strings.ToLower(c.Hdr.Name)] = strings.ToLower(c.Target)
		}
	}
	seen := map[string]bool{}
	for n := strings.ToLower(name); ; {
		if seen[n] {
			return true
		}
		seen[n] = true
		t, ok := next[n]
		if !ok {
			return false
		}
		n = t
	}
}

// failureEDE is the Extended DNS Error in m's OPT, if it has one.
func failureEDE(m *dns.Msg) *dns.EDNS0_EDE {
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				return e
			}
		}
	}
	return nil
}

// Explanation is what the policy alone does with one query, for
// `typoguard explain`.
type Explanation struct {
	Name     string // the query name, fully qualified
	Decision policy.Decision
	Plan     Plan // what the server does with the query
	// Answered is true when typoguard answers from policy (a block or the
	// sinkhole host); Reply then holds the exact reply in dig's format, as
	// sent over TCP to a client that asked with EDNS.
	Answered bool
	Reason   Reason
	Reply    string
}

// Explain decides a query of qtype for name from client under p, and builds
// the reply with the same code the server answers with; upstreams are
// where queries no rule sends elsewhere go (nil: the system's, unread).
func Explain(p *policy.Policy, upstreams []string, client netip.Addr, name string, qtype uint16) (Explanation, error) {
	if _, ok := dns.IsDomainName(name); !ok {
		return Explanation{}, fmt.Errorf("%q is not a domain name", name)
	}
	req := new(dns.Msg)
	req.SetQuestion(dns.Fqdn(name), qtype)
	req.Id = 0
	req.SetEdns0(ednsSize, false)
	ps := compilePlans(p, upstreams)
	res, answered := policyAnswer(p, &ps, client, req)
	e := Explanation{Name: req.Question[0].Name, Decision: res.Decision, Plan: *ps.of(res.Decision), Answered: answered, Reason: res.Reason}
	if answered {
		e.Reply = finish(req, res.Msg, res.EDE, false).String()
	}
	return e, nil
}

// SystemUpstreams reads the nameservers of a resolv.conf file as host:port.
func SystemUpstreams(path string) ([]string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []string
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names no nameserver", path)
	}
	return out, nil
}
