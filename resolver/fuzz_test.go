package resolver

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// FuzzResolve feeds arbitrary packets through the server's accept filter and
// query path, as the listener would: nothing may panic, and every accepted
// query gets a reply.
func FuzzResolve(f *testing.F) {
	for _, q := range []*dns.Msg{
		query("army.ml.", dns.TypeMX, true),
		query("www.example.com.", dns.TypeA, false),
		query(`a\.b.ml.`, dns.TypeANY, true),
	} {
		b, _ := q.Pack()
		f.Add(b)
	}
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1})
	up := &fakeUpstream{}
	up.exchange = answerFrom(f, "www.example.com. 300 IN A 198.51.100.1", "alias.example.com. 300 IN CNAME x.army.ml.")
	s := newTestServer(f, testPolicy, up)
	f.Fuzz(func(t *testing.T, packet []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(packet); err != nil {
			return
		}
		var dh dns.Header
		dh.Id, dh.Qdcount, dh.Ancount, dh.Nscount, dh.Arcount = req.Id, uint16(len(req.Question)), uint16(len(req.Answer)), uint16(len(req.Ns)), uint16(len(req.Extra))
		if req.Response {
			dh.Bits |= 1 << 15
		}
		dh.Bits |= uint16(req.Opcode&0xF) << 11
		if acceptQuery(dh) != dns.MsgAccept {
			return
		}
		res := s.Resolve(context.Background(), localhost, req)
		if res.Msg == nil {
			t.Fatal("no reply")
		}
		for _, udp := range []bool{true, false} {
			reply := finish(req, res.Msg.Copy(), res.EDE, udp)
			if _, err := reply.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v\n%s", err, reply)
			}
		}
	})
}

// FuzzUDPPath feeds arbitrary datagrams to the UDP path as its loop does:
// the fast path first, then the full one. Nothing may panic, and a reply of
// the fast path must unpack, carry the query's ID and question, and say
// what the full path says of the same query.
func FuzzUDPPath(f *testing.F) {
	for _, q := range []*dns.Msg{
		query("army.ml.", dns.TypeMX, true),
		query("WWW.example.com.", dns.TypeA, false),
		query("www.example.com.", dns.TypeA, true),
		query("alias.example.com.", dns.TypeA, true),
		query("x.nodata.test.", dns.TypeTXT, true),
		query("mx.arny.mil.", dns.TypeMX, true),
	} {
		b, _ := q.Pack()
		f.Add(b)
	}
	f.Add([]byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 1, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1, 0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0})
	up := &fakeUpstream{}
	up.exchange = answerFrom(f, fastZone...)
	s := newTestServer(f, fastPolicy, up)
	for _, name := range []string{"www.example.com.", "alias.example.com.", "to-ml.example.com."} {
		for _, edns := range []bool{true, false} {
			s.Resolve(context.Background(), localhost, query(name, dns.TypeA, edns))
		}
	}
	buf := make([]byte, 0, maxUDPReply)
	q := wireQuery{name: make([]byte, 0, 256), spelled: make([]byte, 0, 256)}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		out, ok := s.fastAnswer(s.state.Load(), localhost, pkt, buf, &q)
		if !ok {
			if len(pkt) >= 12 {
				if reply, pend := s.answerUDP(localhost, pkt, buf); pend != nil {
					s.answerUpstream(localhost, pend)
				} else if reply != nil {
					if err := new(dns.Msg).Unpack(reply); err != nil {
						t.Fatalf("full-path reply does not unpack: %v", err)
					}
				}
			}
			return
		}
		got, req := new(dns.Msg), new(dns.Msg)
		if err := got.Unpack(out); err != nil {
			t.Fatalf("fast reply does not unpack: %v", err)
		}
		if err := req.Unpack(pkt); err != nil {
			t.Fatalf("the fast path answered a query that does not unpack: %v", err)
		}
		if got.Id != req.Id || len(got.Question) != 1 || got.Question[0] != req.Question[0] {
			t.Fatalf("reply %v to query %v", got, req)
		}
		res := s.Resolve(context.Background(), localhost, req)
		want := finish(req, res.Msg, res.EDE, true)
		if got.Rcode != want.Rcode || len(got.Answer) != len(want.Answer) || len(got.Ns) != len(want.Ns) {
			t.Fatalf("fast path:\n%s\nfull path:\n%s", got, want)
		}
	})
}

