// Command org-scan counts EC2 instances in every account of an AWS
// Organization and every enabled region: accounts from Organizations
// ListAccounts, a role assumed in each (once per account, not per region),
// at most -accounts-in-flight accounts at once inside the -concurrency
// limit.
//
//	moto_server -H 127.0.0.1 -p 5000 &
//	go run ./examples/org-scan -endpoint http://127.0.0.1:5000 -setup 3
//	go run ./examples/org-scan -aws -role OrganizationAccountAccessRole   # from the management account
//
// -setup N (emulator only) first creates an organization with N accounts
// and some instances in them. The last line of stdout is
//
//	accounts=A regions=R instances=M failed=K elapsed=1.234s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/discover"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	aws              bool
	endpoint         string
	home             string
	role, externalID string
	regions          string
	concurrency      int
	accountsInFlight int
	setup            int
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("org-scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.aws, "aws", false, "use your AWS organization through the default credential chain (read-only calls)")
	fs.StringVar(&o.endpoint, "endpoint", "", "use an AWS emulator at this URL, such as moto_server")
	fs.StringVar(&o.home, "region", "us-east-1", "the region for Organizations and STS")
	fs.StringVar(&o.role, "role", fanout.DefaultRoleName, "the role to assume in each account")
	fs.StringVar(&o.externalID, "external-id", "", "the external ID the role requires, if any")
	fs.StringVar(&o.regions, "regions", "", `comma-separated region globs, "!" to exclude`)
	fs.IntVar(&o.concurrency, "concurrency", 32, "calls in flight")
	fs.IntVar(&o.accountsInFlight, "accounts-in-flight", 4, "accounts in flight at once, inside -concurrency")
	fs.IntVar(&o.setup, "setup", 0, "emulator only: first create an organization with this many accounts, and instances in them")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.aws == (o.endpoint != ""):
		return o, errors.New("want one of -endpoint URL (an emulator: moto_server -H 127.0.0.1 -p 5000) or -aws")
	case o.setup > 0 && o.aws:
		return o, errors.New("-setup creates accounts: only against an emulator")
	case o.role == "":
		return o, errors.New("-role is empty; want the name of the role to assume in each account")
	case o.concurrency < 1 || o.accountsInFlight < 1:
		return o, fmt.Errorf("-concurrency %d and -accounts-in-flight %d must be 1 or more", o.concurrency, o.accountsInFlight)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "org-scan:", err)
		}
		return 2
	}
	cfg, err := awsConfig(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "org-scan:", err)
		return 1
	}
	start := time.Now()
	accts, err := fanout.NewAccounts(cfg, func(a *fanout.AccountOptions) { a.RoleName, a.ExternalID = o.role, o.externalID })
	if err != nil {
		fmt.Fprintln(stderr, "org-scan:", err)
		return 1
	}
	pool, err := fanout.NewClientPool(cfg, ec2.NewFromConfig, func(p *fanout.PoolOptions[ec2.Options]) {
		p.Accounts = accts
		p.MaxIdleConnsPerHost = o.concurrency
	})
	if err != nil {
		fmt.Fprintln(stderr, "org-scan:", err)
		return 1
	}
	defer pool.CloseIdleConnections()
	regions, err := discover.EnabledRegions(ctx, pool.Config(), globs(o.regions)...)
	if err != nil {
		fmt.Fprintln(stderr, "org-scan:", err)
		return 1
	}
	org := organizations.NewFromConfig(pool.Config())
	if o.setup > 0 {
		if err := setup(ctx, org, pool, o.setup, regions); err != nil {
			fmt.Fprintln(stderr, "org-scan: setup:", err)
			return 1
		}
	}
	accounts, err := discover.OrganizationAccounts(ctx, org)
	if err != nil {
		fmt.Fprintln(stderr, "org-scan:", err)
		return 1
	}
	f := fanout.New[int](func(fo *fanout.Options) { fo.Limit = int64(o.concurrency) })
	res, err := fanout.AccountRegions(ctx, f, pool, accounts, regions,
		func(ctx context.Context, c *ec2.Client, _, _ string) (int, error) { return countInstances(ctx, c) },
		func(ro *fanout.RegionOptions) { ro.ScopeLimit = o.accountsInFlight })
	if res == nil {
		fmt.Fprintln(stderr, "org-scan:", err) // nothing ran
		return 1
	}
	elapsed := time.Since(start)

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tINSTANCES\tERROR")
	total := 0
	for _, r := range res {
		msg := ""
		if r.Err != nil {
			msg = r.Err.Error()
		}
		total += r.Value
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Account, r.Region, r.Value, msg)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "accounts=%d regions=%d instances=%d failed=%d elapsed=%.3fs\n",
		len(accounts), len(regions), total, len(res.Failed()), elapsed.Seconds())
	if len(res.Failed()) > 0 {
		return 1
	}
	return 0
}

func awsConfig(ctx context.Context, o options, stdout io.Writer) (aws.Config, error) {
	if o.aws {
		fmt.Fprintln(stdout, "AWS: your organization, through the default credential chain (read-only calls)")
		return config.LoadDefaultConfig(ctx, config.WithRegion(o.home))
	}
	fmt.Fprintf(stdout, "emulator: %s\n", o.endpoint)
	return aws.Config{
		Region: o.home, BaseEndpoint: aws.String(o.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "example-secret", ""),
	}, nil
}

func countInstances(ctx context.Context, c *ec2.Client) (int, error) {
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(10)},
		func(o *ec2.DescribeInstancesPaginatorOptions) { o.StopOnDuplicateToken = true }) // a looping endpoint ends, not spins
	rs, err := fanout.Collect(ctx, p, p.NextPage, func(o *ec2.DescribeInstancesOutput) []ec2types.Reservation { return o.Reservations })
	n := 0
	for _, r := range rs {
		n += len(r.Instances)
	}
	return n, err
}

// setup creates an organization with n accounts and launches i+1
// instances in the i-th new account, in each of the first two regions.
func setup(ctx context.Context, org *organizations.Client, pool *fanout.ClientPool[*ec2.Client], n int, regions []string) error {
	if _, err := org.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll}); err != nil &&
		!strings.Contains(err.Error(), "AlreadyInOrganization") {
		return err
	}
	for i := range n {
		out, err := org.CreateAccount(ctx, &organizations.CreateAccountInput{
			AccountName: aws.String(fmt.Sprintf("scan-%d", i)), Email: aws.String(fmt.Sprintf("scan-%d-%d@example.com", i, time.Now().UnixNano())),
		})
		if err != nil {
			return err
		}
		account := aws.ToString(out.CreateAccountStatus.AccountId)
		for _, region := range regions[:min(2, len(regions))] {
			c, err := pool.Client(account, region)
			if err != nil {
				return err
			}
			if _, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
				ImageId: aws.String("ami-12345678"), MinCount: aws.Int32(int32(i + 1)), MaxCount: aws.Int32(int32(i + 1)),
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

func globs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
