package fanout

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/tracing"

	"github.com/awsfanout/fanout/internal/partition"
)

// The defaults of AccountOptions. DefaultRoleName is the role AWS
// Organizations creates in the accounts it creates.
const (
	DefaultRoleName               = "OrganizationAccountAccessRole"
	DefaultSessionName            = "fanout"
	DefaultExpiryWindow           = time.Minute
	DefaultExpiryWindowJitterFrac = 0.5
)

// AccountOptions configures Accounts. NewAccounts starts from the defaults
// each field names and applies its option functions in order.
type AccountOptions struct {
	// RoleName is the role assumed in every account, as
	// arn:PARTITION:iam::ACCOUNT:role/RoleName. Default: DefaultRoleName.
	RoleName string

	// RoleARN, when not nil, returns the role ARN to assume in an account,
	// instead of RoleName's.
	RoleARN func(account string) string

	// ExternalID, when not empty, is passed to AssumeRole.
	ExternalID string

	// SessionName is the role session's name: 2 to 64 of letters, digits
	// and +=,.@_- as STS requires. Default: DefaultSessionName.
	SessionName string

	// Duration is how long the assumed credentials last: 0 for the SDK's
	// default (15 minutes), or 15 minutes to 12 hours.
	Duration time.Duration

	// ExpiryWindow refreshes credentials this long before they expire, and
	// ExpiryWindowJitterFrac (0 to 1) spreads the refreshes of many
	// accounts over that fraction of the window. Defaults:
	// DefaultExpiryWindow and DefaultExpiryWindowJitterFrac.
	ExpiryWindow           time.Duration
	ExpiryWindowJitterFrac float64

	// STSOptions are applied to the STS client that assumes the roles.
	STSOptions []func(*sts.Options)

	// AssumeOwnAccount assumes the role in the config's own account too.
	// By default that account uses the config's credentials as they are:
	// an organization's management account normally has no member role
	// (OrganizationAccountAccessRole is made in the accounts the
	// organization creates, not in its own). The own account is learnt
	// from sts GetCallerIdentity, asked once, when the first account's
	// credentials are.
	AssumeOwnAccount bool
}

var (
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	roleNameRE    = regexp.MustCompile(`^([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$`) // an IAM role name, after an optional path
)

func (o *AccountOptions) validate() error {
	switch {
	case o.RoleName == "" && o.RoleARN == nil:
		return errors.New("fanout: AccountOptions.RoleName is empty and RoleARN is nil; name the role to assume")
	case o.RoleARN == nil && !roleNameRE.MatchString(o.RoleName):
		return fmt.Errorf("fanout: AccountOptions.RoleName %q is not an IAM role name (letters, digits and +=,.@_-, after an optional path/)", o.RoleName)
	case !sessionNameRE.MatchString(o.SessionName):
		return fmt.Errorf("fanout: AccountOptions.SessionName %q is not 2 to 64 of letters, digits and +=,.@_-", o.SessionName)
	case o.Duration != 0 && (o.Duration < 15*time.Minute || o.Duration > 12*time.Hour):
		return fmt.Errorf("fanout: AccountOptions.Duration is %v; want 0 (the SDK's 15 minutes) or 15m to 12h", o.Duration)
	case o.ExpiryWindow < 0:
		return fmt.Errorf("fanout: AccountOptions.ExpiryWindow is %v; want 0 or more", o.ExpiryWindow)
	case !(o.ExpiryWindowJitterFrac >= 0 && o.ExpiryWindowJitterFrac <= 1):
		return fmt.Errorf("fanout: AccountOptions.ExpiryWindowJitterFrac is %v; want 0 to 1", o.ExpiryWindowJitterFrac)
	}
	return nil
}

