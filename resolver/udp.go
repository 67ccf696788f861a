package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/typoguard/typoguard/policy"
)

// UDP is served by a loop of typoguard's own per socket rather than by one
// goroutine per packet: it reads a batch of queries with one recvmmsg,
// answers every one it can without waiting (policy answers, cache hits,
// refusals) straight into reused buffers, and sends those replies with one
// sendmmsg. A query that needs the upstreams is handed to a goroutine of its
// own, which writes its reply alone when it comes.

const (
	// udpBatch is how many datagrams one read or write system call moves.
	udpBatch = 64
	// maxUDPQuery is the largest query read; a longer datagram is dropped.
	maxUDPQuery = 4096
	// maxUDPReply is the largest reply sent over UDP: finish truncates
	// replies to the client's size, and never above ednsSize.
	maxUDPReply = ednsSize
	// oobSize holds the packet-info control message of IPv4 or IPv6.
	oobSize = 64
)

// batchConn is the batch I/O of an ipv4.PacketConn or ipv6.PacketConn (their
// Message types are the same).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpSocket is one UDP socket served by one loop.
type udpSocket struct {
	conn  *net.UDPConn
	batch batchConn
	// pktinfo is set for a wildcard address: each query's destination is
	// read from its packet-info control message and its reply is sent
	// from that address, so that it leaves from where the query came to
	// (RFC 1123 §6.1.3.5).
	pktinfo bool
}

// newUDPSocket wraps a bound UDP socket for batch I/O.
func newUDPSocket(c *net.UDPConn, v4 bool) (*udpSocket, error) {
	s := &udpSocket{conn: c}
	wildcard := c.LocalAddr().(*net.UDPAddr).IP.IsUnspecified()
	if v4 {
		pc := ipv4.NewPacketConn(c)
		if wildcard {
			if err := pc.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
				return nil, err
			}
		}
		s.batch = pc
	} else {
		pc := ipv6.NewPacketConn(c)
		if wildcard {
			if err := pc.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
				return nil, err
			}
		}
		s.batch = pc
	}
	s.pktinfo = wildcard
	return s, nil
}

// udpLoop holds one socket's reused buffers.
type udpLoop struct {
	s    *Server
	sock *udpSocket
	in   []ipv4.Message
	out  []ipv4.Message
	// outBuf holds the replies of one batch, each in a slot of its own.
	outBuf [][]byte
	q      wireQuery // the fast path's reused query
}

func newUDPLoop(s *Server, sock *udpSocket) *udpLoop {
	l := &udpLoop{s: s, sock: sock, in: make([]ipv4.Message, udpBatch), out: make([]ipv4.Message, udpBatch), outBuf: make([][]byte, udpBatch)}
	l.q.name = make([]byte, 0, 256)
	for i := range l.in {
		l.in[i].Buffers = [][]byte{make([]byte, maxUDPQuery)}
		l.out[i].Buffers = [][]byte{nil}
		l.outBuf[i] = make([]byte, 0, maxUDPReply)
		if sock.pktinfo {
			l.in[i].OOB = make([]byte, oobSize)
			l.out[i].OOB = make([]byte, 0, oobSize)
		}
	}
	return l
}

// run serves the socket until it is closed.
func (l *udpLoop) run() error {
	for {
		n, err := l.sock.batch.ReadBatch(l.in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if isTemporary(err) {
				continue
			}
			return err
		}
		k := 0
		for i := range n {
			if l.serve(&l.in[i], &l.out[k], l.outBuf[k]) {
				k++
			}
		}
		l.flush(k)
	}
}

// isTemporary reports read errors that a UDP server reads past: an ICMP
// error of an earlier send, or a signal.
func isTemporary(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)
}

// flush sends the first k replies of the batch.
func (l *udpLoop) flush(k int) {
	for sent := 0; sent < k; {
		n, err := l.sock.batch.WriteBatch(l.out[sent:k], 0)
		if err != nil {
			// The datagram that failed is dropped; the rest go on.
			l.s.log.Debug("udp write", "err", err)
			n++
		}
		sent += n
	}
}

// serve answers one datagram. It reports whether a reply was put in out for
// this batch; a query sent to the upstreams is answered later, and junk is
// not answered at all.
func (l *udpLoop) serve(in, out *ipv4.Message, buf []byte) bool {
	pkt := in.Buffers[0][:in.N]
	if in.Flags&syscall.MSG_TRUNC != 0 {
		return false
	}
	out.Addr = in.Addr
	if l.sock.pktinfo {
		// The control message read is the one to send: IP_PKTINFO and
		// IPV6_PKTINFO name the local address and interface both ways.
		out.OOB = append(out.OOB[:0], in.OOB[:in.NN]...)
	}
	client := addrOf(in.Addr)
	if reply, ok := l.s.fastAnswer(l.s.state.Load(), client, pkt, buf, &l.q); ok {
		out.Buffers[0] = reply
		return true
	}
	reply, pend := l.s.answerUDP(client, pkt, buf)
	if pend != nil {
		// The batch's buffers are reused before this answer is written, so
		// it keeps its own copy of where to send it.
		pend.sock, pend.client, pend.to = l.sock, client, in.Addr
		if l.sock.pktinfo {
			pend.oob = append(pend.oob, out.OOB...)
		}
		l.s.startMiss(pend)
		return false
	}
	if reply == nil {
		return false
	}
	out.Buffers[0] = reply
	return true
}

