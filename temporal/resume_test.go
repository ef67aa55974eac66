package temporal

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// TestScanAccountResumes runs the account activity with the heartbeat of
// an attempt that died: us-east-1 delivered, eu-west-1 two pages in. The
// attempt must not call us-east-1, must ask eu-west-1 for its third page
// only, and deliver it with the items of the pages before.
func TestScanAccountResumes(t *testing.T) {
	const acct = "111111111111"
	aws := newFake(t, fanouttest.Config{Accounts: []string{acct}, Instances: 12})

	var mu sync.Mutex
	var asked []string
	got := map[string]Result[string]{}
	page := func(ctx context.Context, c *ec2.Client, account, region, token string) ([]string, string, error) {
		mu.Lock()
		asked = append(asked, region+" "+token)
		mu.Unlock()
		return describeInstances(ctx, c, account, region, token)
	}
	sink := func(ctx context.Context, r Result[string]) error {
		mu.Lock()
		defer mu.Unlock()
		got[r.Region] = r
		return nil
	}
	w, err := NewWorker(aws.AWSConfig("us-east-1"), ec2.NewFromConfig, page, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Pool().CloseIdleConnections()
	first := []string{"i-a", "i-b", "i-c", "i-d", "i-e", "i-f", "i-g", "i-h", "i-i", "i-j"} // as the dead attempt saw them
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger())
	env := s.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(w.ScanAccount, activity.RegisterOptions{Name: ScanAccountActivity})
	env.SetHeartbeatDetails(Progress[string]{Regions: map[string]*RegionProgress[string]{
		"us-east-1": {Done: true},
		"eu-west-1": {Token: "10", Items: first, Pages: 2},
	}})
	in := AccountScan{ScanID: "s", Account: acct, Regions: []string{"us-east-1", "eu-west-1", "ap-south-1"}}
	v, err := env.ExecuteActivity(ScanAccountActivity, in)
	if err != nil {
		t.Fatal(err)
	}
	var sum AccountSummary
	if err := v.Get(&sum); err != nil {
		t.Fatal(err)
	}
	slices.Sort(asked)
	if want := []string{"ap-south-1 ", "ap-south-1 10", "ap-south-1 5", "eu-west-1 10"}; !slices.Equal(asked, want) {
		t.Errorf("pages asked %q; want %q", asked, want)
	}
	if _, ok := got["us-east-1"]; ok {
		t.Error("us-east-1 was delivered again")
	}
	eu := got["eu-west-1"]
	if eu.Key != "s/"+acct+"/eu-west-1" || eu.Pages != 3 || len(eu.Items) != 12 || !slices.Equal(eu.Items[:10], first) {
		t.Errorf("eu-west-1 delivered as %+v; want key s/%s/eu-west-1, 3 pages, 12 items starting with the dead attempt's", eu, acct)
	}
	if ap := got["ap-south-1"]; ap.Pages != 3 || len(ap.Items) != 12 || ap.Err != nil {
		t.Errorf("ap-south-1 delivered as %+v", ap)
	}
	if want := []string{"ap-south-1", "eu-west-1", "us-east-1"}; !slices.Equal(sum.Delivered, want) || len(sum.Failed) != 0 || len(sum.Lost) != 0 {
		t.Errorf("summary %+v; want delivered %v", sum, want)
	}
}

// TestScanAccountFailures: a region that fails for good goes to the sink
// with its error at once; one that may pass fails the attempt, for
// Temporal to retry, but for the last attempt, which delivers it with
// its error.
func TestScanAccountFailures(t *testing.T) {
	const acct = "111111111111"
	aws := newFake(t, fanouttest.Config{
		Accounts: []string{acct}, Instances: 3,
		Faults: []fanouttest.Rule{
			{Region: "eu-west-1", Service: "ec2", Fault: fanouttest.Disabled},
			{Region: "ap-south-1", Service: "ec2", Fault: fanouttest.Denied},
		},
	})
	for name, tc := range map[string]struct {
		attempt     int32
		wantErr     bool
		wantFailed  []string
		wantSinkErr []string
	}{
		"first attempt": {attempt: 1, wantErr: true, wantSinkErr: []string{"eu-west-1"}},
		"last attempt":  {attempt: 3, wantFailed: []string{"ap-south-1", "eu-west-1"}, wantSinkErr: []string{"ap-south-1", "eu-west-1"}},
	} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var sinkErr []string
			sink := func(ctx context.Context, r Result[string]) error {
				mu.Lock()
				defer mu.Unlock()
				if r.Err != nil {
					sinkErr = append(sinkErr, r.Region)
				}
				return nil
			}
			w, err := NewWorker(aws.AWSConfig("us-east-1"), ec2.NewFromConfig, describeInstances, sink, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Pool().CloseIdleConnections()
			var s testsuite.WorkflowTestSuite
			s.SetLogger(quietLogger())
			s.SetLogger(quietLogger())
			env := s.NewTestActivityEnvironment()
			env.RegisterActivityWithOptions(func(ctx context.Context, in AccountScan) (AccountSummary, error) {
				return w.scanAttempt(ctx, in, tc.attempt, tc.attempt == 3, time.Second)
			}, activity.RegisterOptions{Name: ScanAccountActivity})
			in := AccountScan{ScanID: "s", Account: acct, Regions: []string{"us-east-1", "eu-west-1", "ap-south-1"}}
			v, err := env.ExecuteActivity(ScanAccountActivity, in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v; want an error: %v", err, tc.wantErr)
			}
			slices.Sort(sinkErr)
			if !slices.Equal(sinkErr, tc.wantSinkErr) {
				t.Errorf("the sink got errors for %v; want %v", sinkErr, tc.wantSinkErr)
			}
			if err != nil {
				return
			}
			var sum AccountSummary
			if err := v.Get(&sum); err != nil {
				t.Fatal(err)
			}
			var failed []string
			for r := range sum.Failed {
				failed = append(failed, r)
			}
			slices.Sort(failed)
			if !slices.Equal(failed, tc.wantFailed) || !slices.Equal(sum.Delivered, []string{"us-east-1"}) {
				t.Errorf("summary %+v; want failed %v, us-east-1 delivered", sum, tc.wantFailed)
			}
		})
	}
}

