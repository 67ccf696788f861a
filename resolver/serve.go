package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"syscall"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/resolver/cache"
	"golang.org/x/sys/unix"
)

// acceptQuery rejects, before unpacking, what is not a plain query:
// responses are ignored, opcodes other than QUERY get NOTIMP, and a message
// without exactly one question, or with records a query cannot carry, gets
// FORMERR.
func acceptQuery(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	if opcode := int(dh.Bits>>11) & 0xF; opcode != dns.OpcodeQuery {
		return dns.MsgRejectNotImplemented
	}
	if dh.Qdcount != 1 || dh.Ancount > 0 || dh.Nscount > 0 || dh.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// Listener is one bound transport of a listen address.
type Listener struct {
	Net  string // "udp" or "tcp"
	Addr net.Addr
}

// Listen binds UDP and TCP on every address, the TCP port following the UDP
// one when the port is 0, and returns what it bound. Each UDP address gets
// one socket per GOMAXPROCS, sharing the port (SO_REUSEPORT), so that the
// kernel spreads queries over as many loops as there are cores to run
// them. Serve starts answering.
func (s *Server) Listen(addrs []string) ([]Listener, error) {
	s.serversMu.Lock()
	defer s.serversMu.Unlock()
	var bound []Listener
	for _, addr := range addrs {
		udps, ln, err := listenBoth(addr, runtime.GOMAXPROCS(0))
		if err != nil {
			s.closeAllLocked()
			return nil, err
		}
		for _, u := range udps {
			sock, err := newUDPSocket(u.conn, u.v4)
			if err != nil {
				for _, u := range udps {
					u.conn.Close()
				}
				ln.Close()
				s.closeAllLocked()
				return nil, fmt.Errorf("listen on %s over udp: %w", addr, err)
			}
			s.udp = append(s.udp, sock)
		}
		s.servers = append(s.servers, newTCPServer(s, ln))
		seen := map[string]bool{}
		for _, u := range udps {
			if a := u.conn.LocalAddr().String(); !seen[a] {
				seen[a] = true
				bound = append(bound, Listener{Net: "udp", Addr: u.conn.LocalAddr()})
			}
		}
		bound = append(bound, Listener{Net: "tcp", Addr: ln.Addr()})
	}
	return bound, nil
}

// boundUDP is one bound UDP socket and its family.
type boundUDP struct {
	conn *net.UDPConn
	v4   bool
}

// listenBoth binds addr over UDP (perFamily sockets of each family, sharing
// the port) and TCP. An IPv4 address binds IPv4 only and an IPv6 address
// IPv6 only, so "0.0.0.0:53" and "[::]:53" can stand side by side; an empty
// host (":53") takes both families: one TCP socket, and UDP sockets of each
// family on their wildcard address.
func listenBoth(addr string, perFamily int) ([]boundUDP, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	type family struct {
		network, host string
		v4            bool
	}
	families := []family{{"udp4", "0.0.0.0", true}, {"udp6", "::", false}}
	tcp := "tcp"
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			families, tcp = []family{{"udp4", host, true}}, "tcp4"
		} else {
			families, tcp = []family{{"udp6", host, false}}, "tcp6"
		}
	}
	lc := net.ListenConfig{Control: reusePort}
	for attempt := 0; ; attempt++ {
		var udps []boundUDP
		closeAll := func() {
			for _, u := range udps {
				u.conn.Close()
			}
		}
		p := port
		var bindErr error
		for _, f := range families {
			for range perFamily {
				pc, err := lc.ListenPacket(context.Background(), f.network, net.JoinHostPort(f.host, p))
				if err != nil {
					bindErr = fmt.Errorf("listen on %s over udp: %w", addr, err)
					break
				}
				c := pc.(*net.UDPConn)
				udps = append(udps, boundUDP{conn: c, v4: f.v4})
				p = strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
			}
			if bindErr != nil {
				break
			}
		}
		if bindErr == nil {
			tcpAddr := net.JoinHostPort(host, p)
			ln, err := net.Listen(tcp, tcpAddr)
			if err == nil {
				return udps, ln, nil
			}
			bindErr = fmt.Errorf("listen on %s over tcp: %w", tcpAddr, err)
		}
		closeAll()
		// With port 0 the port the kernel chose for one socket may be taken
		// for another: try another.
		if port != "0" || attempt >= 10 {
			return nil, nil, bindErr
		}
	}
}

// reusePort sets SO_REUSEPORT on a socket before it is bound.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// Serve answers on every bound listener until Shutdown; it returns the
// first error a listener fails with, or nil after Shutdown.
func (s *Server) Serve() error {
	s.serversMu.Lock()
	servers := append([]*tcpServer(nil), s.servers...)
	udp := append([]*udpSocket(nil), s.udp...)
	s.serversMu.Unlock()
	if len(servers) == 0 && len(udp) == 0 {
		return errors.New("serve: nothing to serve on (call Listen first)")
	}
	errc := make(chan error, len(servers)+len(udp))
	for _, srv := range servers {
		go func() { errc <- srv.serve() }()
	}
	for i, u := range udp {
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			errc <- newUDPLoop(s, u, i%cache.Lanes).run()
		}()
	}
	go s.summarizeRateLimit()
	var first error
	for range len(servers) + len(udp) {
		if err := <-errc; err != nil && first == nil {
			first = err
			go s.Shutdown(context.Background())
		}
	}
	return first
}

// Shutdown stops accepting queries and waits, until ctx ends, for the
// queries in flight to be answered.
func (s *Server) Shutdown(ctx context.Context) error {
	s.serversMu.Lock()
	servers, udp := s.servers, s.udp
	s.servers, s.udp = nil, nil
	s.serversMu.Unlock()
	s.stopOnce.Do(func() { close(s.stopped) })
	var errs []error
	for _, srv := range servers {
		srv.close()
	}
	for _, u := range udp {
		u.conn.Close()
	}
	done := make(chan struct{})
	go func() {
		for _, srv := range servers {
			srv.wg.Wait()
		}
		s.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("queries still in flight: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

func (s *Server) closeAllLocked() {
	for _, srv := range s.servers {
		srv.ln.Close()
	}
	for _, u := range s.udp {
		u.conn.Close()
	}
	s.servers, s.udp = nil, nil
}
