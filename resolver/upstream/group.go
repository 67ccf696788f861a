package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Group is a list of upstream servers tried in order until one gives a
// usable reply: failover. A Group is safe for concurrent use; do not change
// its fields once it is in use.
type Group struct {
	// Servers are tried in this order.
	Servers []Exchanger
	// Timeout bounds the whole exchange, all tries together; zero leaves
	// only the context's deadline. Each try gets the time left divided by
	// the number of servers still to try, so a dead server cannot use up
	// the time of the ones after it.
	Timeout time.Duration
	// Observe, if set, is called once per try with the server's address
	// ("" when the Exchanger has no Address method), the time the try took
	// and its error. A SERVFAIL or REFUSED reply is a try without error.
	Observe func(addr string, rtt time.Duration, err error)

	once sync.Once
	// downUntil holds, per server, the Unix nanoseconds until which it is
	// tried only after the others, having just failed.
	downUntil []atomic.Int64
}

// downFor is how long a server that failed to answer is tried last.
const downFor = 30 * time.Second

// order returns the servers' indexes in the order to try them: the ones
// that answered lately in their configured order, then the ones that failed
// within downFor, also in order. A dead primary then costs one timeout
// share per downFor, not one per query.
func (g *Group) order(now time.Time) []int {
	g.once.Do(func() { g.downUntil = make([]atomic.Int64, len(g.Servers)) })
	up := make([]int, 0, len(g.Servers))
	var down []int
	for i := range g.Servers {
		if g.downUntil[i].Load() > now.UnixNano() {
			down = append(down, i)
		} else {
			up = append(up, i)
		}
	}
	return append(up, down...)
}

// addresser is an Exchanger that can say where it sends queries.
type addresser interface {
	Address() string
}

// Exchange sends q to the group's servers in order and returns the first
// usable reply. A server that fails, or replies SERVFAIL or REFUSED, makes
// Exchange try the next one. When no server gives a usable reply, Exchange
// returns the last SERVFAIL or REFUSED reply if there was one, and otherwise
// an error joining every try's error.
func (g *Group) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	if len(g.Servers) == 0 {
		return nil, fmt.Errorf("forward %s: no upstream servers", describe(q))
	}
	if g.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.Timeout)
		defer cancel()
	}

	var (
		errs     []error
		rejected *dns.Msg // the last SERVFAIL or REFUSED reply
	)
	for n, i := range g.order(time.Now()) {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("forward %s: %d of %d upstreams not tried: %w",
				describe(q), len(g.Servers)-n, len(g.Servers), err))
			break
		}
		r, err := g.try(ctx, g.Servers[i], q, len(g.Servers)-n)
		switch {
		case err == nil:
			if g.downUntil[i].Load() != 0 {
				g.downUntil[i].Store(0)
			}
		case !errors.Is(ctx.Err(), context.Canceled): // the server failed, not the caller
			g.downUntil[i].Store(time.Now().Add(downFor).UnixNano())
		}
		switch {
		case err != nil:
			errs = append(errs, err)
		case r == nil:
			errs = append(errs, fmt.Errorf("forward %s: upstream %d gave neither reply nor error", describe(q), i))
		case r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused:
			rejected = r
		default:
			return r, nil
		}
	}
	if rejected != nil {
		return rejected, nil
	}
	return nil, errors.Join(errs...)
}

// try exchanges q with s within its share of the time left, when there is a
// deadline, with left servers still to try counting s; the last one has
// all the time left.
func (g *Group) try(ctx context.Context, s Exchanger, q *dns.Msg, left int) (*dns.Msg, error) {
	if deadline, ok := ctx.Deadline(); ok && left > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(deadline)/time.Duration(left))
		defer cancel()
	}
	start := time.Now()
	r, err := s.Exchange(ctx, q)
	if g.Observe != nil {
		var addr string
		if a, ok := s.(addresser); ok {
			addr = a.Address()
		}
		g.Observe(addr, time.Since(start), err)
	}
	return r, err
}

// describe names q's question for error messages, as "army.mil. MX".
func describe(q *dns.Msg) string {
	if len(q.Question) == 0 {
		return "empty query"
	}
	qq := q.Question[0]
	return qq.Name + " " + dns.Type(qq.Qtype).String()
}
