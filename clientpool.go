package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"regexp"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/middleware"
	"github.com/aws/smithy-go/tracing"
)

// DefaultMaxIdleConnsPerHost sizes the idle connections a ClientPool's HTTP
// client keeps per endpoint. The SDK's default, 10, makes every burst above
// 10 concurrent calls to one endpoint open new TCP and TLS connections.
const DefaultMaxIdleConnsPerHost = 128

// DefaultMaxAttempts is the number of attempts a pool's retryer makes per
// call, the first included, when the config sets none. A call throttled
// while its client's quota lets the client's other requests through goes
// on, to twice that (see AdaptiveRetryer): it lost a race for the quota's
// tokens, most often to the adaptive limit still learning the quota.
const DefaultMaxAttempts = 5

// DefaultResponseTimeout bounds how long each attempt of a pool client's
// call waits for the response's headers, so that an endpoint that takes a
// request and never answers fails the attempt, which the retryer may
// retry, instead of hanging the call until its context ends (the SDK's
// own HTTP client has no such bound). AWS APIs answer within a second or
// two; 30 seconds is well above that and above the longest long poll of
// SQS ReceiveMessage (WaitTimeSeconds 20). It is not a deadline on the
// body, so a slow download or an event stream is not cut. Calls that hold
// their answer longer need a higher PoolOptions.ResponseTimeout: SWF's
// polls (60 seconds), a synchronous Lambda Invoke (up to 15 minutes).
const DefaultResponseTimeout = 30 * time.Second

// PoolOptions configures a ClientPool; O is the service's client options
// type, such as ec2.Options. NewClientPool starts from the defaults each
// field names and applies its option functions in order.
type PoolOptions[O any] struct {
	// ClientOptions are applied to every client the pool builds, after the
	// pool's own settings, as NewFromConfig's optFns.
	ClientOptions []func(*O)

	// HTTPClient is shared by every client of the pool. Default (nil): the
	// config's, rebuilt with room for MaxIdleConnsPerHost idle connections
	// per endpoint and a ResponseTimeout when it is the SDK's (as
	// LoadDefaultConfig makes it, with AWS_CA_BUNDLE and proxy settings
	// kept), or NewHTTPClient's when the config has none. An HTTP client
	// of the caller's own, set here or in the config, is used as it is:
	// its timeouts are the caller's to set. Share one between pools to
	// share connections between services.
	HTTPClient aws.HTTPClient

	// MaxIdleConnsPerHost sizes the default HTTP client's idle
	// connections per endpoint; keep it at least the fan-out's Limit.
	// At least 1. Default: DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int

	// ResponseTimeout bounds each attempt's wait for the response headers
	// (http.Transport.ResponseHeaderTimeout) in the HTTP client the pool
	// builds; reading the body may take longer. Above 0. Default:
	// DefaultResponseTimeout. The pool cannot set it on an HTTP client of
	// the caller's own, so another value with such a client is an error.
	ResponseTimeout time.Duration

	// Retryer returns a new retryer; each client gets its own, so one
	// region's throttling cannot spend another's retries. Default: the
	// config's own Retryer if it has one, else the config's retry settings
	// (RetryMode and RetryMaxAttempts, which LoadDefaultConfig reads from
	// AWS_RETRY_MODE and AWS_MAX_ATTEMPTS or the shared config's
	// retry_mode and max_attempts), with DefaultMaxAttempts when none is
	// set, and without the retry quota: see NewRetryer. A retryer of the
	// caller's own keeps its quota, if it has one. With the adaptive limit
	// on, a call throttled while its client's quota serves it may go on to
	// twice the retryer's MaxAttempts; any other error ends it at the
	// retryer's own (see AdaptiveRetryer). A count of attempts set in the
	// config (max_attempts), on the client or on the call
	// (RetryMaxAttempts) is kept as it is, for every error.
	Retryer func() aws.Retryer

	// Accounts gives the pool clients in other accounts, through
	// ClientPool.Client. Default (nil): only the config's own account.
	Accounts *Accounts

	// KeepAccounts keeps every account's clients, adaptive limits,
	// breakers and credentials for the pool's life. By default an
	// account's are released once the AccountRegions calls that use it
	// are done with its items, so that memory follows the accounts in
	// flight, not the accounts in the organization; the next call to use
	// the account builds them again, and assumes its role again.
	KeepAccounts bool

	// Adaptive tunes the adaptive limit each client gets (see Adaptive):
	// it learns the service's quota from its throttles and paces the
	// client's requests under it. Default: DefaultAdaptiveOptions.
	// DisableAdaptive turns it off.
	Adaptive        AdaptiveOptions
	DisableAdaptive bool

	// Breaker tunes the breaker each client gets: after Threshold
	// connection-level failures in a row (refused, reset, timed out; an
	// API error is the endpoint answering) the client's attempts fail at
	// once with ErrEndpointDown, instead of each call retrying a dead
	// endpoint, until a probe after Cooldown gets an answer. Default:
	// DefaultBreakerOptions. DisableBreaker turns it off.
	Breaker        BreakerOptions
	DisableBreaker bool

	// TracerProvider and MeterProvider, when not nil, are set on every
	// client the pool builds (its options' fields of those names, which
	// every SDK client has), so that each span and measurement the SDK
	// makes also names the client's region, as cloud.region, and its
	// account, as cloud.account.id: on spans always, on measurements
	// with AccountAttribute. The SDK's own carry neither, so a fan-out's
	// regions could not be told apart. The pool's adaptive limits and
	// breakers report to the MeterProvider, and mark throttled attempts
	// on the SDK's spans (see the package documentation, Telemetry).
	// Regions and AccountRegions calls whose Options have no provider use
	// the pool's. Default: none.
	TracerProvider tracing.TracerProvider
	MeterProvider  metrics.MeterProvider

	// AccountAttribute adds cloud.account.id to the measurements of the
	// clients in other accounts than the config's: one series per
	// account, which across an organization is many.
	AccountAttribute bool

	// Logger, when not nil, is told at Warn what a user must hear: a
	// breaker that opened, an account whose role could not be assumed, a
	// call whose every region answered as not enabled, an item that was
	// still throttled when its retries ran out. Regions and AccountRegions
	// calls whose Options have no Logger use it. Default: none.
	Logger *slog.Logger
}

