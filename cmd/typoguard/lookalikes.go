package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/typoguard/typoguard/policy"
)

const lookalikesUsage = "usage: typoguard lookalikes [-config FILE] [DOMAIN...] [-check NAME...]"

// lookalikes prints, for review, what lookalike protection blocks for each
// protected domain, or with -check judges the names after it.
func lookalikes(args []string, stdout, stderr io.Writer) int {
	var names []string
	for i, a := range args {
		if a == "-check" || a == "--check" {
			args, names = args[:i], args[i+1:]
			if len(names) == 0 {
				fmt.Fprintln(stderr, lookalikesUsage)
				return 2
			}
			break
		}
	}
	fs := flag.NewFlagSet("lookalikes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := configFlag(fs)
	domains, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	var p *policy.Policy
	switch {
	case *config != "":
		p, err = loadPolicy(*config, true)
	case len(domains) > 0:
		p, err = policy.ForDomains(domains)
	default:
		fmt.Fprintln(stderr, lookalikesUsage)
		return 2
	}
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	if len(p.LookalikeRules()) == 0 {
		fmt.Fprintf(stderr, "typoguard lookalikes: %s has no lookalikes.protect\n", p.File)
		return 1
	}
	if names != nil {
		for _, n := range names {
			fmt.Fprintln(stdout, lookalikeVerdict(p, n))
		}
		return 0
	}
	if len(domains) == 0 {
		for _, r := range p.LookalikeRules() {
			domains = append(domains, r.Domains[0])
		}
	}
	for i, d := range domains {
		rep, ok := p.LookalikeVariants(d)
		if !ok {
			fmt.Fprintf(stderr, "typoguard lookalikes: %s is not protected by %s\n", d, p.File)
			return 1
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printLookalikeReport(stdout, rep)
	}
	for _, w := range p.Warnings() {
		if strings.Contains(w.Msg, "looks like") || strings.Contains(w.Msg, "lookalike") {
			fmt.Fprintln(stderr, w.String())
		}
	}
	return 0
}

// lookalikeVerdict says whether name is a lookalike, of what and how.
func lookalikeVerdict(p *policy.Policy, name string) string {
	if of, ok := p.ProtectedBy(name); ok {
		return name + ": protected (" + of + "), never blocked as a lookalike"
	}
	if l, ok := p.LookalikeExempted(name); ok {
		return fmt.Sprintf("%s: looks like %s (%s), but lookalikes.allow exempts it", name, l.Of, l)
	}
	l, ok := p.LookalikeOf(name)
	if !ok {
		return name + ": not a lookalike"
	}
	return fmt.Sprintf("%s: lookalike of %s (%s): %s is blocked with every name under it", name, l.Of, l, strings.ToLower(l.Name))
}

// printLookalikeReport lists one protected domain's lookalikes by kind,
// then the kinds matched by a rule with examples.
func printLookalikeReport(w io.Writer, r policy.LookalikeReport) {
	fmt.Fprintf(w, "%s: %d lookalikes listed in %d kinds, and %d kinds matched by rule\n", r.Protected, r.Count(), len(r.Listed), len(r.Matched))
	for _, g := range r.Listed {
		fmt.Fprintf(w, "  %s (%d):\n", g.Kind, len(g.Names))
		printWrapped(w, "    ", g.Names)
	}
	fmt.Fprintln(w, "  matched by rule:")
	for _, m := range r.Matched {
		kind := m.Kind.String()
		if m.Kind == policy.KindNone {
			kind = "names under a lookalike"
		}
		fmt.Fprintf(w, "  %s: %s\n", kind, m.Rule)
		printWrapped(w, "    e.g. ", m.Examples)
	}
}

// printWrapped prints words after prefix, wrapped before column 100.
func printWrapped(w io.Writer, prefix string, words []string) {
	line := prefix
	indent := strings.Repeat(" ", len(prefix))
	for i, word := range words {
		if i > 0 && len(line)+1+len(word) > 100 {
			fmt.Fprintln(w, line)
			line = indent
		} else if i > 0 {
			line += " "
		}
		line += word
	}
	fmt.Fprintln(w, line)
}
