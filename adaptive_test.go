package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newAdaptive returns an Adaptive on a fake clock.
func newAdaptive(t *testing.T, clock *fakeClock, optFn func(*fanout.AdaptiveOptions)) *fanout.Adaptive {
	t.Helper()
	a, err := fanout.NewAdaptive(optFn)
	if err != nil {
		t.Fatal(err)
	}
	if clock != nil {
		fanout.SetAdaptiveClock(a, clock.now)
	}
	return a
}

// pacedRequests returns, for a on clock, a request that starts when
// pacing lets it, and one that then takes rtt and ends, throttled or not.
func pacedRequests(t *testing.T, a *fanout.Adaptive, clock *fakeClock, rtt time.Duration) (start func() time.Time, request func(throttled bool)) {
	start = func() time.Time {
		t.Helper()
		if next := fanout.AdaptiveNextStart(a); next.After(clock.t) {
			clock.t = next
		}
		s, err := a.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	request = func(throttled bool) {
		t.Helper()
		s := start()
		clock.advance(rtt)
		a.Release(s, throttled)
	}
	return start, request
}

func TestAdaptiveArithmetic(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) {
		o.Max, o.Decrease, o.Increase, o.DisablePacing = 16, 0.5, 1, true
	})
	ctx := context.Background()
	acquire := func() time.Time {
		t.Helper()
		start, err := a.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clock.advance(time.Millisecond)
		return start
	}
	want := func(limit float64, inflight int) {
		t.Helper()
		if s := a.Stats(); math.Abs(s.Limit-limit) > 1e-9 || s.InFlight != inflight {
			t.Fatalf("limit %v in flight %d; want %v and %d", s.Limit, s.InFlight, limit, inflight)
		}
	}
	want(16, 0) // starts at Max
	// A success long before the first throttle: what it delivered says
	// nothing of the quota (TestAdaptiveFirstBurst).
	a.Release(acquire(), false)
	clock.advance(time.Second)

	// Four requests in flight; the first throttle halves what was in
	// flight, and the throttles of requests sent before that cut do not
	// cut again.
	starts := []time.Time{acquire(), acquire(), acquire(), acquire()}
	a.Release(starts[0], true)
	want(2, 3) // min(16, 4) x 0.5
	a.Release(starts[1], true)
	a.Release(starts[2], true)
	want(2, 1)
	// A request sent after the cut that is throttled cuts again.
	s := acquire()
	a.Release(s, true)
	want(1, 1)
	a.Release(starts[3], false) // success: +Increase/limit
	want(2, 0)

	// Never below 1.
	for range 10 {
		a.Release(acquire(), true)
	}
	want(1, 0)
	// Each success adds Increase/limit: about Increase per round, while
	// the requests in flight, the one answered with them, fill half the
	// limit or more.
	a.Release(acquire(), false)
	want(2, 0)
	held := acquire()
	a.Release(acquire(), false)
	a.Release(acquire(), false)
	want(2.9, 1)           // 2 + 1/2 + 1/2.5
	a.Release(held, false) // one of 2.9: not used
	want(2.9, 0)
	// Never above Max.
	var out []time.Time
	for range 1000 {
		for len(out) < int(a.Stats().Limit)-1 {
			out = append(out, acquire())
		}
		a.Release(acquire(), false)
	}
	want(16, 15)
	for _, s := range out {
		a.Release(s, false)
	}
	if st := a.Stats(); st.Throttles != 3+1+10 || st.Requests != 1+4+1+10+4+1000+15 {
		t.Errorf("counts %+v", st)
	}
}

// TestAdaptiveFirstBurst: a client throttled within a few round trips of
// its first request is cut to what it delivered over the starts before
// the throttled one, plus one, rather than halved from its first burst;
// one that ran for long before, or whose requests all started at once,
// is halved.
func TestAdaptiveFirstBurst(t *testing.T) {
	t.Parallel()
	const rtt = 10 * time.Millisecond
	for name, tc := range map[string]struct {
		before  bool          // a request a minute before the burst
		spread  time.Duration // between the burst's starts
		backoff time.Duration // ThrottleBackoff
		want    float64       // the limit after the burst's first throttle
	}{
		// (3 successes + 1) over the 39 spreads before the last start, per round trip.
		"a fresh client": {false, 250 * time.Microsecond, time.Millisecond, 4 / (39 * 250e-6) * rtt.Seconds()},
		// Requests sent at once say nothing of a rate: min(64, 36 in flight + 1) x Decrease.
		"a fresh client's burst":   {false, 0, time.Millisecond, 37 * 0.5},
		"a client that ran before": {true, 250 * time.Microsecond, time.Millisecond, 37 * 0.5},
		// The round trip counted as ThrottleBackoff, 10 times the real one.
		"a back-off above the round trip": {true, 0, 100 * time.Millisecond, 37 * 0.5 / 10},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{t: time.Unix(1000, 0)}
			a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.Max, o.ThrottleBackoff = 64, tc.backoff })
			ctx := context.Background()
			if tc.before {
				s, _ := a.Acquire(ctx)
				clock.advance(rtt)
				a.Release(s, false)
				clock.advance(time.Minute)
			}
			var starts []time.Time
			for range 40 {
				s, _ := a.Acquire(ctx)
				starts = append(starts, s)
				clock.advance(tc.spread)
			}
			// The first three answered a round trip after they started;
			// then the last one is throttled.
			for _, s := range starts[:3] {
				clock.t = s.Add(rtt)
				a.Release(s, false)
			}
			a.Release(starts[39], true)
			if l := a.Stats().Limit; math.Abs(l-tc.want) > 1e-9 {
				t.Errorf("limit %v after the first throttle; want %v", l, tc.want)
			}
			for _, s := range starts[3:39] {
				a.Release(s, true)
			}
		})
	}
}

func TestAdaptiveBlocksAtTheLimit(t *testing.T) {
	t.Parallel()
	a := newAdaptive(t, nil, func(o *fanout.AdaptiveOptions) { o.Max = 2 })
	ctx := context.Background()
	s1, _ := a.Acquire(ctx)
	s2, _ := a.Acquire(ctx)
	got := make(chan time.Time)
	go func() {
		s, err := a.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- s
	}()
	select {
	case <-got:
		t.Fatal("a third request got in at limit 2")
	case <-time.After(20 * time.Millisecond): // nothing should happen: give it a chance to
	}
	a.Release(s1, false)
	s3 := <-got
	a.Release(s2, false)
	a.Release(s3, false)

	// A waiter whose context ends leaves without taking a place.
	cctx, cancel := context.WithCancel(ctx)
	a1, _ := a.Acquire(ctx)
	a2, _ := a.Acquire(ctx)
	errc := make(chan error)
	go func() { _, err := a.Acquire(cctx); errc <- err }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err %v", err)
	}
	a.Release(a1, false)
	a.Release(a2, false)
	if st := a.Stats(); st.InFlight != 0 {
		t.Errorf("in flight %d after every request ended", st.InFlight)
	}
}

func TestAdaptiveBucket(t *testing.T) {
	t.Parallel()
	a := newAdaptive(t, nil, func(o *fanout.AdaptiveOptions) { o.Rate, o.Burst = 1, 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	for range 2 {
		s, err := a.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a.Release(s, false)
	}
	if _, err := a.Acquire(ctx); err == nil {
		t.Error("a third request within the burst of 2 at 1/s got through within 100ms")
	}
}

// TestAdaptivePacing: once the client has been throttled, request starts
// are spaced by round trip / limit, so a limit of 2 is two requests per
// round trip, the first of them one gap after the throttle; before any
// throttle, and with DisablePacing, nothing waits.
func TestAdaptivePacing(t *testing.T) {
	t.Parallel()
	for _, disable := range []bool{false, true} {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.Max, o.DisablePacing = 16, disable })
		ctx := context.Background()
		s, _ := a.Acquire(ctx)
		clock.advance(100 * time.Millisecond)
		a.Release(s, false) // the round trip: 100ms
		if d := fanout.AdaptivePace(a); d != 0 {
			t.Fatalf("DisablePacing %v: paced %v before any throttle", disable, d)
		}
		var starts []time.Time
		for range 4 {
			s, _ := a.Acquire(ctx)
			starts = append(starts, s)
		}
		a.Release(starts[0], true) // limit: min(16, 4) x 0.5 = 2
		if l := a.Stats().Limit; l != 2 {
			t.Fatalf("limit %v after the throttle; want 2", l)
		}
		want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond}
		if disable {
			want = []time.Duration{0, 0, 0}
		}
		for i, w := range want {
			if d := fanout.AdaptivePace(a); d != w {
				t.Errorf("DisablePacing %v: start %d waits %v; want %v", disable, i, d, w)
			}
		}
		clock.advance(100 * time.Millisecond) // the next start was due at +200ms
		if d := fanout.AdaptivePace(a); !disable && d != 100*time.Millisecond {
			t.Errorf("after 100ms the next start waits %v; want 100ms", d)
		}
	}
}

func TestAdaptiveOptions(t *testing.T) {
	t.Parallel()
	var seen fanout.AdaptiveOptions
	if _, err := fanout.NewAdaptive(func(o *fanout.AdaptiveOptions) { seen = *o }); err != nil || seen != fanout.DefaultAdaptiveOptions() {
		t.Errorf("an option function saw %+v (%v); want DefaultAdaptiveOptions", seen, err)
	}
	for name, tc := range map[string]struct {
		fn   func(*fanout.AdaptiveOptions)
		want string
	}{
		"Max -1":          {func(o *fanout.AdaptiveOptions) { o.Max = -1 }, "AdaptiveOptions.Max is -1"},
		"replaced":        {func(o *fanout.AdaptiveOptions) { *o = fanout.AdaptiveOptions{} }, "rather than replacing them"},
		"Decrease 1":      {func(o *fanout.AdaptiveOptions) { o.Decrease = 1 }, "AdaptiveOptions.Decrease is 1"},
		"Decrease 0":      {func(o *fanout.AdaptiveOptions) { o.Decrease = 0 }, "AdaptiveOptions.Decrease is 0"},
		"Decrease NaN":    {func(o *fanout.AdaptiveOptions) { o.Decrease = math.NaN() }, "AdaptiveOptions.Decrease is NaN"},
		"Increase -1":     {func(o *fanout.AdaptiveOptions) { o.Increase = -1 }, "AdaptiveOptions.Increase is -1"},
		"Increase +Inf":   {func(o *fanout.AdaptiveOptions) { o.Increase = math.Inf(1) }, "AdaptiveOptions.Increase is +Inf"},
		"ThrottleBackoff": {func(o *fanout.AdaptiveOptions) { o.ThrottleBackoff = 0 }, "AdaptiveOptions.ThrottleBackoff is 0s"},
		"Rate -1":         {func(o *fanout.AdaptiveOptions) { o.Rate = -1 }, "AdaptiveOptions.Rate is -1"},
		"Rate, no Burst":  {func(o *fanout.AdaptiveOptions) { o.Rate = 20 }, "AdaptiveOptions.Burst is 0 with a Rate of 20"},
	} {
		if a, err := fanout.NewAdaptive(tc.fn); a != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %v; want an error containing %q", name, a, err, tc.want)
		}
	}
}

