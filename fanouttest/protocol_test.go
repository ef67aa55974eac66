package fanouttest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/internal/mototest"
)

// protoConfig returns a config whose clients reach srv in us-east-1 with
// an HTTP client of their own, closed when the test ends, and a standard
// retryer of attempts attempts that backs off a millisecond at most.
func protoConfig(t *testing.T, srv *fanouttest.Server, attempts int) aws.Config {
	t.Helper()
	cfg := srv.AWSConfig("us-east-1")
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections) // before the Server closes: cleanups run last in, first out
	cfg.HTTPClient = hc
	cfg.Retryer = func() aws.Retryer {
		return retry.AddWithMaxBackoffDelay(retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.RateLimiter = ratelimit.None
		}), time.Millisecond)
	}
	return cfg
}

// protoCode is the code of the API error in err, or "".
func protoCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func pathStyle(o *s3.Options) { o.UsePathStyle = true }

// protoClient is one call of a real client of a service that speaks one of
// the AWS protocols, and the codes that service answers the faults with.
type protoClient struct {
	service string // SigV4 signing name, as Rule.Service reads it
	builtIn bool   // the built-in responder answers the call
	notMoto bool   // moto does not speak the protocol (moto 5.2 answers CloudWatch's CBOR with a 404)
	call    func(ctx context.Context, cfg aws.Config) error

	throttled, disabled, denied, internal string
}

// protoObject is what GetObject reads in the s3 bucket that the moto mode
// of TestProtocolFaults prepares.
const protoObject = "fanouttest object body"

// protoClients are the calls, by protocol and service. The s3 GetObject
// reads key in bucket.
func protoClients(bucket, key string) map[string]protoClient {
	return map[string]protoClient{
		"ec2Query/ec2": {
			service: "ec2", builtIn: true,
			call: func(ctx context.Context, cfg aws.Config) error {
				_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
				return err
			},
			throttled: "RequestLimitExceeded", disabled: "AuthFailure", denied: "UnauthorizedOperation", internal: "InternalError",
		},
		"awsQuery/sts": {
			service: "sts", builtIn: true,
			call: func(ctx context.Context, cfg aws.Config) error {
				_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
				return err
			},
			throttled: "Throttling", disabled: "InvalidClientTokenId", denied: "AccessDenied", internal: "InternalFailure",
		},
		"awsQuery/iam": {
			service: "iam",
			call: func(ctx context.Context, cfg aws.Config) error {
				_, err := iam.NewFromConfig(cfg).ListUsers(ctx, &iam.ListUsersInput{})
				return err
			},
			throttled: "Throttling", disabled: "InvalidClientTokenId", denied: "AccessDenied", internal: "InternalFailure",
		},
		"awsJson1_0/dynamodb": {
			service: "dynamodb",
			call: func(ctx context.Context, cfg aws.Config) error {
				_, err := dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{})
				return err
			},
			throttled: "ThrottlingException", disabled: "UnrecognizedClientException", denied: "AccessDeniedException", internal: "InternalFailure",
		},
		"awsJson1_1/organizations": {
			service: "organizations", builtIn: true,
			call: func(ctx context.Context, cfg aws.Config) error {
				_, err := organizations.NewFromConfig(cfg).ListAccounts(ctx, &organizations.ListAccountsInput{})
				return err
			},
			throttled: "ThrottlingException", disabled: "UnrecognizedClientException", denied: "AccessDeniedException", internal: "InternalFailure",
		},
		"rpcv2Cbor/cloudwatch": {
			service: "monitoring", notMoto: true,
			call: func(ctx context.Context, cfg aws.Config) error {
				_, err := cloudwatch.NewFromConfig(cfg).ListMetrics(ctx, &cloudwatch.ListMetricsInput{})
				return err
			},
			throttled: "Throttling", disabled: "InvalidClientTokenId", denied: "AccessDenied", internal: "InternalFailure",
		},
		"restJson1/lambda": {
			service: "lambda",
			call: func(ctx context.Context, cfg aws.Config) error {
				_, err := lambda.NewFromConfig(cfg).ListFunctions(ctx, &lambda.ListFunctionsInput{})
				return err
			},
			throttled: "TooManyRequestsException", disabled: "UnrecognizedClientException", denied: "AccessDeniedException", internal: "ServiceException",
		},
		"restXml/s3 ListBuckets": {
			service: "s3",
			call: func(ctx context.Context, cfg aws.Config) error {
				_, err := s3.NewFromConfig(cfg, pathStyle).ListBuckets(ctx, &s3.ListBucketsInput{})
				return err
			},
			throttled: "SlowDown", disabled: "InvalidAccessKeyId", denied: "AccessDenied", internal: "InternalError",
		},
		"restXml/s3 GetObject": {
			service: "s3",
			call: func(ctx context.Context, cfg aws.Config) error {
				out, err := s3.NewFromConfig(cfg, pathStyle).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
				if err != nil {
					return err
				}
				defer out.Body.Close()
				body, err := io.ReadAll(out.Body)
				if err == nil && string(body) != protoObject {
					err = fmt.Errorf("GetObject read %q; want %q", body, protoObject)
				}
				return err
			},
			throttled: "SlowDown", disabled: "InvalidAccessKeyId", denied: "AccessDenied", internal: "InternalError",
		},
	}
}

