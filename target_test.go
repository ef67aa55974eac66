package fanout_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
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
	srv := newFake(t, fanouttest.Config{
		Instances: 2,
		Faults: []fanouttest.Rule{
			{Region: "me-south-1", Fault: fanouttest.Disabled},
			{Region: "eu-west-3", Fault: fanouttest.Error500},
		},
		RegionThrottle: map[string]fanouttest.Buckets{
			"us-west-1": {NonMutating: fanouttest.Bucket{Burst: 1}}, // one call, never refilled
		},
	})
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

// TestRefusedCredentialsAreNotDisabledRegions: with keys AWS does not
// know, every region answers AuthFailure, as a region that is not enabled
// does. Nothing may be skipped as disabled: each item fails, saying the
// credentials were refused, and so does a role that cannot be assumed.
func TestRefusedCredentialsAreNotDisabledRegions(t *testing.T) {
	t.Parallel()
	// Every service refuses the keys everywhere, with the codes a region
	// that is not enabled gives: EC2 AuthFailure, STS InvalidClientTokenId.
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Fault: fanouttest.Disabled}}})
	cfg := srv.AWSConfig("us-east-1")
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIDUNKNOWN", "unknown-secret", "")
	skip := func(o *fanout.RegionOptions) { o.SkipDisabled = true }
	regions := []string{"eu-west-1", "us-east-2", "ap-south-1"}
	pool := newPool(t, cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) { o.Retryer = fastRetries })
	res, err := fanout.Regions(context.Background(), fanout.New[int](), pool, regions, countInstances, skip)
	if err == nil || len(res.Skipped()) != 0 || len(res.Failed()) != len(regions) {
		t.Fatalf("bad keys: %d skipped, %d failed, err %v; want every region failed", len(res.Skipped()), len(res.Failed()), err)
	}
	for _, r := range res {
		var apiErr smithy.APIError
		if !errors.Is(r.Err, fanout.ErrCredentialsRefused) || errors.Is(r.Err, fanout.ErrRegionDisabled) ||
			!errors.As(r.Err, &apiErr) || apiErr.ErrorCode() != "AuthFailure" {
			t.Errorf("%s: %v; want ErrCredentialsRefused with the AuthFailure, not ErrRegionDisabled", r.Region, r.Err)
		}
		if msg := r.Err.Error(); !strings.Contains(msg, "credentials") || strings.Contains(msg, "unknown-secret") {
			t.Errorf("%s: %q; want it to say the credentials were refused, without the secret", r.Region, msg)
		}
	}

	// A role that cannot be assumed, because the caller's own keys are
	// refused, fails its account's items; it is never a disabled region.
	accts := newAccounts(t, cfg)
	apool := newPool(t, cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) { o.Accounts = accts; o.Retryer = fastRetries })
	ares, err := fanout.AccountRegions(context.Background(), fanout.New[int](), apool, []string{"111111111111"}, regions,
		func(ctx context.Context, c *ec2.Client, _, region string) (int, error) {
			return countInstances(ctx, c, region)
		}, skip)
	if err == nil || len(ares.Skipped()) != 0 {
		t.Fatalf("refused AssumeRole: %d skipped, err %v; want every item failed", len(ares.Skipped()), err)
	}
	for _, r := range ares {
		var ae *fanout.AccountError
		if !errors.As(r.Err, &ae) || errors.Is(r.Err, fanout.ErrRegionDisabled) {
			t.Errorf("%s/%s: %v; want an *AccountError, not ErrRegionDisabled", r.Account, r.Region, r.Err)
		}
	}
}

// TestEveryRegionDisabledFailsLoudly: regions the account has not enabled
// are skipped when asked, once the credentials are known to work; but a
// run where every region looks disabled returns an error all the same.
func TestEveryRegionDisabledFailsLoudly(t *testing.T) {
	t.Parallel()
	regions := []string{"me-south-1", "af-south-1"}
	var disabled []fanouttest.Rule
	for _, r := range regions {
		disabled = append(disabled, fanouttest.Rule{Region: r, Fault: fanouttest.Disabled})
	}
	srv := newFake(t, fanouttest.Config{Faults: disabled})
	pool := newPool(t, srv.AWSConfig("us-east-1"), ec2.NewFromConfig)
	res, err := fanout.Regions(context.Background(), fanout.New[int](), pool, regions, countInstances,
		func(o *fanout.RegionOptions) { o.SkipDisabled = true })
	if len(res.Skipped()) != len(regions) || err == nil || !strings.Contains(err.Error(), "every region") {
		t.Errorf("%d of %d skipped, err %v; want every region skipped and an error saying so", len(res.Skipped()), len(regions), err)
	}
	res, err = fanout.Regions(context.Background(), fanout.New[int](), pool, append(regions, "eu-west-1"), countInstances,
		func(o *fanout.RegionOptions) { o.SkipDisabled = true })
	if len(res.Skipped()) != len(regions) || err != nil {
		t.Errorf("with one enabled region: %d skipped, err %v; want the disabled ones skipped, no error", len(res.Skipped()), err)
	}
}

