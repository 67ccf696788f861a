// Package explainer is typoguard's SMTP responder at the sinkhole address.
// A mail server that a sinkhole answer sends here is refused at every
// recipient with a permanent error whose text says why, from the same
// policy decisions that answered its DNS lookups, so that the bounce the
// sender receives explains itself. It never accepts a message.
package explainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/typoguard/typoguard/policy"
)

// Observer receives what the explainer does, for metrics. Its methods are
// called concurrently and must be quick. Labels it derives must never hold
// an address.
type Observer interface {
	// Refused is called once per refused recipient, with the rule that
	// blocks its domain ("" when none does).
	Refused(rule string)
	// Connection is called once per accepted connection: result is
	// "served", or "refused" when no place was free.
	Connection(result string)
	// Evicted is called once per connection closed to make room.
	Evicted()
	// Error is called once per session error: "timeout",
	// "too_many_commands", "line_too_long", "bad_command" or "network".
	Error(reason string)
}

type nopObserver struct{}

func (nopObserver) Refused(string)    {}
func (nopObserver) Connection(string) {}
func (nopObserver) Evicted()          {}
func (nopObserver) Error(string)      {}

// Config wires a Server to the rest of typoguard.
type Config struct {
	// Policy returns the policy in force; it is asked once per recipient,
	// so a reload applies to the next one.
	Policy   func() *policy.Policy
	Logger   *slog.Logger // nil: discard
	Observer Observer     // nil: observe nothing
	Now      func() time.Time
}

// Server is the SMTP responder. Its settings (hostname, limits, timeout)
// follow Apply; its listen addresses are fixed once bound.
type Server struct {
	policy func() *policy.Policy
	log    *slog.Logger
	obs    Observer
	now    func() time.Time
	limits *tracker

	mu        sync.Mutex // guards the fields below
	cur       *generation
	running   map[*generation]bool // generations still serving sessions
	listeners []net.Listener
	closed    bool

	accepting sync.WaitGroup // the accept loops
}

// generation serves sessions with one set of settings. A reload starts a
// new generation for new connections; the old one finishes its sessions.
type generation struct {
	settings policy.ExplainerSettings
	smtp     *smtp.Server
	in       *handoff
	stopping sync.Once
	stopped  chan struct{} // closed once its last session has ended
}

// stop takes no more connections and lets the sessions in progress end;
// each ends within its session limit.
func (g *generation) stop() {
	g.stopping.Do(func() {
		g.in.Close()
		go func() {
			g.smtp.Shutdown(context.Background())
			close(g.stopped)
		}()
	})
}

// New returns a Server with the settings e; it serves once Listen and
// Serve are called.
func New(e policy.ExplainerSettings, cfg Config) *Server {
	s := &Server{
		policy:  cfg.Policy,
		log:     cfg.Logger,
		obs:     cfg.Observer,
		now:     cfg.Now,
		limits:  newTracker(),
		running: map[*generation]bool{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.cur = s.start(e)
	return s
}

// start builds and runs a generation with settings e.
func (s *Server) start(e policy.ExplainerSettings) *generation {
	ss := smtp.NewServer(backend{srv: s})
	ss.Domain = e.Hostname
	ss.ReadTimeout = e.Timeout
	ss.WriteTimeout = e.Timeout
	ss.MaxLineLength = maxLineLength
	// No SIZE limit is announced (RFC 1870): a client would refuse the
	// message by size before any recipient, and the sender would never
	// learn why. No message is accepted whatever its size.
	ss.MaxMessageBytes = 0
	ss.ErrorLog = errorLog{s}
	g := &generation{settings: e, smtp: ss, in: newHandoff(), stopped: make(chan struct{})}
	s.running[g] = true
	go ss.Serve(g.in)
	return g
}

// Apply takes new settings for the connections accepted from now on;
// sessions in progress finish with the settings they started with. The
// listen addresses are not changed.
func (s *Server) Apply(e policy.ExplainerSettings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.cur.settings.Hostname == e.Hostname && s.cur.settings.Timeout == e.Timeout &&
		s.cur.settings.MaxConnections == e.MaxConnections && s.cur.settings.MaxPerClient == e.MaxPerClient {
		return
	}
	old := s.cur
	s.cur = s.start(e)
	old.stop()
	go func() {
		<-old.stopped
		s.mu.Lock()
		delete(s.running, old)
		s.mu.Unlock()
	}()
}

// Listen binds a TCP listener on each address and returns what was bound
// (port 0 picks one). On any error nothing stays bound.
func (s *Server) Listen(addrs []string) ([]net.Addr, error) {
	var bound []net.Addr
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("explainer: listen on %s: %w", a, err)
		}
		lns = append(lns, ln)
		bound = append(bound, ln.Addr())
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, lns...)
	s.mu.Unlock()
	return bound, nil
}

