package fanout_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// TestRegionResults runs four regions against fanouttest: one answers,
// one is disabled, one fails, one is throttled on its second call for
// good. Each result says which, with its throttled attempts counted.
func TestRegionResults(t *testing.T) {
	t.Parallel()
	srv, err := fanouttest.New(fanouttest.Config{
		Instances: 2,
		Region: map[string]fanouttest.RegionConfig{
			"me-south-1": {Fault: fanouttest.Disabled},
			"eu-west-3":  {Fault: fanouttest.Error500},
			"us-west-1":  {Throttle: &fanouttest.Buckets{NonMutating: fanouttest.Bucket{Burst: 1}}}, // one call, never refilled
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	pool := newPool(t, srv.AWSConfig("us-east-1"), ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) { o.Retryer = fastRetries })
	regions := []string{"eu-west-1", "me-south-1", "eu-west-3", "us-west-1"}
	op := func(ctx context.Context, c *ec2.Client, _ string) (int, error) {
		n := 0
		for range 2 {
			out, err := c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
			if err != nil {
				return 0, err
			}
			n += len(out.Regions)
		}
		return n, nil
	}
	for _, skip := range []bool{false, true} {
		res, err := fanout.Regions(context.Background(), fanout.New[int](), pool, regions, op,
			func(o *fanout.RegionOptions) { o.SkipDisabled = skip })
		if len(res) != len(regions) {
			t.Fatalf("%d results for %d regions", len(res), len(regions))
		}
		for i, r := range res {
			if r.Region != regions[i] || r.Key != regions[i] || r.Index != i || r.Account != "" {
				t.Errorf("result %d names %q/%q/%d/%q", i, r.Region, r.Key, r.Index, r.Account)
			}
		}
		if res[0].Value != 2*len(fanouttest.DefaultRegions) || res[0].Throttles != 0 {
			t.Errorf("eu-west-1: %+v", res[0])
		}
		if !errors.Is(res[3].Err, fanout.ErrThrottled) || res[3].Throttles != fanout.DefaultMaxAttempts {
			t.Errorf("us-west-1: %v with %d throttles; want ErrThrottled after %d", res[3].Err, res[3].Throttles, fanout.DefaultMaxAttempts)
		}
		var apiErr smithy.APIError
		if !errors.As(res[2].Err, &apiErr) || apiErr.ErrorCode() != "InternalError" {
			t.Errorf("eu-west-3: %v", res[2].Err)
		}
		wantFailed := []string{"me-south-1", "eu-west-3", "us-west-1"}
		if skip {
			wantFailed = wantFailed[1:]
			if !errors.Is(res[1].Skipped, fanout.ErrRegionDisabled) || res[1].Err != nil || len(res.Skipped()) != 1 {
				t.Errorf("SkipDisabled: me-south-1 %+v", res[1])
			}
		} else if !errors.Is(res[1].Err, fanout.ErrRegionDisabled) || len(res.Skipped()) != 0 {
			t.Errorf("me-south-1: %+v", res[1])
		}
		var failed []string
		for _, r := range res.Failed() {
			failed = append(failed, r.Region)
		}
		if !slices.Equal(failed, wantFailed) || len(res.Values()) != 1 || len(res.Results()) != len(regions) {
			t.Errorf("SkipDisabled %v: failed %v, %d values; want %v and 1", skip, failed, len(res.Values()), wantFailed)
		}
		if err == nil || err.Error() != res.Err().Error() || !errors.Is(err, fanout.ErrThrottled) {
			t.Errorf("err %v; want the joined item errors", err)
		}
	}
}
