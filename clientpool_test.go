package fanout_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/internal/mototest"
)

func TestPoolBuildsOneClientAndSharesCredentials(t *testing.T) {
	cfg := mototest.Fresh(t, "us-east-1")
	creds := &countingProvider{CredentialsProvider: cfg.Credentials}
	cfg.Credentials = creds
	pool := newPool(t, cfg, sts.NewFromConfig, httpClientOf[sts.Options](cfg))
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
			// Every call fails its first three attempts with a 500.
			srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Attempts: 3, Fault: fanouttest.Error500}}})
			pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Retryer = tc.retryer })
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
				if errors.As(r.Err, &q) && errors.Is(fanout.Classify(r.Err), fanout.ErrThrottled) {
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
	hc, ok := newPool(t, cfg, sts.NewFromConfig).Config().HTTPClient.(*http.Client)
	if !ok {
		t.Fatal("the pool's HTTP client is not an *http.Client")
	}
	tr := hc.Transport.(*http.Transport)
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.ServerName != "corporate-ca" || tr.MaxIdleConnsPerHost != fanout.DefaultMaxIdleConnsPerHost ||
		tr.ResponseHeaderTimeout != fanout.DefaultResponseTimeout {
		t.Errorf("TLS config %+v, idle per host %d, response timeout %v", tr.TLSClientConfig, tr.MaxIdleConnsPerHost, tr.ResponseHeaderTimeout)
	}
	mine := &http.Client{}
	cfg.HTTPClient = mine
	if got := newPool(t, cfg, sts.NewFromConfig).Config().HTTPClient; got != mine {
		t.Error("the pool replaced an HTTP client of the user's own")
	}
	// ... so a ResponseTimeout cannot be honoured there.
	if p, err := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.ResponseTimeout = time.Minute }); p != nil || err == nil ||
		!strings.Contains(err.Error(), "PoolOptions.ResponseTimeout is 1m0s, but the config's HTTPClient is the caller's own") {
		t.Errorf("a ResponseTimeout with the config's own client: %v, %v; want an error naming both", p, err)
	}
}

func TestPoolOptions(t *testing.T) {
	t.Parallel()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDOPT", "opt-secret", "")}
	var seen fanout.PoolOptions[sts.Options]
	if _, err := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { seen = *o }); err != nil ||
		seen.MaxIdleConnsPerHost != fanout.DefaultMaxIdleConnsPerHost || seen.ResponseTimeout != fanout.DefaultResponseTimeout || seen.Retryer == nil || seen.Adaptive != fanout.DefaultAdaptiveOptions() {
		t.Errorf("an option function saw %+v (%v); want the defaults", seen, err)
	}
	for name, tc := range map[string]struct {
		fn   func(*fanout.PoolOptions[sts.Options])
		want string
	}{
		"idle conns":                {func(o *fanout.PoolOptions[sts.Options]) { o.MaxIdleConnsPerHost = 0 }, "PoolOptions.MaxIdleConnsPerHost is 0"},
		"retryer":                   {func(o *fanout.PoolOptions[sts.Options]) { o.Retryer = nil }, "PoolOptions.Retryer is nil"},
		"no response timeout":       {func(o *fanout.PoolOptions[sts.Options]) { o.ResponseTimeout = 0 }, "PoolOptions.ResponseTimeout is 0s"},
		"negative response timeout": {func(o *fanout.PoolOptions[sts.Options]) { o.ResponseTimeout = -time.Second }, "PoolOptions.ResponseTimeout is -1s"},
		"response timeout on a client of the caller's": {func(o *fanout.PoolOptions[sts.Options]) {
			o.HTTPClient, o.ResponseTimeout = &http.Client{}, time.Minute
		}, "PoolOptions.ResponseTimeout is 1m0s, but PoolOptions.HTTPClient"},
		"adaptive": {func(o *fanout.PoolOptions[sts.Options]) { o.Adaptive.Max = -1 }, "AdaptiveOptions.Max is -1"},
	} {
		if p, err := fanout.NewClientPool(cfg, sts.NewFromConfig, tc.fn); p != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %v; want an error containing %q", name, p, err, tc.want)
		}
	}
	// A bad adaptive option does not matter when adaptive is off.
	if _, err := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.Adaptive.Max, o.DisableAdaptive = -1, true
	}); err != nil {
		t.Errorf("DisableAdaptive with a bad Adaptive: %v", err)
	}
	if p, err := fanout.NewClientPool[*sts.Client, sts.Options](cfg, nil); p != nil || err == nil || !strings.Contains(err.Error(), "nil client constructor") {
		t.Errorf("nil constructor: %v, %v", p, err)
	}
	if hc, err := fanout.NewHTTPClient(0); hc != nil || err == nil || !strings.Contains(err.Error(), "NewHTTPClient(0)") {
		t.Errorf("NewHTTPClient(0): %v, %v", hc, err)
	}
	if hc, err := fanout.NewHTTPClient(8); err != nil || hc.Transport.(*http.Transport).ResponseHeaderTimeout != fanout.DefaultResponseTimeout {
		t.Errorf("NewHTTPClient(8): %v; want DefaultResponseTimeout on its transport", err)
	}
	// A client of the caller's is theirs: the pool keeps it, with the
	// default timeout left as it is.
	mine := &http.Client{}
	if p, err := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.HTTPClient = mine }); err != nil || p.Config().HTTPClient != mine {
		t.Errorf("a client of the caller's with the default timeout: %v", err)
	}
}

