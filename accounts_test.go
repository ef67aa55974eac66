package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/fanouttest"
	"github.com/awsfanout/fanout/internal/mototest"
)

// TestAccountRegionsMoto assumes roles in accounts that Organizations
// lists, and checks that each account sees its own instances.
func TestAccountRegionsMoto(t *testing.T) {
	cfg := mototest.Fresh(t, "us-east-1")
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
	accounts, err := discover.OrganizationAccounts(ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != 3 { // the management account and the two new ones
		t.Fatalf("accounts %v; want 3", accounts)
	}
	accts := newAccounts(t, cfg, func(o *fanout.AccountOptions) { o.ExternalID = "ext-1"; o.SessionName = "test" })
	pool := newPool(t, cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) {
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
		func(o *fanout.RegionOptions) { o.ScopeLimit = 2 })
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

func TestAccountWhoseRoleCannotBeAssumed(t *testing.T) {
	cfg := mototest.Fresh(t, "us-east-1")
	const good, bad = "111111111111", "222222222222"
	// STS in front of moto, refusing AssumeRole into bad as IAM would.
	proxy := newFake(t, fanouttest.Config{
		Upstream: *cfg.BaseEndpoint,
		Faults:   []fanouttest.Rule{{Account: bad, Operation: "AssumeRole", Fault: fanouttest.Denied}},
	})
	accts := newAccounts(t, cfg, func(o *fanout.AccountOptions) {
		o.RoleName = "auditor"
		o.STSOptions = append(o.STSOptions, func(o *sts.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
	})
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
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
	if st := proxy.Stats(); st.Rules[0] != 1 || st.Account[bad].Requests != 1 {
		t.Errorf("AssumeRole into the denied account tried %d times (%d denied) for %d regions; want 1",
			st.Account[bad].Requests, st.Rules[0], len(regions))
	}
}

func TestAccountsBadInput(t *testing.T) {
	t.Parallel()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDBAD", "bad-secret", "")}
	pool := newPool(t, cfg, ec2.NewFromConfig)
	f := fanout.New[int]()
	if _, err := fanout.AccountRegions(context.Background(), f, pool, []string{"1"}, []string{"us-east-1"},
		func(context.Context, *ec2.Client, string, string) (int, error) { return 0, nil }); err == nil || !strings.Contains(err.Error(), "no Accounts") {
		t.Errorf("no Accounts: %v", err)
	}
	accts := newAccounts(t, cfg, func(o *fanout.AccountOptions) {
		o.RoleARN = func(account string) string { return "arn:aws:iam::" + account + ":user/not-a-role" }
	})
	if _, err := accts.RoleARN("123456789012"); err == nil || !strings.Contains(err.Error(), "user/not-a-role") {
		t.Errorf("malformed role ARN: %v", err)
	}
	if _, err := accts.RoleARN("12345"); err == nil || !strings.Contains(err.Error(), `"12345" is not an AWS account ID`) {
		t.Errorf("malformed account: %v", err)
	}
	withAccts := newPool(t, cfg, ec2.NewFromConfig, func(o *fanout.PoolOptions[ec2.Options]) { o.Accounts = accts })
	if _, err := fanout.AccountRegions(context.Background(), f, withAccts, []string{"123456789012", "123456789012"}, []string{"us-east-1"},
		func(context.Context, *ec2.Client, string, string) (int, error) { return 0, nil }); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("duplicate account: %v", err)
	}
	for name, tc := range map[string]struct {
		fn   func(*fanout.AccountOptions)
		want string
	}{
		"no role":         {func(o *fanout.AccountOptions) { o.RoleName = "" }, "AccountOptions.RoleName is empty"},
		"role with space": {func(o *fanout.AccountOptions) { o.RoleName = "has space" }, `AccountOptions.RoleName "has space" is not an IAM role name`},
		"nil option":      {nil, "fanout: NewAccounts: option function 0 is nil"},
		"session name":    {func(o *fanout.AccountOptions) { o.SessionName = "a b" }, `AccountOptions.SessionName "a b"`},
		"short duration":  {func(o *fanout.AccountOptions) { o.Duration = time.Minute }, "AccountOptions.Duration is 1m0s"},
		"window":          {func(o *fanout.AccountOptions) { o.ExpiryWindow = -time.Second }, "AccountOptions.ExpiryWindow is -1s"},
		// A jitter set without a window is kept, not overwritten.
		"jitter": {func(o *fanout.AccountOptions) { o.ExpiryWindowJitterFrac = 1.5 }, "AccountOptions.ExpiryWindowJitterFrac is 1.5"},
	} {
		if a, err := fanout.NewAccounts(cfg, tc.fn); a != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %v; want an error containing %q", name, a, err, tc.want)
		}
	}
	if _, err := fanout.NewAccounts(aws.Config{}); err == nil || !strings.Contains(err.Error(), `Region "" is not an AWS region name`) {
		t.Errorf("config without a region: %v", err)
	}
	var seen fanout.AccountOptions
	if _, err := fanout.NewAccounts(cfg, func(o *fanout.AccountOptions) { seen = *o }); err != nil || seen.RoleName != fanout.DefaultRoleName ||
		seen.SessionName != fanout.DefaultSessionName || seen.ExpiryWindow != fanout.DefaultExpiryWindow || seen.ExpiryWindowJitterFrac != fanout.DefaultExpiryWindowJitterFrac {
		t.Errorf("an option function saw %+v (%v); want the defaults", seen, err)
	}
	// The role ARN is in the config's partition, aws-eusc included.
	eusc := cfg
	eusc.Region = "eusc-de-east-1"
	if arn, err := newAccounts(t, eusc).RoleARN("123456789012"); err != nil || arn != "arn:aws-eusc:iam::123456789012:role/"+fanout.DefaultRoleName {
		t.Errorf("eusc role ARN: %q, %v", arn, err)
	}
}

// TestAccountRegionsOwnsTheScope: AccountRegions groups items by account;
// a Scope of the caller's would silently stop ScopeLimit from bounding
// accounts, so it is an error. A Scope set in New is replaced.
func TestAccountRegionsOwnsTheScope(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{})
	cfg := srv.AWSConfig("us-east-1")
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = newAccounts(t, cfg) })
	op := func(context.Context, *sts.Client, string, string) (int, error) { return 1, nil }
	accounts, regions := []string{"111111111111", "222222222222"}, []string{"eu-west-1"}
	res, err := fanout.AccountRegions(context.Background(), fanout.New[int](), pool, accounts, regions, op,
		func(o *fanout.RegionOptions) { o.Scope = func(string) string { return "all" } })
	if res != nil || err == nil || !strings.Contains(err.Error(), "leave it unset") {
		t.Errorf("a caller's Scope: %v, %v; want an error", res, err)
	}
	f := fanout.New[int](func(o *fanout.Options) { o.Scope = func(string) string { return "all" } })
	if res, err := fanout.AccountRegions(context.Background(), f, pool, accounts, regions, op); err != nil || len(res.Values()) != 2 {
		t.Errorf("a Scope from New: %v, %v", res, err)
	}
}

