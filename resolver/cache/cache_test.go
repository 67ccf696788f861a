package cache_test

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/typoguard/typoguard/resolver/cache"
	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// clock is a settable time source for a cache.
type clock struct{ t time.Time }

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time { return c.t }

// config is a cache configuration with room to spare and the limits the
// tests below expect unless they say otherwise.
func config() cache.Config {
	return cache.Config{
		Size:           100,
		MinTTL:         0,
		MaxTTL:         24 * time.Hour,
		MaxNegativeTTL: time.Hour,
		ServfailTTL:    5 * time.Second,
	}
}

func query(name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	return q
}

// sections holds the records of a reply as zone text.
type sections struct {
	answer, ns, extra []string
}

// reply returns q's reply with rcode and the records in s.
func reply(t testing.TB, q *dns.Msg, rcode int, s sections) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	for _, text := range s.answer {
		m.Answer = append(m.Answer, resolvertest.RR(t, text))
	}
	for _, text := range s.ns {
		m.Ns = append(m.Ns, resolvertest.RR(t, text))
	}
	for _, text := range s.extra {
		m.Extra = append(m.Extra, resolvertest.RR(t, text))
	}
	return m
}

// ttls lists the TTLs of m's records, answer, authority, then additional.
func ttls(m *dns.Msg) []uint32 {
	var out []uint32
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			out = append(out, rr.Header().Ttl)
		}
	}
	return out
}

func TestTTLCountsDown(t *testing.T) {
	clk := newClock()
	c := cache.New(config(), clk.now)
	q := query("a.test.", dns.TypeA)
	c.Set(cache.KeyOf(q), reply(t, q, dns.RcodeSuccess, sections{
		answer: []string{"a.test. 300 IN A 192.0.2.1"},
		ns:     []string{"test. 3600 IN NS ns.test."},
		extra:  []string{"ns.test. 600 IN A 192.0.2.53"},
	}))
	start := clk.t

	tests := []struct {
		name string
		age  time.Duration
		want []uint32 // nil for a miss
	}{
		{name: "just stored", age: 0, want: []uint32{300, 3600, 600}},
		{name: "part of a second counts as none", age: 999 * time.Millisecond, want: []uint32{300, 3600, 600}},
		{name: "whole seconds", age: 1500 * time.Millisecond, want: []uint32{299, 3599, 599}},
		{name: "last second of the least TTL", age: 299*time.Second + 999*time.Millisecond, want: []uint32{1, 3301, 301}},
		{name: "least TTL run out", age: 300 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.t = start.Add(tt.age)
			r, ok := c.Get(cache.KeyOf(q))
			if tt.want == nil {
				if ok {
					t.Fatalf("Get hit, want a miss:\n%v", r)
				}
				return
			}
			if !ok {
				t.Fatal("Get missed")
			}
			if got := fmt.Sprint(ttls(r)); got != fmt.Sprint(tt.want) {
				t.Errorf("TTLs = %s, want %v", got, tt.want)
			}
		})
	}
}

