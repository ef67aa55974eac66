package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/internal/mototest"
)

func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true") // never ask a real IMDS for credentials
	mototest.Main(m)
}

func keysN(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	return keys
}

func TestRunOrderAndCompleteness(t *testing.T) {
	t.Parallel()
	keys := keysN(500)
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = 17 })
	res, err := f.Run(context.Background(), keys, func(ctx context.Context, key string) (string, error) {
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond) // vary completion order
		if strings.HasSuffix(key, "7") {
			return "", errors.New("odd one")
		}
		return strings.ToUpper(key), nil
	})
	if len(res) != len(keys) {
		t.Fatalf("got %d results for %d keys", len(res), len(keys))
	}
	failed := 0
	for i, r := range res {
		if r.Index != i || r.Key != keys[i] {
			t.Fatalf("result %d is {Index %d, Key %q}; want {%d, %q}", i, r.Index, r.Key, i, keys[i])
		}
		if strings.HasSuffix(r.Key, "7") {
			failed++
			var ie *fanout.ItemError
			if !errors.As(r.Err, &ie) || ie.Index != i || ie.Key != r.Key || r.Value != "" {
				t.Fatalf("result %d: Err %v Value %q; want an *ItemError for it and no value", i, r.Err, r.Value)
			}
			continue
		}
		if r.Err != nil || r.Value != strings.ToUpper(r.Key) || r.Elapsed <= 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if got := len(res.Failed()); got != failed {
		t.Errorf("Failed() has %d; want %d", got, failed)
	}
	if got := len(res.Values()); got != len(keys)-failed {
		t.Errorf("Values() has %d; want %d", got, len(keys)-failed)
	}
	if err == nil || err.Error() != res.Err().Error() {
		t.Errorf("Run's error %v; want Results.Err() %v", err, res.Err())
	}
}

// inflight tracks the weight running at once and the highest it reached.
type inflight struct {
	cur, peak atomic.Int64
}

func (c *inflight) add(w int64) {
	n := c.cur.Add(w)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
}

// hold counts weight w in flight while it waits for g, and opens g once
// the weight in flight reaches at: every item then waits until the bound
// has been reached, so the peak is the bound, without sleeping.
func (c *inflight) hold(t *testing.T, ctx context.Context, g *gate, w, at int64) error {
	c.add(w)
	defer c.add(-w)
	if c.cur.Load() >= at {
		g.open()
	}
	return g.wait(t, ctx)
}

// gate opens once the weight in flight reaches want, so every op can wait
// for the bound to be reached without sleeping.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) wait(t *testing.T, ctx context.Context) error {
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(10 * time.Second):
		t.Error("the limit was never reached")
		g.open()
		return nil
	}
}

func TestRunBoundReached(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		limit, weight int64
		keys          int
	}{
		"weight 1":            {limit: 8, weight: 1, keys: 100},
		"weight 2":            {limit: 10, weight: 2, keys: 60},
		"fewer keys":          {limit: 50, weight: 1, keys: 50},
		"weight is the limit": {limit: 3, weight: 3, keys: 5},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var c inflight
			g := newGate()
			f := fanout.New[int](func(o *fanout.Options) {
				o.Limit = tc.limit
				o.Weight = func(string) int64 { return tc.weight }
			})
			_, err := f.Run(context.Background(), keysN(tc.keys), func(ctx context.Context, key string) (int, error) {
				return 0, c.hold(t, ctx, g, tc.weight, tc.limit)
			})
			if err != nil {
				t.Fatal(err)
			}
			if p := c.peak.Load(); p != tc.limit {
				t.Errorf("peak weight in flight %d; want exactly the limit %d", p, tc.limit)
			}
		})
	}
}

func TestRunBoundMixedWeights(t *testing.T) {
	t.Parallel()
	const limit = 10
	weights := map[string]int64{}
	keys := keysN(300)
	for _, k := range keys {
		weights[k] = 1 + rand.Int64N(limit)
	}
	var c inflight
	f := fanout.New[int64](func(o *fanout.Options) {
		o.Limit = limit
		o.Weight = func(k string) int64 { return weights[k] }
	})
	res, err := f.Run(context.Background(), keys, func(ctx context.Context, key string) (int64, error) {
		w := weights[key]
		c.add(w)
		defer c.add(-w)
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond) // let items overlap
		return w, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Value != weights[keys[i]] {
			t.Fatalf("result %d: %d; want %d", i, r.Value, weights[keys[i]])
		}
	}
	if p := c.peak.Load(); p > limit || p < 1 {
		t.Errorf("peak weight in flight %d; want 1..%d", p, limit)
	}
}

func TestConcurrentRunsShareTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 4
	var c inflight
	g := newGate()
	op := func(ctx context.Context, key string) (int, error) {
		return 1, c.hold(t, ctx, g, 1, limit)
	}
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = limit })
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Run(context.Background(), keysN(20), op); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := c.peak.Load(); p != limit {
		t.Errorf("peak in flight across 3 Runs %d; want the shared limit %d", p, limit)
	}
}

func TestPerCallLimitCapsInsideFanout(t *testing.T) {
	t.Parallel()
	var c inflight
	g := newGate()
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 8 })
	_, err := f.Run(context.Background(), keysN(30), func(ctx context.Context, _ string) (int, error) {
		return 0, c.hold(t, ctx, g, 1, 3)
	}, func(o *fanout.Options) { o.Limit = 3 })
	if err != nil {
		t.Fatal(err)
	}
	if p := c.peak.Load(); p != 3 {
		t.Errorf("peak %d; want the call's Limit 3", p)
	}
	if f.Limit() != 8 {
		t.Errorf("Limit() %d after a per-call option; want 8", f.Limit())
	}
}

func TestErrorsReachTheCause(t *testing.T) {
	t.Parallel()
	throttled := &smithy.GenericAPIError{Code: "RequestLimitExceeded", Message: "Request limit exceeded."}
	f := fanout.New[int]()
	res, err := f.Run(context.Background(), []string{"ok", "api", "deadline", "wrapped"},
		func(ctx context.Context, key string) (int, error) {
			switch key {
			case "api":
				return 0, throttled
			case "deadline":
				return 0, context.DeadlineExceeded
			case "wrapped":
				return 0, fmt.Errorf("describe: %w", throttled)
			}
			return 1, nil
		})
	for name, target := range map[string]error{"one item": res[1].Err, "joined": err} {
		var apiErr smithy.APIError
		if !errors.As(target, &apiErr) || apiErr.ErrorCode() != "RequestLimitExceeded" {
			t.Errorf("%s: errors.As(smithy.APIError) failed on %v", name, target)
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(res[2].Err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(DeadlineExceeded) failed on %v", err)
	}
	var apiErr smithy.APIError
	if !errors.As(res[3].Err, &apiErr) {
		t.Errorf("errors.As through a wrapped error failed: %v", res[3].Err)
	}
	if res[0].Err != nil || errors.Is(err, fanout.ErrNotStarted) {
		t.Errorf("unexpected: %v", err)
	}
	// The engine knows no AWS: it neither classifies nor relabels.
	if errors.Is(res[1].Err, fanout.ErrThrottled) {
		t.Errorf("a plain Run classified an op's error: %v", res[1].Err)
	}
	want := `fanout: item 1 "api": api error RequestLimitExceeded: Request limit exceeded.`
	if got := res[1].Err.Error(); got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
}

func TestFailFast(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	started := make(chan struct{})
	var ran atomic.Int32
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 2; o.FailFast = true })
	res, err := f.Run(context.Background(), keysN(50), func(ctx context.Context, key string) (int, error) {
		ran.Add(1)
		switch key {
		case "k0":
			<-started // k1 is running when k0 fails
			return 0, boom
		case "k1":
			close(started)
			<-ctx.Done()
			return 0, context.Cause(ctx)
		}
		return 1, nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v; want boom", err)
	}
	if n := ran.Load(); n != 2 {
		t.Errorf("%d ops ran; want 2 (no new op after the failure)", n)
	}
	if !errors.Is(res[1].Err, boom) || errors.Is(res[1].Err, fanout.ErrNotStarted) {
		t.Errorf("the running item: %v; want its context's cause, boom", res[1].Err)
	}
	for _, r := range res[2:] {
		if !errors.Is(r.Err, fanout.ErrNotStarted) || !errors.Is(r.Err, boom) || r.Elapsed != 0 {
			t.Fatalf("item %d: %v (Elapsed %v); want ErrSkipped wrapping boom", r.Index, r.Err, r.Elapsed)
		}
	}
}

func TestContextCancelSkipsTheRest(t *testing.T) {
	t.Parallel()
	stop := errors.New("operator pressed ^C")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var ran, late atomic.Int32
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 4 })
	res, err := f.Run(ctx, keysN(10000), func(ctx context.Context, key string) (int, error) {
		if ctx.Err() != nil {
			late.Add(1) // started after the cancel
		}
		if ran.Add(1) == 100 {
			cancel(stop)
		}
		return 1, nil
	})
	if !errors.Is(err, fanout.ErrNotStarted) || !errors.Is(err, stop) {
		t.Fatalf("err does not name the skip and its cause: %.200v", err)
	}
	skipped := 0
	for _, r := range res {
		if r.Err != nil {
			skipped++
			if !errors.Is(r.Err, fanout.ErrNotStarted) || !errors.Is(r.Err, stop) {
				t.Fatalf("item %d: %v", r.Index, r.Err)
			}
		}
	}
	if ran := int(ran.Load()); skipped != len(res)-ran || skipped == 0 {
		t.Errorf("%d ran and %d skipped of %d; want every item that did not run skipped", ran, skipped, len(res))
	}
	if n := late.Load(); n > 3 {
		t.Errorf("%d ops started after the cancel; want at most the 3 other workers already past their check", n)
	}
}

