package scenario

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout"
)

// TestDeadEndpoint: the endpoint goes away mid-run. The calls left fail,
// and fanout's, but for those the kill caught in flight, fail at once with
// ErrEndpointDown, not with an API error, throttling or a disabled region.
func TestDeadEndpoint(t *testing.T) {
	ctx := context.Background()
	p := small
	p.DeadItems, p.DeadLatency, p.DeadAfter = 600, 50*time.Millisecond, 200*time.Millisecond
	for _, impl := range []string{Errgroup, Fanout} {
		o, err := Run(ctx, "dead-endpoint", impl, p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d of %d failed; killed %.3fs in, the %d calls after took %.3fs", impl, o.Failed, o.Items, o.KilledAtS, o.AfterKill, o.AfterKillS)
		if o.Items != p.DeadItems || o.KilledAtS == 0 || o.AfterKill == 0 || o.Failed == 0 || o.Failed > o.AfterKill {
			t.Fatalf("%s: %d calls, %d failed, killed at %.3fs, %d ended after; want the kill mid-run, and only calls after it failing",
				impl, o.Items, o.Failed, o.KilledAtS, o.AfterKill)
		}
		if impl != Fanout {
			continue
		}
		down := 0
		for i, err := range o.Errs {
			var apiErr smithy.APIError
			switch {
			case err == nil:
				if o.Values[i] != 1 {
					t.Errorf("call %d saw %d instances; want 1", i, o.Values[i])
				}
			case errors.As(err, &apiErr) || errors.Is(err, fanout.ErrThrottled) || errors.Is(err, fanout.ErrRegionDisabled):
				t.Errorf("call %d: %v; want a connection failure", i, err)
			case errors.Is(err, fanout.ErrEndpointDown):
				down++
			}
		}
		if most := fanout.DefaultBreakerThreshold + p.Limit; down < o.Failed-most {
			t.Errorf("%d of %d failures were ErrEndpointDown; want all but at most %d", down, o.Failed, most)
		}
	}
}
