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

// TestOrganizationByOU: against moto, a tree root > prod > prod-eu and
// root > dev, one account in each and a closed one in prod: OU filters
// include recursively and exclude below an include; the management
// account is marked; closed accounts are left out.
func TestOrganizationByOU(t *testing.T) {
	cfg := mototest.Fresh(t, "us-east-1")
	ctx := context.Background()
	org := organizations.NewFromConfig(cfg)
	created, err := org.CreateOrganization(ctx, &organizations.CreateOrganizationInput{})
	if err != nil {
		t.Fatal(err)
	}
	management := aws.ToString(created.Organization.MasterAccountId)
	roots, err := org.ListRoots(ctx, &organizations.ListRootsInput{})
	if err != nil {
		t.Fatal(err)
	}
	root := aws.ToString(roots.Roots[0].Id)
	ou := func(parent, name string) string {
		out, err := org.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: &parent, Name: &name})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.OrganizationalUnit.Id)
	}
	prod := ou(root, "prod")
	prodEU, dev := ou(prod, "prod-eu"), ou(root, "dev")
	ids := map[string]string{} // name to ID
	for _, a := range []struct{ name, parent string }{{"p1", prod}, {"p2", prodEU}, {"d1", dev}, {"closed", prod}} {
		if _, err := org.CreateAccount(ctx, &organizations.CreateAccountInput{AccountName: aws.String(a.name), Email: aws.String(a.name + "@example.com")}); err != nil {
			t.Fatal(err)
		}
		listed, err := org.ListAccounts(ctx, &organizations.ListAccountsInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, acct := range listed.Accounts {
			if aws.ToString(acct.Name) == a.name {
				ids[a.name] = aws.ToString(acct.Id)
			}
		}
		if _, err := org.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(ids[a.name]), SourceParentId: &root, DestinationParentId: aws.String(a.parent)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := org.CloseAccount(ctx, &organizations.CloseAccountInput{AccountId: aws.String(ids["closed"])}); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{management: "management"}
	for n, id := range ids {
		names[id] = n
	}
	for _, tc := range []struct {
		name string
		opts discover.OUOptions
		want []string // name@parent, sorted
	}{
		{"all", discover.OUOptions{}, []string{"d1@", "management@", "p1@", "p2@"}},
		{"prod", discover.OUOptions{Include: []string{prod}}, []string{"p1@prod", "p2@prod-eu"}},
		{"prod but prod-eu", discover.OUOptions{Include: []string{prod}, Exclude: []string{prodEU}}, []string{"p1@prod"}},
		{"all but dev", discover.OUOptions{Exclude: []string{dev}}, []string{"management@root", "p1@prod", "p2@prod-eu"}},
	} {
		accts, err := discover.Organization(ctx, org, func(o *discover.OUOptions) { *o = tc.opts })
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		ouName := map[string]string{"": "", root: "root", prod: "prod", prodEU: "prod-eu", dev: "dev"}
		var got []string
		for _, a := range accts {
			got = append(got, names[a.ID]+"@"+ouName[a.Parent])
			if a.Management != (a.ID == management) {
				t.Errorf("%s: %s marked Management %v", tc.name, names[a.ID], a.Management)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, got, tc.want)
		}
	}
	for _, bad := range []string{"prod", "ou-nope"} {
		if _, err := discover.Organization(ctx, org, func(o *discover.OUOptions) { o.Include = []string{bad} }); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Include %q: %v; want an error naming it", bad, err)
		}
	}
	missing := "ou-" + prod[3:7] + "-zzzzzzzz"
	if _, err := discover.Organization(ctx, org, func(o *discover.OUOptions) { o.Include = []string{missing} }); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Include of an OU that does not exist: %v; want an error naming it", err)
	}
	if _, err := discover.Organization(ctx, org, nil); err == nil {
		t.Error("a nil option function: no error")
	}
	if _, err := discover.Organization(ctx, org, func(*discover.OUOptions) { panic("option") }); err == nil || !strings.Contains(err.Error(), "option") {
		t.Errorf("a panicking option function: %v", err)
	}
}