// TestAdaptiveLearnsAQuota follows the law of a paced limit step by step
// on a fake clock, one request at a time, each started when pacing lets
// it: the first cut paces; successes double the rate each round trip
// until a throttle measures the quota; the rate hunts just under it, then
// past it by 1% and more as round trips pass with no throttle; a success
// the pacing did not delay does not raise it; a run of throttles floors it
// at one request every ten seconds, and successes bring it back.
func TestAdaptiveLearnsAQuota(t *testing.T) {
	t.Parallel()
	const rtt = 10 * time.Millisecond
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.Max, o.ThrottleBackoff = 8, rtt })
	_, request := pacedRequests(t, a, clock, rtt)
	rate := func() float64 { return a.Stats().Limit / rtt.Seconds() }
	want := func(perSecond float64) {
		t.Helper()
		gap := time.Duration(float64(time.Second) / perSecond)
		if r, g := rate(), fanout.AdaptiveGap(a); math.Abs(r-perSecond) > 1e-6*perSecond || (g-gap).Abs() > time.Microsecond {
			t.Fatalf("%v requests per second, a start every %v; want %v, every %v", r, g, perSecond, gap)
		}
	}
	// grown is r after one success that grows it by g a round trip.
	grown := func(r, g float64) float64 { return r * math.Pow(1+g, 1/max(1, r*rtt.Seconds())) }

	request(false) // the round trip
	request(true)  // the first cut: min(8, 1 in flight) x 0.5, half a request per round trip
	want(50)
	if next := fanout.AdaptiveNextStart(a); !next.Equal(clock.t.Add(20 * time.Millisecond)) {
		t.Errorf("next start %v after the cut; want one gap, 20ms", next.Sub(clock.t))
	}
	cutAt := clock.t
	// No quota measured: it doubles each round trip.
	r := 50.0
	request(false)
	r = grown(r, 1)
	want(r)
	// A throttle of a paced request measures the quota: the rate it was
	// paced at times the share admitted over the eight gaps before it
	// (the request before it, and itself, counting one more success: 2 of
	// 3), or, since half the requests since the cut were throttled, what
	// was delivered since, plus one, if less: 2 in 50ms. (No start
	// between the last admitted one and it was throttled, so the time
	// since says nothing.) The rate falls to four fifths of it.
	request(true)
	quota := min(r*2/3, 2/clock.t.Sub(cutAt).Seconds())
	if q := fanout.AdaptiveQuota(a); math.Abs(q-quota) > 1e-9*quota {
		t.Fatalf("quota measured %v; want %v", q, quota)
	}
	r = 0.8 * quota
	want(r)
	// 5% a round trip from four fifths of the quota to the quota, 1% from
	// there to a quarter past it; past that, below one request per round
	// trip, doubling.
	for r < quota {
		request(false)
		r = grown(r, 0.05)
		want(r)
	}
	var passed time.Time // the success that found the rate past the quota
	for r < quota/0.8 {
		request(false)
		if passed.IsZero() {
			passed = clock.t
		}
		r = grown(r, 0.01)
		want(r)
	}
	request(false)
	r = grown(r, 1)
	want(r)
	if r*rtt.Seconds() < 1 {
		t.Fatalf("the test wants a rate of a request per round trip or more by now: %v", r*rtt.Seconds())
	}
	// Past it, and at more than one request a round trip, 1% a round trip
	// for four round trips, counted as at least four gaps, since the rate
	// passed the quota, then doubled for every two, up to a quarter (and at
	// least Increase, 7%, a quarter past it): no throttle for that long, and
	// the quota was measured low. This start still waited for the gap of
	// the rate before.
	request(false)
	trips := float64(clock.t.Sub(passed)) / float64(max(rtt, time.Duration(4*float64(time.Second)/r)))
	step := min(0.25, 0.01*math.Pow(2, max(0, trips-4)/2))
	if step <= 0.07 {
		t.Fatalf("the test wants a step past Increase by now: %v after %.1f round trips", step, trips)
	}
	r = grown(r, step)
	want(r)
	// But one request at a time cannot use more than one a round trip: a
	// start that pacing did not delay, with the limit far from full, says
	// nothing of the quota, and the rate stays.
	request(false)
	want(r)
	for range 40 {
		request(true)
	}
	want(0.1) // one request every ten seconds
	// Below one request per round trip, successes double the rate, back
	// to a request per round trip in ten.
	n := 0
	for ; a.Stats().Limit < 1 && n < 200; n++ {
		request(false)
	}
	if n != 10 {
		t.Errorf("%d successes from 0.1 per second to a limit of %v; want 10", n, a.Stats().Limit)
	}
	if g := fanout.AdaptiveGap(a); g > rtt {
		t.Errorf("a start every %v at a limit of %v; want at most the round trip", g, a.Stats().Limit)
	}
}

// TestAdaptiveAtTheEdgeOfASmallBucket: a client whose first burst met a
// bucket of a token or two (of the requests it sent at once, two or fewer
// admitted, four or more throttled) reads the gaps of its paced requests,
// each from the start of the last one admitted before it, as a bucket of
// one token answers them, and paces at the edge they show: the longer of
// the longest gap throttled (lo) and the shortest admitted (hi), 1% more;
// the middle of them when hi is half
// as long again; a quarter past lo when none was admitted yet. Gaps that
// do not read so, and any other client, are cut as every quota is.
func TestAdaptiveAtTheEdgeOfASmallBucket(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	for name, tc := range map[string]struct {
		burst, admitted int             // the first burst, and of it admitted
		gaps            []time.Duration // paced requests after the first, each this long after the one before; the last throttled, the others admitted
		first           bool            // the first paced request throttled too
		gap             time.Duration   // the gap after the cut; 0: cut as every quota
	}{
		"the edge":                           {8, 1, []time.Duration{30 * ms, 26 * ms}, false, 30300 * time.Microsecond},
		"two admitted of the first burst":    {8, 2, []time.Duration{30 * ms, 26 * ms}, false, 30300 * time.Microsecond},
		"a throttled gap past an admitted":   {8, 1, []time.Duration{30 * ms, 28 * ms, 29 * ms}, false, 29290 * time.Microsecond},
		"a wide edge":                        {8, 1, []time.Duration{40 * ms, 25 * ms}, false, 31623 * time.Microsecond},
		"none admitted yet":                  {8, 1, []time.Duration{25 * ms}, false, 31563 * time.Microsecond},
		"crossed gaps":                       {8, 1, []time.Duration{25 * ms, 30 * ms}, false, 0},
		"no gap":                             {8, 1, nil, true, 0},
		"three admitted of the first burst":  {8, 3, []time.Duration{30 * ms, 26 * ms}, false, 0},
		"three throttled of the first burst": {4, 1, []time.Duration{30 * ms, 26 * ms}, false, 0},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, clock, send := edgeClient(t, tc.burst, tc.admitted)
			at := fanout.AdaptiveNextStart(a)
			send(at, tc.first)
			var last time.Time // the last start not throttled
			if !tc.first {
				last = at
			}
			for i, g := range tc.gaps {
				at = at.Add(g)
				if throttled := i == len(tc.gaps)-1; !throttled {
					last = at
				}
				send(at, i == len(tc.gaps)-1)
			}
			rate := a.Stats().Limit / edgeRTT.Seconds()
			if tc.gap == 0 {
				if q := fanout.AdaptiveQuota(a); math.Abs(rate-0.8*q) > 1e-9*q {
					t.Errorf("%v a second, quota %v; want four fifths of the quota measured", rate, q)
				}
				if next := fanout.AdaptiveNextStart(a); !next.Equal(clock.t.Add(fanout.AdaptiveGap(a))) {
					t.Errorf("next start %v after the cut; want a gap", next.Sub(clock.t))
				}
				return
			}
			if g := fanout.AdaptiveGap(a); !nearGap(g, tc.gap) {
				t.Fatalf("a gap of %v after the cut; want %v", g, tc.gap)
			}
			// A bucket of a token refills from the last request it
			// admitted: the throttled one took nothing.
			want := last.Add(fanout.AdaptiveGap(a))
			if want.Before(clock.t) {
				want = clock.t
			}
			if next := fanout.AdaptiveNextStart(a); !next.Equal(want) {
				t.Errorf("next start %v after the last one not throttled; want %v", next.Sub(last), want.Sub(last))
			}
			// Successes do not climb: probes do (TestAdaptiveProbesTheEdge).
			last = want.Add(-fanout.AdaptiveGap(a))
			for range 8 {
				last = last.Add(fanout.AdaptiveGap(a))
				send(last, false)
			}
			if got := a.Stats().Limit / edgeRTT.Seconds(); got != rate {
				t.Errorf("%v a second after 8 successes at the edge; want %v", got, rate)
			}
		})
	}
}

// startAt starts a request of a at at, on clock, and fails the test if
// pacing does not let it start then.
func startAt(t *testing.T, a *fanout.Adaptive, clock *fakeClock, at time.Time) time.Time {
	t.Helper()
	clock.t = at
	s, err := a.Acquire(context.Background())
	if err != nil || !s.Equal(at) {
		t.Fatalf("Acquire at %v: started %v, %v", at, s, err)
	}
	return s
}

// edgeRTT is the round trip of edgeClient's requests.
const edgeRTT = time.Millisecond