// Accounts gives credentials for other accounts by assuming a role in each,
// with one aws.CredentialsCache per account: each account assumes its role
// about once per credential lifetime, whatever the number of regions, for
// as long as a pool keeps the account (a pool releases an account once
// its AccountRegions calls are done with it, unless
// PoolOptions.KeepAccounts: the next call assumes the role again). The
// config's own account uses the config's credentials, unless
// AccountOptions.AssumeOwnAccount: right when the config is the
// management account's, which has no member role; from a delegated admin
// or a tooling account, where the member role grants what the config's
// identity may not, set AssumeOwnAccount. AccountOptions.RoleARN overrides
// the role per account. It is safe for concurrent use.
type Accounts struct {
	opts      AccountOptions
	partition string
	sts       *sts.Client

	base aws.CredentialsProvider // the config's credentials

	mu    sync.Mutex
	creds map[string]*aws.CredentialsCache

	ownMu    sync.Mutex
	own      string // the config's own account, once known
	ownAsked bool   // STS answered, or failed otherwise than on its ctx

	keepAll atomic.Bool // a pool with KeepAccounts uses it: forget nothing
}

// NewAccounts returns Accounts that assume roles with cfg's credentials,
// through STS in cfg's region, or an error that names an option that
// cannot be honoured or a config without a region.
//
// The STS client retries as a pool's clients do (NewRetryer: no retry
// quota), and when cfg's HTTP client is the SDK's, or none, it is rebuilt
// as a pool's is (DefaultMaxIdleConnsPerHost, DefaultResponseTimeout). A
// Retryer or HTTPClient set in AccountOptions.STSOptions replaces them.
func NewAccounts(cfg aws.Config, optFns ...func(*AccountOptions)) (*Accounts, error) {
	o := AccountOptions{
		RoleName:               DefaultRoleName,
		SessionName:            DefaultSessionName,
		ExpiryWindow:           DefaultExpiryWindow,
		ExpiryWindowJitterFrac: DefaultExpiryWindowJitterFrac,
	}
	if err := apply("NewAccounts", &o, optFns); err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	p, ok := partition.Of(cfg.Region)
	if !ok {
		return nil, fmt.Errorf("fanout: NewAccounts: the config's Region %q is not an AWS region name; set the region to call STS in", cfg.Region)
	}
	cfg.Credentials = cached(cfg.Credentials)
	// The config's retryer (LoadDefaultConfig's) has the SDK's retry
	// quota, which the retries of many accounts' AssumeRole at once drain;
	// and the SDK's HTTP client waits for ever on an endpoint that stalls.
	cfg.Retryer = NewRetryer
	cfg.APIOptions = withRecoverAttempts(cfg.APIOptions)
	cfg.HTTPClient, _ = sizedHTTPClient(cfg.HTTPClient, DefaultMaxIdleConnsPerHost, DefaultResponseTimeout)
	for i, fn := range o.STSOptions {
		if fn == nil {
			return nil, fmt.Errorf("fanout: AccountOptions.STSOptions[%d] is nil", i)
		}
	}
	var client *sts.Client
	if err := guard(func() { client = sts.NewFromConfig(cfg, o.STSOptions...) }); err != nil {
		return nil, fmt.Errorf("fanout: NewAccounts: building the STS client with AccountOptions.STSOptions: %w", err)
	}
	return &Accounts{
		opts:      o,
		partition: p.ID,
		sts:       client,
		base:      cfg.Credentials,
		creds:     make(map[string]*aws.CredentialsCache),
	}, nil
}

// RoleARN returns the ARN of the role assumed in account, or an error
// naming a malformed account ID or ARN.
func (a *Accounts) RoleARN(account string) (string, error) {
	if err := a.made(); err != nil {
		return "", err
	}
	if err := checkAccount(account); err != nil {
		return "", err
	}
	var roleARN string
	if a.opts.RoleARN != nil {
		roleARN = a.opts.RoleARN(account)
	} else {
		roleARN = fmt.Sprintf("arn:%s:iam::%s:role/%s", a.partition, account, a.opts.RoleName)
	}
	parsed, err := arn.Parse(roleARN)
	if err != nil || parsed.Service != "iam" || !strings.HasPrefix(parsed.Resource, "role/") || parsed.AccountID != account {
		return "", fmt.Errorf("fanout: account %s: %q is not the ARN of an IAM role in that account", account, roleARN)
	}
	return roleARN, nil
}