// prepareMoto gives moto what the successful calls of protoClients need
// there: an organization for the config's account, and bucket with key.
// Tests share moto, so it only adds, with names of its own.
func prepareMoto(t *testing.T, moto *mototest.Server, bucket, key string) {
	t.Helper()
	cfg := moto.Config("us-east-1")
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(hc.CloseIdleConnections)
	cfg.HTTPClient = hc
	ctx := context.Background()
	_, err := organizations.NewFromConfig(cfg).CreateOrganization(ctx, &organizations.CreateOrganizationInput{})
	var exists *orgtypes.AlreadyInOrganizationException
	if err != nil && !errors.As(err, &exists) {
		t.Fatalf("moto CreateOrganization: %v", err)
	}
	c := s3.NewFromConfig(cfg, pathStyle)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("moto CreateBucket: %v", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(protoObject)}); err != nil {
		t.Fatalf("moto PutObject: %v", err)
	}
}

// protoBucketName is an s3 bucket name no other test uses. It must not
// start with get, list or describe, which would make a PUT of it a read.
func protoBucketName(what string) string {
	return fmt.Sprintf("fanouttest-%s-%d", what, time.Now().UnixNano())
}

// waitStats returns srv's counts once done holds for them, or after a
// few seconds: a client that gives up on a hanging call may return
// before the Server has counted it.
func waitStats(srv *fanouttest.Server, done func(fanouttest.Snapshot) bool) fanouttest.Snapshot {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	limit := time.After(5 * time.Second)
	for {
		st := srv.Stats()
		if done(st) {
			return st
		}
		select {
		case <-tick.C:
		case <-limit:
			return st
		}
	}
}

// protoCell is one fault, as every protocol's client must see it.
type protoCell struct {
	rule     *fanouttest.Rule // fired for the client's service; nil for none
	bucket   bool             // Config.Throttle has buckets of one token, which a first call spends
	deadline time.Duration    // of the call's context; 0 for none
	succeeds bool             // the call succeeds, so it needs an answer from the responder or moto

	code    func(protoClient) string // the API error code the client sees; nil for none
	kind    error                    // what fanout.Classify finds: ErrThrottled, ErrRegionDisabled or nil
	sendErr bool                     // the call fails without an answer
	timeout bool                     // the call fails on its deadline

	requests, throttled, faulted, fired int64
	minElapsed                          time.Duration
}

const protoAttempts = 3

