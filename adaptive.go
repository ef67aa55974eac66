package fanout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddle "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/time/rate"
)

// The defaults of AdaptiveOptions.
const (
	DefaultAdaptiveMax             = 0 // no ceiling: the fan-out's Limit bounds a client
	DefaultAdaptiveDecrease        = 0.5
	DefaultAdaptiveIncrease        = 0.07
	DefaultAdaptiveThrottleBackoff = 100 * time.Millisecond
)

// AdaptiveOptions tunes the adaptive limit of one client (a service in one
// account and region). NewAdaptive and a ClientPool start from
// DefaultAdaptiveOptions.
type AdaptiveOptions struct {
	// Max, when not 0, is the ceiling, and the starting point, of the
	// client's limit, in requests in flight (paced: per round trip). 0
	// means none: until its first throttle a client sends what it is asked
	// to, as many requests at once as the fan-outs calling it allow (their
	// Limit, and the HTTP client's MaxConnsPerHost if set), and its first
	// throttle cuts from what was in flight. Default: DefaultAdaptiveMax, 0.
	Max int

	// Decrease multiplies the requests in flight on the client's first
	// throttle, and on every throttle when pacing is disabled; between 0
	// and 1, both excluded. Once the client is paced, a throttle measures
	// the quota instead (see Adaptive). Default: DefaultAdaptiveDecrease.
	Decrease float64

	// Increase is added to the limit over each round of successful
	// requests (limit successes) when pacing is disabled, while the
	// requests in flight fill half the limit or more; above 0. A paced
	// client climbs by the quota it measured (see Adaptive), and past a
	// quarter above it, by this fraction a round trip at least (more as
	// round trips pass with no throttle). Default: DefaultAdaptiveIncrease,
	// a slow climb, since each step above the client's quota costs a
	// throttled request.
	Increase float64

	// Rate and Burst, when Rate is positive, add a token bucket in front of
	// the client, for users who know their quota (EC2's non-mutating calls:
	// 20 per second, burst 100); Burst must then be at least 1. A bucket
	// that matches the quota avoids throttling altogether. A request the
	// bucket could start only after its context's deadline fails at once,
	// with an error that is both context.DeadlineExceeded and ErrThrottled
	// to errors.Is. Default: none; the adaptive limit finds a quota by
	// itself, below one request per round trip too, at the price of the
	// throttles it takes to find it.
	Rate  rate.Limit
	Burst int

	// ThrottleBackoff is the base of the wait before retrying a throttled
	// attempt: at most ThrottleBackoff x 2^(attempt-1), the doubling
	// stopping at the eleventh attempt, jittered, and never longer than
	// the retryer's own delay; above 0. The first cut also
	// counts a round trip as at least ThrottleBackoff (see Adaptive).
	// Default: DefaultAdaptiveThrottleBackoff.
	ThrottleBackoff time.Duration

	// DisablePacing turns off the spacing of request starts by the round
	// trip time over the limit, leaving a plain limit on requests in
	// flight, which then stops at one: without pacing, nothing can go
	// slower than one request per round trip.
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
	case o.Max < 0:
		return fmt.Errorf("fanout: AdaptiveOptions.Max is %d; want 0 (no ceiling) or more", o.Max)
	case o.Decrease == 0 && o.Increase == 0 && o.ThrottleBackoff == 0:
		return errors.New("fanout: AdaptiveOptions are all zero; change fields of the options, which start from DefaultAdaptiveOptions, rather than replacing them")
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

// Adaptive limits the requests of one client to what its quota admits,
// learned from the service's throttles. It is safe for concurrent use.
//
// Until its first throttle a client sends what it is asked to (up to Max,
// if set). The first throttle cuts the requests in flight by Decrease, per
// round trip counted as at least ThrottleBackoff, or, if lower, to what
// was delivered over the time the client's first burst took to start, if
// it took any (requests sent at once say nothing of a rate), and from then on the
// limit is a rate: request starts are spaced by one over it (below one
// request per round trip, by more than the round trip: a quota of 5 per
// second against a millisecond's round trip is a two-hundredth of a
// request per round trip), with at most the rate times the round trip in
// flight (at least two, Max permitting: one request that hangs does not
// stop a client).
//
// A quota's token bucket lets through its rate and throttles the excess,
// so each throttle of a paced request measures the quota: the rate it was
// paced at times the share of the requests started just before it that
// were admitted; or less, one over the time since the last start before
// it that was admitted or is not answered yet, if a start between them
// was throttled too (had a token come in since, they would have had it);
// or less, what was delivered since the last cut, when at most half the
// requests since were admitted. The rate falls to four fifths of that,
// climbs back by 5% a round trip, and past the quota measured by 1% at
// first, hunting around it; from one request per round trip up, after four
// round trips (those the limit was used in) since the rate first passed the
// quota after the last cut, the step doubles every two, up to a quarter a
// round trip (the quota may have grown, or been measured low), and a quarter
// past the quota it is at least Increase. Below the quota (before the first
// measure, after a deeper cut), it doubles each round trip, as a TCP slow
// start does. Below one request per round trip a round trip is a success,
// and near the quota it climbs at least 5% a second.
//
// A bucket of one token banks nothing: every moment paced below its rate
// is lost for good, and a request paced a little above it is throttled at
// once. A client whose first burst met a bucket of a token or two (of the
// requests it sent before its first cut, four or more throttled, and two
// or fewer admitted that started no later than the first of those) reads
// its paced requests as such a bucket answers them:
// a request is admitted if, and only if, the last one admitted started at
// least one over the rate before it. The longest such gap throttled and
// the shortest admitted bracket the rate; the client paces at the edge
// they show, and does not climb: now and then (one start in 16, or one a
// second) it probes a gap a little shorter with one request more, which
// costs no time if throttled and shortens the gap if admitted; its paced
// starts end their wait on time, spinning the last millisecond of it (a
// Go timer fires up to a millisecond late). Four fifths
// of the quota measured, the law for every other throttle, left such a
// client at 1.2-1.3x the time the bucket needs. Gaps that do not read so
// (a bucket of two, or a bigger one another client had left empty, banks
// tokens) take it back to that law; a probe admitted well short of the
// edge means the quota grew, and the client climbs by slow start until the
// next throttle. A client whose first burst was admitted is never read so:
// there, a throttle alone may be the end of a bucket's banked tokens. See
// edge.go.
//
// The limit climbs only while the client uses it, as TCP's congestion
// window does (RFC 7661): while the requests in flight fill it, or fill
// half of it or more as starts wait for their pace (see used). A limit the callers
// leave unused says nothing of the quota, and would let another fan-out
// on the client out far past it. Without pacing (DisablePacing) the limit
// is a plain AIMD limit on requests in flight: cut by Decrease, raised by
// Increase over each round of successes while the requests in flight fill
// half of it or more.
//
// ClientPool gives each of its clients one, through the client's retryer,
// so it limits HTTP attempts, not items: a call that backs off before a
// retry holds no place while it sleeps.
type Adaptive struct {
	opts   AdaptiveOptions
	bucket *rate.Limiter
	now    func() time.Time // the clock; tests replace it

	mu        sync.Mutex
	limit     float64 // requests in flight, at least 1, while rate is 0
	rate      float64 // once paced (after the first cut, with pacing), requests per second; else 0
	quota     float64 // requests per second, as the last cut of paced requests measured it; 0 before
	inflight  int
	waiters   []chan struct{}
	requests  int64
	throttles int64

	rtt     time.Duration // moving average of successful requests' latency
	next    time.Time     // pacing: the earliest next start
	delayed time.Time     // the last start that pacing or the limit delayed: the client was limited then
	lastCut time.Time
	// passed is when the rate passed the quota measured, since the last
	// cut, moved on by the spells the limit was not used in (see increase).
	passed  time.Time
	usedAt  time.Time // the last success while the limit was used
	spaced  int       // how many times starts were spaced anew: at each cut, and as a probe shortens the gap
	epoch   time.Time // the last cut, or the first request
	okSince int       // successes since epoch

	paced *pacedLog // once paced

	// The first burst, the requests started before the first cut (see
	// smallBucket): how many the quota throttled, the earliest start of
	// those, and the earliest starts of those it admitted.
	firstCut       time.Time
	burstThrottled int
	burstFirstOut  time.Time
	burstAdmitted  [3]time.Time
	edge           bool      // the client paces at the edge of a small bucket (see edge.go)
	lastStart      time.Time // the last start pace gave a request other than a probe
	probe          probes    // at the edge

	succeeded map[string]time.Time // per operation: when its last request that succeeded ended
}

// pacedLog holds the last paced requests of a client, which a throttle
// measures the quota over: when each started, at what rate, and, once it
// ended, whether the quota admitted it. A client gets one when it is first
// paced (most never are); its entries are plain numbers, nothing for the
// collector to scan.
type pacedLog struct {
	base   time.Time     // what the starts are counted from
	reqs   []pacedReq    // a ring: request k is reqs[k%len(reqs)]
	first  int           // the oldest request held at most: a ring grown holds none before
	n      int           // requests put so far
	out    int           // of those held, the ones not ended yet
	forget time.Duration // the edge is read from the requests started since (see gaps)
}

// A pacedLog holds logFirst requests, and twice as many, up to logMost,
// when the requests out would crowd out the answered ones before them: an
// answer must find its request, and a reading of the edge needs answers
// (see readFrom). Paced at 260-280 a second against a quota of 200 (its
// climb in its first second), at a round trip of 200ms, a client had all
// of 64 requests out: with no more, it read no edge at all, and fell to
// the law for every quota (1.7x the ideal). Most paced clients keep the
// first 1 KiB; one request out for minutes does not grow it. (Requests cut
// short count as ended: a log that holds many has fewer answers to read,
// and does not grow for them.)
const (
	logFirst = 64
	logMost  = 4096
)

type pacedReq struct {
	at    time.Duration // the start, since base
	rate  float32       // the rate it was paced at
	ended bool
	probe bool       // a probe of the edge of a small bucket (see edge.go)
	end   attemptEnd // how, once ended
}

func (r pacedReq) admitted() bool  { return r.ended && r.end == endAnswered }
func (r pacedReq) throttled() bool { return r.ended && r.end == endThrottled }
func (r pacedReq) notSent() bool   { return r.ended && r.end == endNotSent }

// answered says whether the quota answered r: admitted or throttled.
func (r pacedReq) answered() bool { return r.admitted() || r.throttled() }

// tookNone says whether r surely took no token: throttled, or never sent.
func (r pacedReq) tookNone() bool { return r.throttled() || r.notSent() }

// log returns the client's pacedLog, made on first use.
func (a *Adaptive) log() *pacedLog {
	if a.paced == nil {
		a.paced = &pacedLog{base: a.now(), reqs: make([]pacedReq, logFirst)}
	}
	return a.paced
}

func (l *pacedLog) since(t time.Time) time.Duration { return t.Sub(l.base) }

func (l *pacedLog) put(start time.Time, rate float64, probe bool) {
	if size := len(l.reqs); l.n-l.first >= size { // full: the oldest goes, or the ring grows
		switch {
		case l.out >= size-edgeAnswered && size < logMost:
			reqs := make([]pacedReq, 2*size)
			l.first = l.n - size
			for k := l.first; k < l.n; k++ {
				reqs[k%len(reqs)] = l.reqs[k%size]
			}
			l.reqs = reqs
		case !l.reqs[l.n%size].ended:
			l.out-- // its answer will not find it
		}
	}
	l.reqs[l.n%len(l.reqs)] = pacedReq{at: l.since(start), rate: float32(rate), probe: probe}
	l.n++
	l.out++
}

// end marks how the request that started at start ended, if it is held:
// of those that started then, the oldest not ended yet.
func (l *pacedLog) end(start time.Time, o attemptEnd) {
	at, i := l.since(start), -1
	l.all(func(j int, r pacedReq) bool {
		if r.at < at {
			return false
		}
		if r.at == at && !r.ended {
			i = j
		}
		return true
	})
	if i >= 0 {
		l.reqs[i].ended, l.reqs[i].end = true, o
		l.out--
	}
}

// all calls f on the requests held, with their index, newest first, until
// f returns false.
func (l *pacedLog) all(f func(int, pacedReq) bool) {
	for k := l.n - 1; k >= max(l.first, l.n-len(l.reqs)); k-- {
		if !f(k%len(l.reqs), l.reqs[k%len(l.reqs)]) {
			return
		}
	}
}

// minRoom is the least room a paced client has for requests in flight,
// Max permitting: its starts are spaced, and a rate times a round trip
// below one request would otherwise let one request that hangs (a
// connection that stalls, with no deadline) stop the client until it ends.
const minRoom = 2

// minRate is the slowest an Adaptive paces a client: one request every ten
// seconds. A client that sees nothing but throttles would otherwise cut
// its rate for ever, and take as long to recover.
const minRate = 0.1

// NewAdaptive returns an Adaptive limit configured by optFns, applied in
// order to DefaultAdaptiveOptions, or an error that names an option that
// cannot be honoured.
func NewAdaptive(optFns ...func(*AdaptiveOptions)) (*Adaptive, error) {
	o := DefaultAdaptiveOptions()
	if err := apply("NewAdaptive", &o, optFns); err != nil {
		return nil, err
	}
	return newAdaptive(o)
}

func newAdaptive(o AdaptiveOptions) (*Adaptive, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	a := &Adaptive{opts: o, now: time.Now}
	a.limit = a.ceiling()
	if o.Rate > 0 {
		a.bucket = rate.NewLimiter(o.Rate, o.Burst)
	}
	return a, nil
}

// AdaptiveStats is a snapshot of one client's adaptive limit.
type AdaptiveStats struct {
	// Limit is the current limit in requests per round trip: the requests
	// allowed in flight, or below 1, the fraction of one request per round
	// trip the client is paced at (0.25: one request every four round
	// trips); +Inf while the client has neither a Max nor a throttle yet.
	Limit     float64
	InFlight  int   // requests in flight now
	Requests  int64 // requests finished
	Throttles int64 // of which were throttled
}

// Stats returns a snapshot of the limit and its counts.
func (a *Adaptive) Stats() AdaptiveStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AdaptiveStats{Limit: a.perRTT(), InFlight: a.inflight, Requests: a.requests, Throttles: a.throttles}
}