// Credentials returns account's credentials cache, shared by every client
// in that account. Nothing is called until credentials are first needed.
// Within AccountRegions, a retrieval runs on the call's ctx (see there);
// elsewhere it runs as the SDK's cache runs it, to its end even if the
// caller gives up, bounded by the STS client's response timeout.
func (a *Accounts) Credentials(account string) (aws.CredentialsProvider, error) {
	if err := a.made(); err != nil {
		return nil, err
	}
	roleARN, err := a.RoleARN(account)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.creds[account]; ok {
		return c, nil
	}
	p := stscreds.NewAssumeRoleProvider(a.sts, roleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = a.opts.SessionName
		o.Duration = a.opts.Duration
		if a.opts.ExternalID != "" {
			o.ExternalID = aws.String(a.opts.ExternalID)
		}
	})
	c := aws.NewCredentialsCache(callBound{recovering{ownOr{a, account, p}}}, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = a.opts.ExpiryWindow
		o.ExpiryWindowJitterFrac = a.opts.ExpiryWindowJitterFrac
	})
	a.creds[account] = c
	return c, nil
}

// forget drops account's credentials cache; the next Credentials makes
// another, which assumes the role again.
func (a *Accounts) forget(account string) {
	if a == nil || a.keepAll.Load() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.creds, account)
}

// ownOr gives account the config's own credentials when it is the
// config's own account (unless AssumeOwnAccount), else assumes its role.
type ownOr struct {
	a       *Accounts
	account string
	assume  aws.CredentialsProvider
}

func (p ownOr) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if !p.a.opts.AssumeOwnAccount && p.a.ownAccount(ctx) == p.account {
		return p.a.base.Retrieve(ctx)
	}
	return p.assume.Retrieve(ctx)
}

// ownAccount returns the config's own account, asking STS with the
// config's credentials (those ownOr hands out) the first time. When STS
// cannot say, it is "" for good: every account then assumes its role, as
// with AssumeOwnAccount, rather than every account failing.
func (a *Accounts) ownAccount(ctx context.Context) string {
	a.ownMu.Lock()
	defer a.ownMu.Unlock()
	if !a.ownAsked {
		out, err := a.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(o *sts.Options) { o.Credentials = a.base })
		if err == nil {
			a.own = aws.ToString(out.Account)
		}
		a.ownAsked = err == nil || ctx.Err() == nil // a call cut short says nothing: ask again
	}
	return a.own
}

// isOwn reports whether account is known to be the config's own, using
// the config's credentials.
func (a *Accounts) isOwn(account string) bool {
	if a.opts.AssumeOwnAccount {
		return false
	}
	a.ownMu.Lock()
	defer a.ownMu.Unlock()
	return a.own == account
}

// made fails for a nil or zero Accounts, which has no STS client.
func (a *Accounts) made() error {
	if a == nil || a.sts == nil {
		return errors.New("fanout: Accounts was not made by NewAccounts (a nil or zero *Accounts has no STS client)")
	}
	return nil
}

// AccountError is the error of every item of an account whose credentials
// could not be had: its role could not be assumed (or, for the config's
// own account, the config's credentials failed; RoleARN is then empty).
// It names the account and the role, never the credentials.
type AccountError struct {
	Account string
	RoleARN string
	Err     error
}

func (e *AccountError) Error() string {
	if e.RoleARN == "" {
		return fmt.Sprintf("fanout: account %s: the config's own credentials: %v", e.Account, e.Err)
	}
	return fmt.Sprintf("fanout: account %s: assume role %s: %v", e.Account, e.RoleARN, e.Err)
}

// Unwrap returns the underlying error.
func (e *AccountError) Unwrap() error { return e.Err }

