package resolver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
)

// RPZServer serves a policy's Response Policy Zone to the secondaries of
// rpz.allow_transfer: SOA over UDP and TCP, AXFR (RFC 5936) and IXFR (RFC
// 1995) over TCP, signed with rpz.tsig when keys are set; and tells
// rpz.notify of each new serial (NOTIFY, RFC 1996). It runs beside the
// resolver, on its own sockets and goroutines, and reads only immutable
// zone versions, so a transfer never holds up an answer.
type RPZServer struct {
	log *slog.Logger

	mu       sync.Mutex
	cur      *rpzVersion // nil until the first Update
	prev     *rpzVersion // the version before cur, for IXFR; nil if none
	settings policy.RPZSettings
	keys     map[string]string // TSIG key name → base64 secret
	notifyID uint16

	udp, tcp *dns.Server
	done     chan struct{}
}

// rpzVersion is one serial of the zone.
type rpzVersion struct {
	zone *RPZ
	sum  [32]byte // of what the zone's records are made from
}

// NewRPZServer returns a server that logs to log; Update gives it a zone.
func NewRPZServer(log *slog.Logger) *RPZServer {
	return &RPZServer{log: log, done: make(chan struct{})}
}

// Update makes zone the one served under the policy's rpz settings. When
// its records differ from those served, it gets the next serial — the
// Unix time, or one more than the last serial if that is not later — and
// the secondaries of rpz.notify are told; otherwise the served serial
// stays. It reports the serial served.
func (s *RPZServer) Update(zone *RPZ, settings policy.RPZSettings) uint32 {
	v := &rpzVersion{zone: zone, sum: zoneSum(zone)}
	keys := map[string]string{}
	for _, k := range settings.TSIG {
		keys[k.Name] = k.Secret
	}
	s.mu.Lock()
	s.settings, s.keys = settings, keys
	if s.cur != nil && s.cur.sum == v.sum && s.cur.zone.Origin == zone.Origin {
		serial := s.cur.zone.Serial
		s.mu.Unlock()
		return serial
	}
	serial := uint32(time.Now().Unix())
	if s.cur != nil && int32(serial-s.cur.zone.Serial) <= 0 {
		serial = s.cur.zone.Serial + 1
	}
	zone.Serial = serial
	if s.cur != nil && s.cur.zone.Origin == zone.Origin {
		s.prev = s.cur
	} else {
		s.prev = nil
	}
	s.cur = v
	notify := settings.Notify
	s.mu.Unlock()
	s.log.Info("rpz zone", "zone", zone.Origin, "serial", serial, "triggers", zone.Len())
	for _, to := range notify {
		go s.notify(to, zone.Origin, serial)
	}
	return serial
}

// zoneSum hashes what z's records are made from: its origin, TTL and
// answers, and each entry's name and action.
func zoneSum(z *RPZ) [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s %d %v %v %s\n", z.Origin, z.ttl, z.answers.SinkholeIPv4, z.answers.SinkholeIPv6, z.answers.SinkholeMX)
	var b [2]byte
	for i := range z.entries {
		e := &z.entries[i]
		h.Write([]byte(z.name(e)))
		b[0], b[1] = byte(e.action), 0
		if e.below {
			b[1] = 1
		}
		h.Write(b[:])
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Start binds addr (UDP and TCP) and answers there until Shutdown.
func (s *RPZServer) Start(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("rpz.listen: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("rpz.listen: %w", err)
	}
	provider := rpzTsig{s}
	s.udp = &dns.Server{PacketConn: pc, Handler: s, TsigProvider: provider}
	s.tcp = &dns.Server{Listener: ln, Handler: s, TsigProvider: provider,
		// Between the queries of a connection; a transfer's writes have
		// their own deadline.
		IdleTimeout: func() time.Duration { return 10 * time.Second }, WriteTimeout: time.Minute}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				s.log.Error("rpz server stopped", "err", err.Error())
			}
		}()
	}
	return nil
}

// Addr is the address Serve listens on (TCP), or nil before it does.
func (s *RPZServer) Addr() net.Addr {
	if s.tcp == nil || s.tcp.Listener == nil {
		return nil
	}
	return s.tcp.Listener.Addr()
}

// Shutdown stops serving, and sending NOTIFY.
func (s *RPZServer) Shutdown(ctx context.Context) {
	s.mu.Lock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.mu.Unlock()
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv != nil {
			_ = srv.ShutdownContext(ctx)
		}
	}
}

// rpzTsig is the TSIG provider of the RPZ server: the keys of the policy
// in force (RFC 8945, HMAC-SHA256).
type rpzTsig struct{ s *RPZServer }

func (t rpzTsig) secret(name string) (string, error) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	secret, ok := t.s.keys[dns.CanonicalName(name)]
	if !ok {
		return "", dns.ErrSecret
	}
	return secret, nil
}

