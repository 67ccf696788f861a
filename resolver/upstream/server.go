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
// is truncated. UDP queries share a small pool of sockets on random ports,
// each retired after a few dozen queries (see udpmux.go); every query, over
// UDP or TCP, has a new random message ID, and replies whose ID or question
// differ from the query are dropped (RFC 5452 §9.1). A Server is safe for
// concurrent use; do not change its fields once it is in use.
type Server struct {
	// Addr is the server's IP address and port.
	Addr string
	// Timeout bounds one Exchange, the UDP try and any TCP retry together;
	// zero means DefaultTimeout. A sooner context deadline wins.
	Timeout time.Duration

	bufs sync.Pool // of *[]byte, muxReadSize long: UDP read buffers

	// mux is made once, on first use; nil when Addr is no IP address
	// and port, which muxErr then says.
	muxOnce sync.Once
	mux     *udpMux
	muxErr  error
}

// NewServer returns a Server for the upstream at addr, an IP address and
// port.
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
	// Packed once; each try writes its own ID into it.
	ctx, cancel, wire, err := prepare(ctx, q, s.Addr, s.Timeout)
	if err != nil {
		return nil, err
	}
	defer cancel()
	r, err := s.exchange(ctx, "udp", wire, q)
	if err == nil && r.Truncated {
		r, err = s.exchange(ctx, "tcp", wire, q) // RFC 7766 §5
	}
	if err != nil {
		return nil, err
	}
	r.Id = q.Id
	return r, nil
}

// prepare is how every exchange with the server shown as name begins: q
// must hold one question, ctx is bounded by timeout (DefaultTimeout when
// zero) unless it ends sooner, and q is packed.
func prepare(ctx context.Context, q *dns.Msg, name string, timeout time.Duration) (context.Context, context.CancelFunc, []byte, error) {
	if len(q.Question) != 1 {
		return nil, nil, nil, fmt.Errorf("forward to %s: query has %d questions, want 1", name, len(q.Question))
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	cancel := context.CancelFunc(func() {})
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > timeout {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	wire, err := q.Pack()
	if err != nil {
		cancel()
		return nil, nil, nil, fmt.Errorf("forward %s to %s: pack query: %w", describe(q), name, err)
	}
	return ctx, cancel, wire, nil
}

// forwardError says which query to which server failed, and how; a
// cancelled exchange says so rather than how the cancellation surfaced.
func forwardError(ctx context.Context, q *dns.Msg, name string, err error) error {
	if ctxErr := ctx.Err(); errors.Is(ctxErr, context.Canceled) {
		err = ctxErr
	}
	return fmt.Errorf("forward %s to %s: %w", describe(q), name, err)
}

// exchange sends wire, q packed, under a new ID over network and returns
// the first reply that matches it.
func (s *Server) exchange(ctx context.Context, network string, wire []byte, q *dns.Msg) (*dns.Msg, error) {
	s.muxOnce.Do(func() {
		ap, err := netip.ParseAddrPort(s.Addr)
		if err != nil {
			s.muxErr = fmt.Errorf("upstream address is not an IP address and port: %w", err)
			return
		}
		s.mux = newUDPMux(net.UDPAddrFromAddrPort(ap), &s.bufs)
	})
	var r *dns.Msg
	err := s.muxErr
	if err == nil {
		if network == "udp" {
			r, err = s.mux.exchange(ctx, wire, q.Question[0])
		} else {
			r, err = s.exchangeTCP(ctx, wire, q.Question[0])
		}
	}
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			err = opErr.Err // the message names the network and server already
		}
		if ctxErr := ctx.Err(); errors.Is(ctxErr, context.Canceled) {
			err = ctxErr
		}
		return nil, fmt.Errorf("forward %s to %s over %s: %w", describe(q), s.Addr, network, err)
	}
	return r, nil
}

// exchangeTCP sends wire for q under a new ID on a connection of its own.
func (s *Server) exchangeTCP(ctx context.Context, wire []byte, q dns.Question) (*dns.Msg, error) {
	id := s.mux.id()
	binary.BigEndian.PutUint16(wire, id)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
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
	return readTCP(conn, wire, id, q)
}

// readTCP sends wire on conn with its length prefix (RFC 1035 §4.2.2) and
// reads messages until one matches id and q.
func readTCP(conn net.Conn, wire []byte, id uint16, q dns.Question) (*dns.Msg, error) {
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
		if r.Unpack(buf) != nil || !matches(id, q, r) {
			continue
		}
		return r, nil
	}
}

// matches reports whether r is a reply to the query of q sent under id: a
// response with that ID and question, the name compared case-insensitively
// (RFC 5452 §9.1, RFC 4343).
func matches(id uint16, a dns.Question, r *dns.Msg) bool {
	if !r.Response || r.Id != id || len(r.Question) != 1 {
		return false
	}
	b := r.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}
