package resolver

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver/cache"
)

// The fast path answers the commonest UDP query, a cache hit for a name no
// rule touches, straight from the wire: it reads the header, the question
// and the OPT record itself, asks the policy and the cache with the name
// as it lies in a reused buffer, and copies the cached reply's wire form
// into the output buffer, patching ID, header bits, question spelling and
// TTLs, and adding the client's OPT. Anything else — a rule that applies,
// a name with unusual characters, a reply that leads into a blocked name or
// does not fit — goes to the full path, which unpacks the query into a
// dns.Msg; both give the same reply.

// wireQuery is what the fast path reads of a query.
type wireQuery struct {
	qEnd int    // where the question ends in the packet
	name []byte // the query name in lower-case presentation form, with the final dot
	// spelled is the name as the client spelled it, for the audit line.
	spelled []byte
	qtype   uint16
	qclass  uint16
	edns    bool
	do      bool
	size    int // the client's UDP payload size (512 without EDNS)
	// lane is the reading loop's own lane of the cache (below cache.Lanes),
	// so that loops on different cores share no lock or counter.
	lane int
	// now is when the batch that held the query was read, in Unix
	// nanoseconds; 0 when no loop read it.
	now int64
}

// parseWireQuery reads a query of one question and at most an OPT record,
// whose name has only letters, digits, hyphens and underscores, into q,
// whose name buffer it reuses. It reports false for anything else.
func parseWireQuery(pkt []byte, q *wireQuery) bool {
	// QR clear, opcode QUERY; one question, no answer or authority, at
	// most one additional record (acceptQuery has judged the rest).
	if len(pkt) < 17 || pkt[2]&0xF8 != 0 || pkt[4] != 0 || pkt[5] != 1 ||
		pkt[6]|pkt[7]|pkt[8]|pkt[9]|pkt[10] != 0 || pkt[11] > 1 {
		return false
	}
	name, spelled := q.name[:0], q.spelled[:0]
	off := 12
	for {
		n := int(pkt[off])
		off++
		if n == 0 {
			break
		}
		if n > 63 || off+n >= len(pkt) {
			return false
		}
		spelled = append(append(spelled, pkt[off:off+n]...), '.')
		for _, c := range pkt[off : off+n] {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				return false
			}
			name = append(name, c)
		}
		name = append(name, '.')
		off += n
	}
	if len(name) == 0 || len(name) > 254 || off+4 > len(pkt) {
		return false
	}
	q.name, q.spelled = name, spelled
	q.qtype = uint16(pkt[off])<<8 | uint16(pkt[off+1])
	q.qclass = uint16(pkt[off+2])<<8 | uint16(pkt[off+3])
	off += 4
	q.qEnd = off
	q.edns, q.do, q.size = false, false, dns.MinMsgSize
	if pkt[11] == 0 {
		return off == len(pkt)
	}
	// OPT: root name, type 41, class = payload size, TTL = extended
	// RCODE, version and flags, then the options (RFC 6891 §6.1.2).
	if off+11 > len(pkt) || pkt[off] != 0 || pkt[off+1] != 0 || pkt[off+2] != byte(dns.TypeOPT) || pkt[off+6] != 0 {
		return false
	}
	rdlen := int(pkt[off+9])<<8 | int(pkt[off+10])
	if off+11+rdlen != len(pkt) || pkt[off+5] != 0 {
		// Trailing bytes, or an extended RCODE in a query.
		return false
	}
	q.edns = true
	q.do = pkt[off+7]&0x80 != 0
	q.size = min(max(int(pkt[off+3])<<8|int(pkt[off+4]), dns.MinMsgSize), ednsSize)
	return true
}

