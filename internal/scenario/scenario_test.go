package scenario

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// small are the scenarios' sizes for tests: they assert outcomes and
// counts, not durations.
var small = Params{
	Limit: 64, Regions: 38, Pages: 3, PageLatency: 5 * time.Millisecond,
	Items: 300, Latency: 20 * time.Millisecond, Jitter: 0.2,
	WideItems: 600, WideLatency: 20 * time.Millisecond, WideLimit: 256,
	Bucket:      fanouttest.Bucket{Burst: 50, PerSecond: 100},
	ItemTimeout: 300 * time.Millisecond, StreamItems: 10_000, PipelineItems: 20_000,
	OrgAccounts: 200, OrgLimit: 64, OrgScopeLimit: 10, OrgLatency: 5 * time.Millisecond,
}

// TestOrg: accounts x regions through AccountRegions: every item gets its
// result, each account assumes its role once.
func TestOrg(t *testing.T) {
	o, err := Run(context.Background(), "org", Fanout, small)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d accounts, %d items in %.2fs (ideal %.2fs), peak RSS %.0f MB", o.Accounts, o.Items, o.WallS, o.IdealS, o.PeakRSSMB)
	if o.Accounts != small.OrgAccounts || o.Items != small.OrgAccounts*17 || o.Failed != 0 || o.AssumeRoleCalls != int64(small.OrgAccounts) || o.PeakRSSMB <= 0 {
		t.Errorf("%+v", o)
	}
}

// TestPipeline: every listed object gets its result, through the
// streaming fan-out and through errgroup over the listing collected
// first.
func TestPipeline(t *testing.T) {
	for _, impl := range []string{Fanout, Errgroup} {
		o, err := Run(context.Background(), "pipeline", impl, small)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d items, %.2fs, peak heap %.1f MB", impl, o.Items, o.WallS, o.PeakHeapMB)
		if o.Items != small.PipelineItems || o.Failed != 0 || o.PeakHeapMB <= 0 {
			t.Errorf("%s: %+v", impl, o)
		}
	}
}

func TestThrottle(t *testing.T) {
	ctx := context.Background()
	plain, err := Run(ctx, "throttle", Errgroup, small)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := Run(ctx, "throttle", Fanout, small)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("errgroup: %d of %d failed, %d of %d requests throttled, %.2fs", plain.Failed, plain.Items, plain.Throttled, plain.Requests, plain.WallS)
	t.Logf("fanout:   %d of %d failed, %d of %d requests throttled, %.2fs (ideal %.2fs)", ours.Failed, ours.Items, ours.Throttled, ours.Requests, ours.WallS, ours.IdealS)
	if plain.Failed == 0 {
		t.Error("the SDK's default clients under errgroup failed no call: the scenario does not throttle enough to show anything")
	}
	if ours.Failed != 0 {
		t.Errorf("fanout failed %d calls: %v", ours.Failed, ours.Errors)
	}
	if ours.Throttled*4 > ours.Requests {
		t.Errorf("fanout: %d of %d requests throttled; want under a quarter", ours.Throttled, ours.Requests)
	}
	for i, v := range ours.Values {
		if v != 1 {
			t.Fatalf("call %d saw %d instances; want 1", i, v)
		}
	}
}

// TestBelowOneRequestPerRoundTrip: against a quota below one request per
// round trip, and no Rate set, the pool's clients with their default
// retryer fail no call; the SDK's default clients under errgroup do.
// Fewer calls than the bench command makes, for time: the quotas are the
// same.
func TestBelowOneRequestPerRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		items int
	}{{"low-quota", 200}, {"route53-like", 40}} {
		t.Run(tc.name, func(t *testing.T) {
			p := small
			p.Items = tc.items
			plain, err := Run(ctx, tc.name, Errgroup, p)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := Run(ctx, tc.name, Fanout, p)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("errgroup: %d of %d failed, %d of %d requests throttled, %.2fs", plain.Failed, plain.Items, plain.Throttled, plain.Requests, plain.WallS)
			t.Logf("fanout:   %d of %d failed, %d of %d requests throttled, %.2fs (ideal %.2fs)", ours.Failed, ours.Items, ours.Throttled, ours.Requests, ours.WallS, ours.IdealS)
			if ours.Items != tc.items || plain.Failed == 0 {
				t.Errorf("%d calls, %d failed under errgroup: the scenario does not show anything", ours.Items, plain.Failed)
			}
			if ours.Failed != 0 {
				t.Errorf("fanout failed %d of %d calls: %v", ours.Failed, ours.Items, ours.Errors)
			}
		})
	}
}