// TestAccountCheckForgetsADeadline: the first item of an account whose
// AssumeRole outlasts the item's deadline fails on it; the account's other
// items try again rather than inherit that failure.
func TestAccountCheckForgetsADeadline(t *testing.T) {
	t.Parallel()
	// The endpoint is slow once: the first AssumeRole outlasts the item's deadline.
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{
		{Operation: "AssumeRole", Times: 1, Latency: fanouttest.Latency{Fixed: 1500 * time.Millisecond}},
	}})
	cfg := srv.AWSConfig("us-east-1")
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = newAccounts(t, cfg) })
	f := fanout.New[string](func(o *fanout.Options) { o.Limit = 1; o.ItemTimeout = time.Second })
	res, _ := fanout.AccountRegions(context.Background(), f, pool, []string{"111111111111"}, []string{"eu-west-1", "eu-west-2", "eu-west-3"},
		func(ctx context.Context, c *sts.Client, _, _ string) (string, error) {
			out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.Account), nil
		})
	if !errors.Is(res[0].Err, context.DeadlineExceeded) {
		t.Errorf("first item: %v; want its deadline", res[0].Err)
	}
	for _, r := range res[1:] {
		if r.Err != nil || r.Value != "111111111111" {
			t.Errorf("%s: %v; want the account's other items to try again and succeed", r.Region, r.Err)
		}
	}
}

