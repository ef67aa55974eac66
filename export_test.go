package fanout

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// SetAdaptiveClock replaces a's clock, so that tests move time by hand.
func SetAdaptiveClock(a *Adaptive, now func() time.Time) { a.now = now }

// AdaptivePace is a's pacing decision for a request starting now: how
// long it waits.
func AdaptivePace(a *Adaptive) time.Duration {
	d, _, _, _ := a.pace(false)
	return d
}

// GuardAdaptiveCalls is the API option that gives back the places of a
// call's attempts when something under the retry middleware panics.
var GuardAdaptiveCalls = guardCalls

// AdaptiveNextStart is the earliest time a's pacing lets the next request
// start.
func AdaptiveNextStart(a *Adaptive) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nextStart()
}

// AdaptiveRoom is how many requests a lets be in flight.
func AdaptiveRoom(a *Adaptive) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.room()
}

// AdaptiveGap is the time a's pacing puts between request starts.
func AdaptiveGap(a *Adaptive) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gap()
}

// PoolAdaptive is the adaptive limit of p's client for region, in the
// config's own account; nil if it has none yet.
func PoolAdaptive[C any](p *ClientPool[C], region string) *Adaptive {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limiters[acctRegion{region: region}]
}

// LimitWaiting is how many callers are blocked on f's Limit.
func LimitWaiting[T any](f *Fanout[T]) int64 { return f.sem.waiting.Load() }

// RunRegionTargets runs call once per region through runTargets, the AWS
// layer's seam into the engine, without a pool: what the seam costs per
// item, and nothing else.
func RunRegionTargets[T any](ctx context.Context, f *Fanout[T], regions []string,
	call func(ctx context.Context, region string) (T, error)) (RegionResults[T], error) {
	targets := make([]acctRegion, len(regions))
	for i, region := range regions {
		targets[i] = acctRegion{region: region}
	}
	return runTargets(ctx, f, targets, regions,
		func(ctx context.Context, t acctRegion) (T, error) { return call(ctx, t.region) },
		func(_ context.Context, err error, _ acctRegion) error { return err }, RegionOptions{Options: f.options()}, nil)
}

// PoolRetryMode is the retry mode of the retryer pool's clients start
// from: adaptive or standard.
func PoolRetryMode[C any](p *ClientPool[C]) aws.RetryMode {
	if _, ok := p.base.Retryer().(*retry.AdaptiveMode); ok {
		return aws.RetryModeAdaptive
	}
	return aws.RetryModeStandard
}

// AdaptiveQuota is the quota a's last cut measured, per second.
func AdaptiveQuota(a *Adaptive) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.quota
}

// AdaptiveAtEdge says whether a paces at the edge of a small bucket.
func AdaptiveAtEdge(a *Adaptive) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.edge
}

// AdaptiveServed says whether a's quota serves a call that started at
// since.
func AdaptiveServed(a *Adaptive, since time.Time) bool { return a.served("", since) }

// SetPoolClock replaces the clock of every adaptive limit p has built.
func SetPoolClock[C any](p *ClientPool[C], now func() time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.limiters {
		a.mu.Lock()
		a.now = now
		a.mu.Unlock()
	}
}

// ProbeEvery is how many starts go between probes of the edge of a small
// bucket.
const ProbeEvery = probeEvery

// ProbeStep is the least step of a probe of the edge.
const ProbeStep = probeStep

// AdaptiveProbeOut is the start of a's probe out, or zero.
func AdaptiveProbeOut(a *Adaptive) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.probe.at
}

// SleepExactly is the wait a paced start takes, spinning its last spin.
var SleepExactly = sleepExactly

// AdaptiveSpin is how much of a paced wait a spends yielding.
func AdaptiveSpin(a *Adaptive) time.Duration { return a.spin() }

// The first and the largest size of a paced log, and the least room of a
// paced client.
const (
	LogFirst = logFirst
	LogMost  = logMost
	MinRoom  = minRoom
)

// AdaptiveLogSize is how many paced requests a's log holds, 0 before it
// has one.
func AdaptiveLogSize(a *Adaptive) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paced == nil {
		return 0
	}
	return len(a.paced.reqs)
}