// nameString views the name buffer as a string without copying it. The
// string is only handed to lookups that do not keep it (Decide, a cache
// lookup) and dies before the buffer is reused.
func nameString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// fastAnswer answers pkt from client into buf when it is a plain cache hit
// (see above); q is the caller's reused query buffer. It reports false
// when the full path must answer.
func (s *Server) fastAnswer(snap *snapshot, client netip.Addr, pkt, buf []byte, q *wireQuery) ([]byte, bool) {
	if !parseWireQuery(pkt, q) || q.qclass != dns.ClassINET {
		return nil, false
	}
	p := snap.policy
	if !allowed(p.ACLAllow, client) || s.log.Enabled(context.Background(), slog.LevelDebug) {
		return nil, false
	}
	name := nameString(q.name)
	var hit cache.Hit
	cached := false
	if snap.cache != nil {
		cd := pkt[3]&0x10 != 0
		hit, cached = snap.cache.Shared(cache.Key{Name: name, Type: q.qtype, Class: q.qclass, DO: q.do, CD: cd}, q.lane)
	}
	// A cached name that no rule touches under this policy is marked so on
	// its first hit, and its later hits skip the policy: with a long list,
	// its lookups are the dearest part of a hit.
	if !cached || hit.Memo() != snap.gen {
		d := p.Decide(client, name, q.qtype)
		pl := snap.plans.of(d)
		if pl.Kind == PlanSynthesize {
			return s.fastBlocked(p, pl, client, pkt, buf, q, d)
		}
		if pl.Verdict != "" || pl.Route != "" {
			return nil, false // audited, or cached apart: the full path
		}
		if cached && d.Rule == nil && !p.Touches(name) {
			hit.SetMemo(snap.gen)
		}
	}
	if !cached || hit.Wire == nil || hit.QEnd != q.qEnd || hit.Rcode == dns.RcodeServerFailure {
		return nil, false // a SERVFAIL's reason is the full path's to give
	}
	if (q.qtype == dns.TypeA || q.qtype == dns.TypeAAAA) && name == snap.plans.sinkholeHost {
		return nil, false
	}
	// Only a reply that names other names can lead into a blocked one.
	if hit.Leads != nil {
		if _, _, found := inspect(p, client, dns.Question{Qtype: q.qtype}, hit.Leads); found {
			return nil, false
		}
	}
	n := len(hit.Wire)
	if q.edns {
		n += optLen
	}
	if n > q.size || n > cap(buf) {
		return nil, false
	}
	out := append(buf[:0], hit.Wire...)
	out[0], out[1] = pkt[0], pkt[1]
	// QR, opcode QUERY, RD as asked; RA, the upstream's AD and RCODE, CD
	// as asked (AA, TC and Z clear).
	out[2] = 0x80 | pkt[2]&0x01
	out[3] = 0x80 | hit.Wire[3]&0x2F | pkt[3]&0x10
	copy(out[12:q.qEnd], pkt[12:q.qEnd])
	for _, at := range hit.TTLs {
		ttl := uint32(out[at])<<24 | uint32(out[at+1])<<16 | uint32(out[at+2])<<8 | uint32(out[at+3])
		ttl -= min(ttl, hit.Age)
		out[at], out[at+1], out[at+2], out[at+3] = byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl)
	}
	if q.edns {
		out = appendOPT(out, q.do)
		ar := int(out[10])<<8 | int(out[11]) + 1
		out[10], out[11] = byte(ar>>8), byte(ar)
	}
	snap.cache.CountHit(hit)
	s.obs.Query(q.lane, q.qtype, int(out[3]&0x0F), ReasonCached)
	return out, true
}

// optLen is the length of the OPT record appendOPT writes.
const optLen = 11

// appendOPT appends the OPT record of a reply without options: typoguard's
// UDP size and the client's DO bit, as replyOPT makes it.
func appendOPT(b []byte, do bool) []byte {
	var flags byte
	if do {
		flags = 0x80
	}
	return append(b, 0, 0, byte(dns.TypeOPT), byte(ednsSize>>8), byte(ednsSize&0xFF), 0, 0, flags, 0, 0, 0)
}

