package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// Params sizes the scenarios; Default gives the bench command's sizes.
type Params struct {
	Limit       int
	Regions     int           // regions: how many (at most 38)
	Pages       int           // regions: pages per region
	PageLatency time.Duration // regions: the farthest region's latency per page (the others spread below it)
	Items       int           // items and throttle: calls
	ItemsLimit  int           // items: the limit (the others use Limit)
	Latency     time.Duration // items, throttle, faults: latency per call
	Bucket      fanouttest.Bucket
	ItemTimeout time.Duration // faults
	StreamItems int

	// Adaptive, when not nil, tunes the fanout implementation's adaptive
	// limits in the throttle scenario, from fanout.DefaultAdaptiveOptions.
	Adaptive func(*fanout.AdaptiveOptions)
}

// Default are the sizes the issue names.
var Default = Params{
	Limit: 64, Regions: 38, Pages: 3, PageLatency: 250 * time.Millisecond,
	Items: 10000, ItemsLimit: 100, Latency: 20 * time.Millisecond,
	Bucket:      fanouttest.Bucket{Burst: 50, PerSecond: 100},
	ItemTimeout: 2 * time.Second, StreamItems: 1_000_000,
}

// Names lists the scenarios in the order they run.
var Names = []string{"regions", "items", "throttle", "faults", "stream"}

// Run runs one scenario with one implementation.
func Run(ctx context.Context, name, impl string, p Params) (Outcome, error) {
	var (
		o   Outcome
		err error
	)
	switch name {
	case "regions":
		o, err = regions(ctx, impl, p)
	case "items":
		o, err = items(ctx, impl, p)
	case "throttle":
		o, err = throttle(ctx, impl, p)
	case "faults":
		o, err = faults(ctx, impl, p)
	case "stream":
		o, err = stream(ctx, impl, p)
	default:
		return o, fmt.Errorf("scenario: unknown scenario %q; want one of %q", name, Names)
	}
	o.Scenario = name
	return o, err
}

// regions: every region, Pages pages each, latency per region spread up
// to PageLatency; ideal is the slowest region's pages one after another.
func regions(ctx context.Context, impl string, p Params) (Outcome, error) {
	names := fanouttest.DefaultRegions[:min(p.Regions, len(fanouttest.DefaultRegions))]
	rc := map[string]fanouttest.RegionConfig{}
	for i, r := range names {
		l := fanouttest.Latency{Fixed: p.PageLatency * time.Duration(i+1) / time.Duration(len(names))}
		rc[r] = fanouttest.RegionConfig{Latency: &l}
	}
	const pageSize = 5
	srv, err := fanouttest.New(fanouttest.Config{Instances: p.Pages * pageSize, Region: rc})
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	defer srv.Close()
	o, err := run(ctx, impl, target{srv: srv, limit: p.Limit, keys: names, call: describePages(pageSize)})
	o.IdealS = (time.Duration(p.Pages) * p.PageLatency).Seconds()
	return o, err
}

// items: Items calls of Latency each in one region at Limit; ideal is
// Items x Latency / Limit.
func items(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl == Sequential {
		return Outcome{Impl: impl}, ErrSkipped
	}
	srv, err := fanouttest.New(fanouttest.Config{Instances: 1, Latency: fanouttest.Latency{Fixed: p.Latency}})
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	defer srv.Close()
	limit := p.ItemsLimit
	if limit == 0 {
		limit = p.Limit
	}
	o, err := run(ctx, impl, target{srv: srv, limit: limit, keys: repeat("us-east-1", p.Items), call: describeOnce})
	o.IdealS = (time.Duration(p.Items) * p.Latency / time.Duration(limit)).Seconds()
	return o, err
}

// throttle: Items calls in one region against Bucket, with Latency; ideal
// is what the bucket lets through: (Items - Burst) / PerSecond.
func throttle(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl == Sequential || impl == Naive {
		return Outcome{Impl: impl}, ErrSkipped
	}
	n := min(p.Items, 1000)
	srv, err := fanouttest.New(fanouttest.Config{
		Instances: 1, Latency: fanouttest.Latency{Fixed: p.Latency},
		Throttle: &fanouttest.Buckets{NonMutating: p.Bucket},
	})
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	defer srv.Close()
	o, err := run(ctx, impl, target{srv: srv, limit: p.Limit, keys: repeat("us-east-1", n), call: describeOnce, adaptive: p.Adaptive})
	o.IdealS = float64(n-p.Bucket.Burst) / p.Bucket.PerSecond
	return o, err
}

// Bad regions in the faults scenario.
const (
	Failing  = "eu-west-1"  // answers 500 every time
	Hanging  = "ap-south-1" // never answers
	Disabled = "me-south-1" // not enabled for the account
)

// faults: 38 regions, 3 of them bad; ideal is the ItemTimeout.
func faults(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl == Naive {
		return Outcome{Impl: impl}, ErrSkipped
	}
	srv, err := fanouttest.New(fanouttest.Config{
		Instances: 5, Latency: fanouttest.Latency{Fixed: p.Latency},
		Region: map[string]fanouttest.RegionConfig{
			Failing: {Fault: fanouttest.Error500}, Hanging: {Fault: fanouttest.Hang}, Disabled: {Fault: fanouttest.Disabled},
		},
	})
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	defer srv.Close()
	o, err := run(ctx, impl, target{srv: srv, limit: p.Limit, keys: fanouttest.DefaultRegions,
		call: describePages(5), itemTimeout: p.ItemTimeout})
	o.IdealS = p.ItemTimeout.Seconds()
	return o, err
}

// stream: StreamItems no-op items through Stream, for its peak heap.
func stream(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl != Fanout {
		return Outcome{Impl: impl}, ErrSkipped
	}
	keys := repeat("k", p.StreamItems)
	o := Outcome{Impl: impl, Items: len(keys), Limit: p.Limit}
	stop := sampleHeap(&o.PeakHeapMB)
	cpu0, start := cpuTime(), time.Now()
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = int64(p.Limit) })
	for r := range f.Stream(ctx, keys, func(context.Context, string) (int, error) { return 1, nil }) {
		if r.Err != nil {
			o.Failed++
		}
	}
	o.WallS, o.CPUS = time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
	stop()
	return o, nil
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
