package fanouttest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/internal/mototest"
)

func TestMain(m *testing.M) { mototest.Main(m) }

// start returns a Server and a pool of clients of service that reach it,
// with quick retries, both closed when the test ends.
func start[C, O any](t *testing.T, cfg fanouttest.Config, newFn func(aws.Config, ...func(*O)) C, attempts int) (*fanouttest.Server, *fanout.ClientPool[C]) {
	t.Helper()
	srv := newServer(t, cfg)
	pool, err := fanout.NewClientPool(srv.AWSConfig("us-east-1"), newFn, func(o *fanout.PoolOptions[O]) {
		o.Retryer = func() aws.Retryer {
			return retry.AddWithMaxBackoffDelay(retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.RateLimiter = ratelimit.None
			}), time.Millisecond)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.CloseIdleConnections) // before the Server closes: cleanups run last in, first out
	return srv, pool
}

// newServer returns a Server that is closed when the test ends.
func newServer(t *testing.T, cfg fanouttest.Config) *fanouttest.Server {
	t.Helper()
	srv, err := fanouttest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func countPages(ctx context.Context, c *ec2.Client, _ string) (int, error) {
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	rs, err := fanout.Collect(ctx, p, p.NextPage, func(o *ec2.DescribeInstancesOutput) []ec2types.Reservation { return o.Reservations })
	return len(rs), err
}

func TestBuiltInResponder(t *testing.T) {
	t.Parallel()
	srv, pool := start(t, fanouttest.Config{
		Instances:       12,
		RegionInstances: map[string]int{"eu-west-1": 3},
	}, ec2.NewFromConfig, 1)
	ctx := context.Background()
	regions, err := discover.EnabledRegions(ctx, pool.Config())
	if err != nil {
		t.Fatal(err)
	}
	if len(regions) != 34 || slices.Contains(regions, "us-gov-west-1") || !slices.Contains(regions, "me-south-1") {
		t.Errorf("EnabledRegions: %d %v; want the 34 commercial regions", len(regions), regions)
	}
	res, err := fanout.Regions(ctx, fanout.New[int](), pool, regions, countPages)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		want := 12
		if r.Key == "eu-west-1" {
			want = 3
		}
		if r.Value != want {
			t.Errorf("%s: %d instances; want %d", r.Key, r.Value, want)
		}
	}
	st := srv.Stats()
	// 1 DescribeRegions + 33 regions x 3 pages (12 at 5 a page) + 1 page for eu-west-1.
	if want := int64(1 + 33*3 + 1); st.Total.Requests != want || st.Region["us-east-2"].Requests != 3 {
		t.Errorf("requests %d (us-east-2: %d); want %d (3)", st.Total.Requests, st.Region["us-east-2"].Requests, want)
	}
	// Go's transport may dial for a request that another connection then
	// serves, so the bound on connections is looser than the one on
	// requests in flight.
	if st.Total.Conns < 1 || st.Total.Conns > int64(fanout.DefaultLimit+len(regions)) || st.Total.PeakInFlight > int64(fanout.DefaultLimit) {
		t.Errorf("conns %d, peak in flight %d", st.Total.Conns, st.Total.PeakInFlight)
	}

	_, stsPool := start(t, fanouttest.Config{Account: "111122223333"}, sts.NewFromConfig, 1)
	out, err := stsPool.Get("ap-south-2").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(out.Account) != "111122223333" {
		t.Errorf("GetCallerIdentity: %v, %v", out, err)
	}
	_, err = pool.Get("us-east-1").DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidAction" || !strings.Contains(apiErr.ErrorMessage(), "Upstream") {
		t.Errorf("an unknown action: %v", err)
	}
}

