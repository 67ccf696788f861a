package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// command is one of typoguard's commands, described once: the dispatcher,
// the usage text, `typoguard help`, the shell completions and the man page
// all read it, and the command parses its arguments with the same flags.
type command struct {
	name    string
	args    string // the synopsis after the name
	summary string // what it does, in one line
	// flags defines the command's flags on fs; the command itself calls it
	// for the values, the help for the names, defaults and text.
	flags func(fs *flag.FlagSet)
	// trailing is a flag the command reads by hand, after every other
	// argument (lookalikes -check NAME...): shown, not parsed by fs.
	trailing *flag.Flag
	run      func(args []string, stdout, stderr io.Writer) int
}

// commands in the order the help lists them. Filled in init: the
// commands' functions read it for their usage lines.
var commands []command

func init() {
	commands = []command{
		{name: "serve", args: "[-config FILE] [-listen ADDR]... [-cpuprofile FILE]",
			summary: "run the resolver (no -config: the embedded default on 127.0.0.1:5300)",
			flags:   func(fs *flag.FlagSet) { serveFlags(fs) },
			run:     func(args []string, _, stderr io.Writer) int { return serve(args, stderr) }},
		{name: "check", args: "-config FILE", summary: "validate a policy: summary, warnings, every error",
			flags: func(fs *flag.FlagSet) { configFlag(fs) }, run: check},
		{name: "explain", args: "-config FILE [-client IP] NAME [TYPE]", summary: "which rule decides a query, and the exact answer",
			flags: func(fs *flag.FlagSet) { explainFlags(fs) }, run: explain},
		{name: "test", args: "-config FILE [-server ADDR] [-v]", summary: "run the policy's tests: offline, or against a live typoguard",
			flags: func(fs *flag.FlagSet) { testFlags(fs) }, run: runTests},
		{name: "lookalikes", args: "[-config FILE] [DOMAIN...] [-check NAME...]",
			summary:  "the lookalikes typoguard blocks, by kind; -check judges names",
			flags:    func(fs *flag.FlagSet) { configFlag(fs) },
			trailing: &flag.Flag{Name: "check", Usage: "judge each `NAME` after it: a lookalike of what and how, protected, exempted, or none"},
			run:      lookalikes},
		{name: "export", args: "-config FILE -format rpz|postfix|hosts|plain [-o FILE] [-zone NAME] [-widen-types] [-max-records N]",
			summary: "the policy's blocking decisions for other resolvers and mail relays",
			flags:   func(fs *flag.FlagSet) { exportFlags(fs) }, run: export},
		{name: "version", summary: "the version, VCS revision and Go it was built with (also -version)",
			run: func(_ []string, stdout, _ io.Writer) int { return printVersion(stdout) }},
		{name: "help", args: "[COMMAND]", summary: "this list, or one command's usage and flags", run: help},
		{name: "completion", args: "bash|zsh", summary: "a shell completion script for typoguard's commands and flags", run: completion},
		{name: "man", summary: "typoguard's man page, in roff (man -l <(typoguard man))", run: manPage},
	}
}

// lookup returns the command called name.
func lookup(name string) (*command, bool) {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i], true
		}
	}
	return nil, false
}

// usageText is the list of commands `typoguard help` prints.
func usageText() string {
	var b strings.Builder
	b.WriteString("typoguard: a DNS resolver that makes mail to lookalike domains fail closed\n\nusage:\n")
	for _, c := range commands {
		line := "  typoguard " + c.name
		if c.args != "" {
			line += " " + c.args
		}
		if len(line) > 54 {
			fmt.Fprintf(&b, "%s\n%55s%s\n", line, "", c.summary)
		} else {
			fmt.Fprintf(&b, "%-55s%s\n", line, c.summary)
		}
	}
	b.WriteString("\n`typoguard help COMMAND` shows a command's flags.\n")
	return b.String()
}

// flagsOf returns a command's flags, sorted by name, the trailing one
// last.
func (c *command) flagsOf() []*flag.Flag {
	var out []*flag.Flag
	if c.flags != nil {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.flags(fs)
		fs.VisitAll(func(f *flag.Flag) { out = append(out, f) })
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if c.trailing != nil {
		out = append(out, c.trailing)
	}
	return out
}

// takesFile reports a flag whose argument is a file (its text names it
// `FILE`), for completion.
func takesFile(f *flag.Flag) bool {
	arg, _ := flag.UnquoteUsage(f)
	return arg == "FILE"
}

// help prints the command list, or one command's usage and flags.
func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usageText())
		return 0
	}
	c, ok := lookup(args[0])
	if len(args) > 1 || !ok {
		fmt.Fprintf(stderr, "typoguard help: no command %q\n\n%s", strings.Join(args, " "), usageText())
		return 2
	}
	fmt.Fprintf(stdout, "usage: typoguard %s %s\n\n%s.\n", c.name, c.args, capitalize(c.summary))
	if fl := c.flagsOf(); len(fl) > 0 {
		fmt.Fprintln(stdout, "\nflags:")
		for _, f := range fl {
			arg, usage := flag.UnquoteUsage(f)
			head := "  -" + f.Name
			if arg != "" {
				head += " " + arg
			}
			fmt.Fprintf(stdout, "%s\n      %s", head, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
				fmt.Fprintf(stdout, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stdout)
		}
	}
	return 0
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// completion writes the completion script for the shell named.
func completion(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		fmt.Fprintln(stderr, "usage: typoguard completion bash|zsh")
		return 2
	}
	if args[0] == "bash" {
		fmt.Fprint(stdout, bashCompletion())
	} else {
		fmt.Fprint(stdout, zshCompletion())
	}
	return 0
}

