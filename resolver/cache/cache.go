// Package cache keeps upstream replies for as long as their TTLs allow,
// within configured limits, in a fixed-size LRU.
package cache

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/miekg/dns"
)

// maxServfailTTL caps how long a SERVFAIL is kept: RFC 2308 §7.1 forbids
// more than five minutes.
const maxServfailTTL = 5 * time.Minute

// Key identifies a cached reply: the question, and the query bits that
// change the reply.
type Key struct {
	// Name is the query name, compared case-insensitively; KeyOf gives it
	// lower-case and fully qualified.
	Name  string
	Type  uint16
	Class uint16
	// DO is the query's DNSSEC OK bit (RFC 3225): replies with and without
	// signatures are kept apart.
	DO bool
	// CD is the query's Checking Disabled bit (RFC 4035 §3.2.2): replies
	// that were not validated are kept apart from those that were.
	CD bool
	// Route names where the reply came from when that is not the default
	// upstreams (a conditional-forwarding rule), so the same name asked of
	// different servers is kept apart.
	Route string
}

// String renders the key for use as a map key of its own: name, type,
// class, the DO and CD bits and the route, in a form no two keys share.
func (k Key) String() string {
	b := make([]byte, 0, len(k.Name)+len(k.Route)+9)
	b = append(b, k.Name...)
	b = append(b, 0, byte(k.Type>>8), byte(k.Type), byte(k.Class>>8), byte(k.Class), flag(k.DO), flag(k.CD), 0)
	b = append(b, k.Route...)
	return string(b)
}