// TestFaultsAsTheSDKSeesThem checks each injected fault through the real
// client, as the error the real service would give.
func TestFaultsAsTheSDKSeesThem(t *testing.T) {
	t.Parallel()
	cfg := fanouttest.Config{
		Instances: 5,
		Faults: []fanouttest.Rule{
			{Region: "me-south-1", Fault: fanouttest.Disabled},
			{Region: "eu-west-1", Fault: fanouttest.Error500},
			{Region: "ap-east-1", Fault: fanouttest.Reset},
			{Region: "sa-east-1", Fault: fanouttest.Hang},
			{Region: "eu-central-1", Latency: fanouttest.Latency{Fixed: 30 * time.Millisecond}},
		},
		RegionThrottle: map[string]fanouttest.Buckets{"us-west-1": {NonMutating: fanouttest.Bucket{Burst: 1, PerSecond: 0.001}}},
	}
	srv, pool := start(t, cfg, ec2.NewFromConfig, 2)
	_, stsPool := start(t, cfg, sts.NewFromConfig, 2)
	ctx := context.Background()
	code := func(err error) string {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			return apiErr.ErrorCode()
		}
		return ""
	}
	regions := []string{"me-south-1", "eu-west-1", "ap-east-1", "sa-east-1", "us-west-1", "eu-central-1", "us-east-1"}
	res, _ := fanout.Regions(ctx, fanout.New[int](), pool, regions, func(ctx context.Context, c *ec2.Client, region string) (int, error) {
		switch region {
		case "us-west-1": // spend the bucket's one token first
			if _, err := countPages(ctx, c, region); err != nil {
				return 0, err
			}
		case "sa-east-1": // only the hanging region gets a deadline: a loaded machine must not time out the others
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
		}
		return countPages(ctx, c, region)
	})
	byRegion := map[string]fanout.RegionResult[int]{}
	for _, r := range res {
		byRegion[r.Key] = r
	}
	if r := byRegion["me-south-1"]; !errors.Is(r.Err, fanout.ErrRegionDisabled) || code(r.Err) != "AuthFailure" {
		t.Errorf("Disabled: %v", r.Err)
	}
	if r := byRegion["eu-west-1"]; code(r.Err) != "InternalError" || srv.Stats().Region["eu-west-1"].Requests != 2 {
		t.Errorf("Error500: %v after %d requests; want InternalError after 2", r.Err, srv.Stats().Region["eu-west-1"].Requests)
	}
	var netErr net.Error
	if r := byRegion["ap-east-1"]; r.Err == nil || code(r.Err) != "" || !(errors.As(r.Err, &netErr) || strings.Contains(r.Err.Error(), "EOF") || strings.Contains(r.Err.Error(), "reset")) {
		t.Errorf("Reset: %v", r.Err)
	}
	if r := byRegion["sa-east-1"]; !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("Hang: %v", r.Err)
	}
	if r := byRegion["us-west-1"]; !errors.Is(r.Err, fanout.ErrThrottled) || code(r.Err) != "RequestLimitExceeded" || r.Throttles != 2 {
		t.Errorf("Throttle: %v with %d throttles counted; want RequestLimitExceeded twice", r.Err, r.Throttles)
	}
	if r := byRegion["eu-central-1"]; r.Err != nil || r.Elapsed < 30*time.Millisecond {
		t.Errorf("Latency: %v after %v", r.Err, r.Elapsed)
	}
	if r := byRegion["us-east-1"]; r.Err != nil || r.Value != 5 {
		t.Errorf("a healthy region: %+v", r)
	}
	if st := srv.Stats().Region["us-west-1"]; st.Throttled != 2 {
		t.Errorf("us-west-1 throttled %d; want 2", st.Throttled)
	}

	// The query protocol's answers, through STS.
	_, err := stsPool.Get("me-south-1").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if !errors.Is(fanout.Classify(err), fanout.ErrRegionDisabled) || code(err) != "InvalidClientTokenId" {
		t.Errorf("STS Disabled: %v", err)
	}
	stsThrottled := newServer(t, fanouttest.Config{Throttle: fanouttest.Buckets{NonMutating: fanouttest.Bucket{Burst: 1, PerSecond: 0.001}}})
	c := sts.NewFromConfig(stsThrottled.AWSConfig("us-east-1"), func(o *sts.Options) { o.RetryMaxAttempts = 1 })
	_, _ = c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	_, err = c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if !errors.Is(fanout.Classify(err), fanout.ErrThrottled) || code(err) != "Throttling" {
		t.Errorf("STS Throttle: %v", err)
	}
}