func TestItemTimeout(t *testing.T) {
	t.Parallel()
	f := fanout.New[int](func(o *fanout.Options) { o.ItemTimeout = 20 * time.Millisecond })
	res, err := f.Run(context.Background(), []string{"hangs", "quick"}, func(ctx context.Context, key string) (int, error) {
		if key == "hangs" {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		if _, ok := ctx.Deadline(); !ok {
			return 0, errors.New("no deadline")
		}
		return 1, nil
	})
	if !errors.Is(res[0].Err, context.DeadlineExceeded) || res[1].Err != nil || res[1].Value != 1 {
		t.Fatalf("results %+v, err %v", res, err)
	}
	if res[0].Elapsed < 20*time.Millisecond {
		t.Errorf("the hung item returned after %v, before its deadline", res[0].Elapsed)
	}
}

func TestPanicBecomesItemError(t *testing.T) {
	t.Parallel()
	sentinel := errors.New("sentinel")
	f := fanout.New[int]()
	res, err := f.Run(context.Background(), []string{"a", "panics", "b", "panics-err"}, func(ctx context.Context, key string) (int, error) {
		switch key {
		case "panics":
			var m map[string]int
			m[key] = 1 // nil map write
		case "panics-err":
			panic(sentinel)
		}
		return 1, nil
	})
	var pe *fanout.PanicError
	if !errors.As(res[1].Err, &pe) {
		t.Fatalf("item 1: %v; want a *PanicError", res[1].Err)
	}
	if !strings.Contains(fmt.Sprint(pe.Value), "nil map") || !strings.Contains(string(pe.Stack), "fanout_test.go") {
		t.Errorf("PanicError value %v, stack:\n%s", pe.Value, pe.Stack)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is does not see an error passed to panic: %v", err)
	}
	if res[0].Value != 1 || res[2].Value != 1 {
		t.Errorf("the other items did not run: %+v", res)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, string) (int, error) { return 1, nil }
	for name, tc := range map[string]struct {
		ctx  context.Context
		op   func(context.Context, string) (int, error)
		opts func(*fanout.Options)
		want string
	}{
		"negative Limit":       {opts: func(o *fanout.Options) { o.Limit = -1 }, want: "Options.Limit is -1"},
		"negative ItemTimeout": {opts: func(o *fanout.Options) { o.ItemTimeout = -time.Second }, want: "Options.ItemTimeout is -1s"},
		"nil op":               {want: "nil op"},
		"nil ctx":              {op: ok, want: "nil Context"},
		"zero Limit":           {opts: func(o *fanout.Options) { o.Limit = 0 }, want: "Options.Limit is 0; want 1 or more"},
		"Budget per call":      {op: ok, opts: func(o *fanout.Options) { o.Budget = mustBudget(t, 2) }, want: "Budget can only be set in New"},
		"ScopeLimit per call":  {op: ok, opts: func(o *fanout.Options) { o.ScopeLimit = 2 }, want: "Options.ScopeLimit is 2 but Options.Scope is nil"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := tc.ctx
			if ctx == nil && name != "nil ctx" {
				ctx = context.Background()
			}
			op := tc.op
			if op == nil && name != "nil op" {
				op = ok
			}
			opts := []func(*fanout.Options){}
			if tc.opts != nil {
				opts = append(opts, tc.opts)
			}
			f := fanout.New[int]()
			res, err := f.Run(ctx, []string{"a"}, op, opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "fanout: ") || res != nil {
				t.Errorf("Run: %v, %v; want nil results and an error containing %q", res, err, tc.want)
			}
			n := 0
			for r := range f.Stream(ctx, []string{"a", "b"}, op, opts...) {
				n++
				if r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) {
					t.Errorf("Stream: %+v; want an error containing %q", r, tc.want)
				}
			}
			if n != 2 {
				t.Errorf("Stream yielded %d results for 2 keys", n)
			}
		})
	}
	t.Run("negative Limit in New", func(t *testing.T) {
		t.Parallel()
		_, err := fanout.New[int](func(o *fanout.Options) { o.Limit = -5 }).Run(context.Background(), []string{"a"}, ok)
		if err == nil || !strings.Contains(err.Error(), "Options.Limit is -5") {
			t.Errorf("err %v", err)
		}
	})
}