func TestStoredFor(t *testing.T) {
	const soa = "test. %d IN SOA ns.test. hostmaster.test. 1 7200 3600 1209600 %d"
	withConfig := func(edit func(*cache.Config)) cache.Config {
		cfg := config()
		edit(&cfg)
		return cfg
	}
	tests := []struct {
		name     string
		cfg      cache.Config
		rcode    int
		records  sections
		wantTTLs []uint32      // of the stored records; nil when not stored
		lifetime time.Duration // how long the reply stays
	}{
		{
			name:     "positive: the least TTL of all records",
			cfg:      config(),
			rcode:    dns.RcodeSuccess,
			records:  sections{answer: []string{"a.test. 300 IN A 192.0.2.1"}, ns: []string{"test. 100 IN NS ns.test."}},
			wantTTLs: []uint32{300, 100},
			lifetime: 100 * time.Second,
		},
		{
			name:     "positive: raised to MinTTL",
			cfg:      withConfig(func(c *cache.Config) { c.MinTTL = time.Minute; c.MaxTTL = time.Hour }),
			rcode:    dns.RcodeSuccess,
			records:  sections{answer: []string{"a.test. 10 IN A 192.0.2.1", "a.test. 7200 IN A 192.0.2.2"}},
			wantTTLs: []uint32{60, 3600},
			lifetime: time.Minute,
		},
		{
			name:     "positive: lowered to MaxTTL",
			cfg:      withConfig(func(c *cache.Config) { c.MinTTL = time.Minute; c.MaxTTL = time.Hour }),
			rcode:    dns.RcodeSuccess,
			records:  sections{answer: []string{"a.test. 86400 IN A 192.0.2.1"}},
			wantTTLs: []uint32{3600},
			lifetime: time.Hour,
		},
		{
			name:     "positive: MaxTTL wins over a greater MinTTL",
			cfg:      withConfig(func(c *cache.Config) { c.MinTTL = 2 * time.Hour; c.MaxTTL = time.Hour }),
			rcode:    dns.RcodeSuccess,
			records:  sections{answer: []string{"a.test. 10 IN A 192.0.2.1"}},
			wantTTLs: []uint32{3600},
			lifetime: time.Hour,
		},
		{
			name:     "positive: TTL with the top bit set counts as zero",
			cfg:      withConfig(func(c *cache.Config) { c.MinTTL = time.Minute }),
			rcode:    dns.RcodeSuccess,
			records:  sections{answer: []string{"a.test. 2147483648 IN A 192.0.2.1"}},
			wantTTLs: []uint32{60},
			lifetime: time.Minute,
		},
		{
			name:    "positive: zero TTL not stored",
			cfg:     config(),
			rcode:   dns.RcodeSuccess,
			records: sections{answer: []string{"a.test. 0 IN A 192.0.2.1"}},
		},
		{
			name:    "positive: zero MaxTTL stores none",
			cfg:     withConfig(func(c *cache.Config) { c.MaxTTL = 0 }),
			rcode:   dns.RcodeSuccess,
			records: sections{answer: []string{"a.test. 300 IN A 192.0.2.1"}},
		},
		{
			name:     "nxdomain: SOA MINIMUM below the SOA TTL",
			cfg:      config(),
			rcode:    dns.RcodeNameError,
			records:  sections{ns: []string{fmt.Sprintf(soa, 300, 60)}},
			wantTTLs: []uint32{60},
			lifetime: time.Minute,
		},
		{
			name:     "nxdomain: SOA TTL below MINIMUM",
			cfg:      config(),
			rcode:    dns.RcodeNameError,
			records:  sections{ns: []string{fmt.Sprintf(soa, 30, 3600)}},
			wantTTLs: []uint32{30},
			lifetime: 30 * time.Second,
		},
		{
			name:     "nxdomain: capped by MaxNegativeTTL",
			cfg:      config(),
			rcode:    dns.RcodeNameError,
			records:  sections{ns: []string{fmt.Sprintf(soa, 86400, 86400)}},
			wantTTLs: []uint32{3600},
			lifetime: time.Hour,
		},
		{
			name:     "nxdomain: no longer than a CNAME leading to it",
			cfg:      config(),
			rcode:    dns.RcodeNameError,
			records:  sections{answer: []string{"a.test. 20 IN CNAME gone.test."}, ns: []string{fmt.Sprintf(soa, 300, 60)}},
			wantTTLs: []uint32{20, 20},
			lifetime: 20 * time.Second,
		},
		{
			name:     "nodata",
			cfg:      config(),
			rcode:    dns.RcodeSuccess,
			records:  sections{ns: []string{fmt.Sprintf(soa, 300, 120)}},
			wantTTLs: []uint32{120},
			lifetime: 2 * time.Minute,
		},
		{
			name:    "nxdomain without SOA not stored",
			cfg:     config(),
			rcode:   dns.RcodeNameError,
			records: sections{},
		},
		{
			name:    "nodata without SOA not stored",
			cfg:     config(),
			rcode:   dns.RcodeSuccess,
			records: sections{ns: []string{"test. 3600 IN NS ns.test."}},
		},
		{
			name:    "negative: zero MaxNegativeTTL stores none",
			cfg:     withConfig(func(c *cache.Config) { c.MaxNegativeTTL = 0 }),
			rcode:   dns.RcodeNameError,
			records: sections{ns: []string{fmt.Sprintf(soa, 300, 60)}},
		},
		{
			name:     "servfail: kept for ServfailTTL",
			cfg:      config(),
			rcode:    dns.RcodeServerFailure,
			wantTTLs: []uint32{},
			lifetime: 5 * time.Second,
		},
		{
			name:     "servfail: at most five minutes",
			cfg:      withConfig(func(c *cache.Config) { c.ServfailTTL = time.Hour }),
			rcode:    dns.RcodeServerFailure,
			wantTTLs: []uint32{},
			lifetime: 5 * time.Minute,
		},
		{
			name:  "servfail: zero ServfailTTL stores none",
			cfg:   withConfig(func(c *cache.Config) { c.ServfailTTL = 0 }),
			rcode: dns.RcodeServerFailure,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			start := clk.t
			c := cache.New(tt.cfg, clk.now)
			q := query("a.test.", dns.TypeA)
			k := cache.KeyOf(q)
			c.Set(k, reply(t, q, tt.rcode, tt.records))

			r, ok := c.Get(k)
			if tt.wantTTLs == nil {
				if ok {
					t.Fatalf("stored, want not:\n%v", r)
				}
				if n := c.Stats().Entries; n != 0 {
					t.Fatalf("%d entries, want 0", n)
				}
				return
			}
			if !ok {
				t.Fatal("not stored")
			}
			if r.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			if got := fmt.Sprint(ttls(r)); got != fmt.Sprint(tt.wantTTLs) {
				t.Errorf("TTLs = %s, want %v", got, tt.wantTTLs)
			}
			// The wire form a hit is served from has every record's TTL
			// where it says, in every section.
			h, ok := c.Shared(k, 0)
			if !ok || h.Wire == nil {
				t.Fatalf("Shared: %v, wire %x; want the packed reply", ok, h.Wire)
			}
			var wire []uint32
			for _, at := range h.TTLs {
				wire = append(wire, binary.BigEndian.Uint32(h.Wire[at:]))
			}
			if got := fmt.Sprint(wire); got != fmt.Sprint(tt.wantTTLs) {
				t.Errorf("TTLs in the wire form = %s, want %v", got, tt.wantTTLs)
			}
			clk.t = start.Add(tt.lifetime - time.Nanosecond)
			if _, ok := c.Get(k); !ok {
				t.Errorf("gone before %v", tt.lifetime)
			}
			clk.t = start.Add(tt.lifetime)
			if r, ok := c.Get(k); ok {
				t.Errorf("still there after %v:\n%v", tt.lifetime, r)
			}
		})
	}
}

