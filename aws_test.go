package fanout_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/internal/mototest"
)

// motoConfig returns a config that reaches moto_server, with an HTTP
// client whose idle connections the test closes at its end.
func motoConfig(t *testing.T, region string) aws.Config {
	t.Helper()
	srv := mototest.Require(t)
	if err := srv.Reset(); err != nil { // moto tests run one at a time
		t.Fatal(err)
	}
	cfg := srv.Config(region)
	hc := fanout.NewHTTPClient(0)
	cfg.HTTPClient = hc
	t.Cleanup(hc.CloseIdleConnections)
	return cfg
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

func TestEnabledRegionsMoto(t *testing.T) {
	cfg := motoConfig(t, "us-east-1")
	ctx := context.Background()
	all, err := fanout.EnabledRegions(ctx, cfg)
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
	pool := fanout.NewClientPool(cfg, ec2.NewFromConfig, httpClientOf[ec2.Options](cfg))
	for name, tc := range map[string]struct {
		patterns []string
		want     []string
	}{
		"eu only":       {[]string{"eu-*", "!eu-west-*"}, []string{"eu-central-1", "eu-north-1", "eu-south-1"}},
		"drop only":     {[]string{"!*-*-1", "!*-*-3"}, []string{"ap-northeast-2", "ap-southeast-2", "eu-west-2", "us-east-2", "us-west-2"}},
		"two patterns":  {[]string{"us-east-?", "ca-*"}, []string{"ca-central-1", "us-east-1", "us-east-2"}},
		"exact, cached": {[]string{"us-west-2"}, []string{"us-west-2"}},
	} {
		got, err := pool.EnabledRegions(ctx, tc.patterns...)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", name, got, err, tc.want)
		}
	}
	for _, bad := range [][]string{{"[eu"}, {"zz-*"}, {"!"}} {
		if got, err := pool.EnabledRegions(ctx, bad...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("patterns %q: %v, %v; want an error naming them", bad, got, err)
		}
	}
	gov := cfg
	gov.Region = "us-gov-west-1"
	govRegions, err := fanout.EnabledRegions(ctx, gov)
	if err != nil || !slices.Equal(govRegions, []string{"us-gov-east-1", "us-gov-west-1"}) {
		t.Errorf("GovCloud partition: %v, %v", govRegions, err)
	}
}

func TestRegionsMoto(t *testing.T) {
	cfg := motoConfig(t, "us-east-1")
	want := map[string]int{"eu-north-1": 12, "ap-south-1": 3, "sa-east-1": 7, "ca-central-1": 1}
	ctx := context.Background()
	pool := fanout.NewClientPool(cfg, ec2.NewFromConfig, httpClientOf[ec2.Options](cfg))
	for region, n := range want {
		launch(t, pool.Get(region), n)
	}
	regions, err := pool.EnabledRegions(ctx)
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

func TestPoolBuildsOneClientAndSharesCredentials(t *testing.T) {
	cfg := motoConfig(t, "us-east-1")
	creds := &countingProvider{CredentialsProvider: cfg.Credentials}
	cfg.Credentials = creds
	pool := fanout.NewClientPool(cfg, sts.NewFromConfig, httpClientOf[sts.Options](cfg))
	clients := make([]*sts.Client, 100)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients[i] = pool.Get("eu-west-3")
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if c != clients[0] {
			t.Fatal("100 concurrent Gets built more than one client")
		}
	}
	regions := []string{"eu-west-3", "us-west-1", "ap-northeast-1", "eu-central-1", "us-east-2"}
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = 10 })
	for range 4 {
		res, err := fanout.Regions(context.Background(), f, pool, regions,
			func(ctx context.Context, c *sts.Client, _ string) (string, error) {
				out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
				if err != nil {
					return "", err
				}
				return aws.ToString(out.Account), nil
			})
		if err != nil || len(res.Values()) != len(regions) {
			t.Fatalf("%v, %v", res, err)
		}
	}
	if pool.Len() != len(regions) {
		t.Errorf("pool holds %d clients; want %d", pool.Len(), len(regions))
	}
	if n := creds.n.Load(); n != 1 {
		t.Errorf("credentials retrieved %d times over 20 calls in 5 regions; want 1 (one cache per account)", n)
	}
}

