package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// configFlag adds the -config flag to fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "policy file (YAML)")
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := configFlag(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if *config == "" || len(pos) > 0 {
		fmt.Fprintln(stderr, "usage: typoguard check -config FILE")
		return 2
	}
	p, err := loadPolicy(*config, false)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	printSummary(stdout, p, time.Now())
	return 0
}

// printSummary describes a valid policy: what it blocks, for whom, which
// exceptions hold and until when, and its warnings.
func printSummary(w io.Writer, p *policy.Policy, now time.Time) {
	rules := p.Rules()
	var blocks, exceptions, forwards, monitors, fromLists int
	for i := range rules {
		r := &rules[i]
		switch {
		case r.Action.Blocking():
			blocks++
		case r.Action == policy.ActionAllow:
			exceptions++
		case r.Action == policy.ActionForward:
			forwards++
		}
		if r.Mode == policy.ModeMonitor && r.Action.Blocking() {
			monitors++
		}
		fromLists += len(r.DomainsFrom)
	}
	fmt.Fprintf(w, "%s: OK\n", p.File)
	fmt.Fprintf(w, "  rules:         %d (%d block, %d allow, %d forward; %d in monitor mode)\n", len(rules), blocks, exceptions, forwards, monitors)
	fmt.Fprintf(w, "  domains:       %d distinct; list files: %d\n", p.DomainCount(), fromLists)
	width := 0
	for i := range rules {
		width = max(width, len(rules[i].Name))
	}
	for i := range rules {
		r := &rules[i]
		types := "every type"
		if len(r.Types) > 0 {
			names := make([]string, len(r.Types))
			for j, t := range r.Types {
				names[j] = policy.TypeString(t)
			}
			types = strings.Join(names, ",")
		}
		who := "every client"
		if len(r.Clients) > 0 {
			who = "clients " + strings.Join(r.Clients, ",")
		}
		what := r.Action.String()
		if r.Mode == policy.ModeMonitor {
			what += " (monitor)"
		}
		fmt.Fprintf(w, "    %-*s line %-4d %-18s %s; %s; %s\n", width, r.Name, r.Pos.Line, what, domainsText(r), types, who)
	}
	if len(p.ClientGroups) > 0 {
		var groups []string
		for _, g := range p.ClientGroups {
			groups = append(groups, fmt.Sprintf("%s (%d networks)", g.Name, len(g.Prefixes)))
		}
		fmt.Fprintf(w, "  client groups: %s\n", strings.Join(groups, ", "))
	}
	if exceptions > 0 {
		fmt.Fprintln(w, "  exceptions:")
		for i := range rules {
			r := &rules[i]
			if !r.Exception() {
				continue
			}
			until := "never expires"
			if !r.Expires.IsZero() {
				days := int(math.Ceil(r.Expires.Add(24*time.Hour).Sub(now).Hours() / 24))
				until = fmt.Sprintf("expires %s (%d days left)", r.Expires.Format(time.DateOnly), days)
			}
			fmt.Fprintf(w, "    %s: %s; %s", r.Name, domainsText(r), until)
			if r.Owner != "" {
				fmt.Fprintf(w, "; owner %s", r.Owner)
			}
			if r.Reason != "" {
				fmt.Fprintf(w, "; reason %q", r.Reason)
			}
			fmt.Fprintln(w)
		}
	}
	upstreams := "the nameservers of /etc/resolv.conf"
	if len(p.Upstreams) > 0 {
		upstreams = strings.Join(p.Upstreams, ", ")
	}
	fmt.Fprintf(w, "  upstreams:     %s (timeout %s)\n", upstreams, p.UpstreamTimeout)
	fmt.Fprintf(w, "  listen:        %s\n", strings.Join(p.Listen, ", "))
	fmt.Fprintf(w, "  tests:         %d (run them with: typoguard test -config %s)\n", len(p.Tests), p.File)
	if blocks > 0 {
		fmt.Fprintln(w, "  note: answers for blocked names are made by typoguard and cannot validate under DNSSEC.")
		fmt.Fprintln(w, "        Let mail servers ask typoguard directly; a validating resolver in between turns them")
		fmt.Fprintln(w, "        into SERVFAIL (mail deferred, not bounced) unless it has a negative trust anchor")
		fmt.Fprintln(w, "        (RFC 7646) for the blocked zones.")
	}
	for _, warn := range p.Warnings() {
		fmt.Fprintln(w, warn.String())
	}
}

// domainsText lists a rule's domains briefly.
func domainsText(r *policy.Rule) string {
	parts := r.Domains
	if len(parts) > 3 {
		parts = append(append([]string(nil), parts[:3]...), fmt.Sprintf("+%d more", len(r.Domains)-3))
	}
	s := strings.Join(parts, ",")
	if len(r.DomainsFrom) > 0 {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("+%d from %s", r.DomainCount-len(r.Domains), strings.Join(r.DomainsFrom, ","))
	}
	return s
}

func explain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := configFlag(fs)
	clientFlag := fs.String("client", "127.0.0.1", "client address the query comes from")
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
	e, err := resolver.Explain(p, client.Unmap(), pos[0], qtype)
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
		if d.Rule.Exception() && (d.Rule.Reason != "" || d.Rule.Owner != "" || !d.Rule.Expires.IsZero()) {
			fmt.Fprintf(w, "why:      %q, owner %s, expires %s\n", d.Rule.Reason, d.Rule.Owner, expiresText(d.Rule))
		}
	} else {
		fmt.Fprintln(w, "rule:     none applies")
	}
	upstreams := "the nameservers of /etc/resolv.conf"
	if len(p.Upstreams) > 0 {
		upstreams = strings.Join(p.Upstreams, ", ")
	}
	switch {
	case e.Answered && e.Reason == resolver.ReasonBlocked:
		fmt.Fprintf(w, "decision: blocked: answered %s by typoguard, never forwarded\n", d.Action)
	case e.Answered:
		fmt.Fprintln(w, "decision: answered by typoguard: the sinkhole exchange's address")
	case d.WouldBlock():
		fmt.Fprintf(w, "decision: allowed and forwarded to %s; the rule is in monitor mode, so it is logged as \"would block\" (%s)\n", upstreams, d.Action)
	case d.Action == policy.ActionForward:
		fmt.Fprintf(w, "decision: forwarded to the rule's servers %s\n", strings.Join(d.Rule.Servers, ", "))
	default:
		fmt.Fprintf(w, "decision: allowed and forwarded to %s\n", upstreams)
	}
	if !e.Answered {
		fmt.Fprintln(w, "answer:   whatever the upstream answers, unless a CNAME, DNAME, MX or SRV in it leads into a blocked name")
		return
	}
	fmt.Fprintf(w, "answer (as sent to a client that asked with EDNS):\n%s", e.Reply)
}

func expiresText(r *policy.Rule) string {
	if r.Expires.IsZero() {
		return "never"
	}
	return r.Expires.Format(time.DateOnly)
}

func runTests(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := configFlag(fs)
	verbose := fs.Bool("v", false, "print every case, not only failures")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if *config == "" || len(pos) > 0 {
		fmt.Fprintln(stderr, "usage: typoguard test -config FILE [-v]")
		return 2
	}
	p, err := loadPolicy(*config, false)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	passed, failed := 0, 0
	for _, r := range p.RunTests() {
		if r.Pass {
			passed++
			if *verbose {
				fmt.Fprintln(stdout, r.String())
			}
			continue
		}
		failed++
		fmt.Fprintln(stdout, r.String())
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}
