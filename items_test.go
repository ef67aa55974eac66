package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

type object struct {
	Name string
	Size int64
}

// TestRunItems: items of any type, weighed and named by the item; the
// results, in input order, carry it.
func TestRunItems(t *testing.T) {
	t.Parallel()
	objects := []object{{"a", 3}, {"b", 1}, {"bad", 2}, {"huge", 99}, {"c", 4}}
	f := fanout.New[int64](func(o *fanout.Options) { o.Limit = 4 })
	var inFlight, peak atomic.Int64
	rs, err := fanout.RunItems(context.Background(), f, objects, func(_ context.Context, o object) (int64, error) {
		defer inFlight.Add(-o.Size)
		if n := inFlight.Add(o.Size); n > peak.Load() {
			peak.Store(n)
		}
		if o.Name == "bad" {
			return 0, errors.New("refused")
		}
		return o.Size * 10, nil
	}, func(o *fanout.ItemOptions[object]) {
		o.Key = func(o object) string { return o.Name }
		o.Weight = func(o object) int64 { return o.Size }
	})
	if len(rs) != len(objects) {
		t.Fatalf("%d results for %d items", len(rs), len(objects))
	}
	for i, r := range rs {
		if r.Index != i || r.Item != objects[i] || r.Key != objects[i].Name {
			t.Errorf("result %d: index %d, item %+v, key %q; want the item in input order", i, r.Index, r.Item, r.Key)
		}
	}
	if got := rs.Values(); !slices.Equal(got, []int64{30, 10, 40}) {
		t.Errorf("values %v", got)
	}
	if f := rs.Failed(); len(f) != 2 || f[0].Key != "bad" || f[1].Key != "huge" {
		t.Errorf("failed %+v; want bad and huge", f)
	}
	for _, want := range []string{`item 2 "bad": refused`, `item 3 "huge": weight 99 is outside 1..4`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v; want it to say %q", err, want)
		}
	}
	if peak.Load() > 4 {
		t.Errorf("peak weight in flight %d; want at most the Limit, 4", peak.Load())
	}
}

// TestItemOptionsErrors: what a typed call refuses, before calling op.
func TestItemOptionsErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	op := func(context.Context, object) (int, error) { t.Error("op called"); return 0, nil }
	byKey := fanout.New[int](func(o *fanout.Options) { o.Weight = func(string) int64 { return 1 } })
	for name, tc := range map[string]struct {
		f    *fanout.Fanout[int]
		fn   func(*fanout.ItemOptions[object])
		want string
	}{
		"a key's Weight": {fanout.New[int](), func(o *fanout.ItemOptions[object]) { o.Options.Weight = func(string) int64 { return 1 } },
			"set ItemOptions.Weight, which takes the item"},
		"a key's Scope": {fanout.New[int](), func(o *fanout.ItemOptions[object]) { o.Options.Scope = func(string) string { return "" } },
			"set ItemOptions.Scope, which takes the item"},
		"the Fanout's Weight, no Key": {byKey, nil, "the Fanout's Options.Weight takes a key, and ItemOptions.Key is nil"},
		"Limit 0":                     {fanout.New[int](), func(o *fanout.ItemOptions[object]) { o.Limit = 0 }, "Options.Limit is 0"},
		"nil Fanout":                  {nil, nil, "nil *Fanout"},
	} {
		var fns []func(*fanout.ItemOptions[object])
		if tc.fn != nil {
			fns = append(fns, tc.fn)
		}
		if rs, err := fanout.RunItems(ctx, tc.f, []object{{"a", 1}}, op, fns...); rs != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: RunItems: %v, %v; want an error containing %q", name, rs, err, tc.want)
		}
		var got []fanout.ItemResult[object, int]
		for r := range fanout.StreamItems(ctx, tc.f, slices.Values([]object{{"a", 1}}), op, fns...) {
			got = append(got, r)
		}
		if len(got) != 1 || got[0].Err == nil || !strings.Contains(got[0].Err.Error(), tc.want) {
			t.Errorf("%s: StreamItems: %+v; want one result whose error contains %q", name, got, tc.want)
		}
	}
	// The Fanout's Weight applies to the item's Key.
	var weighed []string
	byKey = fanout.New[int](func(o *fanout.Options) {
		o.Limit = 1
		o.Weight = func(key string) int64 { weighed = append(weighed, key); return 1 }
	})
	_, err := fanout.RunItems(ctx, byKey, []object{{"a", 1}, {"b", 2}}, func(context.Context, object) (int, error) { return 0, nil },
		func(o *fanout.ItemOptions[object]) { o.Key = func(o object) string { return o.Name } })
	if err != nil || !slices.Equal(weighed, []string{"a", "b"}) {
		t.Errorf("the Fanout's Weight saw %q (%v); want the items' keys", weighed, err)
	}
	// A sequence cannot be grouped by scope; a panicking Key is the item's error.
	for r := range fanout.StreamItems(ctx, fanout.New[int](), slices.Values([]object{{"a", 1}}), op,
		func(o *fanout.ItemOptions[object]) { o.Scope = func(o object) string { return o.Name } }) {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "give a slice, not a sequence") {
			t.Errorf("a Scope over a sequence: %v", r.Err)
		}
	}
	rs, _ := fanout.RunItems(ctx, fanout.New[int](), []object{{"a", 1}}, func(context.Context, object) (int, error) { return 1, nil },
		func(o *fanout.ItemOptions[object]) { o.Key = func(object) string { panic("no name") } })
	var pe *fanout.PanicError
	if len(rs) != 1 || !errors.As(rs[0].Err, &pe) {
		t.Errorf("a panicking Key: %+v; want the item's *PanicError", rs)
	}
}

