package upstream

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// A Server's UDP exchanges share a small pool of connected sockets rather
// than opening one per query: a socket, its connect and its close cost a
// third of a forwarded query's CPU time. The defences of RFC 5452 stay.
// Each query goes to one of muxSockets sockets picked at random, so queries
// in flight at once leave from several ports (§9.2); each socket's port is
// the kernel's random pick, and a socket is retired after muxUses queries,
// so no port serves long; each query's ID is drawn from a cryptographically
// strong generator and is unique among its socket's queries in flight; and
// a reply counts only with the query's ID and question (§9.1).

const (
	// muxSockets is how many sockets one server's queries spread over.
	muxSockets = 16
	// muxUses is how many queries one socket carries in its life.
	muxUses = 64
	// muxIdle is how long a socket with nothing in flight stays open.
	muxIdle = 5 * time.Second
	// muxReadSize is a socket's read buffer: a reply may be as large as
	// the 1232 bytes a query offers (RFC 6891 §6.2.5), and 4096, the size
	// servers long defaulted to, holds one from a server that ignores
	// that; a larger datagram comes in cut short, fails to unpack and is
	// dropped, and the query is retried or answered SERVFAIL. Sixteen
	// sockets a server, and more while retired ones drain, hold one each.
	muxReadSize = 4096
)

// udpMux is the pool of UDP sockets of one Server.
type udpMux struct {
	addr *net.UDPAddr
	bufs *sync.Pool // of *[]byte, muxReadSize long: read buffers

	mu sync.Mutex // guards slots, rng and the fields of every muxConn
	// slots hold the sockets taking new queries; nil: open one when
	// picked.
	slots [muxSockets]*muxConn
	rng   *rand.ChaCha8
}

// muxConn is one socket of a udpMux.
type muxConn struct {
	conn  *net.UDPConn
	calls map[uint16]*muxCall // queries waiting for a reply, by ID
	uses  int                 // queries sent on it
	// slot is the socket's index in slots while it takes new queries, -1
	// once it is retired: it is closed when its last reply is in.
	slot   int
	closed bool
}

// muxCall is one query waiting for its reply.
type muxCall struct {
	q    dns.Question
	done chan muxReply // buffered: whoever completes the call never waits
}

// muxReply completes a call: a reply, or the error that ended it.
type muxReply struct {
	r   *dns.Msg
	err error
}

func newUDPMux(addr *net.UDPAddr, bufs *sync.Pool) *udpMux {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails on Linux (crypto/rand.Read)
	return &udpMux{addr: addr, bufs: bufs, rng: rand.NewChaCha8(seed)}
}

// id returns a random message ID, for a query sent outside the pool.
func (x *udpMux) id() uint16 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return uint16(x.rng.Uint64())
}

// exchange sends wire, a packed query for q, on a socket of the pool under
// a new ID, which it writes into wire, and waits for the reply that
// matches it until ctx is done.
func (x *udpMux) exchange(ctx context.Context, wire []byte, q dns.Question) (*dns.Msg, error) {
	c, id, call, err := x.start(q)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint16(wire, id)
	if _, err := c.conn.Write(wire); err != nil {
		x.abandon(c, id, call)
		return nil, firstError(call, err)
	}
	select {
	case rep := <-call.done:
		return rep.r, rep.err
	case <-ctx.Done():
		x.abandon(c, id, call)
		err := ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = os.ErrDeadlineExceeded // "i/o timeout", as a socket deadline says
		}
		return nil, firstError(call, err)
	}
}

// firstError is the error that already completed call, if one did, or err.
func firstError(call *muxCall, err error) error {
	select {
	case rep := <-call.done:
		if rep.err != nil {
			return rep.err
		}
	default:
	}
	return err
}

