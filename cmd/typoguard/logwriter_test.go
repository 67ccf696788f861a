package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// recorder is a log destination that keeps what it is given, one entry per
// Write; before each Write it calls before, when set.
type recorder struct {
	before func()

	mu     sync.Mutex // guards writes
	writes [][]byte
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.before != nil {
		r.before()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

// String is everything written so far.
func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(bytes.Join(r.writes, nil))
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.writes)
}

// countDropped is a report that writes "dropped N".
func countDropped(buf []byte, n uint64) []byte {
	return fmt.Appendf(buf, "dropped %d\n", n)
}

// lines makes n lines "<prefix> 0000" to "<prefix> n-1", each with a
// newline: lines("line", n) are 10 bytes each.
func lines(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %04d\n", prefix, i)
	}
	return out
}

func TestLogWriterKeepsLinesWholeAndInOrder(t *testing.T) {
	const writers, perWriter = 8, 2000
	dst := &recorder{}
	// Small batches, so that the buffers swap many times under the writers.
	w := newLogWriter(dst, countDropped, logLimits{flushInterval: time.Millisecond, batchBytes: 512, pendingBytes: 4 << 20})
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for _, l := range lines("writer "+strconv.Itoa(g)+" line", perWriter) {
				w.Write([]byte(l))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	out := strings.TrimSuffix(dst.String(), "\n")
	for _, l := range strings.Split(out, "\n") {
		var g, i int
		if _, err := fmt.Sscanf(l, "writer %d line %d", &g, &i); err != nil || g < 0 || g >= writers {
			t.Fatalf("line not whole: %q", l)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d after line %d", g, i, next[g]-1)
		}
		next[g]++
	}
	for g, n := range next {
		if n != perWriter {
			t.Errorf("writer %d: %d lines, want %d", g, n, perWriter)
		}
	}
	if d := w.Dropped(); d != 0 {
		t.Errorf("%d lines dropped, want none", d)
	}
	if n := dst.count(); n >= writers*perWriter/10 {
		t.Errorf("%d writes for %d lines: not batched", n, writers*perWriter)
	}
}

func TestLogWriterWritesWithinTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dst := &recorder{}
		w := newLogWriter(dst, countDropped, logLimits{flushInterval: 100 * time.Millisecond, batchBytes: 64, pendingBytes: 1024})
		defer w.Close()
		w.Write([]byte("first\n"))
		time.Sleep(50 * time.Millisecond)
		w.Write([]byte("second\n"))
		time.Sleep(49 * time.Millisecond)
		synctest.Wait()
		if got := dst.String(); got != "" {
			t.Fatalf("written after 99ms: %q", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got, want := dst.String(), "first\nsecond\n"; got != want || dst.count() != 1 {
			t.Fatalf("after 100ms: %d writes of %q, want one of %q", dst.count(), got, want)
		}

		// A batch that reaches batchBytes goes out at once: no time passes.
		start := time.Now()
		big := lines("a line of the large batch", 3)
		for _, l := range big {
			w.Write([]byte(l))
		}
		synctest.Wait()
		if got, want := dst.String(), "first\nsecond\n"+strings.Join(big, ""); got != want {
			t.Fatalf("large batch: %q, want %q", got, want)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("large batch written after %v, want at once", d)
		}
	})
}

func TestLogWriterSlowDestinationDropsAndReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		releaseAll := sync.OnceFunc(func() { close(release) })
		dst := &recorder{before: func() { <-release }}
		// Lines of 10 bytes; 25 fit in what may wait.
		w := newLogWriter(dst, countDropped, logLimits{flushInterval: 100 * time.Millisecond, batchBytes: 64, pendingBytes: 250})
		defer w.Close()
		defer releaseAll() // let a failed test end
		w.Write([]byte("first\n"))
		time.Sleep(100 * time.Millisecond)
		synctest.Wait() // the writer is stuck in the destination with "first"

		// Were Write to wait for the destination, the bubble would
		// deadlock here and the test would fail.
		round1 := lines("line", 100)
		for _, l := range round1 {
			if n, err := w.Write([]byte(l)); n != len(l) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		if d := w.Dropped(); d != 75 {
			t.Fatalf("dropped %d, want 75", d)
		}
		release <- struct{}{} // "first" is written; the next batch is stuck
		synctest.Wait()
		round2 := lines("more", 30)
		for _, l := range round2 {
			w.Write([]byte(l))
		}
		releaseAll()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		want := "first\n" + strings.Join(round1[:25], "") + "dropped 75\n" + strings.Join(round2[:25], "") + "dropped 5\n"
		if got := dst.String(); got != want {
			t.Errorf("got\n%s\nwant\n%s", got, want)
		}
		if d := w.Dropped(); d != 80 {
			t.Errorf("dropped %d in all, want 80", d)
		}
	})
}

