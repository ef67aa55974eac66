package temporal

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/awsfanout/fanout/fanouttest"
)

// TestScanAcrossWorkers scans 200 accounts x 5 regions (3 pages each)
// with 3 workers on a real Temporal server, kills one at half-way, and
// checks that every account-region reached the sink, each once after
// dropping repeats by Key, that no account saw more calls in any second
// than the configured rate, and that the kill cost at most a page per
// account-region in flight.
func TestScanAcrossWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("a real Temporal server and 1,000 account-regions")
	}
	const (
		nAccounts = 200
		rate      = 5  // calls per account per second
		instances = 12 // 3 pages of pageSize
	)
	regions := []string{"us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"}
	accounts := accountIDs(nAccounts)
	// EC2 reads: a bucket per account, region and action, at the
	// accounts' rate. sts AssumeRole: one bucket, the calling account's,
	// which the workers share, each at a third of it.
	bucket := fanouttest.Bucket{Burst: rate, PerSecond: rate}
	const stsRate = 30
	aws := newFake(t, fanouttest.Config{
		Accounts:  accounts,
		Instances: instances,
		Latency:   fanouttest.Latency{Fixed: 10 * time.Millisecond, Jitter: 10 * time.Millisecond},
		Throttle:  fanouttest.Buckets{NonMutating: bucket, Mutating: fanouttest.Bucket{Burst: stsRate, PerSecond: stsRate}},
	})
	rec := newRecorder(t, aws.URL)
	cfg := aws.AWSConfig("us-east-1")
	cfg.BaseEndpoint = &rec.srv.URL

	ts := newTemporal(t)
	log := newSinkLog()
	procs := []*proc{
		startProc(t, ts, "w0", cfg, log, rate, stsRate/3),
		startProc(t, ts, "w1", cfg, log, rate, stsRate/3),
		startProc(t, ts, "w2", cfg, log, rate, stsRate/3),
	}
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := ConfigureQueues(ctx, c, ts.GetDefaultNamespace(), ScanOptions{}, QueueRates{AccountTasks: 2, Control: 1}); err != nil {
		t.Fatal(err)
	}
	scan, err := NewScan("scan-1", accounts, regions, func(o *ScanOptions) {
		o.AccountsInFlight = 60
		o.AccountsPerRun = 70 // three runs: continue-as-new carries the scan
		o.HeartbeatTimeout = 2 * time.Second
		o.RetryInterval = time.Second
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "scan-1", TaskQueue: DefaultScanQueue}, ScanWorkflowName, scan)
	if err != nil {
		t.Fatal(err)
	}

	// Kill w0 once half of the account-regions are in, at a moment it has
	// an account in flight (on a busy machine, a worker may be between
	// accounts at the half-way mark).
	total := nAccounts * len(regions)
	for _, accts := procs[0].inFlight(); log.keys.Load() < int64(total/2) || accts == 0; _, accts = procs[0].inFlight() {
		if ctx.Err() != nil || log.keys.Load() == int64(total) {
			t.Fatal("the scan did not reach half-way with an account in flight in w0")
		}
		time.Sleep(5 * time.Millisecond)
	}
	callsAtKill := len(rec.snapshot())
	regionsInFlight, accountsInFlight := procs[0].kill()
	killedAt := time.Since(start)
	if accountsInFlight == 0 {
		t.Error("the killed worker had no account in flight: the kill tested nothing")
	}

	var sum ScanSummary
	if err := run.Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)

	// Every account-region, once after dropping repeats, complete.
	dups := 0
	for _, acct := range accounts {
		for _, region := range regions {
			key := Key("scan-1", acct, region)
			got := log.got[key]
			switch {
			case len(got) == 0:
				t.Errorf("%s: never delivered", key)
				continue
			case got[0].Err != nil || len(got[0].Items) != instances || got[0].Pages != 3:
				t.Errorf("%s: delivered %d items in %d pages, err %v; want %d in 3", key, len(got[0].Items), got[0].Pages, got[0].Err, instances)
			}
			dups += len(got) - 1
		}
	}
	if n := len(log.got); n != total {
		t.Errorf("the sink got %d keys; want %d", n, total)
	}
	if sum.Delivered != total || sum.Failed != 0 || sum.Accounts != nAccounts || sum.Runs != 3 {
		t.Errorf("summary %+v; want %d delivered, none failed, %d accounts, 3 runs", sum, total, nAccounts)
	}

	// The rate per account, at the fake AWS, in every window of a second.
	calls := rec.snapshot()
	worst, worstAcct := 0, ""
	for acct, n := range maxPerWindow(calls, time.Second) {
		if n > worst {
			worst, worstAcct = n, acct
		}
	}
	if worst > rate {
		t.Errorf("account %s had %d calls in one second; the rate is %d", worstAcct, worst, rate)
		for _, c := range calls {
			if c.account == worstAcct {
				t.Logf("%s %s %s %s %q", c.at.Sub(start), c.service, c.action, c.region, c.token)
			}
		}
	}
	if th := aws.Stats().Total.Throttled; th != 0 {
		t.Errorf("the fake AWS throttled %d calls", th)
	}

	// Repeated calls: the same page of the same account-region asked twice.
	seen := map[string]int{}
	repeatedPages, repeatedRoles := 0, 0
	for _, c := range calls {
		k := fmt.Sprintf("%s %s %s %s", c.account, c.region, c.action, c.token)
		if seen[k]++; seen[k] > 1 {
			switch c.action {
			case "AssumeRole":
				repeatedRoles++
			case "DescribeInstances":
				repeatedPages++
			}
		}
	}
	if repeatedPages > regionsInFlight {
		t.Errorf("%d pages were asked again after the kill; at most %d (the account-regions in flight) should be", repeatedPages, regionsInFlight)
	}
	if dups > regionsInFlight {
		t.Errorf("%d account-regions were delivered twice; at most %d (those in flight at the kill) may be", dups, regionsInFlight)
	}
	ec2Calls := 0
	for _, c := range calls {
		if c.service == "ec2" {
			ec2Calls++
		}
	}
	if want := total * 3; ec2Calls != want+repeatedPages {
		t.Errorf("%d ec2 calls; want %d pages plus the %d repeated", ec2Calls, want, repeatedPages)
	}
	t.Logf("%d account-regions in %v (kill at %v, after %d calls): %d calls in all (%d ec2), max %d per account in any second (rate %d, worst %s), "+
		"killed worker had %d activities / %d account-regions in flight; repeated: %d pages, %d AssumeRole; delivered twice: %d; summary %+v",
		total, elapsed.Round(time.Millisecond), killedAt.Round(time.Millisecond), callsAtKill, len(calls), ec2Calls, worst, rate, worstAcct,
		accountsInFlight, regionsInFlight, repeatedPages, repeatedRoles, dups, sum)
	logSpans(t, calls)
	events := 0
	for it := c.GetWorkflowHistory(ctx, "scan-1", run.GetRunID(), false, 0); it.HasNext(); events++ {
		if _, err := it.Next(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("the first run's history: %d events for %d accounts", events, scan.Options.AccountsPerRun)
}