// counted is a sequence of n items (0 to n-1; n < 0 for no end) that
// counts the items pulled and says when its producer has returned.
type counted struct {
	pulled atomic.Int64
	ended  chan struct{}
}

func (c *counted) seq(n int) iter.Seq[int] {
	c.ended = make(chan struct{})
	return func(yield func(int) bool) {
		defer close(c.ended)
		for i := 0; n < 0 || i < n; i++ {
			c.pulled.Add(1)
			if !yield(i) {
				return
			}
		}
	}
}

// TestStreamItemsPullsLazily: a sequence is pulled only as workers free
// up: with both places of a Limit of 2 taken by items that wait, no third
// item has been pulled, whatever the sequence's length; then every item
// gets its one result.
func TestStreamItemsPullsLazily(t *testing.T) {
	t.Parallel()
	var c counted
	started, release := make(chan int), make(chan struct{})
	op := func(_ context.Context, i int) (int, error) {
		if i < 2 {
			started <- i
			<-release
		}
		return i * i, nil
	}
	results := make(chan fanout.ItemResult[int, int])
	go func() {
		defer close(results)
		for r := range fanout.StreamItems(context.Background(), fanout.New[int](func(o *fanout.Options) { o.Limit = 2 }), c.seq(1000), op) {
			results <- r
		}
	}()
	<-started
	<-started
	if n := c.pulled.Load(); n != 2 {
		t.Errorf("%d items pulled with both places taken; want 2", n)
	}
	close(release)
	seen := make([]bool, 1000)
	for r := range results {
		if r.Err != nil || r.Value != r.Item*r.Item || r.Index != r.Item || seen[r.Index] {
			t.Fatalf("result %+v", r)
		}
		seen[r.Index] = true
	}
	if i := slices.Index(seen, false); i >= 0 {
		t.Errorf("item %d has no result", i)
	}
	<-c.ended
}

// TestStreamItemsBreak: breaking out of the loop stops the producer of an
// endless sequence and leaves no goroutine (goleak, in TestMain).
func TestStreamItemsBreak(t *testing.T) {
	t.Parallel()
	var c counted
	n := 0
	for r := range fanout.StreamItems(context.Background(), fanout.New[int](func(o *fanout.Options) { o.Limit = 8 }), c.seq(-1),
		func(ctx context.Context, i int) (int, error) { return i, nil }) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if n++; n == 50 {
			break
		}
	}
	select {
	case <-c.ended:
	default:
		t.Error("the producer still runs after the loop broke")
	}
}

// TestStreamItems2ProducerFails: a producer's error, or its panic, is a
// result of its own after the items it yielded, each of which gets its
// result; nothing more is pulled.
func TestStreamItems2ProducerFails(t *testing.T) {
	t.Parallel()
	boom := errors.New("listing failed")
	for name, tc := range map[string]struct {
		fail func(yield func(int, error) bool) bool
		want func(error) bool
	}{
		"error": {func(yield func(int, error) bool) bool { return yield(0, boom) }, func(err error) bool { return errors.Is(err, boom) }},
		"panic": {func(func(int, error) bool) bool { panic("listing panicked") }, func(err error) bool {
			var pe *fanout.PanicError
			return errors.As(err, &pe) && pe.Value == "listing panicked"
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var after atomic.Bool
			seq := func(yield func(int, error) bool) {
				for i := range 5 {
					if !yield(i, nil) {
						return
					}
				}
				if tc.fail(yield) { // asked for more after the error
					after.Store(true)
					yield(99, nil)
				}
			}
			var got []fanout.ItemResult[int, int]
			for r := range fanout.StreamItems2(context.Background(), fanout.New[int](func(o *fanout.Options) { o.Limit = 3 }), seq,
				func(ctx context.Context, i int) (int, error) { return i, nil }) {
				got = append(got, r)
			}
			slices.SortFunc(got, func(a, b fanout.ItemResult[int, int]) int { return a.Index - b.Index })
			if len(got) != 6 {
				t.Fatalf("%d results; want the 5 items and the producer's failure: %+v", len(got), got)
			}
			for i, r := range got[:5] {
				if r.Index != i || r.Err != nil || r.Value != i {
					t.Errorf("item %d: %+v", i, r)
				}
			}
			var pe *fanout.ProducerError
			if last := got[5]; last.Index != 5 || !errors.As(last.Err, &pe) || !tc.want(last.Err) {
				t.Errorf("the producer's result: %+v", last)
			}
			if after.Load() {
				t.Error("the producer was pulled after its error")
			}
		})
	}
}