// Acquire waits for room for one request and returns the time it
// started, which Release needs, or an error: ctx's, or, when the client's
// own bucket (AdaptiveOptions.Rate) could not start the request before
// ctx's deadline, at once an error that errors.Is finds both
// context.DeadlineExceeded and ErrThrottled in.
func (a *Adaptive) Acquire(ctx context.Context) (time.Time, error) {
	start, _, err := a.acquire(ctx)
	return start, err
}

// acquire is Acquire, and reports whether the request was held: whether
// it had to wait for the bucket, for room or for its pace.
func (a *Adaptive) acquire(ctx context.Context) (start time.Time, held bool, err error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	bucket, err := a.waitBucket(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	room, err := a.admit(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	start, paced, err := a.waitPace(ctx)
	if err != nil {
		a.giveBack(time.Time{})
		return time.Time{}, false, err
	}
	return start, bucket || room || paced, nil
}

// waitBucket takes a token from the client's own bucket, if it has one,
// waiting for it unless the wait would outlast ctx.
func (a *Adaptive) waitBucket(ctx context.Context) (waited bool, err error) {
	if a.bucket == nil {
		return false, nil
	}
	now := a.now()
	r := a.bucket.ReserveN(now, 1) // always possible: Burst is at least 1
	d := r.DelayFrom(now)
	if d == 0 {
		return false, nil
	}
	if deadline, ok := ctx.Deadline(); ok && d > time.Until(deadline) {
		r.CancelAt(now)
		return false, &rateWaitError{rate: a.opts.Rate, burst: a.opts.Burst, wait: d}
	}
	if err := sleep(ctx, d); err != nil {
		r.CancelAt(a.now())
		return false, err
	}
	return true, nil
}

// rateWaitError is the error of a request that the client's own bucket
// could start only after its context's deadline: rate.Limiter.Wait's
// "would exceed context deadline", which is neither.
type rateWaitError struct {
	rate  rate.Limit
	burst int
	wait  time.Duration
}

func (e *rateWaitError) Error() string {
	return fmt.Sprintf("fanout: throttled by the client's own quota (AdaptiveOptions.Rate %v per second, Burst %d): "+
		"the request could start in %v, after its context's deadline", float64(e.rate), e.burst, e.wait.Round(time.Millisecond))
}

// Is reports the error as the deadline it ran into and as a throttle: the
// client's quota, like the SDK's retry quota, is a throttle of its own.
func (e *rateWaitError) Is(target error) bool {
	return target == context.DeadlineExceeded || target == ErrThrottled
}

// admit waits for a place among the requests in flight, and reports
// whether it had to.
func (a *Adaptive) admit(ctx context.Context) (waited bool, err error) {
	a.mu.Lock()
	if a.epoch.IsZero() {
		a.epoch = a.now()
	}
	if a.inflight < a.room() && len(a.waiters) == 0 {
		a.inflight++
		a.mu.Unlock()
		return false, nil
	}
	ready := make(chan struct{})
	a.waiters = append(a.waiters, ready)
	a.delayed = a.now()
	a.mu.Unlock()
	select {
	case <-ready:
		return true, nil
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
		return false, ctx.Err()
	}
}

// waitPace waits for the request's start as pace spaces it, and returns
// it; if ctx ends first, the start it was given goes back to the next
// request. A start spaced before a cut is spaced again after its wait:
// sent at the old spacing, it would be throttled and, as a request sent
// after the cut, cut the limit again for a rate the cut already corrected.
func (a *Adaptive) waitPace(ctx context.Context) (start time.Time, waited bool, err error) {
	for {
		d, start, next, spaced := a.pace(true)
		if d <= 0 {
			return start, waited, nil
		}
		if err := sleepExactly(ctx, d, a.spin()); err != nil {
			a.mu.Lock()
			defer a.mu.Unlock()
			switch {
			case next.IsZero(): // a probe: it took no start from the others
				if start.Equal(a.probe.at) {
					a.probe.at = time.Time{}
				}
			case a.next.Equal(next): // no start was spaced after this one
				a.next = start
			}
			return time.Time{}, false, err
		}
		waited = true
		if start, ok := a.startPaced(spaced, start); ok {
			return start, true, nil
		}
	}
}

// startPaced starts a paced request now and returns when, unless starts
// were spaced anew since they had been spaced times; planned is the start
// pace gave it.
func (a *Adaptive) startPaced(spaced int, planned time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	probe := planned.Equal(a.probe.at)
	if a.spaced != spaced {
		if probe {
			a.probe.at = time.Time{}
		}
		return time.Time{}, false
	}
	now := a.now()
	rate := a.rate
	if probe {
		a.probe.at, a.probe.last = now, now
		rate = a.probeRate()
	}
	a.log().put(now, rate, probe)
	return now, true
}

// pace spaces request starts by the gap, once the client has been
// throttled, so that a limit between two whole numbers means a rate
// between them (at 2.5, two and a half requests per round trip) and a
// rate below one per round trip is kept. At the edge of a small bucket,
// a request it gives a probe's start to (see edge.go) goes between two
// others. It returns how long to wait, the start it gave (now, if it does
// not wait: a start it records, if told to; only such a request may be a
// probe), the earliest next start it set (none for a probe), and the
// count of spacings it spaced them for.
func (a *Adaptive) pace(record bool) (wait time.Duration, start, next time.Time, spaced int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	gap := a.gap()
	if gap == 0 {
		return 0, now, time.Time{}, a.spaced
	}
	if t, ok := a.probeStart(now); ok && record {
		a.probe.at, a.probe.last, a.probe.since = t, t, 0
		a.delayed = t
		if t.Equal(now) {
			a.log().put(now, a.probeRate(), true)
		}
		return t.Sub(now), t, time.Time{}, a.spaced
	}
	start = a.next
	if start.Before(now) {
		start = now
	} else {
		a.delayed = start
	}
	a.next = start.Add(gap)
	a.lastStart = start
	a.probe.since++
	if start.Equal(now) && record {
		a.log().put(now, a.rate, false)
	}
	return start.Sub(now), start, a.next, a.spaced
}

// gap is the time between request starts: one over the rate; 0 when
// nothing is paced (pacing disabled, or no throttle yet).
func (a *Adaptive) gap() time.Duration {
	if a.rate == 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / a.rate)
}

// timerSlack is how late a timer may fire on a machine with nothing else
// to run: on Linux the runtime's poller waits in whole milliseconds, so a
// timer fires up to a millisecond after its time (golang.org/issue/44343).
// Paced starts that late reach a bucket of one token at gaps a millisecond
// either side of the gap they were paced at: at 200 a second, a fifth of it.
const timerSlack = time.Millisecond

// spin is how much of a paced wait sleepExactly spends yielding rather
// than asleep: at the edge of a small bucket, where a start late by a
// fraction of the gap is the next one's throttle, timerSlack, but no more
// than a quarter of the gap, so that the yielding takes at most a quarter
// of a core (at 200 a second, 0.12-0.18 measured; above 250 a second a
// start may still be a little late). Elsewhere none: a bucket
// that banks tokens takes a late start as it comes, and the starts after
// it keep their times.
func (a *Adaptive) spin() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.edge {
		return 0
	}
	return min(timerSlack, a.gap()/4)
}

