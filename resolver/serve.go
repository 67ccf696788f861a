package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/miekg/dns"
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
// one when the port is 0, and returns what it bound. Serve starts answering.
func (s *Server) Listen(addrs []string) ([]Listener, error) {
	s.serversMu.Lock()
	defer s.serversMu.Unlock()
	var bound []Listener
	for _, addr := range addrs {
		pc, ln, err := listenBoth(addr)
		if err != nil {
			s.closeAllLocked()
			return nil, err
		}
		s.servers = append(s.servers,
			&dns.Server{PacketConn: pc, Handler: s, MsgAcceptFunc: acceptQuery, UDPSize: dns.MaxMsgSize},
			&dns.Server{Listener: ln, Handler: s, MsgAcceptFunc: acceptQuery},
		)
		bound = append(bound, Listener{Net: "udp", Addr: pc.LocalAddr()}, Listener{Net: "tcp", Addr: ln.Addr()})
	}
	return bound, nil
}

// listenBoth binds addr over UDP and TCP. An IPv4 address binds IPv4 only
// and an IPv6 address IPv6 only, so "0.0.0.0:53" and "[::]:53" can stand
// side by side; an empty host (":53") takes both families on one socket.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	udp, tcp := "udp", "tcp"
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			udp, tcp = "udp4", "tcp4"
		} else {
			udp, tcp = "udp6", "tcp6"
		}
	}
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket(udp, addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on %s over udp: %w", addr, err)
		}
		tcpAddr := net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		ln, err := net.Listen(tcp, tcpAddr)
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		// With port 0 the UDP port the kernel chose may be taken for TCP:
		// try another.
		if port != "0" || attempt >= 10 {
			return nil, nil, fmt.Errorf("listen on %s over tcp: %w", tcpAddr, err)
		}
	}
}

// Serve answers on every bound listener until Shutdown; it returns the
// first error a listener fails with, or nil after Shutdown.
func (s *Server) Serve() error {
	s.serversMu.Lock()
	servers := append([]*dns.Server(nil), s.servers...)
	s.serversMu.Unlock()
	if len(servers) == 0 {
		return errors.New("serve: nothing to serve on (call Listen first)")
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	var first error
	for range servers {
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
	servers := s.servers
	s.servers = nil
	s.serversMu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.ShutdownContext(ctx); err != nil && err.Error() != "dns: server not started" {
			errs = append(errs, err)
		}
	}
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("queries still in flight: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

func (s *Server) closeAllLocked() {
	for _, srv := range s.servers {
		if srv.PacketConn != nil {
			srv.PacketConn.Close()
		}
		if srv.Listener != nil {
			srv.Listener.Close()
		}
	}
	s.servers = nil
}

// Panics returns how many queries panicked and were answered SERVFAIL.
func (s *Server) Panics() uint64 { return s.panics.Load() }