// edgeClient returns a limit on a fake clock whose first burst of burst
// requests at once had admitted admitted, and a send that starts a request
// at at, when pacing lets one start, and ends it after edgeRTT, throttled
// or not. Its first cut paces it at 40 a second (burst 8), and the burst's
// admitted request doubles that.
func edgeClient(t *testing.T, burst, admitted int) (*fanout.Adaptive, *fakeClock, func(at time.Time, throttled bool)) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.ThrottleBackoff = 100 * time.Millisecond })
	var starts []time.Time
	for range burst {
		s, err := a.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		starts = append(starts, s)
	}
	clock.advance(edgeRTT)
	a.Release(starts[burst-1], true) // the first cut
	for i, s := range starts[:burst-1] {
		a.Release(s, i >= admitted)
	}
	send := func(at time.Time, throttled bool) {
		t.Helper()
		if next := fanout.AdaptiveNextStart(a); at.Before(next) || at.Before(clock.t) {
			t.Fatalf("a start at %v, before the next start %v or the clock %v", at, next, clock.t)
		}
		s := startAt(t, a, clock, at)
		clock.advance(edgeRTT)
		a.Release(s, throttled)
	}
	return a, clock, send
}

// TestAdaptiveNeverNaN: a throttle that answers the very first request
// with no time elapsed (a coarse clock) leaves a limit that admits.
func TestAdaptiveNeverNaN(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(*fanout.AdaptiveOptions) {})
	s, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a.Release(s, true)
	if l := a.Stats().Limit; math.IsNaN(l) || !(l > 0) {
		t.Fatalf("limit %v after a 0s throttle; want a number above 0", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard: the fake clock paces
	defer cancel()
	clock.advance(time.Hour)
	if _, err := a.Acquire(ctx); err != nil {
		t.Fatalf("Acquire after a 0s throttle: %v", err)
	}
}

// codedError is an API error that a middleware of the caller's returns; a
// nil one panics in its methods, as a typed nil pointer does.
type codedError struct{ code string }

func (e *codedError) Error() string     { return "coded: " + e.code }
func (e *codedError) ErrorCode() string { return e.code }

// TestAdaptiveGivesBackPlacesOnPanics: a panic while an attempt holds its
// place in the limit becomes the item's error, and the place goes back:
// in looking into the attempt's error (the retryer's release), and, in a
// guarded client, anywhere under the retry middleware.
func TestAdaptiveGivesBackPlacesOnPanics(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Region: "eu-west-1", Fault: fanouttest.Error500}}})
	nilError := func(stack *middleware.Stack) error { // outermost in Deserialize: sees the parsed 500
		return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("nilError",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if err != nil {
					var coded *codedError // the typed nil of a careless wrapper
					return out, md, coded
				}
				return out, md, nil
			}), middleware.Before)
	}
	panics := func(stack *middleware.Stack) error { // innermost in Finalize: under the retry middleware
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("panics",
			func(context.Context, middleware.FinalizeInput, middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				panic("a middleware's bug")
			}), middleware.After)
	}
	for name, tc := range map[string]struct {
		retryer    func() aws.Retryer // the retryer the adaptive one wraps
		apiOptions []func(*middleware.Stack) error
	}{
		"an error whose methods panic":       {fanout.NewRetryer, []func(*middleware.Stack) error{nilError}},
		"a panic under the retry middleware": {fanout.NewRetryer, []func(*middleware.Stack) error{fanout.GuardAdaptiveCalls, panics}},
		"the wrapped retryer panics":         {func() aws.Retryer { return panickyRetryer{fanout.NewRetryer().(aws.RetryerV2)} }, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := newAdaptive(t, nil, func(o *fanout.AdaptiveOptions) { o.Max = 2 })
			cfg := srv.AWSConfig("eu-west-1")
			cfg.Retryer = func() aws.Retryer { return fanout.AdaptiveRetryer(tc.retryer(), a) }
			cfg.APIOptions = append(cfg.APIOptions, tc.apiOptions...)
			client := ec2.NewFromConfig(cfg)
			res, _ := fanout.New[int]().Run(context.Background(), []string{"a", "b"}, func(ctx context.Context, _ string) (int, error) {
				_, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
				return 0, err
			})
			for _, r := range res {
				if pe := (*fanout.PanicError)(nil); !errors.As(r.Err, &pe) {
					t.Errorf("%s: %v; want the panic as the item's error", r.Key, r.Err)
				}
			}
			if st := a.Stats(); st.InFlight != 0 {
				t.Errorf("%d of the limit's %v places still held after both items ended", st.InFlight, st.Limit)
			}
		})
	}
}

// panickyRetryer is a retryer of the caller's whose attempt tokens panic.
type panickyRetryer struct{ aws.RetryerV2 }

func (panickyRetryer) GetAttemptToken(context.Context) (func(error) error, error) {
	panic("a retryer's bug")
}

// TestAdaptiveGivesBackAnAbandonedStart: a request whose context ends
// while it waits for its paced start leaves its place, and its start
// goes to the next request rather than pushing every later start back.
func TestAdaptiveGivesBackAnAbandonedStart(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.Max = 4 })
	s, _ := a.Acquire(context.Background())
	clock.advance(100 * time.Millisecond)
	a.Release(s, false)
	s, _ = a.Acquire(context.Background())
	clock.advance(100 * time.Millisecond)
	a.Release(s, true)     // cut to half a request per round trip: a start every 200ms of the fake clock
	fanout.AdaptivePace(a) // a start taken: the next one waits
	due := fanout.AdaptiveNextStart(a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond) // ends long before the fake clock moves
	defer cancel()
	if _, err := a.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire: %v; want the deadline", err)
	}
	if next, st := fanout.AdaptiveNextStart(a), a.Stats(); !next.Equal(due) || st.InFlight != 0 {
		t.Errorf("next start %v after the one due, %d in flight; want the same start, and none", next.Sub(due), st.InFlight)
	}
}

// TestAdaptiveRateWaitPastTheDeadline: when the client's own bucket could
// start a request only after its context's deadline, Acquire fails at
// once with an error that says so, and that is both the deadline and a
// throttle; over the wire, the call's error is too.
func TestAdaptiveRateWaitPastTheDeadline(t *testing.T) {
	t.Parallel()
	check := func(what string, err error, ctx context.Context) {
		t.Helper()
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, fanout.ErrThrottled) {
			t.Errorf("%s: %v; want errors.Is context.DeadlineExceeded and ErrThrottled", what, err)
		}
		if msg := fmt.Sprint(err); !strings.Contains(msg, "AdaptiveOptions.Rate 0.01 per second, Burst 1") {
			t.Errorf("%s: %q; want it to name the Rate and the Burst", what, msg)
		}
		if ctx.Err() != nil {
			t.Errorf("%s: failed when the deadline came, not at once", what)
		}
	}
	a := newAdaptive(t, nil, func(o *fanout.AdaptiveOptions) { o.Rate, o.Burst = 0.01, 1 }) // one per 100s
	s, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a.Release(s, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = a.Acquire(ctx)
	check("Acquire", err, ctx)
	if st := a.Stats(); st.InFlight != 0 {
		t.Errorf("%d in flight after a failed Acquire", st.InFlight)
	}

	srv := newFake(t, fanouttest.Config{})
	pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Adaptive.Rate, o.Adaptive.Burst = 0.01, 1 })
	client := pool.Get("us-east-1")
	if _, err := client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	check("GetCallerIdentity", err, ctx)
}

// TestLastAttemptBelongsToItsCall: an item whose second SDK call ends on
// its deadline carries the first call's error only when that call was
// still retrying it; an error the SDK retried past, or one that ended a
// call the item went on from, is not why the second call failed.
func TestLastAttemptBelongsToItsCall(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{
		{Region: "eu-west-1", Fault: fanouttest.Error500},
		{Region: "me-south-1", Fault: fanouttest.Disabled},
		{Region: "ap-south-1", Fault: fanouttest.Hang},
		{Region: "us-west-2", Attempts: 3, Fault: fanouttest.Error500}, // each call's first three attempts
	}})
	fake := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.Retryer = func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts, o.BaseDelay, o.RateLimiter = 5, time.Second, ratelimit.None // back-offs far past the deadline
			})
		}
	})
	flaky := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Retryer = fastRetries })
	identity := func(ctx context.Context, c *sts.Client) error {
		_, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		return err
	}
	for name, tc := range map[string]struct {
		first    func(ctx context.Context) error // its error is tolerated
		second   *sts.Client                     // called with a deadline of 100ms
		wantCode string                          // the API error the item's error carries, if any
	}{
		"retried three times, then succeeded": {
			first:  func(ctx context.Context) error { return identity(ctx, flaky.Get("us-west-2")) },
			second: fake.Get("ap-south-1"),
		},
		"failed and tolerated": {
			first:  func(ctx context.Context) error { return identity(ctx, fake.Get("me-south-1")) },
			second: fake.Get("ap-south-1"),
		},
		"no first call; the second's 500 retrying at the deadline": {
			first:    func(context.Context) error { return nil },
			second:   fake.Get("eu-west-1"),
			wantCode: "InternalFailure",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			firstErr := make(chan error, 1)
			res, _ := fanout.New[int]().Run(context.Background(), []string{"k"}, fanout.Classified(func(ctx context.Context, _ string) (int, error) {
				firstErr <- tc.first(ctx)
				ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				return 0, identity(ctx, tc.second)
			}))
			err := res[0].Err
			t.Logf("first call: %v", <-firstErr)
			var apiErr smithy.APIError
			code := ""
			if errors.As(err, &apiErr) {
				code = apiErr.ErrorCode()
			}
			if !errors.Is(err, context.DeadlineExceeded) || code != tc.wantCode {
				t.Errorf("%v; want the deadline, with the API error %q", err, tc.wantCode)
			}
		})
	}
}

// TestNoSilentCeiling: a client whose adaptive limit has no Max set lets a
// fan-out's Limit through, 300 requests in flight at once, where a default
// ceiling of 128 used to hold them back unsaid.
func TestNoSilentCeiling(t *testing.T) {
	t.Parallel()
	const n = 300
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Service: "ec2", Fault: fanouttest.Hang}}})
	pool := newPool(t, srv.AWSConfig("us-east-1"), ec2.NewFromConfig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f := fanout.New[int](func(o *fanout.Options) { o.Limit = n })
		f.Run(ctx, keys, func(ctx context.Context, _ string) (int, error) {
			_, err := pool.Get("eu-west-1").DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
			return 0, err
		})
	}()
	deadline := time.Now().Add(30 * time.Second) // a bound on failure, not a wait for success
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for srv.Stats().Total.PeakInFlight < n && time.Now().Before(deadline) {
		<-tick.C
	}
	cancel()
	<-done
	if peak := srv.Stats().Total.PeakInFlight; peak != n {
		t.Errorf("%d requests in flight at most; want the fan-out's Limit, %d", peak, n)
	}
	if st := pool.Stats()["eu-west-1"]; !math.IsInf(st.Limit, 1) {
		t.Errorf("limit %v before any throttle; want none (+Inf)", st.Limit)
	}
}

