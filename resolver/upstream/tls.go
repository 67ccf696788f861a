package upstream

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// TLSServer is one upstream resolver reached over DNS over TLS (RFC 7858):
// a few connections kept open and shared, each carrying many queries at
// once, answered in any order (RFC 7766 §6.2.1.1). The certificate must be
// valid for ServerName under the pool in Config; a failed handshake fails
// the exchange, and nothing is ever sent in plain text instead. A TLSServer
// is safe for concurrent use; do not change its fields once it is in use.
type TLSServer struct {
	// Addr is the server's IP address and port, typically 853.
	Addr string
	// Config holds the server name and roots to check the certificate
	// against (nil RootCAs: the system's).
	Config *tls.Config
	// Timeout bounds one Exchange; zero means DefaultTimeout.
	Timeout time.Duration
	// Name is how the server is shown: tls://Addr#ServerName.
	Name string

	mu    sync.Mutex
	conns []*tlsConn // open, at most tlsConns
	next  int        // the connection the next query goes to

	dialOnce sync.Once
	dialing  chan struct{} // holds a token while a connection is dialled
}

// tlsConns is how many connections a TLSServer keeps to its server; each
// carries up to tlsInFlight queries at once.
const (
	tlsConns    = 2
	tlsInFlight = 64
	// tlsIdle closes a connection no query used for this long (RFC 7766
	// §6.2.3: close idle connections rather than hold the server's).
	tlsIdle = 20 * time.Second
)

// tlsConn is one open connection and the queries waiting on it.
type tlsConn struct {
	conn  net.Conn
	wmu   sync.Mutex // one message written at a time
	mu    sync.Mutex
	calls map[uint16]chan []byte // by ID; closed when the connection fails
	err   error                  // why the connection ended
	used  time.Time
	idle  *time.Timer
}

// Address returns how the server is shown in logs and metrics.
func (s *TLSServer) Address() string { return s.Name }

// Exchange sends q to the server over TLS and returns its reply, with the
// reply's Id set to q's.
func (s *TLSServer) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	ctx, cancel, wire, err := prepare(ctx, q, s.Name, s.Timeout)
	if err != nil {
		return nil, err
	}
	defer cancel()
	r, err := s.exchange(ctx, wire, q.Question[0])
	if err != nil {
		return nil, forwardError(ctx, q, s.Name, err)
	}
	r.Id = q.Id
	return r, nil
}

func (s *TLSServer) exchange(ctx context.Context, wire []byte, q dns.Question) (*dns.Msg, error) {
	c, id, reply, err := s.start(ctx)
	if err != nil {
		return nil, err
	}
	framed := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(framed, uint16(len(wire)))
	copy(framed[2:], wire)
	binary.BigEndian.PutUint16(framed[2:], id)
	c.wmu.Lock()
	if d, ok := ctx.Deadline(); ok {
		_ = c.conn.SetWriteDeadline(d)
	}
	_, err = c.conn.Write(framed)
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
		return nil, err
	}
	for {
		select {
		case b, ok := <-reply:
			if !ok {
				return nil, c.failure()
			}
			r := new(dns.Msg)
			if r.Unpack(b) != nil || !matches(id, q, r) {
				c.forget(id)
				return nil, fmt.Errorf("a reply that does not answer the query")
			}
			return r, nil
		case <-ctx.Done():
			c.forget(id)
			return nil, ctx.Err()
		}
	}
}

// start picks a connection with room, dialling one when there is none,
// and registers a new ID on it. One dial at a time: the queries that come
// meanwhile wait for it, each no longer than its own deadline.
func (s *TLSServer) start(ctx context.Context) (*tlsConn, uint16, chan []byte, error) {
	c, full := s.pick()
	if c == nil && !full {
		s.dialOnce.Do(func() { s.dialing = make(chan struct{}, 1) })
		select {
		case s.dialing <- struct{}{}:
		case <-ctx.Done():
			return nil, 0, nil, ctx.Err()
		}
		if c, full = s.pick(); c == nil && !full {
			var err error
			c, err = s.dial(ctx)
			if err != nil {
				<-s.dialing
				return nil, 0, nil, err
			}
		}
		<-s.dialing
	}
	if c == nil {
		return nil, 0, nil, fmt.Errorf("%d queries already wait on each of %d connections", tlsInFlight, tlsConns)
	}
	id, reply, err := c.register()
	return c, id, reply, err
}