var protoCells = map[string]protoCell{
	"Throttled": {
		rule: &fanouttest.Rule{Fault: fanouttest.Throttled},
		code: func(c protoClient) string { return c.throttled }, kind: fanout.ErrThrottled,
		requests: protoAttempts, throttled: protoAttempts, fired: protoAttempts,
	},
	"bucket": {
		bucket: true,
		code:   func(c protoClient) string { return c.throttled }, kind: fanout.ErrThrottled,
		requests: 1 + protoAttempts, throttled: protoAttempts,
	},
	"Disabled": {
		rule: &fanouttest.Rule{Fault: fanouttest.Disabled},
		code: func(c protoClient) string { return c.disabled }, kind: fanout.ErrRegionDisabled,
		requests: 1, faulted: 1, fired: 1,
	},
	"Denied": {
		rule:     &fanouttest.Rule{Fault: fanouttest.Denied},
		code:     func(c protoClient) string { return c.denied },
		requests: 1, faulted: 1, fired: 1,
	},
	"Error500": {
		rule:     &fanouttest.Rule{Fault: fanouttest.Error500},
		code:     func(c protoClient) string { return c.internal },
		requests: protoAttempts, faulted: protoAttempts, fired: protoAttempts,
	},
	"Reset": {
		rule: &fanouttest.Rule{Fault: fanouttest.Reset}, sendErr: true,
		requests: protoAttempts, faulted: protoAttempts, fired: protoAttempts,
	},
	"Hang": {
		rule: &fanouttest.Rule{Fault: fanouttest.Hang}, deadline: 300 * time.Millisecond, timeout: true,
		requests: 1, faulted: 1, fired: 1,
	},
	"Latency": {
		rule: &fanouttest.Rule{Latency: fanouttest.Latency{Fixed: 20 * time.Millisecond}}, succeeds: true,
		requests: 1, fired: 1, minElapsed: 20 * time.Millisecond,
	},
	"Attempts": {
		rule: &fanouttest.Rule{Attempts: 2, Fault: fanouttest.Error500}, succeeds: true,
		requests: protoAttempts, faulted: 2, fired: 2,
	},
}

// TestProtocolFaults checks every fault through a real client of a
// service of each protocol: the error code the client sees, how
// fanout.Classify reads it, and how many attempts reached the Server.
// The built-in mode runs the calls that need an answer for the services
// the built-in responder knows; the moto mode runs them all through the
// proxy.
func TestProtocolFaults(t *testing.T) {
	t.Parallel()
	for mode, proxy := range map[string]bool{"built-in": false, "moto": true} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			bucket, key := protoBucketName("faults"), "dir/object.txt"
			var upstream string
			if proxy {
				moto := mototest.Require(t)
				upstream = moto.URL
				prepareMoto(t, moto, bucket, key)
			}
			for name, c := range protoClients(bucket, key) {
				for fault, cell := range protoCells {
					if cell.succeeds && ((!proxy && !c.builtIn) || (proxy && c.notMoto)) {
						continue // neither the built-in responder nor moto (for rpcv2Cbor) answers the call
					}
					t.Run(name+"/"+fault, func(t *testing.T) {
						t.Parallel()
						testProtoCell(t, upstream, c, cell)
					})
				}
			}
		})
	}
}

