package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// The defaults of BreakerOptions.
const (
	// DefaultBreakerThreshold is one call's worth of attempts
	// (DefaultMaxAttempts): a client whose last five attempts could not
	// reach the endpoint stops trying.
	DefaultBreakerThreshold = 5

	// DefaultBreakerCooldown is how long an open breaker fails attempts at
	// once before it lets one through to see whether the endpoint is back.
	DefaultBreakerCooldown = 5 * time.Second
)

// ErrEndpointDown classifies the error of a call that a client's breaker
// failed at once, because the client's last attempts could not reach its
// endpoint (connection refused, reset, timed out). errors.Is finds it
// through an item's error; the error also wraps the last connection
// failure, so errors.Is(err, syscall.ECONNREFUSED) and errors.As for a
// *net.OpError still reach it. It is neither ErrThrottled nor
// ErrRegionDisabled, and it is not retryable: the point is to fail fast.
var ErrEndpointDown = errors.New("fanout: endpoint down")

// BreakerOptions tunes the breaker of one client (a service in one account
// and region). NewBreaker and a ClientPool start from
// DefaultBreakerOptions.
type BreakerOptions struct {
	// Threshold is the number of connection-level failures in a row
	// (refused, reset, timed out) that open the breaker; at least 1. An
	// answer from the endpoint, an API error included, starts the count
	// again. Default: DefaultBreakerThreshold.
	Threshold int

	// Cooldown is how long the breaker stays open, failing every attempt
	// at once, before it lets one attempt through as a probe: an answer
	// closes it, another connection failure opens it for another
	// Cooldown. Above 0. Default: DefaultBreakerCooldown.
	Cooldown time.Duration
}

// DefaultBreakerOptions returns the options a breaker starts from.
func DefaultBreakerOptions() BreakerOptions {
	return BreakerOptions{Threshold: DefaultBreakerThreshold, Cooldown: DefaultBreakerCooldown}
}

func (o *BreakerOptions) validate() error {
	switch {
	case o.Threshold < 1:
		return fmt.Errorf("fanout: BreakerOptions.Threshold is %d; want 1 or more", o.Threshold)
	case o.Cooldown <= 0:
		return fmt.Errorf("fanout: BreakerOptions.Cooldown is %v; want more than 0", o.Cooldown)
	}
	return nil
}

// BreakerState is where a breaker stands.
type BreakerState int

const (
	// BreakerClosed lets every attempt through.
	BreakerClosed BreakerState = iota
	// BreakerOpen fails every attempt at once with ErrEndpointDown.
	BreakerOpen
	// BreakerHalfOpen has let one attempt through, as a probe, and fails
	// the others at once until it ends.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

// BreakerStats is a snapshot of one client's breaker.
type BreakerStats struct {
	State    BreakerState
	Failures int   // connection-level failures in a row
	Opened   int64 // times the breaker opened
	Rejected int64 // attempts it failed at once
}

// Breaker stops a client from retrying against an endpoint it cannot
// reach: after Threshold connection-level failures in a row it opens, and
// every attempt fails at once with ErrEndpointDown instead of dialling,
// failing and sleeping through the retryer's back-offs. After Cooldown it
// lets one attempt through; an answer closes it. It is safe for concurrent
// use.
//
// ClientPool gives each of its clients one, through the client's retryer,
// so one region's dead endpoint does not stop another region's calls.
type Breaker struct {
	opts BreakerOptions
	name string // the client, for errors; empty for NewBreaker's

	mu       sync.Mutex
	now      func() time.Time // the clock; tests replace it
	state    BreakerState
	failures int
	cause    error // the last connection-level failure
	openedAt time.Time
	probing  bool
	opened   int64
	rejected int64

	changed func(BreakerState, error) // told of each change of state, outside mu; nil: no one
}

// NewBreaker returns a Breaker configured by optFns, applied in order to
// DefaultBreakerOptions, or an error that names an option that cannot be
// honoured.
func NewBreaker(optFns ...func(*BreakerOptions)) (*Breaker, error) {
	o := DefaultBreakerOptions()
	if err := apply("NewBreaker", &o, optFns); err != nil {
		return nil, err
	}
	return newBreaker(o, "")
}

func newBreaker(o BreakerOptions, name string) (*Breaker, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Breaker{opts: o, name: name, now: time.Now}, nil
}

// Stats returns a snapshot of the breaker.
func (b *Breaker) Stats() BreakerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BreakerStats{State: b.state, Failures: b.failures, Opened: b.opened, Rejected: b.rejected}
}

// allow admits an attempt, as the probe when the breaker is open and its
// cooldown has passed, or returns the error that fails it at once.
func (b *Breaker) allow() (probe bool, err error) {
	b.mu.Lock()
	defer b.unlock(b.state)
	if b.shut() {
		b.rejected++
		return false, b.downError(b.cause)
	}
	if b.state == BreakerClosed {
		return false, nil
	}
	b.state, b.probing = BreakerHalfOpen, true
	return true, nil
}

// refuse returns the error that ends a call whose attempt failed with
// cause while the breaker is shut, or nil: a call must not sleep before a
// retry that the breaker would fail anyway.
func (b *Breaker) refuse(cause error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.shut() {
		return nil
	}
	b.rejected++
	return b.downError(cause)
}

// shut reports whether an attempt starting now fails at once.
func (b *Breaker) shut() bool {
	switch b.state {
	case BreakerOpen:
		return b.now().Before(b.openedAt.Add(b.opts.Cooldown))
	case BreakerHalfOpen:
		return b.probing
	}
	return false
}

