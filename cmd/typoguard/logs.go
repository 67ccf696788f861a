package main

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/typoguard/typoguard/policy"
)

// logSwitch is a slog.Handler whose format and level a reload can change.
type logSwitch struct {
	w     io.Writer
	level slog.LevelVar
	cur   atomic.Pointer[slog.Handler]
}

func newLogSwitch(w io.Writer, s policy.LogSettings) *logSwitch {
	l := &logSwitch{w: w}
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
	var h slog.Handler = slog.NewTextHandler(l.w, opts)
	if s.Format == "json" {
		h = slog.NewJSONHandler(l.w, opts)
	}
	l.cur.Store(&h)
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