// bashCompletion completes the command name, then the command's flags,
// and file names after a flag that takes a file.
func bashCompletion() string {
	var cases strings.Builder
	var names, fileFlags []string
	for _, c := range commands {
		names = append(names, c.name)
		var fl []string
		for _, f := range c.flagsOf() {
			fl = append(fl, "-"+f.Name)
			if takesFile(f) {
				fileFlags = append(fileFlags, c.name+":-"+f.Name)
			}
		}
		if c.name != "help" && c.name != "completion" {
			fmt.Fprintf(&cases, "\t%s) flags=%q ;;\n", c.name, strings.Join(fl, " "))
		}
	}
	return fmt.Sprintf(`# bash completion for typoguard, written by typoguard completion bash
_typoguard() {
	local cur prev cmd flags
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	if ((COMP_CWORD == 1)); then
		COMPREPLY=($(compgen -W %q -- "$cur"))
		return
	fi
	cmd=${COMP_WORDS[1]}
	case "$cmd:$prev" in
	%s)
		COMPREPLY=($(compgen -f -- "$cur"))
		return ;;
	esac
	case $cmd in
%s	help) COMPREPLY=($(compgen -W %q -- "$cur")); return ;;
	completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")); return ;;
	*) flags="" ;;
	esac
	COMPREPLY=($(compgen -W "$flags" -- "$cur"))
}
complete -o default -F _typoguard typoguard
`, strings.Join(names, " "), strings.Join(fileFlags, "|"), cases.String(), strings.Join(names, " "))
}

// zshCompletion completes as bashCompletion does, with each command's and
// flag's text.
func zshCompletion() string {
	var b strings.Builder
	b.WriteString("#compdef typoguard\n# zsh completion for typoguard, written by typoguard completion zsh\n\n_typoguard() {\n\tlocal -a commands\n\tcommands=(\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "\t\t%s\n", zshQuote(c.name+":"+c.summary))
	}
	b.WriteString("\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe command commands\n\t\treturn\n\tfi\n\tcase $words[2] in\n")
	for _, c := range commands {
		fl := c.flagsOf()
		if len(fl) == 0 || c.name == "help" {
			continue
		}
		fmt.Fprintf(&b, "\t%s)\n\t\t_arguments", c.name)
		for _, f := range fl {
			arg, usage := flag.UnquoteUsage(f)
			spec := "-" + f.Name + "[" + strings.NewReplacer("[", "(", "]", ")", ":", " -").Replace(usage) + "]"
			if arg != "" {
				action := " "
				if takesFile(f) {
					action = "_files"
				}
				spec += ":" + strings.ToLower(arg) + ":" + action
			}
			fmt.Fprintf(&b, " \\\n\t\t\t%s", zshQuote(spec))
		}
		b.WriteString(" \\\n\t\t\t'*::argument:_default' ;;\n")
	}
	b.WriteString("\thelp) _describe command commands ;;\n\tcompletion) _values shell bash zsh ;;\n\tesac\n}\n\n_typoguard \"$@\"\n")
	return b.String()
}

// zshQuote quotes s in single quotes for zsh.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// manPage writes typoguard(1) in roff, from the same descriptions.
func manPage(_ []string, stdout, _ io.Writer) int {
	version, _ := buildVersion()
	var b strings.Builder
	esc := strings.NewReplacer(`\`, `\e`, "-", `\-`, "'", `\(aq`)
	line := func(s string) string {
		s = esc.Replace(s)
		if strings.HasPrefix(s, ".") {
			s = `\&` + s
		}
		return s
	}
	fmt.Fprintf(&b, ".TH TYPOGUARD 1 %q %q \"User Commands\"\n", time.Now().UTC().Format("2006-01"), "typoguard "+version)
	b.WriteString(".SH NAME\ntypoguard \\- a DNS resolver that makes mail to lookalike domains fail closed\n.SH SYNOPSIS\n")
	for _, c := range commands {
		fmt.Fprintf(&b, ".B typoguard %s\n%s\n.br\n", line(c.name), line(c.args))
	}
	b.WriteString(".SH DESCRIPTION\n" + line("typoguard is a caching DNS forwarder. It forwards ordinary lookups upstream and answers MX, A and AAAA lookups for lookalike domains, and the names its policy file lists, with NXDOMAIN, a null MX or a sinkhole, so that mis-addressed mail fails closed. The policy is one YAML file; its reference is the README.") + "\n.SH COMMANDS\n")
	for _, c := range commands {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s.\n", line(strings.TrimSpace(c.name+" "+c.args)), line(capitalize(c.summary)))
		for _, f := range c.flagsOf() {
			arg, usage := flag.UnquoteUsage(f)
			head := `\fB\-` + esc.Replace(f.Name) + `\fR`
			if arg != "" {
				head += ` \fI` + esc.Replace(arg) + `\fR`
			}
			text := usage
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" {
				text += " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(&b, ".RS\n.TP\n%s\n%s\n.RE\n", head, line(text))
		}
	}
	b.WriteString(".SH SIGNALS\n.TP\n.B SIGHUP\n" + line("read the policy file again and swap it in; a bad file is refused and the old policy keeps serving.") +
		"\n.TP\n.B SIGTERM, SIGINT\n" + line("stop accepting queries, answer those in flight, exit 0.") +
		"\n.SH EXIT STATUS\n" + line("0 success; 1 a failed check or test, or a serve error; 2 bad usage.") +
		"\n.SH SEE ALSO\n.BR dig (1)\n")
	fmt.Fprint(stdout, b.String())
	return 0
}