// TestStreamItemsFailFast: under FailFast the first failure stops the
// pulling; every item pulled gets exactly one result, and the rest of the
// sequence one more.
func TestStreamItemsFailFast(t *testing.T) {
	t.Parallel()
	var c counted
	var mu sync.Mutex
	indexes := map[int]int{}
	for r := range fanout.StreamItems(context.Background(), fanout.New[int](func(o *fanout.Options) { o.Limit = 4; o.FailFast = true }), c.seq(10000),
		func(ctx context.Context, i int) (int, error) {
			if i == 20 {
				return 0, errors.New("stop")
			}
			return i, nil
		}) {
		mu.Lock()
		indexes[r.Index]++
		mu.Unlock()
	}
	<-c.ended
	pulled := int(c.pulled.Load())
	if pulled >= 10000 || len(indexes) != pulled+1 {
		t.Errorf("%d pulled, %d results; want fewer than all pulled, one result for each, and one for the rest", pulled, len(indexes))
	}
	for i, n := range indexes {
		if n != 1 {
			t.Errorf("item %d: %d results", i, n)
		}
	}
}

// TestPageItemsFeedsTheFanout: a real SDK paginator over the wire
// (fanouttest's Organizations) becomes a sequence of accounts that a
// fan-out drains; pages are fetched as it does, not all up front.
func TestPageItemsFeedsTheFanout(t *testing.T) {
	t.Parallel()
	var accounts []string
	for i := range 25 {
		accounts = append(accounts, fmt.Sprintf("1000000000%02d", i))
	}
	srv := newFake(t, fanouttest.Config{Accounts: accounts})
	client := organizations.NewFromConfig(srv.AWSConfig("us-east-1"))
	ctx := context.Background()
	p := organizations.NewListAccountsPaginator(client, &organizations.ListAccountsInput{MaxResults: aws.Int32(5)})
	seq := fanout.PageItems(ctx, p, p.NextPage, func(out *organizations.ListAccountsOutput) []orgtypes.Account { return out.Accounts })

	requests := func() int64 { return srv.Stats().Total.Requests }
	first := true
	var got []string
	for r := range fanout.StreamItems2(ctx, fanout.New[string](func(o *fanout.Options) { o.Limit = 1 }), seq,
		func(ctx context.Context, a orgtypes.Account) (string, error) { return aws.ToString(a.Id), nil },
		func(o *fanout.ItemOptions[orgtypes.Account]) {
			o.Key = func(a orgtypes.Account) string { return aws.ToString(a.Id) }
		}) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if first {
			// One item done, a second pulled at most: still the first page.
			if n := requests(); n != 1 {
				t.Errorf("%d requests after the first account; want 1, the first page", n)
			}
			first = false
		}
		got = append(got, r.Value)
	}
	slices.Sort(got)
	if want := append(slices.Clone(accounts), fanouttest.DefaultAccount); len(got) != len(want) {
		t.Errorf("%d accounts; want %d", len(got), len(want))
	}
	if n := requests(); n != 6 {
		t.Errorf("%d requests; want 6 pages of 5 (26 accounts with the management one)", n)
	}
}

