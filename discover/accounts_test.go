package discover_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout/discover"
	"github.com/awsfanout/fanout/internal/mototest"
)

func TestOrganizationAccountsMoto(t *testing.T) {
	cfg := mototest.Fresh(t, "us-east-1")
	ctx := context.Background()
	org := organizations.NewFromConfig(cfg)
	out, err := org.CreateOrganization(ctx, &organizations.CreateOrganizationInput{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{aws.ToString(out.Organization.MasterAccountId)}
	for _, name := range []string{"prod", "dev", "gone"} {
		if _, err := org.CreateAccount(ctx, &organizations.CreateAccountInput{
			AccountName: aws.String(name), Email: aws.String(name + "@example.com"),
		}); err != nil {
			t.Fatal(err)
		}
	}
	listed, err := org.ListAccounts(ctx, &organizations.ListAccountsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range listed.Accounts {
		switch aws.ToString(a.Name) {
		case "gone":
			if _, err := org.CloseAccount(ctx, &organizations.CloseAccountInput{AccountId: a.Id}); err != nil {
				t.Fatal(err)
			}
		case "prod", "dev":
			want = append(want, aws.ToString(a.Id))
		}
	}
	got, err := discover.OrganizationAccounts(ctx, org)
	slices.Sort(got)
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("accounts %v, %v; want the ACTIVE ones %v (the closed account left out)", got, err, want)
	}
}

func TestOrganizationAccountsFailure(t *testing.T) {
	t.Parallel()
	if _, err := discover.OrganizationAccounts(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "nil client") {
		t.Errorf("nil client: %v", err)
	}
	// An ErrorServer, not fanouttest: no fault of fanouttest's is AWSOrganizationsNotInUseException.
	srv, _ := mototest.ErrorServer(t, http.StatusBadRequest, "application/x-amz-json-1.1",
		`{"__type":"AWSOrganizationsNotInUseException","message":"Your account is not a member of an organization."}`)
	org := organizations.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDORG", "org-secret", "")})
	ids, err := discover.OrganizationAccounts(context.Background(), org)
	var apiErr smithy.APIError
	if ids != nil || !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AWSOrganizationsNotInUseException" || strings.Contains(err.Error(), "org-secret") {
		t.Errorf("%v, %v; want the API error, and no secret", ids, err)
	}
}

// TestOrganizationAccountsStopsOnARepeatedToken: an endpoint that answers
// every page with the same NextToken ends the listing after the page that
// repeats it, rather than looping for ever; the account it lists twice is
// returned once.
func TestOrganizationAccountsStopsOnARepeatedToken(t *testing.T) {
	t.Parallel()
	// An ErrorServer, not fanouttest: a misbehaving endpoint, not a fault that fanouttest injects.
	srv, pages := mototest.ErrorServer(t, http.StatusOK, "application/x-amz-json-1.1",
		`{"Accounts":[{"Id":"111111111111","State":"ACTIVE","Status":"ACTIVE"}],"NextToken":"again"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a guard: the loop it tests would run until it
	defer cancel()
	ids, err := discover.OrganizationAccounts(ctx, orgClient(srv.URL))
	if err != nil || !slices.Equal(ids, []string{"111111111111"}) || pages.Load() != 2 {
		t.Errorf("%v, %v after %d pages; want the account once, after 2 pages", ids, err, pages.Load())
	}
}

func orgClient(endpoint string) *organizations.Client {
	return organizations.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDORG", "org-secret", "")})
}
