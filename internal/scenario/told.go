package scenario

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// The Told reference's gap between starts is the bucket's, ToldMargin
// and ToldSlack more: a start a little early is throttled by a bucket of
// one token, and the starts reach it a little apart from where they were
// paced. Over HTTP on the machine of the README, in five-second cells with
// a burst of 1, the margin that did best of 2-8% was 2% at 20 a second,
// 2-4% at 100 and 4-8% at 200: about a fifth of a millisecond, and 2% at
// the least.
const (
	ToldMargin = 0.02
	ToldSlack  = 200 * time.Microsecond
)

// toldAttempts is how many attempts the Told reference makes of a call:
// a throttle of a paced attempt is the jitter's, and retried at the pace.
const toldAttempts = 10

// newToldPool is the Told reference's pool: this library's clients, with
// no adaptive limit, and a retryer that waits, before each attempt, for
// the next start of a pace at bucket's rate (see toldPace).
func newToldPool(cfg aws.Config, t target) (*fanout.ClientPool[*ec2.Client], error) {
	p := newToldPace(t.bucket, t.limit)
	return fanout.NewClientPool(cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) {
		o.MaxIdleConnsPerHost = max(t.limit, fanout.DefaultMaxIdleConnsPerHost)
		o.DisableAdaptive = true
		o.Retryer = func() aws.Retryer {
			return &toldRetryer{RetryerV2: retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = toldAttempts
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
				o.RateLimiter = ratelimit.None
			}), pace: p}
		}
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
		r.pace.start()
		return release(err)
	}, nil
}

// toldPace spaces starts at a bucket's rate (see ToldMargin) from when
// start is first called: what a client told the rate when its first
// answer comes back can do. It banks what the bucket has left after the
// client's first limit requests, at least one token.
type toldPace struct {
	gap  time.Duration
	bank int

	mu  sync.Mutex
	on  bool
	tat time.Time // the next start, banked tokens aside
}

func newToldPace(b fanouttest.Bucket, limit int) *toldPace {
	gap := time.Duration(float64(time.Second)/b.PerSecond*(1+ToldMargin)) + ToldSlack
	return &toldPace{gap: gap, bank: max(1, b.Burst-limit)}
}

func (p *toldPace) start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on {
		p.on, p.tat = true, time.Now()
	}
}

// wait waits for the next start, if the pace has started.
func (p *toldPace) wait(ctx context.Context) error {
	if at, ok := p.reserve(time.Now()); ok {
		return sleepUntil(ctx, at)
	}
	return nil
}

// reserve takes the next start for a request asking at now, and says
// whether the pace has started (with none, the request goes at once).
func (p *toldPace) reserve(now time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.on {
		return time.Time{}, false
	}
	at := p.tat.Add(-time.Duration(p.bank-1) * p.gap)
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
