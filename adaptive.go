package fanout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/time/rate"
)

// The defaults of AdaptiveOptions.
const (
	DefaultAdaptiveMax             = 128
	DefaultAdaptiveDecrease        = 0.5
	DefaultAdaptiveIncrease        = 0.07
	DefaultAdaptiveThrottleBackoff = 100 * time.Millisecond
)

// AdaptiveOptions tunes the adaptive limit of one client (a service in one
// account and region). NewAdaptive and a ClientPool start from
// DefaultAdaptiveOptions.
type AdaptiveOptions struct {
	// Max is the ceiling, and the starting point, of the client's limit on
	// requests in flight; at least 1. Default: DefaultAdaptiveMax.
	Max int

	// Decrease multiplies the limit on a throttling response; between 0 and
	// 1, both excluded. Default: DefaultAdaptiveDecrease.
	Decrease float64

	// Increase is added to the limit over each round of successful
	// requests (limit successes); above 0. Default: DefaultAdaptiveIncrease,
	// a slow climb, since each step above the client's quota costs a
	// throttled request, while the quota's bucket refills during the climb.
	Increase float64

	// Rate and Burst, when Rate is positive, add a token bucket in front of
	// the client, for users who know their quota (EC2's non-mutating calls:
	// 20 per second, burst 100); Burst must then be at least 1. A bucket
	// that matches the quota avoids throttling altogether. Default: none.
	Rate  rate.Limit
	Burst int

	// ThrottleBackoff is the base of the wait before retrying a throttled
	// attempt: at most ThrottleBackoff x 2^(attempt-1), jittered, and never
	// longer than the retryer's own delay; above 0. Default:
	// DefaultAdaptiveThrottleBackoff.
	ThrottleBackoff time.Duration

	// DisablePacing turns off the spacing of request starts by the round
	// trip time over the limit, leaving a plain limit on requests in
	// flight.
	DisablePacing bool
}

// DefaultAdaptiveOptions returns the options an adaptive limit starts from.
func DefaultAdaptiveOptions() AdaptiveOptions {
	return AdaptiveOptions{
		Max:             DefaultAdaptiveMax,
		Decrease:        DefaultAdaptiveDecrease,
		Increase:        DefaultAdaptiveIncrease,
		ThrottleBackoff: DefaultAdaptiveThrottleBackoff,
	}
}

func (o *AdaptiveOptions) validate() error {
	switch {
	case o.Max < 1:
		return fmt.Errorf("fanout: AdaptiveOptions.Max is %d; want 1 or more (change fields of the options, which start from DefaultAdaptiveOptions, rather than replacing them)", o.Max)
	case !(o.Decrease > 0 && o.Decrease < 1):
		return fmt.Errorf("fanout: AdaptiveOptions.Decrease is %v; want more than 0 and less than 1", o.Decrease)
	case !(o.Increase > 0) || math.IsInf(o.Increase, 1):
		return fmt.Errorf("fanout: AdaptiveOptions.Increase is %v; want more than 0", o.Increase)
	case o.ThrottleBackoff <= 0:
		return fmt.Errorf("fanout: AdaptiveOptions.ThrottleBackoff is %v; want more than 0", o.ThrottleBackoff)
	case o.Rate < 0 || math.IsNaN(float64(o.Rate)):
		return fmt.Errorf("fanout: AdaptiveOptions.Rate is %v; want 0 (none) or more", o.Rate)
	case o.Rate > 0 && o.Burst < 1:
		return fmt.Errorf("fanout: AdaptiveOptions.Burst is %d with a Rate of %v; want 1 or more", o.Burst, o.Rate)
	}
	return nil
}

// Adaptive is an AIMD limit on the requests in flight to one client: a
// throttling response cuts the limit (multiplicative decrease), once per
// round of requests, and successes raise it again (additive increase),
// never above Max and never below 1. It is safe for concurrent use.
//
// ClientPool gives each of its clients one, through the client's retryer,
// so it limits HTTP attempts, not items: a call that backs off before a
// retry holds no place while it sleeps.
type Adaptive struct {
	opts   AdaptiveOptions
	bucket *rate.Limiter
	now    func() time.Time // the clock; tests replace it

	mu        sync.Mutex
	limit     float64
	inflight  int
	waiters   []chan struct{}
	requests  int64
	throttles int64

	rtt     time.Duration // moving average of successful requests' latency
	next    time.Time     // pacing: the earliest next start
	lastCut time.Time
	epoch   time.Time // the last cut, or the first request
	okSince int       // successes since epoch
}

