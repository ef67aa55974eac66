package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/trace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// outcome names a result's outcome as telemetry does.
func outcome[T any](r fanout.Result[T]) string {
	var pe *fanout.PanicError
	switch {
	case r.Err == nil && r.Skipped != nil:
		return fanout.OutcomeSkipped
	case r.Err == nil:
		return fanout.OutcomeOK
	case errors.Is(r.Err, fanout.ErrNotStarted):
		return fanout.OutcomeNotStarted
	case errors.As(r.Err, &pe):
		return fanout.OutcomePanic
	}
	return fanout.OutcomeError
}

// outcomes counts results by outcome.
func outcomes[T any](rs fanout.Results[T]) map[string]int {
	n := map[string]int{}
	for _, r := range rs {
		n[outcome(r)]++
	}
	return n
}

// TestTelemetryCountsEqualResults: the items counted by outcome are the
// results, each item has one span under the call's, and the items in
// flight come back to 0.
func TestTelemetryCountsEqualResults(t *testing.T) {
	t.Parallel()
	tel := &memTel{}
	var logs bytes.Buffer
	f := fanout.New[int](func(o *fanout.Options) {
		o.Limit = 3
		o.TracerProvider, o.MeterProvider = tel, tel
		o.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	op := func(ctx context.Context, key string) (int, error) {
		var i int
		fmt.Sscanf(key, "k%d", &i)
		switch {
		case i == 30:
			cancel() // the items not started yet fail as not started
		case i%7 == 1:
			return 0, errors.New("boom")
		case i%7 == 2:
			return 0, fanout.Skip(errors.New("nothing here"))
		case i%7 == 3:
			panic("op panicked")
		}
		return i, nil
	}
	res, _ := f.Run(ctx, keys, op)
	want := outcomes(res)
	if want[fanout.OutcomeNotStarted] == 0 || want[fanout.OutcomePanic] == 0 || want[fanout.OutcomeSkipped] == 0 {
		t.Fatalf("the test needs every outcome; got %v", want)
	}
	for _, out := range []string{fanout.OutcomeOK, fanout.OutcomeError, fanout.OutcomeSkipped, fanout.OutcomeNotStarted, fanout.OutcomePanic} {
		if got, _ := tel.sum(fanout.MetricItemsDone, map[string]any{fanout.AttrOutcome: out}); int(got) != want[out] {
			t.Errorf("%s: %v counted; the results have %d", out, got, want[out])
		}
		durations := want[out]
		if out == fanout.OutcomeNotStarted {
			durations = 0 // they took no time
		}
		if _, n := tel.sum(fanout.MetricItemDuration, map[string]any{fanout.AttrOutcome: out}); n != durations {
			t.Errorf("%s: %d durations; want %d", out, n, durations)
		}
	}
	if got, n := tel.sum(fanout.MetricInFlight, nil); got != 0 || n == 0 {
		t.Errorf("in flight: %v after %d changes; want 0", got, n)
	}
	calls, items := tel.named(fanout.SpanCall), tel.named(fanout.SpanItem)
	if len(calls) != 1 || len(items) != len(keys) {
		t.Fatalf("%d call spans, %d item spans; want 1 and %d", len(calls), len(items), len(keys))
	}
	if calls[0].prop(fanout.AttrCallItems) != len(keys) || !calls[0].ended || calls[0].status != tracing.SpanStatusError {
		t.Errorf("call span: %v, ended %v, status %v", calls[0].props, calls[0].ended, calls[0].status)
	}
	byKey := map[any]*memSpan{}
	for _, s := range items {
		byKey[s.prop(fanout.AttrKey)] = s
		if s.parent != calls[0] || !s.ended {
			t.Errorf("item span %v: parent %v, ended %v", s.props, s.parent, s.ended)
		}
	}
	for _, r := range res {
		s := byKey[r.Key]
		if s == nil {
			t.Fatalf("no span for %s", r.Key)
		}
		if got := s.prop(fanout.AttrOutcome); got != outcome(r) {
			t.Errorf("%s: span outcome %v; result %+v", r.Key, got, r)
		}
		started := len(s.events) == 1 && s.events[0] == fanout.EventStarted
		if started == errors.Is(r.Err, fanout.ErrNotStarted) {
			t.Errorf("%s: events %v for result %v", r.Key, s.events, r.Err)
		}
	}
	if n := strings.Count(logs.String(), "msg=\"fanout: item\""); n != len(keys) {
		t.Errorf("%d item records; want %d", n, len(keys))
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != want[fanout.OutcomePanic] {
		t.Errorf("%d Warn records; want one per panic, %d:\n%s", n, want[fanout.OutcomePanic], logs.String())
	}
}

// syncWriter serializes writes to w, for a log handler shared by workers.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// TestTelemetryOverTheWire: over fanouttest, with the pool's providers,
// the SDK's spans nest under the items' (attempts under the operation
// under the item under the call), every SDK span and measurement names
// its region, throttled attempts are marked on the SDK's spans and
// counted as the results count them, and the SDK's measurements name
// the account only with AccountAttribute.
func TestTelemetryOverTheWire(t *testing.T) {
	t.Parallel()
	accounts := []string{"111111111111", "222222222222"}
	regions := []string{"eu-west-1", "us-west-2", "ap-south-1"}
	for _, accountAttr := range []bool{false, true} {
		t.Run(fmt.Sprint("AccountAttribute ", accountAttr), func(t *testing.T) {
			t.Parallel()
			srv := newFake(t, fanouttest.Config{Accounts: accounts, Instances: 3, // every call's first attempt in us-west-2 throttled
				Faults: []fanouttest.Rule{{Region: "us-west-2", Operation: "DescribeInstances", Attempts: 1, Fault: fanouttest.Throttled}}})
			cfg := srv.AWSConfig("us-east-1")
			tel := &memTel{}
			pool := newPool(t, cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) {
				o.Accounts = newAccounts(t, cfg)
				o.TracerProvider, o.MeterProvider, o.AccountAttribute = tel, tel, accountAttr
				o.Retryer = fastRetries
			})
			op := func(ctx context.Context, c *ec2.Client, _, _ string) (int, error) {
				n := 0
				for range 3 {
					out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
					if err != nil {
						return 0, err
					}
					n += len(out.Reservations)
				}
				return n, nil
			}
			res, err := fanout.AccountRegions(context.Background(), fanout.New[int](), pool, accounts, regions, op)
			if err != nil || len(res) != len(accounts)*len(regions) {
				t.Fatalf("%d results: %v", len(res), err)
			}
			throttles := 0
			for _, r := range res {
				throttles += r.Throttles
			}
			if throttles != 3*len(accounts) {
				t.Fatalf("%d attempts throttled; want the first of each of the %d calls in us-west-2", throttles, 3*len(accounts))
			}
			if got, _ := tel.sum(fanout.MetricItemsDone, map[string]any{fanout.AttrOutcome: fanout.OutcomeOK}); int(got) != len(res) {
				t.Errorf("%v items counted ok; want %d", got, len(res))
			}
			if got, _ := tel.sum(fanout.MetricClientThrottles, nil); int(got) != throttles {
				t.Errorf("%v throttles counted; the results count %d", got, throttles)
			}
			if got, _ := tel.sum(fanout.MetricClientThrottles, map[string]any{fanout.AttrRegion: "us-west-2"}); int(got) != throttles {
				t.Errorf("%v throttles counted in us-west-2; want all %d", got, throttles)
			}

			// Nesting: Attempt < RetryLoop < EC2.DescribeInstances < fanout.item < fanout.call < fanout.account_regions.
			calls := tel.named(fanout.SpanCall)
			if len(calls) != 1 {
				t.Fatalf("%d call spans", len(calls))
			}
			items := tel.named(fanout.SpanItem)
			if len(items) != len(res) {
				t.Fatalf("%d item spans; want %d", len(items), len(res))
			}
			marked, held := 0, 0
			for _, a := range tel.named("Attempt") {
				chain := []string{}
				for s := a; s != nil; s = s.parent {
					chain = append(chain, s.name)
				}
				if got := strings.Join(chain, " < "); got != "Attempt < RetryLoop < EC2.DescribeInstances < fanout.item < fanout.call < fanout.account_regions" {
					t.Fatalf("an attempt's ancestry: %s", got)
				}
				item := a.parent.parent.parent
				if a.prop(fanout.AttrRegion) != item.prop(fanout.AttrRegion) || a.prop(fanout.AttrAccountID) != item.prop(fanout.AttrAccountID) ||
					a.prop(fanout.AttrAccountID) == nil {
					t.Errorf("attempt in %v/%v under item %v/%v", a.prop(fanout.AttrAccountID), a.prop(fanout.AttrRegion),
						item.prop(fanout.AttrAccountID), item.prop(fanout.AttrRegion))
				}
				if a.prop(fanout.AttrThrottled) == true {
					marked++
				}
				if w := a.prop(fanout.AttrWait); w != nil {
					if a.prop(fanout.AttrRegion) != "us-west-2" {
						t.Errorf("an attempt in %v, never throttled, was held %v s", a.prop(fanout.AttrRegion), w)
					}
					held++
				}
			}
			if marked != throttles {
				t.Errorf("%d attempts marked throttled; the results count %d", marked, throttles)
			}
			t.Logf("%d attempts held by the adaptive limit", held)

			// The SDK's own measurements name the region, and the account only when asked.
			if got := tel.values("client.call.duration", fanout.AttrRegion); strings.Join(got, ",") != "ap-south-1,eu-west-1,us-west-2" {
				t.Errorf("the SDK's call durations name the regions %v", got)
			}
			got := tel.values("client.call.duration", fanout.AttrAccountID)
			if want := map[bool]int{false: 0, true: 2}[accountAttr]; len(got) != want {
				t.Errorf("the SDK's call durations name the accounts %v; want %d", got, want)
			}
			if got := tel.values(fanout.MetricItemsDone, fanout.AttrAccountID); len(got) != map[bool]int{false: 0, true: 2}[accountAttr] {
				t.Errorf("the items name the accounts %v", got)
			}
			if _, n := tel.sum(fanout.MetricClientLimit, map[string]any{fanout.AttrRegion: "us-west-2"}); n == 0 {
				t.Error("the throttled client's limit was never sampled")
			}
		})
	}
}

// TestTelemetryWarnings: the pool's Logger hears at Warn of an account
// denied (once), of an item throttled past its retries and of a call
// whose every region answered as not enabled, with the item's context;
// no record holds a credential.
func TestTelemetryWarnings(t *testing.T) {
	t.Parallel()
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	good, denied := "111111111111", "999999999999"
	srv := newFake(t, fanouttest.Config{Accounts: []string{good},
		RegionThrottle: map[string]fanouttest.Buckets{"us-west-2": {NonMutating: fanouttest.Bucket{Burst: 1}}}, // never refilled
		Faults:         []fanouttest.Rule{{Region: "me-south-1", Fault: fanouttest.Disabled}}})
	cfg := srv.AWSConfig("us-east-1")
	cfg.Credentials = secretKeys{cfg.Credentials, secret}
	var logs bytes.Buffer
	w := &syncWriter{w: &logs}
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.Accounts = newAccounts(t, cfg)
		o.Retryer = fastRetries
		o.Logger = slog.New(slog.NewJSONHandler(w, nil))
	})
	op := func(ctx context.Context, c *sts.Client, _, _ string) (string, error) {
		for range 2 {
			if _, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
				return "", err
			}
		}
		return "", nil
	}
	_, _ = fanout.AccountRegions(context.Background(), fanout.New[string](), pool, []string{good, denied}, []string{"eu-west-1", "us-west-2"}, op)
	out := w.String()
	for _, want := range []string{
		`"msg":"fanout: account denied: its items fail","account":"999999999999"`,
		`"msg":"fanout: throttled past the retries`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "account denied"); n != 1 {
		t.Errorf("%d records of the denied account; want 1", n)
	}
	_, _ = fanout.Regions(context.Background(), fanout.New[string](), pool, []string{"me-south-1"},
		func(ctx context.Context, c *sts.Client, _ string) (string, error) { return op(ctx, c, "", "") })
	if out = w.String(); !strings.Contains(out, "every region answered as not enabled") {
		t.Errorf("no warning for every region disabled:\n%s", out)
	}
	if strings.Contains(out, secret) || strings.Contains(out, "AKID") {
		t.Errorf("a record holds a credential:\n%s", out)
	}
	if strings.Contains(out, `"level":"DEBUG"`) {
		t.Errorf("Debug records at the default level:\n%s", out)
	}
}