func testProtoCell(t *testing.T, upstream string, c protoClient, cell protoCell) {
	// A rule for another service comes first: it must not fire.
	cfg := fanouttest.Config{Upstream: upstream, Faults: []fanouttest.Rule{{Service: "decoy", Fault: fanouttest.Denied}}}
	if cell.rule != nil {
		r := *cell.rule
		r.Service = c.service
		cfg.Faults = append(cfg.Faults, r)
	}
	if cell.bucket {
		one := fanouttest.Bucket{Burst: 1, PerSecond: 0.001}
		cfg.Throttle = fanouttest.Buckets{NonMutating: one, UnfilteredDescribe: one, Mutating: one}
	}
	srv := newServer(t, cfg)
	awsCfg := protoConfig(t, srv, protoAttempts)
	ctx := context.Background()
	if cell.bucket {
		_ = c.call(ctx, awsCfg) // spends the token; the built-in responder may not know the call
		if st := srv.Stats().Total; st.Requests != 1 || st.Throttled != 0 {
			t.Fatalf("the first call: %d requests, %d throttled; want 1, 0", st.Requests, st.Throttled)
		}
	}
	if cell.deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cell.deadline)
		defer cancel()
	}
	began := time.Now()
	err := c.call(ctx, awsCfg)
	elapsed := time.Since(began)

	switch {
	case cell.succeeds:
		if err != nil {
			t.Errorf("the call failed: %v", err)
		}
		if elapsed < cell.minElapsed {
			t.Errorf("the call took %v; want %v at least", elapsed, cell.minElapsed)
		}
	case cell.code != nil:
		if want := cell.code(c); protoCode(err) != want {
			t.Errorf("the call failed with %v; want the API error %s", err, want)
		}
	case cell.sendErr:
		var sendErr *smithyhttp.RequestSendError
		if err == nil || protoCode(err) != "" || !errors.As(err, &sendErr) {
			t.Errorf("the call failed with %v; want a failure to send or receive, without an API error", err)
		}
	case cell.timeout:
		if !errors.Is(err, context.DeadlineExceeded) || protoCode(err) != "" {
			t.Errorf("the call failed with %v; want its deadline", err)
		}
	}
	classified := fanout.Classify(err)
	for _, kind := range []error{fanout.ErrThrottled, fanout.ErrRegionDisabled} {
		if got := errors.Is(classified, kind); got != (kind == cell.kind) {
			t.Errorf("errors.Is(Classify(%v), %v) = %v; want %v", err, kind, got, !got)
		}
	}

	st := waitStats(srv, func(s fanouttest.Snapshot) bool { return s.Total.Requests >= cell.requests })
	if st.Total.Requests != cell.requests || st.Total.Throttled != cell.throttled || st.Total.Faulted != cell.faulted {
		t.Errorf("the Server saw %d requests, %d throttled, %d faulted; want %d, %d, %d",
			st.Total.Requests, st.Total.Throttled, st.Total.Faulted, cell.requests, cell.throttled, cell.faulted)
	}
	want := []int64{0}
	if cell.rule != nil {
		want = append(want, cell.fired)
	}
	if !slices.Equal(st.Rules, want) {
		t.Errorf("the rules fired %v times; want %v", st.Rules, want)
	}
	if a := st.Account[fanouttest.DefaultAccount]; a.Requests != cell.requests || st.Region["us-east-1"].Requests != cell.requests {
		t.Errorf("account %s saw %d requests, region us-east-1 %d; want %d",
			fanouttest.DefaultAccount, a.Requests, st.Region["us-east-1"].Requests, cell.requests)
	}
}

