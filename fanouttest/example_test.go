package fanouttest_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// A fan-out over three regions, one of which the account has not
// enabled: the real EC2 client sees AWS's AuthFailure, and the fan-out
// classifies it.
func Example() {
	srv, err := fanouttest.New(fanouttest.Config{
		Instances: 7,
		Region:    map[string]fanouttest.RegionConfig{"me-south-1": {Fault: fanouttest.Disabled}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	pool, err := fanout.NewClientPool(srv.AWSConfig("us-east-1"), ec2.NewFromConfig)
	if err != nil {
		log.Fatal(err)
	}
	defer pool.CloseIdleConnections()

	res, _ := fanout.Regions(context.Background(), fanout.New[int](), pool, []string{"eu-west-1", "me-south-1", "us-east-2"},
		func(ctx context.Context, c *ec2.Client, region string) (int, error) {
			out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			if err != nil {
				return 0, err
			}
			return len(out.Reservations), nil
		})
	for _, r := range res {
		fmt.Println(r.Key, r.Value, errors.Is(r.Err, fanout.ErrRegionDisabled))
	}
	st := srv.Stats()
	// Three DescribeInstances, and one GetCallerIdentity in us-east-1 that
	// told a disabled region from refused credentials.
	fmt.Println("requests:", st.Total.Requests)
	// Output:
	// eu-west-1 7 false
	// me-south-1 0 true
	// us-east-2 7 false
	// requests: 4
}
