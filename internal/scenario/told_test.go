package scenario

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/awsfanout/fanout/fanouttest"
)

// TestToldPace: the Told reference's pace lets requests go at once until
// it starts, then spaces their starts by the bucket's gap, ToldMargin
// and ToldSlack more, the tokens the bucket has left after the first requests first;
// after a pause, the same again.
func TestToldPace(t *testing.T) {
	t.Parallel()
	gap := time.Duration(float64(10*time.Millisecond)*(1+ToldMargin)) + ToldSlack
	t0 := time.Unix(1000, 0)
	for name, tc := range map[string]struct {
		burst int
		want  []time.Duration // the starts, for requests all asking at t0
	}{
		"a bucket of one token": {burst: 1, want: []time.Duration{0, gap, 2 * gap}},
		"three tokens left":     {burst: 67, want: []time.Duration{0, 0, 0, gap, 2 * gap}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newToldPace(fanouttest.Bucket{PerSecond: 100, Burst: tc.burst}, 64)
			if p.gap != gap {
				t.Fatalf("gap %v; want %v", p.gap, gap)
			}
			if _, ok := p.reserve(t0); ok {
				t.Fatal("a start reserved before the pace started")
			}
			p.on, p.tat = true, t0
			for i, want := range tc.want {
				if at, ok := p.reserve(t0); !ok || at.Sub(t0) != want {
					t.Errorf("start %d at %v, %v; want %v", i, at.Sub(t0), ok, want)
				}
			}
			// A second later the bucket has banked its tokens again.
			late := t0.Add(time.Second)
			for i, want := range tc.want {
				if at, _ := p.reserve(late); at.Sub(late) != want {
					t.Errorf("start %d asking at 1s at %v after it; want %v", i, at.Sub(late), want)
				}
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
	if o.Failed != 0 || o.WallS < float64(cell.Calls-2)*gap {
		t.Errorf("%d calls failed in %.3fs; want none, in no less than %.3fs", o.Failed, o.WallS, float64(cell.Calls-2)*gap)
	}
	if _, err := Run(ctx, "items", Told, small); !errors.Is(err, ErrSkipped) {
		t.Errorf("told in the items scenario: %v; want ErrSkipped", err)
	}
}