// FuzzUpstreamReply has the upstream answer the same query with arbitrary
// records: whatever they are (CNAME chains into blocked names or back
// onto themselves, MX and SRV targets, OPT records out of place, huge
// sets), the reply to the client, fresh and then from the cache and the
// fast path, packs for UDP and TCP, keeps the client's ID and question,
// and never passes a CNAME to a name the policy blocks.
func FuzzUpstreamReply(f *testing.F) {
	for _, rrs := range [][]string{
		{"www.example.com. 300 IN A 198.51.100.1"},
		{"www.example.com. 300 IN CNAME mail.army.ml.", "mail.army.ml. 300 IN A 192.0.2.1"},
		{"www.example.com. 300 IN CNAME a.example.com.", "a.example.com. 300 IN CNAME www.example.com."},
		{"www.example.com. 300 IN MX 10 mx.army.ml.", "mx.army.ml. 300 IN A 192.0.2.1"},
		{"www.example.com. 0 IN SRV 0 0 25 x.ml."},
	} {
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeA)
		m.Response = true
		for _, r := range rrs {
			rr, err := dns.NewRR(r)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		b, _ := m.Pack()
		f.Add(b, uint8(dns.RcodeSuccess))
	}
	f.Fuzz(func(t *testing.T, upstreamWire []byte, rcode uint8) {
		got := new(dns.Msg)
		if got.Unpack(upstreamWire) != nil {
			return
		}
		up := &fakeUpstream{exchange: func(_ context.Context, q *dns.Msg) (*dns.Msg, error) {
			m := got.Copy()
			m.Id, m.Response, m.Rcode = q.Id, true, int(rcode%24)
			m.Question = q.Question // the upstream package drops replies to another question
			return m, nil
		}}
		s := newTestServer(t, testPolicy, up)
		req := query("www.example.com.", dns.TypeA, true)
		pkt, _ := req.Pack()
		for round := range 2 {
			res := s.Resolve(context.Background(), localhost, req)
			if res.Msg == nil {
				t.Fatal("no reply")
			}
			for _, udp := range []bool{true, false} {
				reply := finish(req, res.Msg.Copy(), res.EDE, udp)
				b, err := reply.Pack()
				if err != nil {
					t.Fatalf("round %d: reply does not pack: %v\n%s", round, err, reply)
				}
				back := new(dns.Msg)
				if err := back.Unpack(b); err != nil || back.Id != req.Id || len(back.Question) != 1 || back.Question[0] != req.Question[0] {
					t.Fatalf("round %d: reply %v to query %v (%v)", round, back, req, err)
				}
				for _, rr := range back.Answer {
					if c, ok := rr.(*dns.CNAME); ok && s.Policy().Decide(localhost, c.Target, dns.TypeA).Blocked() {
						t.Fatalf("round %d: passed a CNAME into blocked %s:\n%v", round, c.Target, back)
					}
				}
			}
			buf := make([]byte, 0, maxUDPReply)
			q := wireQuery{name: make([]byte, 0, 256), spelled: make([]byte, 0, 256)}
			if out, ok := s.fastAnswer(s.state.Load(), localhost, pkt, buf, &q); ok {
				back := new(dns.Msg)
				if err := back.Unpack(out); err != nil || back.Id != req.Id {
					t.Fatalf("fast path reply %v (%v)", back, err)
				}
			}
		}
	})
}