// Generate implements dns.TsigProvider: HMAC-SHA256, the one algorithm
// rpz.tsig takes.
func (t rpzTsig) Generate(msg []byte, tsig *dns.TSIG) ([]byte, error) {
	secret, err := t.secret(tsig.Hdr.Name)
	if err != nil {
		return nil, err
	}
	if dns.CanonicalName(tsig.Algorithm) != dns.HmacSHA256 {
		return nil, dns.ErrKeyAlg
	}
	raw, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, raw)
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify implements dns.TsigProvider.
func (t rpzTsig) Verify(msg []byte, tsig *dns.TSIG) error {
	mac, err := t.Generate(msg, tsig)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(tsig.MAC)
	if err != nil {
		return err
	}
	if !hmac.Equal(mac, got) {
		return dns.ErrSig
	}
	return nil
}

// ServeDNS implements dns.Handler: SOA, AXFR and IXFR of the zone for
// allowed clients with a good TSIG when keys are set; REFUSED, NOTAUTH or
// NOTIMP otherwise.
func (s *RPZServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	client := addrOf(w.RemoteAddr())
	s.mu.Lock()
	cur, prev, settings, keyed := s.cur, s.prev, s.settings, len(s.keys) > 0
	s.mu.Unlock()
	refuse := func(rcode int, why string) {
		s.log.Warn("rpz request refused", "client", client.String(), "why", why)
		m := new(dns.Msg)
		m.SetRcode(req, rcode)
		if t := req.IsTsig(); t != nil && w.TsigStatus() == nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
		}
		_ = w.WriteMsg(m)
	}
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		refuse(dns.RcodeNotImplemented, "not a query of one question")
		return
	}
	if cur == nil {
		refuse(dns.RcodeRefused, "no zone to serve: the log says why")
		return
	}
	if !prefixesContain(settings.AllowTransfer, client) {
		refuse(dns.RcodeRefused, "address not in rpz.allow_transfer")
		return
	}
	if keyed {
		switch t := req.IsTsig(); {
		case t == nil:
			refuse(dns.RcodeRefused, "no TSIG, and rpz.tsig keys are set")
			return
		case w.TsigStatus() != nil:
			refuse(dns.RcodeNotAuth, "bad TSIG: "+w.TsigStatus().Error())
			return
		}
	}
	q := req.Question[0]
	if dns.CanonicalName(q.Name) != cur.zone.Origin || q.Qclass != dns.ClassINET {
		refuse(dns.RcodeRefused, "not the zone served here")
		return
	}
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	// answerSOA answers with the zone's SOA, in the answer section or,
	// for a type the zone has no records of, the authority section.
	answerSOA := func(nodata bool) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if nodata {
			m.Ns = []dns.RR{cur.zone.SOA()}
		} else {
			m.Answer = []dns.RR{cur.zone.SOA()}
		}
		s.sign(w, req, m)
		_ = w.WriteMsg(m)
	}
	switch q.Qtype {
	case dns.TypeSOA:
		answerSOA(false)
	case dns.TypeAXFR, dns.TypeIXFR:
		if !tcp {
			if q.Qtype == dns.TypeIXFR {
				answerSOA(false) // RFC 1995 §2: over UDP, the SOA alone says "ask by TCP"
				return
			}
			refuse(dns.RcodeRefused, "AXFR over UDP")
			return
		}
		start := time.Now()
		kind, n, err := s.transfer(w, req, cur, prev)
		ms := time.Since(start).Milliseconds()
		if err != nil {
			s.log.Warn("rpz transfer failed", "client", client.String(), "kind", kind, "serial", cur.zone.Serial, "records", n, "ms", ms, "err", err.Error())
			return
		}
		s.log.Info("rpz transfer", "client", client.String(), "kind", kind, "serial", cur.zone.Serial, "records", n, "ms", ms)
	default:
		answerSOA(true)
	}
}

// sign signs m with the request's TSIG key, when it had a good one.
func (s *RPZServer) sign(w dns.ResponseWriter, req, m *dns.Msg) {
	if t := req.IsTsig(); t != nil && w.TsigStatus() == nil {
		m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
	}
}

// xfrBytes is about how large one transfer message grows, uncompressed,
// before it is sent: well under the 64 KiB a TCP message may hold.
const xfrBytes = 16 << 10

