package resolver

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ProbeKind is what a typoguard answer shows of the action behind it.
type ProbeKind string

// The kinds of answer Probe tells apart.
const (
	ProbeAllow    ProbeKind = "allowed (an upstream's answer)"
	ProbeNXDomain ProbeKind = "nxdomain"
	ProbeNoData   ProbeKind = "nodata"
	ProbeNullMX   ProbeKind = "null-mx"
	ProbeSinkhole ProbeKind = "sinkhole"
	ProbeRefuse   ProbeKind = "refuse"
)

// Probed is a live typoguard's answer to one query: its kind, and the text
// of typoguard's Extended DNS Error when it made the answer up itself.
type Probed struct {
	Kind ProbeKind
	Text string
}

// probeTimeout bounds one exchange of Probe.
const probeTimeout = 3 * time.Second

// Probe asks the typoguard at server (ip:port) for name and qtype, from
// the address from (the zero Addr: any), with EDNS over UDP and again over
// TCP when the answer is truncated, and reads the answer by its shape.
// Every answer typoguard makes up carries an Extended DNS Error whose text
// begins "typoguard" (RFC 8914); an answer without one came from the
// upstreams, so the name was allowed.
func Probe(server string, from netip.Addr, name string, qtype uint16) (Probed, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(1232, false)
	c := &dns.Client{Timeout: probeTimeout}
	if from.IsValid() {
		c.Dialer = &net.Dialer{Timeout: probeTimeout, LocalAddr: &net.UDPAddr{IP: from.AsSlice()}}
	}
	m, _, err := c.Exchange(q, server)
	if err == nil && m.Truncated {
		c.Net = "tcp"
		if from.IsValid() {
			c.Dialer.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
		}
		m, _, err = c.Exchange(q, server)
	}
	if err != nil {
		return Probed{}, fmt.Errorf("no answer from %s: %v", server, err)
	}
	p := probeKind(m)
	if p.Kind == ProbeAllow && m.Rcode == dns.RcodeRefused {
		return Probed{}, fmt.Errorf("%s refused the query: is this machine allowed by its acl?", server)
	}
	return p, nil
}

// probeKind reads what an answer shows.
func probeKind(m *dns.Msg) Probed {
	var text string
	found := false
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok && strings.HasPrefix(e.ExtraText, "typoguard") {
				text, found = e.ExtraText, true
			}
		}
	}
	switch {
	case !found:
		return Probed{Kind: ProbeAllow}
	case m.Rcode == dns.RcodeNameError:
		return Probed{ProbeNXDomain, text}
	case m.Rcode == dns.RcodeRefused:
		return Probed{ProbeRefuse, text}
	case m.Rcode != dns.RcodeSuccess:
		return Probed{ProbeKind(dns.RcodeToString[m.Rcode]), text}
	case len(m.Answer) == 0:
		return Probed{ProbeNoData, text}
	}
	if mx, ok := m.Answer[0].(*dns.MX); ok && len(m.Answer) == 1 && mx.Mx == "." && mx.Preference == 0 {
		return Probed{ProbeNullMX, text}
	}
	return Probed{ProbeSinkhole, text}
}