// TestProtocolOperations: a rule's Operation names the action of the
// query and JSON protocols, and a method and path prefix in the REST
// ones.
func TestProtocolOperations(t *testing.T) {
	t.Parallel()
	clients := protoClients("fanouttest-bucket", "dir/object.txt")
	for name, tc := range map[string]struct {
		client      string
		match, miss string
	}{
		"ec2Query":              {"ec2Query/ec2", "DescribeInstances", "DescribeRegions"},
		"awsQuery":              {"awsQuery/iam", "ListUsers", "ListRoles"},
		"awsJson1_0":            {"awsJson1_0/dynamodb", "ListTables", "DescribeTable"},
		"awsJson1_1":            {"awsJson1_1/organizations", "ListAccounts", "ListRoots"},
		"rpcv2Cbor":             {"rpcv2Cbor/cloudwatch", "ListMetrics", "GetMetricData"},
		"restJson1":             {"restJson1/lambda", "GET /2015-03-31/functions", "POST /2015-03-31/functions"},
		"restXml ListBuckets":   {"restXml/s3 ListBuckets", "GET /", "PUT /"},
		"restXml GetObject":     {"restXml/s3 GetObject", "GET /fanouttest-bucket/dir/", "GET /fanouttest-bucket/other/"},
		"S3 names its calls":    {"restXml/s3 GetObject", "GetObject", "HeadObject"},
		"action is not a path":  {"restJson1/lambda", "GET /2015-03-31/functions", "ListFunctions"},
		"path is not an action": {"ec2Query/ec2", "DescribeInstances", "POST /"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := clients[tc.client]
			srv := newServer(t, fanouttest.Config{Faults: []fanouttest.Rule{
				{Operation: tc.miss, Fault: fanouttest.Throttled},
				{Operation: tc.match, Fault: fanouttest.Denied},
			}})
			err := c.call(context.Background(), protoConfig(t, srv, 1))
			if protoCode(err) != c.denied {
				t.Errorf("%v; want %s from the rule for %q", err, c.denied, tc.match)
			}
			if st := srv.Stats(); !slices.Equal(st.Rules, []int64{0, 1}) {
				t.Errorf("the rules fired %v times; want [0 1]", st.Rules)
			}
		})
	}
}

// TestProtocolOrganizationPages: the built-in ListAccounts pages through
// the management account and every member account.
func TestProtocolOrganizationPages(t *testing.T) {
	t.Parallel()
	const management = "999999999999"
	var members []string
	for i := range 45 {
		members = append(members, fmt.Sprintf("1000000000%02d", i))
	}
	for name, tc := range map[string]struct {
		maxResults int32
		pages      int
	}{
		"default page size": {0, 3}, // 20 a page
		"7 a page":          {7, 7},
		"20 a page":         {20, 3},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, fanouttest.Config{Account: management, Accounts: members})
			in := &organizations.ListAccountsInput{}
			if tc.maxResults != 0 {
				in.MaxResults = aws.Int32(tc.maxResults)
			}
			p := organizations.NewListAccountsPaginator(organizations.NewFromConfig(protoConfig(t, srv, 1)), in)
			var got []string
			pages := 0
			for p.HasMorePages() {
				out, err := p.NextPage(context.Background())
				if err != nil {
					t.Fatalf("page %d: %v", pages+1, err)
				}
				pages++
				for _, a := range out.Accounts {
					got = append(got, aws.ToString(a.Id))
				}
			}
			if want := append([]string{management}, members...); !slices.Equal(got, want) {
				t.Errorf("ListAccounts listed %v; want %v", got, want)
			}
			if st := srv.Stats(); pages != tc.pages || st.Total.Requests != int64(tc.pages) {
				t.Errorf("%d pages in %d requests; want %d", pages, st.Total.Requests, tc.pages)
			}
		})
	}
}

// protoDenials makes calls calls to srv with c, one attempt each, and
// reports which were denied; every other call must succeed.
func protoDenials(t *testing.T, srv *fanouttest.Server, c protoClient, calls int) []bool {
	t.Helper()
	cfg := protoConfig(t, srv, 1)
	var denied []bool
	for i := range calls {
		err := c.call(context.Background(), cfg)
		if err != nil && protoCode(err) != c.denied {
			t.Fatalf("call %d: %v; want success or %s", i, err, c.denied)
		}
		denied = append(denied, err != nil)
	}
	return denied
}

