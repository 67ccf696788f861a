package resolver

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// TCP connections are held to the policy's limits (limits.tcp_connections
// in all, limits.tcp_per_client from one address): a connection over
// either is closed as soon as it is accepted, so a client that opens
// thousands, or trickles bytes into them, cannot make typoguard hold more
// (RFC 7766 §6.2.2). miekg/dns's server closes a connection idle for
// tcpIdleTimeout and one whose message has not arrived whole within
// tcpReadTimeout of its first byte being due.
const (
	tcpIdleTimeout = 10 * time.Second
	tcpReadTimeout = 2 * time.Second
)

// limitedListener accepts connections within the limits of the policy in
// force when each arrives.
type limitedListener struct {
	net.Listener
	s *Server

	mu    sync.Mutex // guards total and per
	total int
	per   map[netip.Addr]int
}

func newLimitedListener(ln net.Listener, s *Server) *limitedListener {
	return &limitedListener{Listener: ln, s: s, per: map[netip.Addr]int{}}
}

// Accept returns the next connection within the limits; those over them
// are closed here and never reach the server.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lim := l.s.state.Load().policy.Limits
		client := addrOf(c.RemoteAddr())
		l.mu.Lock()
		overTotal := l.total >= lim.TCPConnections
		over := overTotal || l.per[client] >= lim.TCPPerClient
		if !over {
			l.total++
			l.per[client]++
		}
		l.mu.Unlock()
		if over {
			l.s.obs.TCPRefused(!overTotal)
			_ = c.Close()
			continue
		}
		return &limitedConn{Conn: c, l: l, client: client}, nil
	}
}

// release gives back the places of a closed connection from client.
func (l *limitedListener) release(client netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.per[client]--; l.per[client] <= 0 {
		delete(l.per, client)
	}
}

// limitedConn is an accepted connection that gives its places back when
// it is closed.
type limitedConn struct {
	net.Conn
	l      *limitedListener
	client netip.Addr
	once   sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() { c.l.release(c.client) })
	return c.Conn.Close()
}
