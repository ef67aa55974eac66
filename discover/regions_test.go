package discover_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/smithy-go"
	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/internal/mototest"
)

func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true") // never ask a real IMDS for credentials
	mototest.Main(m)
}

func TestEnabledRegionsMoto(t *testing.T) {
	cfg := mototest.Fresh(t, "us-east-1")
	ctx := context.Background()
	all, err := discover.EnabledRegions(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"us-east-1", "eu-west-1", "ap-southeast-2", "sa-east-1"} {
		if !slices.Contains(all, want) {
			t.Errorf("%s missing from %v", want, all)
		}
	}
	for _, not := range []string{"ap-east-1", "me-south-1", "us-gov-west-1", "cn-north-1"} {
		if slices.Contains(all, not) {
			t.Errorf("%s (not opted in, or another partition) in %v", not, all)
		}
	}
	if !slices.IsSorted(all) {
		t.Errorf("not sorted: %v", all)
	}
	for name, tc := range map[string]struct {
		patterns []string
		want     []string
	}{
		"eu only":      {[]string{"eu-*", "!eu-west-*"}, []string{"eu-central-1", "eu-north-1", "eu-south-1"}},
		"drop only":    {[]string{"!*-*-1", "!*-*-3"}, []string{"ap-northeast-2", "ap-southeast-2", "eu-west-2", "us-east-2", "us-west-2"}},
		"two patterns": {[]string{"us-east-?", "ca-*"}, []string{"ca-central-1", "us-east-1", "us-east-2"}},
		"exact":        {[]string{"us-west-2"}, []string{"us-west-2"}},
	} {
		got, err := discover.EnabledRegions(ctx, cfg, tc.patterns...)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", name, got, err, tc.want)
		}
	}
	for _, bad := range [][]string{{"[eu"}, {"zz-*"}, {"!"}} {
		if got, err := discover.EnabledRegions(ctx, cfg, bad...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("patterns %q: %v, %v; want an error naming them", bad, got, err)
		}
	}
	gov := cfg
	gov.Region = "us-gov-west-1"
	govRegions, err := discover.EnabledRegions(ctx, gov)
	if err != nil || !slices.Equal(govRegions, []string{"us-gov-east-1", "us-gov-west-1"}) {
		t.Errorf("GovCloud partition: %v, %v", govRegions, err)
	}
}

// TestRegionsFallBackToListRegions: where an SCP denies ec2
// DescribeRegions, account ListRegions lists the account's regions, and
// the list says so; where both are denied, the error names both and says
// how to do without.
func TestRegionsFallBackToListRegions(t *testing.T) {
	t.Parallel()
	denyEC2 := fanouttest.Rule{Service: "ec2", Operation: "DescribeRegions", Fault: fanouttest.Denied} // UnauthorizedOperation
	enabled := []string{"af-south-1", "eu-west-1", "us-east-1"}                                        // af-south-1 opted in
	for name, tc := range map[string]struct {
		rules []fanouttest.Rule
		from  string
		err   string
	}{
		"DescribeRegions":        {nil, discover.FromDescribeRegions, ""},
		"DescribeRegions denied": {[]fanouttest.Rule{denyEC2}, discover.FromListRegions, ""},
		"both denied": {[]fanouttest.Rule{denyEC2, {Service: "account", Fault: fanouttest.Denied}}, "",
			"ec2:DescribeRegions and account:ListRegions were both denied"},
	} {
		srv, err := fanouttest.New(fanouttest.Config{Faults: tc.rules, AccountRegions: map[string][]string{fanouttest.DefaultAccount: enabled}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		l, err := discover.ListRegions(context.Background(), srv.AWSConfig("eu-west-1"))
		if tc.err != "" {
			var apiErr smithy.APIError
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "pass the regions explicitly") || !errors.As(err, &apiErr) {
				t.Errorf("%s: %v; want one that names both calls and says how to pass regions instead", name, err)
			}
			continue
		}
		if err != nil || l.From != tc.from || !slices.Equal(l.Regions, enabled) || (l.Denied != nil) != (tc.from == discover.FromListRegions) {
			t.Errorf("%s: %+v, %v; want %v from %s", name, l, err, enabled, tc.from)
		}
	}
}

func TestEnabledRegionsBadInput(t *testing.T) {
	t.Parallel()
	cfg := aws.Config{Credentials: credentials.NewStaticCredentialsProvider("AKIDBAD", "bad-secret", "")}
	if _, err := discover.EnabledRegions(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), `Region "" is not an AWS region name`) {
		t.Errorf("config without a region: %v", err)
	}
	cfg.Region = "us-east-1"
	cfg.BaseEndpoint = aws.String("http://127.0.0.1:1") // never reached: the pattern fails first
	if _, err := discover.EnabledRegions(context.Background(), cfg, "eu-*", "[x"); err == nil || !strings.Contains(err.Error(), `"[x"`) {
		t.Errorf("bad glob: %v", err)
	}
}

// TestDiscoveryHasADefaultTimeout: with a ctx that has no deadline, a
// stalled endpoint fails the call after DefaultTimeout, with an error that
// says so, instead of hanging it. Not parallel: it shortens the timeout
// for the package.
func TestDiscoveryHasADefaultTimeout(t *testing.T) {
	defer discover.SetTimeout(200 * time.Millisecond)()
	srv, err := fanouttest.New(fanouttest.Config{Faults: []fanouttest.Rule{{Region: "us-east-1", Fault: fanouttest.Hang}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cfg := srv.AWSConfig("us-east-1")
	for prefix, call := range map[string]func() error{
		"discover: ListRegions: ec2:DescribeRegions: ": func() error {
			_, err := discover.EnabledRegions(context.Background(), cfg)
			return err
		},
		"discover: organizations ListAccounts: ": func() error {
			_, err := discover.OrganizationAccounts(context.Background(), organizations.NewFromConfig(cfg))
			return err
		},
	} {
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), prefix+"no answer within 200ms (DefaultTimeout") {
				t.Errorf("%v; want the default timeout, named after %q", err, prefix)
			}
		case <-time.After(20 * time.Second): // a guard, far above the 200ms it tests
			t.Fatalf("%sstill waiting on a stalled endpoint after 20s", prefix)
		}
	}
}
