package fanout_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/fanouttest"
)

// newPool is NewClientPool for a test: it fails the test on an error and
// closes the pool's idle connections when the test ends.
func newPool[C, O any](t testing.TB, cfg aws.Config, newFn func(aws.Config, ...func(*O)) C,
	optFns ...func(*fanout.PoolOptions[O])) *fanout.ClientPool[C] {
	t.Helper()
	p, err := fanout.NewClientPool(cfg, newFn, optFns...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

// newFake starts fanouttest's in-process AWS for a test, and closes it
// when the test ends.
func newFake(t testing.TB, cfg fanouttest.Config) *fanouttest.Server {
	t.Helper()
	srv, err := fanouttest.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func newAccounts(t testing.TB, cfg aws.Config, optFns ...func(*fanout.AccountOptions)) *fanout.Accounts {
	t.Helper()
	a, err := fanout.NewAccounts(cfg, optFns...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func httpClientOf[O any](cfg aws.Config) func(*fanout.PoolOptions[O]) {
	return func(o *fanout.PoolOptions[O]) { o.HTTPClient = cfg.HTTPClient }
}

// launch starts n instances in the client's account and region, one
// reservation each, so that DescribeInstances pages through them.
func launch(t *testing.T, client *ec2.Client, n int) {
	t.Helper()
	for range n {
		_, err := client.RunInstances(context.Background(), &ec2.RunInstancesInput{
			ImageId: aws.String("ami-12345678"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		})
		if err != nil {
			t.Fatalf("RunInstances: %v", err)
		}
	}
}

// countInstances describes the instances of one region, 5 a page.
func countInstances(ctx context.Context, client *ec2.Client, _ string) (int, error) {
	p := ec2.NewDescribeInstancesPaginator(client, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	rs, err := fanout.Collect(ctx, p, p.NextPage, func(out *ec2.DescribeInstancesOutput) []ec2types.Reservation {
		return out.Reservations
	})
	n := 0
	for _, r := range rs {
		n += len(r.Instances)
	}
	return n, err
}

// countingProvider counts how often credentials are fetched.
type countingProvider struct {
	n atomic.Int32
	aws.CredentialsProvider
}

func (p *countingProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p.n.Add(1)
	c, err := p.CredentialsProvider.Retrieve(ctx)
	c.CanExpire, c.Expires = true, time.Now().Add(time.Hour)
	return c, err
}

// stsProxy forwards to moto, but refuses AssumeRole into deniedAccount as
// IAM would, and counts the attempts.
func stsProxy(t *testing.T, motoURL, deniedAccount string) (*httptest.Server, *atomic.Int32) {
	target, _ := url.Parse(motoURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var denied atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		form, _ := url.ParseQuery(string(body))
		if form.Get("Action") == "AssumeRole" && strings.Contains(form.Get("RoleArn"), ":"+deniedAccount+":") {
			denied.Add(1)
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/ci is not authorized to perform: sts:AssumeRole on resource: %s</Message></Error><RequestId>1</RequestId></ErrorResponse>`, form.Get("RoleArn"))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &denied
}

const (
	ec2AuthFailure = `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>1</RequestID></Response>`
	ec2Throttled = `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>2</RequestID></Response>`
	stsInvalidToken  = `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>3</RequestId></ErrorResponse>`
	callerIdentity   = `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/x</Arn><UserId>X</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`
	jsonUnrecognized = `{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}`
)

func fastRetries() aws.Retryer {
	return retry.AddWithMaxBackoffDelay(fanout.NewRetryer(), time.Millisecond)
}

// flakyServer answers the first three attempts of every call with a 500
// and the fourth with GetCallerIdentity's answer.
func flakyServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		if a := r.Header.Get("Amz-Sdk-Request"); !strings.HasPrefix(a, "attempt=4;") {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>oops</Message></Error></ErrorResponse>`)
			return
		}
		io.WriteString(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/x</Arn><UserId>X</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	}))
	t.Cleanup(srv.Close)
	return srv
}
