package resolver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

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

// udpSocket is one UDP socket served by one loop.
type udpSocket struct {
	conn *net.UDPConn
	raw  syscall.RawConn
	// pktinfo is set for a wildcard address: each query's destination is
	// read from its packet-info control message and its reply is sent
	// from that address, so that it leaves from where the query came to
	// (RFC 1123 §6.1.3.5).
	pktinfo bool
}

// newUDPSocket wraps a bound UDP socket for batch I/O.
func newUDPSocket(c *net.UDPConn, v4 bool) (*udpSocket, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &udpSocket{conn: c, raw: raw}
	if c.LocalAddr().(*net.UDPAddr).IP.IsUnspecified() {
		if v4 {
			err = ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
		} else {
			err = ipv6.NewPacketConn(c).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
		}
		if err != nil {
			return nil, err
		}
		s.pktinfo = true
	}
	return s, nil
}

// udpLoop holds one socket's reused buffers: the headers, buffers, source
// addresses and control messages of a batch of queries read and of their
// replies, made once and handed to recvmmsg and sendmmsg as they are.
type udpLoop struct {
	_    [64]byte
	s    *Server
	sock *udpSocket
	in   []unix.Mmsghdr
	out  []unix.Mmsghdr
	// inIov and outIov are each header's one buffer; inBuf and outBuf
	// the buffers themselves, each reply in a slot of its own.
	inIov, outIov   []unix.Iovec
	inBuf, outBuf   [][]byte
	inName, outName []unix.RawSockaddrInet6 // room for either family's address
	inOOB, outOOB   [][]byte
	q               wireQuery // the fast path's reused query

	// recv and send are the system calls of one batch, made once as
	// method values, and n, errno what the last one returned.
	recv, send func(fd uintptr) bool
	sendFrom   int // the first header send sends
	sendTo     int // the header after the last
	n          int
	errno      syscall.Errno
	// The loop writes its fields at every query: padding keeps another
	// loop, allocated next to it, off its first and last cache lines.
	_ [64]byte
}

// newUDPLoop makes the loop of sock, reading the cache on lane.
func newUDPLoop(s *Server, sock *udpSocket, lane int) *udpLoop {
	l := &udpLoop{s: s, sock: sock,
		in: make([]unix.Mmsghdr, udpBatch), out: make([]unix.Mmsghdr, udpBatch),
		inIov: make([]unix.Iovec, udpBatch), outIov: make([]unix.Iovec, udpBatch),
		inBuf: make([][]byte, udpBatch), outBuf: make([][]byte, udpBatch),
		inName: make([]unix.RawSockaddrInet6, udpBatch), outName: make([]unix.RawSockaddrInet6, udpBatch),
		inOOB: make([][]byte, udpBatch), outOOB: make([][]byte, udpBatch),
	}
	l.q.name = make([]byte, 0, 256)
	l.q.lane = lane
	for i := range udpBatch {
		l.inBuf[i] = make([]byte, maxUDPQuery)
		l.outBuf[i] = make([]byte, 0, maxUDPReply)
		l.inIov[i].Base = &l.inBuf[i][0]
		l.in[i].Hdr.Iov, l.in[i].Hdr.Iovlen = &l.inIov[i], 1
		l.in[i].Hdr.Name = (*byte)(unsafe.Pointer(&l.inName[i]))
		l.out[i].Hdr.Iov, l.out[i].Hdr.Iovlen = &l.outIov[i], 1
		l.out[i].Hdr.Name = (*byte)(unsafe.Pointer(&l.outName[i]))
		if sock.pktinfo {
			l.inOOB[i] = make([]byte, oobSize)
			l.outOOB[i] = make([]byte, oobSize)
			l.in[i].Hdr.Control = &l.inOOB[i][0]
			l.out[i].Hdr.Control = &l.outOOB[i][0]
		}
	}
	l.recv, l.send = l.recvmmsg, l.sendmmsg
	return l
}

// The batch system calls are made raw, without telling the scheduler:
// the socket is non-blocking, so they never wait, and a sendmmsg of a
// full batch takes long enough that the scheduler, told, would hand the
// loop's P to another thread and back each time (futex wake-ups and
// context switches by the thousand a second under load). When the socket
// has nothing to read or no room to write, the callback returns false
// and the runtime's poller waits for it.