// TestFirstCutAtAMillisecond: at round trips near a millisecond, the first
// throttle used to set a rate of half a request per round trip, hundreds a
// second, against a quota of 2 a second. A caller sending one call at a
// time met every throttle of the descent, and spent its 5 attempts on them
// in a tenth of a second (examples/regions -sim-latency 0.02 -sim-throttle
// 2 lost a region in 3 runs of 6). The first cut counts the round trip as
// at least ThrottleBackoff: 5 a second here, and the next cut paces the
// retry past the bucket's next token.
func TestFirstCutAtAMillisecond(t *testing.T) {
	t.Parallel()
	const regions, calls = 4, 4
	cfg := fanouttest.Config{Regions: fanouttest.DefaultRegions[:regions]}
	cfg.Throttle.NonMutating = fanouttest.Bucket{Burst: 2, PerSecond: 2}
	for _, r := range cfg.Regions {
		cfg.Faults = append(cfg.Faults, fanouttest.Rule{Region: r, Latency: fanouttest.Latency{Fixed: 200 * time.Microsecond, Jitter: 40 * time.Microsecond}})
	}
	srv := newFake(t, cfg)
	// Retries a millisecond apart: the limit alone spaces the attempts.
	pool := newPool(t, srv.AWSConfig("us-east-1"), ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) { o.Retryer = fastRetries })
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = regions })
	res, err := f.Run(context.Background(), cfg.Regions, func(ctx context.Context, region string) (int, error) {
		for i := range calls {
			in := &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)} // filtered: the NonMutating bucket
			if _, err := pool.Get(region).DescribeInstances(ctx, in); err != nil {
				return i, err
			}
		}
		return calls, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Key, r.Err)
		}
	}
	if st := srv.Stats().Total; st.Throttled == 0 {
		t.Errorf("no request throttled; the test wants the limit to learn the quota")
	}
	for region, st := range pool.Stats() {
		if st.Limit > 0.5 { // per round trip; 2 a second is a few thousandths
			t.Errorf("%s: limit %v a round trip after the calls; want it paced near 2 a second", region, st.Limit)
		}
	}
}

// TestAdaptiveMeasureOnLittle: a throttle says little of the quota when
// the client says little. A caller sending a request every five seconds,
// throttled once (for another tenant's requests, say), halves its rate;
// the time since its last admitted start, with nothing throttled between,
// is no bound on the quota. And two starts at one instant (a coarse
// clock) keep their own answers: the admitted one still bounds a later
// throttle at one over the time since.
func TestAdaptiveMeasureOnLittle(t *testing.T) {
	t.Parallel()
	const rtt = 10 * time.Millisecond
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.Max, o.ThrottleBackoff = 8, rtt })
	ctx := context.Background()
	_, request := pacedRequests(t, a, clock, rtt)
	rate := func() float64 { return a.Stats().Limit / rtt.Seconds() }

	request(false)
	request(true) // the first cut: paced from here
	for range 3 {
		clock.advance(5 * time.Second)
		request(false)
	}
	before := rate()
	clock.advance(5 * time.Second)
	request(true)
	if r, want := rate(), 0.8*before/2; math.Abs(r-want) > 1e-6*want {
		t.Errorf("%v a second after one throttle, 5s after the last admitted start; want %v (four fifths of half)", r, want)
	}

	// Two starts at one instant, one admitted and one throttled, then a
	// throttle of a start a round trip later: at most one over the round
	// trip.
	b := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.Max, o.ThrottleBackoff = 8, rtt })
	var burst []time.Time
	for range 8 {
		s, _ := b.Acquire(ctx)
		burst = append(burst, s)
	}
	clock.advance(rtt)
	b.Release(burst[0], true) // the first cut: 4 a round trip, 400 a second
	for _, s := range burst[1:] {
		b.Release(s, false)
	}
	s1, _ := b.Acquire(ctx)
	s2, _ := b.Acquire(ctx) // paced a gap later, on a clock that has not moved
	if !s1.Equal(s2) {
		t.Fatalf("starts %v and %v; the test wants one instant", s1, s2)
	}
	clock.advance(rtt)
	b.Release(s1, false)
	b.Release(s2, true)
	s3, _ := b.Acquire(ctx)
	clock.advance(rtt)
	b.Release(s3, true)
	if q, most := fanout.AdaptiveQuota(b), 1/s3.Sub(s1).Seconds(); q > most*(1+1e-9) || q < 1 {
		t.Errorf("quota measured %v after a throttle %v after an admitted start; want at most %v, and not the floor", q, s3.Sub(s1), most)
	}
}

// TestAdaptiveBacksOffWhilePaced: a throttled attempt waits a back-off
// before its retry, at most ThrottleBackoff x 2^(attempt-1), whether the
// client is paced or not. The pace spaces the client's starts; the
// back-off spaces a call's attempts, which are what a call pays while the
// limit learns its quota. Retried at the pace with no back-off once paced,
// calls throttled while the limit learned spent their ten attempts before
// it had: over HTTP, at 100 a second with a burst of 1 and no round trip,
// 101 calls at Limit 64, a call failed in 2 of 60 runs of errgroup over
// the pool and in 1 of 40 of fanout, and in none of 60 with the back-off.
func TestAdaptiveBacksOffWhilePaced(t *testing.T) {
	t.Parallel()
	throttle := &smithy.GenericAPIError{Code: "Throttling"}
	for _, disable := range []bool{false, true} {
		clock := &fakeClock{t: time.Unix(1000, 0)}
		a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) {
			o.DisablePacing = disable
			o.ThrottleBackoff = time.Millisecond
		})
		r := fanout.AdaptiveRetryer(retry.NewStandard(), a)
		// Each attempt's delays, drawn 32 times: at most the ceiling,
		// jittered (not all alike), and growing with the attempts (one
		// over the last attempt's ceiling by the fourth). A 500 keeps the
		// wrapped retryer's delay, seconds.
		check := func(when string) {
			t.Helper()
			for attempt := 1; attempt <= 4; attempt++ {
				most := time.Millisecond << (attempt - 1)
				var ds []time.Duration
				for range 32 {
					d, err := r.RetryDelay(attempt, throttle)
					if err != nil || d < 0 || d > most {
						t.Fatalf("pacing disabled: %v, %s: a retry delay of %v, %v at attempt %d; want at most %v", disable, when, d, err, attempt, most)
					}
					ds = append(ds, d)
				}
				if slices.Min(ds) == slices.Max(ds) || attempt > 1 && slices.Max(ds) <= most/2 {
					t.Errorf("pacing disabled: %v, %s: retry delays %v to %v at attempt %d in 32 draws; want a jittered back-off up to %v", disable, when, slices.Min(ds), slices.Max(ds), attempt, most)
				}
			}
			var longest time.Duration
			for range 32 {
				d, _ := r.RetryDelay(4, &smithy.GenericAPIError{Code: "InternalError"})
				longest = max(longest, d)
			}
			if longest <= 8*time.Millisecond {
				t.Errorf("pacing disabled: %v, %s: retry delays up to %v for a 500 at attempt 4; want the standard retryer's", disable, when, longest)
			}
		}
		check("before a throttle")
		start, err := a.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		clock.advance(10 * time.Millisecond)
		a.Release(start, true)
		if !disable && a.Stats().Limit >= math.Inf(1) {
			t.Fatal("not paced after a throttle")
		}
		check("after a throttle")
	}
}

// TestAdaptiveExtremeOptions: options at the ends of what validate accepts
// neither panic nor stall a client. A ThrottleBackoff of a hundred years
// overflowed the back-off's doubling, and RetryDelay panicked in
// rand.Int64N (from the first attempt with the longest Duration); an
// Increase of 1e300 grew the limit past what an int holds, and the room
// its conversion gave was negative without pacing (no request could start
// again) and two with it (a client paced at no gap, held to two requests
// in flight, through the same conversion); now it is as good as no limit,
// until the next throttle.
func TestAdaptiveExtremeOptions(t *testing.T) {
	t.Parallel()
	throttle := &smithy.GenericAPIError{Code: "Throttling"}
	for _, backoff := range []time.Duration{100 * 365 * 24 * time.Hour, math.MaxInt64} {
		a := newAdaptive(t, nil, func(o *fanout.AdaptiveOptions) { o.ThrottleBackoff = backoff })
		r := fanout.AdaptiveRetryer(retry.NewStandard(), a)
		for attempt := 1; attempt <= 16; attempt++ {
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("ThrottleBackoff %v: RetryDelay panicked at attempt %d: %v", backoff, attempt, p)
					}
				}()
				if d, err := r.RetryDelay(attempt, throttle); err != nil || d < 0 {
					t.Errorf("ThrottleBackoff %v: a retry delay of %v, %v at attempt %d; want one of 0 or more", backoff, d, err, attempt)
				}
			}()
		}
	}
	// Without pacing, the limit climbs by Increase over each round of
	// successes; one round of 1e300 is past any int.
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.DisablePacing, o.Increase = true, 1e300 })
	acquire := func() time.Time {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := a.Acquire(ctx)
		if err != nil {
			t.Fatalf("Increase 1e300, no pacing: %v (%+v, room %d); want a start", err, a.Stats(), fanout.AdaptiveRoom(a))
		}
		return s
	}
	var burst []time.Time
	for range 8 {
		burst = append(burst, acquire())
	}
	clock.advance(10 * time.Millisecond)
	for i, s := range burst {
		a.Release(s, i == 0)
	}
	for range 64 {
		acquire()
	}

	// Paced, the climb past a quarter over the quota is by Increase a
	// round trip, and one step of 1e300 leaves no gap: the room is then
	// no limit's, not two.
	clock = &fakeClock{t: time.Unix(1000, 0)}
	a = newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.Increase = 1e300 })
	_, request := pacedRequests(t, a, clock, 10*time.Millisecond)
	for i := range 240 {
		request(i == 30 || i == 200 || i == 201)
	}
	if room := fanout.AdaptiveRoom(a); fanout.AdaptiveGap(a) != 0 || room < 64 {
		t.Errorf("Increase 1e300, paced: %+v, a gap of %v, room %d, past a quarter over the quota; want no gap, and as good as no limit", a.Stats(), fanout.AdaptiveGap(a), room)
	}
}

