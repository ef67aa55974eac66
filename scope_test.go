package fanout_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

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
	if !errors.Is(res[1].Skipped, gone) || res[1].Err != nil || !res[0].OK() || res[1].OK() {
		t.Errorf("Skip: %+v", res[1])
	}
	if !errors.Is(err, fanout.ErrRegionDisabled) || !errors.Is(res[2].Err, fanout.ErrRegionDisabled) {
		t.Errorf("AuthFailure not classified: %v", err)
	}
	res, err = fanout.New[int](func(o *fanout.Options) { o.SkipDisabled = true }).Run(context.Background(), keys, op)
	if err != nil || !errors.Is(res[2].Skipped, fanout.ErrRegionDisabled) || len(res.Skipped()) != 2 || len(res.Values()) != 1 {
		t.Errorf("SkipDisabled: %+v, %v", res, err)
	}
	var apiErr smithy.APIError
	if !errors.As(res[2].Skipped, &apiErr) || apiErr.ErrorCode() != "AuthFailure" {
		t.Errorf("the API error is not reachable through the skip: %v", res[2].Skipped)
	}
}
