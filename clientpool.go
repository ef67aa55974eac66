package fanout

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// DefaultMaxIdleConnsPerHost sizes the idle connections a ClientPool's HTTP
// client keeps per endpoint. The SDK's default, 10, makes every burst above
// 10 concurrent calls to one endpoint open new TCP and TLS connections.
const DefaultMaxIdleConnsPerHost = 128

// DefaultMaxAttempts is the number of attempts a pool's retryer makes per
// call, the first included.
const DefaultMaxAttempts = 5

// PoolOptions configures a ClientPool; O is the service's client options
// type, such as ec2.Options. NewClientPool starts from the defaults each
// field names and applies its option functions in order.
type PoolOptions[O any] struct {
	// ClientOptions are applied to every client the pool builds, after the
	// pool's own settings, as NewFromConfig's optFns.
	ClientOptions []func(*O)

	// HTTPClient is shared by every client of the pool. Default (nil): the
	// config's, with room for MaxIdleConnsPerHost idle connections per
	// endpoint when it is the SDK's (as LoadDefaultConfig makes it, with
	// AWS_CA_BUNDLE and proxy settings kept), or NewHTTPClient's when the
	// config has none. Share one between pools to share connections
	// between services.
	HTTPClient aws.HTTPClient

	// MaxIdleConnsPerHost sizes the default HTTP client's idle
	// connections per endpoint; keep it at least the fan-out's Limit.
	// At least 1. Default: DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int

	// Retryer returns a new retryer; each client gets its own, so one
	// region's throttling cannot spend another's retries. Default:
	// NewRetryer.
	Retryer func() aws.Retryer

	// Accounts gives the pool clients in other accounts, through
	// ClientPool.Client. Default (nil): only the config's own account.
	Accounts *Accounts

	// Adaptive tunes the adaptive limit each client gets: an AIMD limit
	// on its requests in flight that backs off when the service throttles
	// and recovers on success. Default: DefaultAdaptiveOptions.
	// DisableAdaptive turns it off.
	Adaptive        AdaptiveOptions
	DisableAdaptive bool
}

// NewHTTPClient returns an HTTP client with the SDK's default transport
// settings (timeouts, TLS) and room for maxIdleConnsPerHost idle
// connections per endpoint, so that a fan-out reuses its connections
// instead of opening new ones on every burst; a maxIdleConnsPerHost below
// 1 is an error.
func NewHTTPClient(maxIdleConnsPerHost int) (*http.Client, error) {
	if maxIdleConnsPerHost < 1 {
		return nil, fmt.Errorf("fanout: NewHTTPClient(%d): want 1 or more idle connections per host", maxIdleConnsPerHost)
	}
	return sizedHTTPClient(nil, maxIdleConnsPerHost).(*http.Client), nil
}

// sizedHTTPClient returns base with room for n idle connections per
// endpoint. The SDK's BuildableClient (LoadDefaultConfig's, carrying
// AWS_CA_BUNDLE and proxy settings) is rebuilt from a copy of its
// transport; another client of the user's is theirs to size.
func sizedHTTPClient(base aws.HTTPClient, n int) aws.HTTPClient {
	b, ok := base.(*awshttp.BuildableClient)
	switch {
	case base == nil:
		b = awshttp.NewBuildableClient()
	case !ok:
		return base
	}
	tr := b.GetTransport()
	tr.MaxIdleConnsPerHost = n
	tr.MaxIdleConns = 0 // no limit across endpoints: a fan-out talks to many
	return &http.Client{Transport: tr, Timeout: b.GetTimeout()}
}

// NewRetryer returns the SDK's standard retryer, with its jittered
// exponential backoff and DefaultMaxAttempts attempts, and without the
// client-side retry quota: under a fan-out, the quota's 500 tokens drain in
// seconds and calls then fail with "retry quota exceeded" instead of being
// retried. The fan-out's Limit bounds the load instead.
func NewRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = DefaultMaxAttempts
		o.RateLimiter = ratelimit.None
	})
}

// ClientPool hands out one service client per account and region, built
// on first use and then shared. All its clients share one HTTP client and,
// per account, one credentials cache; each has its own retryer. It is safe
// for concurrent use.
type ClientPool[C any] struct {
	base     aws.Config
	accounts *Accounts
	build    func(aws.Config) C

	adaptive *AdaptiveOptions // nil when disabled

	mu       sync.Mutex
	clients  map[target]*lazy[C]
	limiters map[target]*Adaptive

	verified verifier // accounts whose credentials are known to work
}

// target is one client of a pool, and one item of the AWS fan-outs: an
// account (empty for the config's own) and a region.
type target struct{ account, region string }

// lazy is a value built once, on first use.
type lazy[V any] struct {
	once sync.Once
	v    V
	err  error
}

