package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/tracing"

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
		"Err, then Done": func(ctx context.Context) error {
			done := ctx.Done()
			for ctx.Err() == nil {
			}
			select {
			case <-done:
				return ctx.Err()
			default:
				return errors.New("Err before Done is closed")
			}
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

// ended is what an ended context says of itself.
type ended struct{ err, cause error }

func endOf(ctx context.Context) ended { return ended{ctx.Err(), context.Cause(ctx)} }

// checkKept checks a context kept past its item: ended as want, for good,
// with the caller's values.
func checkKept(t *testing.T, kept context.Context, want ended) {
	t.Helper()
	for range 2 { // once more after Done made what it stands for
		if got := endOf(kept); got != want {
			t.Fatalf("kept past its item: %+v; want %+v", got, want)
		}
		<-kept.Done()
	}
	if kept.Value(callerKey{}) != "v" {
		t.Error("kept past its item: the caller's value is lost")
	}
}

func withTimeout(d time.Duration, optFns ...func(*fanout.Options)) func(*fanout.Options) {
	return func(o *fanout.Options) {
		o.ItemTimeout = d
		for _, fn := range optFns {
			fn(o)
		}
	}
}

func caller() context.Context { return context.WithValue(context.Background(), callerKey{}, "v") }

// TestItemTimeoutCause: an item's context under ItemTimeout ends with the
// Err and the cause a context.WithTimeout gives, whichever ends it first:
// its own deadline, its item's return, the caller's deadline or cancel,
// FailFast; and it keeps them when the call's context ends later with a
// cause of its own. Seen in the operation once Done is closed, and on the
// context kept past the call.
func TestItemTimeoutCause(t *testing.T) {
	t.Parallel()
	errCaller, errLater, errBad := errors.New("the caller's cause"), errors.New("a later cause"), errors.New("bad")
	for name, scenario := range map[string]func(t *testing.T) (seen []ended, kept context.Context, want ended){
		"its deadline": func(t *testing.T) ([]ended, context.Context, ended) {
			var seen ended
			var kept context.Context
			fanout.New[int](withTimeout(5*time.Millisecond)).Run(caller(), []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				<-ctx.Done()
				seen, kept = endOf(ctx), ctx
				return 0, nil
			})
			return []ended{seen}, kept, ended{context.DeadlineExceeded, context.DeadlineExceeded}
		},
		"its deadline, then the caller's cancel with a cause": func(t *testing.T) ([]ended, context.Context, ended) {
			ctx, cancel := context.WithCancelCause(caller())
			defer cancel(nil)
			var seen ended
			var kept context.Context
			fanout.New[int](withTimeout(5*time.Millisecond)).Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				<-ctx.Done()
				cancel(errLater)
				seen, kept = endOf(ctx), ctx
				return 0, nil
			})
			return []ended{seen}, kept, ended{context.DeadlineExceeded, context.DeadlineExceeded}
		},
		"the caller's deadline, with a cause": func(t *testing.T) ([]ended, context.Context, ended) {
			ctx, cancel := context.WithDeadlineCause(caller(), time.Now().Add(5*time.Millisecond), errCaller)
			defer cancel()
			var seen ended
			var kept context.Context
			fanout.New[int](withTimeout(time.Hour)).Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				<-ctx.Done()
				seen, kept = endOf(ctx), ctx
				return 0, nil
			})
			return []ended{seen}, kept, ended{context.DeadlineExceeded, errCaller}
		},
		"the caller's cancel, with a cause": func(t *testing.T) ([]ended, context.Context, ended) {
			ctx, cancel := context.WithCancelCause(caller())
			defer cancel(nil)
			var seen ended
			var kept context.Context
			fanout.New[int](withTimeout(time.Hour)).Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				cancel(errCaller)
				<-ctx.Done()
				seen, kept = endOf(ctx), ctx
				return 0, nil
			})
			return []ended{seen}, kept, ended{context.Canceled, errCaller}
		},
		"the caller's cancel, with a cause, seen at once": func(t *testing.T) ([]ended, context.Context, ended) {
			ctx, cancel := context.WithCancelCause(caller())
			defer cancel(nil)
			var seen []ended
			var kept context.Context
			fanout.New[int](withTimeout(time.Hour)).Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				cancel(errCaller)
				seen, kept = []ended{endOf(ctx)}, ctx
				return 0, nil
			})
			return seen, kept, ended{context.Canceled, errCaller}
		},
		"the caller's cancel, with a cause, seen at once by a child": func(t *testing.T) ([]ended, context.Context, ended) {
			ctx, cancel := context.WithCancelCause(caller())
			defer cancel(nil)
			var seen []ended
			var kept context.Context
			fanout.New[int](withTimeout(time.Hour)).Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				child, cancelChild := context.WithCancel(context.WithValue(ctx, callerKey{}, "v"))
				defer cancelChild()
				cancel(errCaller)
				select {
				case <-child.Done():
				default:
					t.Error("the child's Done is not closed once the caller's cancel returned")
				}
				seen, kept = []ended{endOf(child), endOf(ctx)}, ctx
				return 0, nil
			})
			return seen, kept, ended{context.Canceled, errCaller}
		},
		"FailFast": func(t *testing.T) ([]ended, context.Context, ended) {
			started := make(chan struct{})
			var seen ended
			var kept context.Context
			res, _ := fanout.New[int](withTimeout(time.Hour, failFast)).Run(caller(), []string{"a", "bad"}, func(ctx context.Context, key string) (int, error) {
				if key == "bad" {
					<-started
					return 0, errBad
				}
				close(started)
				<-ctx.Done()
				seen, kept = endOf(ctx), ctx
				return 0, nil
			})
			return []ended{seen}, kept, ended{context.Canceled, res[1].Err}
		},
		"its return, then FailFast": func(t *testing.T) ([]ended, context.Context, ended) {
			var kept context.Context
			fanout.New[int](withTimeout(time.Hour, failFast, limit(1))).Run(caller(), []string{"a", "bad"}, func(ctx context.Context, key string) (int, error) {
				if key == "bad" {
					return 0, errBad
				}
				kept = ctx
				return 0, nil
			})
			return nil, kept, ended{context.Canceled, context.Canceled}
		},
		"FailFast, then its return, not looked at": func(t *testing.T) ([]ended, context.Context, ended) {
			started, cancelled := make(chan struct{}), make(chan struct{})
			var kept context.Context
			f := fanout.New[int](withTimeout(time.Hour, failFast, limit(2)))
			var errFailed error
			for r := range f.Stream(caller(), []string{"a", "bad"}, func(ctx context.Context, key string) (int, error) {
				if key == "bad" {
					<-started
					return 0, errBad
				}
				close(started)
				<-cancelled
				kept = ctx
				return 0, nil
			}) {
				if r.Key == "bad" {
					errFailed = r.Err
					close(cancelled)
				}
			}
			return nil, kept, ended{context.Canceled, errFailed}
		},
		"its deadline, waited on, then FailFast":     deadlineThenFailFast(errBad, func(ctx context.Context) { <-ctx.Done() }),
		"its deadline, not looked at, then FailFast": deadlineThenFailFast(errBad, nil),
		"its return, then the caller's cancel": func(t *testing.T) ([]ended, context.Context, ended) {
			ctx, cancel := context.WithCancelCause(caller())
			defer cancel(nil)
			var kept context.Context
			fanout.New[int](withTimeout(time.Hour)).Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				kept = ctx
				return 0, nil
			})
			cancel(errLater)
			return nil, kept, ended{context.Canceled, context.Canceled}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			seen, kept, want := scenario(t)
			for _, got := range seen {
				if got != want {
					t.Errorf("seen by the operation: %+v; want %+v", got, want)
				}
			}
			checkKept(t, kept, want)
		})
	}
}

