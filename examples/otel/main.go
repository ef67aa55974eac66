// Command otel runs an EC2 inventory across accounts x regions with
// OpenTelemetry's SDK wired into the fan-out, and prints what a tracing
// and a metrics backend would receive: the trace of one item, from the
// fan-out's call down to the SDK's attempts, each span with its
// cloud.region and cloud.account.id; the items counted by outcome; and the
// SDK's own client.call.duration, told apart by region.
//
//	cd examples/otel
//	go run .        # simulated AWS, in process (fanouttest): no account, no network
//	go run . -aws   # your account, through the default credential chain (read-only calls)
//
// The simulation has three accounts and four regions, each region with its
// own latency; us-west-2 has a small throttle bucket, so that its items
// are throttled and retried, and one account has not enabled
// ap-southeast-2, whose item is skipped. -aws takes -accounts (default:
// the caller's own; others through -role) and -regions (default: every
// enabled region).
//
// The library speaks smithy-go's telemetry interfaces, as the AWS SDK
// does; smithyoteltracing.Adapt and smithyotelmetrics.Adapt turn
// OpenTelemetry's providers into those. Spans go to an in-memory exporter
// and measurements to a manual reader here, for printing; a service would
// use OTLP exporters instead. The last line of stdout is
//
//	items=N ok=N failed=N spans=N
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/metrics/smithyotelmetrics"
	"github.com/aws/smithy-go/tracing/smithyoteltracing"
	otelmetric "go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/fanouttest"
)

// scope is the instrumentation scope of the command's own span.
const scope = "github.com/awsfanout/fanout/examples/otel"

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	aws               bool
	home, role        string
	accounts, regions string
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("otel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.aws, "aws", false, "use your AWS account through the default credential chain (read-only calls)")
	fs.StringVar(&o.home, "region", "us-east-1", "-aws: the region for STS and for listing the regions")
	fs.StringVar(&o.accounts, "accounts", "", "-aws: comma-separated account IDs (default: the caller's own)")
	fs.StringVar(&o.role, "role", fanout.DefaultRoleName, "-aws: the role to assume in the other accounts")
	fs.StringVar(&o.regions, "regions", "", `-aws: comma-separated region globs, "!" to exclude (default: every enabled region)`)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if !o.aws && (o.accounts != "" || o.regions != "") {
		return o, errors.New("-accounts and -regions are for -aws; the simulation has its own")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "otel:", err)
		}
		return 2
	}
	tel := newTelemetry()
	defer tel.shutdown(context.WithoutCancel(ctx))
	t, done, err := target(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "otel:", err)
		return 1
	}
	defer done()
	res, err := inventory(ctx, t, tel.tp, tel.mp)
	if res == nil {
		fmt.Fprintln(stderr, "otel:", err) // nothing ran
		return 1
	}
	if err := tel.report(ctx, stdout, res); err != nil {
		fmt.Fprintln(stderr, "otel:", err)
		return 1
	}
	if len(res.Failed()) > 0 {
		return 1
	}
	return 0
}

// telemetry is OpenTelemetry's SDK, keeping what it receives in memory.
type telemetry struct {
	spans  *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

// secondsBuckets fits the histograms in seconds, the SDK's and the
// library's: OpenTelemetry's default boundaries (0, 5, 10, ... 10000) are
// for milliseconds, and would put every call in the first bucket.
var secondsBuckets = sdkmetric.NewView(
	sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
	sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{
		Boundaries: []float64{.005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10},
	}},
)

func newTelemetry() *telemetry {
	t := &telemetry{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader()}
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(t.spans))
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(t.reader), sdkmetric.WithView(secondsBuckets))
	return t
}

func (t *telemetry) shutdown(ctx context.Context) {
	_ = t.tp.Shutdown(ctx)
	_ = t.mp.Shutdown(ctx)
}

// targets are what to scan, and with which config.
type targets struct {
	cfg               aws.Config
	accounts, regions []string
	role              string
	page              int32 // instances a DescribeInstances page
}

// The simulation's accounts and regions.
var (
	simAccounts = []string{fanouttest.DefaultAccount, "222222222222", "333333333333"}
	simRegions  = []string{"us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"}
)