// TestPoolStats: one adaptive limit per client, keyed by region for the
// config's own account and "account/region" for others; none when
// adaptive is off.
func TestPoolStats(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{})
	cfg := srv.AWSConfig("us-east-1")
	accts := newAccounts(t, cfg)
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.Accounts = accts
		o.Adaptive.Max = 7
	})
	ctx := context.Background()
	for range 3 {
		if _, err := pool.Get("eu-west-1").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := pool.Client("111111111111", "ap-south-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]fanout.AdaptiveStats{
		"eu-west-1":               {Limit: 7, Requests: 3},
		"111111111111/ap-south-1": {Limit: 7, Requests: 1},
	}
	if got := pool.Stats(); !maps.Equal(got, want) {
		t.Errorf("Stats %+v; want %+v", got, want)
	}
	off := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.DisableAdaptive = true })
	if _, err := off.Get("eu-west-1").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil || len(off.Stats()) != 0 {
		t.Errorf("adaptive off: %v, Stats %+v; want none", err, off.Stats())
	}
}

// TestResponseTimeoutEndsAHang: a region that never answers fails each
// attempt on the pool's ResponseTimeout, long before the caller's own
// deadline, instead of hanging until it.
func TestResponseTimeoutEndsAHang(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Region: "eu-west-1", Fault: fanouttest.Hang}}})
	pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.ResponseTimeout = 100 * time.Millisecond
		o.Retryer = fastRetries
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // the test's own deadline
	defer cancel()
	res, _ := fanout.Regions(ctx, fanout.New[string](), pool, []string{"eu-west-1"}, callerAccount)
	err := res[0].Err
	var netErr net.Error
	if ctx.Err() != nil || !errors.As(err, &netErr) || !netErr.Timeout() || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Errorf("%v (the test's deadline: %v); want the response timeout", err, ctx.Err())
	}
	if n := srv.Stats().Region["eu-west-1"].Requests; n != fanout.DefaultMaxAttempts {
		t.Errorf("%d attempts; want each of the %d to time out and be retried", n, fanout.DefaultMaxAttempts)
	}
}

