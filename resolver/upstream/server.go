// Package upstream exchanges queries with the upstream resolvers typoguard
// forwards to: one server over UDP with a TCP retry on truncation, and a group
// of servers tried in order.
package upstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds one Server.Exchange when neither the Server's Timeout
// nor the context sets a sooner deadline.
const DefaultTimeout = 2 * time.Second

// Exchanger sends one DNS query and returns the reply that matches it.
// Exchange does not modify q, and the reply's Id is q's. Implementations are
// safe for concurrent use.
type Exchanger interface {
	Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error)
}

// Server is one upstream resolver reached over UDP, and over TCP when a reply
// is truncated. Each exchange uses a new socket, so a new random source port,
// and a new random message ID; replies whose ID or question differ from the
// query are dropped (RFC 5452 §9.1). A Server is safe for concurrent use; do
// not change its fields once it is in use.
type Server struct {
	// Addr is the server's host:port.
	Addr string
	// Timeout bounds one Exchange, the UDP try and any TCP retry together;
	// zero means DefaultTimeout. A sooner context deadline wins.
	Timeout time.Duration

	bufs sync.Pool // of *[]byte, dns.MaxMsgSize long: UDP read buffers

	// udpAddr is Addr resolved, once: Addr is an IP address and port.
	udpOnce sync.Once
	udpAddr *net.UDPAddr
}

// NewServer returns a Server for the upstream at addr, a host:port.
func NewServer(addr string) *Server {
	return &Server{Addr: addr}
}

// Address returns the server's host:port.
func (s *Server) Address() string {
	return s.Addr
}

// Exchange sends q to the server and returns its reply, with the reply's Id
// set to q's. q must hold exactly one question; its OPT record, if any, is
// sent as it is.
func (s *Server) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	if len(q.Question) != 1 {
		return nil, fmt.Errorf("forward to %s: query has %d questions, want 1", s.Addr, len(q.Question))
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	m := q.Copy()
	r, err := s.exchange(ctx, "udp", m)
	if err == nil && r.Truncated {
		r, err = s.exchange(ctx, "tcp", m) // RFC 7766 §5
	}
	if err != nil {
		return nil, err
	}
	r.Id = q.Id
	return r, nil
}

// exchange sends m, under a new ID, over network and returns the first reply
// that matches it. It changes m's Id.
func (s *Server) exchange(ctx context.Context, network string, m *dns.Msg) (*dns.Msg, error) {
	m.Id = dns.Id()
	r, err := s.roundTrip(ctx, network, m)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			err = opErr.Err // the message names the network and server already
		}
		if ctxErr := ctx.Err(); errors.Is(ctxErr, context.Canceled) {
			err = ctxErr
		}
		return nil, fmt.Errorf("forward %s to %s over %s: %w", describe(m), s.Addr, network, err)
	}
	return r, nil
}

func (s *Server) roundTrip(ctx context.Context, network string, m *dns.Msg) (*dns.Msg, error) {
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack query: %w", err)
	}
	conn, err := s.dial(ctx, network)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return nil, err
		}
	}
	// Cancellation unblocks a read or write at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if network == "tcp" {
		return readTCP(conn, wire, m)
	}
	return s.readUDP(conn, wire, m)
}

// readUDP sends wire on conn and reads until a datagram matches m.
// Datagrams that do not unpack or do not match are dropped: they are stray,
// late or forged (RFC 5452 §9.1).
// dial opens a connection to the server: for UDP straight to its address,
// which is an IP address, a new socket with a new source port each time
// (RFC 5452 §9.2).
func (s *Server) dial(ctx context.Context, network string) (net.Conn, error) {
	if network == "udp" {
		s.udpOnce.Do(func() {
			if ap, err := netip.ParseAddrPort(s.Addr); err == nil {
				s.udpAddr = net.UDPAddrFromAddrPort(ap)
			}
		})
		if s.udpAddr != nil {
			return net.DialUDP("udp", nil, s.udpAddr)
		}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, s.Addr)
}

func (s *Server) readUDP(conn net.Conn, wire []byte, m *dns.Msg) (*dns.Msg, error) {
	if _, err := conn.Write(wire); err != nil {
		return nil, err
	}
	bufp, _ := s.bufs.Get().(*[]byte)
	if bufp == nil {
		buf := make([]byte, dns.MaxMsgSize)
		bufp = &buf
	}
	defer s.bufs.Put(bufp)
	buf := *bufp
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		r := new(dns.Msg)
		if r.Unpack(buf[:n]) != nil || !matches(m, r) {
			continue
		}
		return r, nil
	}
}

// readTCP sends wire on conn with its length prefix (RFC 1035 §4.2.2) and
// reads messages until one matches m.
func readTCP(conn net.Conn, wire []byte, m *dns.Msg) (*dns.Msg, error) {
	framed := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(framed, uint16(len(wire)))
	copy(framed[2:], wire)
	if _, err := conn.Write(framed); err != nil {
		return nil, err
	}
	var length [2]byte
	for {
		if _, err := io.ReadFull(conn, length[:]); err != nil {
			return nil, err
		}
		buf := make([]byte, binary.BigEndian.Uint16(length[:]))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return nil, err
		}
		r := new(dns.Msg)
		if r.Unpack(buf) != nil || !matches(m, r) {
			continue
		}
		return r, nil
	}
}

// matches reports whether r is a reply to q: a response with q's ID and q's
// question, the name compared case-insensitively (RFC 5452 §9.1, RFC 4343).
func matches(q, r *dns.Msg) bool {
	if !r.Response || r.Id != q.Id || len(r.Question) != 1 {
		return false
	}
	a, b := q.Question[0], r.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}