// TestProtocolRuleFraction: a rule's Fraction draws from Config.Seed, so
// the same seed fails the same calls of a sequence, whatever the
// protocol, and another seed fails others.
func TestProtocolRuleFraction(t *testing.T) {
	t.Parallel()
	const calls = 40
	clients := protoClients("", "")
	run := func(t *testing.T, seed uint64, client string) []bool {
		srv := newServer(t, fanouttest.Config{Seed: seed, Faults: []fanouttest.Rule{{Fraction: 0.5, Fault: fanouttest.Denied}}})
		denied := protoDenials(t, srv, clients[client], calls)
		n := int64(0)
		for _, d := range denied {
			if d {
				n++
			}
		}
		if st := srv.Stats(); st.Total.Requests != calls || !slices.Equal(st.Rules, []int64{n}) {
			t.Errorf("seed %d, %s: %d requests, the rule fired %v times; want %d, [%d]", seed, client, st.Total.Requests, st.Rules, calls, n)
		}
		return denied
	}
	first := run(t, 7, "ec2Query/ec2")
	if !slices.Contains(first, true) || !slices.Contains(first, false) {
		t.Fatalf("seed 7 denied %v; want some calls denied and some not", first)
	}
	if again := run(t, 7, "ec2Query/ec2"); !slices.Equal(again, first) {
		t.Errorf("seed 7 again denied\n%v; want\n%v", again, first)
	}
	if sts, again := run(t, 7, "awsQuery/sts"), run(t, 7, "awsQuery/sts"); !slices.Equal(sts, again) {
		t.Errorf("seed 7 through sts denied\n%v, then\n%v; want the same calls", sts, again)
	}
	if other := run(t, 8, "ec2Query/ec2"); slices.Equal(other, first) {
		t.Errorf("seeds 7 and 8 denied the same calls %v; want different draws", first)
	}
}

// TestProtocolRuleTimes: a rule with Times fires that many times, over
// the attempts of one call or over calls.
func TestProtocolRuleTimes(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		fault    fanouttest.Fault
		codes    []string // of the calls in turn; "" for success
		requests int64
	}{
		// The SDK retries the throttles, and its third attempt passes.
		"throttles in one call": {fanouttest.Throttled, []string{"", ""}, protoAttempts + 1},
		"denials over calls":    {fanouttest.Denied, []string{"AccessDenied", "AccessDenied", "", ""}, 4},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := protoClients("", "")["awsQuery/sts"]
			srv := newServer(t, fanouttest.Config{Faults: []fanouttest.Rule{{Service: "sts", Times: 2, Fault: tc.fault}}})
			cfg := protoConfig(t, srv, protoAttempts)
			for i, want := range tc.codes {
				if err := c.call(context.Background(), cfg); protoCode(err) != want || (want == "") != (err == nil) {
					t.Errorf("call %d: %v; want %q (\"\" for success)", i, err, want)
				}
			}
			if st := srv.Stats(); st.Total.Requests != tc.requests || !slices.Equal(st.Rules, []int64{2}) {
				t.Errorf("%d requests, the rule fired %v times; want %d, [2]", st.Total.Requests, st.Rules, tc.requests)
			}
		})
	}
}

// TestProtocolRuleWindow: rules with From and Until fire during their
// window of the Server's Clock only, Until excluded, and Until 0 never
// ends.
func TestProtocolRuleWindow(t *testing.T) {
	t.Parallel()
	clock := new(fakeClock)
	srv := newServer(t, fanouttest.Config{Clock: clock.now, Faults: []fanouttest.Rule{
		{Service: "ec2", From: 10 * time.Minute, Until: 20 * time.Minute, Fault: fanouttest.Disabled},
		{Service: "ec2", From: 30 * time.Minute, Fault: fanouttest.Throttled},
	}})
	c := protoClients("", "")["ec2Query/ec2"]
	cfg := protoConfig(t, srv, 1)
	steps := []struct { // in order: the clock only moves forward
		since time.Duration
		want  string
	}{
		{0, ""},
		{10*time.Minute - time.Nanosecond, ""},
		{10 * time.Minute, "AuthFailure"},
		{20*time.Minute - time.Nanosecond, "AuthFailure"},
		{20 * time.Minute, ""},
		{30*time.Minute - time.Nanosecond, ""},
		{30 * time.Minute, "RequestLimitExceeded"},
		{1000 * time.Hour, "RequestLimitExceeded"},
	}
	for _, step := range steps {
		clock.set(step.since)
		if err := c.call(context.Background(), cfg); protoCode(err) != step.want || (step.want == "") != (err == nil) {
			t.Errorf("at %v: %v; want %q (\"\" for success)", clock, err, step.want)
		}
	}
	if st := srv.Stats(); st.Total.Requests != int64(len(steps)) || !slices.Equal(st.Rules, []int64{2, 2}) {
		t.Errorf("%d requests, the rules fired %v times; want %d, [2 2]", st.Total.Requests, st.Rules, len(steps))
	}
}