// send writes one reply alone, for a query answered after its batch.
func (u *udpSocket) send(m *dns.Msg, to net.Addr, oob []byte, s *Server) {
	b, err := m.Pack()
	if err != nil {
		s.log.Debug("pack reply", "err", err)
		return
	}
	var werr error
	if u.pktinfo {
		_, _, werr = u.conn.WriteMsgUDP(b, oob, to.(*net.UDPAddr))
	} else {
		_, werr = u.conn.WriteTo(b, to)
	}
	if werr != nil {
		s.log.Debug("udp write", "err", werr)
	}
}

// pending is a query that needs the upstreams, as answerUDP left it, and
// where its reply goes.
type pending struct {
	req   *dns.Msg
	snap  *snapshot
	d     policy.Decision
	start time.Time

	sock   *udpSocket
	client netip.Addr
	to     net.Addr
	oob    []byte // the packet-info control message to send the reply with
}

// missWorkerIdle is how long a miss worker waits for another query before
// it ends.
const missWorkerIdle = 5 * time.Second

// startMiss hands p to an idle miss worker, or starts one. Workers live on
// from query to query, so that each miss does not start a goroutine and
// grow its stack again (a tenth of a miss's CPU time when it did); a flood's
// workers end once it is over.
func (s *Server) startMiss(p *pending) {
	s.inflight.Add(1)
	select {
	case s.misses <- p:
	default:
		go s.missWorker(p)
	}
}

// missWorker answers p from the upstreams, then every query handed to it,
// until it has waited missWorkerIdle for one.
func (s *Server) missWorker(p *pending) {
	idle := time.NewTimer(missWorkerIdle)
	defer idle.Stop()
	for {
		p.sock.send(s.answerUpstream(p.client, p), p.to, p.oob, s)
		s.inflight.Done()
		idle.Reset(missWorkerIdle)
		select {
		case p = <-s.misses:
		case <-idle.C:
			return
		}
	}
}

// answerUDP answers one UDP datagram from client. When it can answer at once
// it packs the reply into buf and returns it; a query that needs the
// upstreams comes back as pending, and a datagram not to be answered as
// neither.
func (s *Server) answerUDP(client netip.Addr, pkt, buf []byte) ([]byte, *pending) {
	if len(pkt) < 12 {
		// Not even a header: no reply, which could only amplify junk.
		return nil, nil
	}
	start := s.now()
	req, reject := s.unpackQuery(pkt)
	if req == nil {
		return nil, nil
	}
	if reject != nil {
		return packInto(reject, buf, s), nil
	}
	snap := s.state.Load()
	var res Result
	done := true
	s.safely(client, req, &res, func() { res, done = s.resolveLocal(snap, client, req) })
	if !done {
		return nil, &pending{req: req, snap: snap, d: res.Decision, start: start}
	}
	return packInto(s.reply(client, req, res, true, start), buf, s), nil
}

// answerUpstream answers a pending query from the upstreams.
func (s *Server) answerUpstream(client netip.Addr, p *pending) *dns.Msg {
	var res Result
	s.safely(client, p.req, &res, func() { res = s.resolveUpstream(context.Background(), p.snap, client, p.req, p.d) })
	return s.reply(client, p.req, res, true, p.start)
}

// packInto packs m into buf, which has room for any UDP reply; nil if it
// cannot be packed.
func packInto(m *dns.Msg, buf []byte, s *Server) []byte {
	b, err := m.PackBuffer(buf[:cap(buf)])
	if err != nil {
		s.log.Debug("pack reply", "err", err)
		return nil
	}
	return b
}

// unpackQuery reads a datagram as miekg/dns's server does: acceptQuery
// judges the header first; a query it accepts is unpacked, and one it
// rejects or that does not unpack gets a header-only FORMERR or NOTIMP in
// reject. It returns a nil req for a datagram to ignore.
func (s *Server) unpackQuery(pkt []byte) (req, reject *dns.Msg) {
	var h dns.Header
	h.Id = uint16(pkt[0])<<8 | uint16(pkt[1])
	h.Bits = uint16(pkt[2])<<8 | uint16(pkt[3])
	h.Qdcount = uint16(pkt[4])<<8 | uint16(pkt[5])
	h.Ancount = uint16(pkt[6])<<8 | uint16(pkt[7])
	h.Nscount = uint16(pkt[8])<<8 | uint16(pkt[9])
	h.Arcount = uint16(pkt[10])<<8 | uint16(pkt[11])
	action := acceptQuery(h)
	if action == dns.MsgIgnore {
		return nil, nil
	}
	req = new(dns.Msg)
	if action == dns.MsgAccept {
		if err := req.Unpack(pkt); err == nil {
			return req, nil
		}
	}
	// A rejected or broken query gets FORMERR, or NOTIMP with its opcode
	// for an unknown opcode, with its ID and RD bit and, if it unpacked,
	// its question; no other flag of the query is echoed.
	m := new(dns.Msg)
	m.Id = h.Id
	m.Response = true
	m.RecursionDesired = h.Bits&(1<<8) != 0
	m.Rcode = dns.RcodeFormatError
	if action == dns.MsgRejectNotImplemented {
		m.Opcode = int(h.Bits>>11) & 0xF
		m.Rcode = dns.RcodeNotImplemented
	}
	if action == dns.MsgAccept && len(req.Question) == 1 {
		m.Question = req.Question
	}
	return req, m
}