// recvmmsg is the read callback of one batch.
func (l *udpLoop) recvmmsg(fd uintptr) bool {
	for i := range l.in {
		h := &l.in[i].Hdr
		l.inIov[i].SetLen(maxUDPQuery)
		h.Namelen = unix.SizeofSockaddrInet6
		h.Flags = 0
		if l.sock.pktinfo {
			h.SetControllen(oobSize)
		}
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&l.in[0])), uintptr(len(l.in)), 0, 0, 0)
	if errno == unix.EAGAIN {
		return false
	}
	l.n, l.errno = int(n), errno
	return true
}

// sendmmsg is the write callback of one batch.
func (l *udpLoop) sendmmsg(fd uintptr) bool {
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&l.out[l.sendFrom])), uintptr(l.sendTo-l.sendFrom), 0, 0, 0)
	if errno == unix.EAGAIN {
		return false
	}
	l.n, l.errno = int(n), errno
	return true
}

// run serves the socket until it is closed.
func (l *udpLoop) run() error {
	for {
		if err := l.sock.raw.Read(l.recv); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if l.errno != 0 {
			if isTemporary(l.errno) {
				continue
			}
			return os.NewSyscallError("recvmmsg", l.errno)
		}
		l.q.now = time.Now().UnixNano() // one reading of the clock a batch
		k := 0
		for i := range l.n {
			if l.serve(i, k) {
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
	for l.sendFrom, l.sendTo = 0, k; l.sendFrom < k; {
		if err := l.sock.raw.Write(l.send); err != nil {
			return // closed
		}
		if l.errno == unix.EINTR {
			continue
		}
		if l.errno != 0 {
			// The datagram that failed is dropped; the rest go on.
			l.s.log.Debug("udp write", "err", l.errno)
			l.n = 1
		}
		l.sendFrom += l.n
	}
}

// serve answers datagram i of the batch. It reports whether a reply was
// put in slot k of the batch's replies; a query sent to the upstreams is
// answered later, and junk is not answered at all.
func (l *udpLoop) serve(i, k int) bool {
	in := &l.in[i]
	if in.Hdr.Flags&syscall.MSG_TRUNC != 0 {
		return false
	}
	pkt := l.inBuf[i][:in.Len]
	name := &l.inName[i]
	client := sockaddrIP(name)
	buf := l.outBuf[k]
	var oob []byte
	if l.sock.pktinfo {
		// The control message read is the one to send: IP_PKTINFO and
		// IPV6_PKTINFO name the local address and interface both ways.
		oob = l.inOOB[i][:in.Hdr.Controllen]
	}
	snap := l.s.state.Load()
	if snap.rate != nil && !snap.rate.allow(client, l.q.now) {
		// Over its rate: a bare truncated reply, which a real client
		// retries over TCP and which gives a spoofed victim nothing.
		l.s.rateLimited.Add(1)
		l.s.obs.RateLimited()
		reply := truncatedReply(pkt, buf, &l.q)
		if reply == nil {
			return false
		}
		l.fill(k, i, reply, oob)
		return true
	}
	reply, ok := l.s.fastAnswer(snap, client, pkt, buf, &l.q)
	if !ok {
		var pend *pending
		reply, pend = l.s.answerUDP(client, pkt, buf)
		if pend != nil {
			// The batch's buffers are reused before this answer is
			// written, so it keeps its own copy of where to send it.
			pend.sock, pend.client = l.sock, client
			pend.to = udpAddrOf(client, name)
			pend.oob = append(pend.oob, oob...)
			l.s.startMiss(pend)
			return false
		}
		if reply == nil {
			return false
		}
	}
	l.fill(k, i, reply, oob)
	return true
}

// fill puts reply to query i in slot k of the batch's replies, to the
// query's source, from where it came with its control message oob.
func (l *udpLoop) fill(k, i int, reply, oob []byte) {
	out := &l.out[k]
	l.outName[k] = l.inName[i]
	out.Hdr.Namelen = l.in[i].Hdr.Namelen
	l.outIov[k].Base = unsafe.SliceData(reply)
	l.outIov[k].SetLen(len(reply))
	if l.sock.pktinfo {
		copy(l.outOOB[k], oob)
		out.Hdr.SetControllen(len(oob))
	}
}

// truncatedReply writes into buf the reply to a rate-limited query: its
// header and question, QR, TC and RA set, no records. It returns nil for
// a datagram not to answer.
func truncatedReply(pkt, buf []byte, q *wireQuery) []byte {
	if !parseWireQuery(pkt, q) {
		return nil
	}
	out := append(buf[:0], pkt[:q.qEnd]...)
	out[2] = 0x80 | 0x02 | pkt[2]&0x01 // QR, TC, RD as asked; opcode QUERY
	out[3] = 0x80                      // RA, RCODE NOERROR
	out[6], out[7], out[8], out[9], out[10], out[11] = 0, 0, 0, 0, 0, 0
	return out
}

// udpAddrOf is the address of sa, whose IP is ip, for a reply sent alone.
func udpAddrOf(ip netip.Addr, sa *unix.RawSockaddrInet6) *net.UDPAddr {
	a := &net.UDPAddr{IP: net.IP(ip.AsSlice()), Port: int(sa.Port>>8 | sa.Port<<8)} // the port is big-endian
	if sa.Family == unix.AF_INET6 && sa.Scope_id != 0 {
		a.Zone = strconv.FormatUint(uint64(sa.Scope_id), 10)
	}
	return a
}

// sockaddrIP is the IP address in a sockaddr_in or sockaddr_in6, unmapped
// from IPv4-in-IPv6.
func sockaddrIP(sa *unix.RawSockaddrInet6) netip.Addr {
	if sa.Family == unix.AF_INET {
		v4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrFrom4(v4.Addr)
	}
	return netip.AddrFrom16(sa.Addr).Unmap()
}

// send writes one reply alone, for a query answered after its batch,
// packed into buf, which has room for any UDP reply.
func (u *udpSocket) send(m *dns.Msg, to net.Addr, oob, buf []byte, s *Server) {
	b := packInto(m, buf, s)
	if b == nil {
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
	up    *route // whose place the query holds

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
	buf := make([]byte, 0, maxUDPReply) // every reply the worker sends is packed here
	for {
		p.sock.send(s.answerUpstream(p.client, p), p.to, p.oob, buf, s)
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
		// The place to wait is taken here, so that a query beyond its
		// route's share costs no worker: it is answered in this batch.
		if pl := snap.plans.of(res.Decision); !pl.up.acquire(pl.share) {
			res = overShare(req, pl)
		} else {
			return nil, &pending{req: req, snap: snap, d: res.Decision, start: start, up: pl.up}
		}
	}
	return packInto(s.reply(client, req, res, true, start), buf, s), nil
}

// answerUpstream answers a pending query from the upstreams.
func (s *Server) answerUpstream(client netip.Addr, p *pending) *dns.Msg {
	var res Result
	defer p.up.release()
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
	// for an unknown opcode, with its ID and RD bit and, if it unpacks,
	// its one question and an OPT when it had one (RFC 6891 §7); no other
	// flag of the query is echoed.
	m := new(dns.Msg)
	m.Id = h.Id
	m.Response = true
	m.RecursionDesired = h.Bits&(1<<8) != 0
	m.Rcode = dns.RcodeFormatError
	if action == dns.MsgRejectNotImplemented {
		m.Opcode = int(h.Bits>>11) & 0xF
		m.Rcode = dns.RcodeNotImplemented
	}
	if action == dns.MsgAccept {
		// Broken on the way: what did unpack may name the question.
		if len(req.Question) == 1 {
			m.Question = req.Question
		}
		return req, m
	}
	if parsed := new(dns.Msg); parsed.Unpack(pkt) == nil {
		if len(parsed.Question) == 1 {
			m.Question = parsed.Question
		}
		if opt := parsed.IsEdns0(); opt != nil {
			m.Extra = []dns.RR{replyOPT(opt.Do())}
		}
	}
	return req, m
}