// TestProtocolRESTReadsAndWrites: the REST protocols' GETs take from the
// non-mutating bucket and their PUTs from the mutating one, through the
// proxy to moto.
func TestProtocolRESTReadsAndWrites(t *testing.T) {
	t.Parallel()
	moto := mototest.Require(t)
	one := fanouttest.Bucket{Burst: 1, PerSecond: 0.001}
	for name, tc := range map[string]struct {
		buckets                       fanouttest.Buckets
		readThrottled, writeThrottled bool
	}{
		"reads metered":  {buckets: fanouttest.Buckets{NonMutating: one}, readThrottled: true},
		"writes metered": {buckets: fanouttest.Buckets{Mutating: one}, writeThrottled: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, fanouttest.Config{Upstream: moto.URL, Throttle: tc.buckets})
			c := s3.NewFromConfig(protoConfig(t, srv, 1), pathStyle)
			ctx := context.Background()
			prefix := protoBucketName(strings.ReplaceAll(name, " ", "-"))
			check := func(what string, err error, throttled bool) {
				t.Helper()
				switch {
				case throttled && (protoCode(err) != "SlowDown" || !errors.Is(fanout.Classify(err), fanout.ErrThrottled)):
					t.Errorf("%s: %v; want SlowDown", what, err)
				case !throttled && err != nil:
					t.Errorf("%s: %v; want success", what, err)
				}
			}
			// Each kind twice: the first call takes its bucket's one token.
			// The buckets' names start with "get": a write for all that.
			prefix = "get" + prefix
			for i := range 2 {
				_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
				check("ListBuckets "+strconv.Itoa(i+1), err, i == 1 && tc.readThrottled)
				_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(prefix + "-" + strconv.Itoa(i))})
				check("CreateBucket "+strconv.Itoa(i+1), err, i == 1 && tc.writeThrottled)
			}
			if st := srv.Stats(); st.Total.Requests != 4 || st.Total.Throttled != 1 {
				t.Errorf("%d requests, %d throttled; want 4, 1", st.Total.Requests, st.Total.Throttled)
			}
		})
	}
}

