package fanout_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout"
)

func TestScopeLimit(t *testing.T) {
	t.Parallel()
	// Accounts interleaved on purpose: grouping must keep this free of
	// deadlock even with one scope in flight.
	var keys []string
	for _, region := range []string{"r1", "r2", "r3", "r4", "r5"} {
		for _, acct := range []string{"a", "b", "c", "d", "e", "f"} {
			keys = append(keys, acct+"/"+region)
		}
	}
	for _, scopeLimit := range []int{1, 2, 4} {
		var mu sync.Mutex
		running := map[string]int{}
		peak := 0
		g := newGate()
		f := fanout.New[string](func(o *fanout.Options) {
			o.Limit = 30 // room for every item: ScopeLimit is what binds
			o.Scope = func(key string) string { acct, _, _ := strings.Cut(key, "/"); return acct }
			o.ScopeLimit = scopeLimit
		})
		res, err := f.Run(context.Background(), keys, func(ctx context.Context, key string) (string, error) {
			acct, _, _ := strings.Cut(key, "/")
			mu.Lock()
			running[acct]++
			peak = max(peak, len(running))
			if len(running) == scopeLimit {
				g.open()
			}
			mu.Unlock()
			err := g.wait(t, ctx)
			mu.Lock()
			if running[acct]--; running[acct] == 0 {
				delete(running, acct)
			}
			mu.Unlock()
			return key, err
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Value != keys[i] {
				t.Fatalf("result %d is %q; want %q", i, r.Value, keys[i])
			}
		}
		if peak != scopeLimit {
			t.Errorf("ScopeLimit %d: peak scopes in flight %d", scopeLimit, peak)
		}
	}
}

func TestScopeLimitNeedsScope(t *testing.T) {
	t.Parallel()
	_, err := fanout.New[int]().Run(context.Background(), []string{"a"},
		func(context.Context, string) (int, error) { return 0, nil },
		func(o *fanout.Options) { o.ScopeLimit = 2 })
	if err == nil || !strings.Contains(err.Error(), "Options.Scope is nil") {
		t.Errorf("err %v", err)
	}
}

// TestScopeLimitSharedAcrossCalls: a ScopeLimit set in New bounds the
// scopes in flight across the Fanout's concurrent calls, as Limit bounds
// their weight.
func TestScopeLimitSharedAcrossCalls(t *testing.T) {
	t.Parallel()
	const scopeLimit = 2
	var mu sync.Mutex
	running := map[string]int{} // scope -> items in flight, across calls
	peak := 0
	g := newGate()
	f := fanout.New[int](func(o *fanout.Options) {
		o.Limit = 20
		o.Scope = func(key string) string { acct, _, _ := strings.Cut(key, "/"); return acct }
		o.ScopeLimit = scopeLimit
	})
	op := func(call string) func(context.Context, string) (int, error) {
		return func(ctx context.Context, key string) (int, error) {
			scope := call + ":" + strings.SplitN(key, "/", 2)[0]
			mu.Lock()
			running[scope]++
			peak = max(peak, len(running))
			if len(running) == scopeLimit {
				g.open()
			}
			mu.Unlock()
			defer func() {
				mu.Lock()
				if running[scope]--; running[scope] == 0 {
					delete(running, scope)
				}
				mu.Unlock()
			}()
			return 1, g.wait(t, ctx)
		}
	}
	keys := []string{"a/1", "a/2", "b/1", "b/2", "c/1", "c/2"}
	var wg sync.WaitGroup
	for _, call := range []string{"x", "y", "z"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Run(context.Background(), keys, op(call)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if peak != scopeLimit {
		t.Errorf("peak scopes in flight across 3 calls %d; want the shared ScopeLimit %d", peak, scopeLimit)
	}
	// Without a Scope, a call ignores the Fanout's ScopeLimit.
	if _, err := f.Run(context.Background(), keys, func(context.Context, string) (int, error) { return 1, nil },
		func(o *fanout.Options) { o.Scope = nil }); err != nil {
		t.Errorf("a call without a Scope: %v", err)
	}
}

func TestSkip(t *testing.T) {
	t.Parallel()
	gone := errors.New("object deleted since listing")
	disabled := &smithy.GenericAPIError{Code: "AuthFailure", Message: "AWS was not able to validate the provided access credentials"}
	op := func(ctx context.Context, key string) (int, error) {
		switch key {
		case "gone":
			return 0, fanout.Skip(gone)
		case "me-south-1":
			return 0, disabled
		}
		return 1, nil
	}
	keys := []string{"ok", "gone", "me-south-1"}
	res, err := fanout.New[int]().Run(context.Background(), keys, op)
	if !errors.Is(res[1].Skipped, gone) || res[1].Err != nil || !res[0].OK() || res[1].OK() || len(res.Skipped()) != 1 {
		t.Errorf("Skip: %+v", res[1])
	}
	// The engine knows no AWS: an API error comes back as the op returned
	// it, unclassified, inside its ItemError.
	var ie *fanout.ItemError
	if !errors.As(res[2].Err, &ie) || ie.Err != error(disabled) || errors.Is(err, fanout.ErrRegionDisabled) ||
		res[2].Err.Error() != `fanout: item 2 "me-south-1": api error AuthFailure: AWS was not able to validate the provided access credentials` {
		t.Errorf("a plain Run changed the op's error: %v", res[2].Err)
	}
}

// TestSharedScopeSlotsComeBack: a call that ends early (its ctx
// cancelled, FailFast, a Stream left) gives back every slot of the
// Fanout's ScopeLimit it took, so the next call runs.
func TestSharedScopeSlotsComeBack(t *testing.T) {
	t.Parallel()
	keys := []string{"a/1", "a/2", "a/3", "b/1", "b/2"}
	newF := func() *fanout.Fanout[int] {
		return fanout.New[int](func(o *fanout.Options) {
			o.Limit = 1
			o.ScopeLimit = 1
			o.Scope = func(key string) string { acct, _, _ := strings.Cut(key, "/"); return acct }
		})
	}
	boom := errors.New("boom")
	for name, end := range map[string]func(f *fanout.Fanout[int]){
		"cancelled": func(f *fanout.Fanout[int]) {
			ctx, cancel := context.WithCancel(context.Background())
			_, _ = f.Run(ctx, keys, func(context.Context, string) (int, error) { cancel(); return 1, nil })
		},
		"FailFast": func(f *fanout.Fanout[int]) {
			_, _ = f.Run(context.Background(), keys, func(context.Context, string) (int, error) { return 0, boom },
				func(o *fanout.Options) { o.FailFast = true })
		},
		"Stream left": func(f *fanout.Fanout[int]) {
			for range f.Stream(context.Background(), keys, func(context.Context, string) (int, error) { return 1, nil }) {
				break
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newF()
			end(f)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a leaked slot fails, not hangs
			defer cancel()
			res, err := f.Run(ctx, keys, func(context.Context, string) (int, error) { return 1, nil })
			if err != nil || len(res.Values()) != len(keys) {
				t.Errorf("the next call: %d of %d ran, %v", len(res.Values()), len(keys), err)
			}
		})
	}
}

// TestSkipAsCauseIsStillNotStarted: items that never started failed, even
// when the ctx was cancelled with a Skip as its cause.
func TestSkipAsCauseIsStillNotStarted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(fanout.Skip(errors.New("user shutdown")))
	res, err := fanout.New[int]().Run(ctx, []string{"a", "b"}, func(context.Context, string) (int, error) { return 1, nil })
	if err == nil || len(res.Failed()) != 2 || len(res.Skipped()) != 0 || !errors.Is(res[0].Err, fanout.ErrNotStarted) {
		t.Errorf("%+v, %v; want both items failed as not started", res, err)
	}
}
