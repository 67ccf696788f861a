package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/upstream"
)

// lockedBuffer is a bytes.Buffer a logger and a test may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFailureWarningsHeldBack sends misses to an upstream that always
// fails: one warning per 10 s, the next one saying how many it held back,
// and every query still answered SERVFAIL.
func TestFailureWarningsHeldBack(t *testing.T) {
	var logs lockedBuffer
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	up := &fakeUpstream{exchange: func(context.Context, *dns.Msg) (*dns.Msg, error) { return nil, errors.New("i/o timeout") }}
	p, err := policy.Parse("test.yaml", []byte(testPolicy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(p, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: clock,
		NewUpstream: func([]string, time.Duration) upstream.Exchanger { return up }})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(n int) {
		for i := range n {
			res := s.Resolve(context.Background(), localhost, query(fmt.Sprintf("miss%d-%d.example.", n, i), dns.TypeA, false))
			if res.Msg.Rcode != dns.RcodeServerFailure {
				t.Fatalf("a failed miss answered %s", dns.RcodeToString[res.Msg.Rcode])
			}
		}
	}
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "every upstream failed; answering SERVFAIL") {
				out = append(out, l)
			}
		}
		return out
	}
	ask(50)
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], `"held_back":0`) {
		t.Fatalf("after 50 failures in one moment: %d warnings, want 1 with held_back 0:\n%s", len(got), strings.Join(got, "\n"))
	}
	mu.Lock()
	now = now.Add(failLogEvery)
	mu.Unlock()
	ask(1)
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], `"held_back":49`) {
		t.Errorf("10 s later: %d warnings, want the second saying 49 were held back:\n%s", len(got), strings.Join(got, "\n"))
	}
}