// TestCloseFailsCallsInFlight: a call that Close cuts short, during a
// Hang or a latency wait, fails; it never reads as an empty success.
func TestCloseFailsCallsInFlight(t *testing.T) {
	t.Parallel()
	for name, rule := range map[string]fanouttest.Rule{
		"hang":    {Region: "eu-west-1", Fault: fanouttest.Hang},
		"latency": {Region: "eu-west-1", Latency: fanouttest.Latency{Fixed: time.Hour}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, pool := start(t, fanouttest.Config{Instances: 3, Faults: []fanouttest.Rule{rule}}, ec2.NewFromConfig, 1)
			type answer struct {
				out *ec2.DescribeInstancesOutput
				err error
			}
			done := make(chan answer, 1)
			go func() {
				out, err := pool.Get("eu-west-1").DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
				done <- answer{out, err}
			}()
			waitInFlight(t, srv, "eu-west-1")
			srv.Close()
			if a := <-done; a.err == nil {
				t.Errorf("a call in flight when Close ran succeeded with %d reservations; want an error", len(a.out.Reservations))
			}
		})
	}
}

// TestBucketDecidesOnArrival: a quota is enforced when a request
// arrives, not when it is answered; a request that arrives second and is
// answered first does not take the token of the one that came before it.
// Were the bucket to decide at the answer, a latency's jitter would
// reorder arrivals and throttle a client that spaced its requests.
func TestBucketDecidesOnArrival(t *testing.T) {
	t.Parallel()
	clock := new(fakeClock)
	srv := newServer(t, fanouttest.Config{
		Instances: 1,
		Throttle:  fanouttest.Buckets{NonMutating: fanouttest.Bucket{Burst: 1, PerSecond: 1e-6}},
		// The first request, arriving in the first second, is answered
		// 300ms later; the second, after it, at once.
		Faults: []fanouttest.Rule{{Until: time.Second, Latency: fanouttest.Latency{Fixed: 300 * time.Millisecond}}},
		Clock:  clock.now,
	})
	c := ec2.NewFromConfig(srv.AWSConfig("us-east-1"), func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	in := &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)} // metered as a read
	first := make(chan error, 1)
	go func() {
		_, err := c.DescribeInstances(context.Background(), in)
		first <- err
	}()
	waitInFlight(t, srv, "us-east-1")
	clock.set(2 * time.Second)
	_, second := c.DescribeInstances(context.Background(), in)
	if err := <-first; err != nil {
		t.Errorf("the first to arrive: %v; want it served", err)
	}
	if !errors.Is(fanout.Classify(second), fanout.ErrThrottled) {
		t.Errorf("the second to arrive, answered first: %v; want it throttled", second)
	}
}

// waitInFlight returns once a request to region is in the Server's hands.
func waitInFlight(t *testing.T, srv *fanouttest.Server, region string) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for srv.Stats().Region[region].PeakInFlight == 0 {
		<-tick.C
	}
}

