package fanout

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/time/rate"
)

// DefaultAdaptiveMax is the most requests an adaptive scope lets run at
// once when AdaptiveOptions.Max is 0.
const DefaultAdaptiveMax = 128

// AdaptiveOptions tunes the adaptive limit of one scope (a service in one
// account and region). The zero value is ready to use.
type AdaptiveOptions struct {
	// Max is the ceiling, and the starting point, of the scope's limit on
	// requests in flight. 0 means DefaultAdaptiveMax.
	Max int

	// Decrease multiplies the limit on a throttling response. 0 means 0.5.
	Decrease float64

	// Increase is added to the limit over each round of successful
	// requests (limit successes). 0 means 0.25: a slow climb, since each
	// step above the scope's quota costs a throttled request.
	Increase float64

	// Rate and Burst, when Rate is positive, add a token bucket in front of
	// the scope, for users who know their quota (EC2's non-mutating calls:
	// 20 per second, burst 100). A bucket that matches the quota avoids
	// throttling altogether.
	Rate  rate.Limit
	Burst int

	// Now is the clock; nil means time.Now. Tests replace it.
	Now func() time.Time
}

// Adaptive is an AIMD limit on the requests in flight to one scope: a
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

	mu        sync.Mutex
	limit     float64
	inflight  int
	lastCut   time.Time
	waiters   []chan struct{}
	requests  int64
	throttles int64
}

// NewAdaptive returns an Adaptive limit configured by optFns.
func NewAdaptive(optFns ...func(*AdaptiveOptions)) *Adaptive {
	var o AdaptiveOptions
	for _, fn := range optFns {
		fn(&o)
	}
	if o.Max <= 0 {
		o.Max = DefaultAdaptiveMax
	}
	if o.Decrease <= 0 || o.Decrease >= 1 {
		o.Decrease = 0.5
	}
	if o.Increase <= 0 {
		o.Increase = 0.25
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Adaptive{opts: o, limit: float64(o.Max)}
	if o.Rate > 0 {
		a.bucket = rate.NewLimiter(o.Rate, max(o.Burst, 1))
	}
	return a
}

// AdaptiveStats is a snapshot of one scope's adaptive limit.
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
	a.mu.Lock()
	if a.inflight < a.room() && len(a.waiters) == 0 {
		a.inflight++
		a.mu.Unlock()
		return a.opts.Now(), nil
	}
	ready := make(chan struct{})
	a.waiters = append(a.waiters, ready)
	a.mu.Unlock()
	select {
	case <-ready:
		return a.opts.Now(), nil
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
		return time.Time{}, ctx.Err()
	}
}

// Release ends a request that started at start; throttled says whether
// the service throttled it.
func (a *Adaptive) Release(start time.Time, throttled bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	a.requests++
	if throttled {
		a.throttles++
		// Requests sent before the last cut were sent under the old limit:
		// their throttles are already answered.
		if !start.Before(a.lastCut) {
			a.limit = max(1, a.limit*a.opts.Decrease)
			a.lastCut = a.opts.Now()
		}
	} else {
		a.limit = min(float64(a.opts.Max), a.limit+a.opts.Increase/a.limit)
	}
	a.wake()
}

// room is how many requests may be in flight: the limit's whole part.
func (a *Adaptive) room() int { return int(a.limit) }

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
		throttled := errors.Is(Classify(err), ErrThrottled)
		r.a.Release(start, throttled)
		if throttled {
			countThrottle(ctx)
		}
		return release(err)
	}, nil
}

// retryerV2 lifts an aws.Retryer that lacks GetAttemptToken.
type retryerV2 struct{ aws.Retryer }

func (r retryerV2) GetAttemptToken(context.Context) (func(error) error, error) {
	return r.GetInitialToken(), nil
}

// throttleKey marks the context of an item whose throttled attempts are
// counted (Options.CountThrottles).
type throttleKey struct{}

type throttleCount struct {
	mu sync.Mutex
	n  int
}

func countThrottle(ctx context.Context) {
	if c, ok := ctx.Value(throttleKey{}).(*throttleCount); ok {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
}