// NewAdaptive returns an Adaptive limit configured by optFns, applied in
// order to DefaultAdaptiveOptions, or an error that names an option that
// cannot be honoured.
func NewAdaptive(optFns ...func(*AdaptiveOptions)) (*Adaptive, error) {
	o := DefaultAdaptiveOptions()
	for _, fn := range optFns {
		fn(&o)
	}
	return newAdaptive(o)
}

func newAdaptive(o AdaptiveOptions) (*Adaptive, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	a := &Adaptive{opts: o, now: time.Now, limit: float64(o.Max)}
	if o.Rate > 0 {
		a.bucket = rate.NewLimiter(o.Rate, o.Burst)
	}
	return a, nil
}

// AdaptiveStats is a snapshot of one client's adaptive limit.
type AdaptiveStats struct {
	Limit     float64 // the current limit on requests in flight
	InFlight  int     // requests in flight now
	Requests  int64   // requests finished
	Throttles int64   // of which were throttled
}

// Stats returns a snapshot of the limit and its counts.
func (a *Adaptive) Stats() AdaptiveStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AdaptiveStats{Limit: a.limit, InFlight: a.inflight, Requests: a.requests, Throttles: a.throttles}
}

// Acquire waits for room for one request and returns the time it
// started, which Release needs, or ctx's error.
func (a *Adaptive) Acquire(ctx context.Context) (time.Time, error) {
	if a.bucket != nil {
		if err := a.bucket.Wait(ctx); err != nil {
			return time.Time{}, err
		}
	}
	if err := a.admit(ctx); err != nil {
		return time.Time{}, err
	}
	if d := a.pace(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			a.mu.Lock()
			defer a.mu.Unlock()
			a.inflight--
			a.wake()
			return time.Time{}, ctx.Err()
		}
	}
	return a.now(), nil
}

// admit waits for a place among the requests in flight.
func (a *Adaptive) admit(ctx context.Context) error {
	a.mu.Lock()
	if a.epoch.IsZero() {
		a.epoch = a.now()
	}
	if a.inflight < a.room() && len(a.waiters) == 0 {
		a.inflight++
		a.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	a.waiters = append(a.waiters, ready)
	a.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		defer a.mu.Unlock()
		select {
		case <-ready: // admitted as ctx ended: give the place back
			a.inflight--
			a.wake()
		default:
			a.remove(ready)
		}
		return ctx.Err()
	}
}