func TestNotStored(t *testing.T) {
	q := query("a.test.", dns.TypeA)
	answer := sections{answer: []string{"a.test. 300 IN A 192.0.2.1"}}
	tests := []struct {
		name string
		key  cache.Key
		m    func(t *testing.T) *dns.Msg
	}{
		{name: "truncated", key: cache.KeyOf(q), m: func(t *testing.T) *dns.Msg {
			m := reply(t, q, dns.RcodeSuccess, answer)
			m.Truncated = true
			return m
		}},
		{name: "other name", key: cache.KeyOf(query("b.test.", dns.TypeA)), m: func(t *testing.T) *dns.Msg {
			return reply(t, q, dns.RcodeSuccess, answer)
		}},
		{name: "other type", key: cache.KeyOf(query("a.test.", dns.TypeAAAA)), m: func(t *testing.T) *dns.Msg {
			return reply(t, q, dns.RcodeSuccess, answer)
		}},
		{name: "other class", key: cache.Key{Name: "a.test.", Type: dns.TypeA, Class: dns.ClassCHAOS}, m: func(t *testing.T) *dns.Msg {
			return reply(t, q, dns.RcodeSuccess, answer)
		}},
		{name: "no question", key: cache.KeyOf(new(dns.Msg)), m: func(t *testing.T) *dns.Msg {
			m := reply(t, q, dns.RcodeSuccess, answer)
			m.Question = nil
			return m
		}},
		{name: "refused", key: cache.KeyOf(q), m: func(t *testing.T) *dns.Msg {
			return reply(t, q, dns.RcodeRefused, sections{})
		}},
		{name: "formerr", key: cache.KeyOf(q), m: func(t *testing.T) *dns.Msg {
			return reply(t, q, dns.RcodeFormatError, sections{})
		}},
		{name: "notimp", key: cache.KeyOf(q), m: func(t *testing.T) *dns.Msg {
			return reply(t, q, dns.RcodeNotImplemented, answer)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache.New(config(), newClock().now)
			c.Set(tt.key, tt.m(t))
			if n := c.Stats().Entries; n != 0 {
				t.Fatalf("%d entries, want 0", n)
			}
			if r, ok := c.Get(tt.key); ok {
				t.Fatalf("Get hit:\n%v", r)
			}
		})
	}
}

