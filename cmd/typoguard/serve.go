package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// shutdownGrace bounds how long SIGTERM waits for queries in flight.
const shutdownGrace = 5 * time.Second

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := configFlag(fs)
	var listen listFlag
	fs.Var(&listen, "listen", "address to listen on, UDP and TCP (repeatable; overrides the policy's listen)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "typoguard serve: unexpected argument %q\n", pos[0])
		return 2
	}
	start := time.Now()
	p, err := loadPolicy(*config, true)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	loadTime := time.Since(start)
	log := newLogger(stderr, p.Log)
	addrs := p.Listen
	if len(listen) > 0 {
		addrs = listen
	}
	sys, err := resolver.SystemUpstreams("/etc/resolv.conf")
	if err != nil && len(p.Upstreams) == 0 {
		log.Error("no upstreams: the policy names none and /etc/resolv.conf cannot be read", "err", err)
		return 1
	}
	srv, err := resolver.New(p, resolver.Config{Logger: log, SystemUpstreams: sys})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	bound, err := srv.Listen(addrs)
	if err != nil {
		log.Error("cannot listen", "err", err)
		return 1
	}
	for _, l := range bound {
		log.Info("listening", "net", l.Net, "addr", l.Addr.String())
	}
	logPolicy(log, p, sys, loadTime)
	// A big list leaves its file's bytes behind; give them back now.
	debug.FreeOSMemory()

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	for {
		select {
		case err := <-served:
			if err != nil {
				log.Error("serving failed", "err", err)
				return 1
			}
			return 0
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				reload(log, srv, *config)
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil {
				log.Error("shutdown", "err", err)
				return 1
			}
			log.Info("stopped")
			return 0
		}
	}
}

// reload loads the policy file again and swaps it in; on any error the old
// policy keeps serving.
func reload(log *slog.Logger, srv *resolver.Server, path string) {
	old := srv.Policy()
	p, err := loadPolicy(path, true)
	if err == nil {
		err = srv.Reload(p)
	}
	if err != nil {
		var list policy.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				log.Error("policy error", "error", e.Error())
			}
		}
		log.Error("reload failed; the old policy keeps serving", "err", err.Error())
		return
	}
	if !slices.Equal(old.Listen, p.Listen) || old.Metrics != p.Metrics {
		log.Warn("listen and metrics changes need a restart; they are not applied by a reload")
	}
	log.Info("policy reloaded", "file", p.File, "rules", len(p.Rules()), "domains", p.DomainCount())
	logWarnings(log, p)
}

func newLogger(w io.Writer, s policy.LogSettings) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(s.Level))
	opts := &slog.HandlerOptions{Level: level}
	if s.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func logPolicy(log *slog.Logger, p *policy.Policy, sys []string, loadTime time.Duration) {
	upstreams := p.Upstreams
	if len(upstreams) == 0 {
		upstreams = sys
	}
	log.Info("serving", "policy", p.File, "rules", len(p.Rules()), "domains", p.DomainCount(),
		"upstreams", strings.Join(upstreams, ","), "load_ms", loadTime.Milliseconds())
	logWarnings(log, p)
}

func logWarnings(log *slog.Logger, p *policy.Policy) {
	for _, w := range p.Warnings() {
		log.Warn(w.Msg, "at", w.Pos.String())
	}
}