// pace spaces request starts by rtt/limit, once the client has been
// throttled, so that a limit between two whole numbers means a rate
// between them: at 2.5, two and a half requests per round trip. It
// returns how long to wait.
func (a *Adaptive) pace() time.Duration {
	if a.opts.DisablePacing {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rtt == 0 || a.lastCut.IsZero() { // no throttle yet: nothing to pace for
		return 0
	}
	now := a.now()
	start := a.next
	if start.Before(now) {
		start = now
	}
	a.next = start.Add(time.Duration(float64(a.rtt) / a.limit))
	return start.Sub(now)
}

// Release ends a request that started at start; throttled says whether
// the service throttled it.
func (a *Adaptive) Release(start time.Time, throttled bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.inflight--
	a.requests++
	if throttled {
		a.throttles++
		// Requests sent before the last cut were sent under the old limit:
		// their throttles are already answered.
		if !start.Before(a.lastCut) {
			a.cut(now)
		}
	} else {
		a.okSince++
		if sample := now.Sub(start); a.rtt == 0 {
			a.rtt = sample
		} else {
			a.rtt = a.rtt*4/5 + sample/5
		}
		a.limit = min(float64(a.opts.Max), a.limit+a.opts.Increase/a.limit)
	}
	a.wake()
}

// cut lowers the limit on a throttle: by Decrease from what was in flight
// (a limit above what the callers used says nothing of the quota), and
// after the first cut, to no more than the successes per round trip since
// the last one, so that a limit far above the quota falls in one step
// rather than one halving per round trip.
func (a *Adaptive) cut(now time.Time) {
	limit := min(a.limit, float64(a.inflight+1)) * a.opts.Decrease
	if elapsed := now.Sub(a.epoch); !a.lastCut.IsZero() && a.rtt > 0 && elapsed >= a.rtt {
		limit = min(limit, float64(a.okSince)*float64(a.rtt)/float64(elapsed))
	}
	a.limit = max(1, limit)
	a.lastCut, a.epoch, a.okSince = now, now, 0
}

// room is how many requests may be in flight: the limit rounded up when
// pacing spreads them, its whole part when not.
func (a *Adaptive) room() int {
	if a.opts.DisablePacing {
		return int(a.limit)
	}
	return int(math.Ceil(a.limit))
}

func (a *Adaptive) wake() {
	for len(a.waiters) > 0 && a.inflight < a.room() {
		close(a.waiters[0])
		a.waiters = a.waiters[1:]
		a.inflight++
	}
}

func (a *Adaptive) remove(ready chan struct{}) {
	for i, w := range a.waiters {
		if w == ready {
			a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
			return
		}
	}
}

// AdaptiveRetryer wraps r so that every attempt it lets the SDK make goes
// through a: the way to make a client of your own adaptive. A ClientPool
// does this for its clients unless PoolOptions.DisableAdaptive is set.
func AdaptiveRetryer(r aws.Retryer, a *Adaptive) aws.RetryerV2 {
	v2, ok := r.(aws.RetryerV2)
	if !ok {
		v2 = retryerV2{r}
	}
	return &adaptiveRetryer{RetryerV2: v2, a: a}
}

type adaptiveRetryer struct {
	aws.RetryerV2
	a *Adaptive
}

func (r *adaptiveRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	start, err := r.a.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	release, err := r.RetryerV2.GetAttemptToken(ctx)
	if err != nil {
		r.a.Release(start, false)
		return nil, err
	}
	return func(err error) error {
		throttled := isThrottle(err)
		r.a.Release(start, throttled)
		recordAttempt(ctx, err, throttled)
		return release(err)
	}, nil
}

// RetryDelay shortens the wait before retrying a throttled attempt to at
// most ThrottleBackoff x 2^(attempt-1), jittered: the adaptive limit
// already slows the client down, and a retry sleeping for seconds only
// stretches the fan-out.
func (r *adaptiveRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.RetryerV2.RetryDelay(attempt, err)
	if derr != nil || !isThrottle(err) {
		return d, derr
	}
	ceiling := r.a.opts.ThrottleBackoff << min(max(attempt-1, 0), 10)
	return min(d, time.Duration(rand.Int64N(int64(ceiling)+1))), nil
}

// retryerV2 lifts an aws.Retryer that lacks GetAttemptToken.
type retryerV2 struct{ aws.Retryer }

func (r retryerV2) GetAttemptToken(context.Context) (func(error) error, error) {
	return r.GetInitialToken(), nil
}

// statsKey marks the context of an item whose attempts are watched: the
// items of Regions and AccountRegions.
type statsKey struct{}

// itemStats is what the adaptive retryer saw of one item's attempts.
type itemStats struct {
	mu        sync.Mutex
	throttles int
	last      error // the last attempt's error, if it failed
}

func recordAttempt(ctx context.Context, err error, throttled bool) {
	st, ok := ctx.Value(statsKey{}).(*itemStats)
	if !ok {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if throttled {
		st.throttles++
	}
	if !isContextErr(err) { // an attempt cut short says nothing new
		st.last = err
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// withLastAttempt returns err with the last attempt's error added when
// the operation ended on its context (an ItemTimeout during a retry's
// back-off): "context deadline exceeded" alone would hide why the call
// was still retrying.
func (st *itemStats) withLastAttempt(err error) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if isContextErr(err) && st.last != nil && !errors.Is(err, st.last) {
		err = fmt.Errorf("%w (last attempt: %w)", err, st.last)
	}
	return err
}

func (st *itemStats) throttleCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.throttles
}
