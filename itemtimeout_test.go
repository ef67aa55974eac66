package fanout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/awsfanout/fanout"
)

type callerKey struct{}

// TestItemTimeoutContext: an item's context under ItemTimeout behaves as a
// context.WithTimeout would, however the operation looks at it: it ends at
// its deadline with DeadlineExceeded, as its Err, its Cause, its Done, a
// context derived from it, and a func scheduled on it all say; and it
// carries the caller's values.
func TestItemTimeoutContext(t *testing.T) {
	t.Parallel()
	for name, wait := range map[string]func(ctx context.Context) error{
		"Err only": func(ctx context.Context) error {
			for ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			return ctx.Err()
		},
		"Done": func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		},
		"derived": func(ctx context.Context) error {
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			<-child.Done()
			if !errors.Is(context.Cause(child), context.DeadlineExceeded) {
				return errors.New("the derived context's cause is not DeadlineExceeded")
			}
			return child.Err()
		},
		"AfterFunc": func(ctx context.Context) error {
			fired := make(chan struct{})
			context.AfterFunc(ctx, func() { close(fired) })
			<-fired
			return ctx.Err()
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const timeout = 20 * time.Millisecond
			f := fanout.New[int](func(o *fanout.Options) { o.ItemTimeout = timeout })
			ctx := context.WithValue(context.Background(), callerKey{}, "v")
			res, _ := f.Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				if d, ok := ctx.Deadline(); !ok || time.Until(d) > timeout {
					return 0, errors.New("no deadline within the ItemTimeout")
				}
				err := wait(ctx)
				if ctx.Value(callerKey{}) != "v" {
					return 0, errors.New("the caller's value is lost")
				}
				if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
					return 0, errors.New("the cause is not DeadlineExceeded")
				}
				return 0, err
			})
			if !errors.Is(res[0].Err, context.DeadlineExceeded) || res[0].Elapsed < timeout {
				t.Errorf("%v after %v; want DeadlineExceeded after %v", res[0].Err, res[0].Elapsed, timeout)
			}
		})
	}
}

// TestItemTimeoutContextFollowsTheCall: an item's context under
// ItemTimeout ends when the call's does, with its error and cause, whether
// the operation waits for Done or only checks Err.
func TestItemTimeoutContextFollowsTheCall(t *testing.T) {
	t.Parallel()
	for name, wait := range map[string]func(ctx context.Context){
		"Err only": func(ctx context.Context) {
			for ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		},
		"Done": func(ctx context.Context) { <-ctx.Done() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			stop := errors.New("caller stopped")
			ctx, cancel := context.WithCancelCause(context.Background())
			f := fanout.New[int](func(o *fanout.Options) { o.ItemTimeout = time.Minute })
			res, _ := f.Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				cancel(stop)
				wait(ctx)
				if !errors.Is(ctx.Err(), context.Canceled) {
					return 0, errors.New("Err is not Canceled")
				}
				return 0, context.Cause(ctx)
			})
			if !errors.Is(res[0].Err, stop) {
				t.Errorf("%v; want the caller's cause", res[0].Err)
			}
		})
	}
}

// TestItemTimeoutContextEndsWithItsItem: an item's context under
// ItemTimeout is cancelled when its item ends, as the deferred cancel of a
// context.WithTimeout would, whether the operation had looked at it or
// not; a goroutine that kept it sees it ended, for good.
func TestItemTimeoutContextEndsWithItsItem(t *testing.T) {
	t.Parallel()
	const timeout = time.Millisecond
	for name, tc := range map[string]struct {
		op   func(ctx context.Context)
		want error
	}{
		"not looked at":               {func(context.Context) {}, context.Canceled},
		"waited on":                   {func(ctx context.Context) { _ = ctx.Done() }, context.Canceled},
		"past its deadline unseen":    {func(context.Context) { time.Sleep(5 * timeout) }, context.DeadlineExceeded},
		"past its deadline, waited":   {func(ctx context.Context) { <-ctx.Done() }, context.DeadlineExceeded},
		"checked before its deadline": {func(ctx context.Context) { _ = ctx.Err() }, context.Canceled},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := fanout.New[int](func(o *fanout.Options) { o.ItemTimeout = timeout })
			var kept context.Context
			_, err := f.Run(context.Background(), []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				kept = ctx
				tc.op(ctx)
				return 1, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // once more after Done made what it stands for
				if kept.Err() != tc.want || context.Cause(kept) != tc.want {
					t.Fatalf("after its item: Err %v, Cause %v; want %v", kept.Err(), context.Cause(kept), tc.want)
				}
				<-kept.Done()
			}
		})
	}
}

// TestItemTimeoutNested: a call nested in an item under ItemTimeout runs
// within the item's units and under its deadline.
func TestItemTimeoutNested(t *testing.T) {
	t.Parallel()
	const limit = 2
	var c inflight
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = limit; o.ItemTimeout = time.Minute })
	res, err := f.Run(context.Background(), keysN(4), func(ctx context.Context, _ string) (int, error) {
		outer, _ := ctx.Deadline()
		rs, err := f.Run(ctx, keysN(5), func(ctx context.Context, _ string) (int, error) {
			c.add(1)
			defer c.add(-1)
			if d, ok := ctx.Deadline(); !ok || d.After(outer) {
				return 0, errors.New("the nested item's deadline is past its parent's")
			}
			return 1, nil
		})
		return len(rs.Values()), err
	})
	if err != nil || len(res.Values()) != 4 || res[0].Value != 5 {
		t.Fatalf("%+v, %v", res, err)
	}
	if p := c.peak.Load(); p > limit {
		t.Errorf("peak in flight %d above the Limit %d", p, limit)
	}
}

// TestItemTimeoutKeepsTheCallersCause: with an ItemTimeout longer than
// the caller's deadline, the item ends with the caller's deadline and its
// cause, as context.WithTimeout gives, not a deadline of its own.
func TestItemTimeoutKeepsTheCallersCause(t *testing.T) {
	t.Parallel()
	errCaller := errors.New("the caller's deadline")
	ctx, cancel := context.WithDeadlineCause(context.Background(), time.Now().Add(5*time.Millisecond), errCaller)
	defer cancel()
	f := fanout.New[int](func(o *fanout.Options) { o.ItemTimeout = time.Hour; o.Limit = 4 })
	res, _ := f.Run(ctx, keysN(20), func(ctx context.Context, _ string) (int, error) {
		<-ctx.Done()
		return 0, context.Cause(ctx)
	})
	for _, r := range res {
		if !errors.Is(r.Err, errCaller) && !errors.Is(r.Err, fanout.ErrNotStarted) {
			t.Errorf("%s: %v; want the caller's cause", r.Key, r.Err)
		}
	}
}