// TestThrottledWhileServed: a call throttled at its fifth attempt while
// its client's quota lets the client's other requests through goes on, up
// to twice the attempts. (On a slow quota with a burst, the throttles of
// the limit's climb landed on calls the first burst's throttles had cost
// three attempts, and failed them: TestAdaptiveBankedTokens.) Any other
// error ends it from the fifth on, and so does a throttle when nothing of
// the client's succeeded since the call started (a quota that stopped
// letting anything through), or at all (a 500 the only other answer). A
// count of attempts set on the client or on the call is kept as it is, for
// every error. A retryer wrapped around the pool's, with a RetryDelay of
// its own, neither skips the end of a call nor sleeps before it (a delay
// of an hour from the fifth attempt on, under a deadline of a minute): a
// 500 ends at the fifth, with the SDK's own error. A success of another
// operation does not serve the call (AWS meters quotas by action); a
// client's count of twice the pool retryer's is still its own; a caller's
// middleware that takes the Amz-Sdk-Request header off hides no count;
// ClientOptions that replace APIOptions do not take the rule away.
// The limit's clock moves a microsecond a look, so that "lately" is never
// in doubt.
func TestThrottledWhileServed(t *testing.T) {
	t.Parallel()
	const most = 2 * fanout.DefaultMaxAttempts
	fake := newFake(t, fanouttest.Config{})
	target, err := url.Parse(aws.ToString(fake.AWSConfig("us-east-1").BaseEndpoint))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	const too, internal = http.StatusTooManyRequests, http.StatusInternalServerError
	repeat := func(code, n int) []int { return slices.Repeat([]int{code}, n) }
	for name, tc := range map[string]struct {
		script    []int // the answers to the call's attempts, in order; then the fake's
		sent      int
		fails     int  // the HTTP status the call fails with; 0: it succeeds
		before    bool // a request of the client succeeds before the call
		during    bool // and one after the call's first attempt started
		otherOp   bool // the request that succeeds is to another operation
		clientMax int  // the client's RetryMaxAttempts
		callMax   int  // the call's RetryMaxAttempts
		slowLast  bool // a wrapper's RetryDelay of an hour from the fifth attempt on
		noHeader  bool // a middleware of the caller's takes the Amz-Sdk-Request header off
		noAPI     bool // the caller's ClientOptions replace APIOptions
	}{
		"throttled eight times":            {script: repeat(too, most-2), sent: most - 1, during: true},
		"throttled to the last":            {script: repeat(too, most), sent: most, fails: too, during: true},
		"a 500 after five throttles":       {script: append(repeat(too, 5), internal), sent: 6, fails: internal, during: true},
		"a 500 after four throttles":       {script: append(repeat(too, 4), internal), sent: 5, fails: internal, during: true},
		"throttled, served before only":    {script: repeat(too, most), sent: 5, fails: too, before: true},
		"a 500, then throttles, never ok":  {script: append([]int{internal}, repeat(too, most)...), sent: 5, fails: too},
		"served another operation only":    {script: repeat(too, most), sent: 5, fails: too, during: true, otherOp: true},
		"the client's 8, 500s":             {script: repeat(internal, most), sent: 8, fails: internal, clientMax: 8},
		"the client's 10, 500s":            {script: repeat(internal, most), sent: 10, fails: internal, clientMax: most},
		"the call's 8, no header, 500s":    {script: repeat(internal, most), sent: 8, fails: internal, callMax: 8, noHeader: true},
		"APIOptions replaced, 500s":        {script: repeat(internal, most), sent: 5, fails: internal, noAPI: true},
		"APIOptions replaced, served":      {script: repeat(too, most-2), sent: most - 1, during: true, noAPI: true},
		"the call's 8, 500s":               {script: repeat(internal, most), sent: 8, fails: internal, callMax: 8},
		"the call's 3, throttled":          {script: repeat(too, most), sent: 3, fails: too, during: true, callMax: 3},
		"the call's 7, throttled":          {script: repeat(too, 6), sent: 7, callMax: 7},
		"a wrapper's slow delay, 500s":     {script: repeat(internal, most), sent: 5, fails: internal, slowLast: true},
		"a wrapper's slow delay, throttle": {script: repeat(too, 4), sent: 5, during: true, slowLast: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var c *sts.Client
			other := func() {
				var err error
				if tc.otherOp {
					_, err = c.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111111111111:role/audit"), RoleSessionName: aws.String("other")})
				} else {
					_, err = c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
				}
				if err != nil {
					t.Errorf("the client's other request: %v", err)
				}
			}
			var mu sync.Mutex
			script, sent := tc.script, 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Scripted") == "" {
					proxy.ServeHTTP(w, r)
					return
				}
				mu.Lock()
				sent++
				first, code := sent == 1, 0
				if len(script) > 0 {
					code, script = script[0], script[1:]
				}
				mu.Unlock()
				if first && tc.during {
					other()
				}
				if code != 0 {
					http.Error(w, "scripted", code)
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			cfg := fake.AWSConfig("us-east-1")
			cfg.BaseEndpoint = aws.String(srv.URL)
			pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
				o.Retryer = fastRetries
				o.Adaptive.ThrottleBackoff = time.Millisecond
				o.ClientOptions = append(o.ClientOptions, func(o *sts.Options) {
					o.RetryMaxAttempts = tc.clientMax
					if tc.noAPI {
						o.APIOptions = nil
					}
					if tc.slowLast {
						o.Retryer = slowFromFifth{o.Retryer.(aws.RetryerV2)}
					}
					if tc.noHeader {
						o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
							return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("noHeader",
								func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
									in.Request.(*smithyhttp.Request).Header.Del("Amz-Sdk-Request")
									return next.HandleFinalize(ctx, in)
								}), middleware.After)
						})
					}
				})
			})
			c = pool.Get("us-east-1")
			var tick atomic.Int64
			fanout.SetPoolClock(pool, func() time.Time { return time.Unix(1000, tick.Add(1)*int64(time.Microsecond)) })
			if tc.before {
				other()
			}
			_, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(o *sts.Options) {
				o.APIOptions = append(o.APIOptions, smithyhttp.AddHeaderValue("X-Scripted", "1"))
				if tc.callMax != 0 {
					o.RetryMaxAttempts = tc.callMax
				}
			})
			mu.Lock()
			defer mu.Unlock()
			var last *retry.MaxAttemptsError
			var resp *smithyhttp.ResponseError
			switch {
			case sent != tc.sent:
				t.Errorf("%d attempts (%v); want %d", sent, err, tc.sent)
			case tc.fails == 0 && err != nil:
				t.Errorf("%v; want the call answered", err)
			case tc.fails != 0 && (!errors.As(err, &last) || last.Attempt != tc.sent || !errors.As(err, &resp) || resp.HTTPStatusCode() != tc.fails):
				t.Errorf("%v; want the SDK's error for %d attempts, the last a %d", err, tc.sent, tc.fails)
			case tc.fails != 0 && strings.Contains(err.Error(), "\n"):
				t.Errorf("%q; want the SDK's error on one line", err)
			case tc.fails == too && !errors.Is(fanout.Classify(err), fanout.ErrThrottled):
				t.Errorf("%v; want it classified ErrThrottled", err)
			}
		})
	}
}

// slowFromFifth is a retryer wrapped around a pool's, with a RetryDelay of
// its own: an hour from the fifth attempt on.
type slowFromFifth struct{ aws.RetryerV2 }

func (r slowFromFifth) RetryDelay(attempt int, err error) (time.Duration, error) {
	if attempt >= fanout.DefaultMaxAttempts {
		return time.Hour, nil
	}
	return time.Millisecond, nil
}

// TestAdaptiveProbesTheEdge: at the edge of a small bucket, one request in
// probeEvery (or one a second) goes out ahead of the next start, at a gap
// shorter by the probe's step. A probe throttled cuts nothing, and the
// next start keeps its place; one admitted shortens the gap to its own,
// 1% more, doubles the step, and a throttle of the start right after it
// cuts nothing. A probe admitted a little short of the longest gap
// throttled may be the jitter's, and takes the gap to that (one well short
// of it: TestAdaptiveProbeFindsTheQuotaGrew).
func TestAdaptiveProbesTheEdge(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	a, clock, send := edgeClient(t, 8, 1)
	at := fanout.AdaptiveNextStart(a)
	send(at, false)
	send(at.Add(30*ms), false)
	send(at.Add(56*ms), true) // lo 26ms, hi 30ms
	gap := func() time.Duration { return fanout.AdaptiveGap(a) }
	near := func(what string, got, want time.Duration) {
		t.Helper()
		if !nearGap(got, want) {
			t.Fatalf("%s: %v; want %v", what, got, want)
		}
	}
	g := gap() // 30.3ms
	last := at.Add(30 * ms).Add(g)
	send(last, false)

	// The first probe: the step is the middle of lo and the gap, 7.95%.
	probe := fanout.AdaptiveNextStart(a)
	near("the first probe's gap", probe.Sub(last), time.Duration(float64(g)/math.Sqrt(float64(g)/float64(26*ms))))
	q := fanout.AdaptiveQuota(a)
	send(probe, true)
	near("the gap after a probe throttled", gap(), g)
	if got := fanout.AdaptiveQuota(a); got != q {
		t.Fatalf("quota %v after a probe throttled; want %v, as before", got, q)
	}
	if next := fanout.AdaptiveNextStart(a); !next.Equal(last.Add(g)) {
		t.Fatalf("the start after a probe throttled %v after the one before it; want %v", next.Sub(last), g)
	}
	regulars := func(n int) { last = regularStarts(a, send, last, n) }
	regulars(fanout.ProbeEvery)

	// The next, at the first step, 4%, is admitted; the start given
	// before its answer came is throttled, and cuts nothing.
	probe = fanout.AdaptiveNextStart(a)
	near("the second probe's gap", probe.Sub(last), time.Duration(float64(g)/1.04))
	clock.t = probe
	p, err := a.Acquire(context.Background())
	if err != nil || !p.Equal(probe) {
		t.Fatalf("the probe started %v, %v; want %v", p, err, probe)
	}
	clock.t = last.Add(g)
	s, err := a.Acquire(context.Background())
	if err != nil || !s.Equal(clock.t) {
		t.Fatalf("the start after the probe %v, %v; want %v", s, err, clock.t)
	}
	clock.advance(edgeRTT)
	a.Release(p, false)
	g2 := time.Duration(float64(g) / 1.04 * 1.01)
	near("the gap after a probe admitted", gap(), g2)
	a.Release(s, true)
	near("the gap after a throttle of the start after a probe admitted", gap(), g2)
	last = s

	// Admitted at gaps shorter than the longest throttled (the first
	// probe's, 28.07ms): first a little, which may be the jitter's, then
	// well short of it.
	regulars(fanout.ProbeEvery)
	probe = fanout.AdaptiveNextStart(a)
	near("the third probe's gap", probe.Sub(last), time.Duration(float64(g2)/1.08))
	send(probe, false)
	lo := time.Duration(float64(g) / math.Sqrt(float64(g)/float64(26*ms)))
	near("the gap after a probe admitted short of lo", gap(), time.Duration(float64(lo)*1.01))
	last = probe
	// The next, at the same step, is admitted at a gap that leaves the
	// longest throttled the one gap throttled past a tenth over an
	// admitted one: it is taken for a request that reached the bucket
	// late, and lo is the second longest, 26ms, which this probe is a
	// little short of too. Two in a row say lo is the old quota's: the
	// gaps from the first of them on are read anew, and this probe's
	// gap is the gap, 1% more.
	regulars(fanout.ProbeEvery)
	probe = fanout.AdaptiveNextStart(a)
	pg := probe.Sub(last)
	if pg >= 26*ms {
		t.Fatalf("the fourth probe's gap: %v; want one short of 26ms", pg)
	}
	send(probe, false)
	near("the gap after a second probe in a row admitted a little short of lo", gap(), time.Duration(float64(pg)*1.01))
	// With nothing throttled since, the next probe, at twice the step,
	// is well short of the lo the row forgot: the quota grew.
	last = probe
	regulars(fanout.ProbeEvery)
	probe = fanout.AdaptiveNextStart(a)
	if g := probe.Sub(last); float64(g) >= 26*(1-2*fanout.ProbeStep)*float64(ms) {
		t.Fatalf("the fifth probe's gap: %v; want one well short of 26ms", g)
	}
	send(probe, false)
	if fanout.AdaptiveAtEdge(a) || fanout.AdaptiveQuota(a) != 0 {
		t.Fatalf("at the edge %v, quota %v, after a probe well short of the lo a row forgot; want off the edge, no quota",
			fanout.AdaptiveAtEdge(a), fanout.AdaptiveQuota(a))
	}
}