// spinning says whether a wait is spinning now (see sleepExactly).
var spinning atomic.Bool

// sleepExactly waits d, or until ctx ends, and ends on time: it sleeps on
// a timer until spin before the end, and yields the processor to other
// goroutines for the rest. One wait spins at a time in the process, so
// that clients at the edge of many buckets take at most a core; the
// others finish their wait on the timer.
func sleepExactly(ctx context.Context, d, spin time.Duration) error {
	if spin <= 0 {
		return sleep(ctx, d)
	}
	end := time.Now().Add(d)
	if d > spin {
		if err := sleep(ctx, d-spin); err != nil {
			return err
		}
	}
	if !spinning.CompareAndSwap(false, true) {
		return sleep(ctx, time.Until(end))
	}
	defer spinning.Store(false)
	for time.Now().Before(end) {
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.Gosched()
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release ends a request that started at start; throttled says whether
// the service throttled it.
func (a *Adaptive) Release(start time.Time, throttled bool) {
	o := endAnswered
	if throttled {
		o = endThrottled
	} else {
		a.succeed("")
	}
	a.end(start, o)
}

// attemptEnd is how a request ended, as the limit counts it.
type attemptEnd int8

const (
	endAnswered  attemptEnd = iota // an answer other than a throttle: a success to the limit
	endThrottled                   // a throttle: cuts the limit
	endCutShort                    // ended by its context, or with an error that could not be looked into: says nothing of the service
	endNotSent                     // given back before it was sent (in a pacedLog only): as if never started
)

func (a *Adaptive) end(start time.Time, o attemptEnd) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	a.inflight--
	a.requests++
	if a.paced != nil {
		a.paced.end(start, o)
	}
	if a.firstCut.IsZero() || start.Before(a.firstCut) {
		switch o {
		case endAnswered:
			a.burstAdmit(start)
		case endThrottled:
			a.burstThrottled++
			if a.burstFirstOut.IsZero() || start.Before(a.burstFirstOut) {
				a.burstFirstOut = start
			}
		}
	}
	probe := a.edge && start.Equal(a.probe.at)
	switch {
	case probe:
		a.probeEnded(start, o)
	case a.edge:
		a.probeHeld()
	}
	switch o {
	case endThrottled:
		a.throttles++
		if a.rtt == 0 { // no success yet: a throttle's round trip is the only one known
			a.rtt = max(now.Sub(start), minRTT)
		}
		// Requests sent before the last cut were sent under the old limit:
		// their throttles are already answered. A probe's throttle, and
		// one a probe may have caused, say nothing new (see edge.go).
		if !start.Before(a.lastCut) && !probe && !a.probed(start) {
			a.cut(start, now)
		}
	case endAnswered:
		a.okSince++
		if sample := max(now.Sub(start), minRTT); a.rtt == 0 {
			a.rtt = sample
		} else {
			a.rtt = a.rtt*4/5 + sample/5
		}
		a.increase(now)
	}
	a.wake()
}

// succeed notes that a request of the client to operation op succeeded,
// now.
func (a *Adaptive) succeed(op string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.succeeded == nil {
		a.succeeded = make(map[string]time.Time)
	}
	a.succeeded[op] = a.now()
}

// served says whether the quota of operation op serves a call to it that
// started at since: a request of the client to op succeeded after since,
// and within the last servedFor, or the last servedGaps gaps of its pacing
// if longer. (AWS meters its quotas by action: EC2's writes may be
// throttled while its reads go through.) A throttle of the call then lost
// a race for the quota's tokens, with the client's other requests or while
// the limit learned the quota, and is worth another attempt; a quota that
// lets nothing through, or nothing since the call started, is not waited
// out.
func (a *Adaptive) served(op string, since time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.succeeded[op]
	return t.After(since) && a.now().Sub(t) <= max(servedFor, servedGaps*a.gap())
}

// How recently a quota must have answered for served.
const (
	servedFor  = 5 * time.Second
	servedGaps = 2
)

// giveBack returns the place of a request that was never sent, started
// at start (or never started, if zero); a probe not sent is no longer out.
func (a *Adaptive) giveBack(start time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inflight--
	if !start.IsZero() && start.Equal(a.probe.at) {
		a.probe.at = time.Time{}
	}
	if a.paced != nil && !start.IsZero() {
		a.paced.end(start, endNotSent)
	}
	a.wake()
}

// increase raises the limit on a success, if the client used it (see
// used). A limit the callers leave unused says nothing of the quota, and
// one that grew while they did would let their next burst out unpaced.
//
// Without pacing, the limit grows by Increase/limit: Increase over a round
// trip of successes. With pacing, the rate grows by where it stands to
// the quota last measured (see cut), by a factor a round trip (n
// successes, n the requests per round trip, at least 1): from rateCut of
// it to the quota, by rateClimb; past it, by what pastQuota gives, from
// rateProbe, hunting just around it (a bucket of one token banks nothing
// of what a limit below it leaves unused, and every step past it is a
// throttle), to Increase and more as the round trips pass with no
// throttle (the quota may have grown, or been measured low; a bucket that
// refilled while the client was below its rate lets it through for a
// while: a doubling at once there would drain it and overshoot). Below
// one request per round trip, whose successes are each far apart, a rate
// past the quota climbs by rateProbe, and a quarter past it doubles, as it
// does below the quota or before any is measured, as a TCP slow start
// does: after a storm of throttles, a client at one request in ten
// seconds is back in ten successes.
func (a *Adaptive) increase(now time.Time) {
	if a.opts.DisablePacing || a.rate == 0 {
		if (a.opts.DisablePacing || !math.IsInf(a.limit, 1)) && a.used(now) {
			a.limit = min(a.ceiling(), a.limit+a.opts.Increase/a.limit)
		}
		return
	}
	if a.edge || !a.used(now) {
		return
	}
	n := a.perRTT() // successes a round trip
	f := 2.0        // the factor a round trip
	// The round trips past the quota are those the limit was used in: a
	// client idle for a while, or below its limit, has shown nothing of
	// the quota meanwhile (and the bucket may have banked tokens). A spell
	// of more than two round trips since the last success that used it
	// counts as one.
	if trip := a.trip(); !a.passed.IsZero() && now.Sub(a.usedAt) > 2*trip {
		a.passed = a.passed.Add(now.Sub(a.usedAt) - trip)
	}
	a.usedAt = now
	if q := a.quota; q > 0 && a.rate >= q && a.passed.IsZero() {
		a.passed = now
	}
	switch q := a.quota; {
	case q > 0 && a.rate >= q && n >= 1:
		f = 1 + a.pastQuota(now)
	case q > 0 && a.rate >= q && a.rate < q/rateCut:
		f = 1 + rateProbe
	case q > 0 && a.rate >= rateCut*q && a.rate < q:
		f = 1 + rateClimb
	}
	// A factor a round trip, or at least hunting's a second.
	a.setRate(a.rate * max(math.Pow(f, 1/max(1, n)), math.Pow(1+huntPerSecond, a.gap().Seconds())))
}

// used says whether the callers use the limit, as a success at now
// sees it: the requests in flight (those waiting for their paced start
// among them, and the one answered) fill it, or fill half of it while
// starts wait (one waited for its pace, or for room, in the last two
// gaps); unpaced, fill half of it. (TCP's window counts as used from half
// full too, RFC 7661, over a few round trips rather than at each answer.)
//
// A start held back by a crowd of a moment, answers that came in
// together, says little of a limit the requests in flight fill a fraction
// of: a fan-out whose own Limit binds below the limit holds its starts
// back so, and counted as using it, let the limit climb without end (to
// 305-330 requests a round trip with 64 in flight within six seconds at
// 20ms; TestAdaptiveClimbsOnlyWhileUsed). Requiring the limit filled
// outright stopped the climb a request or so above the fan-out's Limit,
// where the pace spaced out the starts that came in crowds: such runs
// took 3-17% longer, and other tests of the law failed.
func (a *Adaptive) used(now time.Time) bool {
	filled := float64(a.inflight+1) / a.perRTT()
	if a.rate == 0 { // a limit on requests in flight alone
		return filled >= usedShare
	}
	return filled >= 1 || filled >= usedShare && now.Sub(a.delayed) <= 2*a.gap()
}

// usedShare is the least share of the limit the requests in flight fill
// while the limit is used (see used).
const usedShare = 0.5

// usedGap is the shortest gap the requests in flight use: paced at it,
// they and the one answered fill usedShare of the limit (see used).
func (a *Adaptive) usedGap() time.Duration {
	return time.Duration(float64(a.rtt) * usedShare / float64(a.inflight+1))
}

// pastQuota is the step a round trip of a rate past the quota measured:
// rateProbe for the first rushAfter round trips (see trip) the limit was
// used in since the rate first passed the quota after the last cut, where a
// quota measured right is met again; then doubled every two round trips, up
// to rateRush; and a quarter past the quota, at least Increase. A spell of
// more than two round trips with no success while the limit was used counts
// as one (see increase): a client idle past the quota, back to a bucket that
// banked tokens meanwhile, would otherwise climb by rateRush from its first
// round trip back (TestAdaptiveAfterIdle). A quota measured low, say by a
// lone throttle of a request the machine held on its way, which halves the
// measure, or one that grew, is found in seconds: a client at 200ms takes
// 1.5-3.4 s to be back at nine tenths of a quota grown from 100 to 200 a
// second, 2.7-3.1 s from 50 to 200 and 3.3-4.7 s from 20 to 100, where at 1% a round
// trip up to a quarter past the quota and Increase after it took 6-6.4 s and
// 7.3-9.7 s (TestAdaptiveQuotaGrows). Doubling from the first round trip, it
// throttled 15-45% more requests hunting at a steady quota
// (TestAdaptiveHuntsAtAQuota). Below one request per round trip, past the
// quota it climbs by rateProbe a success, and doubles a quarter past it (see
// increase).
func (a *Adaptive) pastQuota(now time.Time) float64 {
	trips := float64(now.Sub(a.passed)) / float64(a.trip())
	step := min(rateRush, rateProbe*math.Pow(2, max(0, trips-rushAfter)/2))
	if a.rate >= a.quota/rateCut {
		step = max(step, a.opts.Increase)
	}
	return step
}

// trip is a round trip as pastQuota counts them: at least four gaps, for
// a round trip shorter than that says little of a bucket.
func (a *Adaptive) trip() time.Duration { return max(a.rtt, 4*a.gap()) }

// The law of a paced limit near its quota (see Adaptive): cut to rateCut
// of the quota measured, climb by rateClimb a round trip, about five round
// trips back to the quota, and past it by rateProbe at first (see
// pastQuota). minRTT is the least round trip the limit
// counts: a clock too coarse to see one must not make a rate of it
// infinite.
const (
	rateCut   = 0.8
	rateClimb = 0.05
	rateProbe = 0.01
	// rateRush is the most pastQuota climbs a round trip (unless Increase
	// is more): a bucket that banked tokens while the client was idle or
	// below it lets a climb through until they run out, and at a doubling
	// a round trip the client would be far past its quota by then, and
	// every request of the round trip after throttled. A quarter finds a
	// quota grown two- to fourfold as soon, and fivefold 0.3 s later, in
	// the simulation (TestAdaptiveQuotaGrows).
	rateRush  = 0.25
	rushAfter = 4 // round trips past the quota at rateProbe before the step grows
	// huntPerSecond is the least a paced limit climbs a second: below one
	// request per round trip, a climb by the round trip is one by success,
	// and at one success in ten seconds, 1% a success is 0.1% a second.
	huntPerSecond = 0.05
	minRTT        = time.Microsecond
)

// cut lowers the limit on a throttle of a request started at start, since
// the last cut.
//
// The first cut follows requests sent at once, which say nothing of a
// rate: the limit falls by Decrease from what was in flight (a limit
// above what the callers used says nothing of the quota) per round trip,
// the round trip counted as at least ThrottleBackoff, and to no more
// than what was delivered by the throttle, plus one request, over the time
// from the first start to the throttled one's, when the throttle came
// within a few round trips of the first request (the first burst): a
// client that ran for an hour below its
// quota delivered what it was asked for, not what it could, and requests
// that all started at once say nothing of a rate at all, however few were
// admitted. The throttled requests come back over a ThrottleBackoff, not
// a round trip; and at round trips of a millisecond, half a request per
// round trip is hundreds a second, a descent of many throttles to a quota
// of a few a second, each a retry that a caller sending one request at a
// time spends of its attempts. From below, slow start finds a higher
// quota in a few successes.
//
// Every later cut follows paced requests, and measures the quota (see
// measure); the limit falls to rateCut of it, or, for a client whose
// first burst met a small bucket (see smallBucket), whose requests read
// as a bucket of one token's, to the edge those requests show (see
// edge.go); a throttle at the edge whose requests do not read so cuts the
// rate to rateCut of the quota it measures, but keeps the edge's as the
// quota the climb aims at, if higher. Without pacing there
// is nothing to measure, and each cut is by Decrease. The next start waits
// for the new gap: from now, or at the edge, from the last start not
// throttled.
func (a *Adaptive) cut(start, now time.Time) {
	var refill time.Duration // at the edge, the gap it shows (see cutAtEdge)
	var runOut time.Time     // at the edge, when the throttles since the last admitted are waited out
	switch {
	case a.rate == 0: // the first cut, or any without pacing
		if a.firstCut.IsZero() {
			a.firstCut = now
		}
		l := min(a.limit, float64(a.inflight+1)) * a.opts.Decrease
		delivered := math.Inf(1) // per second
		if spread := start.Sub(a.epoch); a.lastCut.IsZero() && spread > 0 && now.Sub(a.epoch) <= 4*a.rtt {
			delivered = float64(a.okSince+1) / spread.Seconds()
		}
		if a.opts.DisablePacing {
			l = max(min(l, delivered*a.rtt.Seconds()), minRate*a.rtt.Seconds())
			a.limit = min(a.ceiling(), max(1, l))
		} else {
			a.limit = 1
			a.setRate(min(l/max(a.rtt, a.opts.ThrottleBackoff).Seconds(), delivered))
		}
	default:
		var e edgeReading
		edge := false
		if a.smallBucket() {
			e, edge = a.log().gaps()
		}
		lo, hi := e.lo, e.hi
		switch {
		case edge:
			refill = a.cutAtEdge(lo, hi)
			// The next start also waits out the throttles since the last
			// request admitted (a request held late takes its token late),
			// by 1% more, but by no more than a refill past the last of
			// them: one admitted long ago, before the client sat idle,
			// says nothing of when the bucket refills.
			if e.run > 0 {
				runOut = a.paced.base.Add(e.at + min(time.Duration(float64(e.run)*(1+edgeMargin)), e.run+refill))
			}
		case a.edge:
			// A throttle after an edge that is not one itself shows that
			// the edge was a token the bucket had banked, not its rate
			// (or that a request held on its way crossed the gaps): the
			// quota may be below it, but likely not as far as a measure
			// over the few requests since says. The rate follows the
			// measure (the quota may have fallen far), and climbs back
			// towards the edge: by slow start to four fifths of it, then
			// by rateClimb. (From four fifths of it, by rateProbe, the
			// climb took seconds at 200ms.) The next throttle measures
			// the quota again.
			m := a.measure(start, now)
			a.quota = max(m, a.quota)
			a.setRate(rateCut * m)
		default:
			a.quota = a.measure(start, now)
			a.setRate(rateCut * a.quota)
		}
		a.edge = edge
	}
	a.lastCut, a.epoch, a.okSince, a.passed = now, now, 0, time.Time{}
	a.spaced++
	a.next = now.Add(a.gap())
	if !a.edge {
		return
	}
	// A bucket of a token refills from the last request it admitted (one
	// throttled or never sent took nothing; one not answered yet, or cut
	// short, may have taken a token), at the gap the edge shows, even where the rate
	// cannot follow it (minRate): the next start, at the old gap, would be
	// throttled again.
	if last, ok := a.paced.newest(pacedReq.tookNone); ok {
		a.next, a.lastStart = now, time.Time{}
		if next := last.Add(refill); next.After(now) {
			a.next, a.lastStart = next, last
		}
		if runOut.After(a.next) {
			a.next, a.lastStart = runOut, time.Time{}
		}
	}
}

// smallBucket says whether the client's first burst met a bucket of a
// token or two: of the requests it started before its first cut (at
// once, as a fan-out does), four or more were throttled, and two or fewer
// admitted that started no later than the first of those. A bucket admits what it
// banked first; what it admits after its first throttle is its refill,
// which a burst spread over a few milliseconds meets at any rate. A
// bucket of one token banks nothing: every moment paced below its rate is
// lost for good, and a request paced a little above it is throttled at
// once. (A bucket of two, or a bigger one another client left empty,
// looks the same to the first burst: see cut.)
func (a *Adaptive) smallBucket() bool {
	if a.burstThrottled < 4 {
		return false
	}
	banked := 0
	for _, t := range a.burstAdmitted {
		if !t.IsZero() && !t.After(a.burstFirstOut) {
			banked++
		}
	}
	return banked <= 2
}

// burstAdmit notes a request of the first burst admitted: it keeps the
// earliest starts, as many as smallBucket needs.
func (a *Adaptive) burstAdmit(start time.Time) {
	for i, t := range a.burstAdmitted {
		if t.IsZero() || start.Before(t) {
			copy(a.burstAdmitted[i+1:], a.burstAdmitted[i:])
			a.burstAdmitted[i] = start
			return
		}
	}
}

// measure is the quota as the throttle of a paced request started at ts
// tells it: the least of three measures.
//
//   - The rate ts was paced at, times the share of the requests started
//     over the measureGaps gaps before it, and since the last cut, that
//     the quota admitted, counting one more admitted than seen, so that a
//     lone throttle halves it. The share is of the client where it is now,
//     above its quota, and not of the climb that led there: seconds spent
//     below the quota, averaged in, would be taken for it.
//   - The bound the starts before it set (see pacedLog.bound). A client far
//     above its quota learns so in one throttle.
//   - What was delivered since the last cut, plus one request, when two
//     round trips have passed since, and of the requests started since,
//     two or more were answered and at most half admitted: a client whose calls are
//     backing off sends too few requests for their share to say much.
//     (Taken always, it measured a client below its quota, not the quota:
//     a limit that climbed for seconds towards it, or one cut a round
//     trip ago whose requests had not come back yet.)
//
// (The spacing of the successes' starts was a fourth measure, and a bad
// one: one slow answer widened it a hundredfold.)
func (a *Adaptive) measure(ts, now time.Time) float64 {
	l := a.log()
	t := l.since(ts)
	rate := a.rate
	l.all(func(_ int, r pacedReq) bool {
		if r.at > t {
			return true
		}
		rate = float64(r.rate)
		return false
	})
	from := max(t-time.Duration(measureGaps*float64(time.Second)/rate), l.since(a.lastCut))
	done, ok := l.answered(from, t)
	quota := min(rate*float64(ok+1)/float64(done+1), l.bound(t))
	if elapsed := now.Sub(a.lastCut); elapsed >= 2*a.rtt {
		if done, ok := l.answered(l.since(a.lastCut), l.since(now)); done >= 2 && 2*ok <= done {
			quota = min(quota, float64(a.okSince+1)/elapsed.Seconds())
		}
	}
	return quota
}

// measureGaps is how many gaps between starts, at the rate of the
// throttled request, the quota is measured over.
const measureGaps = 8

// newest is the start of the newest request held that skip does not
// pass over.
func (l *pacedLog) newest(skip func(pacedReq) bool) (time.Time, bool) {
	var last time.Time
	found := false
	l.all(func(_ int, r pacedReq) bool {
		if skip(r) {
			return true
		}
		last, found = l.base.Add(r.at), true
		return false
	})
	return last, found
}

// answered counts the requests started after from and by to that were
// answered, and of them, those the quota admitted.
func (l *pacedLog) answered(from, to time.Duration) (done, ok int) {
	l.all(func(_ int, r pacedReq) bool {
		if r.at <= from {
			return false
		}
		if r.at <= to && r.answered() {
			done++
			if r.admitted() {
				ok++
			}
		}
		return true
	})
	return done, ok
}

// bound is the most the quota can be, as the throttle of the request
// started at t tells it: one over the time since the last start before it
// that was admitted, or not answered yet, if a start between them was
// throttled too (had a token come in since, they would have had it). With
// no throttle between, nothing: a client that sends little says little of
// its quota, and one shared with others throttles it for their requests
// too. When every start held was throttled, one over the time since
// the oldest.
func (l *pacedLog) bound(t time.Duration) float64 {
	between, since := 0, time.Duration(0)
	l.all(func(_ int, r pacedReq) bool {
		if r.at >= t || r.notSent() {
			return true
		}
		since = t - r.at
		if r.throttled() {
			between++
			return true
		}
		return false
	})
	if between == 0 || since <= 0 {
		return math.Inf(1)
	}
	return 1 / since.Seconds()
}

// perRTT is the limit in requests per round trip: the requests in flight
// it allows, or, paced, its rate times the round trip (below 1 when it
// spaces starts by more than the round trip).
func (a *Adaptive) perRTT() float64 {
	if a.rate > 0 {
		return a.rate * a.rtt.Seconds()
	}
	return a.limit
}

// setRate sets a paced limit's rate: no slower than minRate, and no
// faster than Max requests per round trip, when set.
func (a *Adaptive) setRate(r float64) {
	if c := a.ceiling(); !math.IsInf(c, 1) {
		r = min(r, c/a.rtt.Seconds())
	}
	if !(r >= minRate) { // NaN included
		r = minRate
	}
	a.rate = r
}

// ceiling is Max, or +Inf for none.
func (a *Adaptive) ceiling() float64 {
	if a.opts.Max == 0 {
		return math.Inf(1)
	}
	return float64(a.opts.Max)
}

// room is how many requests may be in flight: a paced rate's requests
// per round trip, rounded up (at least minRoom; twice as many for a small
// bucket, and at its edge one more for a probe due or out; no more than
// Max); an unpaced limit's whole part.
func (a *Adaptive) room() int {
	switch {
	case a.rate > 0:
		n := a.perRTT()
		if a.smallBucket() {
			// Twice: after a cut, the requests of the rate before it
			// would hold the next starts back until answered, and a
			// bucket of a token banks none of the time.
			n *= 2
		}
		room := max(minRoom, requests(math.Ceil(n)))
		if a.edge {
			if _, due := a.probeStart(a.now()); due || !a.probe.at.IsZero() {
				room++ // the probe's: the start after it keeps its place
			}
		}
		return int(min(float64(room), a.ceiling()))
	case math.IsInf(a.limit, 1):
		return math.MaxInt
	}
	return requests(a.limit)
}

// requests is n requests as an int, at most maxRequests: a count no
// caller can tell from no limit at all (an Increase of 1e300 grows the
// limit past what an int holds).
func requests(n float64) int {
	if !(n < maxRequests) {
		return maxRequests
	}
	return int(n)
}

const maxRequests = 1 << 30 // an int of 32 bits holds it

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
//
// A pool's clients do one thing more. A call's attempts end at r's
// MaxAttempts, as the SDK's do, unless the last was throttled while the
// quota served the call: another request of the client to the same
// operation (AWS meters its quotas by action) succeeded since the call's
// first attempt started, and within the last 5 seconds (or two gaps of the
// client's pacing, if longer). The attempt then lost a race for the
// quota's tokens, most often to the limit still learning the quota, and
// the call goes on, to at most twice r's MaxAttempts. Any other error ends
// it from r's MaxAttempts on, with the SDK's own error for spent attempts,
// and so does a quota that let nothing through since the call started.
// (Without it, on a slow quota with a burst of tokens, the throttles of
// the limit's climb past the quota landed on calls the first burst's
// throttles had cost three attempts, and failed them.)
//
// A count of attempts set in the config (max_attempts), on the client or
// on the call (RetryMaxAttempts) is kept as it is, for every error; but a
// call's own count of exactly twice r's MaxAttempts reads as the pool's.
// A retryer wrapped around the pool's keeps the rule, with a RetryDelay of
// its own too, if it passes GetRetryToken on and returns its error as it
// is. The rule lives in API options the pool adds to its clients'
// APIOptions, and puts back after ClientOptions that replace APIOptions;
// a call's own options that do take it away, and the pool's recovery of
// panics under the retry middleware with it: such a call makes up to
// twice r's MaxAttempts, whatever the error. AdaptiveRetryer alone keeps
// r's MaxAttempts for every error.
func AdaptiveRetryer(r aws.Retryer, a *Adaptive) aws.RetryerV2 {
	return &adaptiveRetryer{RetryerV2: asV2(r), a: a}
}

type adaptiveRetryer struct {
	aws.RetryerV2
	a   *Adaptive
	tel *clientTel // nil: no telemetry
	// extend: a throttle while the client's quota serves it does not end a
	// call at the wrapped retryer's MaxAttempts (see AdaptiveRetryer). A
	// pool's clients, whose calls are guarded, have it.
	extend bool
}

// GetAttemptToken takes a place in the Adaptive for one attempt. The
// place goes back on every path: when the attempt ends, when the wrapped
// retryer fails or panics, when looking into the attempt's error panics,
// and, in a client whose calls are guarded (guardCalls), when anything
// under the retry middleware panics. Each panic goes on up to the caller.
func (r *adaptiveRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	g, _ := ctx.Value(callGuardKey{}).(*callGuard)
	asked := r.a.now()
	start, held, err := r.a.acquire(ctx)
	if err != nil {
		return nil, err
	}
	var waited time.Duration // only a hold is worth telling
	if held {
		waited = start.Sub(asked)
	}
	s := &slot{a: r.a, start: start}
	g.hold(s)
	sent := false
	defer func() {
		if !sent {
			s.giveBack()
		}
	}()
	release, err := r.RetryerV2.GetAttemptToken(ctx)
	if err != nil {
		return nil, err
	}
	sent = true
	return func(err error) error {
		if err == nil {
			r.a.succeed(awsmiddle.GetOperationName(ctx))
		}
		o := s.endWith(err)
		recordAttempt(ctx, err, o)
		r.tel.attempt(ctx, o, waited, r.a)
		return release(err)
	}, nil
}

// GetRetryToken ends a guarded call whose attempt was its last (see
// AdaptiveRetryer): it fails with errSpent, which the SDK joins to the
// attempt's error and returns at once, and which guardCalls turns into the
// SDK's own error for spent attempts. Otherwise it notes, for the item's
// last attempt error, that the SDK retries it: the call goes on, and
// should it end on its context, that error is why it was still running.
func (r *adaptiveRetryer) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	if g, ok := ctx.Value(callGuardKey{}).(*callGuard); ok && r.extend {
		if n, last := r.last(g, awsmiddle.GetOperationName(ctx), opErr); last {
			g.end(&retry.MaxAttemptsError{Attempt: n, Err: opErr})
			return nil, errSpent
		}
	}
	release, err := r.RetryerV2.GetRetryToken(ctx, opErr)
	if err == nil {
		if st, ok := ctx.Value(statsKey{}).(*itemStats); ok {
			st.retrying()
		}
	}
	return release, err
}