// TestAssumeRoleRetriesWithoutAQuota: 60 accounts whose AssumeRole fails
// twice with a 500 before it succeeds all run. The STS client retries like
// the pool's clients, without the SDK's 500-token retry quota, which the
// retries of 60 accounts at once drain ("retry quota exceeded").
func TestAssumeRoleRetriesWithoutAQuota(t *testing.T) {
	t.Parallel()
	// Each AssumeRole call fails its first two attempts with a 500.
	srv := newFake(t, fanouttest.Config{Faults: []fanouttest.Rule{{Operation: "AssumeRole", Attempts: 2, Fault: fanouttest.Error500}}})
	cfg := srv.AWSConfig("us-east-1")
	accts := newAccounts(t, cfg)
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = accts })
	accounts := make([]string, 60)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("%012d", 100000000000+i)
	}
	res, _ := fanout.AccountRegions(context.Background(), fanout.New[string](func(o *fanout.Options) { o.Limit = 64 }), pool, accounts, []string{"eu-west-1"},
		callerAccountIn)
	if failed := res.Failed(); len(failed) > 0 {
		t.Errorf("%d of %d accounts failed; first: %v", len(failed), len(accounts), failed[0].Err)
	}
	// An account's requests are its AssumeRole attempts, then its item's
	// GetCallerIdentity.
	st := srv.Stats()
	for _, acct := range accounts {
		if a := st.Account[acct]; a.Requests != 3+1 || a.Faulted != 2 {
			t.Errorf("%s: %d AssumeRole attempts, %d of them failed; want 3 (two 500s, then the answer)", acct, a.Requests-1, a.Faulted)
			break
		}
	}
}

// TestCancelledAssumeRoleLeavesNothingBehind: when a call's ctx ends while
// AssumeRole is in flight, the retrieval ends with it and the call returns
// only after it did. The SDK's credentials cache runs retrievals in a
// goroutine of its own, on a context that ignores cancellation. Not
// parallel: goleak looks at every goroutine.
func TestCancelledAssumeRoleLeavesNothingBehind(t *testing.T) {
	// STS is called in us-east-1, which never answers.
	srv, err := fanouttest.New(fanouttest.Config{Faults: []fanouttest.Rule{{Region: "us-east-1", Fault: fanouttest.Hang}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()} // no timeout of its own
	cfg := srv.AWSConfig("us-east-1")
	cfg.HTTPClient = hc
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = newAccounts(t, cfg) })
	before := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, _ := fanout.AccountRegions(ctx, fanout.New[string](), pool, []string{"111111111111"}, []string{"eu-west-1"},
		callerAccountIn)
	var ae *fanout.AccountError
	if err := res[0].Err; !errors.As(err, &ae) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v; want an *AccountError with the call's deadline", err)
	}
	hc.CloseIdleConnections()
	goleak.VerifyNone(t, before)
}

func callerAccountIn(ctx context.Context, c *sts.Client, _, region string) (string, error) {
	return callerAccount(ctx, c, region)
}

type panickingProvider struct{}

func (panickingProvider) Retrieve(context.Context) (aws.Credentials, error) { panic("provider boom") }

type panickingHTTP struct{}

func (panickingHTTP) Do(*http.Request) (*http.Response, error) { panic("sts boom") }

