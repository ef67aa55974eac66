package fanout_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/awsfanout/fanout"
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
	// Each success adds Increase/limit: about Increase per round.
	a.Release(acquire(), false)
	want(2, 0)
	a.Release(acquire(), false)
	a.Release(acquire(), false)
	want(2.9, 0) // 2 + 1/2 + 1/2.5
	// Never above Max.
	for range 1000 {
		a.Release(acquire(), false)
	}
	want(16, 0)
	if st := a.Stats(); st.Throttles != 3+1+10 || st.Requests != 4+1+10+3+1000 {
		t.Errorf("counts %+v", st)
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
// round trip; before any throttle, and with DisablePacing, nothing waits.
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
		want := []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond}
		if disable {
			want = []time.Duration{0, 0, 0}
		}
		for i, w := range want {
			if d := fanout.AdaptivePace(a); d != w {
				t.Errorf("DisablePacing %v: start %d waits %v; want %v", disable, i, d, w)
			}
		}
		clock.advance(100 * time.Millisecond) // the next start was due at +150ms
		if d := fanout.AdaptivePace(a); !disable && d != 50*time.Millisecond {
			t.Errorf("after 100ms the next start waits %v; want 50ms", d)
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
		"Max 0":           {func(o *fanout.AdaptiveOptions) { o.Max = 0 }, "AdaptiveOptions.Max is 0"},
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
