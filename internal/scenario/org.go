package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// orgRegions are the org scenario's regions: the 17 of AWS's commercial
// regions enabled by default.
var orgRegions = []string{
	"ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
	"ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3",
	"sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
}

// org: p.OrgAccounts member accounts x 17 regions through AccountRegions,
// one DescribeInstances per account and region, AssumeRole once per
// account, latency on every call, at OrgLimit with OrgScopeLimit accounts
// in flight. Ideal: every call, the AssumeRoles included, back to back at
// the Limit, each taking a call at Limit 1. The AssumeRoles run ahead of
// their accounts' items, outside the Limit, so a run can beat it by up to
// their share (1 in 18 calls here); the scope limit is no bound as long
// as its accounts have more items than the Limit.
func org(ctx context.Context, impl string, p Params) (Outcome, error) {
	if impl != Fanout {
		return Outcome{Impl: impl}, ErrSkipped
	}
	latency := p.jittered(p.OrgLatency)
	call, err := CallTime(ctx, latency)
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	accounts := make([]string, p.OrgAccounts)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("%012d", 200000000000+i)
	}
	srv, err := fanouttest.New(fanouttest.Config{
		Accounts: accounts, Instances: 1, Latency: latency,
		Faults: []fanouttest.Rule{{Operation: "AssumeRole", Latency: fanouttest.Latency{Fixed: time.Nanosecond}}}, // counts them
	})
	if err != nil {
		return Outcome{Impl: impl}, err
	}
	defer srv.Close()
	o := Outcome{Impl: impl, Limit: p.OrgLimit, Accounts: len(accounts)}
	stop := sampleHeap(&o)
	cpu0, start := cpuTime(), time.Now()
	cfg := srv.AWSConfig("us-east-1")
	accts, err := fanout.NewAccounts(cfg)
	if err != nil {
		stop()
		return o, err
	}
	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) {
		o.Accounts = accts
		o.MaxIdleConnsPerHost = p.OrgLimit
	})
	if err != nil {
		stop()
		return o, err
	}
	defer pool.CloseIdleConnections()
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = int64(p.OrgLimit) })
	res, err := fanout.AccountRegions(ctx, f, pool, accounts, orgRegions,
		func(ctx context.Context, c *ec2.Client, _, _ string) (int, error) { return describeOnce(ctx, c) },
		func(o *fanout.RegionOptions) { o.ScopeLimit = p.OrgScopeLimit })
	o.WallS, o.CPUS = time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
	stop()
	if res == nil {
		return o, err
	}
	o.Items = len(res)
	for _, r := range res {
		if r.Err != nil {
			o.Failed++
			if len(o.Errors) < 3 {
				o.Errors = append(o.Errors, r.Err.Error())
			}
		}
	}
	st := srv.Stats()
	o.AssumeRoleCalls = st.Rules[0]
	o.Conns, o.Requests, o.Throttled = st.Total.Conns, st.Total.Requests, st.Total.Throttled
	calls := len(accounts)*len(orgRegions) + len(accounts)
	o.IdealS, o.CallS = (time.Duration(calls) * call / time.Duration(p.OrgLimit)).Seconds(), call.Seconds()
	return o, nil
}
