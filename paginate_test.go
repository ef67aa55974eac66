package fanout_test

import (
	"context"
	"errors"
	"iter"
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
