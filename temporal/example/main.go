// Command example scans accounts x regions for EC2 instances as a
// durable Temporal workflow: a worker process (-role worker), a starter
// (-role start), or both in one process (-role all, the default).
//
// With no -temporal address it starts a Temporal server in process, and
// with -fake it scans fanouttest's simulated AWS (AssumeRole per
// account, latency, throttling), so that it runs offline:
//
//	go run ./example -fake -accounts 20
//
// Against a dev server (temporal server start-dev, with
// --dynamic-config-value matching.enableFairness=true) and real AWS
// (credentials of the organization's management account):
//
//	go run ./example -temporal localhost:7233 -role worker -regions us-east-1,eu-west-1
//	go run ./example -temporal localhost:7233 -role start -regions us-east-1,eu-west-1
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/common/dynamicconfig"
	stemporal "go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"

	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/temporal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

type flags struct {
	temporal, namespace, role, scanID string
	regions                           []string
	fake                              bool
	accounts, rate                    int
}

func parse(args []string) (flags, error) {
	var f flags
	var regions string
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.StringVar(&f.temporal, "temporal", "", "Temporal frontend host:port; empty starts a server in process")
	fs.StringVar(&f.namespace, "namespace", "default", "Temporal namespace (with -temporal)")
	fs.StringVar(&f.role, "role", "all", "worker, start, or all")
	fs.StringVar(&f.scanID, "scan", "scan-"+time.Now().UTC().Format("20060102T150405"), "the scan's ID: the workflow ID and the results' key prefix")
	fs.StringVar(&regions, "regions", "us-east-1,eu-west-1,ap-southeast-2", "regions to scan, comma-separated")
	fs.BoolVar(&f.fake, "fake", false, "scan fanouttest's simulated AWS instead of AWS")
	fs.IntVar(&f.accounts, "accounts", 20, "member accounts of the simulated organization (with -fake)")
	fs.IntVar(&f.rate, "rate", 10, "requests per account per second, at most")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	f.regions = strings.Split(regions, ",")
	switch {
	case f.role != "worker" && f.role != "start" && f.role != "all":
		return f, fmt.Errorf("-role %q: want worker, start or all", f.role)
	case f.temporal == "" && f.role != "all":
		return f, fmt.Errorf("-role %s needs -temporal: an in-process server lives only as long as its process", f.role)
	case f.fake && f.role != "all":
		return f, errors.New("-fake needs -role all: the simulated AWS lives in its process")
	}
	return f, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	f, err := parse(args)
	if err != nil {
		return err
	}
	c, namespace, closeTemporal, err := connect(f)
	if err != nil {
		return err
	}
	defer closeTemporal()
	cfg, closeAWS, err := awsConfig(ctx, f)
	if err != nil {
		return err
	}
	defer closeAWS()
	if f.role != "start" {
		stopWorkers, err := startWorkers(c, cfg, f, out)
		if err != nil {
			return err
		}
		defer stopWorkers()
	}
	if f.role == "worker" {
		<-ctx.Done()
		return nil
	}
	if err := temporal.ConfigureQueues(ctx, c, namespace, temporal.ScanOptions{}, temporal.QueueRates{AccountTasks: 1, Control: 1}); err != nil {
		return err
	}
	return startScan(ctx, c, f, out)
}

// connect dials -temporal, or starts a server in process with fairness
// on.
func connect(f flags) (client.Client, string, func(), error) {
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if f.temporal != "" {
		c, err := client.Dial(client.Options{HostPort: f.temporal, Namespace: f.namespace, Logger: logger})
		return c, f.namespace, func() { c.Close() }, err
	}
	dc := dynamicconfig.StaticClient{
		dynamicconfig.MatchingEnableFairness.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
	}
	ts := temporaltest.NewServer(temporaltest.WithBaseServerOptions(stemporal.WithDynamicConfigClient(dc)),
		temporaltest.WithBaseClientOptions(client.Options{Logger: logger}))
	return ts.GetDefaultClient(), ts.GetDefaultNamespace(), ts.Stop, nil
}