func TestBadWeights(t *testing.T) {
	t.Parallel()
	weights := map[string]int64{"zero": 0, "negative": -3, "too-big": 9, "ok": 4, "panics": 0}
	f := fanout.New[int](func(o *fanout.Options) {
		o.Limit = 8
		o.Weight = func(k string) int64 {
			if k == "panics" {
				panic("weight table missing " + k)
			}
			return weights[k]
		}
	})
	keys := []string{"zero", "negative", "too-big", "ok", "panics"}
	res, _ := f.Run(context.Background(), keys, func(context.Context, string) (int, error) { return 1, nil })
	for i, want := range []string{
		`fanout: item 0 "zero": weight 0 is outside 1..8 (the Limit)`,
		`fanout: item 1 "negative": weight -3 is outside 1..8 (the Limit)`,
		`fanout: item 2 "too-big": weight 9 is outside 1..8 (the Limit)`,
		"",
		`fanout: item 4 "panics": panic: weight table missing panics`,
	} {
		got := ""
		if res[i].Err != nil {
			got = res[i].Err.Error()
		}
		if got != want {
			t.Errorf("item %d: %q; want %q", i, got, want)
		}
	}
	if res[3].Value != 1 {
		t.Errorf("the good item did not run")
	}
}

func TestEmptyAndDuplicateKeys(t *testing.T) {
	t.Parallel()
	f := fanout.New[int]()
	res, err := f.Run(context.Background(), nil, func(context.Context, string) (int, error) { return 1, nil })
	if err != nil || len(res) != 0 {
		t.Errorf("no keys: %v, %v", res, err)
	}
	for range f.Stream(context.Background(), nil, func(context.Context, string) (int, error) { return 1, nil }) {
		t.Error("Stream over no keys yielded")
	}
	res, err = f.Run(context.Background(), []string{"a", "a", "a"}, func(context.Context, string) (int, error) { return 1, nil })
	if err != nil || len(res) != 3 || res[2].Index != 2 || res[2].Key != "a" {
		t.Errorf("duplicates: %+v, %v", res, err)
	}
}

func TestZeroFanout(t *testing.T) {
	t.Parallel()
	var f fanout.Fanout[int]
	res, err := f.Run(context.Background(), keysN(3), func(context.Context, string) (int, error) { return 7, nil })
	if err != nil || len(res.Values()) != 3 || f.Limit() != fanout.DefaultLimit {
		t.Errorf("%+v %v, Limit %d", res, err, f.Limit())
	}
}

