package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// DefaultRoleName is the role Accounts assumes in each account when
// AccountOptions names none: the role AWS Organizations creates in the
// accounts it creates.
const DefaultRoleName = "OrganizationAccountAccessRole"

// AccountOptions configures Accounts.
type AccountOptions struct {
	// RoleName is the role assumed in every account, as
	// arn:PARTITION:iam::ACCOUNT:role/RoleName. "" means DefaultRoleName.
	RoleName string

	// RoleARN, when not nil, returns the role ARN to assume in an account,
	// instead of RoleName's.
	RoleARN func(account string) string

	// ExternalID, when not empty, is passed to AssumeRole.
	ExternalID string

	// SessionName is the role session's name. "" means "fanout".
	SessionName string

	// Duration is how long the assumed credentials last. 0 means the
	// SDK's default, 15 minutes.
	Duration time.Duration

	// ExpiryWindow refreshes credentials this long before they expire, and
	// ExpiryWindowJitterFrac spreads the refreshes of many accounts over
	// that fraction of the window. 0 means 1 minute and 0.5.
	ExpiryWindow           time.Duration
	ExpiryWindowJitterFrac float64

	// STSOptions are applied to the STS client that assumes the roles.
	STSOptions []func(*sts.Options)
}

// Accounts gives credentials for other accounts by assuming a role in each,
// with one aws.CredentialsCache per account: each account assumes its role
// about once per credential lifetime, whatever the number of regions and
// calls. It is safe for concurrent use.
type Accounts struct {
	opts      AccountOptions
	partition string
	sts       *sts.Client

	mu    sync.Mutex
	creds map[string]*aws.CredentialsCache
}

// NewAccounts returns Accounts that assume roles with cfg's credentials,
// through STS in cfg's region.
func NewAccounts(cfg aws.Config, optFns ...func(*AccountOptions)) *Accounts {
	var o AccountOptions
	for _, fn := range optFns {
		fn(&o)
	}
	if o.RoleName == "" {
		o.RoleName = DefaultRoleName
	}
	if o.SessionName == "" {
		o.SessionName = "fanout"
	}
	if o.ExpiryWindow == 0 {
		o.ExpiryWindow = time.Minute
		o.ExpiryWindowJitterFrac = 0.5
	}
	cfg.Credentials = cached(cfg.Credentials)
	return &Accounts{
		opts:      o,
		partition: partitionOf(cfg.Region),
		sts:       sts.NewFromConfig(cfg, o.STSOptions...),
		creds:     make(map[string]*aws.CredentialsCache),
	}
}

// RoleARN returns the ARN of the role assumed in account, or an error
// naming a malformed account ID or ARN.
func (a *Accounts) RoleARN(account string) (string, error) {
	if err := checkAccount(account); err != nil {
		return "", err
	}
	roleARN := fmt.Sprintf("arn:%s:iam::%s:role/%s", a.partition, account, a.opts.RoleName)
	if a.opts.RoleARN != nil {
		roleARN = a.opts.RoleARN(account)
	}
	parsed, err := arn.Parse(roleARN)
	if err != nil || parsed.Service != "iam" || !strings.HasPrefix(parsed.Resource, "role/") || parsed.AccountID != account {
		return "", fmt.Errorf("fanout: account %s: %q is not the ARN of an IAM role in that account", account, roleARN)
	}
	return roleARN, nil
}

// Credentials returns account's credentials cache, shared by every client
// in that account. Nothing is called until credentials are first needed.
func (a *Accounts) Credentials(account string) (aws.CredentialsProvider, error) {
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
	c := aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = a.opts.ExpiryWindow
		o.ExpiryWindowJitterFrac = a.opts.ExpiryWindowJitterFrac
	})
	a.creds[account] = c
	return c, nil
}

// AccountError is the error of every item of an account whose credentials
// could not be had: its role could not be assumed. It names the account
// and the role, never the credentials.
type AccountError struct {
	Account string
	RoleARN string
	Err     error
}

func (e *AccountError) Error() string {
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
	if _, err := creds.Retrieve(ctx); err != nil {
		roleARN, _ := a.RoleARN(account)
		return &AccountError{Account: account, RoleARN: roleARN, Err: err}
	}
	return nil
}

// OrganizationAccounts returns the IDs of the organization's ACTIVE
// accounts, from every page of Organizations ListAccounts. client is an
// organizations client in the management (or a delegated admin) account.
func OrganizationAccounts(ctx context.Context, client *organizations.Client) ([]string, error) {
	if client == nil {
		return nil, errors.New("fanout: OrganizationAccounts: nil client")
	}
	p := organizations.NewListAccountsPaginator(client, &organizations.ListAccountsInput{})
	accts, err := Collect(ctx, p, p.NextPage, func(out *organizations.ListAccountsOutput) []orgtypes.Account {
		return out.Accounts
	})
	if err != nil {
		return nil, fmt.Errorf("fanout: organizations ListAccounts: %w", err)
	}
	var ids []string
	for _, acct := range accts {
		// Status was retired in 2026 in favour of State; moto and older
		// endpoints may still set only Status.
		if acct.State == orgtypes.AccountStateActive || (acct.State == "" && acct.Status == orgtypes.AccountStatusActive) {
			ids = append(ids, aws.ToString(acct.Id))
		}
	}
	return ids, nil
}
