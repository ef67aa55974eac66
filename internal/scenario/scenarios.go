package scenario

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

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
	WideItems   int           // wide: calls
	WideLatency time.Duration // wide: latency per call
	WideLimit   int           // wide: the limit
	Latency     time.Duration // items, throttle, faults: latency per call
	Jitter      float64       // every latency: the fraction of it added at most, drawn per request
	Bucket      fanouttest.Bucket
	ItemTimeout time.Duration // faults
	StreamItems int
	// pipeline: objects listed and inspected
	PipelineItems int

	// org: member accounts x 17 regions, at OrgLimit with OrgScopeLimit
	// accounts in flight, OrgLatency a call
	OrgAccounts, OrgLimit, OrgScopeLimit int
	OrgLatency                           time.Duration

	// Adaptive, when not nil, tunes the fanout implementation's adaptive
	// limits in the throttle scenario, from fanout.DefaultAdaptiveOptions.
	Adaptive func(*fanout.AdaptiveOptions)

	// dead-endpoint: DeadItems calls of DeadLatency each in one region at
	// Limit, the endpoint killed DeadAfter into the run.
	DeadItems   int
	DeadLatency time.Duration
	DeadAfter   time.Duration
}

// Default are the sizes the issue names.
var Default = Params{
	Limit: 64, Regions: 38, Pages: 3, PageLatency: 250 * time.Millisecond,
	Items: 10000, ItemsLimit: 100, Latency: 20 * time.Millisecond, Jitter: 0.2,
	WideItems: 5000, WideLatency: 200 * time.Millisecond, WideLimit: 1024,
	Bucket:      fanouttest.Bucket{Burst: 50, PerSecond: 100},
	ItemTimeout: 2 * time.Second, StreamItems: 1_000_000, PipelineItems: 1_000_000,
	OrgAccounts: 10_000, OrgLimit: 256, OrgScopeLimit: 50, OrgLatency: 20 * time.Millisecond,
	DeadItems: 3000, DeadLatency: 160 * time.Millisecond, DeadAfter: 5 * time.Second,
}

// Names lists the scenarios in the order they run.
var Names = []string{"regions", "items", "wide", "throttle", "low-quota", "route53-like", "faults", "dead-endpoint", "stream", "pipeline", "org"}

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
	case "wide":
		o, err = wide(ctx, impl, p)
	case "throttle":
		o, err = throttle(ctx, impl, p)
	case "low-quota":
		o, err = lowQuota(ctx, impl, p)
	case "route53-like":
		o, err = route53Like(ctx, impl, p)
	case "faults":
		o, err = faults(ctx, impl, p)
	case "dead-endpoint":
		o, err = deadEndpoint(ctx, impl, p)
	case "stream":
		o, err = stream(ctx, impl, p)
	case "pipeline":
		o, err = pipeline(ctx, impl, p)
	case "org":
		o, err = org(ctx, impl, p)
	default:
		return o, fmt.Errorf("scenario: unknown scenario %q; want one of %q", name, Names)
	}
	o.Scenario = name
	return o, err
}

// jittered is the latency of a call of d: d, plus up to p.Jitter of it,
// drawn per request, so that calls started together do not end together.
func (p Params) jittered(d time.Duration) fanouttest.Latency {
	return fanouttest.Latency{Fixed: d, Jitter: time.Duration(float64(d) * p.Jitter)}
}

// regions: every region, Pages pages each, latency per region spread up
// to PageLatency; ideal is the slowest region's pages one after another,
// each taking a call at PageLatency at Limit 1.
func regions(ctx context.Context, impl string, p Params) (Outcome, error) {
	names := fanouttest.DefaultRegions[:min(p.Regions, len(fanouttest.DefaultRegions))]
	var slow []fanouttest.Rule
	for i, r := range names {
		if l := p.PageLatency * time.Duration(i+1) / time.Duration(len(names)); l > 0 {
			slow = append(slow, fanouttest.Rule{Region: r, Latency: p.jittered(l)})
		}
	}
	call, err := CallTime(ctx, p.jittered(p.PageLatency))
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	const pageSize = 5
	srv, err := fanouttest.New(fanouttest.Config{Instances: p.Pages * pageSize, Faults: slow})
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	defer srv.Close()
	o, err := run(ctx, impl, target{srv: srv, limit: p.Limit, keys: names, call: describePages(pageSize)})
	o.IdealS, o.CallS = (time.Duration(p.Pages) * call).Seconds(), call.Seconds()
	return o, err
}

// items: Items calls of Latency each in one region at ItemsLimit; ideal
// is IdealCalls, from the call time at Limit 1.
func items(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl == Sequential {
		return Outcome{Impl: impl}, ErrSkipped
	}
	limit := p.ItemsLimit
	if limit == 0 {
		limit = p.Limit
	}
	return calls(ctx, impl, p, p.Items, p.Latency, limit)
}

// wide: WideItems calls of WideLatency at WideLimit in one region, a
// Limit far above what one client was once allowed in flight.
func wide(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl == Sequential || impl == Naive {
		return Outcome{Impl: impl}, ErrSkipped
	}
	return calls(ctx, impl, p, p.WideItems, p.WideLatency, p.WideLimit)
}

// calls makes n calls of latency at limit in one region; ideal is
// IdealCalls.
func calls(ctx context.Context, impl string, p Params, n int, latency time.Duration, limit int) (Outcome, error) {
	call, err := CallTime(ctx, p.jittered(latency))
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	srv, err := fanouttest.New(fanouttest.Config{Instances: 1, Latency: p.jittered(latency)})
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	defer srv.Close()
	o, err := run(ctx, impl, target{srv: srv, limit: limit, keys: repeat("us-east-1", n), call: describeOnce})
	o.IdealS, o.CallS = IdealCalls(n, call, limit).Seconds(), call.Seconds()
	return o, err
}