// errSpent is GetRetryToken's error for a call whose attempts are spent.
var errSpent = errors.New("fanout: the call's attempts are spent")

// slot is one attempt's place in an Adaptive; it goes back once, however
// many paths try.
type slot struct {
	a     *Adaptive
	start time.Time
	done  atomic.Bool
}

// endWith ends the attempt as err says it ended. Looking into err calls its
// methods, which may panic: the place goes back all the same, counted as
// saying nothing of the service, and the panic goes on.
func (s *slot) endWith(err error) attemptEnd {
	o := endCutShort
	defer func() { s.end(o) }()
	o = attemptEndOf(err)
	return o
}

func (s *slot) end(o attemptEnd) {
	if s.done.CompareAndSwap(false, true) {
		s.a.end(s.start, o)
	}
}

func (s *slot) giveBack() {
	if s.done.CompareAndSwap(false, true) {
		s.a.giveBack(s.start)
	}
}

func attemptEndOf(err error) attemptEnd {
	switch {
	case err == nil:
		return endAnswered
	case isThrottle(err):
		return endThrottled
	case isContextErr(err):
		return endCutShort
	}
	return endAnswered
}

// callGuardKey marks the context of a guarded call.
type callGuardKey struct{}

// callGuard holds the places a call's attempts took, to give back those
// still held when the call ends: only a panic under the retry middleware,
// which skips the retryer's release, leaves one. It counts the call's
// attempts, keeps the most the SDK allows the call (the request's
// Amz-Sdk-Request header says it; 0 if none has), and holds the error that
// ended the call once its attempts are spent. A nil callGuard, for a call
// that is not guarded, holds nothing.
type callGuard struct {
	mu    sync.Mutex
	slots []*slot
	max   int
	own   bool // the client has a RetryMaxAttempts of its own (ownAttempts)
	ended error
}

