// Command typoguard is a caching DNS forwarder that makes mail to lookalike
// domains fail closed.
//
//	typoguard [serve] [-config FILE] [-listen ADDR]...
//	typoguard check -config FILE
//	typoguard explain -config FILE [-client IP] NAME [TYPE]
//	typoguard test -config FILE
//	typoguard lookalikes [-config FILE] [DOMAIN...] [-check NAME...]
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/typoguard/typoguard/policy"
)

const usage = `typoguard: a DNS resolver that makes mail to lookalike domains fail closed

usage:
  typoguard [serve] [-config FILE] [-listen ADDR]...   run the resolver (no -config: the embedded default on 127.0.0.1:5300)
  typoguard check -config FILE                         validate a policy; summary, warnings, every error
  typoguard explain -config FILE [-client IP] NAME [TYPE]
                                                       which rule decides a query, and the exact answer
  typoguard test -config FILE                          run the policy's tests: offline
  typoguard lookalikes [-config FILE] [DOMAIN...] [-check NAME...]
                                                       the lookalikes typoguard blocks, by kind; -check judges names
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code: 0 success,
// 1 a failed check or test or a serve error, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "check":
		return check(args, stdout, stderr)
	case "explain":
		return explain(args, stdout, stderr)
	case "test":
		return runTests(args, stdout, stderr)
	case "lookalikes":
		return lookalikes(args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "typoguard: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// loadPolicy compiles the policy file at path, or the embedded default when
// path is empty. List files are read relative to the policy file.
func loadPolicy(path string, skipExpired bool) (*policy.Policy, error) {
	p, _, err := loadPolicyDigest(path, skipExpired)
	return p, err
}

// loadPolicyDigest is loadPolicy that also returns the digest of its
// input: a SHA-256 over the bytes it parsed, the policy file's and each
// list file's as they were read, with their names and any read error.
// It is the one place a policy's input is identified: two loads with the
// same digest read the same input, good or bad.
func loadPolicyDigest(path string, skipExpired bool) (*policy.Policy, string, error) {
	h := sha256.New()
	read := func(name string, max int64) ([]byte, error) {
		data, err := readInput(name, max)
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
		if err != nil {
			fmt.Fprintf(h, "error\x00%v\x00", err)
		}
		return data, err
	}
	digest := func() string { return hex.EncodeToString(h.Sum(nil)) }
	if path == "" {
		p, err := policy.Parse(policy.DefaultFile, policy.DefaultSource(), policy.Options{SkipExpired: skipExpired})
		h.Write(policy.DefaultSource())
		return p, digest(), err
	}
	src, err := read(path, policy.MaxPolicyBytes)
	if err != nil {
		return nil, digest(), fmt.Errorf("read policy: %w", err)
	}
	readList := func(name string) ([]byte, error) { return read(name, policy.MaxListBytes) }
	p, err := policy.Parse(path, src, policy.Options{ReadFile: readList, SkipExpired: skipExpired})
	return p, digest(), err
}

// readInput reads a policy or list file of at most max bytes. It must be a
// regular file: a device such as /dev/zero, a pipe or a directory is
// refused before anything is read, and a file that grows past max while
// read is refused once max is passed, so no input can make typoguard hold
// more than max.
func readInput(path string, max int64) ([]byte, error) {
	// O_NONBLOCK: opening a named pipe must not wait for a writer; it does
	// nothing to a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("not a regular file (%s)", fileKind(st.Mode()))}
	}
	if st.Size() > max {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%d bytes, over the limit of %d", st.Size(), max)}
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("over the limit of %d bytes", max)}
	}
	return data, nil
}

// fileKind names what a file that is not a regular file is.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a plain file"
}

// printLoadError prints a policy's errors one per line, as file:line:col.
func printLoadError(w io.Writer, err error) {
	if list, ok := err.(policy.ErrorList); ok {
		for _, e := range list {
			fmt.Fprintln(w, e.Error())
		}
		noun := "errors"
		if len(list) == 1 {
			noun = "error"
		}
		fmt.Fprintf(w, "%d %s\n", len(list), noun)
		return
	}
	fmt.Fprintln(w, "typoguard:", err)
}