// soaNames are the SOA's MNAME and RNAME of a synthesized answer (soaNS,
// soaMbox) in wire form.
var soaNames = func() []byte {
	b := make([]byte, 64)
	n, _ := dns.PackDomainName(soaNS, b, 0, nil, false)
	m, _ := dns.PackDomainName(soaMbox, b, n, nil, false)
	return b[:m]
}()

// fastBlocked answers, straight into buf, a query that d blocks under the
// synthesizing plan pl: the same reply synthesize makes, built without a
// dns.Msg. It reports false for a sinkhole, or a reply that does not fit,
// which the full path answers.
func (s *Server) fastBlocked(p *policy.Policy, pl *Plan, client netip.Addr, pkt, buf []byte, q *wireQuery, d policy.Decision) ([]byte, bool) {
	if pl.Answer == AnswerSinkhole {
		return nil, false
	}
	rcode := byte(pl.Rcode)
	answer := pl.Answer == AnswerNullMX && q.qtype == dns.TypeMX
	soa := !answer && pl.Rcode != dns.RcodeRefused
	ttl := ttlSeconds(p.Answers.TTL)
	out := append(buf[:0], pkt[0], pkt[1], 0x80|pkt[2]&0x01, 0x80|pkt[3]&0x10|rcode, 0, 1, 0, 0, 0, 0, 0, 0)
	out = append(out, pkt[12:q.qEnd]...)
	if answer {
		// RFC 7505 §3: MX 0 ".", its owner the question's name.
		out[7] = 1
		out = append(out, 0xC0, 12, 0, byte(dns.TypeMX), 0, byte(dns.ClassINET))
		out = appendUint32(out, ttl)
		out = append(out, 0, 3, 0, 0, 0)
	}
	if soa {
		// The SOA of the matched domain (RFC 2308 §3), as negativeSOA.
		out[9] = 1
		out = appendLowerName(out, d.Domain)
		out = append(out, 0, byte(dns.TypeSOA), 0, byte(dns.ClassINET))
		out = appendUint32(out, ttl)
		out = append(out, 0, byte(len(soaNames)+20))
		out = append(out, soaNames...)
		for _, v := range [...]uint32{1, 3600, 600, 86400, ttl} {
			out = appendUint32(out, v)
		}
	}
	if q.edns {
		code := pl.EDE
		out[11] = 1
		out = appendOPT(out, q.do)
		opt := len(out)
		// The EDE option (RFC 8914 §2): code 15, its length, INFO-CODE,
		// EXTRA-TEXT; the OPT's RDLENGTH is patched once it is known.
		out = append(out, 0, 15, 0, 0, byte(code>>8), byte(code))
		if pl.text != "" {
			out = append(out, pl.text...)
		} else {
			out = appendRuleText(out, d)
		}
		n := len(out) - opt
		out[opt-2], out[opt-1] = byte(n>>8), byte(n)
		out[opt+2], out[opt+3] = byte((n-4)>>8), byte(n-4)
	}
	if len(out) > q.size || len(out) > cap(buf) {
		return nil, false
	}
	s.audit(q.lane, q.now, pl, client, dns.Question{Name: s.spelledName(q), Qtype: q.qtype, Qclass: q.qclass}, d, "", false)
	s.obs.Query(q.lane, q.qtype, int(rcode), ReasonBlocked)
	return out, true
}

// spelledName is the query name as the client spelled it, for the audit
// line: a view of q's buffer, which an Auditor does not keep.
func (s *Server) spelledName(q *wireQuery) string { return nameString(q.spelled) }

// appendLowerName appends the presentation name of plain labels in wire
// form, lower-cased, ending in the root.
func appendLowerName(b []byte, name string) []byte {
	for len(name) > 0 {
		i := strings.IndexByte(name, '.')
		if i < 0 {
			i = len(name)
		}
		b = append(b, byte(i))
		for j := range i {
			c := name[j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		if i == len(name) {
			break
		}
		name = name[i+1:]
	}
	return append(b, 0)
}

func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