// TestCredentialsPanicIsTheItemsError: the SDK's credentials cache
// retrieves in a goroutine of its own and panics again there, which would
// end the process; a provider's panic, or that of the STS transport during
// AssumeRole, is the items' error instead.
func TestCredentialsPanicIsTheItemsError(t *testing.T) {
	t.Parallel()
	srv, err := fanouttest.New(fanouttest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	op := func(ctx context.Context, c *sts.Client, _, _ string) (string, error) {
		out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.Account), nil
	}
	for name, tc := range map[string]struct {
		provider  bool // the config's provider panics, else the STS transport
		accounts  bool
		wantPanic string
	}{
		"provider, Regions":             {provider: true, wantPanic: "provider boom"},
		"provider, AccountRegions":      {provider: true, accounts: true, wantPanic: "provider boom"},
		"STS transport, AccountRegions": {accounts: true, wantPanic: "sts boom"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := srv.AWSConfig("us-east-1")
			if tc.provider {
				cfg.Credentials = panickingProvider{}
			}
			var res fanout.RegionResults[string]
			f := fanout.New[string]()
			if tc.accounts {
				accts := newAccounts(t, cfg, func(o *fanout.AccountOptions) {
					if !tc.provider {
						o.STSOptions = append(o.STSOptions, func(o *sts.Options) { o.HTTPClient = panickingHTTP{} })
					}
				})
				pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = accts })
				res, _ = fanout.AccountRegions(context.Background(), f, pool, []string{"111111111111"}, []string{"eu-west-1", "eu-west-2"}, op)
			} else {
				pool := newPool(t, cfg, sts.NewFromConfig)
				res, _ = fanout.Regions(context.Background(), f, pool, []string{"eu-west-1", "eu-west-2"},
					func(ctx context.Context, c *sts.Client, r string) (string, error) { return op(ctx, c, "", r) })
			}
			for _, r := range res {
				var pe *fanout.PanicError
				if !errors.As(r.Err, &pe) || pe.Value != tc.wantPanic || !strings.HasPrefix(r.Err.Error(), "fanout: ") {
					t.Errorf("%s: %v; want the %q panic", r.Key, r.Err, tc.wantPanic)
				}
			}
		})
	}
}

// TestEntryPointsRejectBadInput: each fails with an error naming what is
// wrong, instead of panicking.
func TestEntryPointsRejectBadInput(t *testing.T) {
	t.Parallel()
	srv := newFake(t, fanouttest.Config{})
	cfg := srv.AWSConfig("us-east-1")
	var nilPool *fanout.ClientPool[*sts.Client]
	for name, tc := range map[string]struct {
		call func() error
		want string
	}{
		"AccountRegions nil ctx": {func() error {
			pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = newAccounts(t, cfg) })
			//lint:ignore SA1012 the nil ctx is the point
			_, err := fanout.AccountRegions(nil, fanout.New[int](), pool, []string{"111111111111"}, []string{"eu-west-1"}, //nolint:staticcheck
				func(context.Context, *sts.Client, string, string) (int, error) { return 0, nil })
			return err
		}, "nil ctx"},
		"NewBreaker(nil)": {func() error { _, err := fanout.NewBreaker(nil); return err }, "option function 0 is nil"},
		"nil STSOptions": {func() error {
			_, err := fanout.NewAccounts(cfg, func(o *fanout.AccountOptions) { o.STSOptions = append(o.STSOptions, nil) })
			return err
		}, "STSOptions[0] is nil"},
		"panicking STSOptions": {func() error {
			_, err := fanout.NewAccounts(cfg, func(o *fanout.AccountOptions) {
				o.STSOptions = append(o.STSOptions, func(*sts.Options) { panic("sts option") })
			})
			return err
		}, "STSOptions"},
		"nil pool Client": {func() error { _, err := nilPool.Client("", "eu-west-1"); return err }, "nil *ClientPool"},
		"zero Accounts Credentials": {func() error {
			_, err := (&fanout.Accounts{}).Credentials("111111111111")
			return err
		}, "not made by NewAccounts"},
		"zero Accounts RoleARN": {func() error {
			_, err := (&fanout.Accounts{}).RoleARN("111111111111")
			return err
		}, "not made by NewAccounts"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !strings.HasPrefix(err.Error(), "fanout: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v; want an error naming %q", err, tc.want)
			}
		})
	}
	nilPool.CloseIdleConnections()
	if len(nilPool.Stats()) != 0 || len(nilPool.Breakers()) != 0 || nilPool.Len() != 0 || nilPool.Get("eu-west-1") != nil || nilPool.Config().Region != "" {
		t.Error("a nil pool has stats, breakers, clients or a config")
	}
	if a, err := fanout.NewAdaptive(nil); a != nil || err == nil || !strings.Contains(err.Error(), "NewAdaptive: option function 0 is nil") {
		t.Errorf("NewAdaptive(nil): %v, %v", a, err)
	}
}