// target returns what to scan, after printing on the first line what it
// talks to.
func target(ctx context.Context, o options, stdout io.Writer) (targets, func(), error) {
	if !o.aws {
		srv, err := fanouttest.New(simulation())
		if err != nil {
			return targets{}, nil, err
		}
		fmt.Fprintln(stdout, "simulated AWS: an in-process endpoint (fanouttest); no AWS account or network used (-aws for yours)")
		return targets{cfg: srv.AWSConfig("us-east-1"), accounts: simAccounts, regions: simRegions, page: 5}, srv.Close, nil
	}
	fmt.Fprintln(stdout, "AWS: your account, through the default credential chain (read-only calls)")
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(o.home))
	if err != nil {
		return targets{}, nil, err
	}
	t := targets{cfg: cfg, accounts: list(o.accounts), role: o.role, page: 1000}
	if t.accounts == nil {
		id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return targets{}, nil, err
		}
		t.accounts = []string{aws.ToString(id.Account)}
	}
	t.regions, err = discover.EnabledRegions(ctx, cfg, list(o.regions)...)
	return t, func() {}, err
}

// simulation is the simulated organization: every region with its own
// latency; us-west-2 with a bucket of one request, refilled in 200ms,
// so that an item's next page, one round trip of 70ms later, is
// throttled, and retried (each throttled answer also takes 70ms: the
// third attempt of a page always gets through); and ap-southeast-2 not
// enabled in one account.
func simulation() fanouttest.Config {
	latency := map[string]time.Duration{"us-east-1": 10, "us-west-2": 70, "eu-west-1": 85, "ap-southeast-2": 220}
	cfg := fanouttest.Config{
		Accounts:  simAccounts[1:],
		Instances: 12,
		RegionThrottle: map[string]fanouttest.Buckets{
			"us-west-2": {NonMutating: fanouttest.Bucket{Burst: 1, PerSecond: 5}},
		},
		AccountRegions: map[string][]string{"333333333333": simRegions[:3]},
	}
	for _, r := range simRegions {
		ms := latency[r] * time.Millisecond
		cfg.Faults = append(cfg.Faults, fanouttest.Rule{Region: r, Latency: fanouttest.Latency{Fixed: ms, Jitter: ms / 5}})
	}
	return cfg
}

// inventory counts the instances of every account and region, with
// OpenTelemetry's providers on the pool's clients, on the STS client that
// assumes the roles, and on the fan-out, all under one span of its own.
func inventory(ctx context.Context, t targets, tp oteltrace.TracerProvider, mp otelmetric.MeterProvider) (fanout.RegionResults[int], error) {
	// The command's own span: AccountRegions' (fanout.account_regions)
	// and everything under it join this trace.
	ctx, span := tp.Tracer(scope).Start(ctx, "inventory")
	defer span.End()
	stp, smp := smithyoteltracing.Adapt(tp), smithyotelmetrics.Adapt(mp)
	accounts, err := fanout.NewAccounts(t.cfg, func(o *fanout.AccountOptions) {
		if t.role != "" {
			o.RoleName = t.role
		}
		o.STSOptions = append(o.STSOptions, func(so *sts.Options) { so.TracerProvider, so.MeterProvider = stp, smp })
	})
	if err != nil {
		return nil, err
	}
	pool, err := fanout.NewClientPool(t.cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) {
		o.Accounts = accounts
		// Set on every EC2 client the pool builds, labelled with the
		// client's region and account.
		o.TracerProvider, o.MeterProvider = stp, smp
		o.AccountAttribute = true // a few accounts: a series each is affordable
	})
	if err != nil {
		return nil, err
	}
	defer pool.CloseIdleConnections()
	// AccountRegions reports to the pool's providers; a Fanout's own
	// Options.TracerProvider and MeterProvider serve calls outside the AWS
	// layer (Run, Stream), and must be the same providers.
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 16 })
	return fanout.AccountRegions(ctx, f, pool, t.accounts, t.regions, countInstances(t.page),
		func(o *fanout.RegionOptions) { o.SkipDisabled = true })
}

// countInstances describes one account and region's instances, page a
// page.
func countInstances(page int32) func(context.Context, *ec2.Client, string, string) (int, error) {
	return func(ctx context.Context, c *ec2.Client, _, _ string) (int, error) {
		p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(page)})
		rs, err := fanout.Collect(ctx, p, p.NextPage, func(o *ec2.DescribeInstancesOutput) []ec2types.Reservation { return o.Reservations })
		n := 0
		for _, r := range rs {
			n += len(r.Instances)
		}
		return n, err
	}
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
