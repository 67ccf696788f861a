package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/typoguard/typoguard/policy"
)

// droppedMsg is the message of the line that counts log lines dropped.
const droppedMsg = "log lines dropped: the log could not keep up"

// logSwitch is a slog.Handler whose format and level a reload can change.
// Its lines go to the destination through a logWriter, so that logging
// never waits for the destination; Close writes what is left.
type logSwitch struct {
	out   *logWriter
	level slog.LevelVar
	json  atomic.Bool // the format in force is JSON, not text
	cur   atomic.Pointer[slog.Handler]
	// fixed is the rendering of the last audit line's shared parts.
	fixed atomic.Pointer[auditFixed]
}

func newLogSwitch(w io.Writer, s policy.LogSettings) *logSwitch {
	l := &logSwitch{}
	l.out = newLogWriter(w, l.appendDropped, defaultLogLimits)
	l.set(s)
	return l
}

// set applies the policy's log settings.
func (l *logSwitch) set(s policy.LogSettings) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.Level)); err != nil {
		level = slog.LevelInfo
	}
	l.level.Set(level)
	opts := &slog.HandlerOptions{Level: &l.level}
	var h slog.Handler = slog.NewTextHandler(l.out, opts)
	if s.Format == "json" {
		h = slog.NewJSONHandler(l.out, opts)
	}
	l.json.Store(s.Format == "json")
	l.cur.Store(&h)
}

// Close writes every line still pending and returns once written; lines
// logged after it are written at once, on the caller's goroutine.
func (l *logSwitch) Close() error { return l.out.Close() }

// Dropped returns how many lines were dropped, since the start, because the
// destination could not keep up.
func (l *logSwitch) Dropped() uint64 { return l.out.Dropped() }

// appendDropped appends to buf the warning that n lines were dropped, in
// the format in force, whatever the level: drops are never silent.
func (l *logSwitch) appendDropped(buf []byte, n uint64) []byte {
	b := bytes.NewBuffer(buf)
	var h slog.Handler = slog.NewTextHandler(b, nil)
	if l.json.Load() {
		h = slog.NewJSONHandler(b, nil)
	}
	r := slog.NewRecord(time.Now(), slog.LevelWarn, droppedMsg, 0)
	r.AddAttrs(slog.Uint64("dropped", n))
	h.Handle(context.Background(), r)
	return b.Bytes()
}

// Enabled implements slog.Handler.
func (l *logSwitch) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= l.level.Level()
}

// Handle implements slog.Handler.
func (l *logSwitch) Handle(ctx context.Context, r slog.Record) error {
	return (*l.cur.Load()).Handle(ctx, r)
}

// WithAttrs implements slog.Handler; the derived handler keeps the format
// in force when it was made.
func (l *logSwitch) WithAttrs(attrs []slog.Attr) slog.Handler {
	return (*l.cur.Load()).WithAttrs(attrs)
}

// WithGroup implements slog.Handler, like WithAttrs.
func (l *logSwitch) WithGroup(name string) slog.Handler {
	return (*l.cur.Load()).WithGroup(name)
}
