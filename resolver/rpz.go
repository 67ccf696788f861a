package resolver

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
)

// RPZ is a policy's export as a Response Policy Zone
// (draft-vixie-dnsop-dns-rpz): a trigger per exported name, under Origin.
// Its records are made as they are asked for, never all held at once, and
// its triggers hold no pointer: every name is a piece of one string, so
// the garbage collector has one object to look at, however large the zone
// (its marking of millions of pointers would cost the resolver's answers
// their latency while a transfer runs).
type RPZ struct {
	Origin    string // the zone's name, lower-case with the trailing dot
	Serial    uint32
	ttl       uint32
	answers   policy.AnswerSettings
	names     string     // every trigger's name, one after another
	entries   []rpzEntry // in the export's order
	sinkholes bool       // an entry is a sinkhole
	// Skipped counts the entries RPZ cannot answer as typoguard does
	// (refuse: RPZ has no REFUSED), which are left out.
	Skipped int
}

// NewRPZ returns the zone origin of export ex of p, at serial.
func NewRPZ(origin string, serial uint32, p *policy.Policy, ex *policy.Export) *RPZ {
	z := &RPZ{Origin: strings.ToLower(dns.Fqdn(origin)), Serial: serial, ttl: ttlSeconds(p.Answers.TTL), answers: p.Answers}
	size := 0
	for i := range ex.Entries {
		size += len(ex.Entries[i].Name)
	}
	var names strings.Builder
	names.Grow(size)
	z.entries = make([]rpzEntry, len(ex.Entries))
	for i := range ex.Entries {
		e := &ex.Entries[i]
		z.entries[i] = rpzEntry{off: uint32(names.Len()), n: uint8(len(e.Name)), below: e.Below, action: e.Action}
		names.WriteString(e.Name)
		switch e.Action {
		case policy.ActionRefuse:
			z.Skipped++
		case policy.ActionSinkhole:
			z.sinkholes = true
		}
	}
	z.names = names.String()
	return z
}

// rpzEntry is one trigger of an RPZ: its name, z.names[off:off+n], the
// names under it or the name itself, and what it answers.
type rpzEntry struct {
	off    uint32
	n      uint8
	below  bool
	action policy.Action
}

// name is e's name.
func (z *RPZ) name(e *rpzEntry) string { return z.names[e.off : e.off+uint32(e.n)] }

// sinkholeHost is the local data of the sinkhole MX host: its addresses.
func (z *RPZ) sinkholeHost() []dns.RR {
	owner := strings.TrimSuffix(z.answers.SinkholeMX, ".") + "." + z.Origin
	var rrs []dns.RR
	if a := z.answers.SinkholeIPv4; a.IsValid() {
		rrs = append(rrs, &dns.A{Hdr: z.hdr(owner, dns.TypeA), A: net.IP(a.AsSlice())})
	}
	if a := z.answers.SinkholeIPv6; a.IsValid() {
		rrs = append(rrs, &dns.AAAA{Hdr: z.hdr(owner, dns.TypeAAAA), AAAA: net.IP(a.AsSlice())})
	}
	return rrs
}

// Len is the number of triggers in the zone.
func (z *RPZ) Len() int { return len(z.entries) - z.Skipped }

// SOA is the zone's SOA record. Refresh and retry are short, as NOTIFY
// is what tells secondaries of a change; expire is four weeks, so that a
// secondary that loses typoguard keeps the policy rather than dropping it.
func (z *RPZ) SOA() *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: z.Origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.ttl},
		Ns:  "localhost.", Mbox: "hostmaster.localhost.",
		Serial: z.Serial, Refresh: 300, Retry: 60, Expire: 2419200, Minttl: z.ttl,
	}
}

// Records calls fn with the zone's records in order, the SOA first and
// not repeated at the end, until fn returns false.
func (z *RPZ) Records(fn func(dns.RR) bool) {
	if !fn(z.SOA()) || !fn(&dns.NS{Hdr: z.hdr(z.Origin, dns.TypeNS), Ns: "localhost."}) {
		return
	}
	// The sinkhole host answers with its addresses, so that a sinkhole MX
	// leads somewhere on the consumer too.
	if z.sinkholes {
		for _, rr := range z.sinkholeHost() {
			if !fn(rr) {
				return
			}
		}
	}
	for i := range z.entries {
		for _, rr := range z.entryRecords(&z.entries[i]) {
			if !fn(rr) {
				return
			}
		}
	}
}

