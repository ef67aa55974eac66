package fanout_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/internal/mototest"
)

// syncClock is a clock that moves only when told, safe to read from the
// SDK's goroutines while a test moves it.
type syncClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *syncClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *syncClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// identities calls GetCallerIdentity once per key through pool's client
// for region, at limit, classified as Regions classifies errors.
func identities(t *testing.T, pool *fanout.ClientPool[*sts.Client], region string, keys []string, limit int64) fanout.Results[string] {
	t.Helper()
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = limit })
	res, _ := f.Run(context.Background(), keys, fanout.Classified(func(ctx context.Context, _ string) (string, error) {
		return callerAccount(ctx, pool.Get(region), region)
	}))
	return res
}

// onFakeClock builds the pool's client for region and puts its breaker
// on clock.
func onFakeClock(t *testing.T, pool *fanout.ClientPool[*sts.Client], region string, clock *syncClock) {
	t.Helper()
	pool.Get(region)
	b := fanout.PoolBreaker(pool, "", region)
	if b == nil {
		t.Fatalf("the pool's client for %s has no breaker", region)
	}
	fanout.SetBreakerClock(b, clock.now)
}

// TestBreakerFailsFastOnADeadEndpoint: the endpoint goes away (its
// listener closed, so every dial is refused) and 200 calls follow. Without
// a breaker each makes all its attempts, 1,000 dials with back-offs in
// between; with it, the calls after it opens fail at once, without a dial,
// with an error that says so and still reaches the refusal.
func TestBreakerFailsFastOnADeadEndpoint(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{})
	var dials atomic.Int64
	dialer := new(net.Dialer)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dialer.DialContext(ctx, network, addr)
	}}}
	pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.HTTPClient = hc })
	onFakeClock(t, pool, "us-east-1", &syncClock{t: time.Unix(1000, 0)}) // no probe during the test
	if res := identities(t, pool, "us-east-1", []string{"alive"}, 1); res[0].Err != nil {
		t.Fatalf("before the endpoint went away: %v", res[0].Err)
	}
	pool.CloseIdleConnections()
	srv.Close()
	before := dials.Load()

	const items, limit = 200, 8
	res := identities(t, pool, "us-east-1", keysN(items), limit)
	dialed := dials.Load() - before
	down := 0
	for _, r := range res {
		switch {
		case r.Err == nil:
			t.Fatalf("%s: succeeded against a closed endpoint", r.Key)
		case !errors.Is(r.Err, syscall.ECONNREFUSED):
			t.Errorf("%s: %v; want the refusal reachable through it", r.Key, r.Err)
		case errors.Is(r.Err, fanout.ErrThrottled) || errors.Is(r.Err, fanout.ErrRegionDisabled):
			t.Errorf("%s: %v; classified as throttling or a disabled region", r.Key, r.Err)
		case errors.Is(r.Err, fanout.ErrEndpointDown):
			down++
			if retry.NewStandard().IsErrorRetryable(r.Err) {
				t.Errorf("%s: the SDK's standard retryer would retry %v", r.Key, r.Err)
			}
		}
	}
	// Threshold failures open it; no more than limit-1 other attempts
	// were in flight then.
	most := int64(fanout.DefaultBreakerThreshold + limit - 1)
	t.Logf("%d of %d calls failed fast; %d dials after the endpoint went away (at most %d)", down, items, dialed, most)
	if dialed > most {
		t.Errorf("%d dials after the endpoint went away; want at most %d (threshold %d + %d in flight)", dialed, most, fanout.DefaultBreakerThreshold, limit-1)
	}
	if down < items-int(most) {
		t.Errorf("%d of %d calls failed with ErrEndpointDown; want at least %d", down, items, items-int(most))
	}
	if st := pool.Breakers()["us-east-1"]; st.State != fanout.BreakerOpen || st.Opened != 1 || st.Rejected < int64(items)-most {
		t.Errorf("breaker %+v; want open, once, with at least %d attempts failed at once", st, int64(items)-most)
	}
}