// TestProxyToMoto puts faults in front of moto_server.
func TestProxyToMoto(t *testing.T) {
	moto := mototest.Require(t)
	if err := moto.Reset(); err != nil {
		t.Fatal(err)
	}
	srv, pool := start(t, fanouttest.Config{
		Upstream: moto.URL,
		Latency:  fanouttest.Latency{Fixed: time.Millisecond, Jitter: 2 * time.Millisecond},
		Faults:   []fanouttest.Rule{{Region: "eu-west-2", Fault: fanouttest.Disabled}},
	}, ec2.NewFromConfig, 1)
	ctx := context.Background()
	regions, err := discover.EnabledRegions(ctx, pool.Config(), "eu-*")
	if err != nil || !slices.Contains(regions, "eu-west-2") {
		t.Fatalf("DescribeRegions through the proxy: %v, %v", regions, err)
	}
	res, err := fanout.Regions(ctx, fanout.New[int](), pool, regions, countPages, func(o *fanout.RegionOptions) { o.SkipDisabled = true })
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Skipped(); len(s) != 1 || s[0].Key != "eu-west-2" {
		t.Errorf("skipped %v; want eu-west-2", s)
	}
	// DescribeRegions, one page per region, and the GetCallerIdentity in
	// the config's own region that confirms eu-west-2 is disabled.
	if st := srv.Stats(); st.Total.Requests != int64(2+len(regions)) {
		t.Errorf("%d requests; want %d", st.Total.Requests, 2+len(regions))
	}
}

// TestLastAttemptSurvivesTheDeadline: an item whose ItemTimeout ends
// during a retry's back-off fails with the deadline, and still carries the
// last attempt's API error.
func TestLastAttemptSurvivesTheDeadline(t *testing.T) {
	t.Parallel()
	srv := newServer(t, fanouttest.Config{Faults: []fanouttest.Rule{{Region: "eu-west-1", Fault: fanouttest.Error500}}})
	pool, err := fanout.NewClientPool(srv.AWSConfig("us-east-1"), ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) {
		o.Retryer = func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts, o.BaseDelay, o.RateLimiter = 5, time.Second, ratelimit.None // back-offs far past the deadline
			})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.CloseIdleConnections)
	res, _ := fanout.Regions(context.Background(), fanout.New[int](), pool, []string{"eu-west-1"}, countPages,
		func(o *fanout.RegionOptions) { o.ItemTimeout = 100 * time.Millisecond })
	var apiErr smithy.APIError
	if err := res[0].Err; !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InternalError" {
		t.Errorf("%v; want the deadline and the last attempt's InternalError", err)
	}
}

