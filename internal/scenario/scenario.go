// Package scenario runs the benchmark scenarios against fanouttest with
// each implementation side by side: the bench command prints them, and
// the tests run them with small numbers.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/sync/errgroup"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// The implementations, by the names the bench command prints.
const (
	Sequential   = "sequential"    // a plain loop
	Naive        = "naive"         // a goroutine per call, LoadDefaultConfig per call
	Errgroup     = "errgroup"      // errgroup.SetLimit, one config, the SDK's default clients
	SDKAdaptive  = "sdk-adaptive"  // errgroup.SetLimit, the SDK's default clients in its adaptive retry mode
	ErrgroupPool = "errgroup-pool" // errgroup.SetLimit over this library's ClientPool: its clients, not its engine
	Fanout       = "fanout"        // this library
	Told         = "told"          // a reference: errgroup.SetLimit over clients told a bucket's rate and burst at their first answer (see newToldPool)
)

// Impls lists the implementations in the order they are compared. Every
// one but Fanout is a peer: what a user would pick instead.
var Impls = []string{Sequential, Naive, Errgroup, SDKAdaptive, ErrgroupPool, Fanout}

// References are the implementations that are nobody's peer: Told, what a
// client reaches that is told the quota rather than learning it. They run
// when asked for, and in the regimes sweep, in the scenarios one bucket
// throttles.
var References = []string{Told}

// KnownImpls lists every implementation a scenario may be asked to run:
// Impls, then References.
func KnownImpls() []string { return append(Impls[:len(Impls):len(Impls)], References...) }

// IsReference says whether impl is one of References.
func IsReference(impl string) bool { return slices.Contains(References, impl) }

// ToldNote says what Told is, for a table that shows it.
func ToldNote() string {
	return fmt.Sprintf("%s is a reference, not a peer: a client told the bucket's rate and burst at its first answer; "+
		"each attempt after it waits for a token of its copy of the bucket, which refills %.0f%% and %v slower, "+
		"and a throttle is retried with no back-off", Told, 100*ToldMargin, ToldSlack)
}

// Outcome is one implementation's run of one scenario.
type Outcome struct {
	Scenario   string  `json:"scenario"`
	Impl       string  `json:"impl"`
	Items      int     `json:"items"`
	Failed     int     `json:"failed"`
	WallS      float64 `json:"wall_s"`
	IdealS     float64 `json:"ideal_s"`
	CPUS       float64 `json:"cpu_s"`
	Conns      int64   `json:"conns"`
	PeakHeapMB float64 `json:"peak_heap_mb"`
	PeakLiveMB float64 `json:"peak_live_mb"`
	PeakRSSMB  float64 `json:"peak_rss_mb,omitempty"` // the process's resident memory, sampled as the heap is

	// org: the accounts, and the AssumeRole calls made for them.
	Accounts        int   `json:"accounts,omitempty"`
	AssumeRoleCalls int64 `json:"assume_role_calls,omitempty"`
	Requests        int64 `json:"requests"`
	Throttled       int64 `json:"throttled"`
	Limit           int   `json:"limit"`

	// CallS is the call time the ideal builds on, measured at Limit 1
	// (CallTime), in the scenarios whose ideal is one.
	CallS float64 `json:"call_s,omitempty"`

	// BestPeer and XBestPeer compare the run with the other
	// implementations' runs of the same scenario; see ComparePeers.
	// Reference marks a run of one of References, which is nobody's peer.
	BestPeer  string  `json:"best_peer,omitempty"`
	XBestPeer float64 `json:"x_best_peer,omitempty"`
	Reference bool    `json:"reference,omitempty"`

	// Regime is the cell of the regimes sweep, in its runs, and Run the
	// run's number among the cell's runs, from 1, when the bench runs
	// each cell more than once.
	Regime *Regime `json:"regime,omitempty"`
	Run    int     `json:"run,omitempty"`

	// dead-endpoint: when the endpoint went away (0 if the run ended
	// first), how many calls ended after that, and how long after it the
	// last of them ended.
	KilledAtS  float64 `json:"killed_at_s,omitempty"`
	AfterKill  int     `json:"after_kill,omitempty"`
	AfterKillS float64 `json:"after_kill_s,omitempty"`

	// Errors holds up to a few of the failures, for a reader.
	Errors []string `json:"errors,omitempty"`

	// Per call, for tests: the key, the value and the error.
	Keys   []string `json:"-"`
	Values []int    `json:"-"`
	Errs   []error  `json:"-"`
}

