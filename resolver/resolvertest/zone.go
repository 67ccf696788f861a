package resolvertest

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// DefaultSOA is the SOA a Zone made by NewZone puts in the authority section
// of its negative replies: TTL 300 s and MINIMUM 60 s, so resolvers cache
// those replies for 60 s (RFC 2308 §5).
const DefaultSOA = ". 300 IN SOA ns.test. hostmaster.test. 1 1800 900 604800 60"

// maxChase bounds how many CNAMEs a Zone follows within itself for one query.
const maxChase = 8

// Zone is a fake upstream resolver that answers from a fixed set of records
// and counts the queries it receives. A name it holds no record at or below is
// NXDOMAIN; a name without the asked type is NODATA; both carry SOA in the
// authority section. A CNAME at the asked name is followed within the zone.
// Over UDP a reply is truncated to the query's EDNS size (512 bytes without
// EDNS), as a real server does. Zone is safe for concurrent use.
type Zone struct {
	// SOA goes in the authority section of NXDOMAIN and NODATA replies; nil
	// leaves it out. Set it before the zone serves.
	SOA dns.RR
	// OnQuery, if set, is called with each query before it is answered, for
	// example to hold replies until a test has several queries in flight.
	// Set it before the zone serves.
	OnQuery func(q *dns.Msg)

	queries atomic.Int64

	mu      sync.Mutex          // guards the fields below
	records map[string][]dns.RR // by lower-case owner name
	names   map[string]bool     // owners and their ancestors: names that exist
	counts  map[question]int    // queries received, by question
}

type question struct {
	name  string
	qtype uint16
}

// NewZone returns a Zone holding the records given as zone text, one RR each,
// with DefaultSOA for negative replies. It fails the test if one does not
// parse.
func NewZone(t testing.TB, records ...string) *Zone {
	t.Helper()
	z := &Zone{SOA: RR(t, DefaultSOA)}
	for _, s := range records {
		z.Add(RR(t, s))
	}
	return z
}

// Add puts records in the zone. It may be called while the zone serves.
func (z *Zone) Add(rrs ...dns.RR) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.records == nil {
		z.records = make(map[string][]dns.RR)
		z.names = make(map[string]bool)
	}
	for _, rr := range rrs {
		name := dns.CanonicalName(rr.Header().Name)
		z.records[name] = append(z.records[name], dns.Copy(rr))
		for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
			z.names[name[off:]] = true
		}
	}
}

// Queries reports how many queries the zone has received.
func (z *Zone) Queries() int {
	return int(z.queries.Load())
}

// QueriesFor reports how many queries for name and qtype the zone has
// received; name is compared case-insensitively.
func (z *Zone) QueriesFor(name string, qtype uint16) int {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.counts[question{dns.CanonicalName(name), qtype}]
}

// ServeDNS answers q from the zone's records.
func (z *Zone) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	z.queries.Add(1)
	m := new(dns.Msg)
	if len(q.Question) != 1 {
		_ = w.WriteMsg(m.SetRcode(q, dns.RcodeFormatError))
		return
	}
	qq := q.Question[0]
	z.count(qq)
	if z.OnQuery != nil {
		z.OnQuery(q)
	}

	m.SetReply(q)
	m.RecursionAvailable = true
	m.Answer, m.Rcode = z.lookup(qq.Name, qq.Qtype)
	if len(m.Answer) == 0 || m.Rcode == dns.RcodeNameError {
		if z.SOA != nil {
			m.Ns = []dns.RR{dns.Copy(z.SOA)}
		}
	}
	size := dns.MinMsgSize
	if opt := q.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do())
		size = int(opt.UDPSize())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func (z *Zone) count(qq dns.Question) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.counts == nil {
		z.counts = make(map[question]int)
	}
	z.counts[question{dns.CanonicalName(qq.Name), qq.Qtype}]++
}

// lookup returns the records answering name and qtype, following CNAMEs
// within the zone, and the rcode of the reply.
func (z *Zone) lookup(name string, qtype uint16) ([]dns.RR, int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	var answer []dns.RR
	for range maxChase {
		name = dns.CanonicalName(name)
		var cname *dns.CNAME
		found := len(answer)
		for _, rr := range z.records[name] {
			t := rr.Header().Rrtype
			switch {
			case t == qtype || qtype == dns.TypeANY:
				answer = append(answer, dns.Copy(rr))
			case t == dns.TypeCNAME && cname == nil:
				cname = rr.(*dns.CNAME)
			}
		}
		switch {
		case len(answer) > found:
			return answer, dns.RcodeSuccess
		case cname != nil:
			answer = append(answer, dns.Copy(cname))
			name = cname.Target
		case z.names[name]:
			return answer, dns.RcodeSuccess
		default:
			return answer, dns.RcodeNameError
		}
	}
	return answer, dns.RcodeServerFailure
}

// RR parses one resource record from zone text, such as
// "army.mil. 300 IN MX 10 mail.army.mil.", and fails the test if it does not
// parse.
func RR(t testing.TB, zoneText string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(zoneText)
	if err != nil {
		t.Fatalf("parse RR %q: %v", zoneText, err)
	}
	if rr == nil {
		t.Fatalf("parse RR %q: no record in text", zoneText)
	}
	return rr
}

// Rcode returns a handler that answers every query with rcode and no records.
func Rcode(rcode int) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		m.RecursionAvailable = true
		_ = w.WriteMsg(m)
	})
}

// Records formats rrs one per line in zone text, for comparing answers in
// test failures.
func Records(rrs []dns.RR) string {
	lines := make([]string, len(rrs))
	for i, rr := range rrs {
		lines[i] = rr.String()
	}
	return strings.Join(lines, "\n")
}