func flag(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// KeyOf returns the key of the reply to q. A q without exactly one question
// gives a key that no reply is ever stored under.
func KeyOf(q *dns.Msg) Key {
	k := Key{CD: q.CheckingDisabled}
	if opt := q.IsEdns0(); opt != nil {
		k.DO = opt.Do()
	}
	if len(q.Question) == 1 {
		qq := q.Question[0]
		k.Name, k.Type, k.Class = dns.CanonicalName(qq.Name), qq.Qtype, qq.Qclass
	}
	return k
}

// Config holds the cache limits. TTLs are whole seconds on the wire, so each
// duration counts in whole seconds, rounded down.
type Config struct {
	// Size is how many replies the cache holds at most; zero or less holds
	// none.
	Size int
	// MinTTL and MaxTTL bound the TTL of a positive reply and of each of
	// its records; MaxTTL wins when MinTTL is greater. A zero MaxTTL keeps
	// no positive reply.
	MinTTL time.Duration
	MaxTTL time.Duration
	// MaxNegativeTTL caps how long NXDOMAIN and NODATA replies are kept
	// (RFC 2308 §5); zero keeps none.
	MaxNegativeTTL time.Duration
	// ServfailTTL is how long a SERVFAIL reply is kept, at most five
	// minutes (RFC 2308 §7.1); zero keeps none.
	ServfailTTL time.Duration
	// ServeStale is how long past its TTL a reply is kept for Stale (RFC
	// 8767); zero keeps none.
	ServeStale time.Duration
	// Counters count the cache's hits, misses and evictions; nil: counters
	// of its own. A server hands the same Counters to each cache it makes,
	// so that its counts run for its whole life, across reloads that
	// replace the cache.
	Counters *Counters
}

// Lanes is how many readers can look a reply up at once without sharing a
// lock or a counter: each passes a lane of its own below Lanes (a server
// gives each of its serving loops one).
const Lanes = 16

// Counters count the activity of the caches that share them, striped by
// lane so that lookups on different cores do not share a cache line. The
// zero value is ready to use.
type Counters struct {
	_       [64]byte // keeps the first stripe off the line of what comes before
	stripes [Lanes]stripe
}

// stripe is one lane's part of the counters.
type stripe struct {
	hits      atomic.Uint64
	misses    atomic.Uint64
	evictions atomic.Uint64
	_         [64]byte // keeps the next stripe off this cache line
}

// Stats returns the counts, summed over the stripes; Entries is zero.
func (c *Counters) Stats() Stats {
	var s Stats
	for i := range c.stripes {
		st := &c.stripes[i]
		s.Hits += st.hits.Load()
		s.Misses += st.misses.Load()
		s.Evictions += st.evictions.Load()
	}
	return s
}

// Stats counts cache activity.
type Stats struct {
	// Hits and Misses count Get calls that found a fresh reply and that did
	// not; an expired reply is a miss.
	Hits   uint64
	Misses uint64
	// Evictions counts replies pushed out to make room for others.
	Evictions uint64
	// Entries is how many replies the cache holds now, expired ones
	// included until they are looked up or pushed out.
	Entries int
}

// Cache is a fixed-size LRU of upstream replies, each kept until its TTL runs
// out (RFC 1035 §7.4, RFC 2308). It holds copies: a message passed to Set or
// returned by Get is the caller's to change. A Cache is safe for concurrent
// use.
type Cache struct {
	cfg    Config
	now    func() time.Time
	shards []shard // none when cfg.Size holds nothing
	count  *Counters
	// seed keys the hash of each Key: a random one, so that no client can
	// choose names whose hashes collide.
	seed maphash.Seed
}

// shard is one part of the cache, with its own lock, so that a Set waits
// only for the lookups of its own shard.
type shard struct {
	lock laneLock // guards entries
	// entries maps the hash of a key to the entry stored under it, which
	// holds the key itself: a lookup whose key is not the entry's misses.
	// Eight-byte keys keep the LRU's map small, without pointers for the
	// GC to scan, and its growth under the churn of evictions (a Go map's
	// table grows through deleted slots before it settles) small with it.
	// It is only read under a lane's read lock: Peek and Len change
	// nothing.
	entries *simplelru.LRU[uint64, *entry]
}

// laneLock is a reader-writer lock whose readers lock a lane of their own:
// a lookup on one core writes nothing another core's lookup reads. A
// writer locks every lane, which costs Lanes locks per Set: a cache is
// read far more often than written.
type laneLock struct {
	_     [64]byte // keeps the first lane off the line of what comes before
	lanes [Lanes]struct {
		sync.RWMutex
		_ [40]byte // one lane to a cache line
	}
}

func (l *laneLock) rlock(lane int)   { l.lanes[lane].RLock() }
func (l *laneLock) runlock(lane int) { l.lanes[lane].RUnlock() }

func (l *laneLock) lock() {
	for i := range l.lanes {
		l.lanes[i].Lock()
	}
}

func (l *laneLock) unlock() {
	for i := range l.lanes {
		l.lanes[i].Unlock()
	}
}

// shardedFrom is the smallest cache split into shards; a smaller one is
// one LRU, exact in what it evicts.
const (
	shardedFrom = 4096
	shardCount  = 16
)

// entry is one stored reply, kept packed: a reader answers from its wire
// form, and unpacks it only for a full message. Nothing of it changes once
// stored, so many readers may read it at once.
type entry struct {
	key    Key // its name canonical
	stored time.Time
	ttl    time.Duration // whole seconds
	// wire is the reply packed, and ttls the offset in it of every
	// record's TTL.
	wire  []byte
	ttls  []uint16
	qEnd  int // where the question ends in wire
	rcode int
	// msg is the reply itself, kept only when it does not pack.
	msg *dns.Msg
	// leads holds the answer records that name another name (CNAME,
	// DNAME, MX, SRV), which a reader may have to check.
	leads []dns.RR
	// memo is what a reader keeps with the entry (Hit.SetMemo).
	memo atomic.Uint64
	// touched is when a hit last moved the entry to the front of its
	// LRU, in Unix nanoseconds.
	touched atomic.Int64
}

// touchEvery is how often a hit moves its entry to the front of the LRU:
// other hits only read it, under the shard's read lock, so hits on many
// cores do not queue for its write lock. The LRU is the less exact for it
// by a second at most.
const touchEvery = time.Second

// Hit is a reply found in the cache, shared with every other reader: its
// slices must never be changed. Wire holds the reply packed (compressed,
// without OPT, with the upstream's ID and header bits), TTLs the offset in
// Wire of every record's TTL as stored, and QEnd where its question ends;
// Age is the whole seconds since it was stored, by which every TTL must be
// reduced. Wire is nil when the reply could not be packed.
type Hit struct {
	Wire  []byte
	TTLs  []uint16
	QEnd  int
	Age   uint32
	Rcode int
	// Leads holds the answer records that name another name: a CNAME or
	// DNAME target, an MX exchange or an SRV target.
	Leads []dns.RR

	e    *entry
	lane int
}

// Reply returns the hit's reply as a message of the caller's own, its
// TTLs as stored.
func (h Hit) Reply() (*dns.Msg, error) {
	if h.e.msg != nil {
		return h.e.msg.Copy(), nil
	}
	m := new(dns.Msg)
	return m, m.Unpack(h.Wire)
}

// New returns an empty cache with the limits in cfg, reading the time from
// now, or from time.Now when now is nil.
func New(cfg Config, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	c := &Cache{cfg: cfg, now: now, count: cfg.Counters, seed: maphash.MakeSeed()}
	if c.count == nil {
		c.count = new(Counters)
	}
	if cfg.Size > 0 {
		n := 1
		if cfg.Size >= shardedFrom {
			n = shardCount
		}
		c.shards = make([]shard, n)
		for i := range c.shards {
			// NewLRU fails only for a size below one.
			c.shards[i].entries, _ = simplelru.NewLRU[uint64, *entry]((cfg.Size+n-1)/n, nil)
		}
	}
	return c
}

// locate returns k with its name canonical, the hash it is stored under
// and its shard.
func (c *Cache) locate(k Key) (Key, uint64, *shard) {
	k.Name = canonical(k.Name)
	h := maphash.Comparable(c.seed, k)
	return k, h, &c.shards[h%uint64(len(c.shards))]
}

// Get returns a copy of the reply stored under k, its record TTLs reduced by
// the whole seconds since it was stored, and whether there was a fresh one.
// The reply's Id and question are the upstream's: set them from the query
// being answered.
func (c *Cache) Get(k Key) (*dns.Msg, bool) {
	hit, ok := c.lookup(k, 0)
	if !ok {
		c.count.stripes[0].misses.Add(1)
		return nil, false
	}
	m, err := hit.Reply()
	if err != nil {
		c.count.stripes[0].misses.Add(1)
		return nil, false // it packed, so it unpacks: not reached
	}
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl -= min(h.Ttl, hit.Age)
			}
		}
	}
	c.count.stripes[0].hits.Add(1)
	return m, true
}