func failFast(o *fanout.Options) { o.FailFast = true }

func limit(n int64) func(*fanout.Options) { return func(o *fanout.Options) { o.Limit = n } }

// deadlineThenFailFast is a scenario of TestItemTimeoutCause: item a's
// deadline passes, then item bad fails the call; look, when not nil, is
// how bad waits for a's deadline, else it waits on the clock alone, well
// past it, not to look at a's context before the call is cancelled.
// a looks at its context once the consumer of the Stream has bad's
// result, which it gets after the cancel.
func deadlineThenFailFast(errBad error, look func(context.Context)) func(t *testing.T) ([]ended, context.Context, ended) {
	return func(t *testing.T) ([]ended, context.Context, ended) {
		aCtx, cancelled := make(chan context.Context, 1), make(chan struct{})
		var seen ended
		var kept context.Context
		f := fanout.New[int](withTimeout(time.Millisecond, failFast, limit(2)))
		op := func(ctx context.Context, key string) (int, error) {
			if key == "a" {
				aCtx <- ctx
				<-cancelled
				seen, kept = endOf(ctx), ctx
				return 0, nil
			}
			a := <-aCtx
			if look != nil {
				look(a)
			} else {
				d, _ := a.Deadline()
				time.Sleep(time.Until(d) + 50*time.Millisecond) // its timer has long fired
			}
			return 0, errBad
		}
		for r := range f.Stream(caller(), []string{"a", "bad"}, op) {
			if r.Key == "bad" {
				close(cancelled)
			}
		}
		return []ended{seen}, kept, ended{context.DeadlineExceeded, context.DeadlineExceeded}
	}
}