// TestAdaptiveProbesInARowAcrossACut: two probes admitted a little short
// of the longest gap throttled are two in a row though a cut comes
// between them. A request held on its way throttles the one after it at
// the client's own gap, and the cut that follows raises the gap 1%: at a
// round trip of 200ms, where such a cut comes between most probes, the
// count started over at each, every probe was clamped, and the gap climbed
// 1% a cut for seconds.
func TestAdaptiveProbesInARowAcrossACut(t *testing.T) {
	t.Parallel()
	a, _, last, send := edgeAt(t) // lo 26ms, hi 30ms
	gap := func() time.Duration { return fanout.AdaptiveGap(a) }
	regulars := func(n int) { last = regularStarts(a, send, last, n) }
	probe := func(throttled bool) time.Duration {
		t.Helper()
		regulars(fanout.ProbeEvery)
		p := fanout.AdaptiveNextStart(a)
		if p.Sub(last) >= gap() {
			t.Fatalf("the next start %v after the last, at a gap of %v; want a probe", p.Sub(last), gap())
		}
		g := p.Sub(last)
		send(p, throttled)
		last = p
		return g
	}
	lo := probe(true) // the longest gap throttled
	probe(false)      // admitted at 4% short of the gap, past lo
	if g := probe(false); g >= lo {
		t.Fatalf("the third probe's gap %v; want one short of lo %v", g, lo)
	}
	clamped := gap()
	// A throttle at the gap, after admitted ones: the cut raises it, and
	// the throttle's gap is the longest.
	regulars(2)
	lo = gap()
	last = last.Add(lo)
	send(last, true)
	if gap() <= clamped {
		t.Fatalf("the gap after a throttle at it: %v; want more than %v", gap(), clamped)
	}
	before := gap()
	regulars(fanout.ProbeEvery)
	p := fanout.AdaptiveNextStart(a)
	g := p.Sub(last)
	if g >= lo || float64(g) < float64(lo)*(1-2*fanout.ProbeStep) {
		t.Fatalf("the fourth probe's gap %v; want one a little short of lo %v", g, lo)
	}
	send(p, false)
	if want := time.Duration(float64(g) * 1.01); !nearGap(gap(), want) {
		t.Fatalf("the gap after the second probe in a row admitted a little short of lo: %v; want %v, the probe's 1%% more (it was %v)", gap(), want, before)
	}
	// The edge is read from the first of the two on: a throttle at the
	// new gap cuts to it, not back to the lo before.
	regulars(2)
	last = last.Add(gap())
	send(last, true)
	if gap() >= lo {
		t.Fatalf("the gap after a throttle at the gap the row found: %v; want less than the lo before it, %v", gap(), lo)
	}
}

// TestAdaptiveProbeFindsTheQuotaGrew: a probe admitted well short of the
// longest gap throttled says the quota grew: the client leaves the edge,
// and a success doubles its rate.
func TestAdaptiveProbeFindsTheQuotaGrew(t *testing.T) {
	t.Parallel()
	a, _, last, send := edgeAt(t) // lo 26ms, hi 30ms
	gap := func() time.Duration { return fanout.AdaptiveGap(a) }
	// Each probe admitted doubles the step: 8%, then 16% (a little short of
	// lo), then 32%, well short of it.
	for i := range 3 {
		last = regularStarts(a, send, last, fanout.ProbeEvery)
		probe := fanout.AdaptiveNextStart(a)
		if probe.Sub(last) >= gap() {
			t.Fatalf("probe %d: the next start %v after the last, at a gap of %v; want a probe", i+1, probe.Sub(last), gap())
		}
		send(probe, false)
		last = probe
	}
	if q := fanout.AdaptiveQuota(a); q != 0 {
		t.Fatalf("quota %v after a probe admitted well short of lo; want none", q)
	}
	before := gap()
	send(fanout.AdaptiveNextStart(a), false)
	if got := gap(); !nearGap(got, before/2) {
		t.Fatalf("the gap after a success past the edge: %v; want %v", got, before/2)
	}
}

// regularStarts sends n requests, admitted, from last: each a gap after
// the one before, or at the next start if that is later (after a cut),
// never at a probe's. It returns the last start.
func regularStarts(a *fanout.Adaptive, send func(at time.Time, throttled bool), last time.Time, n int) time.Time {
	for range n {
		next := fanout.AdaptiveNextStart(a)
		if at := last.Add(fanout.AdaptiveGap(a)); next.Before(at) {
			next = at
		}
		last = next
		send(last, false)
	}
	return last
}

// nearGap says whether got is want to within a microsecond: a gap the law
// computes, against one a test computes by hand.
func nearGap(got, want time.Duration) bool {
	return got >= want-time.Microsecond && got <= want+time.Microsecond
}

// edgeAt returns a client at the edge of a small bucket (lo 26ms, hi 30ms:
// a gap of 30.3ms), the start of its last request, and send.
func edgeAt(t *testing.T) (*fanout.Adaptive, *fakeClock, time.Time, func(at time.Time, throttled bool)) {
	t.Helper()
	a, clock, send := edgeClient(t, 8, 1)
	at := fanout.AdaptiveNextStart(a)
	send(at, false)
	send(at.Add(30*time.Millisecond), false)
	send(at.Add(56*time.Millisecond), true)
	last := at.Add(30 * time.Millisecond).Add(fanout.AdaptiveGap(a))
	send(last, false)
	return a, clock, last, send
}

// failingRetryer fails GetAttemptToken, as the SDK's adaptive retry mode
// does when a call's context ends while it waits for a token of its own.
type failingRetryer struct{ aws.RetryerV2 }

func (failingRetryer) GetAttemptToken(context.Context) (func(error) error, error) {
	return nil, errors.New("failed to get a token")
}

// TestAdaptiveProbeNotSent: a probe's start given to an attempt that is
// never sent (the wrapped retryer refused it; the caller's context ended
// while it waited) is no longer out: the next probe comes as the one
// before it would have.
func TestAdaptiveProbeNotSent(t *testing.T) {
	t.Parallel()
	a, clock, last, send := edgeAt(t)
	g := fanout.AdaptiveGap(a)
	probe := fanout.AdaptiveNextStart(a)
	if probe.Sub(last) >= g {
		t.Fatalf("the next start %v after the last; want a probe, before the gap %v", probe.Sub(last), g)
	}
	clock.t = probe
	r := fanout.AdaptiveRetryer(failingRetryer{retry.NewStandard()}, a)
	if _, err := r.GetAttemptToken(context.Background()); err == nil {
		t.Fatal("GetAttemptToken: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	clock.t = probe
	if _, err := a.Acquire(ctx); err == nil {
		t.Fatal("Acquire with a context ended: no error")
	}
	last = regularStarts(a, send, last, fanout.ProbeEvery)
	if next := fanout.AdaptiveNextStart(a); next.Sub(last) >= g {
		t.Errorf("the next start %v after the last, %d starts after a probe not sent; want a probe", next.Sub(last), fanout.ProbeEvery)
	}
	if s := a.Stats(); s.InFlight != 0 {
		t.Errorf("%d requests in flight; want none", s.InFlight)
	}
}

// TestAdaptiveProbeCancelled: a probe whose context ends while it waits
// for its start gives no start back to the others, even once a cut has
// spaced them anew from the start just before it: the next start stays
// where the cut put it.
func TestAdaptiveProbeCancelled(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(*fanout.AdaptiveOptions) {})
	var burst []time.Time
	for range 8 {
		s, _ := a.Acquire(context.Background())
		burst = append(burst, s)
	}
	clock.advance(40 * ms) // a round trip of 40ms: requests overlap
	a.Release(burst[7], true)
	for i, s := range burst[:7] {
		a.Release(s, i >= 1) // a small bucket
	}
	start := func(at time.Time) time.Time { return startAt(t, a, clock, at) }
	end := func(s, at time.Time, throttled bool) { clock.t = at; a.Release(s, throttled) }
	t0 := fanout.AdaptiveNextStart(a)
	r1 := start(t0)
	r2 := start(t0.Add(30 * ms))
	end(r1, t0.Add(40*ms), false)
	r3 := start(t0.Add(56 * ms))
	end(r2, t0.Add(70*ms), false)
	start(fanout.AdaptiveNextStart(a)) // out throughout: the gaps after it are unknown
	end(r3, t0.Add(96*ms), true)       // the edge: lo 26ms, hi 30ms
	g := fanout.AdaptiveGap(a)
	throttled := start(fanout.AdaptiveNextStart(a))
	last := start(throttled.Add(g)) // past the probe before it: a regular start

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := a.Acquire(ctx) // the probe, waiting on the real clock for its start on the fake one
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); fanout.AdaptiveProbeOut(a).IsZero(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("no probe out; the next start %v after the last", fanout.AdaptiveNextStart(a).Sub(last))
		}
	}
	end(throttled, last.Add(10*ms), true) // a cut at the edge: the same gap, from the last start
	next := fanout.AdaptiveNextStart(a)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the probe's Acquire: %v; want it cancelled", err)
	}
	if got := fanout.AdaptiveNextStart(a); !got.Equal(next) {
		t.Errorf("the next start %v after the last once the probe was cancelled; want %v, where the cut put it", got.Sub(last), next.Sub(last))
	}
}