// target is what a scenario's calls go to: a fanouttest server and a way
// to make one call against a client.
type target struct {
	srv   *fanouttest.Server
	limit int
	keys  []string // one per call: the region it goes to, repeated for many calls to one region
	call  func(ctx context.Context, c *ec2.Client) (int, error)
	// itemTimeout bounds each call in the implementations that can.
	itemTimeout time.Duration
	// adaptive, when not nil, tunes the fanout implementation's adaptive
	// limits, from fanout.DefaultAdaptiveOptions.
	adaptive func(*fanout.AdaptiveOptions)
	// bucket is the one bucket that throttles the calls, if one does: the
	// Told reference paces at its rate.
	bucket fanouttest.Bucket
}

// run runs t with impl and measures it.
func run(ctx context.Context, impl string, t target) (Outcome, error) {
	o := Outcome{Impl: impl, Items: len(t.keys), Limit: t.limit, Reference: IsReference(impl)}
	stopHeap := sampleHeap(&o)
	cpu0 := cpuTime()
	start := time.Now()
	values, errs, err := runImpl(ctx, impl, t)
	o.WallS = time.Since(start).Seconds()
	o.CPUS = (cpuTime() - cpu0).Seconds()
	stopHeap()
	if err != nil {
		return o, err
	}
	o.Keys, o.Values, o.Errs = t.keys, values, errs
	for _, e := range errs {
		if e != nil {
			o.Failed++
			if len(o.Errors) < 3 {
				o.Errors = append(o.Errors, e.Error())
			}
		}
	}
	st := t.srv.Stats()
	o.Conns, o.Requests, o.Throttled = st.Total.Conns, st.Total.Requests, st.Total.Throttled
	return o, nil
}

func runImpl(ctx context.Context, impl string, t target) ([]int, []error, error) {
	values, errs := make([]int, len(t.keys)), make([]error, len(t.keys))
	cfg := t.srv.AWSConfig("us-east-1")
	switch impl {
	case Sequential:
		clients := plainClients(cfg)
		defer clients.close()
		for i, k := range t.keys {
			values[i], errs[i] = callWithTimeout(ctx, t, clients.get(k))
		}
	case Naive:
		runNaive(ctx, t, cfg, values, errs)
	case Errgroup, SDKAdaptive:
		if impl == SDKAdaptive {
			cfg = adaptiveConfig(cfg)
		}
		clients := plainClients(cfg)
		defer clients.close()
		runErrgroup(ctx, t, clients.get, values, errs)
	case ErrgroupPool:
		pool, err := newPool(cfg, t)
		if err != nil {
			return nil, nil, err
		}
		defer pool.CloseIdleConnections()
		runErrgroup(ctx, t, pool.Get, values, errs)
	case Told:
		if t.bucket.PerSecond <= 0 {
			return nil, nil, ErrSkipped
		}
		pool, err := newToldPool(cfg, t)
		if err != nil {
			return nil, nil, err
		}
		defer pool.CloseIdleConnections()
		runErrgroup(ctx, t, pool.Get, values, errs)
	case Fanout:
		pool, err := newPool(cfg, t)
		if err != nil {
			return nil, nil, err
		}
		defer pool.CloseIdleConnections()
		f := fanout.New[int](func(o *fanout.Options) {
			o.Limit = int64(t.limit)
			o.ItemTimeout = t.itemTimeout
		})
		res, err := runFanout(ctx, f, pool, t)
		if res == nil {
			return nil, nil, err
		}
		for i, r := range res {
			values[i], errs[i] = r.Value, r.Err
		}
	default:
		return nil, nil, fmt.Errorf("scenario: unknown implementation %q; want one of %q", impl, KnownImpls())
	}
	return values, errs, nil
}

// adaptiveConfig is cfg in the SDK's adaptive retry mode, as
// config.LoadDefaultConfig(ctx, config.WithRetryMode(aws.RetryModeAdaptive))
// sets it: each client built from it gets its own retry.NewAdaptiveMode()
// with the SDK's defaults.
func adaptiveConfig(cfg aws.Config) aws.Config {
	cfg.RetryMode = aws.RetryModeAdaptive
	return cfg
}

// runNaive starts a goroutine per call, each with its own config.
func runNaive(ctx context.Context, t target, cfg aws.Config, values []int, errs []error) {
	var wg sync.WaitGroup
	for i, k := range t.keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A fresh connection pool per call, as LoadDefaultConfig
			// gives; without keep-alives, since it serves one call and
			// nothing could close its idle connection.
			hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.DisableKeepAlives = true })
			c, err := config.LoadDefaultConfig(ctx, config.WithRegion(k), config.WithHTTPClient(hc),
				config.WithBaseEndpoint(aws.ToString(cfg.BaseEndpoint)), config.WithCredentialsProvider(cfg.Credentials))
			if err != nil {
				errs[i] = err
				return
			}
			values[i], errs[i] = callWithTimeout(ctx, t, ec2.NewFromConfig(c))
		}()
	}
	wg.Wait()
}