func TestOnDone(t *testing.T) {
	t.Parallel()
	var busy atomic.Bool
	var calls []fanout.Progress
	f := fanout.New[int](func(o *fanout.Options) {
		o.Limit = 8
		o.OnDone = func(p fanout.Progress) {
			if !busy.CompareAndSwap(false, true) {
				t.Error("OnDone called concurrently")
			}
			calls = append(calls, p)
			busy.Store(false)
		}
	})
	keys := keysN(200)
	_, err := f.Run(context.Background(), keys, func(ctx context.Context, key string) (int, error) {
		if strings.HasSuffix(key, "3") {
			return 0, errors.New("x")
		}
		return 1, nil
	})
	if err == nil {
		t.Fatal("want errors")
	}
	if len(calls) != len(keys) {
		t.Fatalf("%d OnDone calls for %d keys", len(calls), len(keys))
	}
	seen := map[int]bool{}
	failed := 0
	for i, p := range calls {
		if p.Err != nil {
			failed++
		}
		if seen[p.Index] || p.Done != i+1 || p.Failed != failed || p.Total != len(keys) || p.Key != keys[p.Index] {
			t.Fatalf("call %d: %+v", i, p)
		}
		seen[p.Index] = true
	}
}

func TestStream(t *testing.T) {
	t.Parallel()
	keys := keysN(300)
	seen := make([]bool, len(keys))
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = 7 })
	for r := range f.Stream(context.Background(), keys, func(ctx context.Context, key string) (string, error) {
		time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
		return key + "!", nil
	}) {
		if seen[r.Index] || r.Err != nil || r.Value != keys[r.Index]+"!" {
			t.Fatalf("%+v", r)
		}
		seen[r.Index] = true
	}
	for i, ok := range seen {
		if !ok {
			t.Fatalf("item %d never yielded", i)
		}
	}
}

// TestStreamBreak is not parallel: goleak checks that no goroutine outlives
// the loop.
func TestStreamBreak(t *testing.T) {
	var started atomic.Int32
	var cancelled atomic.Int32
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 4 })
	n := 0
	for r := range f.Stream(context.Background(), keysN(10000), func(ctx context.Context, key string) (int, error) {
		started.Add(1)
		if key == "k0" || key == "k1" {
			return 1, nil
		}
		<-ctx.Done() // the rest hang until the consumer leaves
		cancelled.Add(1)
		return 0, ctx.Err()
	}) {
		if r.Err != nil {
			t.Fatalf("%+v", r)
		}
		if n++; n == 2 {
			break
		}
	}
	goleak.VerifyNone(t)
	if s, c := started.Load(), cancelled.Load(); s > 2+4 || c != s-2 {
		t.Errorf("started %d, cancelled %d; want at most the limit running after the break, all of them cancelled", s, c)
	}
}

func TestStreamRespectsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 2 })
	got, skipped := 0, 0
	for r := range f.Stream(ctx, keysN(1000), func(ctx context.Context, key string) (int, error) {
		if key == "k10" {
			cancel()
		}
		return 1, nil
	}) {
		got++
		if errors.Is(r.Err, fanout.ErrNotStarted) {
			skipped++
		}
	}
	cancel()
	if got != 1000 || skipped < 900 {
		t.Errorf("yielded %d (%d skipped); want all 1000, most skipped", got, skipped)
	}
}

// nastyError is a typed nil whose methods dereference their receiver:
// returned by an op as an error, it is a non-nil error value that panics
// when anything looks into it.
type nastyError struct{ msg string }

func (e *nastyError) Error() string { return e.msg }
func (e *nastyError) Unwrap() error { return errors.New(e.msg) }