// TestItemTimeoutDeadline: an item's context reports the deadline
// context.WithTimeout would: ItemTimeout from the item's start, or the
// caller's own when that comes first.
func TestItemTimeoutDeadline(t *testing.T) {
	t.Parallel()
	const timeout = time.Minute
	for name, tc := range map[string]struct {
		callers time.Duration // from the subtest's start, if any
		theirs  bool          // the caller's deadline is the item's
	}{
		"none of the caller's":  {0, false},
		"the caller's, earlier": {timeout / 2, true},
		"the caller's, later":   {timeout * 3 / 2, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The caller's deadline counts from here: a parallel subtest may
			// start long after its parent (one started 35s after, on a busy
			// machine, and found a deadline "later" than ItemTimeout's the
			// earlier of the two).
			before := time.Now()
			ctx, callers := context.Background(), before.Add(tc.callers)
			if tc.callers > 0 {
				ctx = deadline(t, callers)
			}
			var d, after time.Time
			var ok bool
			fanout.New[int](withTimeout(timeout)).Run(ctx, []string{"a"}, func(ctx context.Context, _ string) (int, error) {
				d, ok = ctx.Deadline()
				after = time.Now()
				return 0, nil
			})
			switch {
			case !ok:
				t.Error("no deadline")
			case tc.theirs && !d.Equal(callers):
				t.Errorf("deadline %v; want the caller's, %v", d, callers)
			case !tc.theirs && (d.Before(before.Add(timeout)) || d.After(after.Add(timeout))):
				t.Errorf("deadline %v; want ItemTimeout from the item's start, within %v..%v", d, before.Add(timeout), after.Add(timeout))
			}
		})
	}
}