// NewHTTPClient returns an HTTP client with the SDK's default transport
// settings (timeouts, TLS), room for maxIdleConnsPerHost idle connections
// per endpoint, so that a fan-out reuses its connections instead of
// opening new ones on every burst, and DefaultResponseTimeout to the
// response headers (its Transport is an *http.Transport, to change it);
// a maxIdleConnsPerHost below 1 is an error.
func NewHTTPClient(maxIdleConnsPerHost int) (*http.Client, error) {
	if maxIdleConnsPerHost < 1 {
		return nil, fmt.Errorf("fanout: NewHTTPClient(%d): want 1 or more idle connections per host", maxIdleConnsPerHost)
	}
	hc, _ := sizedHTTPClient(nil, maxIdleConnsPerHost, DefaultResponseTimeout)
	return hc.(*http.Client), nil
}

// sizedHTTPClient returns base with room for n idle connections per
// endpoint and a response timeout, and whether it built a new client. The
// SDK's BuildableClient (LoadDefaultConfig's, carrying AWS_CA_BUNDLE and
// proxy settings) is rebuilt from a copy of its transport; another client
// of the user's is theirs.
func sizedHTTPClient(base aws.HTTPClient, n int, timeout time.Duration) (aws.HTTPClient, bool) {
	b, ok := base.(*awshttp.BuildableClient)
	switch {
	case base == nil:
		b = awshttp.NewBuildableClient()
	case !ok:
		return base, false
	}
	tr := b.GetTransport()
	tr.MaxIdleConnsPerHost = n
	tr.MaxIdleConns = 0 // no limit across endpoints: a fan-out talks to many
	// To the headers, not a whole-request timeout: that would cut long
	// bodies and streams.
	tr.ResponseHeaderTimeout = timeout
	return &http.Client{Transport: tr, Timeout: b.GetTimeout()}, true
}

// NewRetryer returns the SDK's standard retryer, with its jittered
// exponential backoff and DefaultMaxAttempts attempts, and without the
// client-side retry quota: under a fan-out, the quota's 500 tokens drain in
// seconds and calls then fail with "retry quota exceeded" instead of being
// retried. The fan-out's Limit bounds the load instead.
func NewRetryer() aws.Retryer { return newRetryer(aws.RetryModeStandard, DefaultMaxAttempts) }