// TestUserValuesCannotCrash: nothing an op returns or a callback does
// takes the process down; it becomes that item's error.
func TestUserValuesCannotCrash(t *testing.T) {
	t.Parallel()
	f := fanout.New[int](func(o *fanout.Options) {
		o.OnDone = func(p fanout.Progress) {
			if p.Key == "ondone" {
				panic("progress bar bug")
			}
		}
	})
	res, err := f.Run(context.Background(), []string{"ok", "typed-nil", "ondone"}, func(_ context.Context, key string) (int, error) {
		if key == "typed-nil" {
			var e *nastyError
			return 0, e
		}
		return 1, nil
	})
	var pe *fanout.PanicError
	if len(res) != 3 || res[0].Err != nil || !errors.As(res[1].Err, &pe) || !errors.As(res[2].Err, &pe) || err == nil {
		t.Fatalf("%+v, %v; want the typed nil and the OnDone panic as those items' *PanicError", res, err)
	}
	if !strings.Contains(res[2].Err.Error(), "OnDone") {
		t.Errorf("OnDone's panic: %v; want it named", res[2].Err)
	}
	var nilFanout *fanout.Fanout[int]
	ok := func(context.Context, string) (int, error) { return 1, nil }
	if res, err := nilFanout.Run(context.Background(), []string{"a"}, ok); res != nil || err == nil || !strings.Contains(err.Error(), "nil *Fanout") {
		t.Errorf("nil *Fanout Run: %v, %v", res, err)
	}
	for r := range nilFanout.Stream(context.Background(), []string{"a"}, ok) {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "nil *Fanout") {
			t.Errorf("nil *Fanout Stream: %+v", r)
		}
	}
	if l := nilFanout.Limit(); l != 0 {
		t.Errorf("nil *Fanout Limit %d", l)
	}
}

// TestOnDoneNeverConcurrentAcrossCalls: an OnDone given to New is shared
// by every call of the Fanout, and is never called concurrently with
// itself, whichever call finished the item.
func TestOnDoneNeverConcurrentAcrossCalls(t *testing.T) {
	t.Parallel()
	var busy atomic.Bool
	var overlaps, calls atomic.Int64
	f := fanout.New[int](func(o *fanout.Options) {
		o.Limit = 24
		o.OnDone = func(fanout.Progress) {
			calls.Add(1)
			if !busy.CompareAndSwap(false, true) {
				overlaps.Add(1)
				return
			}
			for range 200 { // stay inside long enough for another call to collide
				runtime.Gosched()
			}
			busy.Store(false)
		}
	})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = f.Run(context.Background(), keysN(200), func(context.Context, string) (int, error) { return 1, nil })
		}()
	}
	wg.Wait()
	if calls.Load() != 600 || overlaps.Load() != 0 {
		t.Errorf("OnDone called %d times, %d of them concurrently with itself; want 600 and 0", calls.Load(), overlaps.Load())
	}
}

// TestNestedRunsDoNotDeadlock: an op that starts a Run on its own Fanout,
// or on another Fanout sharing its Budget (accounts outside, regions
// inside), makes progress within the weight its item holds, and the
// bound is never exceeded.
func TestNestedRunsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	const limit = 4
	for name, inner := range map[string]func(outer *fanout.Fanout[int], b *fanout.Budget) *fanout.Fanout[int]{
		"same Fanout": func(outer *fanout.Fanout[int], _ *fanout.Budget) *fanout.Fanout[int] { return outer },
		"shared Budget": func(_ *fanout.Fanout[int], b *fanout.Budget) *fanout.Fanout[int] {
			return fanout.New[int](func(o *fanout.Options) { o.Budget = b })
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mustBudget(t, limit)
			outer := fanout.New[int](func(o *fanout.Options) { o.Limit = 100; o.Budget = b })
			in := inner(outer, b)
			var c inflight // leaves: the inner items, which do the work
			leaf := func(ctx context.Context, _ string) (int, error) {
				c.add(1)
				defer c.add(-1)
				return 1, nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a deadlock fails, not hangs
			defer cancel()
			res, err := outer.Run(ctx, keysN(3*limit), func(ctx context.Context, _ string) (int, error) {
				rs, err := in.Run(ctx, keysN(10), leaf)
				if err != nil {
					return 0, err
				}
				// and one level deeper, inside an inner item
				deep, err := in.Run(ctx, keysN(3), func(ctx context.Context, k string) (int, error) {
					rs, err := in.Run(ctx, keysN(2), leaf)
					return len(rs.Values()), err
				})
				return len(rs.Values()) + len(deep.Values()), err
			})
			if err != nil || ctx.Err() != nil {
				t.Fatalf("nested runs: %v (ctx %v); want every item done", err, ctx.Err())
			}
			for _, r := range res {
				if r.Value != 13 {
					t.Errorf("item %d: %d inner results; want 13", r.Index, r.Value)
				}
			}
			if p := c.peak.Load(); p > limit {
				t.Errorf("peak in flight %d above the Budget %d", p, limit)
			}
		})
	}
}

