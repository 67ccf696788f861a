package explainer

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on one SMTP session. A mail server refused at every recipient
// needs a handful of commands per message; these leave room for one that
// sends many messages over one connection, and stop one that never ends.
const (
	// maxCommands is how many command lines one session may send.
	maxCommands = 1000
	// maxSessionBytes is how much one session may send in all.
	maxSessionBytes = 1 << 20
	// maxLineLength is the longest command line read, twice what RFC 5321
	// §4.5.3.1.4 allows (512 octets), as mail servers are lenient.
	maxLineLength = 1024
	// evictIdle is how long a session must have sent nothing before a new
	// connection may take its place when a connection limit is reached.
	evictIdle = time.Second
	// refuseWrite bounds the write of a refusal to a connection over a
	// limit, so that the accept loop never waits on a client.
	refuseWrite = 100 * time.Millisecond
	// lingerTime and lingerBytes bound how long and how much a closing
	// session reads of the input it will not answer.
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 1 << 20
)

// errLimit ends a session that went over a limit; the library reads it as
// the end of the input.
var errLimit = io.EOF

// conn is an accepted connection under the explainer's limits: read
// deadlines never reach past the end of the session, and the session ends
// after maxCommands lines or maxSessionBytes bytes.
type conn struct {
	net.Conn
	srv      *Server
	client   netip.Addr
	hostname string    // for the replies it writes itself
	end      time.Time // no read waits past it

	lastRead atomic.Int64 // Unix nanoseconds of the last byte received

	// lines and read count the input; only the session's goroutine reads.
	lines int
	read  int

	// released is set once the connection no longer counts against the
	// limits; guarded by the tracker's mutex.
	released bool
}

func (c *conn) idle(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, c.lastRead.Load()))
}

// Read implements net.Conn, counting command lines and bytes. At a limit
// it tells the client why and ends the session.
func (c *conn) Read(b []byte) (int, error) {
	if c.lines >= maxCommands || c.read >= maxSessionBytes {
		c.srv.obs.Error("too_many_commands")
		c.reply("421 4.7.0 " + c.hostname + " too many commands, closing connection")
		return 0, errLimit
	}
	if room := maxSessionBytes - c.read; len(b) > room {
		b = b[:room]
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.lastRead.Store(c.srv.now().UnixNano())
		c.read += n
		for i := 0; i < n; i++ {
			if b[i] == '\n' {
				c.lines++
				if c.lines == maxCommands {
					n = i + 1 // the rest is never answered
					break
				}
			}
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.srv.obs.Error("timeout")
	}
	return n, err
}

// Write implements net.Conn. It corrects one reply of the library's:
// DATA or BDAT when no recipient was accepted gets 554 "no valid
// recipients" (RFC 5321 §3.3), not 502, which means "not implemented".
// It counts the library's replies to bad input.
func (c *conn) Write(b []byte) (int, error) {
	switch {
	case bytes.Equal(b, libNoRecipients):
		if _, err := c.Conn.Write(noRecipients); err != nil {
			return 0, err
		}
		return len(b), nil
	case bytes.HasPrefix(b, []byte("500 5.4.0 ")):
		c.srv.obs.Error("line_too_long")
	case len(b) > 4 && b[0] == '5' && b[1] == '0' && b[3] == ' ':
		c.srv.obs.Error("bad_command")
	}
	return c.Conn.Write(b)
}

// libNoRecipients is the library's reply to DATA or BDAT without an
// accepted recipient; noRecipients is ours.
var (
	libNoRecipients = []byte("502 5.5.1 Missing RCPT TO command.\r\n")
	noRecipients    = []byte("554 5.5.1 no valid recipients\r\n")
)

// SetDeadline implements net.Conn; the read deadline never passes the end
// of the session.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// SetReadDeadline implements net.Conn; the deadline never passes the end
// of the session.
func (c *conn) SetReadDeadline(t time.Time) error {
	if t.IsZero() || t.After(c.end) {
		t = c.end
	}
	return c.Conn.SetReadDeadline(t)
}

// Close implements net.Conn and releases the connection's place. It
// closes gently: the client may still be sending what will never be read
// (the rest of a long line, commands past the limit), and a close with
// unread input resets the connection, which can lose the last replies
// before the client reads them. So it ends its own side first and reads
// the input away, within a bound.
func (c *conn) Close() error {
	c.srv.limits.release(c)
	if tc, ok := c.Conn.(*net.TCPConn); ok && tc.CloseWrite() == nil {
		tc.SetReadDeadline(c.srv.now().Add(lingerTime))
		io.CopyN(io.Discard, tc, lingerBytes)
	}
	return c.Conn.Close()
}

// reply writes one reply line of the explainer's own, briefly.
func (c *conn) reply(line string) {
	c.Conn.SetWriteDeadline(c.srv.now().Add(refuseWrite))
	c.Conn.Write([]byte(line + "\r\n"))
}

// tracker counts the open connections, in all and per client address, and
// picks the one to close when a new connection finds a limit reached.
type tracker struct {
	mu        sync.Mutex // guards the fields below
	open      map[*conn]struct{}
	perClient map[netip.Addr]int
}

func newTracker() *tracker {
	return &tracker{open: map[*conn]struct{}{}, perClient: map[netip.Addr]int{}}
}

// admit counts c in if the limits allow, making room by closing the
// connection idle longest (at least evictIdle) among those that stand in
// its way: any when all maxTotal places are taken, the client's own when
// its maxPerClient are. It reports whether c was let in and how many
// connections were closed for it.
func (t *tracker) admit(c *conn, maxTotal, maxPerClient int, now time.Time) (ok bool, evicted int) {
	var victims []*conn
	defer func() {
		for _, v := range victims {
			v.reply("421 4.4.2 " + v.hostname + " idle too long while busy, closing connection")
			v.Conn.Close()
		}
	}()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.open) >= maxTotal {
		v := t.idlest(now, nil)
		if v == nil {
			return false, 0
		}
		t.drop(v)
		victims = append(victims, v)
	}
	if t.perClient[c.client] >= maxPerClient {
		v := t.idlest(now, &c.client)
		if v == nil {
			return false, len(victims)
		}
		t.drop(v)
		victims = append(victims, v)
	}
	t.open[c] = struct{}{}
	t.perClient[c.client]++
	return true, len(victims)
}

// idlest returns the connection idle longest, and at least evictIdle,
// among those of client, or among all when client is nil.
func (t *tracker) idlest(now time.Time, client *netip.Addr) *conn {
	var best *conn
	var bestIdle time.Duration
	for c := range t.open {
		if client != nil && c.client != *client {
			continue
		}
		if idle := c.idle(now); idle >= evictIdle && idle > bestIdle {
			best, bestIdle = c, idle
		}
	}
	return best
}

// drop stops counting c; the caller holds mu.
func (t *tracker) drop(c *conn) {
	if c.released {
		return
	}
	c.released = true
	delete(t.open, c)
	if t.perClient[c.client]--; t.perClient[c.client] <= 0 {
		delete(t.perClient, c.client)
	}
}

// release stops counting c, once.
func (t *tracker) release(c *conn) {
	t.mu.Lock()
	t.drop(c)
	t.mu.Unlock()
}

// closeAll closes every connection counted.
func (t *tracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.open {
		c.Conn.Close()
	}
}

// count returns the connections open now.
func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.open)
}

// remoteAddr returns the IP of a connection's peer, unmapped.
func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
