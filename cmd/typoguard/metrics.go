package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/typoguard/typoguard/explainer"
	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// metrics is the Prometheus side of resolver.Observer, on a registry of its
// own. No label holds a query name or a client address.
type metrics struct {
	reg             *prometheus.Registry
	queries         *queryCounts
	blocks          *blockCounts
	upstreamTries   *prometheus.CounterVec
	upstreamErrors  *prometheus.CounterVec
	upstreamLatency *prometheus.HistogramVec
	reloads         *prometheus.CounterVec
	panics          prometheus.Counter
	rateLimited     prometheus.Counter
	tcpRefused      *prometheus.CounterVec

	explainerRefused *prometheus.CounterVec
	explainerConns   *prometheus.CounterVec
	explainerEvicted prometheus.Counter
	explainerErrors  *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg:     prometheus.NewRegistry(),
		queries: newQueryCounts(),
		blocks:  newBlockCounts(),
		upstreamTries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "typoguard_upstream_exchanges_total",
			Help: "Exchanges with each upstream server, failed ones included.",
		}, []string{"upstream"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "typoguard_upstream_errors_total",
			Help: "Exchanges with each upstream server that got no reply (timeout, network error).",
		}, []string{"upstream"}),
		upstreamLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "typoguard_upstream_latency_seconds",
			Help:    "Time to a reply from each upstream server.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"upstream"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "typoguard_reloads_total",
			Help: "Policy reloads, by result (success or failure).",
		}, []string{"result"}),
		tcpRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "typoguard_tcp_refused_total",
			Help: "TCP connections closed on arrival, over limits.tcp_connections (limit total) or tcp_per_client (limit per_client).",
		}, []string{"limit"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "typoguard_rate_limited_total",
			Help: "UDP queries answered truncated (TC set, no records) because their client was over rate_limit.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "typoguard_panics_total",
			Help: "Queries whose handling panicked; each was answered SERVFAIL.",
		}),
		explainerRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "typoguard_explainer_refused_total",
			Help: "Recipients the explainer refused, by the rule that blocks their domain (none: no rule does).",
		}, []string{"rule"}),
		explainerConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "typoguard_explainer_connections_total",
			Help: "SMTP connections to the explainer: served, or refused with 421 at a connection limit.",
		}, []string{"result"}),
		explainerEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "typoguard_explainer_evicted_total",
			Help: "Idle SMTP sessions closed to make room for a new connection at a connection limit.",
		}),
		explainerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "typoguard_explainer_errors_total",
			Help: "SMTP session errors: timeout, too_many_commands, line_too_long, bad_command, network.",
		}, []string{"reason"}),
	}
	version, revision := buildVersion()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "typoguard_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	info.Set(1)
	m.reg.MustRegister(m.queries, m.blocks, m.upstreamTries, m.upstreamErrors, m.upstreamLatency, m.reloads, m.panics, m.rateLimited, m.tcpRefused, info,
		m.explainerRefused, m.explainerConns, m.explainerEvicted, m.explainerErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	for _, l := range []string{"total", "per_client"} {
		m.tcpRefused.WithLabelValues(l)
	}
	return m
}

// watchCache exports the cache's counters, read when scraped.
func (m *metrics) watchCache(srv *resolver.Server) {
	counter := func(name, help string, get func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, get)
	}
	m.reg.MustRegister(
		counter("typoguard_cache_hits_total", "Queries answered from the cache.", func() float64 { return float64(srv.CacheStats().Hits) }),
		counter("typoguard_cache_misses_total", "Queries the cache could not answer.", func() float64 { return float64(srv.CacheStats().Misses) }),
		counter("typoguard_cache_evictions_total", "Entries evicted to make room.", func() float64 { return float64(srv.CacheStats().Evictions) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "typoguard_cache_entries", Help: "Entries in the cache now."},
			func() float64 { return float64(srv.CacheStats().Entries) }),
	)
}

// watchLog exports the count of log lines dropped, read when scraped. Each
// batch of drops is also reported in the log itself.
func (m *metrics) watchLog(l *logSwitch) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "typoguard_audit_dropped_total",
		Help: "Log lines, audit lines and all others, dropped because the log's destination could not keep up.",
	}, func() float64 { return float64(l.Dropped()) }))
}