// secretKeys gives p's credentials with a secret key of its own, so that a
// test can look for it where it must not be.
type secretKeys struct {
	p      aws.CredentialsProvider
	secret string
}

func (s secretKeys) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := s.p.Retrieve(ctx)
	c.SecretAccessKey = s.secret
	return c, err
}

// TestTelemetryPanics: telemetry never changes a result. A provider or a
// logger of the caller's that panics, anywhere, turns the call's
// telemetry off and leaves every item's outcome as its operation made
// it, under Run and under Stream with OnDone (where an item's units are
// handed back item by item, so that a panic between acquire and release
// would hang the call).
func TestTelemetryPanics(t *testing.T) {
	t.Parallel()
	keys := []string{"a", "b", "c", "d"}
	op := func(context.Context, string) (int, error) { return 1, nil }
	for name, set := range map[string]func(*fanout.Options){
		"call span":  func(o *fanout.Options) { o.TracerProvider = panicky{} },
		"item span":  func(o *fanout.Options) { o.TracerProvider = panicky{onItem: true} },
		"Meter":      func(o *fanout.Options) { o.MeterProvider = panicky{} },
		"Record":     func(o *fanout.Options) { o.MeterProvider = panickyMeter{method: "Record"} },
		"Add":        func(o *fanout.Options) { o.MeterProvider = panickyMeter{method: "Add"} },
		"Logger":     func(o *fanout.Options) { o.Logger = slog.New(panickyHandler{}) },
		"span ended": func(o *fanout.Options) { o.TracerProvider = panicky{onItem: true, onEnd: true} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := fanout.New[int](set, func(o *fanout.Options) { o.Limit = 1 }).Run(context.Background(), keys, op)
			if len(res) != len(keys) || err != nil {
				t.Fatalf("Run: %v, %v", res, err)
			}
			f := fanout.New[int](set, func(o *fanout.Options) { o.Limit, o.OnDone = 1, func(fanout.Progress) {} })
			n := 0
			for r := range f.Stream(context.Background(), keys, op) {
				if r.Err != nil {
					t.Errorf("Stream: %s: %v", r.Key, r.Err)
				}
				n++
			}
			if n != len(keys) {
				t.Errorf("Stream: %d results", n)
			}
		})
	}
}

