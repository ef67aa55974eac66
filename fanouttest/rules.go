package fanouttest

import (
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// rule is a Rule and what it has counted.
type rule struct {
	Rule
	mu    sync.Mutex
	rng   *rand.Rand // for Fraction; one per rule, so rules draw apart
	fired int64
}

func compile(rules []Rule, seed uint64) []*rule {
	out := make([]*rule, len(rules))
	for i, r := range rules {
		out[i] = &rule{Rule: r, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	}
	return out
}

// fires reports whether r fires for q, in account, at since after New,
// and counts it if so.
func (r *rule) fires(q *request, account string, since time.Duration) bool {
	switch {
	case r.Region != "" && r.Region != q.region,
		r.Account != "" && r.Account != account,
		r.Service != "" && r.Service != q.service,
		r.Operation != "" && !r.operation(q),
		since < r.From || (r.Until != 0 && since >= r.Until),
		r.Attempts != 0 && q.attempt > r.Attempts:
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Times != 0 && r.fired >= int64(r.Times) {
		return false
	}
	if r.Fraction != 0 && r.rng.Float64() >= r.Fraction {
		return false
	}
	r.fired++
	return true
}

func (r *rule) operation(q *request) bool {
	method, prefix, rest := strings.Cut(r.Operation, " ")
	if !rest {
		return !q.rest() && q.operation == r.Operation
	}
	return q.rest() && q.method == method && strings.HasPrefix(q.path, prefix)
}

func (r *rule) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fired
}

// match tries the rules in order for q: the latency of those that fire,
// and the first fault.
func (s *Server) match(q *request, account string) (time.Duration, Fault) {
	since := s.now().Sub(s.start)
	var delay time.Duration
	for _, r := range s.rules {
		if r.fires(q, account, since) {
			delay += r.Latency.draw()
			if r.Fault != NoFault {
				return delay, r.Fault
			}
		}
	}
	return delay, NoFault
}