// retryerFor is a pool's default retryer for cfg (PoolOptions.Retryer).
func retryerFor(cfg aws.Config) func() aws.Retryer {
	if cfg.Retryer != nil {
		return cfg.Retryer
	}
	attempts := DefaultMaxAttempts
	if cfg.RetryMaxAttempts != 0 {
		attempts = cfg.RetryMaxAttempts
	}
	return func() aws.Retryer { return newRetryer(cfg.RetryMode, attempts) }
}

// newRetryer is the SDK's retryer of the given mode ("" is standard) and
// attempts, without the retry quota.
func newRetryer(mode aws.RetryMode, attempts int) aws.Retryer {
	standard := func(o *retry.StandardOptions) {
		o.MaxAttempts = attempts
		o.RateLimiter = ratelimit.None
	}
	if mode == aws.RetryModeAdaptive {
		return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
			o.StandardOptions = append(o.StandardOptions, standard)
		})
	}
	return retry.NewStandard(standard)
}

// ClientPool hands out one service client per account and region, built
// on first use and then shared. All its clients share one HTTP client and,
// per account, one credentials cache; each has its own retryer. It is safe
// for concurrent use.
type ClientPool[C any] struct {
	base     aws.Config
	accounts *Accounts
	build    func(aws.Config, tracing.TracerProvider, metrics.MeterProvider) C
	tel      *poolTel // nil: no telemetry

	adaptive *AdaptiveOptions // nil when disabled

	clients sync.Map // acctRegion to *lazy[C]: read without a lock by every call

	mu       sync.Mutex
	limiters map[acctRegion]*Adaptive

	breaker  *BreakerOptions // nil when disabled
	breakers map[acctRegion]*Breaker

	verified verifier // accounts whose credentials are known to work

	keepAccounts bool           // PoolOptions.KeepAccounts
	held         map[string]int // accounts held by AccountRegions calls running, under mu
}

// acctRegion is one client of a pool, and one item of the AWS fan-outs: an
// account (empty for the config's own) and a region.
type acctRegion struct{ account, region string }

// String is the target's key in Stats and Breakers: the region for the
// config's own account, "account/region" for others.
func (t acctRegion) String() string {
	if t.account == "" {
		return t.region
	}
	return t.account + "/" + t.region
}

// lazy is a value built once, by build, on first use.
type lazy[V any] struct {
	once    sync.Once
	build   func() (V, error)
	v       V
	err     error
	checked atomic.Bool // its key passed Client's checks; Get checks nothing
}

func (l *lazy[V]) get() (V, error) {
	l.once.Do(func() {
		defer recoverInto(&l.err) // a constructor's panic is the value's error, for good
		l.v, l.err = l.build()
		l.build = nil
	})
	return l.v, l.err
}

// NewClientPool returns a pool of the clients that newFn builds, such as
// ec2.NewFromConfig, from copies of cfg, or an error that names an option
// that cannot be honoured. cfg's credentials are wrapped in one
// aws.CredentialsCache unless they already are one.
func NewClientPool[C, O any](cfg aws.Config, newFn func(aws.Config, ...func(*O)) C,
	optFns ...func(*PoolOptions[O])) (*ClientPool[C], error) {
	o := PoolOptions[O]{
		MaxIdleConnsPerHost: DefaultMaxIdleConnsPerHost,
		ResponseTimeout:     DefaultResponseTimeout,
		Retryer:             retryerFor(cfg),
		Adaptive:            DefaultAdaptiveOptions(),
		Breaker:             DefaultBreakerOptions(),
	}
	if err := apply("NewClientPool", &o, optFns); err != nil {
		return nil, err
	}
	if err := o.validate(newFn == nil); err != nil {
		return nil, err
	}
	if err := o.resolveHTTPClient(cfg.HTTPClient); err != nil {
		return nil, err
	}
	cfg.HTTPClient = o.HTTPClient
	cfg.Retryer = o.Retryer
	cfg.Credentials = cached(cfg.Credentials)
	cfg.APIOptions = withRecoverAttempts(cfg.APIOptions)
	setProviders, err := providersSetter[O](o.TracerProvider, o.MeterProvider)
	if err != nil {
		return nil, err
	}
	p := &ClientPool[C]{
		base:     cfg,
		accounts: o.Accounts,
		build: func(c aws.Config, tp tracing.TracerProvider, mp metrics.MeterProvider) C {
			fns := o.ClientOptions
			if setProviders != nil {
				// The pool's first, as its other settings: a ClientOptions
				// function of the caller's may still replace them.
				fns = append([]func(*O){func(so *O) { setProviders(so, tp, mp) }}, fns...)
			}
			// Last, to see what the caller's functions leave.
			return newFn(c, append(fns[:len(fns):len(fns)], poolAPIOptions[O])...)
		},
		limiters:     make(map[acctRegion]*Adaptive),
		breakers:     make(map[acctRegion]*Breaker),
		keepAccounts: o.KeepAccounts,
		held:         make(map[string]int),
	}
	if o.KeepAccounts && o.Accounts != nil {
		o.Accounts.keepAll.Store(true) // another pool's release must not drop this one's credentials
	}
	if !o.DisableAdaptive {
		p.adaptive = &o.Adaptive
	}
	if o.TracerProvider != nil || o.MeterProvider != nil || o.Logger != nil {
		p.tel = &poolTel{tp: o.TracerProvider, mp: o.MeterProvider, log: o.Logger, accountMetric: o.AccountAttribute}
	}
	if !o.DisableBreaker {
		p.breaker = &o.Breaker
	}
	return p, nil
}