// TestNestedCallsWaitOnNothingShared: a nested call never waits on a
// shared semaphore its item does not hold, since whoever holds it may be
// waiting for what the item holds. Here a top-level call holds the other
// Fanout's only slot (and the Fanout's scope slot) until the nested call
// is done: a nested call that waited for it would never end.
func TestNestedCallsWaitOnNothingShared(t *testing.T) {
	t.Parallel()
	leaf := func(context.Context, string) (int, error) { return 1, nil }
	scope := func(o *fanout.Options) { o.Scope = func(k string) string { return k } }
	for name, tc := range map[string]struct {
		outer, inner *fanout.Fanout[int]
		innerOpts    []func(*fanout.Options)
	}{
		"other Fanout, shared Budget": func() (c struct {
			outer, inner *fanout.Fanout[int]
			innerOpts    []func(*fanout.Options)
		}) {
			b := mustBudget(t, 2)
			c.outer = fanout.New[int](func(o *fanout.Options) { o.Limit = 1; o.Budget = b })
			c.inner = fanout.New[int](func(o *fanout.Options) { o.Limit = 1; o.Budget = b })
			return c
		}(),
		"same Fanout, shared ScopeLimit": func() (c struct {
			outer, inner *fanout.Fanout[int]
			innerOpts    []func(*fanout.Options)
		}) {
			f := fanout.New[int](func(o *fanout.Options) { o.Limit = 2; o.ScopeLimit = 1 })
			c.outer, c.inner, c.innerOpts = f, f, []func(*fanout.Options){scope}
			return c
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // a deadlock fails, not hangs
			defer cancel()
			holding, nestedDone := make(chan struct{}), make(chan struct{})
			topErr := make(chan error, 1)
			go func() { // holds the inner Fanout's slot until the nested call is done
				_, err := tc.inner.Run(ctx, []string{"top"}, func(ctx context.Context, _ string) (int, error) {
					close(holding)
					select {
					case <-nestedDone:
						return 1, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}, tc.innerOpts...)
				topErr <- err
			}()
			<-holding
			_, err := tc.outer.Run(ctx, []string{"outer"}, func(ctx context.Context, _ string) (int, error) {
				defer close(nestedDone)
				rs, err := tc.inner.Run(ctx, keysN(3), leaf, tc.innerOpts...)
				return len(rs.Values()), err
			})
			if err != nil || <-topErr != nil {
				t.Errorf("nested call: %v; want it to end without the slot someone else held", err)
			}
		})
	}
}

// TestNestedSiblingsShareTheirItemsUnits: calls nested in one item at the
// same time share what that item holds; they do not each get its size.
func TestNestedSiblingsShareTheirItemsUnits(t *testing.T) {
	t.Parallel()
	const limit = 2
	var c inflight
	g := newGate()
	leaf := func(ctx context.Context, _ string) (int, error) {
		return 1, c.hold(t, ctx, g, 1, limit)
	}
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = limit })
	_, err := f.Run(context.Background(), []string{"acct1", "acct2"}, func(ctx context.Context, _ string) (int, error) {
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range errs { // regions and global services at once
			wg.Add(1)
			go func() { defer wg.Done(); _, errs[i] = f.Run(ctx, keysN(4), leaf) }()
		}
		wg.Wait()
		return 0, errors.Join(errs...)
	})
	if err != nil || c.peak.Load() > limit {
		t.Errorf("peak in flight %d (%v); want at most the Limit %d", c.peak.Load(), err, limit)
	}
}

func TestBudgetNotMadeByNewBudget(t *testing.T) {
	t.Parallel()
	f := fanout.New[int](func(o *fanout.Options) { o.Budget = &fanout.Budget{} })
	res, err := f.Run(context.Background(), []string{"a"}, func(context.Context, string) (int, error) { return 1, nil })
	if res != nil || err == nil || !strings.Contains(err.Error(), "Options.Budget") {
		t.Errorf("a zero Budget: %v, %v; want an error naming it", res, err)
	}
}