// Serve accepts connections on every bound listener until Shutdown, then
// returns nil; it returns an error if a listener fails.
func (s *Server) Serve() error {
	s.mu.Lock()
	lns := s.listeners
	s.mu.Unlock()
	errs := make(chan error, len(lns))
	for _, ln := range lns {
		s.accepting.Add(1)
		go func() {
			defer s.accepting.Done()
			errs <- s.acceptLoop(ln)
		}()
	}
	s.accepting.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// acceptLoop admits each connection under the limits and hands it to the
// current generation.
func (s *Server) acceptLoop(ln net.Listener) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("explainer: accept on %s: %w", ln.Addr(), err)
			}
			// Out of file descriptors or buffers: wait for sessions to end.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("explainer: accept failed; retrying", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.admit(nc)
	}
}

// admit applies the connection limits to nc and hands it to the current
// generation, or refuses it with a 421.
func (s *Server) admit(nc net.Conn) {
	now := s.now()
	for {
		s.mu.Lock()
		g, closed := s.cur, s.closed
		s.mu.Unlock()
		if closed {
			nc.Close()
			return
		}
		e := g.settings
		c := &conn{Conn: nc, srv: s, client: remoteAddr(nc), hostname: e.Hostname, end: now.Add(e.SessionLimit())}
		c.lastRead.Store(now.UnixNano())
		ok, evicted := s.limits.admit(c, e.MaxConnections, e.MaxPerClient, now)
		for range evicted {
			s.obs.Evicted()
		}
		if !ok {
			s.obs.Connection("refused")
			c.reply("421 4.7.0 " + e.Hostname + " too many connections, try again later")
			nc.Close()
			return
		}
		if g.in.give(c) {
			s.obs.Connection("served")
			return
		}
		// The generation retired meanwhile: try the new one.
		s.limits.release(c)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Open returns how many SMTP sessions are open now.
func (s *Server) Open() int { return s.limits.count() }

// Shutdown stops accepting, waits for the sessions in progress to end
// until ctx is done, and then closes the ones left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, ln := range s.listeners {
		ln.Close()
	}
	gens := make([]*generation, 0, len(s.running))
	for g := range s.running {
		g.stop()
		gens = append(gens, g)
	}
	s.mu.Unlock()
	s.accepting.Wait()
	for _, g := range gens {
		select {
		case <-g.stopped:
		case <-ctx.Done():
			s.limits.closeAll()
			for _, g := range gens {
				<-g.stopped
			}
			return ctx.Err()
		}
	}
	return nil
}

// handoff is a net.Listener whose connections are handed to it by the
// accept loops, so that each generation's library server serves only the
// connections admitted for it.
type handoff struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoff() *handoff {
	return &handoff{conns: make(chan net.Conn), done: make(chan struct{})}
}

// give hands c to the generation; false when it has retired.
func (h *handoff) give(c net.Conn) bool {
	select {
	case <-h.done:
		return false
	default:
	}
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

// Accept implements net.Listener.
func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr implements net.Listener.
func (h *handoff) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "tcp" }
func (handoffAddr) String() string  { return "explainer" }

// errorLog takes the library's reports of failed sessions.
type errorLog struct{ s *Server }

func (l errorLog) Printf(format string, v ...any) {
	l.s.obs.Error("network")
	l.s.log.Debug("explainer: session failed", "err", fmt.Sprintf(format, v...))
}

func (l errorLog) Println(v ...any) {
	l.s.obs.Error("network")
	l.s.log.Debug("explainer: session failed", "err", fmt.Sprint(v...))
}
