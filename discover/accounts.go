package discover

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/awsfanout/fanout"
)

// OrganizationAccounts returns the IDs of the organization's ACTIVE
// accounts, from every page of Organizations ListAccounts, in the order
// listed, each once. client is an organizations client in the management
// (or a delegated admin) account. The listing stops when the service
// repeats the token it was given; when ctx has no deadline,
// DefaultTimeout bounds the call.
func OrganizationAccounts(ctx context.Context, client *organizations.Client) ([]string, error) {
	switch {
	case ctx == nil:
		return nil, errors.New("discover: OrganizationAccounts: nil Context")
	case client == nil:
		return nil, errors.New("discover: OrganizationAccounts: nil client")
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	accts, err := listAccounts(ctx, client)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(accts))
	for i, a := range accts {
		ids[i] = aws.ToString(a.Id)
	}
	return ids, nil
}

// Account is one account of an organization, as Organization lists it.
type Account struct {
	ID, Name, Email string

	// Management is set on the organization's management account, which
	// has no member role to assume (see fanout.AccountOptions.AssumeOwnAccount).
	Management bool

	// Parent is the OU (or root) the account sits in, when Organization
	// walked the OUs to find it (OUOptions); empty otherwise.
	Parent string
}

// OUOptions narrow Organization to part of the organization's tree.
type OUOptions struct {
	// Include, when not empty, keeps only the accounts in these OUs (or
	// roots, "r-..."), and in every OU below them.
	Include []string

	// Exclude drops the accounts in these OUs and every OU below them,
	// even inside an included one. It acts on the OUs the walk reaches: an
	// OU that Include names is walked even if it sits below an excluded
	// one.
	Exclude []string
}