// TestResponseTimeoutIsToTheHeaders: the timeout ends the wait for a
// response's headers, not the reading of its body, so a slow body (a
// stream, a large download) is not cut.
func TestResponseTimeoutIsToTheHeaders(t *testing.T) {
	t.Parallel()
	// Hand-rolled, not fanouttest: fanouttest delays a whole answer, never a body after its headers.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>`)
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond) // a body slower than the timeout: latency, not synchronisation
		io.WriteString(w, `<Arn>arn:aws:iam::123456789012:user/x</Arn><UserId>X</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	}))
	t.Cleanup(srv.Close)
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDRT", "rt-secret", "")}
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.ResponseTimeout = 100 * time.Millisecond })
	if acct, err := callerAccount(context.Background(), pool.Get("us-east-1"), "us-east-1"); err != nil || acct != "123456789012" {
		t.Errorf("%q, %v; want the answer whose body came after the timeout", acct, err)
	}
}

func callerAccount(ctx context.Context, c *sts.Client, _ string) (string, error) {
	out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.Account), nil
}

// panickingTransport panics on its first n requests, then sends them on.
type panickingTransport struct {
	left atomic.Int64
	next aws.HTTPClient
}

func (p *panickingTransport) Do(r *http.Request) (*http.Response, error) {
	if p.left.Add(-1) >= 0 {
		panic("transport boom")
	}
	return p.next.Do(r)
}

// TestTransportPanicIsTheAttemptsError: a transport that panics fails the
// call with a *PanicError, and gives back the places in the adaptive limit
// that its attempts took: the retry middleware releases them only when
// the attempt returns. More panics than the limit has places, then a call
// that must not wait for one.
func TestTransportPanicIsTheAttemptsError(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{})
	const panics = 12
	hc, err := fanout.NewHTTPClient(8)
	if err != nil {
		t.Fatal(err)
	}
	tr := &panickingTransport{next: hc}
	tr.left.Store(panics)
	pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.HTTPClient = tr
		o.Adaptive.Max = panics
	})
	for _, r := range identities(t, pool, "eu-west-1", keysN(panics), 1) {
		var pe *fanout.PanicError
		if !errors.As(r.Err, &pe) || len(pe.Stack) == 0 || pe.Value != "transport boom" {
			t.Errorf("%s: %v; want the transport's panic", r.Key, r.Err)
		}
	}
	if st := pool.Stats()["eu-west-1"]; st.InFlight != 0 {
		t.Errorf("after the panics: %+v; want nothing in flight", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pool.Get("eu-west-1").GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		t.Errorf("a call once the transport works: %v", err)
	}
}

// TestClientChecksWhatGetDidNot: Get builds a client for any name, unchecked;
// Client, which skips its checks for a client it built itself, still
// refuses that name rather than handing out Get's client.
func TestClientChecksWhatGetDidNot(t *testing.T) {
	t.Parallel()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDCHECK", "check-secret", "")}
	pool := newPool(t, cfg, sts.NewFromConfig)
	if c := pool.Get("not-a-region"); c == nil {
		t.Fatal("Get built no client")
	}
	for range 2 {
		if _, err := pool.Client("", "not-a-region"); err == nil || !strings.Contains(err.Error(), `"not-a-region"`) {
			t.Errorf("Client after Get: %v; want an error naming the region", err)
		}
	}
	first, err := pool.Client("", "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := pool.Client("", "eu-west-1"); err != nil || again != first || pool.Get("eu-west-1") != first {
		t.Errorf("a second Client: %p, %v; want the same client %p", again, err, first)
	}
}

// TestPoolHonoursTheConfigsRetrySettings: AWS_MAX_ATTEMPTS (or the shared
// config's max_attempts), as LoadDefaultConfig reads it into the config,
// sets how many attempts a pool client makes, counted at the wire; without
// it, DefaultMaxAttempts, though the test's ClientOptions wrap the retryer
// in a RetryDelay of their own (a 500 is no throttle: the adaptive
// retryer's extra attempts are not for it, and its RetryDelay, which ends
// the call, is not called). AWS_RETRY_MODE picks the retryer the pool
// starts from. Not parallel: it sets the environment.
func TestPoolHonoursTheConfigsRetrySettings(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want int
	}{
		{nil, fanout.DefaultMaxAttempts},
		{map[string]string{"AWS_MAX_ATTEMPTS": "2"}, 2},
		{map[string]string{"AWS_MAX_ATTEMPTS": "7", "AWS_RETRY_MODE": "adaptive"}, 7},
		{map[string]string{"AWS_RETRY_MODE": "standard"}, fanout.DefaultMaxAttempts},
	} {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			for _, k := range []string{"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"} {
				t.Setenv(k, tc.env[k])
			}
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
			srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Fault: fanouttest.Error500}}})
			fake := srv.AWSConfig("us-east-1")
			cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
				config.WithCredentialsProvider(fake.Credentials), config.WithBaseEndpoint(aws.ToString(fake.BaseEndpoint)))
			if err != nil {
				t.Fatal(err)
			}
			pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
				o.DisableBreaker = true
				o.ClientOptions = append(o.ClientOptions, func(o *sts.Options) {
					o.Retryer = retry.AddWithMaxBackoffDelay(o.Retryer, time.Millisecond)
				})
			})
			_, err = pool.Get("us-east-1").GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
			var last *retry.MaxAttemptsError
			if n := srv.Stats().Total.Requests; !errors.As(err, &last) || last.Attempt != tc.want || n != int64(tc.want) {
				t.Errorf("%d attempts at the wire (%v); want %d, and the SDK's error for them", n, err, tc.want)
			}
			if want := tc.env["AWS_RETRY_MODE"]; want != "" {
				if got := fanout.PoolRetryMode(pool); got != aws.RetryMode(want) {
					t.Errorf("the pool's retryer is the %q mode; want %q", got, want)
				}
			}
		})
	}
}

// TestPoolUsesTheConfigsRetryer: a retryer the caller put in the config
// (config.WithRetryer) is the pool's default, not replaced.
func TestPoolUsesTheConfigsRetryer(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Fault: fanouttest.Error500}}})
	cfg := srv.AWSConfig("us-east-1")
	cfg.Retryer = func() aws.Retryer { return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 1 }) }
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.DisableBreaker = true })
	_, err := pool.Get("us-east-1").GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if n := srv.Stats().Total.Requests; err == nil || n != 1 {
		t.Errorf("%d attempts at the wire (%v); want the config's retryer's 1", n, err)
	}
}
