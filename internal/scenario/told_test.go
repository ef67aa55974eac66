package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/awsfanout/fanout/fanouttest"
)

// TestToldPace: the Told reference's copy of the bucket lets attempts go
// at once until its first answer, and counts them; then it holds the
// tokens the bucket has left, refilled from when the first request was
// written, and spaces the attempts after them by the bucket's gap,
// ToldMargin and ToldSlack more; after a pause, it has its burst again.
func TestToldPace(t *testing.T) {
	t.Parallel()
	gap := time.Duration(float64(10*time.Millisecond)*(1+ToldMargin)) + ToldSlack
	t0 := time.Unix(1000, 0)
	for name, tc := range map[string]struct {
		burst, before int           // attempts before the first answer
		answer        time.Duration // when it comes, after the first
		want          []time.Duration
	}{
		"a bucket of one token, a round trip later": {
			burst: 1, before: 64, answer: 200 * time.Millisecond, want: []time.Duration{0, gap, 2 * gap},
		},
		"a bucket of one token, half a gap later": {
			burst: 1, before: 64, answer: 5 * time.Millisecond, want: []time.Duration{gap / 2, gap + gap/2},
		},
		"three tokens left": {
			burst: 67, before: 64, answer: 0, want: []time.Duration{0, 0, 0, gap, 2 * gap},
		},
		"three tokens left, two refilled": {
			burst: 67, before: 64, answer: 20 * time.Millisecond, want: []time.Duration{0, 0, 0, 0, 0, gap, 2 * gap},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := newToldPace(fanouttest.Bucket{PerSecond: 100, Burst: tc.burst})
			if err != nil {
				t.Fatal(err)
			}
			if p.gap != gap {
				t.Fatalf("gap %v; want %v", p.gap, gap)
			}
			for range tc.before {
				if _, ok := p.reserve(t0.Add(-time.Second)); ok { // waiting for a connection
					t.Fatal("an attempt before the first answer waits")
				}
			}
			p.wrote(t0.Add(time.Millisecond))
			p.wrote(t0) // the first request written
			answer := t0.Add(tc.answer)
			p.start(answer)
			p.start(answer.Add(time.Hour)) // started once
			check := func(from time.Time) {
				t.Helper()
				for i, want := range tc.want {
					if at, ok := p.reserve(from); !ok || at.Sub(from) != want {
						t.Errorf("start %d at %v after %v, %v; want %v", i, at.Sub(from), from.Sub(t0), ok, want)
					}
				}
			}
			check(answer)
			// An hour later the copy is full: its burst, then a gap each.
			later := answer.Add(time.Hour)
			for i := range tc.burst {
				if at, _ := p.reserve(later); !at.Equal(later) {
					t.Errorf("token %d of the burst at %v; want at once", i, at.Sub(later))
				}
			}
			if at, _ := p.reserve(later); at.Sub(later) != gap {
				t.Errorf("after the burst, %v; want %v", at.Sub(later), gap)
			}
		})
	}
}

// TestSleepUntil: it ends no sooner than its time, and at once, with the
// context's error, when the context ends first.
func TestSleepUntil(t *testing.T) {
	t.Parallel()
	at := time.Now().Add(3 * time.Millisecond)
	if err := sleepUntil(context.Background(), at); err != nil || time.Now().Before(at) {
		t.Errorf("sleepUntil = %v, ended %v before its time", err, time.Until(at))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepUntil(ctx, time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("sleepUntil with a cancelled context = %v; want context.Canceled", err)
	}
	if err := sleepUntil(ctx, time.Now().Add(500*time.Microsecond)); !errors.Is(err, context.Canceled) {
		t.Errorf("sleepUntil under a millisecond with a cancelled context = %v; want context.Canceled", err)
	}
}

// TestToldPaces: against a bucket of one token, the Told reference fails
// no call, and retries its throttled calls at its pace, not at once: its
// first calls, all at once, take the one token, and the rest take a gap
// each from the first answer on. It runs only where one bucket throttles.
func TestToldPaces(t *testing.T) {
	ctx := context.Background()
	cell := Regime{Rate: 200, Burst: 1, RoundTripMS: 2, Calls: 40}
	o, err := RunRegime(ctx, cell, Told, small)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d failed, %d of %d requests throttled, %.3fs (ideal %.3fs)", o.Failed, o.Items, o.Throttled, o.Requests, o.WallS, o.IdealS)
	gap := (1+ToldMargin)/cell.Rate + ToldSlack.Seconds()
	if !o.Reference {
		t.Error("a told run is not marked as a reference")
	}
	if o.Failed != 0 || o.WallS < float64(cell.Calls-2)*gap {
		t.Errorf("%d calls failed in %.3fs; want none, in no less than %.3fs", o.Failed, o.WallS, float64(cell.Calls-2)*gap)
	}
	if _, err := Run(ctx, "items", Told, small); !errors.Is(err, ErrSkipped) {
		t.Errorf("told in the items scenario: %v; want ErrSkipped", err)
	}
}

// TestToldPaceBadBucket: a bucket whose gap or burst a Duration cannot
// hold is refused with an error naming it, not paced wrong or for ever;
// and a pace whose first answer came before any request was known to be
// written counts no refill.
func TestToldPaceBadBucket(t *testing.T) {
	t.Parallel()
	for _, b := range []fanouttest.Bucket{{PerSecond: 0, Burst: 1}, {PerSecond: -1, Burst: 1}, {PerSecond: 1e-11, Burst: 1}, {PerSecond: 100, Burst: 1 << 40}} {
		if _, err := newToldPace(b); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("bucket of %d tokens at %g a second", b.Burst, b.PerSecond)) {
			t.Errorf("%+v: %v; want an error naming the bucket", b, err)
		}
	}
	p, err := newToldPace(fanouttest.Bucket{PerSecond: 100, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	p.reserve(time.Unix(1000, 0))
	now := time.Unix(1001, 0)
	p.start(now)
	if at, _ := p.reserve(now); at.Sub(now) != p.gap {
		t.Errorf("first start %v after the answer; want a gap, %v", at.Sub(now), p.gap)
	}
}
