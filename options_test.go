package fanout_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/awsfanout/fanout"
)

func mustBudget(t *testing.T, size int64) *fanout.Budget {
	t.Helper()
	b, err := fanout.NewBudget(size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOptionsDefaultsFirst: New starts from the defaults, so an option
// function sees them, and a value written over them that cannot be
// honoured is an error, never a silent clamp.
func TestOptionsDefaultsFirst(t *testing.T) {
	t.Parallel()
	var seen fanout.Options
	f := fanout.New[int](func(o *fanout.Options) { seen = *o })
	if seen.Limit != fanout.DefaultLimit || f.Limit() != fanout.DefaultLimit {
		t.Errorf("an option function saw Limit %d, and the Fanout has %d; want DefaultLimit %d", seen.Limit, f.Limit(), fanout.DefaultLimit)
	}
	f = fanout.New[int](func(o *fanout.Options) { o.Limit = 0 }) // a user's "-limit 0"
	_, err := f.Run(context.Background(), []string{"a"}, func(context.Context, string) (int, error) { return 1, nil })
	if err == nil || !strings.Contains(err.Error(), "Options.Limit is 0") || f.Limit() != 0 {
		t.Errorf("Limit 0: %v, Limit() %d; want an error naming it and nothing run", err, f.Limit())
	}
	for _, size := range []int64{0, -3} {
		if b, err := fanout.NewBudget(size); b != nil || err == nil || !strings.Contains(err.Error(), "NewBudget") {
			t.Errorf("NewBudget(%d): %v, %v; want an error", size, b, err)
		}
	}
}

func TestBudgetSharedAcrossTypes(t *testing.T) {
	t.Parallel()
	const size = 3
	b, err := fanout.NewBudget(size)
	if err != nil {
		t.Fatal(err)
	}
	var c inflight
	g := newGate()
	enter := func(ctx context.Context) error { return c.hold(t, ctx, g, 1, size) }
	ints := fanout.New[int](func(o *fanout.Options) { o.Limit = 10; o.Budget = b })
	strs := fanout.New[string](func(o *fanout.Options) { o.Limit = 10; o.Budget = b })
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := ints.Run(context.Background(), keysN(20), func(ctx context.Context, _ string) (int, error) { return 1, enter(ctx) })
		if err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		_, err := strs.Run(context.Background(), keysN(20), func(ctx context.Context, _ string) (string, error) { return "", enter(ctx) })
		if err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	if p := c.peak.Load(); p != size {
		t.Errorf("peak in flight across two Fanouts %d; want the Budget's %d", p, size)
	}
}

// TestOptionFunctionsCannotCrash: a nil option function, or one that
// panics, is an error that names it.
func TestOptionFunctionsCannotCrash(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, string) (int, error) { return 1, nil }
	boom := func(*fanout.Options) { panic("flag parsing bug") }
	for name, tc := range map[string]struct {
		f    *fanout.Fanout[int]
		call []func(*fanout.Options)
		want string
	}{
		"nil in New":     {fanout.New[int](nil), nil, "fanout: New: option function 0 is nil"},
		"panic in New":   {fanout.New[int](func(*fanout.Options) {}, boom), nil, "fanout: New: option function 1: panic: flag parsing bug"},
		"nil per call":   {fanout.New[int](), []func(*fanout.Options){nil}, "fanout: call: option function 0 is nil"},
		"panic per call": {fanout.New[int](), []func(*fanout.Options){boom}, "fanout: call: option function 0: panic: flag parsing bug"},
	} {
		res, err := tc.f.Run(context.Background(), []string{"a"}, ok, tc.call...)
		if res != nil || err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, %v; want %q", name, res, err, tc.want)
		}
	}
	var nilBudget *fanout.Budget
	if nilBudget.Size() != 0 {
		t.Error("a nil Budget's Size is not 0")
	}
}
