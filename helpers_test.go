package fanout_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// newPool is NewClientPool for a test: it fails the test on an error and
// closes the pool's idle connections when the test ends.
func newPool[C, O any](t testing.TB, cfg aws.Config, newFn func(aws.Config, ...func(*O)) C,
	optFns ...func(*fanout.PoolOptions[O])) *fanout.ClientPool[C] {
	t.Helper()
	p, err := fanout.NewClientPool(cfg, newFn, optFns...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

// newFake starts fanouttest's in-process AWS for a test, and closes it
// when the test ends.
func newFake(t testing.TB, cfg fanouttest.Config) *fanouttest.Server {
	t.Helper()
	srv, err := fanouttest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func newAccounts(t testing.TB, cfg aws.Config, optFns ...func(*fanout.AccountOptions)) *fanout.Accounts {
	t.Helper()
	a, err := fanout.NewAccounts(cfg, optFns...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func httpClientOf[O any](cfg aws.Config) func(*fanout.PoolOptions[O]) {
	return func(o *fanout.PoolOptions[O]) { o.HTTPClient = cfg.HTTPClient }
}

// launch starts n instances in the client's account and region, one
// reservation each, so that DescribeInstances pages through them.
func launch(t *testing.T, client *ec2.Client, n int) {
	t.Helper()
	for range n {
		_, err := client.RunInstances(context.Background(), &ec2.RunInstancesInput{
			ImageId: aws.String("ami-12345678"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		})
		if err != nil {
			t.Fatalf("RunInstances: %v", err)
		}
	}
}

// countInstances describes the instances of one region, 5 a page.
func countInstances(ctx context.Context, client *ec2.Client, _ string) (int, error) {
	p := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	rs, err := fanout.Collect(ctx, p, p.NextPage, func(out *ec2.DescribeInstancesOutput) []ec2types.Reservation {
		return out.Reservations
	})
	n := 0
	for _, r := range rs {
		n += len(r.Instances)
	}
	return n, err
}

// countingProvider counts how often credentials are fetched.
type countingProvider struct {
	n atomic.Int32
	aws.CredentialsProvider
}

func (p *countingProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p.n.Add(1)
	c, err := p.CredentialsProvider.Retrieve(ctx)
	c.CanExpire, c.Expires = true, time.Now().Add(time.Hour)
	return c, err
}

func fastRetries() aws.Retryer {
	return retry.AddWithMaxBackoffDelay(fanout.NewRetryer(), time.Millisecond)
}