// TestOwnAccountUsesTheConfigsCredentials: the config's own account (an
// organization's management account, which has no member role) is not
// assumed into: its items run on the config's credentials, the other
// accounts' on their role, one AssumeRole each, and one GetCallerIdentity
// for all. With AssumeOwnAccount, the own account is assumed into like
// any other, and here, where it has no such role, fails on its own.
func TestOwnAccountUsesTheConfigsCredentials(t *testing.T) {
	t.Parallel()
	const own, a, b = fanouttest.DefaultAccount, "111111111111", "222222222222"
	for _, assumeOwn := range []bool{false, true} {
		t.Run(fmt.Sprint("AssumeOwnAccount ", assumeOwn), func(t *testing.T) {
			t.Parallel()
			srv := newFake(t, fanouttest.Config{
				Accounts: []string{a, b},
				Faults: []fanouttest.Rule{
					{Account: own, Operation: "AssumeRole", Fault: fanouttest.Denied},                      // no member role in own
					{Operation: "AssumeRole", Latency: fanouttest.Latency{Fixed: time.Microsecond}},        // counters
					{Operation: "GetCallerIdentity", Latency: fanouttest.Latency{Fixed: time.Microsecond}}, // only
				},
			})
			cfg := srv.AWSConfig("us-east-1")
			accts := newAccounts(t, cfg, func(o *fanout.AccountOptions) { o.AssumeOwnAccount = assumeOwn })
			pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = accts })
			regions := []string{"eu-west-1", "us-east-2"}
			res, _ := fanout.AccountRegions(context.Background(), fanout.New[string](), pool, []string{own, a, b}, regions,
				func(ctx context.Context, c *sts.Client, _, _ string) (string, error) {
					out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
					if err != nil {
						return "", err
					}
					return aws.ToString(out.Arn), nil
				})
			for _, r := range res {
				switch {
				case r.Account == own && assumeOwn:
					var ae *fanout.AccountError
					if !errors.As(r.Err, &ae) || ae.RoleARN != "arn:aws:iam::"+own+":role/"+fanout.DefaultRoleName {
						t.Errorf("%s: %v; want the AccountError of its missing role", r.Key, r.Err)
					}
				case r.Account == own:
					if r.Err != nil || strings.Contains(r.Value, "assumed-role") {
						t.Errorf("%s: %q, %v; want the config's own identity", r.Key, r.Value, r.Err)
					}
				default:
					if r.Err != nil || !strings.Contains(r.Value, r.Account+":assumed-role/") {
						t.Errorf("%s: %q, %v; want the account's assumed role", r.Key, r.Value, r.Err)
					}
				}
			}
			// Every item that runs makes one GetCallerIdentity of its own;
			// finding the own account makes one more.
			wantAssume, wantIdentity := int64(2), int64(len(res)+1)
			if assumeOwn {
				wantAssume, wantIdentity = 3, int64(len(res)-len(regions))
			}
			if st := srv.Stats(); st.Rules[0]+st.Rules[1] != wantAssume || st.Rules[2] != wantIdentity {
				t.Errorf("%d AssumeRole, %d GetCallerIdentity; want %d and %d", st.Rules[0]+st.Rules[1], st.Rules[2], wantAssume, wantIdentity)
			}
		})
	}
}