func deadline(t *testing.T, d time.Time) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// watchers counts the goroutines the context package started to watch a
// parent that it could not ask to call it back.
func watchers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by context.(*cancelCtx).propagateCancel")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestItemTimeoutChildren: the contexts and AfterFuncs an operation
// derives from its context under ItemTimeout end with it, with its Err
// and its cause, however it ends, and no goroutine watches it for them.
func TestItemTimeoutChildren(t *testing.T) {
	// Not parallel: watchers counts every goroutine.
	errBad := errors.New("bad")
	for name, tc := range map[string]struct {
		timeout time.Duration
		wait    bool  // for its context to end, rather than return at once
		bad     error // the other item's
		want    func(res fanout.Results[int]) ended
	}{
		"its return": {time.Hour, false, nil, func(fanout.Results[int]) ended { return ended{context.Canceled, context.Canceled} }},
		"its deadline": {time.Millisecond, true, nil, func(fanout.Results[int]) ended {
			return ended{context.DeadlineExceeded, context.DeadlineExceeded}
		}},
		"FailFast": {time.Hour, true, errBad, func(res fanout.Results[int]) ended { return ended{context.Canceled, res[1].Err} }},
	} {
		t.Run(name, func(t *testing.T) {
			started := make(chan struct{})
			var (
				children []context.Context
				cancels  []func()
				fired    = make(chan struct{})
				spawned  int
			)
			defer func() {
				for _, c := range cancels {
					c()
				}
			}()
			res, _ := fanout.New[int](withTimeout(tc.timeout, failFast)).Run(caller(), []string{"a", "bad"}, func(ctx context.Context, key string) (int, error) {
				if key == "bad" {
					<-started
					return 0, tc.bad
				}
				n := watchers()
				child, cancel := context.WithCancel(ctx)
				withCause, cancelCause := context.WithCancelCause(ctx)
				later, cancelLater := context.WithTimeout(ctx, 2*time.Hour)
				valued := context.WithValue(ctx, struct{}{}, 1)
				grandchild, cancelGrand := context.WithCancel(valued)
				children = []context.Context{child, withCause, later, grandchild}
				cancels = []func(){cancel, func() { cancelCause(nil) }, cancelLater, cancelGrand}
				context.AfterFunc(ctx, func() { close(fired) })
				spawned = watchers() - n
				close(started)
				if tc.wait {
					<-ctx.Done()
				}
				return 0, nil
			})
			if spawned != 0 {
				t.Errorf("%d goroutines watch the item's context for its children", spawned)
			}
			want := tc.want(res)
			for i, c := range children {
				if got := endOf(c); got != want {
					t.Errorf("child %d after its item: %+v; want %+v", i, got, want)
				}
			}
			select {
			case <-fired:
			case <-time.After(10 * time.Second):
				t.Error("the AfterFunc never ran")
			}
		})
	}
}

// TestItemTimeoutContextOfAnEarlierItem: the items of one worker share
// its timer, and a timer that fires as its item returns is no deadline for
// the next one: each item has its deadline ItemTimeout from its own start
// and sees its context live until then, and a context kept from an
// earlier item stays as it ended.
func TestItemTimeoutContextOfAnEarlierItem(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Millisecond
	var (
		mu       sync.Mutex
		kept     []context.Context
		was      []ended
		returned time.Time // the last item's return
	)
	f := fanout.New[int](withTimeout(timeout, limit(1)))
	res, _ := f.Run(caller(), keysN(200), func(ctx context.Context, key string) (int, error) {
		now := time.Now()
		d, _ := ctx.Deadline()
		if err := early(ctx, d); err != nil {
			return 0, err
		}
		mu.Lock()
		defer mu.Unlock()
		if d.After(now.Add(timeout)) || d.Before(returned.Add(timeout)) {
			return 0, fmt.Errorf("deadline %v outside %v..%v: not ItemTimeout from its start", d, returned.Add(timeout), now.Add(timeout))
		}
		if n := len(kept); n > 0 {
			was = append(was, endOf(kept[n-1]))
		}
		kept = append(kept, ctx)
		if key[len(key)-1]%2 == 0 { // return as its timer fires
			for time.Now().Before(d) {
				if err := early(ctx, d); err != nil {
					return 0, err
				}
			}
		}
		returned = time.Now()
		return 0, nil
	})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	for i, w := range was {
		if w.err == nil || w != endOf(kept[i]) {
			t.Fatalf("item %d's context, kept: %+v when the next began, %+v after the call", i, w, endOf(kept[i]))
		}
	}
}

// early returns an error if ctx has ended before d, its deadline, with no
// other reason to.
func early(ctx context.Context, d time.Time) error {
	err := ctx.Err()
	if err != nil && time.Now().Before(d) { // the clock after Err
		return fmt.Errorf("%v before its deadline", err)
	}
	return nil
}

