package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// upstreamRecords is what the fake upstream resolver knows.
var upstreamRecords = []string{
	"partner.ml. 300 IN MX 10 mx.partner.ml.",
	"mx.partner.ml. 300 IN A 198.51.100.7",
	"army.mil. 300 IN MX 10 mx.army.mil.",
	"mx.army.mil. 300 IN A 198.51.100.10",
	"www.example.com. 300 IN A 198.51.100.20",
	"cached.example.com. 300 IN A 198.51.100.21",
	"fresh.example.com. 300 IN A 198.51.100.22",
	"alias.example.com. 300 IN CNAME mail.army.ml.",
	"mail.army.ml. 300 IN A 203.0.113.66",
	"trap.example.com. 300 IN MX 10 mx.evil.ml.",
	"_submission._tcp.example.com. 300 IN SRV 0 0 587 smtp.evil.ml.",
	"monitored.example.com. 300 IN A 198.51.100.30",
}

// e2ePolicy is the policy the end-to-end tests run, with the fake upstreams'
// addresses filled in.
func e2ePolicy(upstream, corp string, extra string) string {
	return fmt.Sprintf(`version: 1
log: {format: json, level: debug}
upstreams: [%q]
upstream_timeout: 1s
acl:
  allow: [127.0.0.0/8]
answers:
  ttl: 10m
  sinkhole_ipv4: 192.0.2.25
  sinkhole_ipv6: "2001:db8::25"
  sinkhole_mx: sinkhole.example.net
rules:
  - name: mali-is-not-mil
    domains: [ml]
    types: [MX, A, AAAA, ANY]
    action: nxdomain
  - name: our-partner-in-mali
    domains: [partner.ml]
    action: allow
  - name: nodata-test
    domains: [nodata.test]
    action: nodata
  - name: nullmx-test
    domains: [nullmx.test]
    action: null-mx
  - name: sinkhole-test
    domains: [sinkhole.test]
    action: sinkhole
  - name: refuse-test
    domains: [refuse.test]
    action: refuse
  - name: corp-zone
    domains: [corp.internal]
    action: forward
    servers: [%q]
  - name: trial
    domains: [monitored.example.com]
    action: nxdomain
    mode: monitor
%s`, upstream, corp, extra)
}

// newUpstream checks that dig is there and starts a fake upstream that
// knows upstreamRecords.
func newUpstream(t *testing.T) (*resolvertest.Zone, string) {
	t.Helper()
	digPath(t)
	zone := resolvertest.NewZone(t, upstreamRecords...)
	return zone, resolvertest.NewServer(t, zone)
}

// newE2E starts the fake upstreams and a guard in front of them.
func newE2E(t *testing.T) (*guard, *resolvertest.Zone, func()) {
	t.Helper()
	digPath(t)
	zone := resolvertest.NewZone(t, upstreamRecords...)
	upstream, stop := resolvertest.NewServerWithStop(t, zone)
	corp := resolvertest.NewServer(t, resolvertest.NewZone(t, "db.corp.internal. 60 IN A 10.1.1.99"))
	return startGuard(t, e2ePolicy(upstream, corp, "")), zone, stop
}

func TestE2EBlockedUnderML(t *testing.T) {
	g, zone, _ := newE2E(t)
	for _, qtype := range []string{"MX", "A", "AAAA", "ANY"} {
		t.Run(qtype, func(t *testing.T) {
			r := g.dig(t, "army.ml", qtype)
			if r.status != "NXDOMAIN" {
				t.Fatalf("status %s, want NXDOMAIN:\n%s", r.status, r.out)
			}
			if len(r.authority) != 1 || !strings.Contains(r.authority[0], "ml. 600 IN SOA") {
				t.Errorf("authority %q, want the SOA of ml. with TTL 600", r.authority)
			}
			if !strings.HasPrefix(r.ede, "15 (Blocked)") || !strings.Contains(r.ede, "mali-is-not-mil") {
				t.Errorf("EDE %q, want 15 (Blocked) naming the rule", r.ede)
			}
			if r.hasFlag("aa") || !r.hasFlag("ra") || !r.hasFlag("rd") {
				t.Errorf("flags %v, want ra rd and no aa", r.flags)
			}
		})
	}
	if n := zone.QueriesFor("army.ml.", dns.TypeMX); n != 0 {
		t.Errorf("blocked name reached the upstream %d times", n)
	}
}

