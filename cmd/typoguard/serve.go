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
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/typoguard/typoguard/explainer"
	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// shutdownGrace bounds how long SIGTERM waits for queries in flight.
const shutdownGrace = 5 * time.Second

// serveFlags defines serve's flags on fs.
func serveFlags(fs *flag.FlagSet) (config *string, listen *listFlag, cpuProfile *string) {
	config = configFlag(fs)
	listen = new(listFlag)
	fs.Var(listen, "listen", "`ADDR` to listen on, UDP and TCP (repeatable; overrides the policy's listen)")
	cpuProfile = fs.String("cpuprofile", "", "write a CPU profile (go tool pprof) to this `FILE` until typoguard stops")
	return config, listen, cpuProfile
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config, listen, cpuProfile := serveFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "typoguard serve: unexpected argument %q\n", pos[0])
		return 2
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "typoguard serve: %v\n", err)
			return 1
		}
		defer stop()
	}
	// Catch signals from the start: a SIGTERM that arrives while starting
	// is acted on once serving, not lost to the default action.
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(signals)
	start := time.Now()
	p, digest, zone, zoneErr, err := loadServing(*config)
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	loadTime := time.Since(start)
	logs := newLogSwitch(stderr, p.Log)
	// Every return from here on, on an error or after SIGTERM, writes out
	// the lines the log still holds: Close runs after the calls deferred
	// below.
	defer logs.Close()
	addrs := p.Listen
	if len(*listen) > 0 {
		addrs = *listen
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	d := &daemon{log: slog.New(logs), logs: logs, path: *config, lastDigest: digest}
	if !d.start(ctx, p, addrs, zone) {
		return 1
	}
	if zoneErr != nil {
		d.log.Error(zoneErr.Error())
	}
	logPolicy(d.log, p, d.srv.Upstreams(), loadTime)
	// A big list leaves its file's bytes behind; give them back now.
	debug.FreeOSMemory()
	var changed <-chan struct{}
	if *config != "" {
		w, err := watchPolicy(ctx, d.log, *config, p)
		if err != nil {
			d.log.Warn("cannot watch the policy file; reload with SIGHUP", "err", err)
		} else {
			d.watch = w
			changed = w.changed
		}
	}
	return d.run(signals, changed)
}

// loadServing loads the policy file at path for serving and, when it has
// an rpz section, the zone it serves (reading its lists a second time, to
// keep their names, which the policy itself holds only as fingerprints).
// A zone that cannot be made (over the export's bound) is no reason to
// refuse the policy: zoneErr says why there is none, and the resolver
// serves on while the secondaries keep the zone they have.
func loadServing(path string) (p *policy.Policy, digest string, zone *resolver.RPZ, zoneErr, err error) {
	p, digest, err = loadPolicyDigest(path, policy.Options{SkipExpired: true})
	if err != nil || !p.RPZ.Configured() {
		return p, digest, nil, nil, err
	}
	x := policy.NewExporter(p.RPZ.MaxRecords)
	if p, digest, err = loadPolicyDigest(path, policy.Options{SkipExpired: true, ListDomain: x.ListDomain}); err != nil {
		return p, digest, nil, nil, err
	}
	ex, xerr := x.Export(p, p.RPZ.WidenTypes)
	if xerr != nil {
		return p, digest, nil, fmt.Errorf("rpz: the zone is not served or updated: %w", xerr), nil
	}
	return p, digest, resolver.NewRPZ(p.RPZ.Zone, 0, p, ex), nil, nil
}