// TestAdaptiveThrottleAtTheFirstCut: a request that started unpaced at
// the very instant of the first cut (a clock too coarse to tell them
// apart), after a first burst that met a small bucket, cuts again when
// throttled, before anything paced was logged.
func TestAdaptiveThrottleAtTheFirstCut(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(*fanout.AdaptiveOptions) {})
	var burst []time.Time
	for range 6 {
		s, err := a.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, s)
	}
	clock.advance(time.Millisecond)
	a.Release(burst[0], false)
	s, err := a.Acquire(context.Background()) // in the tick of the cut
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range burst[1:] {
		a.Release(b, true)
	}
	clock.advance(time.Millisecond)
	a.Release(s, true)
	if l := a.Stats().Limit; !(l > 0) {
		t.Errorf("limit %v after a throttle at the first cut; want above 0", l)
	}
}

// TestAdaptiveMaxBoundsASmallBucket: a small bucket's client has twice
// its rate's room, and one more for a probe, but never more than Max in
// flight.
func TestAdaptiveMaxBoundsASmallBucket(t *testing.T) {
	t.Parallel()
	const most = 5
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := newAdaptive(t, clock, func(o *fanout.AdaptiveOptions) { o.Max = most })
	var burst []time.Time
	for range most {
		s, _ := a.Acquire(context.Background())
		burst = append(burst, s)
	}
	clock.advance(200 * time.Millisecond)
	a.Release(burst[0], false)
	for _, s := range burst[1:] {
		a.Release(s, true) // a small bucket
	}
	for range 40 { // two requests a round trip: a limit they use climbs
		var out []time.Time
		for range 2 {
			if next := fanout.AdaptiveNextStart(a); next.After(clock.t) {
				clock.t = next
			}
			s, _ := a.Acquire(context.Background())
			out = append(out, s)
		}
		clock.advance(200 * time.Millisecond)
		for _, s := range out {
			a.Release(s, false)
		}
	}
	if l := a.Stats().Limit; 2*l <= most {
		t.Fatalf("limit %v after 40 successes; want more than half of Max %d", l, most)
	}
	// Twice the limit's room is more than Max: Max is the room.
	if room := fanout.AdaptiveRoom(a); room != most {
		t.Errorf("room for %d requests in flight; want Max, %d", room, most)
	}
}

// TestAdaptiveProbeWaitsForTheRequestBefore: a probe admitted while the
// request started before it is still out (at a round trip of many gaps,
// jittered by more than one, a third of the probes admitted at 200 a
// second and 200ms) has a gap known once that one is answered: from it,
// if it was admitted, and the gap shortens to it; from the one admitted
// before, if it was throttled. Taken as unknown, such probes were lost. A
// cut before that answer reads the edge anew, and the probe with it: it
// is not taken after.
func TestAdaptiveProbeWaitsForTheRequestBefore(t *testing.T) {
	t.Parallel()
	for _, before := range []struct {
		throttled bool
		cut       bool // a throttle a gap after the probe, before the request before it is answered
		shortens  bool
	}{{false, false, true}, {true, false, false}, {false, true, false}} {
		a, clock, last, send := edgeAt(t)
		g := fanout.AdaptiveGap(a)
		last = regularStarts(a, send, last, fanout.ProbeEvery-1)
		r := startAt(t, a, clock, last.Add(g))
		probe := fanout.AdaptiveNextStart(a)
		if d := probe.Sub(r); d >= g {
			t.Fatalf("the next start %v after the last; want a probe, before the gap %v", d, g)
		}
		p := startAt(t, a, clock, probe)
		clock.advance(edgeRTT)
		a.Release(p, false)
		if got := fanout.AdaptiveGap(a); got != g {
			t.Fatalf("the gap %v after the probe was admitted, the request before it out; want %v, until that one is answered", got, g)
		}
		// Admitted, the request before the probe makes its gap the
		// probe's, 1% more; throttled, at the gap, it cuts to 1% over it,
		// and the probe's gap, from the one admitted before, is longer.
		want := time.Duration(float64(g) * 1.01)
		if before.cut {
			q := startAt(t, a, clock, probe.Add(g+time.Millisecond))
			clock.advance(edgeRTT)
			a.Release(q, true)
			if want = fanout.AdaptiveGap(a); want == g {
				t.Fatalf("the gap %v after a throttle a gap after the probe; want a cut", want)
			}
		}
		clock.advance(edgeRTT)
		a.Release(r, before.throttled)
		if before.shortens {
			want = time.Duration(float64(probe.Sub(r)) * 1.01)
		}
		if got := fanout.AdaptiveGap(a); (got - want).Abs() > time.Microsecond {
			t.Errorf("the request before the probe throttled: %v, a cut between: %v; the gap %v once it was answered; want %v", before.throttled, before.cut, got, want)
		}
	}
}

// TestAdaptiveProbeOffTheEdge: a probe out when a cut takes the client off
// the edge (gaps that do not read as a bucket of one token's: two
// throttled gaps past an admitted one, where one may be a request held
// late) keeps no place of its own: the room is the rate's.
func TestAdaptiveProbeOffTheEdge(t *testing.T) {
	t.Parallel()
	a, clock, last, send := edgeAt(t)
	// A gap of 40ms throttled, where 30ms was admitted, crosses it by more
	// than a tenth: alone, with 26ms throttled that does not, it is taken
	// for a request that reached the bucket late, and the edge stays.
	send(last.Add(40*time.Millisecond), true)
	if q := fanout.AdaptiveQuota(a); q != 1/0.026 {
		t.Fatalf("quota %v after one throttled gap past the edge; want the edge's, %v", q, 1/0.026)
	}
	last = fanout.AdaptiveNextStart(a)
	send(last, false)
	last = regularStarts(a, send, last, fanout.ProbeEvery)
	probe := fanout.AdaptiveNextStart(a)
	if probe.Sub(last) >= fanout.AdaptiveGap(a) {
		t.Fatalf("the next start %v after the last; want a probe", probe.Sub(last))
	}
	clock.t = probe
	p, err := a.Acquire(context.Background())
	if err != nil || !p.Equal(probe) {
		t.Fatalf("the probe started %v, %v; want %v", p, err, probe)
	}
	// A second is not: the gaps do not read as a bucket of one token's.
	last = last.Add(fanout.AdaptiveGap(a))
	send(last, false)
	send(last.Add(40*time.Millisecond), true)
	if fanout.AdaptiveAtEdge(a) {
		t.Fatal("still at the edge")
	}
	// The quota the climb aims at is still the edge's: the measure over
	// the few requests since says less.
	if q := fanout.AdaptiveQuota(a); q != 1/0.026 {
		t.Errorf("quota %v off the edge; want the edge's, %v", q, 1/0.026)
	}
	// A small bucket's room: twice the rate's requests a round trip.
	want := max(fanout.MinRoom, int(math.Ceil(2*a.Stats().Limit)))
	if room := fanout.AdaptiveRoom(a); room != want {
		t.Errorf("room for %d off the edge, with the probe out; want %d", room, want)
	}
	clock.advance(edgeRTT)
	a.Release(p, false)
	if room := fanout.AdaptiveRoom(a); room != want {
		t.Errorf("room for %d off the edge, the probe answered; want %d", room, want)
	}
}

// TestAdaptiveEdgeAfterARequestHeldLate: of the throttles that follow one
// admitted request, the edge counts the first: a bucket that met that
// request late (the machine or the network held it) refills late, and
// throttles the requests after it at longer gaps, which say how late it
// was, not where the rate is. The next start still waits them out.
func TestAdaptiveEdgeAfterARequestHeldLate(t *testing.T) {
	t.Parallel()
	a, clock, last, send := edgeAt(t) // lo 26ms, hi 30ms, a gap of 30.3ms
	g := fanout.AdaptiveGap(a)
	last = last.Add(g) // none throttled after the one before
	send(last, false)
	first := last.Add(g)
	send(first, true) // 30.3ms: lo
	want := time.Duration(float64(g) * 1.01)
	if got := fanout.AdaptiveGap(a); got != want {
		t.Fatalf("a gap of %v after a throttle at %v; want %v", got, g, want)
	}
	second := fanout.AdaptiveNextStart(a)
	if second.Sub(last) <= g {
		t.Fatalf("the next start %v after the last admitted; want more than the gap throttled, %v", second.Sub(last), g)
	}
	send(second, true)
	if got := fanout.AdaptiveGap(a); got != want {
		t.Errorf("a gap of %v after a second throttle at %v from the same admitted request; want %v, as after the first", got, second.Sub(last), want)
	}
	if next, least := fanout.AdaptiveNextStart(a), last.Add(time.Duration(float64(second.Sub(last))*1.01)); next.Before(least) || next.Before(clock.t) {
		t.Errorf("the next start %v after the last admitted; want at least %v, past the second throttled gap", next.Sub(last), least.Sub(last))
	}
}