// resolveHTTPClient sets o.HTTPClient to the client the pool shares,
// built from the config's when that is the SDK's, and fails when
// ResponseTimeout was set for a client the pool does not build.
func (o *PoolOptions[O]) resolveHTTPClient(cfgClient aws.HTTPClient) error {
	where := "PoolOptions.HTTPClient"
	if o.HTTPClient == nil {
		var built bool
		if o.HTTPClient, built = sizedHTTPClient(cfgClient, o.MaxIdleConnsPerHost, o.ResponseTimeout); built {
			return nil
		}
		where = "the config's HTTPClient"
	}
	if o.ResponseTimeout != DefaultResponseTimeout {
		return fmt.Errorf("fanout: PoolOptions.ResponseTimeout is %v, but %s is the caller's own (a %T), which the pool uses as it is; set the timeout on that client", o.ResponseTimeout, where, o.HTTPClient)
	}
	return nil
}

func (o *PoolOptions[O]) validate(nilNewFn bool) error {
	switch {
	case nilNewFn:
		return errors.New("fanout: NewClientPool: nil client constructor (pass one like ec2.NewFromConfig)")
	case o.MaxIdleConnsPerHost < 1:
		return fmt.Errorf("fanout: PoolOptions.MaxIdleConnsPerHost is %d; want 1 or more", o.MaxIdleConnsPerHost)
	case o.ResponseTimeout <= 0:
		return fmt.Errorf("fanout: PoolOptions.ResponseTimeout is %v; want a time above 0 to wait for a response's headers", o.ResponseTimeout)
	case o.Retryer == nil:
		return errors.New("fanout: PoolOptions.Retryer is nil; leave the default (the config's retry settings) or set one")
	case !o.DisableAdaptive:
		if err := o.Adaptive.validate(); err != nil {
			return err
		}
	}
	if o.DisableBreaker {
		return nil
	}
	return o.Breaker.validate()
}

// cached wraps p in a credentials cache, unless it is one. Between the two
// goes recovering: the cache retrieves in a goroutine of its own and
// re-panics there, where nothing can recover.
func cached(p aws.CredentialsProvider) aws.CredentialsProvider {
	switch p.(type) {
	case nil, *aws.CredentialsCache, aws.AnonymousCredentials:
		return p
	}
	return aws.NewCredentialsCache(recovering{p})
}

// recovering is a credentials provider whose panic is its error, a
// *PanicError naming the provider's type.
type recovering struct{ aws.CredentialsProvider }

func (p recovering) Retrieve(ctx context.Context) (creds aws.Credentials, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("fanout: credentials provider %T: %w", p.CredentialsProvider, &PanicError{Value: v, Stack: debug.Stack()})
		}
	}()
	return p.CredentialsProvider.Retrieve(ctx)
}

// withRecoverAttempts returns apiOptions, not shared with the caller's
// slice, with the pool's API options (ensurePoolOptions) added.
func withRecoverAttempts(apiOptions []func(*middleware.Stack) error) []func(*middleware.Stack) error {
	return append(apiOptions[:len(apiOptions):len(apiOptions)], ensurePoolOptions)
}

