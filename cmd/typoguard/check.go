package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// configFlag adds the -config flag to fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "the policy `FILE` (YAML)")
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
	printLookalikeSummary(w, p)
	upstreams := strings.Join(p.Upstreams, ", ")
	if len(p.Upstreams) == 0 {
		upstreams = systemUpstreamsText()
	}
	fmt.Fprintf(w, "  upstreams:     %s (timeout %s)\n", upstreams, p.UpstreamTimeout)
	fmt.Fprintf(w, "  listen:        %s\n", strings.Join(p.Listen, ", "))
	if e := p.Explainer; e.Configured() {
		fmt.Fprintf(w, "  explainer:     SMTP on %s as %s: every recipient refused with the reason (max %d connections, %d per client; timeout %s)\n",
			strings.Join(e.Listen, ", "), e.Hostname, e.MaxConnections, e.MaxPerClient, e.Timeout)
	}
	printExportSize(w, p)
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

// systemUpstreamsText names the upstreams a policy without upstreams
// uses: the nameservers of /etc/resolv.conf, as serve reads them now.
func systemUpstreamsText() string {
	sys, err := resolver.SystemUpstreams("/etc/resolv.conf")
	if err != nil {
		return fmt.Sprintf("the nameservers of /etc/resolv.conf, which cannot be read (%v)", err)
	}
	return "the nameservers of /etc/resolv.conf: " + strings.Join(sys, ", ")
}

// printExportSize says how large typoguard export, and the rpz zone, of p
// would be.
func printExportSize(w io.Writer, p *policy.Policy) {
	n, scoped := p.ExportSize()
	widened := ""
	if scoped > 0 {
		widened = fmt.Sprintf("; %d more with -widen-types (rpz.widen_types)", scoped)
	}
	if p.RPZ.Configured() && p.RPZ.WidenTypes {
		n, widened = n+scoped, " (rpz.widen_types: type-scoped rules included)"
	}
	fmt.Fprintf(w, "  export:        at most %d entries%s: an rpz record or a postfix line each, a hosts or plain line for at most half\n", n, widened)
	if n > policy.DefaultMaxExportRecords {
		fmt.Fprintf(w, "                 over the %d that export writes unless -max-records says more\n", policy.DefaultMaxExportRecords)
	}
	if r := p.RPZ; r.Configured() && n > r.MaxRecords {
		fmt.Fprintf(w, "                 over rpz.max_records (%d): the zone may not be served\n", r.MaxRecords)
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

// printLookalikeSummary describes lookalike protection: what it protects,
// how it answers, and how many listed variants of each kind it blocks.
func printLookalikeSummary(w io.Writer, p *policy.Policy) {
	rules := p.LookalikeRules()
	if len(rules) == 0 {
		return
	}
	l := p.Lookalikes
	types := make([]string, len(l.Types))
	for i, t := range l.Types {
		types[i] = policy.TypeString(t)
	}
	who := "every client"
	if len(l.Clients) > 0 {
		who = "clients " + strings.Join(l.Clients, ",")
	}
	fmt.Fprintf(w, "  lookalikes:    of %s: %s (%s) for %s; %s\n", strings.Join(l.Protect, ", "), l.Action, l.Mode, strings.Join(types, ","), who)
	counts := p.LookalikeCounts()
	total := 0
	var parts []string
	for _, k := range policy.Kinds() {
		if n := counts[k]; n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	fmt.Fprintf(w, "                 %d listed variants: %s\n", total, strings.Join(parts, ", "))
	fmt.Fprintln(w, "                 and by rule: dot games under any suffix, Unicode look-alikes, every name under a lookalike")
	if len(l.Allow) > 0 {
		fmt.Fprintf(w, "                 never blocked as lookalikes: %s\n", strings.Join(l.Allow, ", "))
	}
	fmt.Fprintf(w, "                 review them with: typoguard lookalikes -config %s\n", p.File)
}