// start registers a call for q on a socket picked at random, opening it if
// need be, under an ID free on that socket.
func (x *udpMux) start(q dns.Question) (*muxConn, uint16, *muxCall, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := int(x.rng.Uint64() % muxSockets)
	c := x.slots[i]
	if c == nil {
		conn, err := net.DialUDP("udp", nil, x.addr)
		if err != nil {
			return nil, 0, nil, err
		}
		c = &muxConn{conn: conn, calls: make(map[uint16]*muxCall, muxUses), slot: i}
		x.slots[i] = c
		go x.read(c)
	}
	id := uint16(x.rng.Uint64())
	for c.calls[id] != nil {
		id = uint16(x.rng.Uint64())
	}
	call := &muxCall{q: q, done: make(chan muxReply, 1)}
	c.calls[id] = call
	if c.uses++; c.uses == muxUses {
		x.retire(c)
	}
	return c, id, call, nil
}

// retire takes c out of its slot: it takes no new query. x.mu is held.
func (x *udpMux) retire(c *muxConn) {
	if c.slot >= 0 {
		x.slots[c.slot] = nil
		c.slot = -1
	}
}

// closable marks c closed if it is retired and has nothing in flight, and
// reports whether the caller is to close it. x.mu is held.
func (x *udpMux) closable(c *muxConn) bool {
	if c.closed || c.slot >= 0 || len(c.calls) > 0 {
		return false
	}
	c.closed = true
	return true
}

// abandon forgets the call under id, whose query timed out or failed.
func (x *udpMux) abandon(c *muxConn, id uint16, call *muxCall) {
	x.mu.Lock()
	if c.calls[id] == call {
		delete(c.calls, id)
	}
	closeIt := x.closable(c)
	x.mu.Unlock()
	if closeIt {
		_ = c.conn.Close()
	}
}

// read delivers the replies that arrive on c until c is closed: when it is
// retired and its last reply is in, when it has been idle for muxIdle, or
// when a read fails.
func (x *udpMux) read(c *muxConn) {
	bufp, _ := x.bufs.Get().(*[]byte)
	if bufp == nil {
		buf := make([]byte, muxReadSize)
		bufp = &buf
	}
	defer x.bufs.Put(bufp)
	buf := *bufp
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(muxIdle))
		n, err := c.conn.Read(buf)
		if err == nil {
			if x.deliver(c, buf[:n]) {
				return
			}
			continue
		}
		if errors.Is(err, net.ErrClosed) || x.failed(c, err) {
			return
		}
	}
}

// deliver completes the call a datagram answers. One that does not unpack
// or does not match a call is dropped: it is stray, late or forged (RFC
// 5452 §9.1). It reports whether it closed c.
func (x *udpMux) deliver(c *muxConn, b []byte) bool {
	if len(b) < 12 {
		return false
	}
	id := binary.BigEndian.Uint16(b)
	x.mu.Lock()
	call := c.calls[id]
	x.mu.Unlock()
	if call == nil {
		return false
	}
	r := new(dns.Msg)
	if r.Unpack(b) != nil || !matches(id, call.q, r) {
		return false
	}
	x.mu.Lock()
	if c.calls[id] != call {
		x.mu.Unlock() // abandoned meanwhile
		return false
	}
	delete(c.calls, id)
	closeIt := x.closable(c)
	x.mu.Unlock()
	call.done <- muxReply{r: r}
	if closeIt {
		_ = c.conn.Close()
	}
	return closeIt
}

// failed handles a read error on c. An idle socket's deadline closes it;
// any other error — an ICMP port unreachable reported by the kernel on a
// connected socket, above all — ends every call on it, and closes it. It
// reports whether c is closed.
func (x *udpMux) failed(c *muxConn, err error) bool {
	x.mu.Lock()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if len(c.calls) > 0 {
			x.mu.Unlock()
			return false // the calls' own deadlines bound them
		}
	} else {
		for id, call := range c.calls {
			call.done <- muxReply{err: err}
			delete(c.calls, id)
		}
	}
	x.retire(c)
	closeIt := x.closable(c)
	x.mu.Unlock()
	if closeIt {
		_ = c.conn.Close()
	}
	return true
}
