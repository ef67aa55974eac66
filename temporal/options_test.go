package temporal

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

func TestNewScanRefuses(t *testing.T) {
	t.Parallel()
	regions := []string{"us-east-1"}
	for name, tc := range map[string]struct {
		accounts, regions []string
		opt               func(*ScanOptions)
		want              string
	}{
		"no regions":         {want: "no regions"},
		"bad region":         {regions: []string{"us-east-1", "mars-1"}, want: `"mars-1" is not an AWS region`},
		"twice":              {regions: []string{"us-east-1", "us-east-1"}, want: "region us-east-1 is listed twice"},
		"bad account":        {accounts: []string{"12"}, regions: regions, want: `"12" is not an AWS account`},
		"in flight":          {regions: regions, opt: func(o *ScanOptions) { o.AccountsInFlight = -1 }, want: "AccountsInFlight is -1"},
		"heartbeat":          {regions: regions, opt: func(o *ScanOptions) { o.HeartbeatTimeout = time.Millisecond }, want: "HeartbeatTimeout is 1ms"},
		"attempt below beat": {regions: regions, opt: func(o *ScanOptions) { o.AttemptTimeout = time.Second }, want: "AttemptTimeout 1s is not above HeartbeatTimeout 10s"},
		"retry interval":     {regions: regions, opt: func(o *ScanOptions) { o.RetryInterval = time.Millisecond }, want: "RetryInterval is 1ms"},
	} {
		t.Run(name, func(t *testing.T) {
			var opts []func(*ScanOptions)
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			_, err := NewScan("s", tc.accounts, tc.regions, opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewScan: %v; want an error with %q", err, tc.want)
			}
		})
	}
	s, err := NewScan("s", nil, regions)
	if err != nil || s.Options.AccountsInFlight != DefaultAccountsInFlight || s.Options.ScanQueue != DefaultScanQueue {
		t.Errorf("NewScan with defaults: %+v, %v", s.Options, err)
	}
}

func TestNewWorkerRefuses(t *testing.T) {
	t.Parallel()
	sink := func(context.Context, Result[string]) error { return nil }
	for name, tc := range map[string]struct {
		cfg  aws.Config
		page PageFunc[*ec2.Client, string]
		opt  func(*WorkerOptions)
		want string
	}{
		"nil page":     {want: "nil client constructor, PageFunc or Sink"},
		"rate":         {page: describeInstances, opt: func(o *WorkerOptions) { o.AccountRate = 0 }, want: "AccountRate is 0"},
		"sts rate":     {page: describeInstances, opt: func(o *WorkerOptions) { o.STSRate = -1 }, want: "STSRate is -1"},
		"region limit": {page: describeInstances, opt: func(o *WorkerOptions) { o.RegionLimit = 0 }, want: "RegionLimit is 0"},
		"above limit":  {page: describeInstances, opt: func(o *WorkerOptions) { o.Limit, o.RegionLimit = 4, 5 }, want: "RegionLimit is 5; want 1 to Limit (4)"},
		"heartbeat":    {page: describeInstances, opt: func(o *WorkerOptions) { o.HeartbeatLimit = 0 }, want: "HeartbeatLimit is 0"},
		"http client":  {page: describeInstances, cfg: aws.Config{HTTPClient: &fakeHTTP{}}, want: "the config has an HTTP client"},
	} {
		t.Run(name, func(t *testing.T) {
			var opts []func(*WorkerOptions)
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			_, err := NewWorker(tc.cfg, ec2.NewFromConfig, tc.page, sink, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewWorker: %v; want an error with %q", err, tc.want)
			}
		})
	}
}

type fakeHTTP struct{ aws.HTTPClient }