// watchExplainer exports the explainer's open sessions, read when scraped.
func (m *metrics) watchExplainer(x *explainer.Server) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "typoguard_explainer_sessions", Help: "SMTP sessions open at the explainer now.",
	}, func() float64 { return float64(x.Open()) }))
}

// explainerMetrics is the Prometheus side of explainer.Observer.
type explainerMetrics struct{ m *metrics }

// Refused implements explainer.Observer.
func (e explainerMetrics) Refused(rule string) {
	if rule == "" {
		rule = "none"
	}
	e.m.explainerRefused.WithLabelValues(rule).Inc()
}

// Connection implements explainer.Observer.
func (e explainerMetrics) Connection(result string) { e.m.explainerConns.WithLabelValues(result).Inc() }

// Evicted implements explainer.Observer.
func (e explainerMetrics) Evicted() { e.m.explainerEvicted.Inc() }

// Error implements explainer.Observer.
func (e explainerMetrics) Error(reason string) { e.m.explainerErrors.WithLabelValues(reason).Inc() }

// Query implements resolver.Observer.
func (m *metrics) Query(lane int, qtype uint16, rcode int, _ resolver.Reason) {
	m.queries.add(lane, qtype, rcode)
}

// Block implements resolver.Observer.
func (m *metrics) Block(lane int, d policy.Decision) { m.blocks.add(lane, d) }

// PolicyLoaded implements resolver.Observer.
func (m *metrics) PolicyLoaded(p *policy.Policy) { m.blocks.load(p) }

// Upstream implements resolver.Observer.
func (m *metrics) Upstream(addr string, rtt time.Duration, err error) {
	m.upstreamTries.WithLabelValues(addr).Inc()
	// Made at the first exchange, failed or not, so that the share of
	// errors can be computed (and alerted on) before the first error.
	errs := m.upstreamErrors.WithLabelValues(addr)
	if err != nil {
		errs.Inc()
		return
	}
	m.upstreamLatency.WithLabelValues(addr).Observe(rtt.Seconds())
}

// Panic implements resolver.Observer.
func (m *metrics) Panic() { m.panics.Inc() }

// RateLimited implements resolver.Observer.
func (m *metrics) RateLimited() { m.rateLimited.Inc() }

// TCPRefused implements resolver.Observer.
func (m *metrics) TCPRefused(perClient bool) {
	limit := "total"
	if perClient {
		limit = "per_client"
	}
	m.tcpRefused.WithLabelValues(limit).Inc()
}

// typeLabel names a query type, folding the ones without a mnemonic into
// "other" so a client cannot grow the label set.
func typeLabel(t uint16) string {
	if t == 0 {
		return "none"
	}
	name := policy.TypeString(t)
	if strings.HasPrefix(name, "TYPE") {
		return "other"
	}
	return name
}

var rcodeNames = map[int]string{0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 16: "BADVERS"}

func rcodeLabel(rc int) string {
	if n, ok := rcodeNames[rc]; ok {
		return n
	}
	return "RCODE" + strconv.Itoa(rc)
}

// buildVersion reads the module version and VCS revision of the binary.
func buildVersion() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	version = bi.Main.Version
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && revision != "unknown" {
		revision += "-dirty"
	}
	return
}

// printVersion is `typoguard version`: the module version, the VCS
// revision the binary was built from and the Go that built it.
func printVersion(stdout io.Writer) int {
	version, revision := buildVersion()
	fmt.Fprintf(stdout, "typoguard %s (revision %s, %s)\n", version, revision, runtime.Version())
	return 0
}

// serveMetrics serves /metrics, /healthz and /readyz on addr until ctx ends.
// It returns the bound address once listening.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, m *metrics, srv *resolver.Server) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	// Go's profiles (heap, goroutines, CPU), on the metrics listener only:
	// what a soak test and an operator chasing memory read.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := srv.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		hs.Shutdown(shutdown)
	}()
	return ln.Addr(), nil
}