// panicky is a provider that panics: on the call's span, or with onItem
// on the items', or with onEnd too when the items' spans end.
type panicky struct{ onItem, onEnd bool }

func (p panicky) Tracer(string, ...tracing.TracerOption) tracing.Tracer { return p }
func (p panicky) StartSpan(ctx context.Context, name string, _ ...tracing.SpanOption) (context.Context, tracing.Span) {
	switch {
	case p.onEnd && name == fanout.SpanItem:
		return ctx, panickySpan{}
	case name == fanout.SpanItem || !p.onItem:
		panic("no spans today")
	}
	return ctx, nil
}

type panickySpan struct{ tracing.Span }

func (panickySpan) AddEvent(string, ...tracing.EventOption) {}
func (panickySpan) SetStatus(tracing.SpanStatus)            {}
func (panickySpan) SetProperty(k, v any)                    {}
func (panickySpan) End()                                    { panic("no ends today") }

// panickyMeter's instruments panic in the method named.
type panickyMeter struct{ method string }

func (m panickyMeter) Meter(string, ...metrics.MeterOption) metrics.Meter {
	return panickyInstruments{nopMeter(), m}
}

func nopMeter() metrics.Meter { return metrics.NopMeterProvider{}.Meter("") }

// panickyInstruments makes panickyMeter's instruments, and the rest no-op.
type panickyInstruments struct {
	metrics.Meter
	m panickyMeter
}

