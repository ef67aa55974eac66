package fanout_test

import (
	"context"
	"errors"
	"iter"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"go.uber.org/goleak"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/internal/mototest"
)

func TestItemsAcrossRegionsMoto(t *testing.T) {
	cfg := mototest.Fresh(t, "us-east-1")
	want := map[string]int{"eu-west-1": 11, "us-west-2": 6, "ap-southeast-1": 0}
	pool := newPool(t, cfg, ec2.NewFromConfig, httpClientOf[ec2.Options](cfg))
	for region, n := range want {
		launch(t, pool.Get(region), n)
	}
	regions := []string{"eu-west-1", "us-west-2", "ap-southeast-1"}
	pages := func(ctx context.Context, region string) iter.Seq2[[]ec2types.Reservation, error] {
		p := ec2.NewDescribeInstancesPaginator(pool.Get(region), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
		return func(yield func([]ec2types.Reservation, error) bool) {
			for out, err := range fanout.Pages(context.Background(), p, p.NextPage) {
				var rs []ec2types.Reservation
				if out != nil {
					rs = out.Reservations
				}
				if !yield(rs, err) || err != nil {
					return
				}
			}
		}
	}
	got := map[string]int{}
	done := map[string]bool{}
	batches := 0
	for pg := range fanout.Items(context.Background(), fanout.New[int](), regions, pages) {
		if pg.Err != nil {
			t.Fatal(pg.Err)
		}
		if pg.Done {
			if done[pg.Key] || regions[pg.Index] != pg.Key {
				t.Errorf("second or misplaced Done page for %s", pg.Key)
			}
			done[pg.Key] = true
			continue
		}
		if done[pg.Key] {
			t.Errorf("a page of %s after its Done page", pg.Key)
		}
		batches++
		for _, r := range pg.Items {
			got[pg.Key] += len(r.Instances)
		}
	}
	for _, region := range regions {
		if got[region] != want[region] || !done[region] {
			t.Errorf("%s: %d instances (done %v); want %d", region, got[region], done[region], want[region])
		}
	}
	if batches < 5 { // 11 instances at 5 a page is 3 pages, 6 is 2
		t.Errorf("%d pages; want the items page by page", batches)
	}
}

// TestItemsBreak is not parallel: goleak checks that nothing outlives the
// loop.
func TestItemsBreak(t *testing.T) {
	endless := func(ctx context.Context, key string) iter.Seq2[[]string, error] {
		return func(yield func([]string, error) bool) {
			for {
				if ctx.Err() != nil {
					yield(nil, ctx.Err())
					return
				}
				if !yield([]string{key}, nil) {
					return
				}
			}
		}
	}
	n := 0
	for pg := range fanout.Items(context.Background(), fanout.New[int](), keysN(50), endless) {
		if pg.Err != nil {
			t.Fatal(pg.Err)
		}
		if n++; n == 100 {
			break
		}
	}
	goleak.VerifyNone(t)
}

func TestItemsFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	pages := func(ctx context.Context, key string) iter.Seq2[[]int, error] {
		return func(yield func([]int, error) bool) {
			if !yield([]int{1, 2}, nil) {
				return
			}
			if strings.HasSuffix(key, "3") {
				yield(nil, boom)
			}
		}
	}
	items, failed := 0, 0
	for pg := range fanout.Items(context.Background(), fanout.New[int](), keysN(10), pages) {
		items += len(pg.Items)
		if pg.Err != nil {
			failed++
			if !errors.Is(pg.Err, boom) || !pg.Done || pg.Key != "k3" {
				t.Errorf("%+v", pg)
			}
		}
	}
	if items != 20 || failed != 1 {
		t.Errorf("%d items, %d failed; want 20 and 1", items, failed)
	}
}

// pager is a paginator of ints whose behaviour each test sets; its
// NextPage ignores ctx, as a careless one of the caller's might.
type pager struct {
	more  func() bool
	page  func(n int) (int, error)
	calls int
}

func (p *pager) HasMorePages() bool { return p.more() }

func (p *pager) NextPage(context.Context, ...func(*struct{})) (int, error) {
	p.calls++
	return p.page(p.calls)
}

// endless has pages for ever; after 1000 calls it fails, so that a loop
// that does not stop when ctx ends fails the test rather than hang it.
func endless() *pager {
	return &pager{more: func() bool { return true }, page: func(n int) (int, error) {
		if n > 1000 {
			return 0, errors.New("runaway: NextPage called 1000 times after ctx ended")
		}
		return n, nil
	}}
}

// TestPaginationStopsWhenCtxEnds: Collect and Pages stop asking for pages
// once ctx ends, even when the paginator's NextPage ignores it.
func TestPaginationStopsWhenCtxEnds(t *testing.T) {
	t.Parallel()
	t.Run("Collect", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := endless()
		got, err := fanout.Collect(ctx, p, p.NextPage, func(page int) []int {
			if page == 3 {
				cancel()
			}
			return []int{page}
		})
		if !errors.Is(err, context.Canceled) || !slices.Equal(got, []int{1, 2, 3}) || p.calls != 3 {
			t.Errorf("%d items, %v after %d pages; want pages 1 to 3 and ctx's error", len(got), err, p.calls)
		}
	})
	t.Run("Pages", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := endless()
		var errs []error
		for page, err := range fanout.Pages(ctx, p, p.NextPage) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if page == 3 {
				cancel()
			}
		}
		if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) || p.calls != 3 {
			t.Errorf("errors %v after %d pages; want ctx's error once, after 3 pages", errs, p.calls)
		}
	})
}