// TestSleepExactly: a paced start's wait ends no earlier than it should,
// and as its context ends, spinning or not; only a client at the edge of a
// small bucket spins, at most a quarter of its gap.
func TestSleepExactly(t *testing.T) {
	t.Parallel()
	for _, spin := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
		start := time.Now()
		if err := fanout.SleepExactly(context.Background(), 2*time.Millisecond, spin); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 2*time.Millisecond {
			t.Errorf("spin %v: woke after %v; want at least 2ms", spin, d)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := fanout.SleepExactly(ctx, time.Hour, spin); !errors.Is(err, context.Canceled) {
			t.Errorf("spin %v: %v for a context ended; want context.Canceled", spin, err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
		err := fanout.SleepExactly(ctx, time.Hour, time.Hour) // all of it spun
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a wait spun whole: %v as its context ended; want context.DeadlineExceeded", err)
		}
	}
	a, _, _, _ := edgeAt(t)
	if s, g := fanout.AdaptiveSpin(a), fanout.AdaptiveGap(a); s != min(time.Millisecond, g/4) {
		t.Errorf("spin %v at the edge with a gap of %v; want %v", s, g, min(time.Millisecond, g/4))
	}
	b, _, _ := edgeClient(t, 8, 3) // a bucket that banked three: off the edge
	if s := fanout.AdaptiveSpin(b); s != 0 {
		t.Errorf("spin %v off the edge; want none", s)
	}
}

// TestAdaptiveEdgeAfterIdle: a throttle of the first request after the
// client sat idle at the edge (another consumer took the token) holds the
// next start back a refill, not a hundredth of the time it sat idle.
func TestAdaptiveEdgeAfterIdle(t *testing.T) {
	t.Parallel()
	a, clock, last, send := edgeAt(t)
	send(last.Add(time.Hour), true)
	if wait, most := fanout.AdaptiveNextStart(a).Sub(clock.t), 2*fanout.AdaptiveGap(a); wait > most {
		t.Errorf("the next start %v after a throttle that followed an hour idle; want at most %v", wait, most)
	}
}

// TestAdaptiveEdgeAfterIdleWithARequestOut: as TestAdaptiveEdgeAfterIdle,
// with the start after the first still out when the throttle comes: the
// wait for the throttles since the last admitted request counts from that
// request, not from the one still out.
func TestAdaptiveEdgeAfterIdleWithARequestOut(t *testing.T) {
	t.Parallel()
	a, clock, _, _ := edgeAt(t)
	clock.advance(time.Hour)
	y, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock.t = fanout.AdaptiveNextStart(a)
	if _, err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.t = y.Add(40 * time.Millisecond)
	a.Release(y, true)
	if wait, most := fanout.AdaptiveNextStart(a).Sub(clock.t), 2*fanout.AdaptiveGap(a); wait > most {
		t.Errorf("the next start %v after a throttle that followed an hour idle, a request out; want at most %v", wait, most)
	}
}

// TestAdaptiveEdgeAfterTheQuotaFell: at the edge, the bucket's rate falls
// from 33 a second to 28 (a gap of 36ms): the client finds it in a few
// throttles, not one each round trip until each refill while its gap
// creeps up 1% at a time (57 in three seconds did).
func TestAdaptiveEdgeAfterTheQuotaFell(t *testing.T) {
	t.Parallel()
	const rate = 36 * time.Millisecond // the bucket's gap now
	a, clock, last, send := edgeAt(t)
	admitted := last
	throttles := 0
	for end := clock.t.Add(3 * time.Second); clock.t.Before(end); {
		at := fanout.AdaptiveNextStart(a)
		ok := at.Sub(admitted) >= rate
		if ok {
			admitted = at
		} else {
			throttles++
		}
		send(at, !ok)
	}
	if throttles > 20 {
		t.Errorf("%d throttles in three seconds after the quota fell; want at most 20", throttles)
	}
}

// TestAdaptiveEdgeWithARequestOut: at a round trip of many gaps, some
// with a jitter longer than one, the requests started just before a
// throttled one are still out when its throttle comes back. Its gap is
// then not known, but it is no shorter than the one from the last of
// them: the throttle still finds the edge (read as not known at all, it
// took the client off it, to the law for every quota, in every cut of a
// bucket of one token at 200 a second and 200ms).
func TestAdaptiveEdgeWithARequestOut(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard: the room may not be there
	defer cancel()
	a, clock, send := edgeClient(t, 8, 1)
	g := fanout.AdaptiveGap(a) // 12.5ms
	clock.t = fanout.AdaptiveNextStart(a)
	first, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(100 * time.Millisecond) // a round trip of eight gaps: room for two
	a.Release(first, false)
	out, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send(out.Add(g), true) // a gap after the one out, nine after the one admitted
	lo := g                // the throttled gap, as far as is known
	want := time.Duration(float64(time.Duration(float64(lo)*1.25)) * 1.01)
	if got := fanout.AdaptiveGap(a); got != want || fanout.AdaptiveSpin(a) == 0 {
		t.Errorf("a gap of %v (at the edge: %v) after a throttle %v after a request out; want %v, at the edge of a gap throttled at %v",
			got, fanout.AdaptiveSpin(a) != 0, g, want, g)
	}
	clock.advance(edgeRTT)
	a.Release(out, false)
}

// TestAdaptiveNotSentIsNotOut: attempts given back unsent (the wrapped
// retryer refused them, or their context ended first) are not requests
// out: a client that gives back many does not grow its log as if they
// were (with them out, it doubled to 256 in 200 of them).
func TestAdaptiveNotSentIsNotOut(t *testing.T) {
	t.Parallel()
	a, clock, _, _ := edgeAt(t)
	r := fanout.AdaptiveRetryer(failingRetryer{retry.NewStandard()}, a)
	for range 200 {
		clock.t = fanout.AdaptiveNextStart(a)
		if _, err := r.GetAttemptToken(context.Background()); err == nil {
			t.Fatal("GetAttemptToken: no error")
		}
	}
	if n := fanout.AdaptiveLogSize(a); n != fanout.LogFirst {
		t.Errorf("the log holds %d requests after 200 given back; want %d", n, fanout.LogFirst)
	}
}

// TestAdaptiveEdgeAfterAProbeNotSent: a probe given back unsent, between
// the last admitted request and a throttled one, took no token: the
// throttled gap counts from the admitted request, as if the probe had
// never started (counted from the probe, as from a request that may have
// taken one, the gap was a few milliseconds and said nothing).
func TestAdaptiveEdgeAfterAProbeNotSent(t *testing.T) {
	t.Parallel()
	a, clock, last, send := edgeAt(t) // lo 26ms, hi 30ms
	probe := fanout.AdaptiveNextStart(a)
	if probe.Sub(last) >= fanout.AdaptiveGap(a) {
		t.Fatalf("the next start %v after the last; want a probe", probe.Sub(last))
	}
	clock.t = probe
	r := fanout.AdaptiveRetryer(failingRetryer{retry.NewStandard()}, a)
	if _, err := r.GetAttemptToken(context.Background()); err == nil {
		t.Fatal("GetAttemptToken: no error")
	}
	next := fanout.AdaptiveNextStart(a)
	send(next, true)
	if q, want := fanout.AdaptiveQuota(a), 1/next.Sub(last).Seconds(); q != want {
		t.Errorf("quota %.2f a second after a throttle %v after the last admitted request, a probe given back between; want %.2f",
			q, next.Sub(last), want)
	}
}

// TestPoolLimitClimbsOnlyWhileUsed: over HTTP, a client paced after its
// first burst was throttled (64 at once on a bucket of 4), then used by a
// fan-out of Limit 8 on a quota far above what eight calls in flight send,
// climbs no further than about twice what those calls use (as
// TestAdaptiveClimbsOnlyWhileUsed and TestAdaptiveProbesOnlyWhileUsed in
// the simulation), and not at all from a rate the burst's retries left
// above that. The rate is what the test bounds: the limit in requests a
// round trip is the rate times a round trip estimated from the latest
// answers, which a loaded machine stretches after the climb. The client
// reads the burst as a small bucket's in some runs and not in others, and
// paces by its edge or by the law for every quota; both are bounded.
// Counting every start held back by a crowd of answers as use, the rate
// went from 971-1,212 a second after the burst to 1,621-4,914 four
// seconds later, in 9 runs of 10 (in the tenth, a throttle cut it to 900:
// the simulation's tests are the ones that fail every time). Now it climbs
// to about 700-750 from a lower rate, and stays, or falls, from a higher
// one: 755-1,171 after the burst, 725-1,115 after the fan-out.
func TestPoolLimitClimbsOnlyWhileUsed(t *testing.T) {
	t.Parallel()
	const rtt = 20 * time.Millisecond
	srv := newFake(t, fanouttest.Config{
		Instances: 1, Latency: fanouttest.Latency{Fixed: rtt, Jitter: 4 * time.Millisecond},
		Throttle: fanouttest.Buckets{NonMutating: fanouttest.Bucket{Burst: 4, PerSecond: 2000}},
	})
	pool := newPool(t, srv.AWSConfig("us-east-1"), ec2.NewFromConfig)
	describe := fanout.Classified(func(ctx context.Context, region string) (int, error) {
		out, err := pool.Get(region).DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
		if err != nil {
			return 0, err
		}
		return len(out.Reservations), nil
	})
	run := func(limit int64, n int) {
		t.Helper()
		f := fanout.New[int](func(o *fanout.Options) { o.Limit = limit })
		res, err := f.Run(context.Background(), slices.Repeat([]string{"us-east-1"}, n), describe)
		if err != nil || len(res) != n {
			t.Fatalf("Limit %d, %d calls: %d results, %v", limit, n, len(res), err)
		}
	}
	// At once, on a bucket of 4: throttled, and paced after (a machine
	// busy enough to spread 64 starts over 30ms lets them through).
	for range 5 {
		if a := fanout.PoolAdaptive(pool, "us-east-1"); a != nil && fanout.AdaptiveGap(a) > 0 {
			break
		}
		run(64, 64)
	}
	a := fanout.PoolAdaptive(pool, "us-east-1")
	if a == nil || fanout.AdaptiveGap(a) == 0 {
		t.Fatalf("after five bursts of 64 on a bucket of 4: %+v; want the client paced", pool.Stats())
	}
	rate := func() float64 { return 1 / fanout.AdaptiveGap(a).Seconds() }
	before := rate() // what the burst and its retries used
	const limit = 8  // calls in flight: some 360 a second, a fifth of the quota
	run(limit, 1600)
	// Twice what the calls in flight use at the least round trip, and a
	// quarter more; or, if the burst left the rate above that, no climb.
	most := max(before, 2.5*(limit+1)/rtt.Seconds())
	t.Logf("paced at %.0f requests a second after the burst, %.0f after the fan-out of Limit %d; at most %.0f", before, rate(), limit, most)
	if r := rate(); r > most {
		t.Errorf("paced at %.0f requests a second after a fan-out of Limit %d at %v, from %.0f; want at most %.0f (%+v)", r, limit, rtt, before, most, pool.Stats())
	}
}
