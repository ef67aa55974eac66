package scenario

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGridCells(t *testing.T) {
	t.Parallel()
	cells := DefaultGrid.Cells()
	if len(cells) != 5*2*3 {
		t.Fatalf("%d cells; want 30", len(cells))
	}
	seen := map[Regime]bool{}
	for _, c := range cells {
		if seen[c] {
			t.Errorf("%+v twice", c)
		}
		seen[c] = true
		// The bucket alone lets each cell's calls through in Span.
		if want := c.Burst + int(c.Rate*DefaultGrid.Span.Seconds()); c.Calls != want {
			t.Errorf("%+v: %d calls; want %d", c, c.Calls, want)
		}
	}
	first, last := cells[0], cells[len(cells)-1]
	if first != (Regime{Rate: 5, Burst: 1, RoundTripMS: 0, Calls: 6}) || last != (Regime{Rate: 200, Burst: 100, RoundTripMS: 200, Calls: 300}) {
		t.Errorf("cells run from %+v to %+v; want by round trip, burst, then rate", first, last)
	}
}

// TestRunRegime: each implementation the sweep compares runs a small cell
// and answers every call it does not fail; no durations are asserted. The
// cell's calls fit in its burst: a throttled call would wait out the SDK's
// back-offs of a second or more, and the throttle scenario's tests cover
// throttling.
func TestRunRegime(t *testing.T) {
	ctx := context.Background()
	cell := Grid{Rates: []float64{200}, Bursts: []int{30}, RoundTrips: []time.Duration{2 * time.Millisecond}}.Cells()[0]
	for _, impl := range RegimeImpls {
		o, err := RunRegime(ctx, cell, impl, small)
		if err != nil {
			t.Fatalf("%s: %v", impl, err)
		}
		t.Logf("%s: %d of %d failed, %d of %d requests throttled, %.2fs (ideal %.2fs)", impl, o.Failed, o.Items, o.Throttled, o.Requests, o.WallS, o.IdealS)
		if o.Scenario != "regimes" || o.Impl != impl || o.Regime == nil || *o.Regime != cell || o.Items != 30 || o.IdealS <= 0 || o.CallS <= 0 {
			t.Errorf("%s: %+v", impl, o)
		}
		for i, v := range o.Values {
			if o.Errs[i] == nil && v != 1 {
				t.Errorf("%s: call %d saw %d instances; want 1", impl, i, v)
			}
		}
	}
	if _, err := RunRegime(ctx, cell, Sequential, small); !errors.Is(err, ErrSkipped) {
		t.Errorf("sequential: %v; want ErrSkipped", err)
	}
}