// TestAccountRegionsMoto assumes roles in accounts that Organizations
// lists, and checks that each account sees its own instances.
func TestAccountRegionsMoto(t *testing.T) {
	cfg := motoConfig(t, "us-east-1")
	ctx := context.Background()
	org := organizations.NewFromConfig(cfg)
	if _, err := org.CreateOrganization(ctx, &organizations.CreateOrganizationInput{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prod", "dev"} {
		if _, err := org.CreateAccount(ctx, &organizations.CreateAccountInput{
			AccountName: aws.String(name), Email: aws.String(name + "@example.com"),
		}); err != nil {
			t.Fatal(err)
		}
	}
	accounts, err := fanout.OrganizationAccounts(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != 3 { // the management account and the two new ones
		t.Fatalf("accounts %v; want 3", accounts)
	}
	accts := fanout.NewAccounts(cfg, func(o *fanout.AccountOptions) { o.ExternalID = "ext-1"; o.SessionName = "test" })
	pool := fanout.NewClientPool(cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) {
		o.HTTPClient = cfg.HTTPClient
		o.Accounts = accts
	})
	regions := []string{"eu-west-2", "ap-northeast-3"}
	want := map[string]int{}
	for i, acct := range accounts[1:] {
		for j, region := range regions {
			n := 2 + 3*i + j
			client, err := pool.Client(acct, region)
			if err != nil {
				t.Fatal(err)
			}
			launch(t, client, n)
			want[acct+"/"+region] = n
		}
	}
	f := fanout.New[int](func(o *fanout.Options) { o.Limit = 4 })
	res, err := fanout.AccountRegions(ctx, f, pool, accounts, regions,
		func(ctx context.Context, c *ec2.Client, _, region string) (int, error) {
			return countInstances(ctx, c, region)
		},
		func(o *fanout.Options) { o.ScopeLimit = 2 })
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(accounts)*len(regions) {
		t.Fatalf("%d results", len(res))
	}
	for _, r := range res {
		if r.Value != want[r.Key] {
			t.Errorf("%s: %d instances; want %d", r.Key, r.Value, want[r.Key])
		}
	}
	if res[0].Key != accounts[0]+"/"+regions[0] {
		t.Errorf("first key %q", res[0].Key)
	}
}

// stsProxy forwards to moto, but refuses AssumeRole into deniedAccount as
// IAM would, and counts the attempts.
func stsProxy(t *testing.T, motoURL, deniedAccount string) (*httptest.Server, *atomic.Int32) {
	target, _ := url.Parse(motoURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var denied atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		form, _ := url.ParseQuery(string(body))
		if form.Get("Action") == "AssumeRole" && strings.Contains(form.Get("RoleArn"), ":"+deniedAccount+":") {
			denied.Add(1)
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sts:AssumeRole on resource: %s</Message></Error><RequestId>1</RequestId></ErrorResponse>`, form.Get("RoleArn"))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &denied
}

func TestAccountWhoseRoleCannotBeAssumed(t *testing.T) {
	cfg := motoConfig(t, "us-east-1")
	const good, bad = "111111111111", "222222222222"
	proxy, denied := stsProxy(t, *cfg.BaseEndpoint, bad)
	accts := fanout.NewAccounts(cfg, func(o *fanout.AccountOptions) {
		o.RoleName = "auditor"
		o.STSOptions = append(o.STSOptions, func(o *sts.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
	})
	pool := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.HTTPClient = cfg.HTTPClient
		o.Accounts = accts
	})
	regions := []string{"eu-west-1", "us-east-2", "ap-south-1"}
	res, err := fanout.AccountRegions(context.Background(), fanout.New[string](), pool, []string{bad, good}, regions,
		func(ctx context.Context, c *sts.Client, _, _ string) (string, error) {
			out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.Account), nil
		})
	if err == nil {
		t.Fatal("no error for the account whose role was denied")
	}
	for _, r := range res {
		acct, _, _ := strings.Cut(r.Key, "/")
		if acct == good {
			if r.Err != nil || r.Value != good {
				t.Errorf("%s: %v %q; want the good account to run as itself", r.Key, r.Err, r.Value)
			}
			continue
		}
		var ae *fanout.AccountError
		if !errors.As(r.Err, &ae) || ae.Account != bad || ae.RoleARN != "arn:aws:iam::"+bad+":role/auditor" {
			t.Fatalf("%s: %v; want an *AccountError", r.Key, r.Err)
		}
		var apiErr smithy.APIError
		if !errors.As(r.Err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
			t.Errorf("%s: the STS error is not reachable: %v", r.Key, r.Err)
		}
		if msg := r.Err.Error(); !strings.Contains(msg, bad) || !strings.Contains(msg, "role/auditor") || strings.Contains(msg, "moto-test-secret") {
			t.Errorf("message %q: want the account and role, never the secret", msg)
		}
	}
	if n := denied.Load(); n != 1 {
		t.Errorf("AssumeRole into the denied account tried %d times for %d regions; want 1", n, len(regions))
	}
}

func TestAWSBadInput(t *testing.T) {
	t.Parallel()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDBAD", "bad-secret", "")}
	pool := fanout.NewClientPool(cfg, ec2.NewFromConfig)
	f := fanout.New[int]()
	op := func(context.Context, *ec2.Client, string) (int, error) { return 0, nil }
	for name, tc := range map[string]struct {
		regions []string
		want    string
	}{
		"empty":      {nil, "region list is empty"},
		"duplicate":  {[]string{"eu-west-1", "us-east-1", "eu-west-1"}, `region "eu-west-1" is listed twice`},
		"malformed":  {[]string{"eu-west-1", "EU_WEST_1"}, `"EU_WEST_1" is not an AWS region name`},
		"unknown":    {[]string{"xx-east-1"}, `"xx-east-1" is not an AWS region name`},
		"az, not rg": {[]string{"us-east-1a"}, `"us-east-1a" is not an AWS region name`},
	} {
		res, err := fanout.Regions(context.Background(), f, pool, tc.regions, op)
		if err == nil || !strings.Contains(err.Error(), tc.want) || res != nil {
			t.Errorf("%s: %v; want an error containing %q", name, err, tc.want)
		}
	}
	if _, err := fanout.Regions(context.Background(), f, nil, []string{"us-east-1"}, op); err == nil || !strings.Contains(err.Error(), "nil *ClientPool") {
		t.Errorf("nil pool: %v", err)
	}
	noCreds := fanout.NewClientPool(aws.Config{Region: "us-east-1"}, ec2.NewFromConfig)
	if _, err := fanout.Regions(context.Background(), f, noCreds, []string{"us-east-1"}, op); err == nil || !strings.Contains(err.Error(), "no Credentials") {
		t.Errorf("config without credentials: %v", err)
	}
	if _, err := fanout.AccountRegions(context.Background(), f, pool, []string{"1"}, []string{"us-east-1"},
		func(context.Context, *ec2.Client, string, string) (int, error) { return 0, nil }); err == nil || !strings.Contains(err.Error(), "no Accounts") {
		t.Errorf("no Accounts: %v", err)
	}
	accts := fanout.NewAccounts(cfg, func(o *fanout.AccountOptions) {
		o.RoleARN = func(account string) string { return "arn:aws:iam::" + account + ":user/not-a-role" }
	})
	if _, err := accts.RoleARN("123456789012"); err == nil || !strings.Contains(err.Error(), "user/not-a-role") {
		t.Errorf("malformed role ARN: %v", err)
	}
	if _, err := accts.RoleARN("12345"); err == nil || !strings.Contains(err.Error(), `"12345" is not an AWS account ID`) {
		t.Errorf("malformed account: %v", err)
	}
	withAccts := fanout.NewClientPool(cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) { o.Accounts = accts })
	if _, err := fanout.AccountRegions(context.Background(), f, withAccts, []string{"123456789012", "123456789012"}, []string{"us-east-1"},
		func(context.Context, *ec2.Client, string, string) (int, error) { return 0, nil }); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("duplicate account: %v", err)
	}
	if _, err := fanout.EnabledRegions(context.Background(), aws.Config{}); err == nil || !strings.Contains(err.Error(), "no Region") {
		t.Errorf("config without region: %v", err)
	}
}

// awsErrorServer answers every call with one AWS error body, as the real
// service does, and counts the requests.
func awsErrorServer(t *testing.T, status int, contentType, body string) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

const (
	ec2AuthFailure = `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>1</RequestID></Response>`
	ec2Throttled = `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>2</RequestID></Response>`
	stsInvalidToken  = `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>3</RequestId></ErrorResponse>`
	jsonUnrecognized = `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`
)

func fastRetries() aws.Retryer {
	return retry.AddWithMaxBackoffDelay(fanout.NewRetryer(), time.Millisecond)
}

func TestClassificationOverTheWire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDWIRE", "wire-secret", "")}
	check := func(name string, err error, kind error, code string) {
		t.Helper()
		var apiErr smithy.APIError
		if !errors.Is(err, kind) || !errors.As(err, &apiErr) || apiErr.ErrorCode() != code {
			t.Errorf("%s: %v; want errors.Is %v and the API error %s", name, err, kind, code)
		}
		if strings.Contains(fmt.Sprint(err), "wire-secret") {
			t.Errorf("%s: the error shows the secret key", name)
		}
	}
	withEndpoint := func(url string) aws.Config {
		cfg := base.Copy()
		cfg.BaseEndpoint = aws.String(url)
		return cfg
	}

	srv, _ := awsErrorServer(t, http.StatusUnauthorized, "text/xml", ec2AuthFailure)
	ec2Pool := fanout.NewClientPool(withEndpoint(srv.URL), ec2.NewFromConfig)
	t.Cleanup(ec2Pool.CloseIdleConnections)
	res, err := fanout.Regions(ctx, fanout.New[int](), ec2Pool, []string{"me-south-1"}, countInstances)
	check("EC2 AuthFailure", res[0].Err, fanout.ErrRegionDisabled, "AuthFailure")
	check("joined", err, fanout.ErrRegionDisabled, "AuthFailure")
	res, err = fanout.Regions(ctx, fanout.New[int](), ec2Pool, []string{"me-south-1"}, countInstances,
		func(o *fanout.Options) { o.SkipDisabled = true })
	if err != nil || !errors.Is(res[0].Skipped, fanout.ErrRegionDisabled) {
		t.Errorf("SkipDisabled: %+v, %v", res[0], err)
	}

	srv, _ = awsErrorServer(t, http.StatusForbidden, "text/xml", stsInvalidToken)
	stsPool := fanout.NewClientPool(withEndpoint(srv.URL), sts.NewFromConfig)
	t.Cleanup(stsPool.CloseIdleConnections)
	_, err = stsPool.Get("ap-east-1").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	check("STS InvalidClientTokenId", fanout.Classify(err), fanout.ErrRegionDisabled, "InvalidClientTokenId")

	srv, _ = awsErrorServer(t, http.StatusBadRequest, "application/x-amz-json-1.1", jsonUnrecognized)
	orgPool := fanout.NewClientPool(withEndpoint(srv.URL), organizations.NewFromConfig)
	t.Cleanup(orgPool.CloseIdleConnections)
	_, err = orgPool.Get("us-east-1").ListAccounts(ctx, &organizations.ListAccountsInput{})
	check("JSON UnrecognizedClientException", fanout.Classify(err), fanout.ErrRegionDisabled, "UnrecognizedClientException")

	srv, throttledCalls := awsErrorServer(t, http.StatusServiceUnavailable, "text/xml", ec2Throttled)
	throttledPool := fanout.NewClientPool(withEndpoint(srv.URL), ec2.NewFromConfig,
		func(o *fanout.PoolOptions[ec2.Options]) { o.Retryer = fastRetries })
	t.Cleanup(throttledPool.CloseIdleConnections)
	res, _ = fanout.Regions(ctx, fanout.New[int](), throttledPool, []string{"eu-west-1"}, countInstances)
	check("EC2 RequestLimitExceeded", res[0].Err, fanout.ErrThrottled, "RequestLimitExceeded")
	if n := throttledCalls.Load(); n != fanout.DefaultMaxAttempts {
		t.Errorf("the throttled call was sent %d times; want DefaultMaxAttempts %d", n, fanout.DefaultMaxAttempts)
	}
}

func TestEnabledRegionsDenied(t *testing.T) {
	t.Parallel()
	srv, _ := awsErrorServer(t, http.StatusForbidden, "text/xml",
		`<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>4</RequestID></Response>`)
	cfg := aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDDENY", "deny-secret", "")}
	pool := fanout.NewClientPool(cfg, ec2.NewFromConfig)
	t.Cleanup(pool.CloseIdleConnections)
	_, err := pool.EnabledRegions(context.Background())
	var apiErr smithy.APIError
	if err == nil || !strings.Contains(err.Error(), "ec2:DescribeRegions was denied") ||
		!strings.Contains(err.Error(), "pass the regions explicitly") || !errors.As(err, &apiErr) {
		t.Errorf("err %v; want one that says how to pass regions instead", err)
	}
}

// flakyServer answers the first three attempts of every call with a 500
// and the fourth with GetCallerIdentity's answer.
func flakyServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		if a := r.Header.Get("Amz-Sdk-Request"); !strings.HasPrefix(a, "attempt=4;") {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>oops</Message></Error></ErrorResponse>`)
			return
		}
		io.WriteString(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/x</Arn><UserId>X</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRetryQuotaCannotFailAFanout sends 300 calls through one client that
// each need three retries: the SDK's standard retryer, given the same 5
// attempts, runs out of its 500-token quota (5 a retry, refunded only when
// the retry succeeds) and fails calls; the pool's retryer does not.
func TestRetryQuotaCannotFailAFanout(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		retryer    func() aws.Retryer
		wantFailed bool
	}{
		"SDK default": {func() aws.Retryer {
			return retry.AddWithMaxBackoffDelay(retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = fanout.DefaultMaxAttempts
			}), time.Millisecond)
		}, true},
		"fanout": {fastRetries, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := flakyServer(t)
			cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
				Credentials: credentials.NewStaticCredentialsProvider("AKIDQ", "quota-secret", "")}
			pool := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Retryer = tc.retryer })
			t.Cleanup(pool.CloseIdleConnections)
			keys := keysN(300)
			res, _ := fanout.New[string](func(o *fanout.Options) { o.Limit = 50 }).Run(context.Background(), keys,
				func(ctx context.Context, _ string) (string, error) {
					out, err := pool.Get("us-east-1").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
					if err != nil {
						return "", err
					}
					return aws.ToString(out.Account), nil
				})
			quota := 0
			for _, r := range res.Failed() {
				var q ratelimit.QuotaExceededError
				if errors.As(r.Err, &q) && errors.Is(r.Err, fanout.ErrThrottled) {
					quota++
				}
			}
			t.Logf("%d of %d calls failed on the retry quota", quota, len(keys))
			if (quota > 0) != tc.wantFailed {
				t.Errorf("%d of %d calls failed on the retry quota (%d failed in all)", quota, len(keys), len(res.Failed()))
			}
			if !tc.wantFailed && len(res.Failed()) != 0 {
				t.Errorf("%d calls failed: %v", len(res.Failed()), res.Failed()[0].Err)
			}
		})
	}
}

// TestPoolKeepsTheConfigsTransport: LoadDefaultConfig puts AWS_CA_BUNDLE
// and proxy settings in the SDK's BuildableClient; the pool keeps them
// while making room for more idle connections.
func TestPoolKeepsTheConfigsTransport(t *testing.T) {
	t.Parallel()
	cfg := aws.Config{Region: "us-east-1", HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.TLSClientConfig = &tls.Config{ServerName: "corporate-ca"}
	})}
	hc, ok := fanout.NewClientPool(cfg, sts.NewFromConfig).Config().HTTPClient.(*http.Client)
	if !ok {
		t.Fatal("the pool's HTTP client is not an *http.Client")
	}
	tr := hc.Transport.(*http.Transport)
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.ServerName != "corporate-ca" || tr.MaxIdleConnsPerHost != fanout.DefaultMaxIdleConnsPerHost {
		t.Errorf("TLS config %+v, idle per host %d", tr.TLSClientConfig, tr.MaxIdleConnsPerHost)
	}
	mine := &http.Client{}
	cfg.HTTPClient = mine
	if got := fanout.NewClientPool(cfg, sts.NewFromConfig).Config().HTTPClient; got != mine {
		t.Error("the pool replaced an HTTP client of the user's own")
	}
}
