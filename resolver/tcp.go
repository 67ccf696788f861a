package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// TCP is served by a loop of typoguard's own per connection (RFC 7766):
// it reads one query after another, as the client pipelines them, and
// answers up to tcpPipeline of them at once, each reply written whole as
// soon as it is ready, so that a query waiting on a slow upstream holds up
// none of the others on its connection (§6.2.1.1). When that many are in
// flight it reads no more until one is answered. Connections are held to
// the policy's limits by limitedListener.

const (
	// tcpPipeline is how many queries of one connection are answered at
	// once.
	tcpPipeline = 16
	// tcpWriteTimeout bounds writing one reply to a client that does not
	// read.
	tcpWriteTimeout = 5 * time.Second
)

// tcpServer serves one TCP listener.
type tcpServer struct {
	s  *Server
	ln net.Listener

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // one per connection being served
}

func newTCPServer(s *Server, ln net.Listener) *tcpServer {
	return &tcpServer{s: s, ln: newLimitedListener(ln, s), conns: map[net.Conn]struct{}{}}
}

// serve accepts connections until the listener is closed.
func (t *tcpServer) serve() error {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return nil
		}
		t.conns[c] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go t.serveConn(c)
	}
}

// close stops accepting, and makes every connection stop reading: the
// queries it has read are still answered.
func (t *tcpServer) close() {
	t.ln.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.conns {
		_ = c.SetReadDeadline(time.Unix(1, 0))
	}
}

// serveConn reads and answers the queries of one connection until the
// client closes it, is idle for tcpIdleTimeout, or takes more than
// tcpReadTimeout to send a message whole; then it answers what it has
// read and closes the connection.
func (t *tcpServer) serveConn(c net.Conn) {
	defer t.wg.Done()
	client := addrOf(c.RemoteAddr())
	var (
		writeMu  sync.Mutex // one reply written at a time, whole
		answered sync.WaitGroup
		slots    = make(chan struct{}, tcpPipeline)
		length   [2]byte
	)
	wait := tcpReadTimeout // for the first query; then the idle timeout
	for {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		if _, err := io.ReadFull(c, length[:]); err != nil {
			break
		}
		n := binary.BigEndian.Uint16(length[:])
		if n < 12 {
			break // shorter than a header: no DNS client sends that
		}
		// The message, once begun, must arrive whole within the read
		// timeout: a client trickling bytes is let go.
		_ = c.SetReadDeadline(time.Now().Add(tcpReadTimeout))
		pkt := make([]byte, n)
		if _, err := io.ReadFull(c, pkt); err != nil {
			break
		}
		wait = tcpIdleTimeout
		slots <- struct{}{}
		answered.Add(1)
		go func() {
			defer answered.Done()
			defer func() { <-slots }()
			reply := t.s.answerTCP(client, pkt)
			if reply == nil {
				return
			}
			writeMu.Lock()
			defer writeMu.Unlock()
			_ = c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
			if _, err := c.Write(reply); err != nil {
				t.s.log.Debug("tcp write", "client", client.String(), "err", err)
			}
		}()
	}
	answered.Wait()
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

// answerTCP answers one query read from a TCP connection: its reply with
// the length before it (RFC 1035 §4.2.2), or nil for a message not to be
// answered. A query that does not unpack, or is not a plain query, gets
// the same header-only FORMERR or NOTIMP as over UDP.
func (s *Server) answerTCP(client netip.Addr, pkt []byte) []byte {
	if len(pkt) < 12 {
		return nil
	}
	s.inflight.Add(1)
	defer s.inflight.Done()
	start := s.now()
	req, reject := s.unpackQuery(pkt)
	if req == nil {
		return nil
	}
	m := reject
	if m == nil {
		var res Result
		s.safely(client, req, &res, func() { res = s.Resolve(context.Background(), client, req) })
		m = s.reply(client, req, res, false, start)
	}
	out, err := m.Pack()
	if err != nil || len(out) > 0xFFFF {
		s.log.Debug("pack reply", "err", err)
		return nil
	}
	buf := make([]byte, 2+len(out))
	binary.BigEndian.PutUint16(buf, uint16(len(out)))
	copy(buf[2:], out)
	return buf
}
