package scenario

import (
	"context"
	"testing"
	"time"

	"github.com/awsfanout/fanout/fanouttest"
)

func TestIdealCalls(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for name, tc := range map[string]struct {
		n     int
		call  time.Duration
		limit int
		want  time.Duration
	}{
		"items":            {n: 10000, call: 22 * ms, limit: 100, want: 2200 * ms},
		"not a whole wave": {n: 150, call: 20 * ms, limit: 100, want: 30 * ms},
		"fewer than limit": {n: 10, call: 20 * ms, limit: 64, want: 20 * ms},
		"limit 1":          {n: 50, call: 3 * ms, limit: 1, want: 150 * ms},
		"no calls":         {n: 0, call: 20 * ms, limit: 64, want: 0},
		"no limit":         {n: 10, call: 20 * ms, limit: 0, want: 0},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := IdealCalls(tc.n, tc.call, tc.limit); got != tc.want {
				t.Errorf("IdealCalls(%d, %v, %d) = %v; want %v", tc.n, tc.call, tc.limit, got, tc.want)
			}
		})
	}
}

func TestIdealBucket(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for name, tc := range map[string]struct {
		n      int
		call   time.Duration
		limit  int
		bucket fanouttest.Bucket
		want   time.Duration
	}{
		// The throttle scenario: the bucket, not the limit, bounds it.
		"throttle":     {n: 1000, call: 22 * ms, limit: 64, bucket: fanouttest.Bucket{Burst: 50, PerSecond: 100}, want: 9522 * ms},
		"low-quota":    {n: 600, call: ms / 2, limit: 64, bucket: fanouttest.Bucket{Burst: 20, PerSecond: 40}, want: 14500*ms + ms/2},
		"route53-like": {n: 100, call: 55 * ms, limit: 64, bucket: fanouttest.Bucket{Burst: 5, PerSecond: 5}, want: 19055 * ms},
		// 500 calls of 220 ms at 64 take 1.72 s; the bucket lets them
		// through in 0.22 + 400/200 s.
		"bucket bound": {n: 500, call: 220 * ms, limit: 64, bucket: fanouttest.Bucket{Burst: 100, PerSecond: 200}, want: 2220 * ms},
		// 1,000 calls of 220 ms at 64 take 3.4375 s; the bucket would let
		// them through in 0.22 + 900/1000 s.
		"limit bound":  {n: 1000, call: 220 * ms, limit: 64, bucket: fanouttest.Bucket{Burst: 100, PerSecond: 1000}, want: 3437500 * time.Microsecond},
		"within burst": {n: 50, call: 20 * ms, limit: 64, bucket: fanouttest.Bucket{Burst: 100, PerSecond: 5}, want: 20 * ms},
		"no bucket":    {n: 640, call: 20 * ms, limit: 64, want: 200 * ms},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := IdealBucket(tc.n, tc.call, tc.limit, tc.bucket); got != tc.want {
				t.Errorf("IdealBucket(%d, %v, %d, %+v) = %v; want %v", tc.n, tc.call, tc.limit, tc.bucket, got, tc.want)
			}
		})
	}
}

func TestComparePeers(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		outs  []Outcome
		best  string
		ratio []float64 // each outcome's XBestPeer
	}{
		"fastest peer": {
			outs:  []Outcome{{Impl: Errgroup, WallS: 3}, {Impl: ErrgroupPool, WallS: 2}, {Impl: Fanout, WallS: 2.2}},
			best:  ErrgroupPool,
			ratio: []float64{1.5, 1, 1.1},
		},
		"a peer that fails calls is not best, however fast": {
			outs:  []Outcome{{Impl: Errgroup, WallS: 1, Failed: 700}, {Impl: SDKAdaptive, WallS: 10}, {Impl: Fanout, WallS: 9}},
			best:  SDKAdaptive,
			ratio: []float64{0.1, 1, 0.9},
		},
		"every peer fails: the one that fails fewest": {
			outs:  []Outcome{{Impl: Errgroup, WallS: 1, Failed: 70}, {Impl: SDKAdaptive, WallS: 4, Failed: 3}, {Impl: Fanout, WallS: 2}},
			best:  SDKAdaptive,
			ratio: []float64{0.25, 1, 0.5},
		},
		"fanout is no peer": {
			outs:  []Outcome{{Impl: Fanout, WallS: 1}, {Impl: Naive, WallS: 4}},
			best:  Naive,
			ratio: []float64{0.25, 1},
		},
		"the told reference is no peer": {
			outs:  []Outcome{{Impl: Told, WallS: 1, Reference: true}, {Impl: Fanout, WallS: 2}, {Impl: ErrgroupPool, WallS: 4}},
			best:  ErrgroupPool,
			ratio: []float64{0.25, 0.5, 1},
		},
		"no peer": {outs: []Outcome{{Impl: Fanout, WallS: 1}, {Impl: Told, WallS: 1, Reference: true}}, ratio: []float64{0, 0}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ComparePeers(tc.outs)
			for i, o := range tc.outs {
				if o.BestPeer != tc.best || o.XBestPeer != tc.ratio[i] {
					t.Errorf("%s: best peer %q at %vx; want %q at %vx", o.Impl, o.BestPeer, o.XBestPeer, tc.best, tc.ratio[i])
				}
			}
		})
	}
}

// TestCallTime: the calibrated call time is at least the latency, and
// measured once per latency.
func TestCallTime(t *testing.T) {
	ctx := context.Background()
	l := fanouttest.Latency{Fixed: 3 * time.Millisecond, Jitter: time.Millisecond}
	d, err := CallTime(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if d < l.Fixed {
		t.Errorf("CallTime(%+v) = %v; want at least the latency", l, d)
	}
	if again, err := CallTime(ctx, l); err != nil || again != d {
		t.Errorf("CallTime again = %v, %v; want the first measurement, %v", again, err, d)
	}
}
