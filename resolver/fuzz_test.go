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
			reply := finish(req, res.Msg.Copy(), udp)
			if _, err := reply.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v\n%s", err, reply)
			}
		}
	})
}
