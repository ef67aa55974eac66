package fanout_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// TestGlobalRegionPerPartition: whatever region the pool's config is in,
// an IAM client from GlobalRegion reaches the partition's global IAM
// endpoint and signs for the region that endpoint requires, as the SDK's
// own endpoint rules resolve it.
func TestGlobalRegionPerPartition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		config, global, host, signing string
	}{
		{"eu-west-3", "us-east-1", "iam.amazonaws.com", "us-east-1"},
		{"cn-north-1", "cn-northwest-1", "iam.cn-north-1.amazonaws.com.cn", "cn-north-1"},
		{"us-gov-east-1", "us-gov-west-1", "iam.us-gov.amazonaws.com", "us-gov-west-1"},
		{"us-iso-west-1", "us-iso-east-1", "iam.us-iso-east-1.c2s.ic.gov", "us-iso-east-1"},
		{"us-isob-east-1", "us-isob-east-1", "iam.us-isob-east-1.sc2s.sgov.gov", "us-isob-east-1"},
	} {
		pool := newPool(t, aws.Config{Region: tc.config, Credentials: aws.AnonymousCredentials{}}, iam.NewFromConfig)
		region, err := pool.GlobalRegion()
		if err != nil || region != tc.global {
			t.Errorf("%s: GlobalRegion %q, %v; want %q", tc.config, region, err, tc.global)
			continue
		}
		c := pool.Get(region)
		ep, err := iam.NewDefaultEndpointResolverV2().ResolveEndpoint(context.Background(), iam.EndpointParameters{Region: aws.String(c.Options().Region)})
		if err != nil {
			t.Errorf("%s: %v", tc.config, err)
			continue
		}
		var signing string
		if schemes, ok := smithyauth.GetAuthOptions(&ep.Properties); ok && len(schemes) > 0 {
			signing, _ = smithyhttp.GetSigV4SigningRegion(&schemes[0].SignerProperties)
		}
		if ep.URI.Host != tc.host || signing != tc.signing {
			t.Errorf("%s: IAM at %s, signing for %q; want %s and %q", tc.config, ep.URI.Host, signing, tc.host, tc.signing)
		}
	}
	pool := newPool(t, aws.Config{Region: "moon-1", Credentials: aws.AnonymousCredentials{}}, iam.NewFromConfig)
	if _, err := pool.GlobalRegion(); err == nil || !strings.Contains(err.Error(), `"moon-1"`) {
		t.Errorf("GlobalRegion of a pool in moon-1: %v; want an error naming it", err)
	}
}

// TestGlobal runs once per account in the global region, over the wire.
func TestGlobal(t *testing.T) {
	t.Parallel()
	const a, b = "111111111111", "222222222222"
	srv := newFake(t, fanouttest.Config{Accounts: []string{a, b}})
	cfg := srv.AWSConfig("eu-west-1")
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = newAccounts(t, cfg) })
	op := func(ctx context.Context, c *sts.Client, account string) (string, error) {
		out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return "", err
		}
		return c.Options().Region + " " + aws.ToString(out.Account), nil
	}
	f := fanout.New[string]()
	res, err := fanout.Global(context.Background(), f, pool, []string{a, b}, op)
	if err != nil || len(res) != 2 || res[0].Value != "us-east-1 "+a || res[1].Value != "us-east-1 "+b || res[1].Account != b || res[1].Region != "us-east-1" {
		t.Errorf("Global over two accounts: %+v, %v", res, err)
	}
	res, err = fanout.Global(context.Background(), f, pool, nil, op)
	if err != nil || len(res) != 1 || res[0].Value != "us-east-1 "+fanouttest.DefaultAccount {
		t.Errorf("Global over the pool's own account: %+v, %v", res, err)
	}
	if _, err := fanout.Global[*sts.Client, string](context.Background(), f, pool, nil, nil); err == nil {
		t.Error("Global with a nil op: no error")
	}
	var nilPool *fanout.ClientPool[*sts.Client]
	if _, err := fanout.Global(context.Background(), f, nilPool, nil, op); err == nil || !strings.Contains(err.Error(), "nil *ClientPool") {
		t.Errorf("Global on a nil pool: %v", err)
	}
}
