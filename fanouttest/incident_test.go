package fanouttest_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/fanouttest"
)

// fakeClock is a Config.Clock a test moves by hand; it prints as the time
// since its epoch.
type fakeClock struct{ offset atomic.Int64 }

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time          { return epoch.Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }
func (c *fakeClock) set(since time.Duration) { c.offset.Store(int64(since)) }
func (c *fakeClock) String() string          { return time.Duration(c.offset.Load()).String() }

// TestIncident reproduces an incident's shape end to end, with no
// emulator: an organization of four accounts, listed by ListAccounts, over
// four regions. eu-west-1 throttles every call twice; ap-southeast-2
// flaps, failing 2 of every 3 attempts for 10 s, then recovers; the role
// in one account is denied; everything else is healthy. Every item gets
// the outcome AWS would give it, and the Server's counters agree.
func TestIncident(t *testing.T) {
	t.Parallel()
	const (
		denied     = "333333333333"
		throttling = "eu-west-1"
		flapping   = "ap-southeast-2"
		instances  = 4
	)
	clock := new(fakeClock)
	srv := newServer(t, fanouttest.Config{
		Accounts:  []string{"111111111111", "222222222222", denied},
		Instances: instances,
		Faults: []fanouttest.Rule{
			{Region: throttling, Service: "ec2", Attempts: 2, Fault: fanouttest.Throttled},
			{Region: flapping, Service: "ec2", Attempts: 2, Until: 10 * time.Second, Fault: fanouttest.Error500},
			{Account: denied, Operation: "AssumeRole", Fault: fanouttest.Denied},
		},
		Clock: clock.now,
	})
	ctx := context.Background()
	cfg := srv.AWSConfig("us-east-1")
	accounts, err := discover.OrganizationAccounts(ctx, organizations.NewFromConfig(cfg))
	if err != nil || len(accounts) != 4 {
		t.Fatalf("OrganizationAccounts: %v, %v; want the management account and 3 members", accounts, err)
	}
	roles, err := fanout.NewAccounts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) {
		o.Accounts = roles
		o.Retryer = func() aws.Retryer {
			return retry.AddWithMaxBackoffDelay(retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts, o.RateLimiter = 3, ratelimit.None
			}), time.Millisecond)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.CloseIdleConnections)
	regions := []string{"us-east-1", throttling, flapping, "sa-east-1"}
	count := func(ctx context.Context, c *ec2.Client, _, _ string) (int, error) {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		if err != nil {
			return 0, err
		}
		return len(out.Reservations), nil
	}

	res, err := fanout.AccountRegions(ctx, fanout.New[int](), pool, accounts, regions, count)
	if len(res) != len(accounts)*len(regions) {
		t.Fatalf("%d results; want one per account and region, %d", len(res), len(accounts)*len(regions))
	}
	if err == nil {
		t.Error("no error; want the denied account's")
	}
	for _, r := range res {
		if r.Account == denied {
			var acctErr *fanout.AccountError
			var apiErr smithy.APIError
			if !errors.As(r.Err, &acctErr) || !errors.As(r.Err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" || errors.Is(r.Err, fanout.ErrRegionDisabled) {
				t.Errorf("%s/%s: %v; want an AccountError with AccessDenied, not a disabled region", r.Account, r.Region, r.Err)
			}
			continue
		}
		wantThrottles := 0
		if r.Region == throttling {
			wantThrottles = 2
		}
		if r.Err != nil || r.Value != instances || r.Throttles != wantThrottles {
			t.Errorf("%s/%s: %d instances, %d throttles, %v; want %d, %d, no error", r.Account, r.Region, r.Value, r.Throttles, r.Err, instances, wantThrottles)
		}
	}
	healthy := int64(len(accounts) - 1)
	st := srv.Stats()
	for region, want := range map[string]fanouttest.Stats{
		throttling:  {Requests: 3 * healthy, Throttled: 2 * healthy},
		flapping:    {Requests: 3 * healthy, Faulted: 2 * healthy},
		"sa-east-1": {Requests: healthy},
	} {
		if got := st.Region[region]; got.Requests != want.Requests || got.Throttled != want.Throttled || got.Faulted != want.Faulted {
			t.Errorf("%s: %+v; want %+v", region, got, want)
		}
	}
	// The denied account was only ever asked for its role: every request
	// about it was one the rule denied.
	if a := st.Account[denied]; a.Requests == 0 || a.Requests != st.Rules[2] || a.Faulted != a.Requests {
		t.Errorf("denied account: %+v, rule fired %d times; want every request denied", a, st.Rules[2])
	}
	if st.Rules[0] != 2*healthy || st.Rules[1] != 2*healthy {
		t.Errorf("rules fired %v; want the throttle and the flap twice per call", st.Rules)
	}

	// Ten seconds on, the flapping region has recovered: one attempt each.
	clock.advance(11 * time.Second)
	res, _ = fanout.AccountRegions(ctx, fanout.New[int](), pool, accounts, []string{flapping}, count)
	for _, r := range res {
		if (r.Account == denied) != (r.Err != nil) {
			t.Errorf("after the flap, %s/%s: %v", r.Account, r.Region, r.Err)
		}
	}
	after := srv.Stats()
	if got := after.Region[flapping]; got.Requests != 4*healthy || got.Faulted != 2*healthy || after.Rules[1] != 2*healthy {
		t.Errorf("after the flap: %+v, rule fired %d times; want one more request per call and no more faults", got, after.Rules[1])
	}
}