// TestLogWriterCloseFlushes also checks that the writer goroutine is gone
// after Close: synctest.Test fails when a goroutine of its bubble is left.
func TestLogWriterCloseFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dst := &recorder{}
		w := newLogWriter(dst, countDropped, defaultLogLimits)
		all := lines("line", 1000)
		for _, l := range all {
			w.Write([]byte(l))
		}
		start := time.Now()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, want := dst.String(), strings.Join(all, ""); got != want {
			t.Fatalf("after Close: %d bytes, want %d", len(got), len(want))
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v, want no wait for the interval", d)
		}
		// After Close a line goes straight out; Close again is harmless.
		w.Write([]byte("late\n"))
		if got := dst.String(); !strings.HasSuffix(got, "line 0999\nlate\n") {
			t.Errorf("late line not written: ends %q", got[len(got)-20:])
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLogSwitchReportsDropsInTheFormatInForce(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		check        func(t *testing.T, line string)
	}{
		{"json", "json", func(t *testing.T, line string) {
			var got map[string]any
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("%v: %q", err, line)
			}
			if got["level"] != "WARN" || got["msg"] != droppedMsg || got["dropped"] != 1234.0 || got["time"] == nil {
				t.Errorf("got %v", got)
			}
		}},
		{"text", "text", func(t *testing.T, line string) {
			if want := ` level=WARN msg="` + droppedMsg + `" dropped=1234`; !strings.HasPrefix(line, "time=") || !strings.HasSuffix(line, want) {
				t.Errorf("got %q, want time=... %s", line, want)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Start in the other format, as after a reload.
			l := newLogSwitch(&recorder{}, policy.LogSettings{Format: "json", Level: "error"})
			defer l.Close()
			l.set(policy.LogSettings{Format: tc.format, Level: "error"})
			out := string(l.appendDropped([]byte("before\n"), 1234))
			line, ok := strings.CutPrefix(out, "before\n")
			if !ok || !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
				t.Fatalf("not one line after the batch: %q", out)
			}
			tc.check(t, strings.TrimSuffix(line, "\n"))
		})
	}
}

// BenchmarkAuditLine measures one audit line, as resolver's audit logs it,
// through the logWriter and straight to a file, both on /dev/null.
func BenchmarkAuditLine(b *testing.B) {
	audit := func(log *slog.Logger) {
		log.Info("blocked", "client", "192.0.2.7", "name", "army.ml.", "type", "MX",
			"rule", "mali-is-not-mil", "action", "nxdomain", "mode", "enforce", "cached", false)
	}
	open := func(b *testing.B) *os.File {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		return f
	}
	b.Run("file", func(b *testing.B) {
		log := slog.New(slog.NewJSONHandler(open(b), nil))
		b.ReportAllocs()
		for b.Loop() {
			audit(log)
		}
	})
	b.Run("logWriter", func(b *testing.B) {
		l := newLogSwitch(open(b), policy.LogSettings{Format: "json", Level: "info"})
		log := slog.New(l)
		b.ReportAllocs()
		for b.Loop() {
			audit(log)
		}
		b.StopTimer()
		l.Close()
		b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
	})
	// auditor is the path a blocked query's line takes in typoguard: the
	// resolver's Auditor, formatting the line itself into the logWriter.
	b.Run("auditor", func(b *testing.B) {
		l := newLogSwitch(open(b), policy.LogSettings{Format: "json", Level: "info"})
		a := auditLog{l}
		line := resolver.AuditLine{Verdict: "blocked", Client: netip.MustParseAddr("192.0.2.7"), Name: "army.ml.", Type: "MX",
			Rule: "mali-is-not-mil", Action: "nxdomain", Mode: "enforce"}
		b.ReportAllocs()
		for b.Loop() {
			a.Audit(line)
		}
		b.StopTimer()
		l.Close()
		b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
	})
}
