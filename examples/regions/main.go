// Command regions counts the EC2 instances in every enabled region at
// once: the inventory this library started from.
//
//	go run ./examples/regions                       # simulated AWS, in process: no account, no network
//	go run ./examples/regions -aws                  # your account, through the default credential chain
//	go run ./examples/regions -endpoint http://127.0.0.1:5000   # an emulator such as moto_server
//
// Flags: -concurrency, -regions (comma-separated globs, "!" to exclude),
// -json (one JSON object per region instead of the table), -compare (also
// runs the plain sequential loop and prints the speedup), -timeline
// FILE.svg (records the run and draws it as a waterfall: see package
// timeline), -sim-throttle RATE (the requests a second above which each
// simulated region throttles, so that retries and the adaptive limit come
// into play). Progress goes to stderr; the last line of stdout is always
//
//	regions=N instances=M failed=K elapsed=1.234s
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/timeline"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	aws         bool
	endpoint    string
	home        string
	concurrency int
	regions     string
	json        bool
	compare     bool
	simLatency  float64
	simThrottle float64
	timeline    string
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("regions", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.aws, "aws", false, "use your AWS account through the default credential chain (read-only calls)")
	fs.StringVar(&o.endpoint, "endpoint", "", "use an AWS emulator at this URL, such as moto_server")
	fs.StringVar(&o.home, "region", "us-east-1", "the region to list regions from (its partition is the one scanned)")
	fs.IntVar(&o.concurrency, "concurrency", 16, "regions described at once")
	fs.StringVar(&o.regions, "regions", "", `comma-separated region globs, "!" to exclude, e.g. "eu-*,us-*,!us-west-1"`)
	fs.BoolVar(&o.json, "json", false, "print one JSON object per region instead of the table")
	fs.BoolVar(&o.compare, "compare", false, "also run the plain sequential loop and print the speedup")
	fs.Float64Var(&o.simLatency, "sim-latency", 1, "scale the simulated regions' latency (simulation only)")
	fs.StringVar(&o.timeline, "timeline", "", "record the run and draw it as an SVG waterfall in this file")
	fs.Float64Var(&o.simThrottle, "sim-throttle", 0, "throttle each simulated region's EC2 reads above this many a second, after a burst of "+strconv.Itoa(simBurst)+" (0: never; simulation only)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.aws && o.endpoint != "":
		return o, errors.New("-aws and -endpoint exclude each other")
	case o.concurrency < 1:
		return o, fmt.Errorf("-concurrency is %d; want 1 or more", o.concurrency)
	case o.simLatency < 0:
		return o, fmt.Errorf("-sim-latency is %v; want 0 or more", o.simLatency)
	case !(o.simThrottle >= 0) || math.IsInf(o.simThrottle, 1):
		return o, fmt.Errorf("-sim-throttle is %v; want 0 (no throttling) or a number of requests a second", o.simThrottle)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "regions:", err)
		}
		return 2
	}
	cfg, done, err := awsConfig(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "regions:", err)
		return 1
	}
	defer done()

	var rec *timeline.Recorder
	var svg *os.File
	if o.timeline != "" {
		// Created now, so that a path that cannot be written fails before the run.
		if svg, err = os.Create(o.timeline); err != nil {
			fmt.Fprintln(stderr, "regions:", err)
			return 1
		}
		defer svg.Close()
		rec = timeline.New()
	}
	start := time.Now()
	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig, func(po *fanout.PoolOptions[ec2.Options]) {
		if rec != nil { // a nil *Recorder in the interface would be a provider, and panic
			po.TracerProvider, po.MeterProvider = rec, rec
		}
	})
	if err != nil {
		fmt.Fprintln(stderr, "regions:", err)
		return 1
	}
	defer pool.CloseIdleConnections()
	regions, err := discover.EnabledRegions(ctx, pool.Config(), globs(o.regions)...)
	if err != nil {
		fmt.Fprintln(stderr, "regions:", err)
		return 1
	}
	bar := newProgress(stderr, len(regions))
	f := fanout.New[int](func(fo *fanout.Options) {
		fo.Limit = int64(o.concurrency)
		fo.OnDone = bar.done
	}) // Regions reports to the pool's providers, the Recorder when -timeline is set
	results, err := fanout.Regions(ctx, f, pool, regions, countInstances)
	bar.finish()
	if results == nil {
		fmt.Fprintln(stderr, "regions:", err) // nothing ran
		return 1
	}
	elapsed := time.Since(start)
	if rec != nil {
		if err := writeTimeline(svg, rec); err != nil {
			fmt.Fprintln(stderr, "regions:", err)
			return 1
		}
		fmt.Fprintln(stderr, "timeline:", o.timeline) // stderr: stdout is the table, or JSON
	}

	if o.json {
		writeJSON(stdout, results)
	} else {
		writeTable(stdout, results)
	}
	if o.compare {
		seq := sequential(ctx, cfg, regions)
		fmt.Fprintf(stdout, "sequential=%.3fs fanout=%.3fs speedup=%.1fx\n", seq.Seconds(), elapsed.Seconds(), seq.Seconds()/elapsed.Seconds())
	}
	total := 0
	for _, v := range results.Values() {
		total += v
	}
	fmt.Fprintf(stdout, "regions=%d instances=%d failed=%d elapsed=%.3fs\n", len(results), total, len(results.Failed()), elapsed.Seconds())
	if len(results.Failed()) > 0 {
		return 1
	}
	return 0
}