func (l *lazy[V]) get(build func() (V, error)) (V, error) {
	l.once.Do(func() {
		defer recoverInto(&l.err) // a constructor's panic is the value's error, for good
		l.v, l.err = build()
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
		Retryer:             NewRetryer,
		Adaptive:            DefaultAdaptiveOptions(),
	}
	for _, fn := range optFns {
		fn(&o)
	}
	if err := o.validate(newFn == nil); err != nil {
		return nil, err
	}
	if o.HTTPClient == nil {
		o.HTTPClient = sizedHTTPClient(cfg.HTTPClient, o.MaxIdleConnsPerHost)
	}
	cfg.HTTPClient = o.HTTPClient
	cfg.Retryer = o.Retryer
	cfg.Credentials = cached(cfg.Credentials)
	p := &ClientPool[C]{
		base:     cfg,
		accounts: o.Accounts,
		build:    func(c aws.Config) C { return newFn(c, o.ClientOptions...) },
		clients:  make(map[target]*lazy[C]),
		limiters: make(map[target]*Adaptive),
	}
	if !o.DisableAdaptive {
		p.adaptive = &o.Adaptive
	}
	return p, nil
}

func (o *PoolOptions[O]) validate(nilNewFn bool) error {
	switch {
	case nilNewFn:
		return errors.New("fanout: NewClientPool: nil client constructor (pass one like ec2.NewFromConfig)")
	case o.MaxIdleConnsPerHost < 1:
		return fmt.Errorf("fanout: PoolOptions.MaxIdleConnsPerHost is %d; want 1 or more", o.MaxIdleConnsPerHost)
	case o.Retryer == nil:
		return errors.New("fanout: PoolOptions.Retryer is nil; leave the default (NewRetryer) or set one")
	case o.DisableAdaptive:
		return nil
	}
	return o.Adaptive.validate()
}

func cached(p aws.CredentialsProvider) aws.CredentialsProvider {
	switch p.(type) {
	case nil, *aws.CredentialsCache, aws.AnonymousCredentials:
		return p
	}
	return aws.NewCredentialsCache(p)
}

// Get returns the client for region in the config's own account. It does
// not check region, and returns the zero C if the client could not be
// built (its constructor panicked); Client returns those errors.
func (p *ClientPool[C]) Get(region string) C {
	c, _ := p.client(target{region: region}, p.baseCredentials)
	return c
}

func (p *ClientPool[C]) baseCredentials() (aws.CredentialsProvider, error) {
	return p.base.Credentials, nil
}

// Client returns the client for account and region. An empty account means
// the config's own; any other needs the pool's Accounts. It fails for a
// malformed account ID or region name, naming it.
func (p *ClientPool[C]) Client(account, region string) (C, error) {
	var zero C
	if err := checkRegion(region); err != nil {
		return zero, err
	}
	if account == "" {
		return p.client(target{region: region}, p.baseCredentials)
	}
	if p.accounts == nil {
		return zero, fmt.Errorf("fanout: client for account %q: the pool has no Accounts (PoolOptions.Accounts)", account)
	}
	if err := checkAccount(account); err != nil {
		return zero, err
	}
	return p.client(target{account, region}, func() (aws.CredentialsProvider, error) {
		return p.accounts.Credentials(account)
	})
}

func (p *ClientPool[C]) client(t target, creds func() (aws.CredentialsProvider, error)) (C, error) {
	p.mu.Lock()
	l, ok := p.clients[t]
	if !ok {
		l = new(lazy[C])
		p.clients[t] = l
	}
	p.mu.Unlock()
	return l.get(func() (C, error) {
		cp, err := creds()
		if err != nil {
			var zero C
			return zero, err
		}
		cfg := p.base
		cfg.Region = t.region
		cfg.Credentials = cp
		if p.adaptive != nil {
			a, err := newAdaptive(*p.adaptive) // validated by NewClientPool
			if err != nil {
				var zero C
				return zero, err
			}
			p.mu.Lock()
			p.limiters[t] = a
			p.mu.Unlock()
			newRetryer := cfg.Retryer
			cfg.Retryer = func() aws.Retryer { return AdaptiveRetryer(newRetryer(), a) }
		}
		return p.build(cfg), nil
	})
}

// Stats returns a snapshot of each client's adaptive limit, keyed by
// region for the config's own account and "account/region" for others.
func (p *ClientPool[C]) Stats() map[string]AdaptiveStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	stats := make(map[string]AdaptiveStats, len(p.limiters))
	for t, a := range p.limiters {
		key := t.region
		if t.account != "" {
			key = t.account + "/" + t.region
		}
		stats[key] = a.Stats()
	}
	return stats
}

// CloseIdleConnections closes the idle connections of the pool's HTTP
// client, when it can: call it when a short-lived tool is done.
func (p *ClientPool[C]) CloseIdleConnections() {
	if c, ok := p.base.HTTPClient.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Len returns the number of clients the pool holds.
func (p *ClientPool[C]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}

// Config returns a copy of the config the pool builds its clients from,
// with its shared HTTP client, retryer and credentials cache.
func (p *ClientPool[C]) Config() aws.Config { return p.base.Copy() }

var accountRE = regexp.MustCompile(`^[0-9]{12}$`)

func checkAccount(account string) error {
	if !accountRE.MatchString(account) {
		return fmt.Errorf("fanout: %q is not an AWS account ID (12 digits)", account)
	}
	return nil
}