// check retrieves account's credentials once, so that an account whose
// role cannot be assumed fails its items with one AccountError instead of
// one STS call per region.
func (a *Accounts) check(ctx context.Context, account string) error {
	creds, err := a.Credentials(account)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		_, err = creds.Retrieve(ctx)
		// A retrieval shared with another call, which then ended, fails
		// on that call's ctx, not ours: ask again, a few times at most.
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.Canceled) || try == maxForeignCancels {
			break
		}
	}
	if err != nil {
		var roleARN string // none for the config's own account
		if !a.isOwn(account) {
			roleARN, _ = a.RoleARN(account)
		}
		return &AccountError{Account: account, RoleARN: roleARN, Err: err}
	}
	return nil
}

// maxForeignCancels bounds how often check asks again for credentials
// whose retrieval another call cancelled.
const maxForeignCancels = 3

// retrievals are the credential retrievals that one AccountRegions call
// starts. The SDK's CredentialsCache runs a retrieval in a goroutine of
// its own, on a context stripped of cancellation (so that one caller
// giving up does not fail the others that share it): left alone, an
// AssumeRole in flight when the call's ctx ended would run on after the
// call returned, for as long as STS took to answer. Through callBound, a
// retrieval runs on the call's ctx instead, and the call waits for it.
type retrievals struct {
	ctx    context.Context // the call's, carrying the retrievals themselves
	cancel context.CancelFunc

	mu      sync.Mutex
	running int
	closed  bool          // the call is returning
	done    chan struct{} // closed once closed with none running
}

// retrievalsKey carries a call's retrievals in its contexts, which the
// credentials cache passes on to callBound.
type retrievalsKey struct{}

func newRetrievals(ctx context.Context) *retrievals {
	r := &retrievals{done: make(chan struct{})}
	// The retrievals run on ctx too, so that one that needs another
	// (a role assumed with credentials from another role) counts it; and
	// the call cancels it once its items have ended.
	ctx, r.cancel = context.WithCancel(ctx)
	r.ctx = context.WithValue(ctx, retrievalsKey{}, r)
	return r
}

// start counts a retrieval in, unless the call returned.
func (r *retrievals) start() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed && r.running == 0 {
		return false
	}
	r.running++
	return true
}

func (r *retrievals) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running--; r.closed && r.running == 0 {
		close(r.done)
	}
}

// wait returns once no retrieval is running.
func (r *retrievals) wait() {
	r.mu.Lock()
	r.closed = true
	if r.running == 0 {
		close(r.done)
	}
	r.mu.Unlock()
	<-r.done
}

// callBound is the provider under an account's credentials cache: a
// retrieval that an AccountRegions call started runs on that call's ctx,
// counted in its retrievals; any other runs as the cache asks.
type callBound struct{ aws.CredentialsProvider }

func (p callBound) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if r, ok := ctx.Value(retrievalsKey{}).(*retrievals); ok && r.start() {
		defer r.end()
		ctx = r.ctx
	}
	return p.CredentialsProvider.Retrieve(ctx)
}