// Organization returns the organization's ACTIVE accounts, each once,
// with the management account marked (DescribeOrganization). Without
// OUOptions it lists them all (ListAccounts, in the order listed); with
// Include or Exclude it walks the tree from the included OUs, or from the
// roots, down (ListOrganizationalUnitsForParent and
// ListAccountsForParent), skipping excluded OUs, and sets each account's
// Parent. client is an organizations client in the management (or a
// delegated admin) account. An OU ID that is not one fails the call,
// naming it. When ctx has no deadline, DefaultTimeout bounds the call.
func Organization(ctx context.Context, client *organizations.Client, optFns ...func(*OUOptions)) ([]Account, error) {
	switch {
	case ctx == nil:
		return nil, errors.New("discover: Organization: nil Context")
	case client == nil:
		return nil, errors.New("discover: Organization: nil client")
	}
	var o OUOptions
	for i, fn := range optFns {
		if fn == nil {
			return nil, fmt.Errorf("discover: Organization: option function %d is nil", i)
		}
		if err := guard(func() { fn(&o) }); err != nil {
			return nil, fmt.Errorf("discover: Organization: option function %d: %w", i, err)
		}
	}
	for _, id := range slices.Concat(o.Include, o.Exclude) {
		if !ouID.MatchString(id) {
			return nil, fmt.Errorf("discover: Organization: %q is not an OU or root ID (ou-xxxx-xxxxxxxx, r-xxxx)", id)
		}
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	org, err := client.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
	if err != nil {
		return nil, fmt.Errorf("discover: organizations DescribeOrganization: %w", timedOut(ctx, err))
	}
	management := aws.ToString(org.Organization.MasterAccountId)
	var accts []Account
	if len(o.Include) == 0 && len(o.Exclude) == 0 {
		listed, err := listAccounts(ctx, client)
		if err != nil {
			return nil, err
		}
		for _, a := range listed {
			accts = append(accts, account(a, ""))
		}
	} else if accts, err = walk(ctx, client, o); err != nil {
		return nil, err
	}
	for i := range accts {
		accts[i].Management = accts[i].ID == management
	}
	if len(accts) == 0 {
		return nil, fmt.Errorf("discover: Organization: no ACTIVE account is left (Include %q, Exclude %q)", o.Include, o.Exclude)
	}
	return accts, nil
}

var ouID = regexp.MustCompile(`^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$`)

func account(a orgtypes.Account, parent string) Account {
	return Account{ID: aws.ToString(a.Id), Name: aws.ToString(a.Name), Email: aws.ToString(a.Email), Parent: parent}
}

// walk lists the accounts of the included OUs (or the roots) and of every
// OU below them, but the excluded ones, each account once.
func walk(ctx context.Context, client *organizations.Client, o OUOptions) ([]Account, error) {
	queue := slices.Clone(o.Include)
	if len(queue) == 0 {
		p := organizations.NewListRootsPaginator(client, &organizations.ListRootsInput{}, func(o *organizations.ListRootsPaginatorOptions) { o.StopOnDuplicateToken = true })
		roots, err := fanout.Collect(ctx, p, p.NextPage, func(out *organizations.ListRootsOutput) []orgtypes.Root { return out.Roots })
		if err != nil {
			return nil, fmt.Errorf("discover: organizations ListRoots: %w", timedOut(ctx, err))
		}
		for _, r := range roots {
			queue = append(queue, aws.ToString(r.Id))
		}
	}
	excluded := make(map[string]bool, len(o.Exclude))
	for _, id := range o.Exclude {
		excluded[id] = true
	}
	var accts []Account
	seen := map[string]bool{}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		if excluded[parent] || seen[parent] {
			continue
		}
		seen[parent] = true
		ap := organizations.NewListAccountsForParentPaginator(client, &organizations.ListAccountsForParentInput{ParentId: aws.String(parent)},
			func(o *organizations.ListAccountsForParentPaginatorOptions) { o.StopOnDuplicateToken = true })
		listed, err := fanout.Collect(ctx, ap, ap.NextPage, func(out *organizations.ListAccountsForParentOutput) []orgtypes.Account { return out.Accounts })
		if err != nil {
			return nil, fmt.Errorf("discover: organizations ListAccountsForParent %s: %w", parent, timedOut(ctx, err))
		}
		for _, a := range listed {
			if id := aws.ToString(a.Id); active(a) && !seen[id] {
				seen[id] = true
				accts = append(accts, account(a, parent))
			}
		}
		op := organizations.NewListOrganizationalUnitsForParentPaginator(client, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(parent)},
			func(o *organizations.ListOrganizationalUnitsForParentPaginatorOptions) { o.StopOnDuplicateToken = true })
		ous, err := fanout.Collect(ctx, op, op.NextPage, func(out *organizations.ListOrganizationalUnitsForParentOutput) []orgtypes.OrganizationalUnit {
			return out.OrganizationalUnits
		})
		if err != nil {
			return nil, fmt.Errorf("discover: organizations ListOrganizationalUnitsForParent %s: %w", parent, timedOut(ctx, err))
		}
		for _, ou := range ous {
			queue = append(queue, aws.ToString(ou.Id))
		}
	}
	return accts, nil
}

// active reports whether an account is ACTIVE. Status was retired in 2026
// in favour of State; moto and older endpoints may still set only Status.
func active(a orgtypes.Account) bool {
	return a.State == orgtypes.AccountStateActive || (a.State == "" && a.Status == orgtypes.AccountStatusActive)
}

// listAccounts lists the organization's ACTIVE accounts, each once, in
// the order listed.
func listAccounts(ctx context.Context, client *organizations.Client) ([]orgtypes.Account, error) {
	// The SDK's paginators follow a repeated token for ever unless told
	// otherwise (StopOnDuplicateToken is false by default).
	p := organizations.NewListAccountsPaginator(client, &organizations.ListAccountsInput{},
		func(o *organizations.ListAccountsPaginatorOptions) { o.StopOnDuplicateToken = true })
	accts, err := fanout.Collect(ctx, p, p.NextPage, func(out *organizations.ListAccountsOutput) []orgtypes.Account {
		return out.Accounts
	})
	if err != nil {
		return nil, fmt.Errorf("discover: organizations ListAccounts: %w", timedOut(ctx, err))
	}
	var kept []orgtypes.Account
	seen := make(map[string]bool, len(accts))
	for _, a := range accts {
		if id := aws.ToString(a.Id); active(a) && !seen[id] {
			seen[id] = true
			kept = append(kept, a)
		}
	}
	return kept, nil
}

// guard calls fn and returns its panic, if any, as an error.
func guard(fn func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	fn()
	return nil
}