// TestNewRejectsWhatItCannotHonour: New names the first bad setting and
// starts nothing.
func TestNewRejectsWhatItCannotHonour(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cfg  fanouttest.Config
		want string
	}{
		"unparsable upstream":   {fanouttest.Config{Upstream: "http://[::1"}, `Upstream "http://[::1"`},
		"upstream not http":     {fanouttest.Config{Upstream: "127.0.0.1:5000"}, `Upstream "127.0.0.1:5000"`},
		"negative instances":    {fanouttest.Config{Instances: -1}, "Instances is -1"},
		"negative latency":      {fanouttest.Config{Latency: fanouttest.Latency{Jitter: -time.Millisecond}}, "negative part"},
		"negative bucket":       {fanouttest.Config{Throttle: fanouttest.Buckets{Mutating: fanouttest.Bucket{Burst: -5}}}, "negative part"},
		"bad account":           {fanouttest.Config{Account: "1234"}, `Account "1234"`},
		"region instances":      {fanouttest.Config{RegionInstances: map[string]int{"eu-west-1": -1}}, `RegionInstances["eu-west-1"] is -1`},
		"unknown fault":         {fanouttest.Config{Faults: []fanouttest.Rule{{Region: "eu-west-1", Fault: 99}}}, "Faults[0].Fault is 99"},
		"upstream and built-in": {fanouttest.Config{Upstream: "http://127.0.0.1:5000", Instances: 7}, "with Upstream set"},
		"upstream and accounts": {fanouttest.Config{Upstream: "http://127.0.0.1:5000", Accounts: []string{"111111111111"}}, "with Upstream set"},
		"region typo":           {fanouttest.Config{Faults: []fanouttest.Rule{{Region: "eu-west-l", Fault: fanouttest.Disabled}}}, `Faults[0].Region: "eu-west-l" is not one of Config.Regions`},
		"plausible typo":        {fanouttest.Config{Faults: []fanouttest.Rule{{Region: "eu-wset-1", Fault: fanouttest.Disabled}}}, `"eu-wset-1" is not one of Config.Regions`},
		"outside own regions":   {fanouttest.Config{Regions: []string{"eu-west-1"}, RegionInstances: map[string]int{"eu-west-2": 1}}, `RegionInstances: "eu-west-2" is not one of`},
		"REST form for ec2":     {fanouttest.Config{Faults: []fanouttest.Rule{{Service: "ec2", Operation: "POST /", Fault: fanouttest.Denied}}}, "ec2 names its actions"},
		"action for lambda":     {fanouttest.Config{Faults: []fanouttest.Rule{{Service: "lambda", Operation: "ListFunctions", Fault: fanouttest.Denied}}}, "lambda is a REST service"},
		"query in a path":       {fanouttest.Config{Faults: []fanouttest.Rule{{Operation: "GET /b?list-type=2", Fault: fanouttest.Denied}}}, "without its query"},
		"shadowed rule":         {fanouttest.Config{Faults: []fanouttest.Rule{{Fault: fanouttest.Error500}, {Region: "eu-west-1", Fault: fanouttest.Reset}}}, "Faults[1] can never fire"},
		"latency overflow":      {fanouttest.Config{Latency: fanouttest.Latency{Fixed: math.MaxInt64, Jitter: math.MaxInt64}}, "longer than a time.Duration"},
		"throttle region typo":  {fanouttest.Config{RegionThrottle: map[string]fanouttest.Buckets{"eu-west-l": {}}}, `RegionThrottle: "eu-west-l"`},
		"rule does nothing":     {fanouttest.Config{Faults: []fanouttest.Rule{{Region: "eu-west-1"}}}, "neither a Fault nor a Latency"},
		"rule account":          {fanouttest.Config{Faults: []fanouttest.Rule{{Account: "12345", Fault: fanouttest.Denied}}}, `Faults[0].Account "12345"`},
		"rule service":          {fanouttest.Config{Faults: []fanouttest.Rule{{Service: "EC2", Fault: fanouttest.Denied}}}, `Faults[0].Service "EC2"`},
		"rule operation":        {fanouttest.Config{Faults: []fanouttest.Rule{{Operation: "describeInstances", Fault: fanouttest.Denied}}}, `Faults[0].Operation "describeInstances"`},
		"rule REST operation":   {fanouttest.Config{Faults: []fanouttest.Rule{{Operation: "FETCH /x", Fault: fanouttest.Denied}}}, `Operation "FETCH /x"`},
		"window backwards":      {fanouttest.Config{Faults: []fanouttest.Rule{{From: time.Second, Until: time.Second, Fault: fanouttest.Reset}}}, "never fire"},
		"negative window":       {fanouttest.Config{Faults: []fanouttest.Rule{{From: -time.Second, Fault: fanouttest.Reset}}}, "negative"},
		"negative attempts":     {fanouttest.Config{Faults: []fanouttest.Rule{{Attempts: -1, Fault: fanouttest.Reset}}}, "Attempts is -1"},
		"negative times":        {fanouttest.Config{Faults: []fanouttest.Rule{{Times: -2, Fault: fanouttest.Reset}}}, "Times is -2"},
		"fraction over 1":       {fanouttest.Config{Faults: []fanouttest.Rule{{Fraction: 1.5, Fault: fanouttest.Reset}}}, "Fraction is 1.5"},
		"fraction NaN":          {fanouttest.Config{Faults: []fanouttest.Rule{{Fraction: math.NaN(), Fault: fanouttest.Reset}}}, "Fraction is NaN"},
		"rule latency":          {fanouttest.Config{Faults: []fanouttest.Rule{{Latency: fanouttest.Latency{Fixed: -1}}}}, "Faults[0].Latency"},
		"member account":        {fanouttest.Config{Accounts: []string{"111111111111", "22"}}, `Accounts: "22"`},
		"member twice":          {fanouttest.Config{Accounts: []string{"111111111111", "111111111111"}}, "listed twice"},
		"member is management":  {fanouttest.Config{Accounts: []string{fanouttest.DefaultAccount}}, "listed twice"},
		"regions of a stranger": {fanouttest.Config{AccountRegions: map[string][]string{"111111111111": {"us-east-1"}}}, `AccountRegions: "111111111111" is neither`},
		"an unknown region":     {fanouttest.Config{AccountRegions: map[string][]string{fanouttest.DefaultAccount: {"moon-1"}}}, `AccountRegions["123456789012"]: "moon-1"`},
		"listed region":         {fanouttest.Config{Regions: []string{"us-east-1", "not a region"}}, `"not a region" is not an AWS region name`},
		"burst 0 refilled":      {fanouttest.Config{Throttle: fanouttest.Buckets{NonMutating: fanouttest.Bucket{PerSecond: 5}}}, "Burst of 0"},
		"NaN rate":              {fanouttest.Config{Throttle: fanouttest.Buckets{NonMutating: fanouttest.Bucket{Burst: 1, PerSecond: math.NaN()}}}, "PerSecond is not a number"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, err := fanouttest.New(tc.cfg)
			if srv != nil {
				srv.Close()
			}
			if srv != nil || err == nil || !strings.HasPrefix(err.Error(), "fanouttest: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, %v; want no Server and an error naming %s", srv, err, tc.want)
			}
		})
	}
}