// transfer answers an AXFR or IXFR with the zone cur, as a difference from
// prev when the client holds prev's serial (RFC 1995 §4), just the SOA
// when it holds cur's, the whole zone otherwise. It returns what it sent.
func (s *RPZServer) transfer(w dns.ResponseWriter, req *dns.Msg, cur, prev *rpzVersion) (string, int, error) {
	soa := cur.zone.SOA()
	var have uint32
	ixfr := false
	if req.Question[0].Qtype == dns.TypeIXFR {
		for _, rr := range req.Ns {
			if o, ok := rr.(*dns.SOA); ok {
				have, ixfr = o.Serial, true
			}
		}
	}
	var batch []dns.RR
	sent, size, first := 0, 0, true
	var err error
	began, worked := time.Now(), time.Duration(0)
	flush := func() bool {
		if len(batch) == 0 || err != nil {
			return err == nil
		}
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		m.Answer = batch
		if t := req.IsTsig(); t != nil && w.TsigStatus() == nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
		}
		if err = w.WriteMsg(m); err == nil && first {
			// RFC 8945 §5.3.1: the messages after the first are signed
			// with the MAC before them and the timers only.
			w.TsigTimersOnly(true)
		}
		first = false
		sent += len(batch)
		batch, size = batch[:0], 0
		// At most half the time for the transfer, in stretches of about a
		// millisecond: a secondary takes a large zone a little slower,
		// and the resolver's answers, on the same cores, keep their pace.
		if worked += time.Since(began); worked >= time.Millisecond {
			time.Sleep(worked)
			worked = 0
		} else {
			runtime.Gosched() // the resolver's goroutines that are ready go first
		}
		began = time.Now()
		return err == nil
	}
	add := func(rr dns.RR) bool {
		batch = append(batch, rr)
		size += len(rr.Header().Name) + 16 + 64 // the owner, the fixed fields, RDATA at most this
		return size < xfrBytes || flush()
	}
	kind := "AXFR"
	switch {
	case ixfr && have == soa.Serial:
		kind = "IXFR, up to date"
		add(soa)
	case ixfr && prev != nil && have == prev.zone.Serial:
		kind = "IXFR"
		add(soa)
		add(prev.zone.SOA())
		deleted, added := diffZones(prev.zone, cur.zone)
		for _, rr := range deleted {
			if !add(rr) {
				break
			}
		}
		add(soa)
		for _, rr := range added {
			if !add(rr) {
				break
			}
		}
		add(soa)
	default:
		if ixfr {
			kind = "IXFR as AXFR"
		}
		cur.zone.Records(add)
		add(soa)
	}
	flush()
	w.Hijack()
	_ = w.Close()
	return kind, sent, err
}

// diffZones returns the records of a that b lacks and those of b that a
// lacks, in zone order. Both zones' entries are sorted, so one walk over
// both finds them.
func diffZones(a, b *RPZ) (deleted, added []dns.RR) {
	i, j := 0, 0
	for i < len(a.entries) || j < len(b.entries) {
		var c int
		switch {
		case i == len(a.entries):
			c = 1
		case j == len(b.entries):
			c = -1
		default:
			ea, eb := &a.entries[i], &b.entries[j]
			c = policy.CompareNames(a.name(ea), ea.below, b.name(eb), eb.below)
		}
		switch {
		case c < 0:
			deleted = append(deleted, a.entryRecords(&a.entries[i])...)
			i++
		case c > 0:
			added = append(added, b.entryRecords(&b.entries[j])...)
			j++
		default:
			ra, rb := a.entryRecords(&a.entries[i]), b.entryRecords(&b.entries[j])
			if !sameRecords(ra, rb) {
				deleted, added = append(deleted, ra...), append(added, rb...)
			}
			i, j = i+1, j+1
		}
	}
	if a.sinkholes != b.sinkholes || !sameRecords(a.sinkholeHost(), b.sinkholeHost()) {
		if a.sinkholes {
			deleted = append(deleted, a.sinkholeHost()...)
		}
		if b.sinkholes {
			added = append(added, b.sinkholeHost()...)
		}
	}
	return deleted, added
}

func sameRecords(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !dns.IsDuplicate(a[i], b[i]) {
			return false
		}
	}
	return true
}

// notify tells the secondary at addr that the zone has serial, until it
// answers (RFC 1996 §3.6: retry, here up to five times, 2 s apart).
func (s *RPZServer) notify(addr, origin string, serial uint32) {
	s.mu.Lock()
	s.notifyID++
	id := s.notifyID
	var keyName, secret string
	for name, sec := range s.keys {
		if keyName == "" || name < keyName {
			keyName, secret = name, sec
		}
	}
	s.mu.Unlock()
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	if keyName != "" {
		c.TsigSecret = map[string]string{keyName: secret}
	}
	var err error
	for try := 0; try < 5; try++ {
		select {
		case <-s.done:
			return
		default:
		}
		// A new message each time: each is signed at the time it is sent.
		m := new(dns.Msg)
		m.SetNotify(origin)
		m.Id = id
		m.Answer = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "localhost.", Mbox: "hostmaster.localhost.", Serial: serial}}
		if keyName != "" {
			m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
		}
		var r *dns.Msg
		if r, _, err = c.Exchange(m, addr); err == nil {
			if r.Rcode != dns.RcodeSuccess {
				err = errors.New(dns.RcodeToString[r.Rcode])
			} else {
				s.log.Info("rpz notify", "to", addr, "serial", serial)
				return
			}
		}
		time.Sleep(2 * time.Second)
	}
	s.log.Warn("rpz notify unanswered", "to", addr, "serial", serial, "err", err.Error())
}

// prefixesContain reports whether any of ps holds a.
func prefixesContain(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
