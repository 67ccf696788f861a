// Package resolvertest provides loopback DNS servers and record helpers for
// tests of the resolver and of the binary.
package resolvertest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// shutdownTimeout bounds how long stopping a server waits for handlers that
// are still running, so a handler a test left blocked cannot hang cleanup.
const shutdownTimeout = 5 * time.Second

// NewServer starts a DNS server answering with h over UDP and TCP on the same
// port of 127.0.0.1, and returns its address as "127.0.0.1:PORT". It returns
// once both transports are serving; the server stops when the test ends.
func NewServer(t testing.TB, h dns.Handler) string {
	t.Helper()
	addr, _ := NewServerWithStop(t, h)
	return addr
}

// NewServerWithStop is NewServer that also returns a function stopping the
// server, so a test can take an upstream away mid-test. Calling stop more than
// once, or leaving the call to the test's cleanup, is safe.
func NewServerWithStop(t testing.TB, h dns.Handler) (addr string, stop func()) {
	t.Helper()
	pc, ln, err := listenPair()
	if err != nil {
		t.Fatalf("start test DNS server: %v", err)
	}

	udp := &dns.Server{PacketConn: pc, Handler: h, UDPSize: dns.MaxMsgSize}
	tcp := &dns.Server{Listener: ln, Handler: h}
	var (
		started = make(chan struct{}, 2)
		failed  = make(chan error, 2)
		served  sync.WaitGroup
	)
	for _, srv := range []*dns.Server{udp, tcp} {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		served.Add(1)
		go func() {
			defer served.Done()
			if err := srv.ActivateAndServe(); err != nil {
				failed <- err
			}
		}()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-failed:
			pc.Close()
			ln.Close()
			t.Fatalf("start test DNS server on %s: %v", pc.LocalAddr(), err)
		}
	}

	stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = udp.ShutdownContext(ctx)
		_ = tcp.ShutdownContext(ctx)
		served.Wait()
	})
	t.Cleanup(stop)
	return pc.LocalAddr().String(), stop
}

// listenPair binds UDP on an ephemeral port of 127.0.0.1 and then TCP on the
// same port, trying again with a new port when the TCP one is taken.
func listenPair() (net.PacketConn, net.Listener, error) {
	const attempts = 10
	var lastErr error
	for range attempts {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("bind udp: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("bind tcp on the udp port, %d attempts: %w", attempts, lastErr)
}

// NewSilentServer binds a UDP socket on 127.0.0.1 that never answers, and
// returns its address: an upstream that is up but dead. Nothing listens on
// TCP at that port. The socket is closed when the test ends.
func NewSilentServer(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("bind silent udp socket: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// NewRawServer starts a UDP-only server on 127.0.0.1 that answers each query
// it can unpack with the datagrams reply returns, sent in order, so a test can
// send replies a real server would not: wrong IDs, wrong questions, garbage.
// Datagrams that do not unpack are ignored. It returns the server's address;
// the server stops when the test ends.
func NewRawServer(t testing.TB, reply func(q *dns.Msg) [][]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("bind raw udp server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, dns.MaxMsgSize)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed by cleanup
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			for _, d := range reply(q) {
				if _, err := pc.WriteTo(d, from); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().String()
}