// recoverAttempts is an API option that makes a panic in an attempt (the
// HTTP client, a deserializer, a middleware of the caller's below it) that
// attempt's error, a *PanicError with the stack. It runs inside the retry
// middleware, which gives back the attempt's tokens (its place in the
// adaptive limit, its breaker probe) only when the attempt returns.
func recoverAttempts(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("fanout.RecoverAttempt",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
			out middleware.DeserializeOutput, md middleware.Metadata, err error) {
			defer recoverInto(&err)
			return next.HandleDeserialize(ctx, in)
		}), middleware.Before)
}

// Get returns the client for region in the config's own account. It does
// not check region, and returns the zero C if the client could not be
// built (its constructor panicked); Client returns those errors.
func (p *ClientPool[C]) Get(region string) C {
	if p == nil {
		var zero C
		return zero
	}
	c, _ := p.client(acctRegion{region: region}, nil, false)
	return c
}

// Client returns the client for account and region. An empty account means
// the config's own; any other needs the pool's Accounts. It fails for a
// malformed account ID or region name, naming it.
func (p *ClientPool[C]) Client(account, region string) (C, error) {
	var zero C
	if p == nil {
		return zero, errNilPool
	}
	if l, ok := p.clients.Load(acctRegion{account, region}); ok && l.(*lazy[C]).checked.Load() {
		return l.(*lazy[C]).get()
	}
	if err := checkRegion(region); err != nil {
		return zero, err
	}
	if account == "" {
		return p.client(acctRegion{region: region}, nil, true)
	}
	if p.accounts == nil {
		return zero, fmt.Errorf("fanout: client for account %q: the pool has no Accounts (PoolOptions.Accounts)", account)
	}
	if err := checkAccount(account); err != nil {
		return zero, err
	}
	return p.client(acctRegion{account, region}, func() (aws.CredentialsProvider, error) {
		return p.accounts.Credentials(account)
	}, true)
}

// client returns t's client, built on first use with creds; checked says
// t passed Client's checks, so that later calls need not repeat them.
func (p *ClientPool[C]) client(t acctRegion, creds func() (aws.CredentialsProvider, error), checked bool) (C, error) {
	v, ok := p.clients.Load(t)
	if !ok {
		v, _ = p.clients.LoadOrStore(t, &lazy[C]{build: func() (C, error) { return p.newClient(t, creds) }})
	}
	l := v.(*lazy[C])
	if checked && !l.checked.Load() {
		l.checked.Store(true)
	}
	return l.get()
}

// newClient builds the client for t, with its credentials (nil creds: the
// config's own), adaptive limit and breaker.
func (p *ClientPool[C]) newClient(t acctRegion, creds func() (aws.CredentialsProvider, error)) (C, error) {
	var zero C
	cp := p.base.Credentials
	if creds != nil {
		var err error
		if cp, err = creds(); err != nil {
			return zero, err
		}
	}
	cfg := p.base
	cfg.Region = t.region
	cfg.Credentials = cp
	ct, tp, mp := p.tel.forClient(t)
	if p.adaptive != nil {
		a, err := newAdaptive(*p.adaptive) // validated by NewClientPool
		if err != nil {
			return zero, err
		}
		p.mu.Lock()
		p.limiters[t] = a
		p.mu.Unlock()
		newRetryer := cfg.Retryer
		cfg.Retryer = func() aws.Retryer {
			return &adaptiveRetryer{RetryerV2: asV2(newRetryer()), a: a, tel: ct, extend: true}
		}
	}
	// Outside the adaptive limit: an attempt the breaker fails must not
	// wait for a place among the requests in flight.
	var err error
	if cfg.Retryer, err = p.withBreaker(t, cfg.Retryer, ct); err != nil {
		return zero, err
	}
	return p.build(cfg, tp, mp), nil
}