// Shared returns the fresh reply stored under k without copying it, for a
// reader on lane (below Lanes) that answers from it as it is, and counts
// nothing: the reader calls CountHit when it does answer from it.
func (c *Cache) Shared(k Key, lane int) (Hit, bool) { return c.lookup(k, lane) }

// Memo returns the value last kept with the hit's entry by SetMemo; zero
// if none was.
func (h Hit) Memo() uint64 { return h.e.memo.Load() }

// SetMemo keeps v with the hit's entry for the readers after this one: a
// fact about the entry that holds while something the reader knows of
// stays the same (the resolver's: which policy no rule of touches the
// name). An entry replaced by a Set starts with none.
func (h Hit) SetMemo(v uint64) { h.e.memo.Store(v) }

// CountHit counts a hit served from Shared.
func (c *Cache) CountHit(h Hit) { c.count.stripes[h.lane].hits.Add(1) }

// lookup finds the fresh entry under k for a reader on lane, dropping an
// expired one.
func (c *Cache) lookup(k Key, lane int) (Hit, bool) {
	if c.shards == nil {
		return Hit{}, false
	}
	k, h, sh := c.locate(k)
	sh.lock.rlock(lane)
	e, ok := sh.entries.Peek(h)
	sh.lock.runlock(lane)
	if !ok || e.key != k {
		return Hit{}, false
	}
	now := c.now()
	if t := now.UnixNano(); t-e.touched.Load() >= int64(touchEvery) {
		e.touched.Store(t)
		sh.lock.lock()
		sh.entries.Get(h)
		sh.lock.unlock()
	}
	age := max(now.Sub(e.stored), 0)
	if age >= e.ttl {
		if age >= e.ttl+c.cfg.ServeStale {
			// Another Set may have replaced e since the Peek; keep that one.
			sh.lock.lock()
			if cur, ok := sh.entries.Peek(h); ok && cur == e {
				sh.entries.Remove(h)
			}
			sh.lock.unlock()
		}
		return Hit{}, false
	}
	return Hit{Wire: e.wire, TTLs: e.ttls, QEnd: e.qEnd, Age: uint32(age / time.Second), Rcode: e.rcode, Leads: e.leads, e: e, lane: lane}, true
}