func (g *callGuard) hold(s *slot) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.slots = append(g.slots, s)
}

// attempts returns how many attempts the call made, when the first
// started, the most the SDK allows it, and whether its client has a count
// of its own.
func (g *callGuard) attempts() (n int, first time.Time, max int, own bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.slots) > 0 {
		first = g.slots[0].start
	}
	return len(g.slots), first, g.max, g.own
}

func (g *callGuard) setMax(max int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.max = max
}

func (g *callGuard) setOwn() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.own = true
}

func (g *callGuard) end(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ended = err
}

func (g *callGuard) spent() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ended
}

func (g *callGuard) giveBack() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range g.slots {
		s.end(endCutShort)
	}
}

// guardCalls is an API option (aws.Config.APIOptions) that guards every
// call of a client with an adaptive retryer: a panic under the retry
// middleware (in a middleware of the caller's, the HTTP client, a
// deserializer) still gives back the place its attempt took, and goes on
// to the caller. It reads the most attempts the SDK allows the call from
// each attempt's request, and returns the SDK's own error for spent
// attempts for a call the retryer ended (see GetRetryToken).
func guardCalls(stack *middleware.Stack) error {
	err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("fanout.AdaptiveGuard",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			g := new(callGuard)
			defer g.giveBack() // no recover: the panic goes on, with its stack
			out, md, err := next.HandleInitialize(context.WithValue(ctx, callGuardKey{}, g), in)
			if ended := g.spent(); ended != nil && errors.Is(err, errSpent) {
				err = ended
			}
			return out, md, err
		}), middleware.Before)
	if err != nil {
		return err
	}
	if _, ok := stack.Finalize.Get("Retry"); !ok {
		return nil
	}
	// Right after the retry middleware, which sets the header: a
	// middleware of the caller's may take it off before the request goes.
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("fanout.AttemptsAllowed",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if g, ok := ctx.Value(callGuardKey{}).(*callGuard); ok {
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					g.setMax(maxAttemptsOf(req.Header.Get("Amz-Sdk-Request")))
				}
			}
			return next.HandleFinalize(ctx, in)
		}), "Retry", middleware.After)
}