func TestE2EActions(t *testing.T) {
	g, _, _ := newE2E(t)
	tests := []struct {
		name, qname, qtype string
		status             string
		answer             []string // exact, whitespace-folded
		authoritySOA       bool
		additional         []string
		ede                string
	}{
		{"allow exception forwarded", "partner.ml", "MX", "NOERROR", []string{"partner.ml. 300 IN MX 10 mx.partner.ml."}, false, nil, ""},
		{"ordinary name forwarded", "army.mil", "MX", "NOERROR", []string{"army.mil. 300 IN MX 10 mx.army.mil."}, false, nil, ""},
		{"nodata", "x.nodata.test", "MX", "NOERROR", nil, true, nil, "15 (Blocked)"},
		{"null-mx on MX", "x.nullmx.test", "MX", "NOERROR", []string{"x.nullmx.test. 600 IN MX 0 ."}, false, nil, "15 (Blocked)"},
		{"null-mx on A", "x.nullmx.test", "A", "NOERROR", nil, true, nil, "15 (Blocked)"},
		{"sinkhole MX", "x.sinkhole.test", "MX", "NOERROR", []string{"x.sinkhole.test. 600 IN MX 10 sinkhole.example.net."}, false,
			[]string{"sinkhole.example.net. 600 IN A 192.0.2.25", "sinkhole.example.net. 600 IN AAAA 2001:db8::25"}, "15 (Blocked)"},
		{"sinkhole A", "x.sinkhole.test", "A", "NOERROR", []string{"x.sinkhole.test. 600 IN A 192.0.2.25"}, false, nil, "15 (Blocked)"},
		{"sinkhole AAAA", "x.sinkhole.test", "AAAA", "NOERROR", []string{"x.sinkhole.test. 600 IN AAAA 2001:db8::25"}, false, nil, "15 (Blocked)"},
		{"sinkhole TXT", "x.sinkhole.test", "TXT", "NOERROR", nil, true, nil, "15 (Blocked)"},
		{"sinkhole host answered locally", "sinkhole.example.net", "A", "NOERROR", []string{"sinkhole.example.net. 600 IN A 192.0.2.25"}, false, nil, ""},
		{"refuse", "x.refuse.test", "A", "REFUSED", nil, false, nil, "18 (Prohibited)"},
		{"conditional forward", "db.corp.internal", "A", "NOERROR", []string{"db.corp.internal. 60 IN A 10.1.1.99"}, false, nil, ""},
		{"monitor mode answers", "monitored.example.com", "A", "NOERROR", []string{"monitored.example.com. 300 IN A 198.51.100.30"}, false, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := g.dig(t, tc.qname, tc.qtype)
			if r.status != tc.status {
				t.Fatalf("status %s, want %s:\n%s", r.status, tc.status, r.out)
			}
			if strings.Join(r.answer, "\n") != strings.Join(tc.answer, "\n") {
				t.Errorf("answer:\n%s\nwant:\n%s", strings.Join(r.answer, "\n"), strings.Join(tc.answer, "\n"))
			}
			hasSOA := len(r.authority) == 1 && strings.Contains(r.authority[0], " IN SOA ")
			if hasSOA != tc.authoritySOA {
				t.Errorf("authority %q, want SOA: %v", r.authority, tc.authoritySOA)
			}
			if tc.additional != nil && strings.Join(r.additional, "\n") != strings.Join(tc.additional, "\n") {
				t.Errorf("additional:\n%s\nwant:\n%s", strings.Join(r.additional, "\n"), strings.Join(tc.additional, "\n"))
			}
			if !strings.HasPrefix(r.ede, tc.ede) || (tc.ede == "" && r.ede != "") {
				t.Errorf("EDE %q, want %q", r.ede, tc.ede)
			}
		})
	}
}

func TestE2EIndirectPaths(t *testing.T) {
	g, _, _ := newE2E(t)
	for _, tc := range []struct{ name, qname, qtype string }{
		{"CNAME into ml", "alias.example.com", "A"},
		{"MX exchange under ml", "trap.example.com", "MX"},
		{"SRV target under ml", "_submission._tcp.example.com", "SRV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := g.dig(t, tc.qname, tc.qtype)
			if r.status != "NXDOMAIN" || len(r.answer) != 0 {
				t.Fatalf("status %s answer %q, want NXDOMAIN and no answer:\n%s", r.status, r.answer, r.out)
			}
			if !strings.HasPrefix(r.ede, "15 (Blocked)") {
				t.Errorf("EDE %q", r.ede)
			}
		})
	}
}