// TestPaginationBadInput: a nil paginator, next or items func is an error
// that names it, not a panic.
func TestPaginationBadInput(t *testing.T) {
	t.Parallel()
	p := endless()
	items := func(page int) []int { return []int{page} }
	for name, tc := range map[string]struct {
		collect func() ([]int, error)
		want    string
	}{
		"Collect nil ctx":       {func() ([]int, error) { return fanout.Collect(nil, p, p.NextPage, items) }, "fanout: Collect: nil Context"},
		"Collect nil paginator": {func() ([]int, error) { return fanout.Collect(context.Background(), nil, p.NextPage, items) }, "fanout: Collect: nil paginator"},
		"Collect nil next": {func() ([]int, error) {
			return fanout.Collect[int, int, struct{}](context.Background(), p, nil, items)
		}, "fanout: Collect: nil next func"},
		"Collect nil items":   {func() ([]int, error) { return fanout.Collect[int](context.Background(), p, p.NextPage, nil) }, "fanout: Collect: nil items func"},
		"Pages nil paginator": {func() ([]int, error) { return drain(fanout.Pages(context.Background(), nil, p.NextPage)) }, "fanout: Pages: nil paginator"},
		"Pages nil next": {func() ([]int, error) {
			return drain(fanout.Pages[int, struct{}](context.Background(), p, nil))
		}, "fanout: Pages: nil next func"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := tc.collect()
			if got != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, %v; want no items and an error containing %q", got, err, tc.want)
			}
		})
	}
	if p.calls != 0 {
		t.Errorf("NextPage called %d times; want none", p.calls)
	}
}

// drain collects a sequence's values up to its first error.
func drain(seq iter.Seq2[int, error]) ([]int, error) {
	var all []int
	for v, err := range seq {
		if err != nil {
			return all, err
		}
		all = append(all, v)
	}
	return all, nil
}

// TestPaginationPanics: a panic in the paginator, its NextPage or the
// items func becomes the call's *PanicError, with the value.
func TestPaginationPanics(t *testing.T) {
	t.Parallel()
	boom := func() (int, error) { panic("boom") }
	twoPages := func(n int) (int, error) { return n, nil }
	for name, tc := range map[string]struct {
		p     *pager
		items func(int) []int
		want  []int
	}{
		"HasMorePages": {&pager{more: func() bool { panic("boom") }, page: twoPages}, func(n int) []int { return []int{n} }, nil},
		"NextPage": {&pager{more: func() bool { return true }, page: func(n int) (int, error) {
			if n == 2 {
				return boom()
			}
			return n, nil
		}}, func(n int) []int { return []int{n} }, []int{1}},
		"items": {&pager{more: func() bool { return true }, page: twoPages}, func(n int) []int {
			if n == 2 {
				panic("boom")
			}
			return []int{n}
		}, []int{1}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := fanout.Collect(context.Background(), tc.p, tc.p.NextPage, tc.items)
			var pe *fanout.PanicError
			if !errors.As(err, &pe) || pe.Value != "boom" || len(pe.Stack) == 0 || !slices.Equal(got, tc.want) {
				t.Errorf("%v, %v; want %v and a *PanicError with the value", got, err, tc.want)
			}
		})
	}
	p := &pager{more: func() bool { return true }, page: func(int) (int, error) { return boom() }}
	if _, err := drain(fanout.Pages(context.Background(), p, p.NextPage)); !errors.As(err, new(*fanout.PanicError)) {
		t.Errorf("Pages: %v; want the NextPage's panic as a *PanicError", err)
	}
}

// TestItemsBadInput: a nil Fanout or pages func fails every key with an
// error naming it, and nothing panics.
func TestItemsBadInput(t *testing.T) {
	t.Parallel()
	pages := func(context.Context, string) iter.Seq2[[]int, error] {
		return func(yield func([]int, error) bool) { yield([]int{1}, nil) }
	}
	for name, tc := range map[string]struct {
		f     *fanout.Fanout[int]
		pages func(context.Context, string) iter.Seq2[[]int, error]
		want  string
	}{
		"nil ctx":    {fanout.New[int](), pages, "fanout: Items: nil Context"},
		"nil Fanout": {nil, pages, "nil *Fanout"},
		"nil pages":  {fanout.New[int](), nil, "fanout: Items: nil pages func"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			keys := keysN(3)
			var failed []string
			ctx := context.Background()
			if name == "nil ctx" {
				ctx = nil
			}
			for pg := range fanout.Items(ctx, tc.f, keys, tc.pages) {
				var ie *fanout.ItemError
				if !pg.Done || !errors.As(pg.Err, &ie) || ie.Key != pg.Key || keys[pg.Index] != pg.Key || !strings.Contains(pg.Err.Error(), tc.want) {
					t.Errorf("%+v; want a Done page with an error naming %q", pg, tc.want)
				}
				failed = append(failed, pg.Key)
			}
			slices.Sort(failed)
			if !slices.Equal(failed, keys) {
				t.Errorf("failed %v; want every key once", failed)
			}
		})
	}
}