// ownAttempts is an API option for a client with a RetryMaxAttempts of its
// own: its calls keep that count for every error, though it be twice the
// pool retryer's.
func ownAttempts(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("fanout.OwnAttempts",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if g, ok := ctx.Value(callGuardKey{}).(*callGuard); ok {
				g.setOwn()
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// maxAttemptsOf reads the most attempts the SDK allows a call from its
// Amz-Sdk-Request header ("attempt=2; max=5"); 0 if it says none.
func maxAttemptsOf(h string) int {
	for part := range strings.SplitSeq(h, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "max="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// MaxAttempts is the wrapped retryer's, or, extended, twice it: the
// attempts past its own are for throttles while the client's quota serves
// it (see AdaptiveRetryer).
func (r *adaptiveRetryer) MaxAttempts() int {
	m := r.RetryerV2.MaxAttempts()
	if !r.extend || m > math.MaxInt/2 {
		return m
	}
	return 2 * m
}

// RetryDelay shortens the wait before retrying a throttled attempt to at
// most ThrottleBackoff x 2^min(attempt-1, 10), jittered: the adaptive
// limit already slows the client down, and a retry sleeping for seconds
// only stretches the fan-out. A back-off that would overflow a Duration is
// the longest one.
func (r *adaptiveRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.RetryerV2.RetryDelay(attempt, err)
	if derr != nil || !isThrottle(err) {
		return d, derr
	}
	ceiling := r.a.opts.ThrottleBackoff
	if n := min(max(attempt-1, 0), 10); ceiling <= (math.MaxInt64-1)>>n {
		ceiling <<= n
	} else {
		ceiling = math.MaxInt64 - 1 // a back-off of centuries, not one that overflows
	}
	return min(d, time.Duration(rand.Int64N(int64(ceiling)+1))), nil
}

// last says whether the last attempt of the call g guards, failed with
// err, ends it, and how many attempts the call made: from the wrapped
// retryer's MaxAttempts on, any error but a throttle while the client's
// quota serves it does. A call the SDK allows other than the extended
// MaxAttempts (a RetryMaxAttempts of the client's or the call's own) keeps
// that, for every error.
func (r *adaptiveRetryer) last(g *callGuard, op string, err error) (int, bool) {
	n, first, allowed, own := g.attempts()
	m := r.RetryerV2.MaxAttempts()
	if m <= 0 || n < m || own || allowed != 0 && allowed != r.MaxAttempts() {
		return n, false
	}
	return n, !(isThrottle(err) && r.a.served(op, first))
}

// asV2 returns r as an aws.RetryerV2, lifting one that lacks
// GetAttemptToken.
func asV2(r aws.Retryer) aws.RetryerV2 {
	if v2, ok := r.(aws.RetryerV2); ok {
		return v2
	}
	return retryerV2{r}
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
	// last is the last attempt's error, if it failed; retried, that the
	// SDK then went on to retry it, so that its call was still running.
	last    error
	retried bool
}

func recordAttempt(ctx context.Context, err error, o attemptEnd) {
	st, ok := ctx.Value(statsKey{}).(*itemStats)
	if !ok {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if o == endThrottled {
		st.throttles++
	}
	switch {
	case err == nil: // the call succeeded: its earlier errors explain nothing that follows
		st.last, st.retried = nil, false
	case o != endCutShort: // an attempt cut short says nothing new
		st.last, st.retried = err, false
	}
}

func (st *itemStats) retrying() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.retried = st.last != nil
}

func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// withLastAttempt returns err with the last attempt's error added when
// the operation ended on its context while the SDK was still retrying
// that error (an ItemTimeout during a retry's back-off): "context deadline
// exceeded" alone would hide why the call was still running. An error
// that ended its call (the SDK gave up on it, or the call succeeded after
// it) is not added: the item may have tolerated it and gone on.
func (st *itemStats) withLastAttempt(err error) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.retried && isContextErr(err) && !errors.Is(err, st.last) {
		err = fmt.Errorf("%w (last attempt: %w)", err, st.last)
	}
	return err
}

func (st *itemStats) throttleCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.throttles
}
