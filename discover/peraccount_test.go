package discover_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/fanouttest"
)

// TestEachAccountsOwnRegions: accounts opt into regions one by one. With
// RegionsOf, an account that opted into af-south-1 runs there and one
// that did not is never called there; a region list keeps each account to
// it, and a listed region an account has not enabled is skipped as not
// enabled, not dropped; an account whose regions cannot be listed has one
// result, its error.
func TestEachAccountsOwnRegions(t *testing.T) {
	t.Parallel()
	const optedIn, plain, broken = "111111111111", "222222222222", "333333333333"
	srv, err := fanouttest.New(fanouttest.Config{
		Accounts: []string{optedIn, plain, broken},
		AccountRegions: map[string][]string{
			optedIn: {"us-east-1", "eu-west-1", "af-south-1"},
			plain:   {"us-east-1", "eu-west-1"},
		},
		Faults: []fanouttest.Rule{ // neither call lists broken's regions
			{Account: broken, Service: "ec2", Operation: "DescribeRegions", Fault: fanouttest.Denied},
			{Account: broken, Service: "account", Fault: fanouttest.Denied},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cfg := srv.AWSConfig("us-east-1")
	accts, err := fanout.NewAccounts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = accts })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.CloseIdleConnections)
	op := func(ctx context.Context, c *sts.Client, account, region string) (string, error) {
		out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.Account), nil
	}
	run := func(regions []string) map[string]string {
		t.Helper()
		res, _ := fanout.AccountRegions(context.Background(), fanout.New[string](), pool, []string{optedIn, plain, broken}, regions, op,
			func(o *fanout.RegionOptions) { o.RegionsOf = discover.EnabledRegionsOf() })
		got := map[string]string{}
		for _, r := range res {
			switch {
			case r.OK() && r.Value == r.Account:
				got[r.Key] = "ran"
			case errors.Is(r.Skipped, fanout.ErrRegionDisabled):
				got[r.Key] = "skipped"
			case r.Err != nil && r.Account == broken && r.Region == "" && strings.Contains(r.Err.Error(), "its regions"):
				got[r.Key] = "its regions failed"
			default:
				got[r.Key] = fmt.Sprintf("%+v", r)
			}
		}
		return got
	}
	before := srv.Stats().Region["af-south-1"].Requests
	got := run(nil)
	want := map[string]string{
		optedIn + "/af-south-1": "ran", optedIn + "/eu-west-1": "ran", optedIn + "/us-east-1": "ran",
		plain + "/eu-west-1": "ran", plain + "/us-east-1": "ran",
		broken: "its regions failed",
	}
	if !maps.Equal(got, want) {
		t.Errorf("no region list: %v; want %v", got, want)
	}
	got = run([]string{"af-south-1", "eu-west-1"})
	want = map[string]string{
		optedIn + "/af-south-1": "ran", optedIn + "/eu-west-1": "ran",
		plain + "/af-south-1": "skipped", plain + "/eu-west-1": "ran",
		broken: "its regions failed",
	}
	if !maps.Equal(got, want) {
		t.Errorf("a region list: %v; want %v", got, want)
	}
	if n := srv.Stats().Region["af-south-1"].Requests - before; n != 2 {
		t.Errorf("%d calls into af-south-1; want 2, both the opted-in account's", n)
	}
}