// runErrgroup makes t's calls under errgroup.SetLimit, each with the
// client get returns for its region.
func runErrgroup(ctx context.Context, t target, get func(region string) *ec2.Client, values []int, errs []error) {
	var g errgroup.Group
	g.SetLimit(t.limit)
	for i, k := range t.keys {
		g.Go(func() error {
			values[i], errs[i] = callWithTimeout(ctx, t, get(k))
			return nil // errgroup would cancel the rest: keep every answer
		})
	}
	_ = g.Wait()
}

// newPool builds the ClientPool that the fanout, errgroup-pool and Told
// implementations share the settings of, then applies more, if any.
func newPool(cfg aws.Config, t target, more ...func(*fanout.PoolOptions[ec2.Options])) (*fanout.ClientPool[*ec2.Client], error) {
	shared := func(o *fanout.PoolOptions[ec2.Options]) {
		o.MaxIdleConnsPerHost = max(t.limit, fanout.DefaultMaxIdleConnsPerHost)
		if t.adaptive != nil {
			t.adaptive(&o.Adaptive)
		}
	}
	return fanout.NewClientPool(cfg, ec2.NewFromConfig, append([]func(*fanout.PoolOptions[ec2.Options]){shared}, more...)...)
}

// runFanout makes t's calls through Run, since several may go to one
// region, with errors classified as Regions classifies them.
func runFanout(ctx context.Context, f *fanout.Fanout[int], pool *fanout.ClientPool[*ec2.Client], t target) (fanout.Results[int], error) {
	return f.Run(ctx, t.keys, fanout.Classified(func(ctx context.Context, region string) (int, error) {
		return t.call(ctx, pool.Get(region))
	}))
}

func callWithTimeout(ctx context.Context, t target, c *ec2.Client) (int, error) {
	if t.itemTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.itemTimeout)
		defer cancel()
	}
	return t.call(ctx, c)
}

// clients built the plain way: one per region, each ec2.NewFromConfig of
// the shared config, with the SDK's defaults (its own HTTP client, the
// standard retryer with its quota).
type clientSet struct {
	mu  sync.Mutex
	cfg aws.Config
	m   map[string]*ec2.Client
}

func plainClients(cfg aws.Config) *clientSet {
	return &clientSet{cfg: cfg, m: map[string]*ec2.Client{}}
}

func (s *clientSet) get(region string) *ec2.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[region]
	if !ok {
		cfg := s.cfg.Copy()
		cfg.Region = region
		c = ec2.NewFromConfig(cfg)
		s.m[region] = c
	}
	return c
}

func (s *clientSet) close() {
	for _, c := range s.m {
		if hc, ok := c.Options().HTTPClient.(interface{ CloseIdleConnections() }); ok {
			hc.CloseIdleConnections()
		}
	}
}

// describePages describes the region's instances, pageSize a page, and
// returns how many it saw.
func describePages(pageSize int32) func(ctx context.Context, c *ec2.Client) (int, error) {
	return func(ctx context.Context, c *ec2.Client) (int, error) {
		p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(pageSize)})
		rs, err := fanout.Collect(ctx, p, p.NextPage, func(o *ec2.DescribeInstancesOutput) []ec2types.Reservation { return o.Reservations })
		return len(rs), err
	}
}

// describeOnce makes one DescribeInstances call of one page.
func describeOnce(ctx context.Context, c *ec2.Client) (int, error) {
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	if err != nil {
		return 0, err
	}
	return len(out.Reservations), nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sampleHeap records into o, until stop, the peak of the heap allocated
// (HeapAlloc, garbage not yet collected included: what the process holds)
// and the peak of the live heap (what the last collection found reachable:
// what the run retains, free of the collector's pacing).
func sampleHeap(o *Outcome) (stop func()) {
	runtime.GC()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		read := func() {
			runtime.ReadMemStats(&ms)
			metrics.Read(live)
			o.PeakHeapMB = max(o.PeakHeapMB, float64(ms.HeapAlloc)/(1<<20))
			o.PeakLiveMB = max(o.PeakLiveMB, float64(live[0].Value.Uint64())/(1<<20))
			o.PeakRSSMB = max(o.PeakRSSMB, rssMB())
		}
		for {
			read()
			select {
			case <-done:
				read() // the end too: a run shorter than a tick has two readings
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// ErrSkipped is returned for an implementation a scenario does not run
// (the plain loop where it would take minutes).
var ErrSkipped = errors.New("scenario: not run for this implementation")

// rssMB is the process's resident memory, from /proc/self/statm; 0 where
// there is no /proc.
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(fields[1], 10, 64)
	return float64(pages*int64(os.Getpagesize())) / (1 << 20)
}