// TestRegionsSurviveAPanickedTypedNil: an op that panics with an error
// value whose methods dereference a nil receiver fails its own item; the
// fan-out looks into the item errors afterwards without crashing.
func TestRegionsSurviveAPanickedTypedNil(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{})
	pool := newPool(t, srv.AWSConfig("us-east-1"), ec2.NewFromConfig)
	res, _ := fanout.Regions(context.Background(), fanout.New[int](), pool, []string{"eu-west-1", "us-east-2"},
		func(_ context.Context, _ *ec2.Client, region string) (int, error) {
			if region == "eu-west-1" {
				var e *isNastyError
				panic(error(e))
			}
			return 1, nil
		})
	var pe *fanout.PanicError
	if len(res) != 2 || !errors.As(res[0].Err, &pe) || res[1].Value != 1 {
		t.Errorf("%+v; want eu-west-1's panic as its error and us-east-2 fine", res)
	}
}

// isNastyError is a typed nil whose Is dereferences its receiver.
type isNastyError struct{ code string }

func (e *isNastyError) Error() string        { return "nasty" }
func (e *isNastyError) Is(target error) bool { return e.code == target.Error() }

// TestKeysOfAnotherPartition: commercial keys are refused in China and
// GovCloud with the codes of a disabled region; they are refused keys
// there, checked in that partition, not disabled regions.
func TestKeysOfAnotherPartition(t *testing.T) {
	t.Parallel()
	// The keys work with STS in the commercial partition and are refused
	// in every region of China and GovCloud; EC2 refuses them everywhere.
	var refused []fanouttest.Rule
	for _, region := range []string{"cn-north-1", "cn-northwest-1", "us-gov-east-1", "us-gov-west-1"} {
		refused = append(refused, fanouttest.Rule{Region: region, Fault: fanouttest.Disabled})
	}
	srv := newFake(t, fanouttest.Config{Faults: append(refused, fanouttest.Rule{Service: "ec2", Fault: fanouttest.Disabled})})
	cfg := srv.AWSConfig("us-east-1")
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIDCOMMERCIAL", "commercial-secret", "")
	pool := newPool(t, cfg, ec2.NewFromConfig)
	res, err := fanout.Regions(context.Background(), fanout.New[int](), pool, []string{"me-south-1", "cn-north-1", "us-gov-west-1"},
		countInstances, func(o *fanout.RegionOptions) { o.SkipDisabled = true })
	if !errors.Is(res[0].Skipped, fanout.ErrRegionDisabled) {
		t.Errorf("me-south-1: %+v; want skipped as disabled: the keys work in its partition", res[0])
	}
	for _, r := range res[1:] {
		if r.Skipped != nil || !errors.Is(r.Err, fanout.ErrCredentialsRefused) {
			t.Errorf("%s: skipped %v, err %v; want ErrCredentialsRefused", r.Region, r.Skipped, r.Err)
		}
	}
	if err == nil {
		t.Error("no error for the refused partitions")
	}
}

// TestTargetsAllocateNothingPerItem: the AWS layer's seam watches every
// item's attempts (its throttle count) without an allocation per item
// beyond the engine's own.
func TestTargetsAllocateNothingPerItem(t *testing.T) {
	// Not parallel: AllocsPerRun counts every goroutine's allocations.
	noop := func(context.Context, string) (int, error) { return 1, nil }
	for name, timeout := range map[string]time.Duration{"no ItemTimeout": 0, "ItemTimeout": time.Minute} {
		f := fanout.New[int](func(o *fanout.Options) { o.Limit = 4; o.ItemTimeout = timeout })
		engine := allocsPerItem(func(keys []string) { _, _ = f.Run(context.Background(), keys, noop) })
		got := allocsPerItem(func(keys []string) { _, _ = fanout.RunRegionTargets(context.Background(), f, keys, noop) })
		t.Logf("%s: %.3f allocations per item, the engine's %.3f", name, got, engine)
		if got > engine+0.02 {
			t.Errorf("%s: %.3f allocations per item; want the engine's %.3f", name, got, engine)
		}
	}
}