// TestPageItemsErrors: what PageItems yields for bad input.
func TestPageItemsErrors(t *testing.T) {
	t.Parallel()
	client := organizations.NewFromConfig(aws.Config{Region: "us-east-1"})
	p := organizations.NewListAccountsPaginator(client, &organizations.ListAccountsInput{})
	items := func(out *organizations.ListAccountsOutput) []orgtypes.Account { return out.Accounts }
	for name, seq := range map[string]iter.Seq2[orgtypes.Account, error]{
		"nil Context":    fanout.PageItems(nil, p, p.NextPage, items), //nolint:staticcheck // the point
		"nil paginator":  fanout.PageItems[orgtypes.Account](context.Background(), nil, p.NextPage, items),
		"nil items func": fanout.PageItems[orgtypes.Account](context.Background(), p, p.NextPage, nil),
	} {
		n := 0
		for _, err := range seq {
			n++
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if n != 1 {
			t.Errorf("%s: %d yields; want 1", name, n)
		}
	}
}

// TestWorkersFollowWhatRuns: with weights far above 1, a Limit in bytes
// (a billion) is no count of goroutines, of items pulled or of results
// buffered: a sequence has no more pulled than can run, plus one waiting
// for room, and a slice no more workers.
func TestWorkersFollowWhatRuns(t *testing.T) {
	t.Parallel()
	const limit = 1 << 30
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = limit })
	var c counted
	running, release := make(chan struct{}), make(chan struct{})
	op := func(ctx context.Context, i int) (int, error) {
		running <- struct{}{}
		<-release
		return i, nil
	}
	quarter := func(o *fanout.ItemOptions[int]) { o.Weight = func(int) int64 { return limit / 4 } }
	done := make(chan int)
	go func() {
		n := 0
		for range fanout.StreamItems(context.Background(), f, c.seq(100_000), op, quarter) {
			if n++; n == 8 {
				break
			}
		}
		done <- n
	}()
	for range 4 {
		<-running
	}
	if n := c.pulled.Load(); n > 5 {
		t.Errorf("%d items pulled with 4 running; want at most 5", n)
	}
	close(release)
	go func() {
		for range running { // the items that start after the release
		}
	}()
	if n := <-done; n != 8 {
		t.Errorf("%d results before the break; want 8", n)
	}
	<-c.ended
	close(running)

	// A slice: workers as many as run at once, plus one, not one per key.
	keys := keysN(10_000)
	var inOp, peak atomic.Int64
	_, err := f.Run(context.Background(), keys, func(ctx context.Context, _ string) (int, error) {
		defer inOp.Add(-1)
		if n := inOp.Add(1); n > peak.Load() {
			peak.Store(n)
		}
		return 0, nil
	}, func(o *fanout.Options) { o.Weight = func(string) int64 { return limit / 4 } })
	if err != nil || peak.Load() > 4 {
		t.Errorf("peak %d in op (%v); want at most 4", peak.Load(), err)
	}
}

// TestStreamItemsCancelledSaysSo: a run whose ctx ends before its
// sequence does ends with one more result, failed as not started, for the
// rest of the sequence: a Ctrl-C never reads as a listing done.
func TestStreamItemsCancelledSaysSo(t *testing.T) {
	t.Parallel()
	for _, before := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		if before {
			cancel()
		}
		var c counted
		var got []fanout.ItemResult[int, int]
		for r := range fanout.StreamItems(ctx, fanout.New[int](func(o *fanout.Options) { o.Limit = 1 }), c.seq(10),
			func(ctx context.Context, i int) (int, error) { return i, nil }) {
			got = append(got, r)
			if len(got) == 3 {
				cancel()
			}
		}
		cancel()
		if c.pulled.Load() > 0 { // a sequence never pulled never ran
			<-c.ended
		}
		if len(got) == 0 {
			t.Fatalf("cancelled before %v: no result at all", before)
		}
		last := got[len(got)-1]
		if !errors.Is(last.Err, fanout.ErrNotStarted) || !strings.Contains(last.Err.Error(), "the rest of the sequence") || last.Index != len(got)-1 {
			t.Errorf("cancelled before %v: last of %d results %+v; want the rest of the sequence, not started", before, len(got), last)
		}
	}
}

// TestStreamItems2KeepsTheItemBesideAnError: a producer that yields an
// item with its error has the item in that result.
func TestStreamItems2KeepsTheItemBesideAnError(t *testing.T) {
	t.Parallel()
	seq := func(yield func(int, error) bool) {
		_ = yield(1, nil) && yield(2, errors.New("partial page")) && yield(3, nil)
	}
	var got []fanout.ItemResult[int, int]
	for r := range fanout.StreamItems2(context.Background(), fanout.New[int](func(o *fanout.Options) { o.Limit = 1 }), seq,
		func(ctx context.Context, i int) (int, error) { return i, nil }) {
		got = append(got, r)
	}
	var pe *fanout.ProducerError
	if len(got) != 2 || got[0].Value != 1 || got[1].Item != 2 || !errors.As(got[1].Err, &pe) {
		t.Errorf("%+v; want item 1, then the producer's error carrying item 2", got)
	}
}

// TestStreamItemsSurvivesARudeSequence: a sequence that goes on after
// yield said to stop panics in the iterator machinery as the loop stops
// it; the loop ends, and the process lives.
func TestStreamItemsSurvivesARudeSequence(t *testing.T) {
	t.Parallel()
	rude := func(yield func(int) bool) {
		for i := range 100 {
			yield(i) // ignores false
		}
	}
	n := 0
	for range fanout.StreamItems(context.Background(), fanout.New[int](func(o *fanout.Options) { o.Limit = 2 }), rude,
		func(ctx context.Context, i int) (int, error) { return i, nil }) {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("%d results", n)
	}
}
