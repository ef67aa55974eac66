package fanout_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/internal/mototest"
)

func TestRegionsMoto(t *testing.T) {
	cfg := mototest.Fresh(t, "us-east-1")
	want := map[string]int{"eu-north-1": 12, "ap-south-1": 3, "sa-east-1": 7, "ca-central-1": 1}
	ctx := context.Background()
	pool := newPool(t, cfg, ec2.NewFromConfig, httpClientOf[ec2.Options](cfg))
	for region, n := range want {
		launch(t, pool.Get(region), n)
	}
	regions, err := discover.EnabledRegions(ctx, pool.Config())
	if err != nil {
		t.Fatal(err)
	}
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 8 })
	res, err := fanout.Regions(ctx, f, pool, regions, countInstances)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(regions) {
		t.Fatalf("%d results for %d regions", len(res), len(regions))
	}
	for i, r := range res {
		if r.Key != regions[i] || r.Value != want[r.Key] {
			t.Errorf("%s: %d instances; want %d", r.Key, r.Value, want[r.Key])
		}
	}
	if pool.Len() != len(regions) {
		t.Errorf("pool holds %d clients for %d regions", pool.Len(), len(regions))
	}
}

func TestRegionsBadInput(t *testing.T) {
	t.Parallel()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDBAD", "bad-secret", "")}
	pool := newPool(t, cfg, ec2.NewFromConfig)
	f := fanout.New[int]()
	op := func(context.Context, *ec2.Client, string) (int, error) { return 0, nil }
	for name, tc := range map[string]struct {
		regions []string
		want    string
	}{
		"empty":       {nil, "region list is empty"},
		"duplicate":   {[]string{"eu-west-1", "us-east-1", "eu-west-1"}, `region "eu-west-1" is listed twice`},
		"malformed":   {[]string{"eu-west-1", "EU_WEST_1"}, `"EU_WEST_1" is not an AWS region name`},
		"unknown":     {[]string{"xx-east-1"}, `"xx-east-1" is not an AWS region name`},
		"az, not rg":  {[]string{"us-east-1a"}, `"us-east-1a" is not an AWS region name`},
		"eusc, no de": {[]string{"eusc-fr-east-1"}, `"eusc-fr-east-1" is not an AWS region name`},
		"padded":      {[]string{" us-east-1"}, `" us-east-1" is not an AWS region name`},
	} {
		res, err := fanout.Regions(context.Background(), f, pool, tc.regions, op)
		if err == nil || !strings.Contains(err.Error(), tc.want) || res != nil {
			t.Errorf("%s: %v; want an error containing %q", name, err, tc.want)
		}
	}
	if _, err := fanout.Regions(context.Background(), f, nil, []string{"us-east-1"}, op); err == nil || !strings.Contains(err.Error(), "nil *ClientPool") {
		t.Errorf("nil pool: %v", err)
	}
	noCreds := newPool(t, aws.Config{Region: "us-east-1"}, ec2.NewFromConfig)
	if _, err := fanout.Regions(context.Background(), f, noCreds, []string{"us-east-1"}, op); err == nil || !strings.Contains(err.Error(), "no Credentials") {
		t.Errorf("config without credentials: %v", err)
	}
}

// TestRegionsEveryPartition: every partition the SDK knows has region
// names Regions accepts, and each result names its region.
func TestRegionsEveryPartition(t *testing.T) {
	t.Parallel()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDPART", "part-secret", "")}
	pool := newPool(t, cfg, ec2.NewFromConfig)
	regions := []string{"eusc-de-east-1", "us-gov-west-1", "cn-north-1", "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1", "us-iso-east-1", "me-west-1"}
	res, err := fanout.Regions(context.Background(), fanout.New[string](), pool, regions,
		func(_ context.Context, _ *ec2.Client, region string) (string, error) { return region, nil })
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Region != regions[i] || r.Key != regions[i] || r.Value != regions[i] || r.Account != "" {
			t.Errorf("result %d: %+v", i, r)
		}
	}
}

// TestClientConstructorPanic: a client constructor that panics for one
// region fails that region's items, every time, and the others run.
func TestClientConstructorPanic(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{})
	newFn := func(cfg aws.Config, optFns ...func(*sts.Options)) *sts.Client {
		if cfg.Region == "eu-west-1" {
			panic("no endpoint for " + cfg.Region)
		}
		return sts.NewFromConfig(cfg, optFns...)
	}
	pool := newPool(t, srv.AWSConfig("us-east-1"), newFn)
	for range 2 {
		res, _ := fanout.Regions(context.Background(), fanout.New[string](), pool, []string{"eu-west-1", "us-east-2"},
			func(ctx context.Context, c *sts.Client, _ string) (string, error) {
				out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
				if err != nil {
					return "", err
				}
				return aws.ToString(out.Account), nil
			})
		var pe *fanout.PanicError
		if !errors.As(res[0].Err, &pe) || !strings.Contains(res[0].Err.Error(), "no endpoint for eu-west-1") || res[1].Err != nil {
			t.Errorf("%v / %v; want eu-west-1's constructor panic as its error, and us-east-2 fine", res[0].Err, res[1].Err)
		}
	}
	if _, err := pool.Client("", "eu-west-1"); err == nil {
		t.Error("Client for the region whose constructor panicked: no error")
	}
}