// TestProtocolAccountRules: rules for an account hit the calls signed
// with credentials that sts AssumeRole gave in that account through the
// Server, built-in or forwarded to moto, and the AssumeRole calls that
// enter the account; the base credentials are not hit.
func TestProtocolAccountRules(t *testing.T) {
	t.Parallel()
	for mode, proxy := range map[string]bool{"built-in": false, "moto": true} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cfg := fanouttest.Config{Faults: []fanouttest.Rule{
				{Account: "111111111111", Service: "ec2", Fault: fanouttest.Denied},
				{Account: "222222222222", Operation: "AssumeRole", Fault: fanouttest.Denied},
				{Account: "333333333333", Fault: fanouttest.Denied}, // entering the account too
			}}
			if proxy {
				cfg.Upstream = mototest.Require(t).URL
			}
			srv := newServer(t, cfg)
			base := protoConfig(t, srv, protoAttempts)
			ctx := context.Background()
			describe := func(cfg aws.Config) error {
				_, err := ec2.NewFromConfig(cfg).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
				return err
			}
			assume := func(account string) (*sts.AssumeRoleOutput, error) {
				return sts.NewFromConfig(base).AssumeRole(ctx, &sts.AssumeRoleInput{
					RoleArn:         aws.String("arn:aws:iam::" + account + ":role/fanouttest"),
					RoleSessionName: aws.String("protocol-test"),
				})
			}

			if err := describe(base); err != nil {
				t.Errorf("DescribeInstances with the base credentials: %v", err)
			}
			out, err := assume("111111111111")
			if err != nil {
				t.Fatalf("AssumeRole into 111111111111: %v", err)
			}
			role := base
			role.Credentials = credentials.NewStaticCredentialsProvider(
				aws.ToString(out.Credentials.AccessKeyId), aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken))
			// No rule for 111111111111 covers sts.
			if id, err := sts.NewFromConfig(role).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
				t.Errorf("GetCallerIdentity in the role: %v", err)
			} else if aws.ToString(id.Account) != "111111111111" {
				t.Errorf("GetCallerIdentity in the role: account %s; want 111111111111", aws.ToString(id.Account))
			}
			if err := describe(role); protoCode(err) != "UnauthorizedOperation" {
				t.Errorf("DescribeInstances in the role: %v; want UnauthorizedOperation", err)
			}
			if err := describe(base); err != nil {
				t.Errorf("DescribeInstances with the base credentials, after: %v", err)
			}
			for _, account := range []string{"222222222222", "333333333333"} {
				if _, err := assume(account); protoCode(err) != "AccessDenied" || fanout.Classify(err) != err {
					t.Errorf("AssumeRole into %s: %v; want AccessDenied, not classified", account, err)
				}
			}

			st := srv.Stats()
			if !slices.Equal(st.Rules, []int64{1, 1, 1}) {
				t.Errorf("the rules fired %v times; want [1 1 1]", st.Rules)
			}
			for account, want := range map[string]fanouttest.Stats{
				fanouttest.DefaultAccount: {Requests: 2},             // DescribeInstances twice
				"111111111111":            {Requests: 3, Faulted: 1}, // AssumeRole, GetCallerIdentity, DescribeInstances
				"222222222222":            {Requests: 1, Faulted: 1},
				"333333333333":            {Requests: 1, Faulted: 1},
			} {
				if got := st.Account[account]; got.Requests != want.Requests || got.Faulted != want.Faulted {
					t.Errorf("account %s: %d requests, %d faulted; want %d, %d", account, got.Requests, got.Faulted, want.Requests, want.Faulted)
				}
			}
		})
	}
}

// TestProtocolS3SessionToken: S3 answers a disabled region's calls
// signed with a session token with InvalidToken.
func TestProtocolS3SessionToken(t *testing.T) {
	t.Parallel()
	srv := newServer(t, fanouttest.Config{Faults: []fanouttest.Rule{{Service: "s3", Fault: fanouttest.Disabled}}})
	cfg := protoConfig(t, srv, protoAttempts)
	cfg.Credentials = credentials.NewStaticCredentialsProvider("ASIAFANOUTTEST", "fanouttest-secret", "fanouttest-token")
	_, err := s3.NewFromConfig(cfg, pathStyle).ListBuckets(context.Background(), &s3.ListBucketsInput{})
	var resp *smithyhttp.ResponseError
	if protoCode(err) != "InvalidToken" || !errors.As(err, &resp) || resp.HTTPStatusCode() != http.StatusBadRequest {
		t.Errorf("%v; want InvalidToken, 400", err)
	}
	if !errors.Is(fanout.Classify(err), fanout.ErrRegionDisabled) {
		t.Errorf("Classify(%v) is not ErrRegionDisabled", err)
	}
	if st := srv.Stats(); st.Total.Requests != 1 {
		t.Errorf("%d requests; want 1: a disabled region's answer is not retried", st.Total.Requests)
	}
}