// Set stores a copy of m, the upstream's reply to the question in k, for as
// long as its kind and TTLs allow, replacing any reply stored under k. It
// does not store a truncated reply, a reply to another question, or one
// whose TTL comes to zero. The OPT record is not stored: it belongs to the
// exchange, not to the data.
func (c *Cache) Set(k Key, m *dns.Msg) {
	if c.shards == nil || m.Truncated || !answers(m, k) {
		return
	}
	var (
		ttl    time.Duration
		setTTL func(uint32) uint32 // the TTL stored for a record's TTL
	)
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		lo, hi := seconds(c.cfg.MinTTL), seconds(c.cfg.MaxTTL)
		setTTL = func(t uint32) uint32 { return min(max(t, lo), hi) }
		ttl = time.Duration(setTTL(minTTL(m))) * time.Second
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		neg := min(negativeTTL(m), seconds(c.cfg.MaxNegativeTTL))
		setTTL = func(uint32) uint32 { return neg }
		ttl = time.Duration(neg) * time.Second
	case m.Rcode == dns.RcodeServerFailure:
		sf := seconds(min(c.cfg.ServfailTTL, maxServfailTTL))
		setTTL = func(t uint32) uint32 { return min(t, sf) }
		ttl = time.Duration(sf) * time.Second
	}
	if ttl <= 0 {
		return
	}

	// What is stored is packed from a view of m that shares its records,
	// the OPT left out, and the stored TTLs are then written into the
	// packed bytes: m is neither copied nor changed.
	view := *m
	view.Extra = WithoutOPT(m.Extra)
	if ede := m.IsEdns0(); m.Rcode == dns.RcodeServerFailure && ede != nil {
		// A SERVFAIL keeps why (RFC 8914 Extended DNS Errors): only those
		// options of its OPT, which readers take out.
		kept := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		for _, o := range ede.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				kept.Option = append(kept.Option, e)
			}
		}
		if len(kept.Option) > 0 {
			view.Extra = append(view.Extra, kept)
		}
	}
	k, h, sh := c.locate(k)
	e := &entry{key: k, stored: c.now(), ttl: ttl, rcode: m.Rcode}
	if e.wire, e.ttls, e.qEnd = packWire(&view); e.wire != nil {
		for _, at := range e.ttls {
			binary.BigEndian.PutUint32(e.wire[at:], setTTL(wireTTL(binary.BigEndian.Uint32(e.wire[at:]))))
		}
	} else {
		// Too odd to walk: kept as a message of its own.
		e.msg = view.Copy()
		for _, section := range [][]dns.RR{e.msg.Answer, e.msg.Ns, e.msg.Extra} {
			for _, rr := range section {
				hdr := rr.Header()
				hdr.Ttl = setTTL(wireTTL(hdr.Ttl))
			}
		}
	}
	for _, rr := range m.Answer {
		if _, ok := Target(rr); ok {
			// Only the target is read, but the record is m's.
			e.leads = append(e.leads, dns.Copy(rr))
		}
	}
	sh.lock.lock()
	// A key of the same hash, another's or k's, is replaced.
	evicted := sh.entries.Add(h, e)
	sh.lock.unlock()
	if evicted {
		c.count.stripes[0].evictions.Add(1)
	}
}

// Stale returns a copy of the reply stored under k when it is past its TTL
// but within Config.ServeStale, every record's TTL set to ttl (RFC 8767
// §4), for a reader whose upstreams failed; a SERVFAIL is never served so.
func (c *Cache) Stale(k Key, ttl uint32) (*dns.Msg, bool) {
	if c.shards == nil || c.cfg.ServeStale <= 0 {
		return nil, false
	}
	k, h, sh := c.locate(k)
	sh.lock.rlock(0)
	e, ok := sh.entries.Peek(h)
	sh.lock.runlock(0)
	if !ok || e.key != k || e.rcode == dns.RcodeServerFailure {
		return nil, false
	}
	if age := max(c.now().Sub(e.stored), 0); age < e.ttl || age >= e.ttl+c.cfg.ServeStale {
		return nil, false
	}
	m, err := Hit{Wire: e.wire, e: e}.Reply()
	if err != nil {
		return nil, false
	}
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl = ttl
			}
		}
	}
	return m, true
}

// Target returns the name rr leads to, if it leads anywhere: a CNAME or
// DNAME target, an MX exchange, an SRV target.
func Target(rr dns.RR) (string, bool) {
	switch v := rr.(type) {
	case *dns.CNAME:
		return v.Target, true
	case *dns.DNAME:
		return v.Target, true
	case *dns.MX:
		return v.Mx, true
	case *dns.SRV:
		return v.Target, true
	}
	return "", false
}

// Stats returns the cache's counters (those of every cache sharing them)
// and the entries it holds.
func (c *Cache) Stats() Stats {
	s := c.count.Stats()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.lock.rlock(0)
		s.Entries += sh.entries.Len()
		sh.lock.runlock(0)
	}
	return s
}