// TestBreakerEndsTheRetriesOnceOpen: one call at a time against an
// endpoint that resets every connection, a threshold of 3. The first call
// opens the breaker on its third attempt and ends there, without a fourth
// back-off; every later call fails without a request.
func TestBreakerEndsTheRetriesOnceOpen(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Fault: fanouttest.Reset}}})
	var delays atomic.Int64
	pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.Breaker.Threshold = 3
		o.Retryer = func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts, o.RateLimiter = fanout.DefaultMaxAttempts, ratelimit.None
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) {
					delays.Add(1)
					return time.Millisecond, nil
				})
			})
		}
	})
	onFakeClock(t, pool, "us-east-1", &syncClock{t: time.Unix(1000, 0)})
	res := identities(t, pool, "us-east-1", keysN(20), 1)
	for _, r := range res {
		if !errors.Is(r.Err, fanout.ErrEndpointDown) || !errors.Is(r.Err, syscall.ECONNRESET) {
			t.Errorf("%s: %v; want ErrEndpointDown with the reset", r.Key, r.Err)
		}
	}
	if n, d := srv.Stats().Total.Requests, delays.Load(); n != 3 || d != 2 {
		t.Errorf("%d requests, %d back-offs; want 3 (the threshold) and 2 (between them)", n, d)
	}
}

// TestBreakerProbes: once the cooldown has passed (on a fake clock), one
// attempt goes through. If the endpoint is still down, it alone reaches
// it and the breaker opens for another cooldown; if it is back, the probe
// closes the breaker and calls succeed again.
func TestBreakerProbes(t *testing.T) {
	t.Parallel()
	const cooldown = time.Minute
	for name, back := range map[string]bool{"still down": false, "back": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The endpoint resets every connection for the first hour of
			// its outage clock, which the test moves on only to bring it
			// back.
			outage := &syncClock{t: time.Unix(0, 0)}
			srv := newFake(t, fanouttest.Config{
				Clock:  outage.now,
				Faults: []fanouttest.Rule{{Until: time.Hour, Fault: fanouttest.Reset}},
			})
			pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
				o.Breaker.Threshold, o.Breaker.Cooldown = 2, cooldown
				o.Retryer = fastRetries
			})
			clock := &syncClock{t: time.Unix(1000, 0)}
			onFakeClock(t, pool, "us-east-1", clock)
			allDown := func(step string, calls int, want int64) {
				t.Helper()
				for _, r := range identities(t, pool, "us-east-1", keysN(calls), int64(calls)) {
					if !errors.Is(r.Err, fanout.ErrEndpointDown) {
						t.Fatalf("%s: %s: %v; want ErrEndpointDown", step, r.Key, r.Err)
					}
				}
				if n := srv.Stats().Total.Requests; n != want {
					t.Fatalf("%s: %d requests in all; want %d", step, n, want)
				}
			}
			allDown("opening", 1, 2) // one call: its two attempts
			clock.advance(cooldown - time.Nanosecond)
			allDown("before the cooldown", 10, 2)
			clock.advance(time.Nanosecond)
			if !back {
				allDown("probing", 10, 3) // the probe, alone
				allDown("after the probe", 10, 3)
				if st := pool.Breakers()["us-east-1"]; st.State != fanout.BreakerOpen || st.Opened != 2 {
					t.Errorf("breaker %+v; want open, twice", st)
				}
				return
			}
			outage.advance(time.Hour) // the endpoint is back
			if r := identities(t, pool, "us-east-1", []string{"probe"}, 1)[0]; r.Err != nil {
				t.Fatalf("the probe: %v", r.Err)
			}
			for _, r := range identities(t, pool, "us-east-1", keysN(10), 10) {
				if r.Err != nil || r.Value != "123456789012" {
					t.Errorf("%s: %q, %v; want the account", r.Key, r.Value, r.Err)
				}
			}
			if st := pool.Breakers()["us-east-1"]; st.State != fanout.BreakerClosed || st.Failures != 0 {
				t.Errorf("breaker %+v; want closed", st)
			}
		})
	}
}