func (z *RPZ) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: z.ttl}
}

// entryRecords are the records of one trigger: a CNAME to "." for
// NXDOMAIN, to "*." for NODATA and to "rpz-passthru." for an exception,
// and local data for a null MX or a sinkhole (the RPZ answer to the other
// types is then NODATA, as typoguard's).
func (z *RPZ) entryRecords(e *rpzEntry) []dns.RR {
	if e.action == policy.ActionRefuse {
		return nil // RPZ has no REFUSED: left out (Skipped)
	}
	owner := z.owner(e)
	if rrtype, rdata, ok := simpleRecord(e.action); ok {
		if rrtype == dns.TypeMX {
			return []dns.RR{&dns.MX{Hdr: z.hdr(owner, dns.TypeMX), Preference: 0, Mx: "."}}
		}
		return []dns.RR{&dns.CNAME{Hdr: z.hdr(owner, dns.TypeCNAME), Target: rdata}}
	}
	rrs := []dns.RR{&dns.MX{Hdr: z.hdr(owner, dns.TypeMX), Preference: 10, Mx: z.answers.SinkholeMX}}
	for _, rr := range z.sinkholeHost() {
		rr.Header().Name = owner
		rrs = append(rrs, rr)
	}
	return rrs
}

// owner is the trigger's name in the zone.
func (z *RPZ) owner(e *rpzEntry) string {
	if e.below {
		return "*." + z.name(e) + "." + z.Origin
	}
	return z.name(e) + "." + z.Origin
}

// simpleRecord is the one record of a trigger answering action, for the
// actions that have one: its type and its RDATA as text ("." for a CNAME
// to ".", "0 ." for the null MX); ok is false for a sinkhole, which has
// several.
func simpleRecord(action policy.Action) (rrtype uint16, rdata string, ok bool) {
	switch action {
	case policy.ActionAllow:
		return dns.TypeCNAME, "rpz-passthru.", true
	case policy.ActionNoData:
		return dns.TypeCNAME, "*.", true
	case policy.ActionNullMX:
		return dns.TypeMX, "0 .", true
	case policy.ActionSinkhole:
		return 0, "", false
	}
	return dns.TypeCNAME, ".", true
}

// WriteText writes the zone in master-file form (RFC 1035 §5), one
// record a line, absolute names, as the records' String gives them. The
// one-record triggers, nearly all of a large zone, are written straight
// from their entries, without a record each.
func (z *RPZ) WriteText(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	writeRR := func(rr dns.RR) bool {
		line = append(append(line[:0], rr.String()...), '\n')
		_, err := bw.Write(line)
		return err == nil
	}
	if !writeRR(z.SOA()) || !writeRR(&dns.NS{Hdr: z.hdr(z.Origin, dns.TypeNS), Ns: "localhost."}) {
		return bw.Flush()
	}
	if z.sinkholes {
		for _, rr := range z.sinkholeHost() {
			writeRR(rr)
		}
	}
	ttl := strconv.FormatUint(uint64(z.ttl), 10)
	for i := range z.entries {
		e := &z.entries[i]
		rrtype, rdata, ok := simpleRecord(e.action)
		switch {
		case e.action == policy.ActionRefuse:
			continue
		case !ok:
			for _, rr := range z.entryRecords(e) {
				writeRR(rr)
			}
			continue
		}
		// As dns.RR_Header.String and the record's String write it.
		line = line[:0]
		if e.below {
			line = append(line, "*."...)
		}
		line = append(append(append(line, z.name(e)...), '.'), z.Origin...)
		line = append(append(append(line, '\t'), ttl...), "\tIN\t"...)
		line = append(append(append(line, dns.TypeToString[rrtype]...), '\t'), rdata...)
		if _, err := bw.Write(append(line, '\n')); err != nil {
			return err
		}
	}
	return bw.Flush()
}
