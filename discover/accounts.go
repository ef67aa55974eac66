package discover

import (
	"context"
	"errors"
	"fmt"

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
	var ids []string
	seen := make(map[string]bool, len(accts))
	for _, acct := range accts {
		id := aws.ToString(acct.Id)
		// Status was retired in 2026 in favour of State; moto and older
		// endpoints may still set only Status.
		active := acct.State == orgtypes.AccountStateActive || (acct.State == "" && acct.Status == orgtypes.AccountStatusActive)
		if active && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}