// TestAPIErrorsNeverOpenTheBreaker: an answer, whatever its status, is the
// endpoint answering, and resets the count of failures in a row. Every
// call makes all of its attempts.
func TestAPIErrorsNeverOpenTheBreaker(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		faults []fanouttest.Rule // how a fanouttest Server answers; when nil, an ErrorServer answers
		status int               // with this status, type and body: what fanouttest does not give
		ctype  string
		body   string
		limit  int64
		// noAdaptive: the adaptive limit paces a client that sees nothing
		// but throttles down to a request every few seconds; the breaker
		// is what this test is about.
		noAdaptive bool
	}{
		"500 InternalFailure": {faults: []fanouttest.Rule{{Fault: fanouttest.Error500}}, limit: 4},
		"400 Throttling":      {faults: []fanouttest.Rule{{Fault: fanouttest.Throttled}}, limit: 4, noAdaptive: true},
		// fanouttest answers neither STS's 503 ServiceUnavailable nor a
		// proxy's HTML 502.
		"503 ServiceUnavailable": {status: http.StatusServiceUnavailable, ctype: "text/xml", limit: 4,
			body: `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>oops</Message></Error><RequestId>e</RequestId></ErrorResponse>`},
		"502 from a proxy": {status: http.StatusBadGateway, ctype: "text/html", body: "<html><body>502 Bad Gateway</body></html>", limit: 4},
		// Each call's first two attempts are reset, its others answered.
		// One call at a time, so that an answer comes between one call's
		// resets and the next's: never the three resets in a row that
		// would open it.
		"resets between answers": {faults: []fanouttest.Rule{
			{Attempts: 2, Fault: fanouttest.Reset},
			{Fault: fanouttest.Error500},
		}, limit: 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var endpoint string
			var requests func() int64
			if tc.faults != nil {
				srv := newFake(t, fanouttest.Config{Faults: tc.faults})
				endpoint, requests = srv.URL, func() int64 { return srv.Stats().Total.Requests }
			} else {
				srv, n := mototest.ErrorServer(t, tc.status, tc.ctype, tc.body)
				endpoint, requests = srv.URL, func() int64 { return int64(n.Load()) }
			}
			cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
				Credentials: credentials.NewStaticCredentialsProvider("AKIDBREAKER", "breaker-secret", "")}
			pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
				o.Breaker.Threshold = 3
				o.Retryer = fastRetries
				o.DisableAdaptive = tc.noAdaptive
			})
			const items = 10
			for _, r := range identities(t, pool, "us-east-1", keysN(items), tc.limit) {
				if r.Err == nil || errors.Is(r.Err, fanout.ErrEndpointDown) {
					t.Errorf("%s: %v; want the endpoint's answer", r.Key, r.Err)
				}
			}
			if n := requests(); n != items*fanout.DefaultMaxAttempts {
				t.Errorf("%d requests; want every attempt of every call (%d)", n, items*fanout.DefaultMaxAttempts)
			}
			if st := pool.Breakers()["us-east-1"]; st.State != fanout.BreakerClosed || st.Opened != 0 || st.Rejected != 0 {
				t.Errorf("breaker %+v; want closed, never opened", st)
			}
		})
	}
}

// TestBreakerIsPerClient: one region's endpoint resets every connection;
// its breaker opens, and the other region's calls, interleaved with them
// through the same endpoint URL and HTTP client, all succeed. (Run rather
// than Regions, which takes each region once.)
func TestBreakerIsPerClient(t *testing.T) {
	t.Parallel()
	const dead, alive = "eu-west-1", "us-east-1"
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Region: dead, Fault: fanouttest.Reset}}})
	pool := newPool(t, srv.AWSConfig(alive), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Retryer = fastRetries })
	clock := &syncClock{t: time.Unix(1000, 0)}
	onFakeClock(t, pool, dead, clock)
	onFakeClock(t, pool, alive, clock)
	regions := make([]string, 60)
	for i := range regions {
		regions[i] = []string{dead, alive}[i%2]
	}
	const limit = 8
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = limit })
	res, _ := f.Run(context.Background(), regions, fanout.Classified(func(ctx context.Context, region string) (string, error) {
		return callerAccount(ctx, pool.Get(region), region)
	}))
	down := 0
	for _, r := range res {
		switch {
		case r.Key == alive && r.Err != nil:
			t.Errorf("%s: %v; want an answer", r.Key, r.Err)
		case r.Key == dead && r.Err == nil:
			t.Errorf("%s: succeeded; want a failure", r.Key)
		case errors.Is(r.Err, fanout.ErrEndpointDown):
			down++
		}
	}
	most := fanout.DefaultBreakerThreshold + limit - 1
	st := srv.Stats()
	if n := st.Region[dead].Requests; down < 30-most || n > int64(most) {
		t.Errorf("%s: %d of 30 calls failed fast, %d requests; want at least %d and at most %d", dead, down, n, 30-most, most)
	}
	if n := st.Region[alive].Requests; n != 30 {
		t.Errorf("%s: %d requests; want 30, one per call", alive, n)
	}
	bs := pool.Breakers()
	if bs[dead].State != fanout.BreakerOpen || bs[alive].State != fanout.BreakerClosed || bs[alive].Opened != 0 || bs[alive].Rejected != 0 {
		t.Errorf("breakers %+v; want %s open and %s closed, never opened", bs, dead, alive)
	}
}

