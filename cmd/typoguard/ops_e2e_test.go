package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

func msgIs(msg string) func(map[string]any) bool {
	return func(l map[string]any) bool { return l["msg"] == msg }
}

func TestE2EReloadOnSIGHUP(t *testing.T) {
	_, upstream := newUpstream(t)
	g := startGuard(t, e2ePolicy(upstream, upstream, ""))
	if r := g.dig(t, "www.example.com", "A"); r.status != "NOERROR" {
		t.Fatalf("before: %s", r.status)
	}
	// A new rule, then SIGHUP: the very next query sees it.
	newRule := "  - {name: new-block, domains: [www.example.com], action: refuse}\n"
	if err := os.WriteFile(g.file, []byte(e2ePolicy(upstream, upstream, newRule)), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	g.waitLog(t, "policy reloaded", func(l map[string]any) bool { return l["msg"] == "policy reloaded" && l["trigger"] == "SIGHUP" })
	if r := g.dig(t, "www.example.com", "A"); r.status != "REFUSED" {
		t.Fatalf("after reload: %s, want REFUSED by the new rule", r.status)
	}

	// A broken file: every error logged, the old policy keeps serving.
	bad := strings.Replace(e2ePolicy(upstream, upstream, newRule), "action: refuse", "action: bounce", 1)
	bad = strings.Replace(bad, "upstream_timeout: 1s", "upstream_timeout: soon", 1)
	if err := os.WriteFile(g.file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	g.waitLog(t, "reload failed", msgIs("reload failed; the old policy keeps serving"))
	errs := g.countLog(func(l map[string]any) bool {
		e, _ := l["error"].(string)
		return l["msg"] == "policy error" && strings.HasPrefix(e, g.file+":")
	})
	if errs != 2 {
		t.Errorf("%d policy errors logged as file:line:col, want 2", errs)
	}
	if r := g.dig(t, "www.example.com", "A"); r.status != "REFUSED" {
		t.Errorf("after a bad reload: %s, want the old policy's REFUSED", r.status)
	}
	if r := g.dig(t, "army.ml", "MX"); r.status != "NXDOMAIN" {
		t.Errorf("after a bad reload: army.ml %s", r.status)
	}
}

func TestE2EReloadOnFileChange(t *testing.T) {
	_, upstream := newUpstream(t)
	g := startGuard(t, e2ePolicy(upstream, upstream, ""))
	if r := g.dig(t, "www.example.com", "A"); r.status != "NOERROR" {
		t.Fatalf("before: %s", r.status)
	}
	// As an editor saves: write a new file beside it and rename it over.
	tmp := g.file + ".tmp"
	os.WriteFile(tmp, []byte(e2ePolicy(upstream, upstream, "  - {name: edited, domains: [www.example.com], action: nxdomain}\n")), 0o644)
	if err := os.Rename(tmp, g.file); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "policy reloaded on file change", func(l map[string]any) bool { return l["msg"] == "policy reloaded" && l["trigger"] == "file changed" })
	if r := g.dig(t, "www.example.com", "A"); r.status != "NXDOMAIN" {
		t.Errorf("after the edit: %s, want NXDOMAIN", r.status)
	}
}

func TestE2EReloadOnConfigMapSymlinkSwap(t *testing.T) {
	_, upstream := newUpstream(t)
	// The kubelet's layout: policy.yaml -> ..data/policy.yaml, ..data ->
	// ..v1; an update writes ..v2 and renames a new ..data link over the old.
	dir := t.TempDir()
	write := func(version, extra string) {
		os.MkdirAll(filepath.Join(dir, version), 0o755)
		os.WriteFile(filepath.Join(dir, version, "policy.yaml"), []byte(e2ePolicy(upstream, upstream, extra)), 0o644)
	}
	write("..v1", "")
	os.Symlink("..v1", filepath.Join(dir, "..data"))
	os.Symlink(filepath.Join("..data", "policy.yaml"), filepath.Join(dir, "policy.yaml"))
	g := startGuardFile(t, filepath.Join(dir, "policy.yaml"))
	if r := g.dig(t, "www.example.com", "A"); r.status != "NOERROR" {
		t.Fatalf("before: %s", r.status)
	}
	write("..v2", "  - {name: from-configmap, domains: [www.example.com], action: nxdomain}\n")
	os.Symlink("..v2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "policy reloaded after the symlink swap", func(l map[string]any) bool { return l["msg"] == "policy reloaded" })
	if r := g.dig(t, "www.example.com", "A"); r.status != "NXDOMAIN" {
		t.Errorf("after the swap: %s, want NXDOMAIN", r.status)
	}
}

func TestE2EMetricsAndHealth(t *testing.T) {
	_, upstream := newUpstream(t)
	g := startGuard(t, e2ePolicy(upstream, upstream, "")+"metrics: 127.0.0.1:0\n")
	if g.metrics == "" {
		t.Fatal("no metrics listener logged")
	}
	for i := 0; i < 3; i++ {
		g.dig(t, "army.ml", "MX")
	}
	g.dig(t, "monitored.example.com", "A")
	g.dig(t, "www.example.com", "A")
	g.dig(t, "www.example.com", "A")
	g.cmd.Process.Signal(syscall.SIGHUP)
	g.waitLog(t, "policy reloaded", msgIs("policy reloaded"))

	got := scrape(t, "http://"+g.metrics+"/metrics")
	for series, want := range map[string]float64{
		`typoguard_blocks_total{action="nxdomain",mode="enforce",rule="mali-is-not-mil"}`: 3,
		`typoguard_blocks_total{action="nxdomain",mode="monitor",rule="trial"}`:           1,
		`typoguard_queries_total{rcode="NXDOMAIN",type="MX"}`:                             3,
		`typoguard_queries_total{rcode="NOERROR",type="A"}`:                               3,
		`typoguard_cache_hits_total`:                                                      1,
		`typoguard_cache_misses_total`:                                                    2,
		`typoguard_cache_entries`:                                                         2,
		`typoguard_upstream_exchanges_total{upstream="` + upstream + `"}`:                 2,
		`typoguard_reloads_total{result="success"}`:                                       1,
		`typoguard_reloads_total{result="failure"}`:                                       0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	for _, name := range []string{"typoguard_build_info", "typoguard_upstream_latency_seconds_count", "typoguard_cache_evictions_total", "typoguard_panics_total"} {
		found := false
		for k := range got {
			found = found || strings.HasPrefix(k, name)
		}
		if !found {
			t.Errorf("no %s series", name)
		}
	}
	// Every metric the Grafana dashboard queries is one typoguard exports.
	names := dashboardMetrics(t)
	if len(names) < 10 {
		t.Errorf("the dashboard queries %d metrics: %v", len(names), names)
	}
	for _, name := range names {
		found := false
		for k := range got {
			found = found || k == name || strings.HasPrefix(k, name+"{")
		}
		if !found {
			t.Errorf("the dashboard queries %s, which typoguard does not export", name)
		}
	}
	for k := range got {
		if strings.Contains(k, "army.ml") || strings.Contains(k, "127.0.0.1\"") && !strings.Contains(k, "upstream=") {
			t.Errorf("a label holds a query name or client address: %s", k)
		}
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get("http://" + g.metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestE2ENotReadyWithoutUpstream(t *testing.T) {
	upstream, stop := resolvertest.NewServerWithStop(t, resolvertest.NewZone(t, upstreamRecords...))
	stop()
	g := startGuard(t, e2ePolicy(upstream, upstream, "")+"metrics: 127.0.0.1:0\n")
	resp, err := http.Get("http://" + g.metrics + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the upstream down: %d %s, want 503", resp.StatusCode, body)
	}
}

// scrape reads a Prometheus text exposition into series → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestE2EReloadIgnoresSameInput saves a bad policy, then saves the same
// bytes again: the failure is logged once, not once
// per save, and a real edit after it is still applied.
func TestE2EReloadIgnoresSameInput(t *testing.T) {
	_, upstream := newUpstream(t)
	g := startGuard(t, e2ePolicy(upstream, upstream, ""))
	failed := func(l map[string]any) bool { return l["msg"] == "reload failed; the old policy keeps serving" }
	bad := []byte(e2ePolicy(upstream, upstream, "  - {name: broken, domains: [x.example], action: explode}\n"))
	if err := os.WriteFile(g.file, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "the failed reload", failed)
	if err := os.WriteFile(g.file, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "the same bytes saved again", func(l map[string]any) bool {
		return l["msg"] == "policy files changed but read the same as at the last load; nothing to do"
	})
	good := e2ePolicy(upstream, upstream, "  - {name: edited, domains: [www.example.com], action: nxdomain}\n")
	if err := os.WriteFile(g.file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "the reload of the real edit", func(l map[string]any) bool { return l["msg"] == "policy reloaded" })
	if n := g.countLog(failed); n != 1 {
		t.Errorf("the same bad input logged %d failed reloads, want 1", n)
	}
	if r := g.dig(t, "www.example.com", "A"); r.status != "NXDOMAIN" {
		t.Errorf("after the edit: %s, want NXDOMAIN", r.status)
	}
}

// dashboardMetrics returns the metric names the expressions of
// deploy/grafana/typoguard.json query, each once.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "typoguard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Definition string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	exprs := []string{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	seen := map[string]bool{}
	var names []string
	for _, e := range exprs {
		for _, n := range regexp.MustCompile(`\btypoguard_[a-z_]+`).FindAllString(e, -1) {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
}
