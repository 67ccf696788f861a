package cache

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestHashCollisionMisses stores one key's entry under another key's hash,
// as a collision of the two would, and checks that the other key misses
// rather than getting a reply to a question it did not ask.
func TestHashCollisionMisses(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := New(Config{Size: 100, MaxTTL: time.Hour, ServeStale: time.Hour}, func() time.Time { return now })
	asked := Key{Name: "a.test.", Type: dns.TypeA, Class: dns.ClassINET}
	other := Key{Name: "b.test.", Type: dns.TypeA, Class: dns.ClassINET}
	m := new(dns.Msg)
	m.SetQuestion(asked.Name, asked.Type)
	m.Response = true
	rr, err := dns.NewRR("a.test. 300 IN A 192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	m.Answer = append(m.Answer, rr)
	c.Set(asked, m)
	_, h, sh := c.locate(asked)
	e, ok := sh.entries.Peek(h)
	if !ok {
		t.Fatal("the stored reply is not under its key's hash")
	}
	_, oh, osh := c.locate(other)
	osh.entries.Add(oh, e)

	if _, ok := c.Get(asked); !ok {
		t.Error("Get of the stored key missed")
	}
	if _, ok := c.Get(other); ok {
		t.Error("Get of a key whose hash holds another key's reply hit")
	}
	if _, ok := c.Shared(other, 1); ok {
		t.Error("Shared of a key whose hash holds another key's reply hit")
	}
	now = now.Add(301 * time.Second)
	if _, ok := c.Stale(asked, 30); !ok {
		t.Error("Stale of the stored key missed")
	}
	if _, ok := c.Stale(other, 30); ok {
		t.Error("Stale of a key whose hash holds another key's reply hit")
	}
}