// Stats returns a snapshot of each client's adaptive limit, keyed by
// region for the config's own account and "account/region" for others.
// An account the pool released (see PoolOptions.KeepAccounts) is not in
// it: RegionResult.Throttles keeps each item's count.
func (p *ClientPool[C]) Stats() map[string]AdaptiveStats {
	if p == nil {
		return map[string]AdaptiveStats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	stats := make(map[string]AdaptiveStats, len(p.limiters))
	for t, a := range p.limiters {
		stats[t.String()] = a.Stats()
	}
	return stats
}

// CloseIdleConnections closes the idle connections of the pool's HTTP
// client, when it can: call it when a short-lived tool is done.
func (p *ClientPool[C]) CloseIdleConnections() {
	if p == nil {
		return
	}
	if c, ok := p.base.HTTPClient.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Len returns the number of clients the pool holds.
func (p *ClientPool[C]) Len() int {
	if p == nil {
		return 0
	}
	n := 0
	p.clients.Range(func(_, _ any) bool {
		n++
		return true
	})
	return n
}

// AccountConfig returns Config in account: with the account's
// credentials (its role assumed, as the pool's clients there use them;
// the config's own for "" or the config's own account), for calls the
// pool does not make, such as discover.ListRegions. It fails for a pool
// without Accounts, or an account ID that is not one.
func (p *ClientPool[C]) AccountConfig(account string) (aws.Config, error) {
	if p == nil {
		return aws.Config{}, errNilPool
	}
	cfg := p.base.Copy()
	if account == "" {
		return cfg, nil
	}
	if p.accounts == nil {
		return aws.Config{}, fmt.Errorf("fanout: AccountConfig(%q): the pool has no Accounts (PoolOptions.Accounts)", account)
	}
	creds, err := p.accounts.Credentials(account)
	if err != nil {
		return aws.Config{}, err
	}
	cfg.Credentials = creds
	return cfg, nil
}

// Config returns a copy of the config the pool builds its clients from,
// with its shared HTTP client, retryer and credentials cache.
func (p *ClientPool[C]) Config() aws.Config {
	if p == nil {
		return aws.Config{}
	}
	return p.base.Copy()
}

var accountRE = regexp.MustCompile(`^[0-9]{12}$`)

func checkAccount(account string) error {
	if !accountRE.MatchString(account) {
		return fmt.Errorf("fanout: %q is not an AWS account ID (12 digits)", account)
	}
	return nil
}

// hold marks account in use by an AccountRegions call, until release.
func (p *ClientPool[C]) hold(account string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held[account]++
}

// release ends a hold on account; with the last, unless KeepAccounts, the
// account's clients, adaptive limits, breakers and credentials go. A
// client handed out before stays usable: the pool only forgets it.
func (p *ClientPool[C]) release(account string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held[account]--; p.held[account] > 0 {
		return
	}
	delete(p.held, account)
	if p.keepAccounts || account == "" {
		return
	}
	p.clients.Range(func(k, _ any) bool {
		if k.(acctRegion).account == account {
			p.clients.Delete(k)
		}
		return true
	})
	for t := range p.limiters {
		if t.account == account {
			delete(p.limiters, t)
		}
	}
	for t := range p.breakers {
		if t.account == account {
			delete(p.breakers, t)
		}
	}
	p.accounts.forget(account)
}

// poolAPIOptions puts back the pool's API options (ensurePoolOptions) a
// ClientOptions function of the caller's replaced rather than added to,
// and gives a client whose options end with a RetryMaxAttempts of their
// own (from the config's max_attempts or a ClientOptions function) the
// ownAttempts API option: the count is the client's for every error.
// Options without the fields are left alone.
func poolAPIOptions[O any](o *O) {
	v := reflect.ValueOf(o).Elem()
	if v.Kind() != reflect.Struct {
		return
	}
	api := v.FieldByName("APIOptions")
	if !api.IsValid() || api.Type() != reflect.TypeFor[[]func(*middleware.Stack) error]() {
		return
	}
	fns := api.Interface().([]func(*middleware.Stack) error)
	fns = append(fns[:len(fns):len(fns)], ensurePoolOptions)
	if n := v.FieldByName("RetryMaxAttempts"); n.IsValid() && n.Kind() == reflect.Int && n.Int() != 0 {
		fns = append(fns, ownAttempts)
	}
	api.Set(reflect.ValueOf(fns))
}

// ensurePoolOptions adds the pool's API options, recoverAttempts and
// guardCalls (adaptive.go), to a stack that lacks them: the config's
// APIOptions carry it, and poolAPIOptions again after the caller's
// ClientOptions.
func ensurePoolOptions(stack *middleware.Stack) error {
	if _, ok := stack.Deserialize.Get("fanout.RecoverAttempt"); !ok {
		if err := recoverAttempts(stack); err != nil {
			return err
		}
	}
	if _, ok := stack.Initialize.Get("fanout.AdaptiveGuard"); !ok {
		return guardCalls(stack)
	}
	return nil
}