func (m panickyInstruments) Int64Counter(string, ...metrics.InstrumentOption) (metrics.Int64Counter, error) {
	return m.m, nil
}
func (m panickyInstruments) Int64UpDownCounter(string, ...metrics.InstrumentOption) (metrics.Int64UpDownCounter, error) {
	return m.m, nil
}
func (m panickyInstruments) Float64Histogram(string, ...metrics.InstrumentOption) (metrics.Float64Histogram, error) {
	return panickyHist(m.m), nil
}
func (m panickyMeter) Add(context.Context, int64, ...metrics.RecordMetricOption) {
	if m.method == "Add" {
		panic("no counts today")
	}
}

type panickyHist panickyMeter

func (m panickyHist) Record(context.Context, float64, ...metrics.RecordMetricOption) {
	if m.method == "Record" {
		panic("no histograms today")
	}
}
func (p panicky) Meter(string, ...metrics.MeterOption) metrics.Meter { panic("no meters today") }

type panickyHandler struct{ slog.Handler }

func (panickyHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panickyHandler) Handle(context.Context, slog.Record) error { panic("no logs today") }

// TestExecutionTrace: with Go's execution tracer on, each item is a task
// of its own, named for the item.
func TestExecutionTrace(t *testing.T) {
	// Not parallel: the execution tracer is the process's.
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skip("the execution tracer is in use:", err)
	}
	res, err := fanout.New[int]().Run(context.Background(), []string{"item-one", "item-two"},
		func(context.Context, string) (int, error) { return 1, nil })
	trace.Stop()
	if err != nil || len(res) != 2 {
		t.Fatal(res, err)
	}
	for _, want := range []string{fanout.SpanItem, fanout.SpanCall, "item-one", "item-two"} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("the trace does not name %q", want)
		}
	}
}

