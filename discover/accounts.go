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
// accounts, from every page of Organizations ListAccounts. client is an
// organizations client in the management (or a delegated admin) account.
func OrganizationAccounts(ctx context.Context, client *organizations.Client) ([]string, error) {
	if client == nil {
		return nil, errors.New("discover: OrganizationAccounts: nil client")
	}
	p := organizations.NewListAccountsPaginator(client, &organizations.ListAccountsInput{})
	accts, err := fanout.Collect(ctx, p, p.NextPage, func(out *organizations.ListAccountsOutput) []orgtypes.Account {
		return out.Accounts
	})
	if err != nil {
		return nil, fmt.Errorf("discover: organizations ListAccounts: %w", err)
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
