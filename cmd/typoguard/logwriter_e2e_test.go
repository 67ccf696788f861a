package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// TestE2ESIGTERMWritesTheLastLines checks that the lines logged just before
// typoguard exits, the audit line of the last query and "stopped", reach
// stderr: Close on the way out writes them without waiting the interval.
func TestE2ESIGTERMWritesTheLastLines(t *testing.T) {
	_, upstream := newUpstream(t)
	g := startGuard(t, e2ePolicy(upstream, upstream, ""))
	if r := g.dig(t, "army.ml", "MX"); r.status != "NXDOMAIN" {
		t.Fatalf("army.ml MX: %s", r.status)
	}
	g.stop(t)
	logs := g.logLines()
	if n := len(logs); n == 0 || logs[n-1]["msg"] != "stopped" {
		t.Fatalf("the last line is not \"stopped\": %v", logs)
	}
	if g.countLog(func(l map[string]any) bool { return l["msg"] == "blocked" && l["name"] == "army.ml." }) != 1 {
		t.Errorf("no audit line for army.ml.: %v", logs)
	}
}

// TestE2ELogFloodDoesNotBlockQueries floods typoguard with blocked queries
// while nobody reads its stderr: every query is answered, the lines that do
// not fit are dropped, and the drops are counted in /metrics and reported
// in the log, in its JSON, once stderr is read again. Every blocked query
// has its audit line or is among those counted.
func TestE2ELogFloodDoesNotBlockQueries(t *testing.T) {
	upstream := resolvertest.NewServer(t, resolvertest.NewZone(t))
	yaml := strings.Replace(e2ePolicy(upstream, upstream, "metrics: 127.0.0.1:0\n"), "level: debug", "level: info", 1)
	cmd := exec.Command(binary, "serve", "-config", writePolicy(t, yaml), "-listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// The reader stops reading stderr once typoguard is listening, until
	// resume is closed.
	var (
		mu                    sync.Mutex // guards logs and bad
		logs                  []map[string]any
		bad                   []string // lines that are not whole JSON objects
		addr, metrics         string
		ready, resume, closed = make(chan struct{}), make(chan struct{}), make(chan struct{})
	)
	go func() {
		defer close(closed)
		sc := bufio.NewScanner(stderr)
		listening := 0
		for sc.Scan() {
			var line map[string]any
			mu.Lock()
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				bad = append(bad, sc.Text())
			}
			logs = append(logs, line)
			mu.Unlock()
			switch line["msg"] {
			case "metrics listening":
				metrics = fmt.Sprint(line["addr"])
			case "listening":
				addr = fmt.Sprint(line["addr"])
				if listening++; listening == 2 {
					close(ready)
					<-resume
				}
			}
		}
	}()
	select {
	case <-ready:
	case <-closed:
		t.Fatalf("typoguard exited before listening: %v", logs)
	case <-time.After(10 * time.Second):
		t.Fatal("typoguard did not report listening within 10s")
	}

	// Audit lines of about 380 bytes: 4 MiB of them is about 11,000.
	const clients, perClient = 4, 4000
	long := strings.Repeat("x", 60)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			// TCP, so that no query is lost and retried; a new connection
			// every 100 queries, below the server's limit per connection.
			var conn *dns.Conn
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for i := range perClient {
				if i%100 == 0 {
					if conn != nil {
						conn.Close()
					}
					var err error
					if conn, err = dns.Dial("tcp", addr); err != nil {
						errs <- err
						return
					}
				}
				q := new(dns.Msg).SetQuestion(fmt.Sprintf("%s.%s.%s.c%d-q%d.army.ml.", long, long, long, c, i), dns.TypeMX)
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				if err := conn.WriteMsg(q); err != nil {
					errs <- fmt.Errorf("query %d of client %d: %w", i, c, err)
					return
				}
				r, err := conn.ReadMsg()
				if err != nil {
					errs <- fmt.Errorf("query %d of client %d, nobody reading stderr: %w", i, c, err)
					return
				}
				if r.Rcode != dns.RcodeNameError {
					errs <- fmt.Errorf("query %d of client %d: %s, want NXDOMAIN", i, c, dns.RcodeToString[r.Rcode])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d blocked queries in %v with stderr unread", clients*perClient, time.Since(start))

	// Every audit line was logged before its answer was sent: the count
	// is final.
	dropped := scrape(t, "http://"+metrics+"/metrics")["typoguard_audit_dropped_total"]
	if dropped == 0 {
		t.Fatal("typoguard_audit_dropped_total is 0: the flood did not fill the log's buffer")
	}
	close(resume)
	// Once the report of the drops is read, the buffer has room again for
	// the lines of the shutdown.
	reported := func() (sum float64) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range logs {
			if l["msg"] == droppedMsg && l["level"] == "WARN" {
				n, _ := l["dropped"].(float64)
				sum += n
			}
		}
		return sum
	}
	for deadline := time.Now().Add(10 * time.Second); reported() < dropped; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("within 10s of reading stderr again, %v drops reported, %v counted", reported(), dropped)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	<-closed
	if err := cmd.Wait(); err != nil {
		t.Fatalf("typoguard exit after SIGTERM: %v", err)
	}

	if len(bad) > 0 {
		t.Errorf("%d lines not whole JSON, the first %q", len(bad), bad[0])
	}
	audited := 0
	for _, l := range logs {
		if l["msg"] == "blocked" {
			audited++
		}
	}
	if got := reported(); got != dropped {
		t.Errorf("%v drops reported in the log, %v counted in /metrics", got, dropped)
	}
	if float64(audited)+dropped != clients*perClient {
		t.Errorf("%d audit lines and %v dropped, want %d in all", audited, dropped, clients*perClient)
	}
	if n := len(logs); logs[n-1]["msg"] != "stopped" {
		t.Errorf("the last line is %v, want \"stopped\"", logs[n-1])
	}
	t.Logf("%d audit lines written, %v dropped", audited, dropped)
}
