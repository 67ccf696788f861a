// Command typoguard is a caching DNS forwarder that makes mail to lookalike
// domains fail closed.
//
//	typoguard [serve] [-config FILE] [-listen ADDR]...
//	typoguard check -config FILE
//	typoguard explain -config FILE [-client IP] NAME [TYPE]
//	typoguard test -config FILE [-server ADDR]
//	typoguard lookalikes [-config FILE] [DOMAIN...] [-check NAME...]
//	typoguard version
//	typoguard help [COMMAND]
//	typoguard completion bash|zsh
//	typoguard man
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/typoguard/typoguard/policy"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code: 0 success,
// 1 a failed check or test or a serve error, 2 bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || slices.Contains([]string{"-version", "--version", "-h", "-help", "--help"}, args[0])) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "-version", "--version":
		cmd = "version"
	case "-h", "-help", "--help":
		cmd = "help"
	}
	if c, ok := lookup(cmd); ok {
		return c.run(args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "typoguard: unknown command %q\n\n%s", cmd, usageText())
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
	p, _, err := loadPolicyDigest(path, policy.Options{SkipExpired: skipExpired})
	return p, err
}

// loadPolicyDigest is loadPolicy that also returns the digest of its
// input: a SHA-256 over the bytes it parsed, the policy file's and each
// list file's as they were read, with their names and any read error.
// It is the one place a policy's input is identified: two loads with the
// same digest read the same input, good or bad. opts are Parse's, with
// OpenList its own.
func loadPolicyDigest(path string, opts policy.Options) (*policy.Policy, string, error) {
	h := sha256.New()
	digest := func() string { return hex.EncodeToString(h.Sum(nil)) }
	if path == "" {
		p, err := policy.Parse(policy.DefaultFile, policy.DefaultSource(), opts)
		h.Write(policy.DefaultSource())
		return p, digest(), err
	}
	f, _, err := openInput(path, policy.MaxPolicyBytes, h)
	var src []byte
	if err == nil {
		src, err = io.ReadAll(f)
		f.Close()
	}
	if err != nil {
		return nil, digest(), fmt.Errorf("read policy: %w", err)
	}
	openList := func(name string) (io.ReadCloser, int64, error) {
		// Unbounded here: the policy's limits.list_bytes bounds the read.
		f, size, err := openInput(name, math.MaxInt64-1, h)
		if err != nil {
			return nil, 0, err
		}
		return f, size, nil
	}
	opts.OpenList = openList
	p, err := policy.Parse(path, src, opts)
	return p, digest(), err
}

// openInput opens a policy or list file of at most max bytes for one
// reading, start to end. It must be a regular file: a device such as
// /dev/zero, a pipe or a directory is refused before anything is read, and
// a file that grows past max while read fails once max is passed, so no
// input can make typoguard read more than max. The file's name, the
// SHA-256 of the bytes read and any error go into digest when it is
// closed (or at once when it cannot be opened).
func openInput(path string, max int64, digest io.Writer) (io.ReadCloser, int64, error) {
	f, size, err := openRegular(path, max)
	if err != nil {
		fmt.Fprintf(digest, "%s\x00error\x00%v\x00", path, err)
		return nil, 0, err
	}
	return &input{f: f, path: path, max: max, left: max, sum: sha256.New(), digest: digest}, size, nil
}

// openRegular opens path if it is a regular file of at most max bytes.
func openRegular(path string, max int64) (*os.File, int64, error) {
	// O_NONBLOCK: opening a named pipe must not wait for a writer; it does
	// nothing to a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("not a regular file (%s)", fileKind(st.Mode()))}
	}
	if err == nil && st.Size() > max {
		err = &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%d bytes, over the limit of %d", st.Size(), max)}
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// input is an open policy or list file: it reads at most its limit and
// hashes what it reads.
type input struct {
	f      *os.File
	path   string
	max    int64
	left   int64 // bytes it may still read
	sum    hash.Hash
	digest io.Writer
	err    error // the first read error, other than io.EOF
}

func (in *input) Read(b []byte) (int, error) {
	if in.err != nil {
		return 0, in.err
	}
	if int64(len(b)) > in.left+1 {
		b = b[:in.left+1]
	}
	n, err := in.f.Read(b)
	in.sum.Write(b[:n])
	if in.left -= int64(n); in.left < 0 {
		err = &os.PathError{Op: "read", Path: in.path, Err: fmt.Errorf("grew over the limit of %d bytes while read", in.max)}
		n += int(in.left) // what is over the limit is not passed on
	}
	if err != nil && err != io.EOF {
		in.err = err
	}
	return n, err
}

func (in *input) Close() error {
	fmt.Fprintf(in.digest, "%s\x00%x\x00", in.path, in.sum.Sum(nil))
	if in.err != nil {
		fmt.Fprintf(in.digest, "error\x00%v\x00", in.err)
	}
	return in.f.Close()
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