// AccountRegions runs op once per account and region, each with the
// pool's client for that account and region (the pool needs Accounts),
// through f, and returns one RegionResult per item: account by account in
// the order given, each account's regions in the order given. Result.Key
// is "account/region". The items' Scope is their account, so
// RegionOptions.ScopeLimit (or the Fanout's) bounds the accounts in flight
// inside the Limit: a Scope set in New does not apply, and one set in
// optFns makes the call fail.
//
// An account whose role cannot be assumed fails each of its items with an
// *AccountError naming the account and the role, after one attempt; the
// other accounts go on.
//
// The credentials an account's items share are retrieved on the call's
// ctx, not on one item's: an item that gives up (ItemTimeout) leaves the
// AssumeRole to the account's other items, and when ctx ends, the
// AssumeRole in flight ends with it. AccountRegions returns once every
// retrieval it started has ended.
//
// Roles are assumed ahead of their accounts' items, in order, up to 32 (or
// the ScopeLimit, if smaller) accounts ahead, outside the Limit: an
// account's items would otherwise each hold a place of the Limit while
// its role was assumed. Each account is held in the pool while the call
// uses it, and released after its last item (see PoolOptions.KeepAccounts).
// With RegionOptions.RegionsOf, every account's regions are asked first,
// through f.
func AccountRegions[C, T any](ctx context.Context, f *Fanout[T], pool *ClientPool[C], accounts, regions []string,
	op func(ctx context.Context, client C, account, region string) (T, error), optFns ...func(*RegionOptions)) (RegionResults[T], error) {
	if ctx == nil {
		return nil, errors.New("fanout: AccountRegions: nil ctx")
	}
	if err := checkTargets(f, pool, op == nil); err != nil {
		return nil, err
	}
	if regions != nil { // a nil list needs RegionsOf, checked below
		if err := checkList("region", regions, checkRegion); err != nil {
			return nil, err
		}
	}
	if pool.accounts == nil {
		return nil, errors.New("fanout: AccountRegions: the pool has no Accounts (PoolOptions.Accounts)")
	}
	if err := checkList("account", accounts, checkAccount); err != nil {
		return nil, err
	}
	ro, err := regionOptions(f, accountOf, optFns)
	if err != nil {
		return nil, err
	}
	if ro.RegionsOf == nil && len(regions) == 0 {
		return nil, errors.New("fanout: AccountRegions: no regions, and RegionOptions.RegionsOf is nil; list the regions, or set RegionsOf to find each account's")
	}
	ro.Options = pool.tel.defaults(ro.Options)
	ctx, endSpan := startSpan(ctx, ro.TracerProvider, SpanAccountRegions, func(o *tracing.SpanOptions) {
		o.Properties.Set(AttrAccounts, len(accounts))
	})
	defer endSpan()
	checks := make(map[string]*accountCheck, len(accounts))
	for _, acct := range accounts {
		checks[acct] = new(accountCheck)
	}
	r := newRetrievals(ctx)
	defer r.wait()
	// Each account's regions: the list, or what RegionsOf found, in the
	// list's order (kept to it) or in RegionsOf's.
	var byAccount map[string]found
	if ro.RegionsOf != nil {
		if byAccount, err = regionsOf(r.ctx, f, pool, accounts, checks, ro); err != nil {
			return nil, err
		}
	}
	targets := make([]acctRegion, 0, len(accounts)*len(regions))
	keys := make([]string, 0, len(accounts)*len(regions))
	failed := map[string]error{}        // accounts whose regions could not be had: one item each, with no region
	notEnabled := map[acctRegion]bool{} // listed regions that RegionsOf did not give: skipped, not called
	for _, acct := range accounts {
		own := regions
		if byAccount != nil {
			got := byAccount[acct]
			if got.err != nil {
				failed[acct] = got.err
				targets, keys = append(targets, acctRegion{account: acct}), append(keys, acct)
				continue
			}
			if own == nil {
				own = got.regions
			}
			for _, region := range own {
				if !slices.Contains(got.regions, region) {
					notEnabled[acctRegion{acct, region}] = true
				}
			}
		}
		for _, region := range own {
			targets = append(targets, acctRegion{acct, region})
			keys = append(keys, acct+"/"+region)
		}
	}
	h := newHolds(pool, checks, targets, ro.ScopeLimit)
	defer h.close()
	ahead, stopAhead := context.WithCancel(r.ctx)
	h.stop = stopAhead
	go h.checkAhead(ahead, accounts, failed)
	call := func(ctx context.Context, t acctRegion) (T, error) {
		var zero T
		h.begin(t.account)
		defer h.end(t.account)
		switch {
		case t.region == "":
			return zero, failed[t.account]
		case notEnabled[t]:
			return zero, Skip(fmt.Errorf("%w: %s is not among account %s's regions (RegionOptions.RegionsOf)", ErrRegionDisabled, t.region, t.account))
		}
		if err := checks[t.account].do(ctx, pool.accounts, t.account); err != nil {
			return zero, err
		}
		client, err := pool.Client(t.account, t.region)
		if err != nil {
			return zero, err
		}
		return op(ctx, client, t.account, t.region)
	}
	res, err := runTargets(r.ctx, f, targets, keys, call, pool.confirmDisabled, ro, pool.tel)
	r.cancel() // every item has ended: what runs still (a check ahead) serves none
	return res, err
}

