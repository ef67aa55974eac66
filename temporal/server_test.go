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
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/awsfanout/fanout/fanouttest"
)

// TestConfigureQueues: the server keeps the per-account rate on the scan
// queue and the queue rate on the control queue.
func TestConfigureQueues(t *testing.T) {
	ts := newTemporal(t)
	c := ts.GetDefaultClient()
	ctx := context.Background()
	if err := ConfigureQueues(ctx, c, ts.GetDefaultNamespace(), ScanOptions{}, QueueRates{AccountTasks: 3, Control: 0.5}); err != nil {
		t.Fatal(err)
	}
	for queue, want := range map[string]func(*taskqueuepb.TaskQueueConfig) float32{
		DefaultScanQueue: func(c *taskqueuepb.TaskQueueConfig) float32 {
			return c.GetFairnessKeysRateLimitDefault().GetRateLimit().GetRequestsPerSecond()
		},
		DefaultControlQueue: func(c *taskqueuepb.TaskQueueConfig) float32 {
			return c.GetQueueRateLimit().GetRateLimit().GetRequestsPerSecond()
		},
	} {
		resp, err := c.WorkflowService().DescribeTaskQueue(ctx, &workflowservice.DescribeTaskQueueRequest{
			Namespace: ts.GetDefaultNamespace(), TaskQueue: &taskqueuepb.TaskQueue{Name: queue},
			TaskQueueType: enumspb.TASK_QUEUE_TYPE_ACTIVITY, ReportConfig: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		got := want(resp.GetConfig())
		if wantRate := map[string]float32{DefaultScanQueue: 3, DefaultControlQueue: 0.5}[queue]; got != wantRate {
			t.Errorf("%s: rate %v; want %v (config %v)", queue, got, wantRate, resp.GetConfig())
		}
	}
	if err := ConfigureQueues(ctx, c, "ns", ScanOptions{}, QueueRates{AccountTasks: -1}); err == nil {
		t.Error("a negative rate was accepted")
	}
}

// TestFairnessKeyRate measures what the server's per-key rate does: 20
// activities with one fairness key and 20 with another, on a queue whose
// per-key rate is 4 per second. With fairness on, each key's start over
// seconds, while the two keys share the time; with it off, the server
// keeps the rate and ignores it: they all start at once.
func TestFairnessKeyRate(t *testing.T) {
	for name, fairness := range map[string]bool{"fairness on": true, "fairness off": false} {
		t.Run(name, func(t *testing.T) {
			spans, perSecond := keyRateSpans(t, fairness)
			// The server's limiter lets a key start at most its rate per
			// second after a burst of a second's worth, in each of the
			// queue's 4 partitions: at most 2*rate+4 in any second.
			least := time.Duration(float64(keyRateN-2*keyRate) / keyRate * float64(time.Second))
			switch {
			case fairness && (spans["a"] < least || spans["b"] < least):
				t.Errorf("starts spread over %v and %v; at %d/s per key, %d tasks take %v at least", spans["a"], spans["b"], keyRate, keyRateN, least)
			case !fairness && max(perSecond["a"], perSecond["b"]) <= 2*keyRate+4:
				t.Errorf("without fairness, at most %d starts of a key in a second; the rate was applied after all", max(perSecond["a"], perSecond["b"]))
			}
		})
	}
}

const (
	keyRate  = 4
	keyRateN = 20
)

// keyRateSpans runs keyRateN activities of each of two keys and returns
// how long each key's starts took, first to last, and the most starts of
// each key in any second.
func keyRateSpans(t *testing.T, fairness bool) (map[string]time.Duration, map[string]int) {
	const (
		queue = "fairness-test"
		rate  = keyRate
		n     = keyRateN
	)
	ts := newTemporalFairness(t, fairness)
	c := ts.GetDefaultClient()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.WorkflowService().UpdateTaskQueueConfig(ctx, &workflowservice.UpdateTaskQueueConfigRequest{
		Namespace: ts.GetDefaultNamespace(), TaskQueue: queue, TaskQueueType: enumspb.TASK_QUEUE_TYPE_ACTIVITY, Identity: "test",
		UpdateFairnessKeyRateLimitDefault: rateUpdate(rate, "test"),
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var starts []call
	note := func(ctx context.Context, key string) error {
		mu.Lock()
		starts = append(starts, call{at: time.Now(), account: key})
		mu.Unlock()
		return nil
	}
	wf := func(ctx workflow.Context) error {
		var fs []workflow.Future
		for i := range 2 * n {
			key := []string{"a", "b"}[i%2]
			actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				TaskQueue: queue, StartToCloseTimeout: time.Minute, Priority: temporal.Priority{FairnessKey: key},
			})
			fs = append(fs, workflow.ExecuteActivity(actx, "note", key))
		}
		for _, f := range fs {
			if err := f.Get(ctx, nil); err != nil {
				return err
			}
		}
		return nil
	}
	w := worker.New(c, queue, worker.Options{WorkflowPanicPolicy: worker.FailWorkflow})
	w.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: "fairness"})
	w.RegisterActivityWithOptions(note, activity.RegisterOptions{Name: "note"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, "fairness")
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	spans := map[string]time.Duration{}
	for _, key := range []string{"a", "b"} {
		var ts []time.Time
		for _, s := range starts {
			if s.account == key {
				ts = append(ts, s.at)
			}
		}
		spans[key] = slices.MaxFunc(ts, time.Time.Compare).Sub(slices.MinFunc(ts, time.Time.Compare))
	}
	perWindow := maxPerWindow(starts, time.Second)
	t.Logf("per-key rate %d/s, %d tasks per key: starts spread over %v (a) and %v (b); most starts of one key in a second: a %d, b %d",
		rate, n, spans["a"].Round(time.Millisecond), spans["b"].Round(time.Millisecond), perWindow["a"], perWindow["b"])
	return spans, perWindow
}

// TestScanDiscovers: with no accounts, the scan lists the organization
// on the control queue (its management account first) and scans them all.
func TestScanDiscovers(t *testing.T) {
	members := accountIDs(4)
	aws := newFake(t, fanouttest.Config{Accounts: members, Instances: 2})
	ts := newTemporal(t)
	log := newSinkLog()
	startProc(t, ts, "w", aws.AWSConfig("us-east-1"), log, 20, 10)
	ctl := worker.New(ts.GetDefaultClient(), DefaultControlQueue, worker.Options{})
	RegisterControl(ctl, OrganizationLister(aws.AWSConfig("us-east-1")))
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	defer ctl.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	scan, err := NewScan("", nil, []string{"us-east-1", "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := ts.GetDefaultClient().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "org", TaskQueue: DefaultScanQueue}, ScanWorkflowName, scan)
	if err != nil {
		t.Fatal(err)
	}
	var sum ScanSummary
	if err := run.Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	accounts := append([]string{fanouttest.DefaultAccount}, members...)
	if sum.Accounts != len(accounts) || sum.Delivered != 2*len(accounts) || sum.Failed != 0 {
		t.Errorf("summary %+v; want %d accounts, %d delivered", sum, len(accounts), 2*len(accounts))
	}
	for _, acct := range accounts {
		for _, region := range []string{"us-east-1", "eu-west-1"} {
			if got := log.got[Key("org", acct, region)]; len(got) != 1 || len(got[0].Items) != 2 {
				t.Errorf("%s/%s delivered %d times: %+v", acct, region, len(got), got)
			}
		}
	}
	_ = ec2.NewFromConfig
}

// TestSinkRefusesLastAttempt: a sink that refuses eu-west-1 on every
// attempt. The summary counts us-east-1, which the sink took on the
// first attempt, as delivered, and lists eu-west-1 as lost with the
// sink's error; the sink is never handed its own error as the region's.
func TestSinkRefusesLastAttempt(t *testing.T) {
	const acct = "111111111111"
	aws := newFake(t, fanouttest.Config{Accounts: []string{acct}, Instances: 1})
	ts := newTemporal(t)
	log := newSinkLog()
	sink := func(ctx context.Context, r Result[string]) error {
		log.deliver(r)
		if r.Region == "eu-west-1" {
			return errors.New("db down")
		}
		return nil
	}
	w, err := NewWorker(aws.AWSConfig("us-east-1"), ec2.NewFromConfig, describeInstances, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Pool().CloseIdleConnections()
	c := ts.GetDefaultClient()
	tw := worker.New(c, DefaultScanQueue, TuneWorker(worker.Options{WorkflowPanicPolicy: worker.FailWorkflow}))
	w.Register(tw)
	if err := tw.Start(); err != nil {
		t.Fatal(err)
	}
	defer tw.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	scan, err := NewScan("refused", []string{acct}, []string{"us-east-1", "eu-west-1"}, func(o *ScanOptions) {
		o.MaxAttempts, o.RetryInterval = 2, time.Second
	})
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "refused", TaskQueue: DefaultScanQueue}, ScanWorkflowName, scan)
	if err != nil {
		t.Fatal(err)
	}
	var sum ScanSummary
	if err := run.Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Accounts != 1 || sum.Delivered != 1 || sum.Failed != 1 || len(sum.Failures) != 1 {
		t.Fatalf("summary %+v; want us-east-1 delivered, eu-west-1 failed", sum)
	}
	if f := sum.Failures[0]; f.Region != "eu-west-1" || !f.Lost || !strings.Contains(f.Err, "db down") {
		t.Errorf("failure %+v; want eu-west-1 lost, with the sink's error", f)
	}
	if got := log.got[Key("refused", acct, "us-east-1")]; len(got) != 1 || got[0].Err != nil {
		t.Errorf("us-east-1 delivered %d times: %+v; want once, without an error", len(got), got)
	}
	eu := log.got[Key("refused", acct, "eu-west-1")]
	if len(eu) != 2 {
		t.Errorf("eu-west-1 delivered %d times; want once per attempt, 2", len(eu))
	}
	for _, r := range eu {
		if r.Err != nil || len(r.Items) != 1 {
			t.Errorf("eu-west-1 delivered with %d items, err %v; want its item, no error", len(r.Items), r.Err)
		}
	}
}