// TestAccountsAreReleasedAfterTheirItems: once an AccountRegions call is
// done with an account, the pool forgets its clients, limits, breakers and
// credentials, so that memory follows the accounts in flight; with
// KeepAccounts it keeps them. Either way each account assumes its role
// once per call.
func TestAccountsAreReleasedAfterTheirItems(t *testing.T) {
	t.Parallel()
	accounts := []string{"111111111111", "222222222222", "333333333333"}
	regions := []string{"eu-west-1", "us-east-2"}
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("KeepAccounts ", keep), func(t *testing.T) {
			t.Parallel()
			srv := newFake(t, fanouttest.Config{Accounts: accounts,
				Faults: []fanouttest.Rule{{Operation: "AssumeRole", Latency: fanouttest.Latency{Fixed: time.Microsecond}}}})
			cfg := srv.AWSConfig("us-east-1")
			pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) {
				o.Accounts, o.KeepAccounts = newAccounts(t, cfg), keep
			})
			op := func(ctx context.Context, c *sts.Client, _, _ string) (string, error) {
				out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
				if err != nil {
					return "", err
				}
				return aws.ToString(out.Account), nil
			}
			for run := 1; run <= 2; run++ {
				res, err := fanout.AccountRegions(context.Background(), fanout.New[string](func(o *fanout.Options) { o.Limit = 2 }), pool, accounts, regions, op,
					func(o *fanout.RegionOptions) { o.ScopeLimit = 1 })
				if err != nil || len(res) != 6 {
					t.Fatalf("run %d: %d results, %v", run, len(res), err)
				}
				wantClients, wantAssumes := 0, int64(3*run)
				if keep {
					wantClients, wantAssumes = 6, 3
				}
				if n := pool.Len(); n != wantClients {
					t.Errorf("run %d: the pool holds %d clients; want %d", run, n, wantClients)
				}
				if n := srv.Stats().Rules[0]; n != wantAssumes {
					t.Errorf("run %d: %d AssumeRole in all; want %d", run, n, wantAssumes)
				}
				if n := len(pool.Stats()); n != wantClients {
					t.Errorf("run %d: Stats lists %d clients; want %d", run, n, wantClients)
				}
			}
		})
	}
}

// TestRolesAreAssumedAhead: an account's role is assumed ahead of its
// items, so that its items do not each wait, holding a place of the
// Limit, for the AssumeRole: with a Limit of 1, the roles of several
// accounts are being assumed at once.
func TestRolesAreAssumedAhead(t *testing.T) {
	t.Parallel()
	accounts := []string{"111111111111", "222222222222", "333333333333", "444444444444"}
	srv := newFake(t, fanouttest.Config{Accounts: accounts,
		Faults: []fanouttest.Rule{{Operation: "AssumeRole", Latency: fanouttest.Latency{Fixed: 100 * time.Millisecond}}}})
	cfg := srv.AWSConfig("us-east-1") // AssumeRole goes to us-east-1; the items to eu-west-1
	pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = newAccounts(t, cfg) })
	res, err := fanout.AccountRegions(context.Background(), fanout.New[string](func(o *fanout.Options) { o.Limit = 1 }), pool, accounts, []string{"eu-west-1"},
		func(ctx context.Context, c *sts.Client, account, _ string) (string, error) { return account, nil })
	if err != nil || len(res) != len(accounts) {
		t.Fatalf("%d results, %v", len(res), err)
	}
	if peak := srv.Stats().Region["us-east-1"].PeakInFlight; peak < 2 {
		t.Errorf("at most %d AssumeRole at once; want the roles of several accounts assumed ahead, together", peak)
	}
	if n := srv.Stats().Rules[0]; n != int64(len(accounts)) {
		t.Errorf("%d AssumeRole; want one per account", n)
	}
}

