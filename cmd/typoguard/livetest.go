package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
)

// A live test asks a running typoguard each of the policy's test cases
// over DNS and judges the answer by its shape: typoguard marks every answer
// it makes up itself with an Extended DNS Error whose text begins
// "typoguard" (RFC 8914), so an answer without one came from the upstreams
// and the name was allowed.

// liveKind is what a live answer shows of the action behind it.
type liveKind string

const (
	liveAllow    liveKind = "allowed (an upstream's answer)"
	liveNXDomain liveKind = "nxdomain"
	liveNoData   liveKind = "nodata"
	liveNullMX   liveKind = "null-mx"
	liveSinkhole liveKind = "sinkhole"
	liveRefuse   liveKind = "refuse"
)

// expectedKind is the answer typoguard gives a query of qtype under
// action, as the live server shows it: an action with no records for the
// type answers NODATA.
func expectedKind(a policy.Action, qtype uint16, ans policy.AnswerSettings) liveKind {
	switch a {
	case policy.ActionNXDomain:
		return liveNXDomain
	case policy.ActionNoData:
		return liveNoData
	case policy.ActionRefuse:
		return liveRefuse
	case policy.ActionNullMX:
		if qtype == dns.TypeMX {
			return liveNullMX
		}
		return liveNoData
	case policy.ActionSinkhole:
		switch {
		case qtype == dns.TypeMX,
			qtype == dns.TypeA && ans.SinkholeIPv4.IsValid(),
			qtype == dns.TypeAAAA && ans.SinkholeIPv6.IsValid():
			return liveSinkhole
		}
		return liveNoData
	}
	return liveAllow // allow, forward, and a monitor-mode block
}

// answerKind reads what a live answer shows, and the text of typoguard's
// EDE when it has one.
func answerKind(m *dns.Msg) (liveKind, string) {
	var ede *dns.EDNS0_EDE
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok && strings.HasPrefix(e.ExtraText, "typoguard") {
				ede = e
			}
		}
	}
	if ede == nil {
		return liveAllow, ""
	}
	switch {
	case m.Rcode == dns.RcodeNameError:
		return liveNXDomain, ede.ExtraText
	case m.Rcode == dns.RcodeRefused:
		return liveRefuse, ede.ExtraText
	case m.Rcode != dns.RcodeSuccess:
		return liveKind(dns.RcodeToString[m.Rcode]), ede.ExtraText
	case len(m.Answer) == 0:
		return liveNoData, ede.ExtraText
	}
	if mx, ok := m.Answer[0].(*dns.MX); ok && len(m.Answer) == 1 && mx.Mx == "." && mx.Preference == 0 {
		return liveNullMX, ede.ExtraText
	}
	return liveSinkhole, ede.ExtraText
}

// liveResult is the outcome of one test case asked of a live server.
type liveResult struct {
	c       policy.TestCase
	want    liveKind
	got     liveKind
	text    string // typoguard's EDE text, if any
	err     error
	skipped string // why the case was not asked
}

func (r liveResult) pass() bool { return r.err == nil && r.skipped == "" && r.got == r.want }

func (r liveResult) String() string {
	c := r.c
	head := fmt.Sprintf("%s: %s %s", c.Pos, c.Name, policy.TypeString(c.Type))
	if c.Client.IsValid() {
		head += " from " + c.Client.String()
	}
	switch {
	case r.skipped != "":
		return head + ": skipped: " + r.skipped
	case r.err != nil:
		return fmt.Sprintf("%s: FAIL: %v", head, r.err)
	}
	got := string(r.got)
	if r.text != "" {
		got += fmt.Sprintf(" (%s)", r.text)
	}
	if r.pass() {
		return fmt.Sprintf("%s: ok: %s", head, got)
	}
	return fmt.Sprintf("%s: FAIL: the server answered %s, want %s", head, got, r.want)
}

// liveTimeout bounds one exchange with the live server.
const liveTimeout = 3 * time.Second

// runLive asks the typoguard at server each of p's test cases. A case with
// a client is asked from that address when it is a loopback one and the
// server is on loopback too (a test machine has all of 127.0.0.0/8);
// otherwise it is skipped, since the server sees the address it comes from.
func runLive(p *policy.Policy, server string) []liveResult {
	out := make([]liveResult, len(p.Tests))
	srv, srvErr := netip.ParseAddrPort(server)
	for i, c := range p.Tests {
		r := liveResult{c: c, want: expectedKind(c.Expect, c.Type, p.Answers)}
		var local net.Addr
		if c.Client.IsValid() {
			if srvErr != nil || !c.Client.IsLoopback() || !srv.Addr().IsLoopback() || c.Client.Is4() != srv.Addr().Is4() {
				r.skipped = fmt.Sprintf("the server sees queries from this machine's address, not %s", c.Client)
				out[i] = r
				continue
			}
			local = &net.UDPAddr{IP: c.Client.AsSlice()}
		}
		m, err := askLive(server, local, c.Name, c.Type)
		if err != nil {
			r.err = err
		} else {
			r.got, r.text = answerKind(m)
		}
		out[i] = r
	}
	return out
}

// askLive sends one query with EDNS (for typoguard's EDE) over UDP from
// local (nil: any address), and again over TCP when the answer is
// truncated.
func askLive(server string, local net.Addr, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(1232, false)
	c := &dns.Client{Timeout: liveTimeout}
	if local != nil {
		c.Dialer = &net.Dialer{Timeout: liveTimeout, LocalAddr: local}
	}
	m, _, err := c.Exchange(q, server)
	if err == nil && m.Truncated {
		c.Net = "tcp"
		if local != nil {
			c.Dialer.LocalAddr = &net.TCPAddr{IP: local.(*net.UDPAddr).IP}
		}
		m, _, err = c.Exchange(q, server)
	}
	if err != nil {
		return nil, fmt.Errorf("no answer from %s: %v", server, err)
	}
	if m.Rcode == dns.RcodeRefused && len(m.Answer) == 0 {
		if kind, _ := answerKind(m); kind == liveAllow {
			return nil, fmt.Errorf("%s refused the query: is this machine allowed by its acl?", server)
		}
	}
	return m, nil
}