// start makes the daemon's metrics, resolver, explainer and RPZ server for
// p, and binds its listeners on addrs. It logs why and reports false when
// it cannot.
func (d *daemon) start(ctx context.Context, p *policy.Policy, addrs []string, zone *resolver.RPZ) bool {
	log := d.log
	sys, err := resolver.SystemUpstreams("/etc/resolv.conf")
	if err != nil && len(p.Upstreams) == 0 {
		log.Error("no upstreams: the policy names none and /etc/resolv.conf cannot be read", "err", err)
		return false
	}
	d.metrics = newMetrics()
	d.metrics.watchLog(d.logs)
	d.srv, err = resolver.New(p, resolver.Config{Logger: log, SystemUpstreams: sys, Observer: d.metrics, Auditor: auditLog{d.logs}})
	if err != nil {
		log.Error("cannot start", "err", err)
		return false
	}
	d.metrics.watchCache(d.srv)
	if p.Metrics != "" {
		addr, err := serveMetrics(ctx, log, p.Metrics, d.metrics, d.srv)
		if err != nil {
			log.Error("cannot listen for metrics", "addr", p.Metrics, "err", err)
			return false
		}
		log.Info("metrics listening", "addr", addr.String())
	}
	bound, err := d.srv.Listen(addrs)
	if err != nil {
		log.Error("cannot listen", "err", err)
		return false
	}
	for _, l := range bound {
		log.Info("listening", "net", l.Net, "addr", l.Addr.String())
	}
	if d.explainer, err = startExplainer(log, p, d.srv, d.metrics); err != nil {
		log.Error("cannot start the explainer", "err", err)
		return false
	}
	if p.RPZ.Configured() {
		d.rpz = resolver.NewRPZServer(log)
		if zone != nil {
			d.rpz.Update(zone, p.RPZ)
		}
		if err := d.rpz.Start(p.RPZ.Listen); err != nil {
			log.Error("cannot serve the RPZ zone", "err", err)
			return false
		}
		log.Info("rpz listening", "addr", d.rpz.Addr().String(), "zone", p.RPZ.Zone)
	}
	return true
}

// run serves until SIGTERM or SIGINT, or until serving fails, reloading on
// SIGHUP, on a change of the policy's files and when an exception expires.
// It returns the exit code.
func (d *daemon) run(signals <-chan os.Signal, changed <-chan struct{}) int {
	served := make(chan error, 2)
	go func() { served <- d.srv.Serve() }()
	if d.explainer != nil {
		go func() {
			if err := d.explainer.Serve(); err != nil {
				served <- err
			}
		}()
	}
	expiry := time.NewTimer(untilExpiry(d.srv.Policy(), time.Now()))
	defer expiry.Stop()
	for {
		select {
		case err := <-served:
			if err != nil {
				d.log.Error("serving failed", "err", err)
				return 1
			}
			return 0
		case <-changed:
			d.reload("file changed", true)
		case <-expiry.C:
			d.reload("an exception expired", false)
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				d.reload("SIGHUP", false)
				break
			}
			d.log.Info("shutting down", "signal", sig.String())
			return d.shutdown()
		}
		expiry.Reset(untilExpiry(d.srv.Policy(), time.Now()))
	}
}

// shutdown stops serving, within shutdownGrace, and returns the exit code.
func (d *daemon) shutdown() int {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := d.srv.Shutdown(ctx)
	if d.explainer != nil {
		// Sessions left after the grace are closed; a mail server
		// retries them elsewhere or later.
		d.explainer.Shutdown(ctx)
	}
	if d.rpz != nil {
		d.rpz.Shutdown(ctx)
	}
	if err != nil {
		d.log.Error("shutdown", "err", err)
		return 1
	}
	d.log.Info("stopped")
	return 0
}

// startCPUProfile profiles the process into file until stop is called.
func startCPUProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// daemon holds what a reload touches.
type daemon struct {
	log  *slog.Logger
	logs *logSwitch
	srv  *resolver.Server
	// explainer is nil when the policy that started serving has none.
	explainer *explainer.Server
	// rpz is nil when the policy that started serving has no rpz section.
	rpz     *resolver.RPZServer
	metrics *metrics
	path    string
	watch   *policyWatch // nil: not watching
	// lastDigest is the digest of the input of the last load, good or bad.
	lastDigest string
}

