package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/typoguard/typoguard/explainer"
	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// explainFlags defines explain's flags on fs.
func explainFlags(fs *flag.FlagSet) (config, client *string) {
	return configFlag(fs), fs.String("client", "127.0.0.1", "the client `IP` the query comes from")
}

func explain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config, clientFlag := explainFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) < 1 || len(pos) > 2 {
		fmt.Fprintln(stderr, "usage: typoguard explain -config FILE [-client IP] NAME [TYPE]")
		return 2
	}
	client, err := netip.ParseAddr(*clientFlag)
	if err != nil {
		fmt.Fprintf(stderr, "typoguard explain: bad -client %q: %v\n", *clientFlag, err)
		return 2
	}
	qtype := policy.TypeA
	if len(pos) == 2 {
		t, err := policy.ParseType(pos[1])
		if err != nil {
			fmt.Fprintf(stderr, "typoguard explain: %v\n", err)
			return 2
		}
		qtype = t
	}
	p, err := loadPolicy(*config, false)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	e, err := resolver.Explain(p, p.Upstreams, client.Unmap(), pos[0], qtype)
	if err != nil {
		fmt.Fprintf(stderr, "typoguard explain: %v\n", err)
		return 2
	}
	printExplanation(stdout, p, client.Unmap(), qtype, e)
	return 0
}

// printExplanation prints the deciding rule and, for an answer from policy,
// the exact reply.
func printExplanation(w io.Writer, p *policy.Policy, client netip.Addr, qtype uint16, e resolver.Explanation) {
	fmt.Fprintf(w, "query:    %s %s from %s\n", e.Name, policy.TypeString(qtype), client)
	d := e.Decision
	if d.Rule != nil {
		fmt.Fprintf(w, "rule:     %q at %s (%s, %s)\n", d.Rule.Name, d.Rule.Pos, d.Rule.Action, d.Rule.Mode)
		fmt.Fprintf(w, "matched:  %s.\n", strings.TrimSuffix(strings.ToLower(d.Domain), "."))
		if d.Lookalike.Kind != policy.KindNone {
			fmt.Fprintf(w, "why:      %s\n", d.Text())
		}
		if d.Rule.Exception() && (d.Rule.Reason != "" || d.Rule.Owner != "" || !d.Rule.Expires.IsZero()) {
			fmt.Fprintf(w, "why:      %q, owner %s, expires %s\n", d.Rule.Reason, d.Rule.Owner, expiresText(d.Rule))
		}
	} else {
		fmt.Fprintln(w, "rule:     none applies")
	}
	pl := e.Plan
	upstreams := strings.Join(pl.Upstreams, ", ")
	if len(pl.Upstreams) == 0 {
		upstreams = systemUpstreamsText()
	}
	switch {
	case e.Answered && e.Reason == resolver.ReasonBlocked:
		fmt.Fprintf(w, "decision: blocked: answered %s by typoguard, never forwarded\n", d.Action)
	case e.Answered:
		fmt.Fprintln(w, "decision: answered by typoguard: the sinkhole exchange's address")
	case pl.Verdict != "":
		fmt.Fprintf(w, "decision: allowed and forwarded to %s; the rule is in monitor mode, so it is logged as %q (%s)\n", upstreams, pl.Verdict, d.Action)
	case pl.Route != "":
		fmt.Fprintf(w, "decision: forwarded to the rule's servers %s\n", upstreams)
	case d.Action == policy.ActionForward:
		fmt.Fprintf(w, "decision: allowed and forwarded to %s; the forward rule is in monitor mode, so it is not applied\n", upstreams)
	default:
		fmt.Fprintf(w, "decision: allowed and forwarded to %s\n", upstreams)
	}
	if d.Blocked() && d.Action == policy.ActionSinkhole {
		printBounce(w, p, client, e.Name)
	}
	if !e.Answered {
		fmt.Fprintln(w, "answer:   whatever the upstream answers, unless a CNAME, DNAME, MX or SRV in it leads into a blocked name")
		return
	}
	fmt.Fprintf(w, "answer (as sent to a client that asked with EDNS):\n%s", e.Reply)
}

// printBounce prints what a mail server sent to the sinkhole for mail to
// name is told: the explainer's reply, from the same decisions.
func printBounce(w io.Writer, p *policy.Policy, client netip.Addr, name string) {
	if !p.Explainer.Configured() {
		fmt.Fprintln(w, "bounce:   no explainer in this policy: a mail server sent to the sinkhole needs an SMTP responder there that refuses the mail, or it retries for days")
		return
	}
	r := explainer.Refuse(p, client, "user@"+strings.TrimSuffix(name, "."))
	fmt.Fprintf(w, "bounce:   a mail server sent to the sinkhole (%s) is refused at every recipient:\n          %s\n", strings.Join(p.Explainer.Listen, ", "), r)
}

func expiresText(r *policy.Rule) string {
	if r.Expires.IsZero() {
		return "never"
	}
	return r.Expires.Format(time.DateOnly)
}
