package temporal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/awsfanout/fanout/fanouttest"
)

// newTemporal starts a Temporal server in process, with fairness on.
func newTemporal(t *testing.T) *temporaltest.TestServer { return newTemporalFairness(t, true) }

func newTemporalFairness(t *testing.T, fairness bool) *temporaltest.TestServer {
	t.Helper()
	dc := dynamicconfig.StaticClient{
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): []dynamicconfig.ConstrainedValue{{Value: true}},
		dynamicconfig.MatchingEnableFairness.Key():                  []dynamicconfig.ConstrainedValue{{Value: fairness}},
	}
	return temporaltest.NewServer(temporaltest.WithT(t),
		temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dc)),
		temporaltest.WithBaseClientOptions(client.Options{Logger: quietLogger()}))
}

func quietLogger() tlog.Logger { return tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)) }

// call is one request that reached the fake AWS.
type call struct {
	at                                      time.Time
	account, service, action, region, token string
}

// recorder stands in front of a fanouttest.Server and records every
// request that reaches it, with the account it acts in.
type recorder struct {
	srv *httptest.Server

	mu    sync.Mutex
	calls []call
}

func newRecorder(t *testing.T, upstream string) *recorder {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ErrorLog = stdlog.New(io.Discard, "", 0) // a killed worker's requests end mid-way
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		r.record(req, body)
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) record(req *http.Request, body []byte) {
	c := call{at: time.Now()}
	form, _ := url.ParseQuery(string(body))
	c.action, c.token = form.Get("Action"), form.Get("NextToken")
	// Credential=KEY/DATE/REGION/SERVICE/aws4_request
	_, cred, _ := strings.Cut(req.Header.Get("Authorization"), "Credential=")
	parts := strings.Split(strings.SplitN(cred, ",", 2)[0], "/")
	if len(parts) >= 4 {
		c.region, c.service = parts[2], parts[3]
		c.account = strings.TrimPrefix(parts[0], "ASIAFANOUTTEST")
		if c.account == parts[0] {
			c.account = fanouttest.DefaultAccount
		}
	}
	if arn := form.Get("RoleArn"); arn != "" { // AssumeRole acts in the role's account
		if p := strings.Split(arn, ":"); len(p) == 6 {
			c.account = p[4]
		}
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// maxPerWindow returns, for each account, the most calls that reached
// the server in any window [t, t+d).
func maxPerWindow(calls []call, d time.Duration) map[string]int {
	by := map[string][]time.Time{}
	for _, c := range calls {
		by[c.account] = append(by[c.account], c.at)
	}
	out := map[string]int{}
	for acct, ts := range by {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		j := 0
		for i := range ts {
			for j < len(ts) && ts[j].Sub(ts[i]) < d {
				j++
			}
			out[acct] = max(out[acct], j-i)
		}
	}
	return out
}

// sinkLog records every delivery.
type sinkLog struct {
	mu    sync.Mutex
	got   map[string][]Result[string]
	total atomic.Int64
	keys  atomic.Int64 // distinct keys
}

func newSinkLog() *sinkLog { return &sinkLog{got: map[string][]Result[string]{}} }

func (s *sinkLog) deliver(r Result[string]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got[r.Key]) == 0 {
		s.keys.Add(1)
	}
	s.got[r.Key] = append(s.got[r.Key], r)
	s.total.Add(1)
}

// proc is one worker process: its own Temporal client, which a kill
// cuts from the server, its own pool, and a context under its activities.
type proc struct {
	name   string
	bg     context.Context
	cancel context.CancelFunc
	killed chan struct{}
	tw     worker.Worker

	mu        sync.Mutex
	begun     map[string]bool // account/region whose first page it asked for
	confirmed map[string]bool // account/region whose delivery a heartbeat of its recorded at the server
}

// intercept fails every call once the process is killed, and cuts those
// in flight (a long poll that would hand it a task).
func (p *proc) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	select {
	case <-p.killed:
		return status.Error(codes.Unavailable, "fanout test: worker killed")
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.killed:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err == nil {
		switch r := req.(type) {
		case *workflowservice.RecordActivityTaskHeartbeatRequest:
			p.confirm(r.GetDetails())
		case *workflowservice.RespondActivityTaskCompletedRequest:
			p.confirmAll(r.GetResult())
		}
	}
	return err
}

// confirmAll notes the regions of a completed account activity.
func (p *proc) confirmAll(result *commonpb.Payloads) {
	if len(result.GetPayloads()) == 0 {
		return
	}
	var sum AccountSummary
	if err := json.Unmarshal(result.GetPayloads()[0].GetData(), &sum); err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, region := range sum.Delivered {
		p.confirmed[sum.Account+"/"+region] = true
	}
	for region := range sum.Failed {
		p.confirmed[sum.Account+"/"+region] = true
	}
}

// confirm notes the regions that a heartbeat the server took says are
// delivered.
func (p *proc) confirm(details *commonpb.Payloads) {
	if len(details.GetPayloads()) == 0 {
		return
	}
	var prog struct {
		Account string
		Regions map[string]struct{ Done bool }
	}
	if err := json.Unmarshal(details.GetPayloads()[0].GetData(), &prog); err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for region, r := range prog.Regions {
		if r.Done {
			p.confirmed[prog.Account+"/"+region] = true
		}
	}
}

// kill is a crash: the process stops talking to the server, its
// activities' contexts end, and its worker stops. It returns the
// account-regions it had in flight, as the server knows them: begun,
// and not yet delivered in a heartbeat the server took; and their
// accounts.
func (p *proc) kill() (regions, accounts int) {
	close(p.killed) // no heartbeat is taken after this
	regions, accounts = p.inFlight()
	p.cancel()
	go p.tw.Stop()
	return regions, accounts
}

// inFlight returns the account-regions p has in flight, as the server
// knows them, and their accounts.
func (p *proc) inFlight() (regions, accounts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	accts := map[string]bool{}
	for k := range p.begun {
		if !p.confirmed[k] {
			regions++
			accts[strings.SplitN(k, "/", 2)[0]] = true
		}
	}
	return regions, len(accts)
}

const pageSize = 5

// describeInstances is the PageFunc of the tests: instance IDs, pageSize
// at a time.
func describeInstances(ctx context.Context, c *ec2.Client, account, region, token string) ([]string, string, error) {
	in := &ec2.DescribeInstancesInput{MaxResults: aws.Int32(pageSize)}
	if token != "" {
		in.NextToken = aws.String(token)
	}
	out, err := c.DescribeInstances(ctx, in)
	if err != nil {
		return nil, "", err
	}
	var ids []string
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
		}
	}
	return ids, aws.ToString(out.NextToken), nil
}

