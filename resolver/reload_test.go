package resolver

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/upstream"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestReloadUnderLoad swaps the policy 100 times while clients query over
// real sockets: not one query may fail or go unanswered, and every answer
// must be one that some policy in force gives.
func TestReloadUnderLoad(t *testing.T) {
	up := &fakeUpstream{exchange: answerFrom(t, "www.example.com. 300 IN A 198.51.100.1", "flip.example.com. 300 IN A 198.51.100.2")}
	s := newTestServer(t, testPolicy, up)
	var versions []*policy.Policy
	for _, extra := range []string{"", "  - {name: flip, domains: [flip.example.com], action: nxdomain}\n"} {
		p, err := policy.Parse("v.yaml", []byte(testPolicy+extra), policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, p)
	}
	bound, err := s.Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	addr := bound[0].Addr.String()

	var stop atomic.Bool
	var answered, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: []string{"udp", "tcp"}[i%2], Timeout: 2 * time.Second}
			for !stop.Load() {
				for _, q := range []struct {
					name  string
					ok    []int
					qtype uint16
				}{
					{"army.ml.", []int{dns.RcodeNameError}, dns.TypeMX},
					{"www.example.com.", []int{dns.RcodeSuccess}, dns.TypeA},
					{"flip.example.com.", []int{dns.RcodeSuccess, dns.RcodeNameError}, dns.TypeA},
				} {
					r, _, err := c.Exchange(query(q.name, q.qtype, true), addr)
					if err != nil {
						failed.Add(1)
						t.Errorf("%s over %s: %v", q.name, c.Net, err)
						continue
					}
					if r.Rcode != q.ok[0] && (len(q.ok) == 1 || r.Rcode != q.ok[1]) {
						failed.Add(1)
						t.Errorf("%s: rcode %s", q.name, dns.RcodeToString[r.Rcode])
						continue
					}
					answered.Add(1)
				}
			}
		}()
	}
	for i := range 100 {
		if err := s.Reload(versions[i%2]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // let queries run between swaps
	}
	stop.Store(true)
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if failed.Load() != 0 || answered.Load() == 0 {
		t.Errorf("%d answered, %d failed", answered.Load(), failed.Load())
	}
	t.Logf("%d queries answered across 100 reloads", answered.Load())
}

// TestAuditLineGolden pins the fields of the audit line.
func TestAuditLineGolden(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	up := &fakeUpstream{exchange: answerFrom(t,
		"watched.example. 300 IN A 198.51.100.2",
		"alias.example.com. 300 IN CNAME x.army.ml.",
	)}
	p, err := policy.Parse("test.yaml", []byte(testPolicy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fixed := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	s, err := New(p, Config{Logger: log, Now: func() time.Time { return fixed }, NewUpstream: func([]string, time.Duration) upstream.Exchanger { return up }})
	if err != nil {
		t.Fatal(err)
	}
	client := localhost
	s.Resolve(context.Background(), client, query("Army.ML.", dns.TypeMX, false))
	s.Resolve(context.Background(), client, query("watched.example.", dns.TypeA, false))
	s.Resolve(context.Background(), client, query("alias.example.com.", dns.TypeA, false))
	s.Resolve(context.Background(), client, query("alias.example.com.", dns.TypeA, false))

	golden := filepath.Join("..", "testdata", "golden", "audit.jsonl")
	if *update {
		os.WriteFile(golden, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./resolver -update)", err)
	}
	if buf.String() != string(want) {
		t.Errorf("audit lines:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestReloadKeepsUnchangedUpstreams(t *testing.T) {
	made := map[string]int{}
	cfg := Config{NewUpstream: func(addrs []string, _ time.Duration) upstream.Exchanger {
		made[strings.Join(addrs, ",")]++
		return &fakeUpstream{exchange: answerFrom(t)}
	}}
	parse := func(src string) *policy.Policy {
		p, err := policy.Parse("r.yaml", []byte(src), policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const a = "upstreams: [\"127.0.0.1:1\"]\nrules:\n  - {name: corp, domains: [corp.example], action: forward, servers: [\"127.0.0.1:2\"]}\n"
	s, err := New(parse(a), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(parse(a + "  - {name: x, domains: [x.example], action: nxdomain}\n")); err != nil {
		t.Fatal(err)
	}
	if made["127.0.0.1:1"] != 1 || made["127.0.0.1:2"] != 1 {
		t.Errorf("exchangers made %v: a reload that changes no upstream should keep them", made)
	}
	if err := s.Reload(parse("upstreams: [\"127.0.0.1:3\"]\n")); err != nil {
		t.Fatal(err)
	}
	if made["127.0.0.1:3"] != 1 {
		t.Errorf("exchangers made %v: a new upstream needs its own", made)
	}
}

// TestCacheCountsSurviveReload replaces the cache with a reload that
// changes its settings: the hits, misses and evictions counted before it
// still count, and the new cache's add to them.
func TestCacheCountsSurviveReload(t *testing.T) {
	up := &fakeUpstream{exchange: answerFrom(t, "www.example.com. 300 IN A 198.51.100.1")}
	s := newTestServer(t, testPolicy, up)
	ask := func() {
		s.Resolve(t.Context(), localhost, query("www.example.com.", dns.TypeA, false))
	}
	ask() // a miss
	ask() // a hit
	p, err := policy.Parse("v.yaml", []byte(testPolicy+"cache: {size: 500}\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	old := s.state.Load().cache
	if err := s.Reload(p); err != nil {
		t.Fatal(err)
	}
	if s.state.Load().cache == old {
		t.Fatal("the reload kept the cache; the test needs one that replaces it")
	}
	ask() // a miss in the new cache
	ask() // a hit
	if st := s.CacheStats(); st.Hits != 2 || st.Misses != 2 || st.Entries != 1 {
		t.Errorf("cache stats after a reload = %+v, want 2 hits, 2 misses and 1 entry", st)
	}
}