func TestOPTNotStored(t *testing.T) {
	q := query("a.test.", dns.TypeMX)
	q.SetEdns0(1232, true)
	m := reply(t, q, dns.RcodeSuccess, sections{
		answer: []string{"a.test. 300 IN MX 10 mx.a.test."},
		extra:  []string{"mx.a.test. 300 IN A 192.0.2.25"},
	})
	m.SetEdns0(1232, true)
	c := cache.New(config(), newClock().now)
	k := cache.KeyOf(q)
	c.Set(k, m)

	r, ok := c.Get(k)
	if !ok {
		t.Fatal("not stored")
	}
	if opt := r.IsEdns0(); opt != nil {
		t.Errorf("stored reply kept OPT %v", opt)
	}
	if len(r.Extra) != 1 || r.Extra[0].Header().Rrtype != dns.TypeA {
		t.Errorf("additional:\n%s\nwant the A record only", resolvertest.Records(r.Extra))
	}
	if m.IsEdns0() == nil {
		t.Error("Set removed the OPT from the caller's message")
	}
}

// TestSetLeavesTheReplyAlone: the caller's reply, which it goes on to
// answer with, keeps its TTLs and its OPT whatever the cache stores.
func TestSetLeavesTheReplyAlone(t *testing.T) {
	q := query("a.test.", dns.TypeMX)
	m := reply(t, q, dns.RcodeSuccess, sections{
		answer: []string{"a.test. 999999 IN MX 10 mx.a.test."},
		extra:  []string{"mx.a.test. 999999 IN A 192.0.2.25"},
	})
	m.SetEdns0(1232, true)
	want := m.String()
	cfg := config()
	cfg.MaxTTL = time.Minute
	c := cache.New(cfg, newClock().now)
	k := cache.KeyOf(q)
	c.Set(k, m)
	if got := m.String(); got != want {
		t.Errorf("the reply after Set:\n%s\nwant as it was:\n%s", got, want)
	}
	r, ok := c.Get(k)
	if !ok {
		t.Fatal("not stored")
	}
	for _, rr := range append(r.Answer, r.Extra...) {
		if rr.Header().Ttl != 60 {
			t.Errorf("stored %v, want TTL 60 (max_ttl)", rr)
		}
	}
}

func TestCopiesAreIndependent(t *testing.T) {
	q := query("a.test.", dns.TypeA)
	m := reply(t, q, dns.RcodeSuccess, sections{answer: []string{"a.test. 300 IN A 192.0.2.1"}})
	c := cache.New(config(), newClock().now)
	k := cache.KeyOf(q)
	c.Set(k, m)
	want := m.String()

	mutate := func(m *dns.Msg) {
		m.Id++
		m.Rcode = dns.RcodeRefused
		m.Answer[0].(*dns.A).A[3] = 66
		m.Answer[0].Header().Ttl = 1
		m.Answer = append(m.Answer, resolvertest.RR(t, "a.test. 5 IN A 192.0.2.99"))
		m.Question[0].Name = "b.test."
	}
	mutate(m) // the caller's message after Set
	first, ok := c.Get(k)
	if !ok {
		t.Fatal("not stored")
	}
	mutate(first) // a reply already handed out

	second, ok := c.Get(k)
	if !ok {
		t.Fatal("gone after the first Get")
	}
	if got := second.String(); got != want {
		t.Errorf("second Get:\n%s\nwant as stored:\n%s", got, want)
	}
}

