package main

import (
	"fmt"
	"net/netip"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// A live test asks a running typoguard each of the policy's test cases
// over DNS (resolver.Probe) and compares the kind of answer with the one
// the case's expected action gives its type.

// expectedKind is the answer typoguard gives a query of qtype under
// action, as the live server shows it: an action with no records for the
// type answers NODATA.
func expectedKind(a policy.Action, qtype uint16, ans policy.AnswerSettings) resolver.ProbeKind {
	switch a {
	case policy.ActionNXDomain:
		return resolver.ProbeNXDomain
	case policy.ActionNoData:
		return resolver.ProbeNoData
	case policy.ActionRefuse:
		return resolver.ProbeRefuse
	case policy.ActionNullMX:
		if qtype == policy.TypeMX {
			return resolver.ProbeNullMX
		}
		return resolver.ProbeNoData
	case policy.ActionSinkhole:
		switch {
		case qtype == policy.TypeMX,
			qtype == policy.TypeA && ans.SinkholeIPv4.IsValid(),
			qtype == policy.TypeAAAA && ans.SinkholeIPv6.IsValid():
			return resolver.ProbeSinkhole
		}
		return resolver.ProbeNoData
	}
	return resolver.ProbeAllow // allow, forward, and a monitor-mode block
}

// liveResult is the outcome of one test case asked of a live server.
type liveResult struct {
	c       policy.TestCase
	want    resolver.ProbeKind
	got     resolver.ProbeKind
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

// runLive asks the typoguard at server each of p's test cases. A case with
// a client is asked from that address when it is a loopback one and the
// server is on loopback too (a test machine has all of 127.0.0.0/8);
// otherwise it is skipped, since the server sees the address it comes from.
func runLive(p *policy.Policy, server string) []liveResult {
	out := make([]liveResult, len(p.Tests))
	srv, srvErr := netip.ParseAddrPort(server)
	for i, c := range p.Tests {
		r := liveResult{c: c, want: expectedKind(c.Expect, c.Type, p.Answers)}
		var from netip.Addr
		if c.Client.IsValid() {
			if srvErr != nil || !c.Client.IsLoopback() || !srv.Addr().IsLoopback() || c.Client.Is4() != srv.Addr().Is4() {
				r.skipped = fmt.Sprintf("the server sees queries from this machine's address, not %s", c.Client)
				out[i] = r
				continue
			}
			from = c.Client
		}
		got, err := resolver.Probe(server, from, c.Name, c.Type)
		r.got, r.text, r.err = got.Kind, got.Text, err
		out[i] = r
	}
	return out
}
