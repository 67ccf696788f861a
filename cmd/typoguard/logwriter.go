package main

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// logLimits bound how long a log line waits and how much waits.
type logLimits struct {
	// flushInterval is the longest a line waits before it is written.
	flushInterval time.Duration
	// batchBytes pending are written at once, without waiting the interval.
	batchBytes int
	// pendingBytes is the most that waits; a line that does not fit is
	// dropped and counted.
	pendingBytes int
}

// defaultLogLimits let a flood of audit lines cost one write(2) per 64 KiB
// and hold a few seconds of it while the destination is slow.
var defaultLogLimits = logLimits{
	flushInterval: 100 * time.Millisecond,
	batchBytes:    64 << 10,
	pendingBytes:  4 << 20,
}

// logWriter stands between the slog handlers and the log's destination, so
// that a query that logs never waits for write(2) or for whoever reads the
// log.
//
// Write takes one whole line, as slog handlers give it, copies it into a
// bounded buffer and returns at once. One goroutine writes the lines that
// have gathered to the destination, in order, one write per batch: at most
// flushInterval after the batch's first line, at once when the batch
// reaches batchBytes, and everything on Close. A line that does not fit in
// pendingBytes is dropped and counted, and the next batch ends with a line,
// made by report, that says how many were dropped since the last such line.
//
// Memory stays bounded, at about twice pendingBytes: two buffers, the one
// Write fills and the one being written, swap places under mu.
type logWriter struct {
	dst    io.Writer
	report func(buf []byte, dropped uint64) []byte
	limits logLimits

	mu      sync.Mutex // guards pending, dropped and closed
	pending []byte     // whole lines not yet taken by the writer
	dropped uint64     // lines dropped since the last report
	closed  bool       // the writer is gone: Write goes straight to dst

	// spare is the buffer the next swap puts in pending's place; only the
	// writer goroutine, then Close once the goroutine is gone, touches it.
	spare []byte

	// err is the destination's error on the goroutine's last write,
	// for Close.
	err error

	droppedTotal atomic.Uint64 // lines dropped since the start

	wake     chan struct{} // a batch has begun or is large; holds one signal
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
	exited   chan struct{} // closed when the writer goroutine returns
}

// newLogWriter starts a logWriter in front of dst. report appends to buf
// the line that says dropped lines were dropped; the writer goroutine, or
// Close, calls it, and it must not write to the logWriter.
func newLogWriter(dst io.Writer, report func(buf []byte, dropped uint64) []byte, limits logLimits) *logWriter {
	w := &logWriter{
		dst:    dst,
		report: report,
		limits: limits,
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go w.run()
	return w
}

// Write queues one whole log line and returns at once with len(p) and no
// error, whether the line was queued or dropped. It does not keep p. After
// Close it writes p straight to the destination.
func (w *logWriter) Write(p []byte) (int, error) {
	w.writeWith(func(b []byte) []byte { return append(b, p...) })
	return len(p), nil
}

// writeWith queues the one whole line that add appends to the buffer it is
// given, as Write does, but without a copy: add appends straight to what is
// pending, under w.mu, so it must be quick and must not log. After Close it
// writes the line straight to the destination.
func (w *logWriter) writeWith(add func([]byte) []byte) {
	w.mu.Lock()
	if w.closed {
		defer w.mu.Unlock()
		w.dst.Write(add(nil))
		return
	}
	before := len(w.pending)
	w.pending = add(w.pending)
	if len(w.pending) > w.limits.pendingBytes {
		w.pending = w.pending[:before]
		w.dropped++
		w.droppedTotal.Add(1)
		w.mu.Unlock()
		return
	}
	// Signal the first line of a batch, and the line that makes it large;
	// the lines in between need no signal.
	signal := before == 0 || before < w.limits.batchBytes && len(w.pending) >= w.limits.batchBytes
	w.mu.Unlock()
	if signal {
		select {
		case w.wake <- struct{}{}:
		default: // a signal is already waiting
		}
	}
}

// Dropped returns how many lines were dropped since the start.
func (w *logWriter) Dropped() uint64 { return w.droppedTotal.Load() }

// Close stops the writer goroutine and writes everything pending; it
// returns once the destination has it all, with the destination's error on
// the last writes. Lines written after Close go straight to the
// destination.
func (w *logWriter) Close() error {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.exited
	// Lines that came between the goroutine's last batch and now.
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	batch, dropped := w.takeLocked()
	if err := w.write(batch, dropped); err != nil {
		return err
	}
	return w.err
}

// run is the writer goroutine: it waits for a batch to begin, lets it
// gather for up to flushInterval unless it is large already, and writes it.
func (w *logWriter) run() {
	defer close(w.exited)
	timer := time.NewTimer(w.limits.flushInterval)
	timer.Stop()
	for {
		select {
		case <-w.wake:
		case <-w.stop:
			w.err = w.flush()
			return
		}
		if !w.large() {
			timer.Reset(w.limits.flushInterval)
			select {
			case <-timer.C:
			case <-w.wake: // large now, or a stale signal: no harm
			case <-w.stop:
			}
			timer.Stop()
		}
		w.flush()
	}
}

func (w *logWriter) large() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) >= w.limits.batchBytes
}

// flush writes what is pending, and the count of lines dropped, in one
// write, and keeps the buffer for the next swap.
func (w *logWriter) flush() error {
	w.mu.Lock()
	batch, dropped := w.takeLocked()
	w.mu.Unlock()
	return w.write(batch, dropped)
}

// takeLocked swaps the pending buffer for the spare one and returns what
// was pending and the count of lines dropped since the last report. w.mu
// must be held.
func (w *logWriter) takeLocked() ([]byte, uint64) {
	batch, dropped := w.pending, w.dropped
	w.pending, w.dropped = w.spare[:0], 0
	w.spare = nil
	return batch, dropped
}

// write writes one batch, the report of drops at its end, and keeps the
// buffer as the spare one.
func (w *logWriter) write(batch []byte, dropped uint64) error {
	if dropped > 0 {
		batch = w.report(batch, dropped)
	}
	var err error
	if len(batch) > 0 {
		// A failed write has nowhere to be reported but the log that
		// failed; slog ignored it the same way when it wrote directly.
		_, err = w.dst.Write(batch)
	}
	w.spare = batch[:0]
	return err
}
