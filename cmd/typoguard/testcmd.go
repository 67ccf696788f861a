package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/typoguard/typoguard/policy"
)

// testFlags defines test's flags on fs.
func testFlags(fs *flag.FlagSet) (config *string, verbose *bool, server *string) {
	config = configFlag(fs)
	verbose = fs.Bool("v", false, "print every case, not only failures")
	server = fs.String("server", "", "ask the typoguard at `ADDR` (ip:port) each case over DNS, instead of deciding it offline")
	return config, verbose, server
}

func runTests(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config, verbose, server := testFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if *config == "" || len(pos) > 0 {
		fmt.Fprintln(stderr, "usage: typoguard test -config FILE [-server ADDR] [-v]")
		return 2
	}
	p, err := loadPolicy(*config, false)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	if *server != "" {
		return reportLive(p, *server, *verbose, stdout)
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

// reportLive runs p's tests against the live server and reports them as
// the offline run does, with the cases it could not ask counted apart.
func reportLive(p *policy.Policy, server string, verbose bool, stdout io.Writer) int {
	passed, failed, skipped := 0, 0, 0
	for _, r := range runLive(p, server) {
		switch {
		case r.skipped != "":
			skipped++
		case r.pass():
			passed++
			if !verbose {
				continue
			}
		default:
			failed++
		}
		fmt.Fprintln(stdout, r.String())
	}
	fmt.Fprintf(stdout, "%d passed, %d failed, %d skipped (against %s)\n", passed, failed, skipped, server)
	if failed > 0 {
		return 1
	}
	return 0
}