// reload loads the policy file again and swaps it in; on any error the old
// policy keeps serving. With onChange, a load that read the same input as
// the last one, good or bad, does nothing more: a file saved in several
// steps, or touched, makes no second reload and no repeated error log.
func (d *daemon) reload(why string, onChange bool) {
	old := d.srv.Policy()
	p, digest, zone, zoneErr, err := loadServing(d.path)
	if onChange && digest == d.lastDigest {
		d.log.Info("policy files changed but read the same as at the last load; nothing to do", "trigger", why)
		return
	}
	d.lastDigest = digest
	if err == nil {
		err = d.srv.Reload(p)
	}
	if err != nil {
		d.metrics.reloads.WithLabelValues("failure").Inc()
		var list policy.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				d.log.Error("policy error", "error", e.Error())
			}
			d.log.Error("reload failed; the old policy keeps serving", "trigger", why, "errors", len(list))
			return
		}
		d.log.Error("reload failed; the old policy keeps serving", "trigger", why, "err", err.Error())
		return
	}
	d.metrics.reloads.WithLabelValues("success").Inc()
	if d.watch != nil {
		if err := d.watch.follow(p); err != nil {
			d.log.Warn("cannot watch the new policy's files; reload with SIGHUP", "err", err)
		}
	}
	d.logs.set(p.Log)
	if !slices.Equal(old.Listen, p.Listen) || old.Metrics != p.Metrics || !slices.Equal(old.Explainer.Listen, p.Explainer.Listen) || old.RPZ.Listen != p.RPZ.Listen {
		d.log.Warn("listen, metrics, explainer.listen and rpz.listen changes need a restart; they are not applied by a reload")
	}
	switch {
	case zoneErr != nil:
		d.log.Error(zoneErr.Error())
	case d.rpz != nil && zone != nil:
		d.rpz.Update(zone, p.RPZ)
	}
	if d.explainer != nil && p.Explainer.Configured() {
		d.explainer.Apply(p.Explainer)
	}
	d.log.Info("policy reloaded", "trigger", why, "file", p.File, "rules", len(p.Rules()), "domains", p.DomainCount())
	logWarnings(d.log, p)
}

// untilExpiry is how long until the next exception in p expires, so that a
// reload can take it out; a day at most, so the timer is never idle long.
func untilExpiry(p *policy.Policy, now time.Time) time.Duration {
	next := 24 * time.Hour
	for _, r := range p.Rules() {
		if r.Expires.IsZero() || r.Expired {
			continue
		}
		end := r.Expires.Add(24 * time.Hour)
		if d := end.Sub(now); d > 0 && d < next {
			next = d + time.Second
		}
	}
	return next
}

// startExplainer binds the policy's explainer, if it has one, and returns
// it ready to serve; nil when the policy has none.
func startExplainer(log *slog.Logger, p *policy.Policy, srv *resolver.Server, m *metrics) (*explainer.Server, error) {
	if !p.Explainer.Configured() {
		return nil, nil
	}
	x := explainer.New(p.Explainer, explainer.Config{Policy: srv.Policy, Logger: log, Observer: explainerMetrics{m}})
	bound, err := x.Listen(p.Explainer.Listen)
	if err != nil {
		return nil, err
	}
	m.watchExplainer(x)
	for _, a := range bound {
		log.Info("explainer listening", "net", "tcp", "addr", a.String(), "hostname", p.Explainer.Hostname)
	}
	return x, nil
}

func logPolicy(log *slog.Logger, p *policy.Policy, upstreams []string, loadTime time.Duration) {
	version, revision := buildVersion()
	log.Info("serving", "version", version, "revision", revision, "policy", p.File, "rules", len(p.Rules()), "domains", p.DomainCount(),
		"lookalikes_of", strings.Join(p.Lookalikes.Protect, ","),
		"upstreams", strings.Join(upstreams, ","), "load_ms", loadTime.Milliseconds())
	logWarnings(log, p)
}

func logWarnings(log *slog.Logger, p *policy.Policy) {
	for _, w := range p.Warnings() {
		log.Warn(w.Msg, "at", w.Pos.String())
	}
}