// TestProvidersNeedTheirFields: a pool whose client options have no field
// for a provider says so when it is made, naming it.
func TestProvidersNeedTheirFields(t *testing.T) {
	t.Parallel()
	type bare struct{ Region string }
	newBare := func(aws.Config, ...func(*bare)) *bare { return &bare{} }
	_, err := fanout.NewClientPool(aws.Config{}, newBare, func(o *fanout.PoolOptions[bare]) { o.TracerProvider = &memTel{} })
	if err == nil || !strings.Contains(err.Error(), "PoolOptions.TracerProvider is set, but the client options, fanout_test.bare, have no field TracerProvider") {
		t.Errorf("got %v", err)
	}
}

// TestTelemetryBreaker: a breaker that opens is sampled, with its region,
// and the pool's Logger hears of it at Warn, naming the client.
func TestTelemetryBreaker(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Region: "eu-west-1", Fault: fanouttest.Reset}}})
	tel := &memTel{}
	logs := &syncWriter{w: &bytes.Buffer{}}
	pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.Breaker.Threshold = 2
		o.Retryer = fastRetries
		o.MeterProvider = tel
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	for _, r := range identities(t, pool, "eu-west-1", keysN(3), 1) {
		if !errors.Is(r.Err, fanout.ErrEndpointDown) {
			t.Fatalf("%s: %v; want ErrEndpointDown", r.Key, r.Err)
		}
	}
	if got, n := tel.sum(fanout.MetricClientBreaker, map[string]any{fanout.AttrRegion: "eu-west-1"}); n != 1 || got != float64(fanout.BreakerOpen) {
		t.Errorf("breaker state: %d samples, last %v; want one, open", n, got)
	}
	if out := logs.String(); strings.Count(out, "level=WARN msg=\"fanout: breaker opened") != 1 || !strings.Contains(out, "client=eu-west-1") {
		t.Errorf("records:\n%s", out)
	}
}

