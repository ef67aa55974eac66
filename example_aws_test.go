package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"golang.org/x/time/rate"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// simulatedAWS starts fanouttest's in-process AWS, so that the examples
// run without an account or a network. With real AWS, cfg comes from
// config.LoadDefaultConfig instead.
func simulatedAWS(cfg fanouttest.Config) (aws.Config, func()) {
	srv, err := fanouttest.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	return srv.AWSConfig("us-east-1"), srv.Close
}

// A ClientPool builds one client per region on first use and hands the
// same one out after: one HTTP client, one credentials cache.
func ExampleClientPool() {
	cfg, stop := simulatedAWS(fanouttest.Config{})
	defer stop()
	pool, err := fanout.NewClientPool(cfg, sts.NewFromConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.CloseIdleConnections()

	out, err := pool.Get("eu-west-1").GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(aws.ToString(out.Account), pool.Get("eu-west-1") == pool.Get("eu-west-1"), pool.Len())
	// No throttle yet, so no limit: the fan-out's Limit bounds the client.
	fmt.Printf("%+v\n", pool.Stats()["eu-west-1"])
	// Output:
	// 123456789012 true 1
	// {Limit:+Inf InFlight:0 Requests:1 Throttles:0}
}

// Regions calls each region with its own client, classifies what AWS
// answers for a region the account has not enabled, and here reports it
// as skipped rather than failed.
func ExampleRegions() {
	cfg, stop := simulatedAWS(fanouttest.Config{
		Instances: 3,
		Faults:    []fanouttest.Rule{{Region: "me-south-1", Fault: fanouttest.Disabled}},
	})
	defer stop()
	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.CloseIdleConnections()

	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 8 })
	results, err := fanout.Regions(context.Background(), f, pool, []string{"eu-west-1", "me-south-1", "us-east-2"},
		func(ctx context.Context, c *ec2.Client, region string) (int, error) {
			out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			if err != nil {
				return 0, err
			}
			return len(out.Reservations), nil
		},
		func(o *fanout.RegionOptions) { o.SkipDisabled = true })
	for _, r := range results {
		fmt.Println(r.Region, r.Value, r.Skipped != nil, errors.Is(r.Skipped, fanout.ErrRegionDisabled))
	}
	fmt.Println("err:", err)
	// Output:
	// eu-west-1 3 false false
	// me-south-1 0 true true
	// us-east-2 3 false false
	// err: <nil>
}

// AccountRegions assumes a role in each account, once per account, and
// calls every region of it with that account's credentials.
func ExampleAccountRegions() {
	cfg, stop := simulatedAWS(fanouttest.Config{})
	defer stop()
	accounts, err := fanout.NewAccounts(cfg, func(o *fanout.AccountOptions) { o.RoleName = "Auditor" })
	if err != nil {
		log.Fatal(err)
	}
	pool, err := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = accounts })
	if err != nil {
		log.Fatal(err)
	}
	defer pool.CloseIdleConnections()

	results, err := fanout.AccountRegions(context.Background(), fanout.New[string](), pool,
		[]string{"111111111111", "222222222222"}, []string{"eu-west-1", "us-east-2"},
		func(ctx context.Context, c *sts.Client, account, region string) (string, error) {
			out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.Account), nil
		},
		func(o *fanout.RegionOptions) { o.ScopeLimit = 1 }) // one account at a time
	for _, r := range results {
		fmt.Printf("%s %s: acting in %s\n", r.Account, r.Region, r.Value)
	}
	fmt.Println("err:", err)
	// Output:
	// 111111111111 eu-west-1: acting in 111111111111
	// 111111111111 us-east-2: acting in 111111111111
	// 222222222222 eu-west-1: acting in 222222222222
	// 222222222222 us-east-2: acting in 222222222222
	// err: <nil>
}

// Collect drains an SDK paginator: every page of one region's instances.
func ExampleCollect() {
	cfg, stop := simulatedAWS(fanouttest.Config{Instances: 25})
	defer stop()
	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.CloseIdleConnections()

	p := ec2.NewDescribeInstancesPaginator(pool.Get("eu-west-1"), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(10)})
	reservations, err := fanout.Collect(context.Background(), p, p.NextPage, func(out *ec2.DescribeInstancesOutput) []ec2types.Reservation {
		return out.Reservations
	})
	fmt.Println(len(reservations), err)
	// Output: 25 <nil>
}

// A listing feeds the calls on its items as its pages arrive: PageItems
// turns the paginator into a sequence, and StreamItems2 pulls from it only
// when a worker is free. Results come as they finish, each carrying its
// item and named by its Key.
func ExampleStreamItems2() {
	cfg, stop := simulatedAWS(fanouttest.Config{Instances: 12})
	defer stop()
	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.CloseIdleConnections()

	ctx := context.Background()
	p := ec2.NewDescribeInstancesPaginator(pool.Get("eu-west-1"), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	instances := fanout.PageItems(ctx, p, p.NextPage, func(out *ec2.DescribeInstancesOutput) []ec2types.Instance {
		var all []ec2types.Instance
		for _, r := range out.Reservations {
			all = append(all, r.Instances...)
		}
		return all
	})
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = 4 })
	inspect := func(ctx context.Context, i ec2types.Instance) (string, error) {
		return string(i.State.Name), nil // stands in for a call on the instance
	}
	states, failed := map[string]int{}, 0
	for r := range fanout.StreamItems2(ctx, f, instances, inspect, func(o *fanout.ItemOptions[ec2types.Instance]) {
		o.Key = func(i ec2types.Instance) string { return aws.ToString(i.InstanceId) }
	}) {
		if r.Err != nil {
			failed++
			continue
		}
		states[r.Value]++
	}
	fmt.Println(states, "failed:", failed)
	// Output: map[running:12] failed: 0
}

// A shard of an array job (here AWS Batch's) scans its own accounts, and
// takes its share of the calling account's STS quota, which every shard
// spends. It compiles only: it reads the job's environment.
func ExampleShardFromEnv() {
	ctx := context.Background()
	var cfg aws.Config                   // config.LoadDefaultConfig's
	var accountIDs []string              // the organization's, listed once before the array started
	const stsPerSecond = 50.0            // what the calling account allows itself for AssumeRole
	shard, err := fanout.ShardFromEnv(0) // AWS_BATCH_JOB_ARRAY_INDEX and _SIZE
	if err != nil {
		log.Fatal(err)
	}
	mine, err := fanout.ShardAccounts(shard, accountIDs)
	if err != nil {
		log.Fatal(err)
	}
	stsLimit, err := fanout.NewAdaptive(func(o *fanout.AdaptiveOptions) {
		o.Rate, o.Burst = rate.Limit(stsPerSecond/float64(shard.Count)), 1
	})
	if err != nil {
		log.Fatal(err)
	}
	accounts, err := fanout.NewAccounts(cfg, func(o *fanout.AccountOptions) {
		o.STSOptions = append(o.STSOptions, func(so *sts.Options) { so.Retryer = fanout.AdaptiveRetryer(fanout.NewRetryer(), stsLimit) })
	})
	if err != nil {
		log.Fatal(err)
	}
	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) { o.Accounts = accounts })
	if err != nil {
		log.Fatal(err)
	}
	results, err := fanout.AccountRegions(ctx, fanout.New[int](), pool, mine, []string{"us-east-1", "eu-west-1"},
		func(ctx context.Context, c *ec2.Client, account, region string) (int, error) { return 0, nil })
	log.Printf("%s: %d account-regions, %v", shard.From, len(results), err)
}