// TestLearnsKeysFromACompressingUpstream: an upstream that gzips its
// AssumeRole answer when asked, as the forwarding transport asks it to,
// still teaches the Server the account of the keys it gives (the
// transport inflates the answer before the Server reads it), so that the
// account's rules hit their calls.
func TestLearnsKeysFromACompressingUpstream(t *testing.T) {
	t.Parallel()
	builtIn := newServer(t, fanouttest.Config{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The upstream: the built-in responder's answers, gzipped when asked.
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, builtIn.URL+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		req.Header.Del("Accept-Encoding")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(body)
			zw.Close()
			body = buf.Bytes()
			w.Header().Set("Content-Encoding", "gzip")
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(upstream.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	srv := newServer(t, fanouttest.Config{Upstream: upstream.URL, Faults: []fanouttest.Rule{
		{Account: "111111111111", Operation: "GetCallerIdentity", Fault: fanouttest.Denied},
	}})
	ctx := context.Background()
	c := sts.NewFromConfig(srv.AWSConfig("us-east-1"))
	out, err := c.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::111111111111:role/r"), RoleSessionName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	role := sts.NewFromConfig(srv.AWSConfig("us-east-1"), func(o *sts.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(out.Credentials.AccessKeyId),
			aws.ToString(out.Credentials.SecretAccessKey), aws.ToString(out.Credentials.SessionToken))
	})
	_, err = role.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		t.Errorf("GetCallerIdentity with the role's keys: %v; want the account's rule to deny it", err)
	}
}