// throttle: Items calls, at most 1,000, in one region against Bucket,
// with Latency; ideal is IdealBucket.
func throttle(ctx context.Context, impl string, p Params) (Outcome, error) {
	return bucketed(ctx, impl, p, min(p.Items, 1000), p.Bucket, p.Latency, p.Adaptive)
}

// lowQuota: up to 600 calls in one region against a bucket of 20 burst /
// 40 per second, with no latency: a quota far below one request per round
// trip, which no limit on requests in flight can meet.
func lowQuota(ctx context.Context, impl string, p Params) (Outcome, error) {
	return bucketed(ctx, impl, p, min(p.Items, 600), fanouttest.Bucket{Burst: 20, PerSecond: 40}, 0, nil)
}

// route53Like: up to 100 calls in one region against a bucket of 5 burst /
// 5 per second, with 50 ms latency: the five requests per second per
// account that Route 53 long documented, a quarter of a request per round
// trip.
func route53Like(ctx context.Context, impl string, p Params) (Outcome, error) {
	return bucketed(ctx, impl, p, min(p.Items, 100), fanouttest.Bucket{Burst: 5, PerSecond: 5}, 50*time.Millisecond, nil)
}

// bucketed: n calls at Limit in one region against bucket (the
// non-mutating one, which DescribeInstances with MaxResults draws on),
// with latency; adaptive, when not nil, tunes the fanout implementation's
// adaptive limits, and no Rate is set otherwise. Ideal is IdealBucket,
// from the call time at Limit 1.
func bucketed(ctx context.Context, impl string, p Params, n int, bucket fanouttest.Bucket, latency time.Duration, adaptive func(*fanout.AdaptiveOptions)) (Outcome, error) {
	if impl == Sequential || impl == Naive {
		return Outcome{Impl: impl}, ErrSkipped
	}
	call, err := CallTime(ctx, p.jittered(latency))
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	srv, err := fanouttest.New(fanouttest.Config{
		Instances: 1, Latency: p.jittered(latency),
		Throttle: fanouttest.Buckets{NonMutating: bucket},
	})
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	defer srv.Close()
	o, err := run(ctx, impl, target{srv: srv, limit: p.Limit, keys: repeat("us-east-1", n), call: describeOnce, adaptive: adaptive, bucket: bucket})
	o.IdealS, o.CallS = IdealBucket(n, call, p.Limit, bucket).Seconds(), call.Seconds()
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
		Instances: 5, Latency: p.jittered(p.Latency),
		Faults: []fanouttest.Rule{
			{Region: Failing, Fault: fanouttest.Error500}, {Region: Hanging, Fault: fanouttest.Hang}, {Region: Disabled, Fault: fanouttest.Disabled},
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

// deadEndpoint: DeadItems calls of DeadLatency each in one region at
// Limit; the endpoint goes away DeadAfter into the run (its listener
// closed, its connections dropped), so every call left fails. Ideal is
// that they fail at the kill.
func deadEndpoint(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl == Sequential || impl == Naive {
		return Outcome{Impl: impl}, ErrSkipped
	}
	srv, err := fanouttest.New(fanouttest.Config{Instances: 1, Latency: p.jittered(p.DeadLatency)})
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	defer srv.Close()
	k := killAfter(srv, p.DeadAfter)
	o, err := run(ctx, impl, target{srv: srv, limit: p.Limit, keys: repeat("us-east-1", p.DeadItems), call: k.watch(describeOnce)})
	o.KilledAtS, o.AfterKill, o.AfterKillS = k.stop()
	o.IdealS = p.DeadAfter.Seconds()
	return o, err
}

// kill closes a server after a delay, and times the calls that end after.
type kill struct {
	timer  *time.Timer
	closed chan struct{}

	mu    sync.Mutex
	start time.Time
	at    time.Time // when the server went away; zero before
	after int       // calls that ended after it
	last  time.Time // when the last of them ended
}

func killAfter(srv *fanouttest.Server, d time.Duration) *kill {
	k := &kill{closed: make(chan struct{}), start: time.Now()}
	k.timer = time.AfterFunc(d, func() {
		defer close(k.closed)
		k.mu.Lock()
		k.at = time.Now()
		k.mu.Unlock()
		srv.Close()
	})
	return k
}

// watch times each call that ends after the kill.
func (k *kill) watch(call func(context.Context, *ec2.Client) (int, error)) func(context.Context, *ec2.Client) (int, error) {
	return func(ctx context.Context, c *ec2.Client) (int, error) {
		v, err := call(ctx, c)
		k.mu.Lock()
		defer k.mu.Unlock()
		if !k.at.IsZero() {
			k.after++
			if now := time.Now(); now.After(k.last) {
				k.last = now
			}
		}
		return v, err
	}
}

// stop cancels a kill that has not happened, or waits for the server to
// be closed, and returns when the kill came (0 if it did not), how many
// calls ended after it, and how long after it the last of them ended.
func (k *kill) stop() (atS float64, after int, lastS float64) {
	if !k.timer.Stop() {
		<-k.closed
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.at.IsZero() {
		return 0, 0, 0
	}
	atS = k.at.Sub(k.start).Seconds()
	if k.after == 0 {
		return atS, 0, 0
	}
	return atS, k.after, k.last.Sub(k.at).Seconds()
}

// stream: StreamItems no-op items through Stream, for its peak heap.
func stream(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl != Fanout {
		return Outcome{Impl: impl}, ErrSkipped
	}
	keys := repeat("k", p.StreamItems)
	o := Outcome{Impl: impl, Items: len(keys), Limit: p.Limit}
	stop := sampleHeap(&o)
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
