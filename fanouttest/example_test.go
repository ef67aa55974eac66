package fanouttest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/fanouttest"
)

// A fan-out over three regions, one of which the account has not
// enabled: the real EC2 client sees AWS's AuthFailure, and the fan-out
// classifies it.
func Example() {
	srv, err := fanouttest.New(fanouttest.Config{
		Instances: 7,
		Faults:    []fanouttest.Rule{{Region: "me-south-1", Fault: fanouttest.Disabled}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	pool, err := fanout.NewClientPool(srv.AWSConfig("us-east-1"), ec2.NewFromConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.CloseIdleConnections()

	res, _ := fanout.Regions(context.Background(), fanout.New[int](), pool, []string{"eu-west-1", "me-south-1", "us-east-2"},
		func(ctx context.Context, c *ec2.Client, region string) (int, error) {
			out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			if err != nil {
				return 0, err
			}
			return len(out.Reservations), nil
		})
	for _, r := range res {
		fmt.Println(r.Key, r.Value, errors.Is(r.Err, fanout.ErrRegionDisabled))
	}
	st := srv.Stats()
	// Three DescribeInstances, and one GetCallerIdentity in us-east-1 that
	// told a disabled region from refused credentials.
	fmt.Println("requests:", st.Total.Requests)
	// Output:
	// eu-west-1 7 false
	// me-south-1 0 true
	// us-east-2 7 false
	// requests: 4
}

// A region that flaps: each call's first two attempts fail with a 500, and
// the SDK's retries carry the call through on the third.
func ExampleRule_attempts() {
	srv, err := fanouttest.New(fanouttest.Config{
		Instances: 3,
		Faults:    []fanouttest.Rule{{Region: "eu-west-1", Attempts: 2, Fault: fanouttest.Error500}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	c := ec2.NewFromConfig(srv.AWSConfig("eu-west-1"), func(o *ec2.Options) {
		o.Retryer = retry.AddWithMaxBackoffDelay(retry.NewStandard(), time.Millisecond)
	})
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	if err != nil {
		log.Fatal(err)
	}
	st := srv.Stats()
	fmt.Println("reservations:", len(out.Reservations))
	fmt.Println("requests:", st.Total.Requests, "faulted:", st.Total.Faulted)
	// Output:
	// reservations: 3
	// requests: 3 faulted: 2
}

// Accounts x regions with no emulator: the built-in responder lists the
// organization and hands out each account's role, except one that is
// denied.
func ExampleConfig_accounts() {
	srv, err := fanouttest.New(fanouttest.Config{
		Accounts:  []string{"111111111111", "222222222222"},
		Instances: 2,
		Faults:    []fanouttest.Rule{{Account: "222222222222", Operation: "AssumeRole", Fault: fanouttest.Denied}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	cfg := srv.AWSConfig("us-east-1")
	accounts, err := discover.OrganizationAccounts(ctx, organizations.NewFromConfig(cfg))
	if err != nil {
		log.Fatal(err)
	}
	roles, err := fanout.NewAccounts(cfg)
	if err != nil {
		log.Fatal(err)
	}
	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) { o.Accounts = roles })
	if err != nil {
		log.Fatal(err)
	}
	defer pool.CloseIdleConnections()
	res, _ := fanout.AccountRegions(ctx, fanout.New[int](), pool, accounts, []string{"eu-west-1"},
		func(ctx context.Context, c *ec2.Client, _, _ string) (int, error) {
			out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			if err != nil {
				return 0, err
			}
			return len(out.Reservations), nil
		})
	for _, r := range res {
		var acctErr *fanout.AccountError
		fmt.Println(r.Account, r.Value, errors.As(r.Err, &acctErr))
	}
	// Output:
	// 123456789012 2 false
	// 111111111111 2 false
	// 222222222222 0 true
}

// An outage that starts and ends: a rule with a window, on a clock the
// test moves, so that nothing waits.
func ExampleConfig_clock() {
	var offset atomic.Int64 // the server reads it while the example moves it
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	srv, err := fanouttest.New(fanouttest.Config{
		Faults: []fanouttest.Rule{{Region: "eu-west-1", From: time.Minute, Until: 2 * time.Minute, Fault: fanouttest.Error500}},
		Clock:  func() time.Time { return start.Add(time.Duration(offset.Load())) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	c := ec2.NewFromConfig(srv.AWSConfig("eu-west-1"), func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	for _, at := range []time.Duration{0, 90 * time.Second, 3 * time.Minute} {
		offset.Store(int64(at))
		_, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
		fmt.Println(at, err == nil)
	}
	// Output:
	// 0s true
	// 1m30s false
	// 3m0s true
}

// Seeded failures: a tenth of the requests, the same ones in every run.
func ExampleRule_fraction() {
	srv, err := fanouttest.New(fanouttest.Config{
		Seed:   7,
		Faults: []fanouttest.Rule{{Service: "sts", Fraction: 0.1, Fault: fanouttest.Throttled}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	c := sts.NewFromConfig(srv.AWSConfig("us-east-1"), func(o *sts.Options) { o.RetryMaxAttempts = 1 })
	failed := 0
	for range 100 {
		if _, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{}); err != nil {
			failed++
		}
	}
	fmt.Println("throttled:", failed, "of 100; the rule fired", srv.Stats().Rules[0], "times")
	// Output:
	// throttled: 6 of 100; the rule fired 6 times
}