// TestDescribeInstancesAnswer: the built-in DescribeInstances pages, as
// the real client reads them, give each instance once, with the fields
// set that an inventory reads.
func TestDescribeInstancesAnswer(t *testing.T) {
	t.Parallel()
	_, pool := start(t, fanouttest.Config{Account: "111122223333", Instances: 12}, ec2.NewFromConfig, 1)
	p := ec2.NewDescribeInstancesPaginator(pool.Get("eu-west-2"), &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	rs, err := fanout.Collect(context.Background(), p, p.NextPage, func(o *ec2.DescribeInstancesOutput) []ec2types.Reservation { return o.Reservations })
	if err != nil || len(rs) != 12 {
		t.Fatalf("%d reservations, %v; want 12", len(rs), err)
	}
	id := regexp.MustCompile(`^i-[0-9a-f]{17}$`)
	seen := map[string]bool{}
	for _, r := range rs {
		if len(r.Instances) != 1 {
			t.Fatalf("reservation %s has %d instances; want 1", aws.ToString(r.ReservationId), len(r.Instances))
		}
		in := r.Instances[0]
		iid := aws.ToString(in.InstanceId)
		if !id.MatchString(iid) || seen[iid] || aws.ToString(r.ReservationId) != "r-"+iid[2:] || aws.ToString(r.OwnerId) != "111122223333" ||
			in.State == nil || in.State.Name != ec2types.InstanceStateNameRunning || in.InstanceType != ec2types.InstanceTypeT3Micro ||
			in.Placement == nil || aws.ToString(in.Placement.AvailabilityZone) != "eu-west-2a" {
			t.Errorf("instance %+v of reservation %s (owner %s): want a new ID, running t3.micro in eu-west-2a, owned by the account", in, aws.ToString(r.ReservationId), aws.ToString(r.OwnerId))
		}
		seen[iid] = true
	}
}

// TestFractionIsReproducibleUnderConcurrency: calls that race each other
// to the Server meet the same draws in every run: the same regions fail.
func TestFractionIsReproducibleUnderConcurrency(t *testing.T) {
	t.Parallel()
	regions := fanouttest.DefaultRegions[:30]
	failed := func() []string {
		_, pool := start(t, fanouttest.Config{Seed: 42, Faults: []fanouttest.Rule{{Service: "ec2", Fraction: 0.3, Fault: fanouttest.Error500}}},
			ec2.NewFromConfig, 1)
		res, _ := fanout.Regions(context.Background(), fanout.New[int](), pool, regions, countPages)
		var out []string
		for _, r := range res {
			if r.Err != nil {
				out = append(out, r.Region)
			}
		}
		return out
	}
	first := failed()
	if len(first) == 0 || len(first) == len(regions) {
		t.Fatalf("failed %v; want some of the %d regions", first, len(regions))
	}
	for range 3 {
		if again := failed(); !slices.Equal(again, first) {
			t.Errorf("failed %v, then %v; want the same regions", first, again)
		}
	}
}

// TestBucketsPerAction: each action has its own buckets, as EC2 meters
// them; one action's calls do not throttle another's, nor another
// service's.
func TestBucketsPerAction(t *testing.T) {
	t.Parallel()
	one := fanouttest.Bucket{Burst: 1, PerSecond: 0.001}
	srv, pool := start(t, fanouttest.Config{Throttle: fanouttest.Buckets{NonMutating: one, UnfilteredDescribe: one, Mutating: one}},
		ec2.NewFromConfig, 1)
	ctx := context.Background()
	stsClient := sts.NewFromConfig(srv.AWSConfig("eu-west-1"), func(o *sts.Options) { o.RetryMaxAttempts = 1 })
	if _, err := stsClient.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatal(err)
	}
	c := pool.Get("eu-west-1")
	if _, err := c.DescribeRegions(ctx, &ec2.DescribeRegionsInput{}); err != nil {
		t.Errorf("DescribeRegions after sts GetCallerIdentity: %v; want its own bucket", err)
	}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)}); err != nil {
		t.Errorf("DescribeInstances after DescribeRegions: %v; want its own bucket", err)
	}
	_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "RequestLimitExceeded" {
		t.Errorf("a second DescribeInstances: %v; want its bucket empty", err)
	}
}

// TestServerKeepsItsOwnConfig: changing the config's buckets, maps or
// rules after New changes nothing, checked or not.
func TestServerKeepsItsOwnConfig(t *testing.T) {
	t.Parallel()
	cfg := fanouttest.Config{
		RegionInstances: map[string]int{"eu-west-1": 2},
		RegionThrottle:  map[string]fanouttest.Buckets{"eu-west-1": {NonMutating: fanouttest.Bucket{Burst: 100, PerSecond: 100}}},
	}
	srv, pool := start(t, cfg, ec2.NewFromConfig, 1)
	cfg.RegionInstances["eu-west-1"] = 50
	cfg.RegionThrottle["eu-west-1"] = fanouttest.Buckets{NonMutating: fanouttest.Bucket{Burst: 0, PerSecond: 5}} // New would refuse this
	if n, err := countPages(context.Background(), pool.Get("eu-west-1"), "eu-west-1"); err != nil || n != 2 {
		t.Errorf("%d instances, %v; want the 2 the config held at New", n, err)
	}
	if st := srv.Stats(); st.Total.Throttled != 0 {
		t.Errorf("%d throttled; want none", st.Total.Throttled)
	}
}