// TestOrgScaleReview: what a review of the org-scale change found, each
// once a failure.
func TestOrgScaleReview(t *testing.T) {
	t.Parallel()
	const a, b = "111111111111", "222222222222"
	ctx := context.Background()
	identity := func(ctx context.Context, c *sts.Client, _, _ string) (string, error) {
		out, err := c.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.Account), nil
	}
	t.Run("a panicking RoleARN, assumed ahead, is its account's error", func(t *testing.T) {
		t.Parallel()
		srv := newFake(t, fanouttest.Config{Accounts: []string{a, b}})
		cfg := srv.AWSConfig("us-east-1")
		accts := newAccounts(t, cfg, func(o *fanout.AccountOptions) {
			o.RoleARN = func(acct string) string {
				if acct == a {
					panic("no role for a")
				}
				return "arn:aws:iam::" + acct + ":role/x"
			}
		})
		pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = accts })
		res, _ := fanout.AccountRegions(ctx, fanout.New[string](), pool, []string{a, b}, []string{"eu-west-1"}, identity)
		var pe *fanout.PanicError
		if len(res) != 2 || !errors.As(res[0].Err, &pe) || res[1].Err != nil || res[1].Value != b {
			t.Errorf("%+v; want a's panic as its error and b run", res)
		}
	})
	t.Run("the own account is the config credentials' own, whatever STS signs with", func(t *testing.T) {
		t.Parallel()
		srv := newFake(t, fanouttest.Config{Accounts: []string{a}})
		cfg, err := srv.AWSConfigFor(a, "us-east-1") // the config acts in a
		if err != nil {
			t.Fatal(err)
		}
		accts := newAccounts(t, cfg, func(o *fanout.AccountOptions) { // STS signs as the management account
			o.STSOptions = append(o.STSOptions, func(o *sts.Options) { o.Credentials = srv.AWSConfig("us-east-1").Credentials })
		})
		pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = accts })
		res, _ := fanout.AccountRegions(ctx, fanout.New[string](), pool, []string{fanouttest.DefaultAccount, a}, []string{"eu-west-1"}, identity)
		for _, r := range res {
			if r.Err != nil || r.Value != r.Account {
				t.Errorf("%s ran in %q (%v); want it to run in its own account", r.Key, r.Value, r.Err)
			}
		}
	})
	t.Run("STS unable to name the own account: roles are assumed", func(t *testing.T) {
		t.Parallel()
		srv := newFake(t, fanouttest.Config{Accounts: []string{a, b},
			Faults: []fanouttest.Rule{{Operation: "GetCallerIdentity", Fault: fanouttest.Denied}}})
		cfg := srv.AWSConfig("us-east-1")
		pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = newAccounts(t, cfg) })
		res, err := fanout.AccountRegions(ctx, fanout.New[string](), pool, []string{a, b}, []string{"eu-west-1", "us-east-2"},
			func(ctx context.Context, c *sts.Client, acct, _ string) (string, error) { return acct, nil })
		if err != nil || len(res) != 4 {
			t.Errorf("%d results, %v; want every item run on its account's role", len(res), err)
		}
		if n := srv.Stats().Rules[0]; n > 1 {
			t.Errorf("GetCallerIdentity asked %d times; want once", n)
		}
	})
	t.Run("an account whose regions failed is never skipped as a disabled region", func(t *testing.T) {
		t.Parallel()
		srv := newFake(t, fanouttest.Config{Accounts: []string{a}})
		cfg := srv.AWSConfig("us-east-1")
		pool := newPool(t, cfg, sts.NewFromConfig, func(o *fanout.PoolOptions[sts.Options]) { o.Accounts = newAccounts(t, cfg) })
		res, err := fanout.AccountRegions(ctx, fanout.New[string](), pool, []string{a}, nil, identity, func(o *fanout.RegionOptions) {
			o.SkipDisabled = true
			o.RegionsOf = func(context.Context, string, aws.Config) ([]string, error) {
				return nil, fmt.Errorf("listing: %w", fanout.ErrRegionDisabled) // as an AuthFailure classifies
			}
		})
		if len(res) != 1 || res[0].Err == nil || res[0].Skipped != nil || err == nil {
			t.Errorf("%+v, %v; want the account failed, not skipped", res, err)
		}
	})
}
