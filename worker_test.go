package fanout_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/awsfanout/fanout"
)

// TestKeptUnitsGoToWhoWaits: workers that keep their units from item to
// item give them up as soon as another call waits for them, so a call
// started while a long one runs gets its turn after an item or so, not
// after the long call's last item.
func TestKeptUnitsGoToWhoWaits(t *testing.T) {
	t.Parallel()
	const n = 200
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 1 })
	var done atomic.Int64 // items of the long call done
	doneWhenOtherRan := make(chan int64, 1)
	other := make(chan error, 1)
	_, err := f.Run(context.Background(), keysN(n), func(ctx context.Context, key string) (int, error) {
		defer done.Add(1)
		if key != "k5" {
			return 1, nil
		}
		go func() { // not under ctx: a call of its own, not one nested in this item
			_, err := f.Run(context.Background(), []string{"other"}, func(context.Context, string) (int, error) {
				doneWhenOtherRan <- done.Load()
				return 1, nil
			})
			other <- err
		}()
		for deadline := time.Now().Add(10 * time.Second); fanout.LimitWaiting(f) == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the other call never waited")
			}
		}
		return 1, nil
	})
	if err != nil || <-other != nil {
		t.Fatal(err)
	}
	if got := <-doneWhenOtherRan; got > 10 {
		t.Errorf("the other call ran after %d of the long call's %d items; want right after the 6th", got, n)
	}
}

// TestItemsDoNotShareWhatTheyLent: a worker reuses its items' context, but
// never one whose item lent its units to a nested call: here that call
// outlives its item, against the rule, and the next item of the same
// worker still runs its own nested call within its own unit.
func TestItemsDoNotShareWhatTheyLent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // waiting for the leftover fails, not hangs
	defer cancel()
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 1 })
	leftover, release := make(chan struct{}), make(chan struct{})
	left := make(chan error, 1)
	leaf := func(context.Context, string) (int, error) { return 1, nil }
	res, err := f.Run(ctx, []string{"a", "b"}, func(ctx context.Context, key string) (int, error) {
		if key == "a" {
			go func() {
				_, err := f.Run(ctx, []string{"late"}, func(context.Context, string) (int, error) {
					close(leftover)
					<-release
					return 1, nil
				})
				left <- err
			}()
			<-leftover
			return 1, nil // while the call nested in it still holds its unit
		}
		rs, err := f.Run(ctx, []string{"inner"}, leaf)
		return len(rs.Values()), err
	})
	close(release)
	if err != nil || res[1].Value != 1 || <-left != nil {
		t.Errorf("%+v, %v; want item b's nested call run within b's own unit", res, err)
	}
}

// allocsPerItem is what run allocates per key: the difference between
// runs over 2n and n keys, so that what a call costs whatever its size
// cancels out.
func allocsPerItem(run func(keys []string)) float64 {
	const n = 1000
	short, long := keysN(n), keysN(2*n)
	return (testing.AllocsPerRun(20, func() { run(long) }) - testing.AllocsPerRun(20, func() { run(short) })) / n
}

// TestAllocationsPerItem: the engine allocates nothing per item, whatever
// the options, but the context of each item under ItemTimeout.
func TestAllocationsPerItem(t *testing.T) {
	// Not parallel: AllocsPerRun counts every goroutine's allocations.
	ctx := context.Background()
	noop := func(context.Context, string) (int, error) { return 1, nil }
	run := func(optFns ...func(*fanout.Options)) func([]string) {
		f := fanout.New[int](func(o *fanout.Options) { o.Limit = 4 })
		return func(keys []string) { _, _ = f.Run(ctx, keys, noop, optFns...) }
	}
	budget := mustBudget(t, 3)
	for name, tc := range map[string]struct {
		run  func([]string)
		want float64
	}{
		"Run":         {run(), 0},
		"Weight":      {run(func(o *fanout.Options) { o.Weight = func(string) int64 { return 1 } }), 0},
		"OnDone":      {run(func(o *fanout.Options) { o.OnDone = func(fanout.Progress) {} }), 0},
		"ItemTimeout": {run(func(o *fanout.Options) { o.ItemTimeout = time.Minute }), 1},
		"Budget": {func(keys []string) {
			_, _ = fanout.New[int](func(o *fanout.Options) { o.Budget = budget }).Run(ctx, keys, noop)
		}, 0},
		"Stream": {func(keys []string) {
			for range fanout.New[int]().Stream(ctx, keys, noop) {
			}
		}, 0},
	} {
		got := allocsPerItem(tc.run)
		t.Logf("%s: %.3f allocations per item", name, got)
		if got > tc.want+0.02 {
			t.Errorf("%s: %.3f allocations per item; want %v", name, got, tc.want)
		}
	}
}

// TestCancelledCallGivesBackItsUnits: a call whose context ends has its
// workers give back the units they kept at once, not after walking its
// keys left (a million here) to mark them not started: another call on
// the same Fanout runs its item while the first is still marking, long
// before it returns.
func TestCancelledCallGivesBackItsUnits(t *testing.T) {
	t.Parallel()
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	var t0 time.Time
	cancelled := make(chan struct{})
	aEnded := make(chan time.Duration, 1)
	go func() {
		f.Run(ctx, keysN(1_000_000), func(context.Context, string) (int, error) {
			if n.Add(1) == 1000 {
				t0 = time.Now()
				cancel()
				close(cancelled)
			}
			return 1, nil
		})
		aEnded <- time.Since(t0)
	}()
	<-cancelled
	var bStarted time.Duration
	f.Run(context.Background(), []string{"b"}, func(context.Context, string) (int, error) {
		bStarted = time.Since(t0)
		return 1, nil
	})
	// Durations compared with each other, not with a bound: the second
	// call's item starts in the first half of the cancelled call's wind-down.
	if aEnd := <-aEnded; bStarted > aEnd/2 {
		t.Errorf("the second call's item started %v after the cancel, the cancelled call returned %v after; want the kept unit given back at the cancel", bStarted, aEnd)
	}
}

// TestPrintingAnItemsContext: fmt may print an item's context while the
// engine uses it, with no data race.
func TestPrintingAnItemsContext(t *testing.T) {
	t.Parallel()
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = 2 })
	res, _ := f.Run(context.Background(), keysN(50), func(ctx context.Context, _ string) (string, error) {
		done := make(chan string)
		go func() { done <- fmt.Sprint(ctx) }()
		_, _ = f.Run(ctx, []string{"nested"}, func(context.Context, string) (string, error) { return "", nil })
		return <-done, nil
	})
	if s := res[0].Value; !strings.Contains(s, "WithValue(fanout)") {
		t.Errorf("printed %q; want the context named", s)
	}
}