// answers reports whether m's question is the one k was made from.
func answers(m *dns.Msg, k Key) bool {
	if len(m.Question) != 1 {
		return false
	}
	qq := m.Question[0]
	return qq.Qtype == k.Type && qq.Qclass == k.Class && strings.EqualFold(dns.Fqdn(qq.Name), dns.Fqdn(k.Name))
}

// minTTL returns the least TTL of m's records, OPT aside.
func minTTL(m *dns.Msg) uint32 {
	least := uint32(math.MaxInt32)
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				least = min(least, wireTTL(h.Ttl))
			}
		}
	}
	return least
}

// negativeTTL returns how long the negative reply m may be kept: the least
// of its SOA's TTL and MINIMUM field (RFC 2308 §5), and of the TTL of every
// other record in it, so no CNAME or NSEC is served past its own TTL. It
// returns zero when m's authority section has no SOA: such a reply must not
// be cached (RFC 2308 §5).
func negativeTTL(m *dns.Msg) uint32 {
	hasSOA := false
	least := minTTL(m)
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			hasSOA = true
			least = min(least, wireTTL(soa.Minttl))
		}
	}
	if !hasSOA {
		return 0
	}
	return least
}

// wireTTL returns the TTL a resolver may use for ttl: values with the top bit
// set count as zero (RFC 2181 §8).
func wireTTL(ttl uint32) uint32 {
	if ttl > math.MaxInt32 {
		return 0
	}
	return ttl
}

// seconds returns d in whole seconds as a TTL, zero for a negative d.
func seconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min(d/time.Second, math.MaxInt32))
}

// WithoutOPT returns extra without its OPT records, leaving extra as it
// is: without an OPT, extra itself; with one, a new slice. The OPT belongs
// to one exchange, not to the data (RFC 6891 §6.1.1).
func WithoutOPT(extra []dns.RR) []dns.RR {
	if !slices.ContainsFunc(extra, isOPT) {
		return slices.Clip(extra)
	}
	var kept []dns.RR
	for _, rr := range extra {
		if !isOPT(rr) {
			kept = append(kept, rr)
		}
	}
	return kept
}

func isOPT(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT }

// canonical returns name lower-case and fully qualified; a name that is so
// already, as KeyOf gives it, is returned as it is, without a copy.
func canonical(name string) string {
	if name == "" || name[len(name)-1] != '.' {
		return dns.CanonicalName(name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return dns.CanonicalName(name)
		}
	}
	return name
}

// packWire packs m, compressed, and finds where its question ends and
// where each record's TTL is; nil when m does not pack or walk.
func packWire(m *dns.Msg) (wire []byte, ttls []uint16, qEnd int) {
	m.Compress = true
	b, err := m.Pack()
	if err != nil || len(b) > 0xffff {
		return nil, nil, 0
	}
	qEnd, ttls, ok := walk(b)
	if !ok {
		return nil, nil, 0
	}
	return b, ttls, qEnd
}

// walk reads a packed message of one question: where the question ends,
// and the offset of each record's TTL. It reports false for anything it
// cannot follow.
func walk(b []byte) (qEnd int, ttls []uint16, ok bool) {
	if len(b) < 12 || b[4] != 0 || b[5] != 1 {
		return 0, nil, false
	}
	be := binary.BigEndian
	records := int(be.Uint16(b[6:])) + int(be.Uint16(b[8:])) + int(be.Uint16(b[10:]))
	off, ok := skipName(b, 12)
	if !ok || off+4 > len(b) {
		return 0, nil, false
	}
	qEnd = off + 4
	off = qEnd
	ttls = make([]uint16, 0, records)
	for range records {
		if off, ok = skipName(b, off); !ok || off+10 > len(b) {
			return 0, nil, false
		}
		ttls = append(ttls, uint16(off+4))
		rdlen := int(b[off+8])<<8 | int(b[off+9])
		off += 10 + rdlen
		if off > len(b) {
			return 0, nil, false
		}
	}
	return qEnd, ttls, off == len(b)
}

// skipName returns the offset just past the (possibly compressed) name at
// off.
func skipName(b []byte, off int) (int, bool) {
	for off < len(b) {
		switch n := int(b[off]); {
		case n == 0:
			return off + 1, true
		case n&0xC0 == 0xC0:
			// A pointer ends the name.
			return off + 2, off+2 <= len(b)
		case n&0xC0 != 0:
			return 0, false
		default:
			off += 1 + n
		}
	}
	return 0, false
}