// done records how an attempt it admitted ended.
func (b *Breaker) done(probe bool, o outcome, err error) {
	b.mu.Lock()
	defer b.unlock(b.state)
	if probe {
		b.probing = false
	}
	switch o {
	case answered:
		b.state, b.failures = BreakerClosed, 0
	case unreachable:
		b.failures++
		b.cause = err
		// Failures of attempts sent before the breaker opened are already
		// answered: only the probe's opens it again.
		if probe || b.state == BreakerClosed && b.failures >= b.opts.Threshold {
			b.state, b.openedAt = BreakerOpen, b.now()
			b.opened++
		}
	}
}

// unlock unlocks mu and tells b.changed, if any, of a change from the
// state was when mu was locked.
func (b *Breaker) unlock(was BreakerState) {
	s, cause := b.state, b.cause
	b.mu.Unlock()
	if s != was && b.changed != nil {
		b.changed(s, cause)
	}
}

func (b *Breaker) downError(cause error) error {
	return &endpointDownError{client: b.name, failures: b.failures, cooldown: b.opts.Cooldown, cause: cause}
}

// outcome is what one attempt says of the endpoint.
type outcome int

const (
	unknown     outcome = iota // nothing: the caller gave up, or the request never left
	answered                   // the endpoint answered, with an API error or not
	unreachable                // refused, reset, timed out
)

// outcomeOf judges an attempt that ended with err. An attempt whose
// context ended says nothing of the endpoint, even when its error looks
// like a timeout; what is a connection error is the SDK's own judgement,
// which its retryers use too.
func outcomeOf(ctx context.Context, err error) outcome {
	var apiErr smithy.APIError
	switch {
	case err == nil:
		return answered
	case ctx.Err() != nil:
		return unknown
	case errors.As(err, &apiErr):
		return answered
	case retry.RetryableConnectionError{}.IsErrorRetryable(err) == aws.TrueTernary:
		return unreachable
	}
	return unknown
}

// endpointDownError is the error of an attempt a breaker failed at once.
type endpointDownError struct {
	client   string
	failures int
	cooldown time.Duration
	cause    error
}

var _ error = (*endpointDownError)(nil)

func (e *endpointDownError) Error() string {
	client := ""
	if e.client != "" {
		client = " for " + e.client
	}
	return fmt.Sprintf("fanout: endpoint down%s (%d connection failures in a row; one probe every %v): %v",
		client, e.failures, e.cooldown, e.cause)
}

func (e *endpointDownError) Is(target error) bool { return target == ErrEndpointDown }
func (e *endpointDownError) Unwrap() error        { return e.cause }

// RetryableError tells the SDK's retryers not to retry it, though it wraps
// a connection error they would retry.
func (e *endpointDownError) RetryableError() bool { return false }

// BreakerRetryer wraps r so that every attempt it lets the SDK make goes
// through b: the way to give a client of your own a breaker. A ClientPool
// does this for its clients unless PoolOptions.DisableBreaker is set.
//
// An open breaker fails the attempt token, which ends the call at once,
// and the wait before a retry, so that a call does not sleep through a
// back-off only to be failed after it.
func BreakerRetryer(r aws.Retryer, b *Breaker) aws.RetryerV2 {
	return &breakerRetryer{RetryerV2: asV2(r), b: b}
}

type breakerRetryer struct {
	aws.RetryerV2
	b *Breaker
}

func (r *breakerRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	probe, err := r.b.allow()
	if err != nil {
		return nil, err
	}
	release, err := r.RetryerV2.GetAttemptToken(ctx)
	if err != nil {
		r.b.done(probe, unknown, nil)
		return nil, err
	}
	return func(err error) (out error) {
		// Whatever happens in judging err (an error value of the caller's
		// whose methods panic, say), the probe ends and the wrapped
		// retryer's place goes back.
		judged := unknown
		defer func() { r.b.done(probe, judged, err) }()
		out = release(err)
		judged = outcomeOf(ctx, err)
		return out
	}, nil
}

func (r *breakerRetryer) IsErrorRetryable(err error) bool {
	return !errors.Is(err, ErrEndpointDown) && r.RetryerV2.IsErrorRetryable(err)
}

func (r *breakerRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	if down := r.b.refuse(err); down != nil {
		return 0, down
	}
	return r.RetryerV2.RetryDelay(attempt, err)
}

// Breakers returns a snapshot of each client's breaker, keyed as Stats
// keys the adaptive limits: by region for the config's own account and
// "account/region" for others.
func (p *ClientPool[C]) Breakers() map[string]BreakerStats {
	if p == nil {
		return map[string]BreakerStats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	stats := make(map[string]BreakerStats, len(p.breakers))
	for t, b := range p.breakers {
		stats[t.String()] = b.Stats()
	}
	return stats
}

// withBreaker returns newRetryer wrapped in a new breaker for t, or
// newRetryer itself when the pool's breakers are off.
func (p *ClientPool[C]) withBreaker(t acctRegion, newRetryer func() aws.Retryer, ct *clientTel) (func() aws.Retryer, error) {
	if p.breaker == nil {
		return newRetryer, nil
	}
	b, err := newBreaker(*p.breaker, t.String()) // validated by NewClientPool
	if err != nil {
		return nil, err
	}
	if ct != nil {
		b.changed = ct.breakerChanged
	}
	p.mu.Lock()
	p.breakers[t] = b
	p.mu.Unlock()
	return func() aws.Retryer { return BreakerRetryer(newRetryer(), b) }, nil
}
