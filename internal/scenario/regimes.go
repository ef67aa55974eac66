package scenario

import (
	"context"
	"math"
	"time"

	"github.com/awsfanout/fanout/fanouttest"
)

// Grid is the regimes sweep: every bucket rate, burst and round trip, in
// one region at Params.Limit, each cell's calls sized so that the bucket
// alone would let them through in Span.
type Grid struct {
	Rates      []float64       // the bucket's refill, per second
	Bursts     []int           // the bucket's burst
	RoundTrips []time.Duration // the server's latency per call, jittered by Params.Jitter; whole milliseconds
	Span       time.Duration   // a cell makes Burst + Rate x Span calls
}

// DefaultGrid is the bench command's sweep: 30 cells, each ideally about
// Span plus one call long; about eight minutes on 2 cores, most of it the
// runs that take several times the ideal.
var DefaultGrid = Grid{
	Rates:      []float64{5, 20, 50, 100, 200},
	Bursts:     []int{1, 100},
	RoundTrips: []time.Duration{0, 20 * time.Millisecond, 200 * time.Millisecond},
	Span:       time.Second,
}

// Regime is one cell of a Grid.
type Regime struct {
	Rate        float64 `json:"rate"`
	Burst       int     `json:"burst"`
	RoundTripMS int     `json:"round_trip_ms"`
	Calls       int     `json:"calls"`
}

// RegimeImpls are the implementations the sweep compares: fanout, the
// peers that bound their concurrency, and the Told reference.
var RegimeImpls = []string{Fanout, SDKAdaptive, Errgroup, ErrgroupPool, Told}

// Cells lists g's cells by round trip, then burst, then rate.
func (g Grid) Cells() []Regime {
	var cells []Regime
	for _, rt := range g.RoundTrips {
		for _, b := range g.Bursts {
			for _, r := range g.Rates {
				calls := b + int(math.Round(r*g.Span.Seconds()))
				cells = append(cells, Regime{Rate: r, Burst: b, RoundTripMS: int(rt / time.Millisecond), Calls: calls})
			}
		}
	}
	return cells
}

func (r Regime) bucket() fanouttest.Bucket {
	return fanouttest.Bucket{Burst: r.Burst, PerSecond: r.Rate}
}

// RunRegime runs one cell of the sweep with impl: r.Calls calls at
// p.Limit in one region against r's bucket, with no Rate set for the
// fanout implementation. Ideal is IdealBucket, as in the throttle
// scenario.
func RunRegime(ctx context.Context, r Regime, impl string, p Params) (Outcome, error) {
	o, err := bucketed(ctx, impl, p, r.Calls, r.bucket(), time.Duration(r.RoundTripMS)*time.Millisecond, nil)
	o.Scenario, o.Regime = "regimes", &r
	return o, err
}
