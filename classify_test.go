package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/internal/mototest"
)

func TestClassificationOverTheWire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDWIRE", "wire-secret", "")}
	check := func(name string, err error, kind error, code string) {
		t.Helper()
		var apiErr smithy.APIError
		if !errors.Is(err, kind) || !errors.As(err, &apiErr) || apiErr.ErrorCode() != code {
			t.Errorf("%s: %v; want errors.Is %v and the API error %s", name, err, kind, code)
		}
		if strings.Contains(fmt.Sprint(err), "wire-secret") {
			t.Errorf("%s: the error shows the secret key", name)
		}
	}
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{
		// EC2 answers AuthFailure in me-south-1, while the same keys work
		// with STS in the config's region: the region is not enabled.
		{Service: "ec2", Region: "me-south-1", Fault: fanouttest.Disabled},
		{Service: "sts", Region: "ap-east-1", Fault: fanouttest.Disabled},  // InvalidClientTokenId
		{Service: "organizations", Fault: fanouttest.Disabled},             // UnrecognizedClientException
		{Service: "ec2", Region: "eu-west-1", Fault: fanouttest.Throttled}, // RequestLimitExceeded
	}})
	cfg := srv.AWSConfig("us-east-1")
	cfg.Credentials = base.Credentials

	ec2Pool := newPool(t, cfg, ec2.NewFromConfig)
	res, err := fanout.Regions(ctx, fanout.New[int](), ec2Pool, []string{"me-south-1"}, countInstances)
	check("EC2 AuthFailure", res[0].Err, fanout.ErrRegionDisabled, "AuthFailure")
	check("joined", err, fanout.ErrRegionDisabled, "AuthFailure")
	res, err = fanout.Regions(ctx, fanout.New[int](), ec2Pool, []string{"me-south-1"}, countInstances,
		func(o *fanout.RegionOptions) { o.SkipDisabled = true })
	if !errors.Is(res[0].Skipped, fanout.ErrRegionDisabled) || err == nil || !strings.Contains(err.Error(), "every region") {
		t.Errorf("SkipDisabled: %+v, %v; want it skipped, and an error since every region was", res[0], err)
	}

	stsPool := newPool(t, cfg, sts.NewFromConfig)
	_, err = stsPool.Get("ap-east-1").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	check("STS InvalidClientTokenId", fanout.Classify(err), fanout.ErrRegionDisabled, "InvalidClientTokenId")

	orgPool := newPool(t, cfg, organizations.NewFromConfig)
	_, err = orgPool.Get("us-east-1").ListAccounts(ctx, &organizations.ListAccountsInput{})
	check("JSON UnrecognizedClientException", fanout.Classify(err), fanout.ErrRegionDisabled, "UnrecognizedClientException")

	throttledPool := newPool(t, cfg, ec2.NewFromConfig,
		func(o *fanout.PoolOptions[ec2.Options]) { o.Retryer = fastRetries })
	res, _ = fanout.Regions(ctx, fanout.New[int](), throttledPool, []string{"eu-west-1"}, countInstances)
	check("EC2 RequestLimitExceeded", res[0].Err, fanout.ErrThrottled, "RequestLimitExceeded")
	if n := srv.Stats().Region["eu-west-1"].Requests; n != fanout.DefaultMaxAttempts {
		t.Errorf("the throttled call was sent %d times; want DefaultMaxAttempts %d", n, fanout.DefaultMaxAttempts)
	}
}

// TestUnmodeled429IsAThrottle: an HTTP 429 whose body names no modeled
// error is a throttle to the SDK's retryers (retry.DefaultThrottles), and
// so to Classify and to the adaptive limit.
func TestUnmodeled429IsAThrottle(t *testing.T) {
	t.Parallel()
	// An ErrorServer, not fanouttest: fanouttest's throttles are modeled errors, never a bare 429.
	srv, calls := mototest.ErrorServer(t, http.StatusTooManyRequests, "text/plain", "slow down")
	cfg := aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID429", "secret-429", "")}
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Retryer = fastRetries })
	res, err := fanout.Regions(context.Background(), fanout.New[int](), pool, []string{"eu-west-1"},
		func(ctx context.Context, c *sts.Client, _ string) (int, error) {
			_, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return 0, err
		})
	if !errors.Is(err, fanout.ErrThrottled) || res[0].Throttles != fanout.DefaultMaxAttempts {
		t.Errorf("429: %v with %d throttles counted; want ErrThrottled after %d throttled attempts", err, res[0].Throttles, fanout.DefaultMaxAttempts)
	}
	if n := calls.Load(); n != fanout.DefaultMaxAttempts {
		t.Errorf("sent %d times; want %d", n, fanout.DefaultMaxAttempts)
	}
	if st := pool.Stats()["eu-west-1"]; st.Throttles != fanout.DefaultMaxAttempts || math.IsInf(st.Limit, 1) {
		t.Errorf("adaptive limit after %d throttles: %+v; want it cut", fanout.DefaultMaxAttempts, st)
	}
}

// TestClassified: a plain Run over AWS calls, with its op wrapped in
// Classified, classifies errors as Regions does and keeps the last
// attempt's API error when the item's deadline ends a retry's back-off;
// without the wrapper, the engine leaves errors alone.
func TestClassified(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{
		{Region: "eu-west-1", Fault: fanouttest.Error500},
		{Region: "me-south-1", Fault: fanouttest.Disabled},
	}})
	pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.Retryer = func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts, o.BaseDelay, o.RateLimiter = 5, time.Second, ratelimit.None // back-offs far past the deadline
			})
		}
	})
	op := func(ctx context.Context, region string) (int, error) {
		_, err := pool.Get(region).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		return 0, err
	}
	f := fanout.New[int](func(o *fanout.Options) { o.ItemTimeout = 100 * time.Millisecond })
	keys := []string{"eu-west-1", "me-south-1", "me-south-1"} // a plain Run takes repeated keys
	res, _ := f.Run(context.Background(), keys, fanout.Classified(op))
	var apiErr smithy.APIError
	if err := res[0].Err; !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InternalFailure" {
		t.Errorf("eu-west-1: %v; want the deadline and the last attempt's InternalFailure", err)
	}
	for _, r := range res[1:] {
		if !errors.Is(r.Err, fanout.ErrRegionDisabled) {
			t.Errorf("me-south-1: %v; want ErrRegionDisabled", r.Err)
		}
	}
	res, _ = f.Run(context.Background(), keys, op)
	if err := res[0].Err; !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &apiErr) || errors.Is(res[1].Err, fanout.ErrRegionDisabled) {
		t.Errorf("unwrapped op: %v, %v; want the errors as the SDK returned them", err, res[1].Err)
	}
}