// endingTracer starts each item's span in a context of its own that the
// test can cancel: an item's parent that ends apart from its call.
type endingTracer struct {
	*memTel
	cancel chan context.CancelCauseFunc
}

func (tp endingTracer) Tracer(scope string, opts ...tracing.TracerOption) tracing.Tracer {
	return endingSpans{tp.memTel.Tracer(scope, opts...), tp.cancel}
}

type endingSpans struct {
	tracing.Tracer
	cancel chan context.CancelCauseFunc
}

func (tr endingSpans) StartSpan(ctx context.Context, name string, opts ...tracing.SpanOption) (context.Context, tracing.Span) {
	ctx, span := tr.Tracer.StartSpan(ctx, name, opts...)
	if name != fanout.SpanItem {
		return ctx, span
	}
	ctx, cancel := context.WithCancelCause(ctx)
	tr.cancel <- cancel
	return ctx, span
}

// TestItemTimeoutParentEndsApart: an item's context under ItemTimeout
// ends when its parent does, with its cause, even a parent that is not
// the call's (a span's context, from a tracer that cancels it).
func TestItemTimeoutParentEndsApart(t *testing.T) {
	t.Parallel()
	errSpan := errors.New("the span's cause")
	tp := endingTracer{new(memTel), make(chan context.CancelCauseFunc, 1)}
	f := fanout.New[int](withTimeout(time.Hour, func(o *fanout.Options) { o.TracerProvider = tp }))
	var seen ended
	_, err := f.Run(caller(), []string{"a"}, func(ctx context.Context, _ string) (int, error) {
		done := ctx.Done()
		(<-tp.cancel)(errSpan)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			return 0, errors.New("not ended with its parent")
		}
		seen = endOf(ctx)
		return 0, nil
	})
	if want := (ended{context.Canceled, errSpan}); err != nil || seen != want {
		t.Errorf("%v; seen %+v, want %+v", err, seen, want)
	}
}

// TestItemTimeoutString: an item's context names itself as a
// context.WithDeadline does, over the context it would have without.
func TestItemTimeoutString(t *testing.T) {
	t.Parallel()
	res, _ := fanout.New[string](withTimeout(time.Hour)).Run(caller(), []string{"a"}, func(ctx context.Context, _ string) (string, error) {
		return fmt.Sprint(ctx), nil
	})
	if s := res[0].Value; !strings.Contains(s, "WithValue(fanout).WithDeadline(") {
		t.Errorf("printed %q; want the context named", s)
	}
}

// TestItemTimeoutHuge: an ItemTimeout as large as a Duration goes, a way
// of saying "no real limit", is a deadline in the far future, not one
// that the addition wrapped into the past.
func TestItemTimeoutHuge(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{math.MaxInt64, math.MaxInt64 - time.Millisecond, 200 * 365 * 24 * time.Hour} {
		f := fanout.New[string](func(o *fanout.Options) { o.ItemTimeout = d })
		res, _ := f.Run(context.Background(), []string{"a", "b"}, func(ctx context.Context, _ string) (string, error) {
			if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < time.Hour {
				return "", fmt.Errorf("deadline %v", dl)
			}
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("done at once: %v", ctx.Err())
			default:
			}
			return "ok", nil
		})
		for _, r := range res {
			if r.Err != nil {
				t.Errorf("ItemTimeout %v: %v", d, r.Err)
			}
		}
	}
}

// TestItemTimeoutTiny: an ItemTimeout below a timer's resolution has
// passed when the operation starts, as with context.WithTimeout.
func TestItemTimeoutTiny(t *testing.T) {
	t.Parallel()
	f := fanout.New[string](func(o *fanout.Options) { o.ItemTimeout = time.Nanosecond })
	res, _ := f.Run(context.Background(), make([]string, 200), func(ctx context.Context, _ string) (string, error) {
		return "", ctx.Err()
	})
	for _, r := range res {
		if !errors.Is(r.Err, context.DeadlineExceeded) {
			t.Fatalf("item %d: %v; want its deadline passed at its start", r.Index, r.Err)
		}
	}
}