// TestSiblingSpansKeepTheirParents: smithy-go's tracing.WithSpan appends
// to its parent's span lineage, so two spans started from one context
// with room in its lineage write into one array, each over the other. The
// items of a call are such siblings, at any depth of the caller's own
// spans: each item's child span must still be under that item.
func TestSiblingSpansKeepTheirParents(t *testing.T) {
	t.Parallel()
	for depth := range 5 {
		t.Run(fmt.Sprint("depth ", depth), func(t *testing.T) {
			t.Parallel()
			tel := &memTel{}
			ctx := context.Background()
			for i := range depth {
				ctx, _ = tel.Tracer("caller").StartSpan(ctx, fmt.Sprint("caller-", i))
			}
			keys := keysN(8)
			var all sync.WaitGroup
			all.Add(len(keys))
			f := fanout.New[int](func(o *fanout.Options) { o.Limit, o.TracerProvider = int64(len(keys)), tel })
			_, err := f.Run(ctx, keys, func(ctx context.Context, key string) (int, error) {
				all.Done()
				all.Wait() // every item's span started: the siblings all exist
				_, child := tel.Tracer("op").StartSpan(ctx, "child-"+key)
				child.End()
				return 0, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tel.spans {
				if !strings.HasPrefix(s.name, "child-") {
					continue
				}
				if s.parent == nil || s.parent.name != fanout.SpanItem || "child-"+fmt.Sprint(s.parent.prop(fanout.AttrKey)) != s.name {
					t.Errorf("%s is under %v", s.name, s.parent)
				}
			}
		})
	}
}

// TestTelemetryCountsEqualResultsOfASequence: a sequence cut short by its
// ctx, whose rest is one result not started, and items whose OnDone
// panics are counted as their results say.
func TestTelemetryCountsEqualResultsOfASequence(t *testing.T) {
	t.Parallel()
	tel := &memTel{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	endless := func(yield func(int) bool) {
		for i := 0; ; i++ {
			if !yield(i) {
				return
			}
		}
	}
	f := fanout.New[int](func(o *fanout.Options) {
		o.Limit, o.MeterProvider, o.TracerProvider = 2, tel, tel
		o.OnDone = func(p fanout.Progress) {
			if p.Index%3 == 0 {
				panic("progress bar broke")
			}
		}
	})
	want := map[string]int{}
	for r := range fanout.StreamItems(ctx, f, endless, func(ctx context.Context, i int) (int, error) {
		if i == 10 {
			cancel()
		}
		return i, nil
	}) {
		want[outcome(r.Result)]++
	}
	if want[fanout.OutcomeNotStarted] == 0 || want[fanout.OutcomePanic] == 0 {
		t.Fatalf("the test needs items not started and OnDone panics; got %v", want)
	}
	for out, n := range want {
		if got, _ := tel.sum(fanout.MetricItemsDone, map[string]any{fanout.AttrOutcome: out}); int(got) != n {
			t.Errorf("%s: %v counted; the results have %d", out, got, n)
		}
	}
	if items := tel.named(fanout.SpanItem); len(items) != want[fanout.OutcomeOK]+want[fanout.OutcomePanic]+want[fanout.OutcomeNotStarted] {
		t.Errorf("%d item spans for %v", len(items), want)
	}
}

// TestTelemetryInFlightBalancedWhenBroken: once a call's telemetry is off
// (its logger panicked), the items still running are counted out of
// fanout.items.in_flight all the same.
func TestTelemetryInFlightBalancedWhenBroken(t *testing.T) {
	t.Parallel()
	tel := &memTel{}
	all, broke := make(chan struct{}), make(chan struct{})
	var started atomic.Int32
	f := fanout.New[int](func(o *fanout.Options) {
		o.Limit, o.MeterProvider = 4, tel
		o.Logger = slog.New(breakingHandler{broke: broke, once: new(sync.Once)})
	})
	_, err := f.Run(context.Background(), keysN(4), func(ctx context.Context, key string) (int, error) {
		if started.Add(1) == 4 {
			close(all)
		}
		<-all // all four counted in flight
		if key != "k0" {
			<-broke // the first has ended, and its record broke the call's telemetry
		}
		return 1, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, n := tel.sum(fanout.MetricInFlight, nil); got != 0 || n != 8 {
		t.Errorf("in flight: %v after %d changes; want 0 after 8", got, n)
	}
}

// breakingHandler closes broke, then panics, on its first record.
type breakingHandler struct {
	slog.Handler
	broke chan struct{}
	once  *sync.Once
}

func (breakingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h breakingHandler) Handle(context.Context, slog.Record) error {
	defer h.once.Do(func() { close(h.broke) })
	panic("the log backend is down")
}

// TestOperationSpansKeepTheirParents: two spans the operation starts from
// its item's context are siblings too: a span under each must stay under
// it.
func TestOperationSpansKeepTheirParents(t *testing.T) {
	t.Parallel()
	for depth := range 4 {
		tel := &memTel{}
		ctx := context.Background()
		for i := range depth {
			ctx, _ = tel.Tracer("caller").StartSpan(ctx, fmt.Sprint("caller-", i))
		}
		f := fanout.New[int](func(o *fanout.Options) { o.TracerProvider = tel })
		_, err := f.Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
			tr := tel.Tracer("op")
			ctxA, _ := tr.StartSpan(ctx, "child-A")
			ctxB, _ := tr.StartSpan(ctx, "child-B")
			tr.StartSpan(ctxA, "grand-A")
			tr.StartSpan(ctxB, "grand-B")
			return 0, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []string{"A", "B"} {
			if s := tel.named("grand-" + g); len(s) != 1 || s[0].parent == nil || s[0].parent.name != "child-"+g {
				t.Errorf("depth %d: grand-%s is not under child-%s", depth, g, g)
			}
		}
	}
}
