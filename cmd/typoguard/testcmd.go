package main

import (
	"flag"
	"fmt"
	"io"
)

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