// TestBuiltInAnswersAsAWSDoes: a role's GetCallerIdentity names the
// assumed role, AWSConfigFor acts in its account, and a NextToken the
// Server did not give is refused, not read as the first page.
func TestBuiltInAnswersAsAWSDoes(t *testing.T) {
	t.Parallel()
	srv := newServer(t, fanouttest.Config{Instances: 12})
	ctx := context.Background()
	cfg, err := srv.AWSConfigFor("111122223333", "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(out.Account) != "111122223333" || !strings.HasPrefix(aws.ToString(out.Arn), "arn:aws:sts::111122223333:assumed-role/") {
		t.Errorf("GetCallerIdentity as a role: %+v, %v; want the account's assumed role", out, err)
	}
	if _, err := srv.AWSConfigFor("1111", "eu-west-1"); err == nil || !strings.Contains(err.Error(), `"1111"`) {
		t.Errorf("AWSConfigFor a bad account: %v; want an error naming it", err)
	}
	c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	for _, token := range []string{"garbage", "-3", "12", "0"} {
		_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), NextToken: aws.String(token)})
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidParameterValue" {
			t.Errorf("NextToken %q: %v; want InvalidParameterValue", token, err)
		}
	}
}

// TestUpstreamDown: with its upstream gone, the Server answers in the
// request's protocol, naming the upstream, rather than with an empty 502.
func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler()) // an upstream address with nothing behind it
	gone.Close()
	srv := newServer(t, fanouttest.Config{Upstream: gone.URL})
	c := sts.NewFromConfig(srv.AWSConfig("us-east-1"), func(o *sts.Options) { o.RetryMaxAttempts = 1 })
	_, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UpstreamUnreachable" || !strings.Contains(apiErr.ErrorMessage(), gone.URL) {
		t.Errorf("%v; want UpstreamUnreachable naming %s", err, gone.URL)
	}
}

// TestAccountRegions: a region not enabled in an account answers that
// account's calls as a disabled region, and DescribeRegions says it is
// not opted in; another account, or a region enabled, answers as usual.
func TestAccountRegions(t *testing.T) {
	t.Parallel()
	const member = "111111111111"
	srv := newServer(t, fanouttest.Config{Accounts: []string{member}, Instances: 1,
		AccountRegions: map[string][]string{fanouttest.DefaultAccount: {"us-east-1", "af-south-1"}}})
	ctx := context.Background()
	call := func(cfg aws.Config) error {
		_, err := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.RetryMaxAttempts = 1 }).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		return err
	}
	if err := call(srv.AWSConfig("us-east-1")); err != nil {
		t.Errorf("an enabled region: %v", err)
	}
	if err := call(srv.AWSConfig("eu-west-1")); !errors.Is(fanout.Classify(err), fanout.ErrRegionDisabled) {
		t.Errorf("a region not enabled: %v; want it answered as disabled", err)
	}
	memberCfg, err := srv.AWSConfigFor(member, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := call(memberCfg); err != nil {
		t.Errorf("another account, every region enabled: %v", err)
	}
	out, err := ec2.NewFromConfig(srv.AWSConfig("us-east-1")).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, r := range out.Regions {
		status[aws.ToString(r.RegionName)] = aws.ToString(r.OptInStatus)
	}
	if status["us-east-1"] != "opt-in-not-required" || status["af-south-1"] != "opted-in" || status["eu-west-1"] != "not-opted-in" {
		t.Errorf("DescribeRegions: %v", status)
	}
}