func TestE2ECacheAndUpstreamFailure(t *testing.T) {
	g, zone, stopUpstream := newE2E(t)
	first := g.dig(t, "cached.example.com", "A")
	if first.status != "NOERROR" || first.ttlOf(t) != 300 {
		t.Fatalf("first answer:\n%s", first.out)
	}
	// The TTL counts down in whole seconds: ask until it has.
	deadline := time.Now().Add(5 * time.Second)
	var again digResult
	for {
		again = g.dig(t, "cached.example.com", "A")
		if again.ttlOf(t) < 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ttl := again.ttlOf(t); ttl >= 300 || ttl < 290 {
		t.Errorf("cached TTL %d, want a little under 300", ttl)
	}
	if n := zone.QueriesFor("cached.example.com.", dns.TypeA); n != 1 {
		t.Errorf("upstream asked %d times, want once (the rest from cache)", n)
	}

	stopUpstream()
	if r := g.dig(t, "cached.example.com", "A"); r.status != "NOERROR" || len(r.answer) != 1 {
		t.Errorf("cached name with upstream down:\n%s", r.out)
	}
	if r := g.dig(t, "army.ml", "MX"); r.status != "NXDOMAIN" {
		t.Errorf("blocked name with upstream down: %s", r.status)
	}
	start := time.Now()
	r := g.dig(t, "fresh.example.com", "A")
	elapsed := time.Since(start)
	if r.status != "SERVFAIL" {
		t.Errorf("uncached name with upstream down: %s, want SERVFAIL", r.status)
	}
	// upstream_timeout is 1s; dig itself adds process start-up.
	if elapsed > 2500*time.Millisecond {
		t.Errorf("SERVFAIL took %s, want within the 1s upstream timeout", elapsed)
	}
}

func TestE2ETransportsAndSpelling(t *testing.T) {
	g, _, _ := newE2E(t)
	t.Run("tcp", func(t *testing.T) {
		r := g.dig(t, "+tcp", "army.ml", "MX")
		if r.status != "NXDOMAIN" || !strings.HasPrefix(r.ede, "15") {
			t.Errorf("over TCP: %s %q", r.status, r.ede)
		}
		if r := g.dig(t, "+tcp", "www.example.com", "A"); len(r.answer) != 1 {
			t.Errorf("forwarded over TCP:\n%s", r.out)
		}
	})
	t.Run("noedns", func(t *testing.T) {
		r := g.dig(t, "+noedns", "army.ml", "MX")
		if r.status != "NXDOMAIN" || r.hasOPT || r.ede != "" {
			t.Errorf("without EDNS: status %s, OPT %v, EDE %q", r.status, r.hasOPT, r.ede)
		}
		if len(r.authority) != 1 {
			t.Errorf("no SOA without EDNS")
		}
	})
	t.Run("edns", func(t *testing.T) {
		r := g.dig(t, "+edns=0", "www.example.com", "A")
		if !r.hasOPT || !strings.Contains(r.out, "udp: 1232") {
			t.Errorf("with EDNS, want OPT with udp 1232:\n%s", r.out)
		}
	})
	t.Run("mixed case and trailing dot", func(t *testing.T) {
		r := g.dig(t, "ArMy.Ml.", "MX")
		if r.status != "NXDOMAIN" || r.question != "ArMy.Ml." {
			t.Errorf("status %s question %q, want NXDOMAIN for ArMy.Ml.", r.status, r.question)
		}
		if r := g.dig(t, "WWW.Example.COM", "A"); len(r.answer) != 1 || r.question != "WWW.Example.COM." {
			t.Errorf("mixed-case forward: question %q\n%s", r.question, r.out)
		}
	})
	t.Run("rd and cd echoed", func(t *testing.T) {
		r := g.dig(t, "+cdflag", "+nordflag", "army.ml", "MX")
		if !r.hasFlag("cd") || r.hasFlag("rd") || !r.hasFlag("ra") || r.hasFlag("aa") {
			t.Errorf("flags %v, want cd and ra, no rd or aa", r.flags)
		}
		r = g.dig(t, "www.example.com", "A")
		if r.hasFlag("cd") || !r.hasFlag("rd") || !r.hasFlag("ra") || r.hasFlag("aa") {
			t.Errorf("flags %v, want rd and ra, no cd or aa", r.flags)
		}
	})
	t.Run("notimp for other opcodes", func(t *testing.T) {
		if r := g.dig(t, "+opcode=status", "army.ml"); r.status != "NOTIMP" {
			t.Errorf("opcode status: %s", r.status)
		}
	})
}

func TestE2EClientOutsideACL(t *testing.T) {
	zone, upstream := newUpstream(t)
	g := startGuard(t, strings.Replace(e2ePolicy(upstream, upstream, ""), "allow: [127.0.0.0/8]", "allow: [127.0.0.2/32]", 1))
	r := g.dig(t, "-b", "127.0.0.1", "www.example.com", "A")
	if r.status != "REFUSED" || !strings.HasPrefix(r.ede, "18 (Prohibited)") {
		t.Errorf("from 127.0.0.1: %s %q, want REFUSED with EDE 18", r.status, r.ede)
	}
	if zone.Queries() != 0 {
		t.Errorf("refused query reached the upstream")
	}
	if r := g.dig(t, "-b", "127.0.0.2", "www.example.com", "A"); r.status != "NOERROR" {
		t.Errorf("from 127.0.0.2: %s", r.status)
	}
}

func TestE2EMalformedPacketsDoNotCrash(t *testing.T) {
	g, _, _ := newE2E(t)
	conn, err := net.Dial("udp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	junk := [][]byte{
		{},
		{0x12},
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01}, // short header
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f, 'a'},        // label past the end
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1}, // pointer loop
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1},    // two questions claimed
	}
	for _, p := range junk {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if r := g.dig(t, "army.ml", "MX"); r.status != "NXDOMAIN" {
		t.Fatalf("after malformed packets: %s", r.status)
	}

	// No question: FORMERR. A response: ignored, no reply at all. A fresh
	// socket each, so no reply to the junk above is read.
	exchange := func(m *dns.Msg) (*dns.Msg, error) {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("udp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write(b)
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		reply := new(dns.Msg)
		return reply, reply.Unpack(buf[:n])
	}
	empty := &dns.Msg{MsgHdr: dns.MsgHdr{Id: 7, Opcode: dns.OpcodeQuery, RecursionDesired: true}}
	if reply, err := exchange(empty); err != nil || reply.Rcode != dns.RcodeFormatError || reply.Id != 7 {
		t.Errorf("no question: %v %v, want FORMERR with id 7", reply, err)
	}
	resp := new(dns.Msg)
	resp.SetQuestion("army.ml.", dns.TypeMX)
	resp.Response = true
	if reply, err := exchange(resp); err == nil {
		t.Errorf("a response got a reply: %v", reply)
	}
}

func TestE2ETruncation(t *testing.T) {
	digPath(t)
	var records []string
	for i := 0; i < 40; i++ {
		records = append(records, fmt.Sprintf("big.example.com. 300 IN TXT \"%s-%02d\"", strings.Repeat("x", 40), i))
	}
	upstream := resolvertest.NewServer(t, resolvertest.NewZone(t, records...))
	g := startGuard(t, e2ePolicy(upstream, upstream, ""))
	r := g.dig(t, "+noedns", "+ignore", "big.example.com", "TXT")
	if !r.hasFlag("tc") {
		t.Errorf("512-byte client: flags %v, want tc", r.flags)
	}
	if r := g.dig(t, "+tcp", "big.example.com", "TXT"); len(r.answer) != 40 {
		t.Errorf("over TCP: %d records, want 40", len(r.answer))
	}
}

func TestE2EAuditLog(t *testing.T) {
	g, _, _ := newE2E(t)
	g.dig(t, "army.ml", "MX")
	g.dig(t, "monitored.example.com", "A")
	deadline := time.Now().Add(3 * time.Second)
	for {
		var blocked, would bool
		for _, l := range g.logLines() {
			if l["msg"] == "blocked" && l["name"] == "army.ml." && l["rule"] == "mali-is-not-mil" && l["type"] == "MX" && l["action"] == "nxdomain" && l["mode"] == "enforce" && l["client"] == "127.0.0.1" {
				blocked = true
			}
			if l["msg"] == "would block" && l["rule"] == "trial" && l["mode"] == "monitor" {
				would = true
			}
		}
		if blocked && would {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit lines missing (blocked %v, would block %v): %v", blocked, would, g.logLines())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
