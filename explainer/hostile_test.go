package explainer

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/typoguard/typoguard/policy"
)

// wellBehaved runs one whole mail server's session from the local address
// from and checks that every reply is the one it should be.
func wellBehaved(t *testing.T, addr, from string) {
	t.Helper()
	c, err := dialFrom(addr, from)
	if err != nil {
		t.Fatalf("well-behaved client from %s: %v", from, err)
	}
	defer c.Close()
	c.expect(t, "220 sinkhole.test ESMTP")
	c.send(t, "EHLO mta.example.org")
	c.expect(t, "250-")
	c.send(t, "MAIL FROM:<alice@example.org>")
	c.expect(t, "250 ")
	c.send(t, "RCPT TO:<bob@army.ml>")
	c.expect(t, "550 5.1.2 army.ml is not army.mil")
	c.send(t, "QUIT")
	c.expect(t, "221 ")
}

func dialFrom(addr, from string) (*rawConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawConn{Conn: nc, r: bufio.NewReader(nc)}, nil
}

// openMany opens n connections from the local address from and returns
// them with how many were greeted (220) and how many refused (421).
func openMany(t *testing.T, addr, from string, n int) (conns []*rawConn, greeted, refused int) {
	t.Helper()
	for range n {
		c, err := dialFrom(addr, from)
		if err != nil {
			t.Fatalf("connection %d from %s: %v", len(conns), from, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i, c := range conns {
		got, err := c.readReply(5 * time.Second)
		switch {
		case strings.HasPrefix(got, "220 "):
			greeted++
		case strings.HasPrefix(got, "421 4.7.0 "):
			refused++
		default:
			t.Fatalf("connection %d from %s: first reply %q, %v", i, from, got, err)
		}
	}
	return conns, greeted, refused
}

// untilServed retries a well-behaved session from from until it is served,
// for at most a few seconds: a place frees up once an idle session is old
// enough to be closed for it.
func untilServed(t *testing.T, addr, from string) {
	t.Helper()
	deadline := time.Now().Add(evictIdle + 5*time.Second)
	for {
		c, err := dialFrom(addr, from)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.readReply(5 * time.Second)
		c.Close()
		if strings.HasPrefix(got, "220 ") {
			wellBehaved(t, addr, from)
			return
		}
		if !strings.HasPrefix(got, "421 4.7.0 ") || time.Now().After(deadline) {
			t.Fatalf("client from %s never served: last reply %q, %v", from, got, err)
		}
		// A refused connection is answered at once; wait before the next.
		time.Sleep(100 * time.Millisecond)
	}
}

// checkAdmitted checks that of 2,000 connections no more than limit were
// open at once: those greeted, less the idle ones closed to make room
// (which happens when opening them took over evictIdle) and those that
// timed out.
func checkAdmitted(t *testing.T, ts *testServer, greeted, refused, limit int) {
	t.Helper()
	closed := int(ts.obs.evicted.Load()) + ts.obs.get(ts.obs.errs, "timeout")
	if greeted+refused != 2000 || greeted-closed > limit || refused == 0 {
		t.Errorf("greeted %d, refused %d, closed %d idle ones: want at most %d open at once and the rest refused", greeted, refused, closed, limit)
	}
}

// longTimeout keeps the sessions of a flood open while it is counted.
func longTimeout(e *policy.ExplainerSettings) { e.Timeout = time.Minute }

func TestHostileInput(t *testing.T) {
	t.Run("1 MB line", func(t *testing.T) {
		ts := startServer(t, testPolicy, nil)
		c := dialRaw(t, ts.addr)
		c.expect(t, "220 ")
		go c.Write([]byte(strings.Repeat("a", 1<<20)))
		c.expect(t, "500 5.4.0 ")
		if got, err := c.readReply(5 * time.Second); err == nil {
			t.Errorf("connection still open after the long line: %q", got)
		}
		wellBehaved(t, ts.addr, "127.0.0.1")
		if n := ts.obs.get(ts.obs.errs, "line_too_long"); n != 1 {
			t.Errorf("line_too_long errors: %d, want 1", n)
		}
	})

	t.Run("10,000 commands", func(t *testing.T) {
		ts := startServer(t, testPolicy, nil)
		c := dialRaw(t, ts.addr)
		c.expect(t, "220 ")
		go c.Write([]byte(strings.Repeat("NOOP\r\n", 10000)))
		ok := 0
		for {
			got, err := c.readReply(5 * time.Second)
			if err != nil {
				t.Fatalf("after %d replies to NOOP: %q, %v", ok, got, err)
			}
			if strings.HasPrefix(got, "250 ") {
				ok++
				continue
			}
			if !strings.HasPrefix(got, "421 4.7.0 sinkhole.test too many commands") {
				t.Fatalf("reply %q after %d NOOPs", got, ok)
			}
			break
		}
		if ok != maxCommands {
			t.Errorf("%d NOOPs answered before the session ended, want %d", ok, maxCommands)
		}
		wellBehaved(t, ts.addr, "127.0.0.1")
	})

	t.Run("a client that never speaks", func(t *testing.T) {
		ts := startServer(t, testPolicy, func(e *policy.ExplainerSettings) { e.Timeout = time.Second })
		c := dialRaw(t, ts.addr)
		c.expect(t, "220 ")
		wellBehaved(t, ts.addr, "127.0.0.1")
		got, err := c.readReply(5 * time.Second)
		if !strings.HasPrefix(got, "421 4.4.2 ") {
			t.Errorf("silent client: got %q, %v; want 421 4.4.2 after the timeout", got, err)
		}
		if _, err := c.readReply(5 * time.Second); err == nil {
			t.Errorf("silent client's connection still open")
		}
	})

	t.Run("a client that trickles", func(t *testing.T) {
		ts := startServer(t, testPolicy, func(e *policy.ExplainerSettings) { e.Timeout = time.Second })
		c := dialRaw(t, ts.addr)
		c.expect(t, "220 ")
		// A byte at a time, never a whole line within the timeout.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for range 50 {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte("N")); err != nil {
						return
					}
				}
			}
		}()
		// Each timeout ends a partial line, which the server reads as a bad
		// command; after a few it closes, and in any case at the session's
		// end.
		limit := time.Now().Add(mustPolicy(t, testPolicy).Explainer.SessionLimit())
		var replies []string
		for time.Now().Before(limit) {
			got, err := c.readReply(5 * time.Second)
			if err != nil {
				break
			}
			replies = append(replies, got)
		}
		if time.Now().After(limit) {
			t.Fatalf("trickling client still connected after the session limit; replies %q", replies)
		}
		if n := len(replies); n == 0 || !strings.HasPrefix(replies[n-1], "500 5.5.1 Too many errors") && !strings.HasPrefix(replies[n-1], "421 ") {
			t.Errorf("trickling client: replies %q, want the last to close the session", replies)
		}
		wellBehaved(t, ts.addr, "127.0.0.1")
	})

	t.Run("2,000 connections from one address", func(t *testing.T) {
		ts := startServer(t, testPolicy, longTimeout)
		_, greeted, refused := openMany(t, ts.addr, "127.0.0.1", 2000)
		checkAdmitted(t, ts, greeted, refused, mustPolicy(t, testPolicy).Explainer.MaxPerClient)
		wellBehaved(t, ts.addr, "127.0.0.2")
		// The same address as the flood gets in too, in the place of an
		// idle session of its own.
		untilServed(t, ts.addr, "127.0.0.1")
		if ts.obs.evicted.Load() == 0 {
			t.Errorf("no idle session was closed to make room")
		}
	})

	t.Run("2,000 connections from 40 addresses", func(t *testing.T) {
		ts := startServer(t, testPolicy, longTimeout)
		greeted, refused := 0, 0
		for i := range 40 {
			_, g, r := openMany(t, ts.addr, fmt.Sprintf("127.0.1.%d", i+1), 50)
			greeted, refused = greeted+g, refused+r
		}
		checkAdmitted(t, ts, greeted, refused, mustPolicy(t, testPolicy).Explainer.MaxConnections)
		untilServed(t, ts.addr, "127.0.2.1")
		if got := ts.Open(); got > mustPolicy(t, testPolicy).Explainer.MaxConnections {
			t.Errorf("%d sessions open, over the limit", got)
		}
	})
}