// pick returns an open connection with room, in turn; full is set when
// there is none and no more may be opened.
func (s *TLSServer) pick() (c *tlsConn, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < len(s.conns); i++ {
		cand := s.conns[(s.next+i)%len(s.conns)]
		if cand.room() {
			s.next = (s.next + i + 1) % len(s.conns)
			return cand, false
		}
	}
	return nil, len(s.conns) >= tlsConns
}

// dial opens a connection, completes the handshake and starts its reader.
func (s *TLSServer) dial(ctx context.Context) (*tlsConn, error) {
	d := tls.Dialer{Config: s.Config}
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			err = opErr.Err
		}
		return nil, fmt.Errorf("TLS connection: %w", err)
	}
	c := &tlsConn{conn: conn, calls: map[uint16]chan []byte{}, used: time.Now()}
	c.idle = time.AfterFunc(tlsIdle, func() { c.closeIdle(s) })
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	go c.read(s)
	return c, nil
}

// room reports whether c is open with room for another query.
func (c *tlsConn) room() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil && len(c.calls) < tlsInFlight
}

// register takes a random ID free on c.
func (c *tlsConn) register() (uint16, chan []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, nil, c.err
	}
	var b [2]byte
	for {
		_, _ = rand.Read(b[:])
		id := binary.BigEndian.Uint16(b[:])
		if _, taken := c.calls[id]; !taken {
			ch := make(chan []byte, 1)
			c.calls[id] = ch
			c.used = time.Now()
			return id, ch, nil
		}
	}
}

func (c *tlsConn) forget(id uint16) {
	c.mu.Lock()
	delete(c.calls, id)
	c.mu.Unlock()
}

// failure is why c ended.
func (c *tlsConn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// read delivers each reply to the query waiting on its ID, until the
// connection ends; then every query still waiting fails.
func (c *tlsConn) read(s *TLSServer) {
	var length [2]byte
	for {
		if _, err := io.ReadFull(c.conn, length[:]); err != nil {
			c.fail(err)
			break
		}
		b := make([]byte, binary.BigEndian.Uint16(length[:]))
		if _, err := io.ReadFull(c.conn, b); err != nil {
			c.fail(err)
			break
		}
		if len(b) < 2 {
			continue
		}
		c.mu.Lock()
		id := binary.BigEndian.Uint16(b)
		if ch, ok := c.calls[id]; ok {
			delete(c.calls, id)
			ch <- b
		}
		c.mu.Unlock()
	}
	s.mu.Lock()
	for i, o := range s.conns {
		if o == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			if s.next >= len(s.conns) {
				s.next = 0
			}
			break
		}
	}
	s.mu.Unlock()
}

// fail ends c with err: the queries waiting on it fail with it.
func (c *tlsConn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("the server closed the connection")
		}
		c.err = err
		for id, ch := range c.calls {
			close(ch)
			delete(c.calls, id)
		}
		c.idle.Stop()
	}
	c.mu.Unlock()
	c.conn.Close()
}

// closeIdle closes c when no query has used it for tlsIdle, and checks
// again later otherwise.
func (c *tlsConn) closeIdle(s *TLSServer) {
	c.mu.Lock()
	busy := len(c.calls) > 0 || time.Since(c.used) < tlsIdle
	if busy && c.err == nil {
		c.idle.Reset(tlsIdle)
	}
	c.mu.Unlock()
	if !busy {
		c.fail(errors.New("closed when idle"))
	}
}