// startProc starts a worker process on the scan queue.
func startProc(t *testing.T, ts *temporaltest.TestServer, name string, cfg aws.Config, log *sinkLog, rate int, stsRate float64) *proc {
	t.Helper()
	p := &proc{name: name, killed: make(chan struct{}), begun: map[string]bool{}, confirmed: map[string]bool{}}
	p.bg, p.cancel = context.WithCancel(context.Background())
	c := ts.NewClientWithOptions(client.Options{Logger: quietLogger(), Identity: name,
		ConnectionOptions: client.ConnectionOptions{DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(p.intercept)}}})
	page := func(ctx context.Context, c *ec2.Client, account, region, token string) ([]string, string, error) {
		p.mu.Lock()
		p.begun[account+"/"+region] = true
		p.mu.Unlock()
		return describeInstances(ctx, c, account, region, token)
	}
	sink := func(ctx context.Context, r Result[string]) error {
		log.deliver(r)
		return nil
	}
	w, err := NewWorker(cfg, ec2.NewFromConfig, page, sink, []func(*WorkerOptions){func(o *WorkerOptions) { o.AccountRate, o.STSRate = rate, stsRate }})
	if err != nil {
		t.Fatal(err)
	}
	p.tw = worker.New(c, DefaultScanQueue, TuneWorker(worker.Options{
		BackgroundActivityContext:    p.bg,
		StickyScheduleToStartTimeout: 2 * time.Second, // a dead worker's workflows move on sooner
		WorkflowPanicPolicy:          worker.FailWorkflow,
	}))
	w.Register(p.tw)
	if err := p.tw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.killed:
		default:
			p.tw.Stop()
		}
		p.cancel()
		w.Pool().CloseIdleConnections()
	})
	return p
}

func accountIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%012d", 100000000000+i)
	}
	return ids
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