func TestBreakerOptions(t *testing.T) {
	t.Parallel()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDOPT", "opt-secret", "")}
	var seen fanout.BreakerOptions
	if _, err := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { seen = o.Breaker }); err != nil ||
		seen != (fanout.BreakerOptions{Threshold: fanout.DefaultBreakerThreshold, Cooldown: fanout.DefaultBreakerCooldown}) {
		t.Errorf("an option function saw %+v (%v); want the defaults", seen, err)
	}
	for name, tc := range map[string]struct {
		fn   func(*fanout.BreakerOptions)
		want string
	}{
		"threshold":         {func(o *fanout.BreakerOptions) { o.Threshold = 0 }, "BreakerOptions.Threshold is 0"},
		"cooldown":          {func(o *fanout.BreakerOptions) { o.Cooldown = 0 }, "BreakerOptions.Cooldown is 0s"},
		"negative cooldown": {func(o *fanout.BreakerOptions) { o.Cooldown = -time.Second }, "BreakerOptions.Cooldown is -1s"},
	} {
		if b, err := fanout.NewBreaker(tc.fn); b != nil || err == nil || !strings.HasPrefix(err.Error(), "fanout: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewBreaker, %s: %v, %v; want an error containing %q", name, b, err, tc.want)
		}
		p, err := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { tc.fn(&o.Breaker) })
		if p != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewClientPool, %s: %v, %v; want an error containing %q", name, p, err, tc.want)
		}
		// A bad breaker option does not matter when the breaker is off.
		if _, err := fanout.NewClientPool(cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
			tc.fn(&o.Breaker)
			o.DisableBreaker = true
		}); err != nil {
			t.Errorf("DisableBreaker with a bad Breaker, %s: %v", name, err)
		}
	}
	if b, err := fanout.NewBreaker(); err != nil || b.Stats() != (fanout.BreakerStats{State: fanout.BreakerClosed}) {
		t.Errorf("NewBreaker(): %+v, %v; want a closed breaker", b, err)
	}
}

// TestDisableBreaker: with the breaker off, a dead endpoint costs every
// call all of its attempts, as the SDK alone does.
func TestDisableBreaker(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Fault: fanouttest.Reset}}})
	pool := newPool(t, srv.AWSConfig("us-east-1"), sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
		o.DisableBreaker, o.Retryer = true, fastRetries
	})
	for _, r := range identities(t, pool, "us-east-1", keysN(4), 1) {
		var opErr *smithy.OperationError
		if !errors.As(r.Err, &opErr) || errors.Is(r.Err, fanout.ErrEndpointDown) || !errors.Is(r.Err, syscall.ECONNRESET) {
			t.Errorf("%s: %v; want the reset, without a breaker", r.Key, r.Err)
		}
	}
	if n := srv.Stats().Total.Requests; n != 4*fanout.DefaultMaxAttempts || len(pool.Breakers()) != 0 {
		t.Errorf("%d requests, breakers %v; want %d and none", n, pool.Breakers(), 4*fanout.DefaultMaxAttempts)
	}
}