// holds is, for one AccountRegions call, the accounts it holds in the
// pool (ClientPool.hold): each from its first item's start, or from its
// check ahead, to its last item's end, or the call's end. It also checks
// accounts ahead of their items (checkAhead), so that an account's items
// do not each hold a place of the Limit while its role is assumed.
type holds[C any] struct {
	pool   *ClientPool[C]
	checks map[string]*accountCheck
	left   map[string]*atomic.Int64 // items not ended, by account

	mu      sync.Mutex
	held    map[string]bool    // by this call
	started map[string]bool    // an item of the account started
	ahead   chan struct{}      // a place for each account checked ahead of its items
	stop    context.CancelFunc // ends the checks ahead that are still running then
	wg      sync.WaitGroup     // checkAhead and its checks
}

// checksAhead is how many accounts a call checks ahead of their items, at
// most (fewer with a smaller ScopeLimit): enough to hide an AssumeRole's
// latency behind the items that run (8 left 10,000 accounts at 1.45x of
// the ideal of the org bench, 32 at 1.19x), few enough that STS, which has
// no adaptive limit, is not stormed.
const checksAhead = 32

func newHolds[C any](pool *ClientPool[C], checks map[string]*accountCheck, targets []acctRegion, scopeLimit int) *holds[C] {
	h := &holds[C]{
		pool: pool, checks: checks, left: make(map[string]*atomic.Int64, len(checks)),
		held: map[string]bool{}, started: map[string]bool{},
	}
	for _, t := range targets {
		if h.left[t.account] == nil {
			h.left[t.account] = new(atomic.Int64)
		}
		h.left[t.account].Add(1)
	}
	n := checksAhead
	if scopeLimit > 0 {
		n = min(n, scopeLimit)
	}
	h.ahead = make(chan struct{}, n)
	h.wg.Add(1)
	return h
}

// holdLocked holds account for the call, once.
func (h *holds[C]) holdLocked(account string) {
	if !h.held[account] {
		h.held[account] = true
		h.pool.hold(account)
	}
}

// begin is an item of account starting.
func (h *holds[C]) begin(account string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started[account] {
		return
	}
	h.started[account] = true
	if h.held[account] { // checked ahead: its place goes to the next
		<-h.ahead
		return
	}
	h.holdLocked(account)
}

// end is an item of account ending.
func (h *holds[C]) end(account string) {
	if h.left[account].Add(-1) == 0 {
		h.pool.release(account)
	}
}

// checkAhead checks the accounts in order, as many ahead of the items
// that started as there are places in ahead, each concurrently; skip are
// accounts with no item to run.
func (h *holds[C]) checkAhead(ctx context.Context, accounts []string, skip map[string]error) {
	defer h.wg.Done()
	for _, acct := range accounts {
		if _, ok := skip[acct]; ok {
			continue
		}
		select {
		case h.ahead <- struct{}{}:
		case <-ctx.Done(): // the call returned, or its ctx ended
			return
		}
		h.mu.Lock()
		if h.started[acct] { // its items went first
			h.mu.Unlock()
			<-h.ahead
			continue
		}
		h.holdLocked(acct)
		h.mu.Unlock()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			// Its items see the answer; a panic (in RoleARN, say) is
			// not recorded, so the item that asks next gets it as its
			// error.
			_ = guard(func() { _ = h.checks[acct].do(ctx, h.pool.accounts, acct) })
		}()
	}
}

// close stops checking ahead, waits for the checks in flight, and
// releases the accounts whose items did not all end.
func (h *holds[C]) close() {
	h.stop()
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	for acct := range h.held {
		if h.left[acct].Load() > 0 {
			h.pool.release(acct)
		}
	}
}