// awsConfig is the simulated organization's config (-fake) or the
// default one.
func awsConfig(ctx context.Context, f flags) (aws.Config, func(), error) {
	if !f.fake {
		cfg, err := config.LoadDefaultConfig(ctx)
		return cfg, func() {}, err
	}
	members := make([]string, f.accounts)
	for i := range members {
		members[i] = fmt.Sprintf("%012d", 200000000000+i)
	}
	srv, err := fanouttest.New(fanouttest.Config{
		Accounts: members, Instances: 7,
		Latency:  fanouttest.Latency{Fixed: 20 * time.Millisecond, Jitter: 20 * time.Millisecond},
		Throttle: fanouttest.EC2Buckets,
	})
	if err != nil {
		return aws.Config{}, nil, err
	}
	return srv.AWSConfig("us-east-1"), srv.Close, nil
}

// startWorkers runs a worker of the scan queue and one of the control
// queue; results go to out as JSON lines, each Key once.
func startWorkers(c client.Client, cfg aws.Config, f flags, out io.Writer) (func(), error) {
	sink := newJSONSink(out)
	w, err := temporal.NewWorker(cfg, ec2.NewFromConfig, listInstances, sink.write,
		[]func(*temporal.WorkerOptions){func(o *temporal.WorkerOptions) { o.AccountRate = f.rate }})
	if err != nil {
		return nil, err
	}
	scan := worker.New(c, temporal.DefaultScanQueue, temporal.TuneWorker(worker.Options{}))
	w.Register(scan)
	ctl := worker.New(c, temporal.DefaultControlQueue, worker.Options{})
	temporal.RegisterControl(ctl, temporal.OrganizationLister(cfg))
	for _, tw := range []worker.Worker{scan, ctl} {
		if err := tw.Start(); err != nil {
			return nil, err
		}
	}
	return func() {
		scan.Stop()
		ctl.Stop()
		w.Pool().CloseIdleConnections()
	}, nil
}

// startScan starts the scan of the organization and waits for it.
func startScan(ctx context.Context, c client.Client, f flags, out io.Writer) error {
	scan, err := temporal.NewScan(f.scanID, nil, f.regions)
	if err != nil {
		return err
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: scan.ID, TaskQueue: temporal.DefaultScanQueue},
		temporal.ScanWorkflowName, scan)
	if err != nil {
		return err
	}
	var sum temporal.ScanSummary
	if err := run.Get(ctx, &sum); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "scan %s: %d accounts, %d account-regions delivered, %d failed, %d runs\n",
		scan.ID, sum.Accounts, sum.Delivered, sum.Failed, sum.Runs)
	for _, fl := range sum.Failures {
		fmt.Fprintf(out, "  %s %s: %s\n", fl.Account, fl.Region, fl.Err)
	}
	return err
}

// listInstances is the PageFunc: one page of DescribeInstances, as IDs.
func listInstances(ctx context.Context, c *ec2.Client, account, region, token string) ([]string, string, error) {
	in := &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1000)}
	if token != "" {
		in.NextToken = aws.String(token)
	}
	out, err := c.DescribeInstances(ctx, in)
	if err != nil {
		return nil, "", err
	}
	var ids []string
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
		}
	}
	return ids, aws.ToString(out.NextToken), nil
}

// jsonSink writes each result once, by Key: a repeat (a worker lost
// after delivering, before its heartbeat) is dropped. A sink across
// processes would upsert by Key in its store instead.
type jsonSink struct {
	mu   sync.Mutex
	enc  *json.Encoder
	seen map[string]bool
}

func newJSONSink(out io.Writer) *jsonSink {
	return &jsonSink{enc: json.NewEncoder(out), seen: map[string]bool{}}
}

func (s *jsonSink) write(ctx context.Context, r temporal.Result[string]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[r.Key] {
		return nil
	}
	s.seen[r.Key] = true
	line := struct {
		Key       string
		Instances int
		Err       string `json:",omitempty"`
	}{Key: r.Key, Instances: len(r.Items)}
	if r.Err != nil {
		line.Err = r.Err.Error()
	}
	return s.enc.Encode(line)
}