// awsConfig returns the config to scan with, after printing on the first
// line what it talks to.
func awsConfig(ctx context.Context, o options, stdout io.Writer) (aws.Config, func(), error) {
	switch {
	case o.aws:
		fmt.Fprintln(stdout, "AWS: your account, through the default credential chain (read-only calls)")
		cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(o.home))
		return cfg, func() {}, err
	case o.endpoint != "":
		fmt.Fprintf(stdout, "emulator: %s\n", o.endpoint)
		return aws.Config{
			Region: o.home, BaseEndpoint: aws.String(o.endpoint),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "example-secret", ""),
		}, func() {}, nil
	}
	srv, err := simulate(o.simLatency, o.simThrottle)
	if err != nil {
		return aws.Config{}, nil, err
	}
	fmt.Fprintln(stdout, "simulated AWS: an in-process endpoint (fanouttest) with realistic per-region latency; no AWS account or network used (-aws for your account)")
	return srv.AWSConfig(o.home), srv.Close, nil
}

// simBurst is the burst of a simulated region's throttle bucket: small,
// so that -sim-throttle bites from the first pages on.
const simBurst = 2

// simulate starts a fanouttest endpoint whose regions answer with the
// latency of a client in us-east-1, and hold 0 to 39 instances each. With
// a rate above 0, each region's EC2 reads (each action its own bucket, as
// EC2 meters them) are throttled above rate a second after a burst of
// simBurst.
func simulate(scale, rate float64) (*fanouttest.Server, error) {
	cfg := fanouttest.Config{RegionInstances: map[string]int{}}
	if rate > 0 {
		cfg.Throttle.NonMutating = fanouttest.Bucket{Burst: simBurst, PerSecond: rate}
	}
	for _, r := range fanouttest.DefaultRegions {
		base := time.Duration(float64(latencyFromUSEast1(r)) * scale)
		h := fnv.New32a()
		h.Write([]byte(r))
		cfg.RegionInstances[r] = int(h.Sum32() % 40)
		if base > 0 {
			cfg.Faults = append(cfg.Faults, fanouttest.Rule{Region: r, Latency: fanouttest.Latency{Fixed: base, Jitter: base / 5}})
		}
	}
	return fanouttest.New(cfg)
}

// latencyFromUSEast1 is a round trip from us-east-1 to region, roughly.
func latencyFromUSEast1(region string) time.Duration {
	for _, p := range []struct {
		prefix string
		ms     int
	}{
		{"us-east", 10}, {"us-gov-east", 15}, {"ca-", 25}, {"us-", 70}, {"mx-", 50}, {"sa-", 120}, {"eu-", 85},
		{"il-", 140}, {"me-", 180}, {"af-", 230}, {"ap-south", 200}, {"ap-northeast", 160}, {"ap-east", 210},
		{"ap-southeast", 220}, {"cn-", 230},
	} {
		if strings.HasPrefix(region, p.prefix) {
			return time.Duration(p.ms) * time.Millisecond
		}
	}
	return 100 * time.Millisecond
}

// countInstances describes one region's instances, 10 a page.
func countInstances(ctx context.Context, c *ec2.Client, _ string) (int, error) {
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(10)},
		func(o *ec2.DescribeInstancesPaginatorOptions) { o.StopOnDuplicateToken = true }) // a looping endpoint ends, not spins
	rs, err := fanout.Collect(ctx, p, p.NextPage, func(o *ec2.DescribeInstancesOutput) []ec2types.Reservation { return o.Reservations })
	n := 0
	for _, r := range rs {
		n += len(r.Instances)
	}
	return n, err
}

// sequential is the plain loop: one client per region, one region after
// another.
func sequential(ctx context.Context, cfg aws.Config, regions []string) time.Duration {
	start := time.Now()
	for _, region := range regions {
		c := cfg.Copy()
		c.Region = region
		_, _ = countInstances(ctx, ec2.NewFromConfig(c), region)
	}
	return time.Since(start)
}

// writeTimeline draws what rec recorded in f, and closes it.
func writeTimeline(f *os.File, rec *timeline.Recorder) error {
	if err := rec.WriteSVG(f); err != nil {
		return err
	}
	return f.Close()
}

func globs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func writeTable(w io.Writer, results fanout.RegionResults[int]) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REGION\tINSTANCES\tTIME\tERROR")
	for _, r := range results {
		msg := ""
		if r.Err != nil {
			msg = r.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%d\t%.3fs\t%s\n", r.Region, r.Value, r.Elapsed.Seconds(), msg)
	}
	tw.Flush()
}

func writeJSON(w io.Writer, results fanout.RegionResults[int]) {
	enc := json.NewEncoder(w)
	for _, r := range results {
		line := struct {
			Region    string  `json:"region"`
			Instances int     `json:"instances"`
			Seconds   float64 `json:"seconds"`
			Error     string  `json:"error,omitempty"`
		}{Region: r.Region, Instances: r.Value, Seconds: r.Elapsed.Seconds()}
		if r.Err != nil {
			line.Error = r.Err.Error()
		}
		_ = enc.Encode(line)
	}
}
