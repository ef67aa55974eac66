package scenario

import (
	"context"
	"fmt"
	"math"
	"net/http/httptrace"
	"runtime"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/middleware"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// The Told reference's gap between starts is the bucket's, ToldMargin
// and ToldSlack more: a start a little early is throttled by a bucket of
// one token, and the starts reach it a little apart from where they were
// paced. Over HTTP on the machine of the README, in five-second cells with
// a burst of 1 and round trips of 0-200 ms, the margin that did best of
// 2-8% was 2-4% at 20 a second, 2-4% at 100 and 4-6% at 200: about a
// fifth of a millisecond, and 2% at the least (docs/regimes.md).
const (
	ToldMargin = 0.02
	ToldSlack  = 200 * time.Microsecond
)

// toldAttempts is how many attempts the Told reference makes of a call:
// a throttle of an attempt it paced is the jitter's, and is retried with
// no back-off, at the copy's next token (see toldPace).
const toldAttempts = 10

// newToldPool is the Told reference's pool: this library's clients, with
// no adaptive limit, and a retryer that waits, before each attempt, for a
// token of the client's copy of bucket (see toldPace).
func newToldPool(cfg aws.Config, t target) (*fanout.ClientPool[*ec2.Client], error) {
	p, err := newToldPace(t.bucket)
	if err != nil {
		return nil, err
	}
	return newPool(cfg, t, func(o *fanout.PoolOptions[ec2.Options]) {
		o.DisableAdaptive = true
		o.Retryer = func() aws.Retryer {
			return &toldRetryer{RetryerV2: retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = toldAttempts
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				o.RateLimiter = ratelimit.None
			}), pace: p}
		}
		o.ClientOptions = append(o.ClientOptions, func(o *ec2.Options) {
			o.APIOptions = append(o.APIOptions, p.traceWrites)
		})
	})
}

// toldRetryer is the standard retryer, each attempt of which waits for
// its start on pace; the first answer starts the pace.
type toldRetryer struct {
	aws.RetryerV2
	pace *toldPace
}

func (r *toldRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if err := r.pace.wait(ctx); err != nil {
		return nil, err
	}
	release, err := r.RetryerV2.GetAttemptToken(ctx)
	if err != nil {
		return nil, err
	}
	return func(err error) error {
		r.pace.start(time.Now())
		return release(err)
	}, nil
}

// toldPace is a client's copy of a token bucket, from when its first
// answer comes back (start): what a client told the bucket's rate and
// burst then can do. Each attempt after it waits for a token of the copy,
// which refills at the bucket's rate (see ToldMargin) up to its burst.
// The copy starts with the tokens the bucket has then, as the client can
// count them: its burst, less the attempts started before, plus what it
// refilled since the client's first request was written (the bucket fills
// when a first request reaches it; the attempts before may have waited
// for connections much longer than that). An attempt whose wait its
// context ends has spent its token.
type toldPace struct {
	gap    time.Duration
	rate   float64 // the bucket's, per second
	burst  int
	mu     sync.Mutex
	on     bool
	first  time.Time // when the first request was written
	before int       // attempts started before the pace
	tat    time.Time // when the copy is full again
}

// newToldPace is the pace of b, or an error if it cannot keep one: a rate
// at which a Duration cannot hold the gap between tokens, or the burst's.
func newToldPace(b fanouttest.Bucket) (*toldPace, error) {
	burst := max(1, b.Burst)
	gap := float64(time.Second)/b.PerSecond*(1+ToldMargin) + float64(ToldSlack)
	if !(b.PerSecond > 0) || gap*float64(burst) >= math.MaxInt64/2 {
		return nil, fmt.Errorf("scenario: %s cannot pace a bucket of %d tokens at %g a second", Told, b.Burst, b.PerSecond)
	}
	return &toldPace{gap: time.Duration(gap), rate: b.PerSecond, burst: burst}, nil
}

// traceWrites is an API option that tells the pace when each request is
// written.
func (p *toldPace) traceWrites(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("told.TraceWrites",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { p.wrote(time.Now()) },
			})
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

// wrote notes a request written at t.
func (p *toldPace) wrote(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.first.IsZero() || t.Before(p.first) {
		p.first = t
	}
}

// start starts the pace at now, if it has not started.
func (p *toldPace) start(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.on {
		return
	}
	left := float64(max(0, p.burst-p.before))
	if !p.first.IsZero() && now.After(p.first) {
		left += now.Sub(p.first).Seconds() * p.rate
	}
	p.on, p.tat = true, now.Add(time.Duration((float64(p.burst)-min(left, float64(p.burst)))*float64(p.gap)))
}

// wait waits for the next start, if the pace has started.
func (p *toldPace) wait(ctx context.Context) error {
	if at, ok := p.reserve(time.Now()); ok {
		return sleepUntil(ctx, at)
	}
	return nil
}

// reserve takes a token of the copy for an attempt asking at now, and
// returns when it may start; false before the pace starts, when it goes
// at once.
func (p *toldPace) reserve(now time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on {
		p.before++
		return time.Time{}, false
	}
	// A token a gap after the copy's last, or at once if it has one.
	at := p.tat.Add(-time.Duration(p.burst-1) * p.gap)
	if now.After(at) {
		at = now
	}
	if at.After(p.tat) {
		p.tat = at
	}
	p.tat = p.tat.Add(p.gap)
	return at, true
}

// sleepUntil waits until t, or until ctx ends, and ends on time: it
// sleeps on a timer until a millisecond before t (a timer may fire that
// late) and yields the processor for the rest.
func sleepUntil(ctx context.Context, t time.Time) error {
	if d := time.Until(t) - time.Millisecond; d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
	for time.Now().Before(t) {
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.Gosched()
	}
	return nil
}
