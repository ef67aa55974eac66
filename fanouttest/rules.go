package fanouttest

import (
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rule is a Rule and what it has counted.
type rule struct {
	Rule
	index uint64 // in Config.Faults, so that rules draw apart
	seed  uint64

	mu    sync.Mutex
	fired int64
	drawn map[string]uint64 // for Fraction: the draws so far, per request
}

func compile(rules []Rule, seed uint64) []*rule {
	out := make([]*rule, len(rules))
	for i, r := range rules {
		out[i] = &rule{Rule: r, index: uint64(i), seed: seed, drawn: map[string]uint64{}}
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
	if r.Fraction != 0 && r.draw(q, account) >= r.Fraction {
		return false
	}
	r.fired++
	return true
}

func (r *rule) operation(q *request) bool {
	method, prefix, rest := strings.Cut(r.Operation, " ")
	if !rest {
		return q.action == r.Operation
	}
	return q.rest() && q.method == method && strings.HasPrefix(q.path, prefix)
}

// draw is a number in [0, 1) for q that depends on the seed, the rule,
// what q is (account, region, service, operation, attempt) and how many
// such requests came before it, never on the order in which different
// requests arrive: a fan-out whose calls race each other fails the same
// calls in every run.
func (r *rule) draw(q *request, account string) float64 {
	key := strings.Join([]string{account, q.region, q.service, q.action, q.method, q.path, strconv.Itoa(q.attempt)}, "\x00")
	n := r.drawn[key]
	r.drawn[key] = n + 1
	h := fnv.New64a()
	h.Write([]byte(key))
	x := splitmix(splitmix(r.seed^h.Sum64()) ^ r.index<<32 ^ n)
	return float64(x>>11) / (1 << 53)
}

// splitmix is SplitMix64's finaliser: every bit of x moves every bit of
// the result.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
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