// TestPeers: the SDK's adaptive mode and errgroup over the pool answer
// every call, with the right values.
func TestPeers(t *testing.T) {
	ctx := context.Background()
	for _, impl := range []string{SDKAdaptive, ErrgroupPool} {
		for name, want := range map[string]int{"items": 1, "regions": small.Pages * 5} {
			p := small
			p.Items = 100
			o, err := Run(ctx, name, impl, p)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, impl, err)
			}
			if o.Failed != 0 || len(o.Values) != o.Items || o.Items == 0 {
				t.Fatalf("%s/%s: %d of %d failed, %d values: %v", name, impl, o.Failed, o.Items, len(o.Values), o.Errors)
			}
			for i, v := range o.Values {
				if v != want {
					t.Fatalf("%s/%s: call %d (%s) saw %d instances; want %d", name, impl, i, o.Keys[i], v, want)
				}
			}
		}
	}
}

// TestSDKAdaptiveRetryer: the sdk-adaptive clients get the retryer that
// config.WithRetryMode(aws.RetryModeAdaptive) gives, one per client.
func TestSDKAdaptiveRetryer(t *testing.T) {
	ctx := context.Background()
	srv, err := fanouttest.New(fanouttest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := srv.AWSConfig("us-east-1")
	loaded, err := config.LoadDefaultConfig(ctx, config.WithRetryMode(aws.RetryModeAdaptive), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(base.Credentials), config.WithBaseEndpoint(aws.ToString(base.BaseEndpoint)))
	if err != nil {
		t.Fatal(err)
	}
	want := ec2.NewFromConfig(loaded).Options().Retryer
	clients := plainClients(adaptiveConfig(base))
	defer clients.close()
	east, west := clients.get("us-east-1").Options().Retryer, clients.get("us-west-2").Options().Retryer
	if _, ok := want.(*retry.AdaptiveMode); !ok {
		t.Fatalf("LoadDefaultConfig with the adaptive mode gives a %T", want)
	}
	if reflect.TypeOf(east) != reflect.TypeOf(want) || reflect.TypeOf(west) != reflect.TypeOf(want) || east == west {
		t.Errorf("sdk-adaptive clients' retryers: %T and %T (the same: %v); want each its own %T", east, west, east == west, want)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	o, err := Run(ctx, "faults", Fanout, small)
	if err != nil {
		t.Fatal(err)
	}
	if o.Items != 38 || o.Failed != 3 {
		t.Fatalf("%d of %d failed; want 3 of 38: %v", o.Failed, o.Items, o.Errors)
	}
	code := func(err error) string {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			return apiErr.ErrorCode()
		}
		return ""
	}
	for i, key := range o.Keys {
		err := o.Errs[i]
		switch key {
		case Failing:
			// The SDK's back-offs for a 500 start at 50ms, jittered: the
			// attempts run out before or after the ItemTimeout, by chance.
			// Either way the API error is reachable (the deadline case alone
			// is TestLastAttemptSurvivesTheDeadline in fanouttest).
			if code(err) != "InternalError" {
				t.Errorf("%s: %v; want InternalError", key, err)
			}
		case Hanging:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: %v; want the ItemTimeout", key, err)
			}
		case Disabled:
			if !errors.Is(err, fanout.ErrRegionDisabled) {
				t.Errorf("%s: %v; want ErrRegionDisabled", key, err)
			}
		default:
			if err != nil || o.Values[i] != 5 {
				t.Errorf("%s: %d, %v; want 5 instances", key, o.Values[i], err)
			}
		}
	}
}

func TestEveryScenarioRuns(t *testing.T) {
	ctx := context.Background()
	for _, name := range Names {
		for _, impl := range Impls {
			if name == "throttle" || name == "low-quota" || name == "route53-like" || name == "faults" && impl == Fanout {
				continue // above
			}
			if name == "dead-endpoint" {
				continue // TestDeadEndpoint
			}
			o, err := Run(ctx, name, impl, small)
			if errors.Is(err, ErrSkipped) {
				continue
			}
			if err != nil {
				t.Fatalf("%s/%s: %v", name, impl, err)
			}
			if o.Scenario != name || o.Impl != impl || o.Items == 0 || o.WallS <= 0 {
				t.Errorf("%s/%s: %+v", name, impl, o)
			}
			if name != "faults" && o.Failed != 0 {
				t.Errorf("%s/%s: %d failed: %v", name, impl, o.Failed, o.Errors)
			}
		}
	}
	if _, err := Run(ctx, "nope", Fanout, small); err == nil {
		t.Error("an unknown scenario ran")
	}
	if _, err := Run(ctx, "items", "nope", small); err == nil {
		t.Error("an unknown implementation ran")
	}
}