func TestKeyOf(t *testing.T) {
	tests := []struct {
		name string
		q    func() *dns.Msg
		want cache.Key
	}{
		{
			name: "plain",
			q:    func() *dns.Msg { return query("army.mil.", dns.TypeMX) },
			want: cache.Key{Name: "army.mil.", Type: dns.TypeMX, Class: dns.ClassINET},
		},
		{
			name: "name lower-cased and made absolute",
			q:    func() *dns.Msg { return query("ArMy.MIL", dns.TypeMX) },
			want: cache.Key{Name: "army.mil.", Type: dns.TypeMX, Class: dns.ClassINET},
		},
		{
			name: "DO",
			q: func() *dns.Msg {
				q := query("army.mil.", dns.TypeMX)
				q.SetEdns0(1232, true)
				return q
			},
			want: cache.Key{Name: "army.mil.", Type: dns.TypeMX, Class: dns.ClassINET, DO: true},
		},
		{
			name: "EDNS without DO",
			q: func() *dns.Msg {
				q := query("army.mil.", dns.TypeMX)
				q.SetEdns0(1232, false)
				return q
			},
			want: cache.Key{Name: "army.mil.", Type: dns.TypeMX, Class: dns.ClassINET},
		},
		{
			name: "CD",
			q: func() *dns.Msg {
				q := query("army.mil.", dns.TypeMX)
				q.CheckingDisabled = true
				return q
			},
			want: cache.Key{Name: "army.mil.", Type: dns.TypeMX, Class: dns.ClassINET, CD: true},
		},
		{
			name: "no question",
			q:    func() *dns.Msg { return new(dns.Msg) },
			want: cache.Key{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cache.KeyOf(tt.q()); got != tt.want {
				t.Errorf("KeyOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	plain := query("a.test.", dns.TypeA)
	do := query("a.test.", dns.TypeA)
	do.SetEdns0(1232, true)
	cd := query("a.test.", dns.TypeA)
	cd.CheckingDisabled = true
	upper := query("A.TEST.", dns.TypeA)

	tests := []struct {
		name string
		set  cache.Key
		get  cache.Key
		hit  bool
	}{
		{name: "same query", set: cache.KeyOf(plain), get: cache.KeyOf(plain), hit: true},
		{name: "name case", set: cache.KeyOf(upper), get: cache.KeyOf(plain), hit: true},
		{name: "name case in a key made by hand", set: cache.KeyOf(plain), get: cache.Key{Name: "A.Test.", Type: dns.TypeA, Class: dns.ClassINET}, hit: true},
		{name: "DO apart", set: cache.KeyOf(plain), get: cache.KeyOf(do)},
		{name: "CD apart", set: cache.KeyOf(plain), get: cache.KeyOf(cd)},
		{name: "DO and CD apart", set: cache.KeyOf(do), get: cache.KeyOf(cd)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cache.New(config(), newClock().now)
			c.Set(tt.set, reply(t, upper, dns.RcodeSuccess, sections{answer: []string{"a.test. 300 IN A 192.0.2.1"}}))
			if _, ok := c.Get(tt.get); ok != tt.hit {
				t.Errorf("Get hit = %v, want %v", ok, tt.hit)
			}
		})
	}
}

func TestStats(t *testing.T) {
	clk := newClock()
	cfg := config()
	cfg.Size = 2
	c := cache.New(cfg, clk.now)
	set := func(name string, ttl int) {
		q := query(name, dns.TypeA)
		c.Set(cache.KeyOf(q), reply(t, q, dns.RcodeSuccess, sections{answer: []string{fmt.Sprintf("%s %d IN A 192.0.2.1", name, ttl)}}))
	}
	get := func(name string, want bool) {
		t.Helper()
		if _, ok := c.Get(cache.KeyOf(query(name, dns.TypeA))); ok != want {
			t.Fatalf("Get(%s) hit = %v, want %v", name, ok, want)
		}
	}
	check := func(step string, want cache.Stats) {
		t.Helper()
		if got := c.Stats(); got != want {
			t.Fatalf("after %s: Stats = %+v, want %+v", step, got, want)
		}
	}

	get("a.test.", false)
	check("a miss", cache.Stats{Misses: 1})
	set("a.test.", 60)
	set("b.test.", 300)
	check("two stored", cache.Stats{Misses: 1, Entries: 2})
	get("a.test.", true)
	check("a hit", cache.Stats{Hits: 1, Misses: 1, Entries: 2})
	set("c.test.", 300)
	check("a third stored", cache.Stats{Hits: 1, Misses: 1, Evictions: 1, Entries: 2})
	set("c.test.", 300)
	check("one replaced", cache.Stats{Hits: 1, Misses: 1, Evictions: 1, Entries: 2})
	clk.t = clk.t.Add(time.Minute)
	get("a.test.", false)
	check("a expired", cache.Stats{Hits: 1, Misses: 2, Evictions: 1, Entries: 1})
}

func TestEviction(t *testing.T) {
	cfg := config()
	cfg.Size = 2
	c := cache.New(cfg, newClock().now)
	keys := make(map[string]cache.Key)
	for _, name := range []string{"a.test.", "b.test.", "c.test."} {
		q := query(name, dns.TypeA)
		keys[name] = cache.KeyOf(q)
		c.Set(keys[name], reply(t, q, dns.RcodeSuccess, sections{answer: []string{name + " 300 IN A 192.0.2.1"}}))
		if name == "b.test." {
			c.Get(keys["a.test."]) // a is now used more recently than b
		}
	}
	for name, want := range map[string]bool{"a.test.": true, "b.test.": false, "c.test.": true} {
		if _, ok := c.Get(keys[name]); ok != want {
			t.Errorf("%s kept = %v, want %v", name, ok, want)
		}
	}
	if got := c.Stats(); got.Evictions != 1 || got.Entries != 2 {
		t.Errorf("Stats = %+v, want 1 eviction and 2 entries", got)
	}
}

func TestZeroSizeStoresNothing(t *testing.T) {
	cfg := config()
	cfg.Size = 0
	c := cache.New(cfg, nil)
	q := query("a.test.", dns.TypeA)
	c.Set(cache.KeyOf(q), reply(t, q, dns.RcodeSuccess, sections{answer: []string{"a.test. 300 IN A 192.0.2.1"}}))
	if _, ok := c.Get(cache.KeyOf(q)); ok {
		t.Error("Get hit")
	}
	if got, want := c.Stats(), (cache.Stats{Misses: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestConcurrentUse(t *testing.T) {
	cfg := config()
	cfg.Size = 8
	c := cache.New(cfg, newClock().now)
	replies := make([]*dns.Msg, 16)
	for i := range replies {
		q := query(fmt.Sprintf("n%d.test.", i), dns.TypeA)
		replies[i] = reply(t, q, dns.RcodeSuccess, sections{answer: []string{fmt.Sprintf("n%d.test. 300 IN A 192.0.2.%d", i, i)}})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				m := replies[(g+i)%len(replies)]
				k := cache.KeyOf(m)
				c.Set(k, m)
				if r, ok := c.Get(k); ok {
					r.Answer[0].Header().Ttl = 0 // a caller changing its copy
					if r.Question[0].Name != m.Question[0].Name {
						t.Errorf("Get(%s) = reply to %s", m.Question[0].Name, r.Question[0].Name)
					}
				}
				// A reader on a lane of its own, as a serving loop is.
				if h, ok := c.Shared(k, g%cache.Lanes); ok {
					if r, err := h.Reply(); err != nil || r.Question[0].Name != m.Question[0].Name {
						t.Errorf("Shared(%s) = reply %v, %v", m.Question[0].Name, r, err)
					}
					c.CountHit(h)
				}
			}
		})
	}
	wg.Wait()
	if s := c.Stats(); s.Entries > cfg.Size {
		t.Errorf("%d entries in a cache of %d", s.Entries, cfg.Size)
	}
}

func BenchmarkGet(b *testing.B) {
	clk := newClock()
	c := cache.New(config(), clk.now)
	q := query("mail.army.mil.", dns.TypeA)
	q.SetEdns0(1232, false)
	m := reply(b, q, dns.RcodeSuccess, sections{
		answer: []string{"mail.army.mil. 300 IN A 192.0.2.1", "mail.army.mil. 300 IN A 192.0.2.2"},
		ns:     []string{"army.mil. 3600 IN NS ns1.army.mil.", "army.mil. 3600 IN NS ns2.army.mil."},
	})
	k := cache.KeyOf(q)
	c.Set(k, m)
	clk.t = clk.t.Add(10 * time.Second)

	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(k); !ok {
			b.Fatal("miss")
		}
	}
}

func TestShardedCacheHoldsItsSize(t *testing.T) {
	cfg := config()
	cfg.Size = 5000 // over the size that is split into shards
	c := cache.New(cfg, newClock().now)
	const n = 12000
	for i := range n {
		q := new(dns.Msg)
		q.SetQuestion(fmt.Sprintf("n%d.example.", i), dns.TypeA)
		c.Set(cache.KeyOf(q), reply(t, q, dns.RcodeSuccess, sections{answer: []string{fmt.Sprintf("n%d.example. 300 IN A 192.0.2.1", i)}}))
	}
	found := 0
	for i := range n {
		q := new(dns.Msg)
		q.SetQuestion(fmt.Sprintf("N%d.Example.", i), dns.TypeA)
		if m, ok := c.Get(cache.KeyOf(q)); ok {
			found++
			if got := m.Answer[0].Header().Name; got != fmt.Sprintf("n%d.example.", i) {
				t.Fatalf("N%d.Example. found %s", i, got)
			}
		}
	}
	st := c.Stats()
	if found > cfg.Size+16 || found < cfg.Size*9/10 || st.Entries != found || st.Hits != uint64(found) || st.Misses != uint64(n-found) || st.Evictions != uint64(n-found) {
		t.Errorf("found %d of %d in a cache of %d; stats %+v", found, n, cfg.Size, st)
	}
}