// found is what RegionsOf gave one account.
type found struct {
	regions []string
	err     error
}

// regionsOf asks ro.RegionsOf for every account's regions, through f
// (its limits, and the call's Limit and ItemTimeout), once each, after
// the account's check; a region it gives that is not one is the
// account's error. The error is the run's when it could run nothing.
func regionsOf[C, T any](ctx context.Context, f *Fanout[T], pool *ClientPool[C], accounts []string,
	checks map[string]*accountCheck, ro RegionOptions) (map[string]found, error) {
	out := make(map[string]found, len(accounts))
	var mu sync.Mutex
	res, err := f.Run(ctx, accounts, func(ctx context.Context, acct string) (T, error) {
		var zero T
		regions, err := func() ([]string, error) {
			if err := checks[acct].do(ctx, pool.accounts, acct); err != nil {
				return nil, err
			}
			cfg, err := pool.AccountConfig(acct)
			if err != nil {
				return nil, err
			}
			regions, err := ro.RegionsOf(ctx, acct, cfg)
			if err == nil {
				err = checkList("region", regions, checkRegion)
			}
			if err != nil {
				return nil, fmt.Errorf("fanout: account %s: its regions (RegionOptions.RegionsOf): %w", acct, err)
			}
			return slices.Clone(regions), nil
		}()
		mu.Lock()
		defer mu.Unlock()
		out[acct] = found{regions, err}
		return zero, nil
	}, func(o *Options) {
		*o = ro.Options
		o.Weight, o.Scope, o.ScopeLimit, o.OnDone, o.FailFast = nil, nil, 0, nil, false
	})
	if res == nil {
		return nil, err
	}
	for _, r := range res { // a panic in RegionsOf, or ctx ended before the account's turn
		var itemErr *ItemError
		if errors.As(r.Err, &itemErr) {
			out[r.Key] = found{err: fmt.Errorf("fanout: account %s: its regions (RegionOptions.RegionsOf): %w", r.Key, itemErr.Err)}
		}
	}
	return out, nil
}

func accountOf(key string) string {
	acct, _, _ := strings.Cut(key, "/")
	return acct
}

// accountCheck assumes an account's role once for one AccountRegions
// call: its answer, success or refusal, holds for the account's other
// items, so a denied role costs one STS call, not one per region. An
// answer cut short by the item's own context is no answer: the next item
// asks again.
type accountCheck struct {
	mu      sync.Mutex
	done    bool
	err     error
	running chan struct{} // closed when the check in flight ends; nil when none is
}

// do checks account once for every item of the call: the first item to
// ask runs the check, and the others wait for its answer, each on its own
// context. A check that ended on its item's context is forgotten, and the
// next item to ask runs it again.
func (c *accountCheck) do(ctx context.Context, accounts *Accounts, account string) error {
	for {
		c.mu.Lock()
		done, err, running := c.done, c.err, c.running
		if !done && running == nil {
			c.running = make(chan struct{})
			running = c.running
			c.mu.Unlock()
			return c.run(ctx, accounts, account, running)
		}
		c.mu.Unlock()
		if done {
			return err
		}
		select {
		case <-running: // look again: done, or cut short by its item's context
		case <-ctx.Done():
			roleARN, _ := accounts.RoleARN(account)
			return &AccountError{Account: account, RoleARN: roleARN, Err: ctx.Err()}
		}
	}
}

// run runs the check that running stands for, and records its answer
// unless its context cut it short or it panicked.
func (c *accountCheck) run(ctx context.Context, accounts *Accounts, account string, running chan struct{}) error {
	var (
		err      error
		answered bool
	)
	defer func() { // on every path, so that no item waits for a check that ended
		c.mu.Lock()
		if answered && (err == nil || !isContextErr(err) || ctx.Err() == nil) {
			c.done, c.err = true, err
		}
		c.running = nil
		c.mu.Unlock()
		close(running)
	}()
	err = accounts.check(ctx, account)
	answered = true
	return err
}