// TestSinkPanic: a sink that panics fails its region's attempt, with
// the panic in the error, and the process goes on; the region is not
// recorded delivered, so the next attempt delivers it again.
func TestSinkPanic(t *testing.T) {
	const acct = "111111111111"
	aws := newFake(t, fanouttest.Config{Accounts: []string{acct}, Instances: 1})
	sink := func(ctx context.Context, r Result[string]) error {
		if r.Region == "eu-west-1" {
			panic("boom")
		}
		return nil
	}
	w, err := NewWorker(aws.AWSConfig("us-east-1"), ec2.NewFromConfig, describeInstances, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Pool().CloseIdleConnections()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger())
	env := s.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(w.ScanAccount, activity.RegisterOptions{Name: ScanAccountActivity})
	_, err = env.ExecuteActivity(ScanAccountActivity, AccountScan{ScanID: "s", Account: acct, Regions: []string{"us-east-1", "eu-west-1"}})
	if err == nil || !strings.Contains(err.Error(), "s/"+acct+"/eu-west-1: fanout/temporal: panic: boom") {
		t.Errorf("err %v; want the sink's panic for eu-west-1", err)
	}
}

// TestRoleFailures: a role that STS denies fails the account's regions
// for good, on the first attempt; a throttled AssumeRole fails the
// attempt, for Temporal to try again.
func TestRoleFailures(t *testing.T) {
	const member, outsider = "111111111111", "222222222222"
	aws := newFake(t, fanouttest.Config{
		Accounts: []string{member}, Instances: 1,
		Faults: []fanouttest.Rule{{Account: member, Service: "sts", Operation: "AssumeRole", Fault: fanouttest.Throttled}},
	})
	for name, tc := range map[string]struct {
		account  string
		wantErr  bool
		wantSink int
	}{
		"denied":    {account: outsider, wantSink: 2}, // not in the organization: AccessDenied
		"throttled": {account: member, wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			delivered := 0
			sink := func(ctx context.Context, r Result[string]) error {
				mu.Lock()
				defer mu.Unlock()
				if r.Err != nil {
					delivered++
				}
				return nil
			}
			oneAttempt := func(o *WorkerOptions) {
				o.Accounts = append(o.Accounts, func(ao *fanout.AccountOptions) {
					ao.STSOptions = append(ao.STSOptions, func(so *sts.Options) { so.RetryMaxAttempts = 1 })
				})
			}
			w, err := NewWorker(aws.AWSConfig("us-east-1"), ec2.NewFromConfig, describeInstances, sink, []func(*WorkerOptions){oneAttempt})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Pool().CloseIdleConnections()
			var s testsuite.WorkflowTestSuite
			s.SetLogger(quietLogger())
			env := s.NewTestActivityEnvironment()
			env.RegisterActivityWithOptions(w.ScanAccount, activity.RegisterOptions{Name: ScanAccountActivity})
			_, err = env.ExecuteActivity(ScanAccountActivity, AccountScan{ScanID: "s", Account: tc.account, Regions: []string{"us-east-1", "eu-west-1"}})
			if (err != nil) != tc.wantErr || delivered != tc.wantSink {
				t.Errorf("err %v, %d regions delivered with an error; want an error: %v, %d delivered", err, delivered, tc.wantErr, tc.wantSink)
			}
		})
	}
}

// TestHeartbeatLimit: a page that would take the heartbeat above
// WorkerOptions.HeartbeatLimit is not kept, and its region goes to the
// sink at once, with the error and the pages before it, instead of the
// server failing the whole account.
func TestHeartbeatLimit(t *testing.T) {
	const acct = "111111111111"
	aws := newFake(t, fanouttest.Config{Accounts: []string{acct}, Instances: 12})
	var mu sync.Mutex
	var got []Result[string]
	sink := func(ctx context.Context, r Result[string]) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
		return nil
	}
	w, err := NewWorker(aws.AWSConfig("us-east-1"), ec2.NewFromConfig, describeInstances, sink,
		[]func(*WorkerOptions){func(o *WorkerOptions) { o.HeartbeatLimit = 300 }}) // a page of 5 IDs fits, two do not
	if err != nil {
		t.Fatal(err)
	}
	defer w.Pool().CloseIdleConnections()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger())
	env := s.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(w.ScanAccount, activity.RegisterOptions{Name: ScanAccountActivity})
	v, err := env.ExecuteActivity(ScanAccountActivity, AccountScan{ScanID: "s", Account: acct, Regions: []string{"eu-west-1"}})
	if err != nil {
		t.Fatal(err)
	}
	var sum AccountSummary
	if err := v.Get(&sum); err != nil {
		t.Fatal(err)
	}
	var big *heartbeatTooLarge
	if len(got) != 1 || !errors.As(got[0].Err, &big) || got[0].Pages != 1 || len(got[0].Items) != pageSize {
		t.Fatalf("the sink got %+v; want eu-west-1 once, with its first page and the heartbeat's error", got)
	}
	if !strings.Contains(sum.Failed["eu-west-1"], "HeartbeatLimit 300") {
		t.Errorf("summary %+v; want eu-west-1 failed with the heartbeat's error", sum)
	}
}
