package temporal

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/time/rate"

	"github.com/awsfanout/fanout"
)

// The defaults of WorkerOptions.
const (
	DefaultAccountRate = 20 // EC2's refill rate for reads, per second
	DefaultSTSRate     = 10
	DefaultRegionLimit = 16
	DefaultLimit       = 128 // DefaultMaxIdleConnsPerHost: no more calls at once than connections kept

	// DefaultHeartbeatLimit is the server's default blob size limit
	// (dynamic config limit.blobSize.error): 2 MiB.
	DefaultHeartbeatLimit = 2 << 20
)

// PageFunc fetches one page of an account-region: the first when token is
// empty, else the one token names. It returns the page's items and the
// next page's token, empty on the last page. Tokens are kept in the
// activity's heartbeat, so that an attempt on another worker resumes
// where the one before stopped: they must mean the same to every worker
// (an AWS NextToken does).
type PageFunc[C, T any] func(ctx context.Context, client C, account, region, token string) (items []T, next string, err error)

// Sink receives each account-region's result. It is called from the
// account's activity, on the worker that scanned it, concurrently for
// different account-regions.
//
// Delivery is at least once: a worker lost after the sink returned and
// before the activity's heartbeat reached the server has the region
// delivered again by the attempt that takes the account over. Every
// repeat has the same Result.Key (see Key), and the same items if AWS
// answers the same: a sink that upserts by Key, or drops a Key it has,
// holds each account-region exactly once. A sink's error fails the
// region's attempt; the next attempt delivers it again, with the same
// Result (Err is never the sink's own error). When the sink refuses it
// on the account's last attempt, the ScanSummary lists the region as a
// lost Failure with the sink's error.
type Sink[T any] func(ctx context.Context, r Result[T]) error

// Result is one account-region of a scan, as its Sink receives it.
type Result[T any] struct {
	Key     string // ScanID/Account/Region: the same in every attempt
	ScanID  string
	Account string
	Region  string
	Items   []T   // every page's items, in order
	Pages   int   // pages fetched, over every attempt
	Attempt int32 // the activity attempt that delivered it, from 1
	Err     error // why the region failed, on the account's last attempt or for good (a role denied, a region not enabled); never the sink's own error
}

// WorkerOptions configures a Worker. NewWorker applies the defaults, then
// its option functions in order.
type WorkerOptions struct {
	// AccountRate is the most requests per account that reach AWS from
	// this worker's activities in any window of one second, counting
	// every attempt of the SDK's, sts AssumeRole into the account
	// included. A request is sent once the response to the AccountRate-th
	// before it came back and a second more passed, so an account with
	// a latency L makes at most AccountRate requests per 1s+L. An account is scanned by one activity at a time,
	// on one worker (see the package documentation), so the worker's
	// bound is the account's. Default: DefaultAccountRate.
	AccountRate int

	// STSRate is the most sts calls per second that this worker makes
	// with the config's own credentials (AssumeRole into each account):
	// the calling account's STS quota is shared by every worker, so give
	// each its share. Default: DefaultSTSRate.
	STSRate float64

	// RegionLimit bounds the regions of one account scanned at once.
	// Default: DefaultRegionLimit.
	RegionLimit int

	// Limit bounds the regions scanned at once by the worker, across
	// every account activity it runs. Default: DefaultLimit.
	Limit int

	// HeartbeatLimit is the most bytes an account activity's heartbeat
	// (its Progress, as the default data converter encodes it) may
	// take: the server's blob size limit. A page that would take the
	// progress above it is not kept; its region fails for good, and goes
	// to the sink with the error and the items of the pages before. The
	// server fails the account's activity at once, without a retry and
	// without its progress, on a heartbeat above its limit; set this to the
	// server's limit if it is not the default, less what a payload codec
	// (encryption, compression) adds. Default: DefaultHeartbeatLimit.
	HeartbeatLimit int

	// Accounts configures the roles assumed in the accounts
	// (fanout.AccountOptions); the worker sets STSOptions' HTTP client.
	Accounts []func(*fanout.AccountOptions)
}

// Worker runs a scan's activities: it holds the worker's ClientPool, one
// per process, shared by every account activity it runs. It is safe for
// concurrent use.
type Worker[C, T any] struct {
	pool        *fanout.ClientPool[C]
	fan         *fanout.Fanout[struct{}] // its Limit is the worker's, shared by the activities
	regionLimit int64                    // each activity's, inside the worker's
	beatLimit   int                      // bytes
	page        PageFunc[C, T]
	sink        Sink[T]
	limits      *accountLimits
}

// NewWorker returns the activities that scan an account with clients that
// newFn makes from cfg (cfg's credentials assume a role in each account),
// fetching pages with page and delivering to sink, or an error that names
// what it cannot honour. poolFns configure the pool; the worker sets its
// HTTP client and Accounts.
func NewWorker[C, O, T any](cfg aws.Config, newFn func(aws.Config, ...func(*O)) C, page PageFunc[C, T], sink Sink[T],
	optFns []func(*WorkerOptions), poolFns ...func(*fanout.PoolOptions[O])) (*Worker[C, T], error) {
	o := WorkerOptions{AccountRate: DefaultAccountRate, STSRate: DefaultSTSRate, RegionLimit: DefaultRegionLimit, Limit: DefaultLimit,
		HeartbeatLimit: DefaultHeartbeatLimit}
	for _, fn := range optFns {
		fn(&o)
	}
	switch {
	case page == nil || sink == nil || newFn == nil:
		return nil, errors.New("fanout/temporal: NewWorker: nil client constructor, PageFunc or Sink")
	case o.AccountRate < 1:
		return nil, fmt.Errorf("fanout/temporal: WorkerOptions.AccountRate is %d; want 1 or more calls per second", o.AccountRate)
	case !(o.STSRate > 0):
		return nil, fmt.Errorf("fanout/temporal: WorkerOptions.STSRate is %v; want a rate above 0", o.STSRate)
	case o.RegionLimit < 1 || o.RegionLimit > o.Limit:
		return nil, fmt.Errorf("fanout/temporal: WorkerOptions.RegionLimit is %d; want 1 to Limit (%d)", o.RegionLimit, o.Limit)
	case o.HeartbeatLimit < 1:
		return nil, fmt.Errorf("fanout/temporal: WorkerOptions.HeartbeatLimit is %d; want 1 or more bytes", o.HeartbeatLimit)
	}
	hc, err := fanout.NewHTTPClient(fanout.DefaultMaxIdleConnsPerHost)
	if err != nil {
		return nil, err
	}
	if cfg.HTTPClient != nil {
		return nil, fmt.Errorf("fanout/temporal: NewWorker: the config has an HTTP client (a %T); the worker meters every request through its own, so leave it nil", cfg.HTTPClient)
	}
	apps := meteredTransport{base: hc.Transport}
	stsClient := &http.Client{Transport: meteredTransport{base: hc.Transport, limit: rate.NewLimiter(rate.Limit(o.STSRate), 1)}}
	hc.Transport = apps
	accts, err := fanout.NewAccounts(cfg, append(slices.Clone(o.Accounts), func(ao *fanout.AccountOptions) {
		ao.STSOptions = append(ao.STSOptions, func(so *sts.Options) { so.HTTPClient = stsClient })
	})...)
	if err != nil {
		return nil, err
	}
	pool, err := fanout.NewClientPool(cfg, newFn, append(slices.Clone(poolFns), func(po *fanout.PoolOptions[O]) {
		po.HTTPClient = hc
		po.Accounts = accts
	})...)
	if err != nil {
		return nil, err
	}
	return &Worker[C, T]{
		pool: pool, page: page, sink: sink, limits: newAccountLimits(o.AccountRate), regionLimit: int64(o.RegionLimit),
		beatLimit: o.HeartbeatLimit,
		fan:       fanout.New[struct{}](func(fo *fanout.Options) { fo.Limit = int64(o.Limit) }),
	}, nil
}

// Pool returns the worker's ClientPool.
func (w *Worker[C, T]) Pool() *fanout.ClientPool[C] { return w.pool }

// Register registers the workflows and the account activity on r, a
// worker of the scan queue.
func (w *Worker[C, T]) Register(r worker.Registry) {
	RegisterWorkflows(r)
	r.RegisterActivityWithOptions(w.ScanAccount, activity.RegisterOptions{Name: ScanAccountActivity})
}

// RegisterWorkflows registers ScanWorkflow and AccountWorkflow on r.
func RegisterWorkflows(r worker.Registry) {
	r.RegisterWorkflowWithOptions(ScanWorkflow, workflowOpts(ScanWorkflowName))
	r.RegisterWorkflowWithOptions(AccountWorkflow, workflowOpts(AccountWorkflowName))
}

// RegisterControl registers the organization's listing on r, a worker of
// the control queue: list returns the accounts to scan (see
// OrganizationLister).
func RegisterControl(r worker.Registry, list func(ctx context.Context) ([]string, error)) {
	r.RegisterActivityWithOptions(list, activity.RegisterOptions{Name: ListAccountsActivity})
}

// Progress is an account activity's heartbeat: where each of the
// account's regions is.
type Progress[T any] struct {
	Account string
	Regions map[string]*RegionProgress[T]
}

// RegionProgress is where one region's scan is: its pages so far, the
// next page's token, and whether it was delivered.
type RegionProgress[T any] struct {
	Token string
	Items []T
	Pages int
	Done  bool
	Err   string // the error it was delivered with

	// Refused is the sink's error when it refused the region's last
	// delivery; empty once the sink takes it.
	Refused string
}

// ScanAccount is the account activity: it scans the regions of in that
// the attempts before it did not deliver, through fanout.AccountRegions
// with the worker's pool, resuming each region from the page its last
// heartbeat names, and delivers each region to the sink. It returns an
// error, for Temporal to retry the account, while a region failed with an
// error that another attempt may not get; on the last attempt, or for an
// error that will not pass (a role denied, a region not enabled), the
// region goes to the sink with its error. A region the sink refused is
// never handed to it again in the same attempt. The error of a failed
// attempt carries the progress (see AccountWorkflow).
func (w *Worker[C, T]) ScanAccount(ctx context.Context, in AccountScan) (AccountSummary, error) {
	info := activity.GetInfo(ctx)
	last := info.RetryPolicy != nil && info.RetryPolicy.MaximumAttempts > 0 && info.Attempt >= info.RetryPolicy.MaximumAttempts
	return w.scanAttempt(ctx, in, info.Attempt, last, info.HeartbeatTimeout)
}

// scanAttempt is ScanAccount's attempt number attempt, the last or not.
func (w *Worker[C, T]) scanAttempt(ctx context.Context, in AccountScan, attempt int32, last bool, heartbeatTimeout time.Duration) (AccountSummary, error) {
	run := &accountRun[C, T]{w: w, in: in, attempt: attempt, prog: Progress[T]{Regions: map[string]*RegionProgress[T]{}}}
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &run.prog) // a heartbeat it cannot read is no progress
	}
	run.prog.Account = in.Account
	var todo []string
	for _, region := range in.Regions {
		if run.prog.Regions[region] == nil {
			run.prog.Regions[region] = &RegionProgress[T]{}
		}
		if !run.prog.Regions[region].Done {
			todo = append(todo, region)
		}
	}
	if len(todo) > 0 {
		win := w.limits.acquire(in.Account)
		defer w.limits.release(in.Account)
		stop := run.keepAlive(ctx, heartbeatTimeout)
		err := run.scan(withWindow(ctx, win), todo, last)
		stop()
		if err != nil {
			return AccountSummary{}, run.failure(ctx, err)
		}
	}
	return run.summary(), nil
}

// accountRun is one attempt at an account.
type accountRun[C, T any] struct {
	w       *Worker[C, T]
	in      AccountScan
	attempt int32

	mu   sync.Mutex
	prog Progress[T]
	beat time.Time // the last heartbeat
}

// scan runs the regions todo and delivers them; it returns the errors of
// those that should be tried again.
func (r *accountRun[C, T]) scan(ctx context.Context, todo []string, last bool) error {
	res, err := fanout.AccountRegions(ctx, r.w.fan, r.w.pool, []string{r.in.Account}, todo, r.region,
		func(o *fanout.RegionOptions) { o.Limit = r.w.regionLimit })
	if err == nil {
		return nil
	}
	if res == nil { // bad input: no attempt will do better
		return temporal.NewNonRetryableApplicationError(err.Error(), "InvalidAccountScan", err)
	}
	var retry []error
	for _, item := range res {
		if item.Err == nil || item.Skipped != nil {
			continue
		}
		if ctx.Err() != nil { // the attempt is over: its heartbeat has the progress
			return ctx.Err()
		}
		var refused *sinkError
		if errors.As(item.Err, &refused) { // never the sink's own error back to it
			retry = append(retry, item.Err)
			continue
		}
		if !last && !permanent(item.Err) {
			retry = append(retry, item.Err)
			continue
		}
		if err := r.deliver(ctx, item.Region, item.Err); err != nil {
			retry = append(retry, err)
		}
	}
	return errors.Join(retry...)
}

// permanent reports whether another attempt would fail the same way: a
// region not enabled, credentials refused, a role that STS refused with
// a 4xx other than throttling (AccessDenied: the role does not exist, or
// does not trust the caller).
func permanent(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var big *heartbeatTooLarge
	if errors.Is(err, fanout.ErrRegionDisabled) || errors.Is(err, fanout.ErrCredentialsRefused) || errors.As(err, &big) {
		return true
	}
	var acct *fanout.AccountError
	var api smithy.APIError
	var resp *awshttp.ResponseError
	if !errors.As(err, &acct) || !errors.As(acct.Err, &api) || !errors.As(acct.Err, &resp) {
		return false
	}
	_, throttled := retry.DefaultThrottleErrorCodes[api.ErrorCode()]
	return resp.HTTPStatusCode() >= 400 && resp.HTTPStatusCode() < 500 && !throttled
}

// region is AccountRegions' op: it fetches the region's pages from where
// its progress is, recording each in the heartbeat, then delivers it.
func (r *accountRun[C, T]) region(ctx context.Context, client C, account, region string) (struct{}, error) {
	r.mu.Lock()
	p := r.prog.Regions[region]
	token, started := p.Token, p.Pages > 0
	r.mu.Unlock()
	for !started || token != "" {
		items, next, err := r.w.page(ctx, client, account, region, token)
		if err == nil && next != "" && next == token { // the service repeats itself: it would never end
			err = fmt.Errorf("fanout/temporal: %s: the page of token %q gave the same token as the next", Key(r.in.ScanID, account, region), token)
		}
		if err != nil {
			return struct{}{}, err
		}
		r.mu.Lock()
		before := *p
		p.Items, p.Token, p.Pages = append(p.Items, items...), next, p.Pages+1
		if err = r.heartbeatLocked(ctx); err != nil {
			*p = before // a page the heartbeat cannot hold is not kept, so that the other regions' heartbeats go on
		}
		r.mu.Unlock()
		if err != nil {
			return struct{}{}, err
		}
		token, started = next, true
	}
	return struct{}{}, r.deliver(ctx, region, nil)
}

// deliver hands region's result to the sink and records it delivered.
func (r *accountRun[C, T]) deliver(ctx context.Context, region string, cause error) error {
	r.mu.Lock()
	p := r.prog.Regions[region]
	res := Result[T]{Key: Key(r.in.ScanID, r.in.Account, region), ScanID: r.in.ScanID, Account: r.in.Account, Region: region,
		Items: slices.Clone(p.Items), Pages: p.Pages, Attempt: r.attempt, Err: cause}
	r.mu.Unlock()
	if err := guard(func() error { return r.w.sink(ctx, res) }); err != nil {
		err = &sinkError{key: res.Key, err: err}
		r.mu.Lock()
		p.Refused = err.Error() // for the attempt's error (failure); a heartbeat now could race the attempt's end
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p.Done, p.Items, p.Token, p.Refused = true, nil, "", ""
	if cause != nil {
		p.Err = cause.Error()
	}
	_ = r.heartbeatLocked(ctx) // it holds no items now: nothing left that could fail to encode
	return nil
}

// sinkError is the sink's refusal of a region's result.
type sinkError struct {
	key string
	err error
}

func (e *sinkError) Error() string { return "fanout/temporal: sink, " + e.key + ": " + e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// failure is err, the end of a failed attempt, as an application error
// whose details are the progress without the items (progressHead): the
// account's workflow reads them when this was the last attempt, as it
// reads a timed out attempt's last heartbeat. err's NonRetryable is
// kept; an ended ctx's error is returned as it is, since the server has
// already decided the attempt's fate.
func (r *accountRun[C, T]) failure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	typ, nonRetryable := "AccountAttemptFailed", false
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		typ, nonRetryable = app.Type(), app.NonRetryable()
	}
	return temporal.NewApplicationErrorWithOptions(err.Error(), typ, temporal.ApplicationErrorOptions{
		NonRetryable: nonRetryable, Cause: err, Details: []any{r.head()},
	})
}

// head returns the progress without the items.
func (r *accountRun[C, T]) head() progressHead {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := progressHead{Regions: make(map[string]regionHead, len(r.prog.Regions))}
	for region, p := range r.prog.Regions {
		h.Regions[region] = regionHead{Done: p.Done, Err: p.Err, Refused: p.Refused}
	}
	return h
}

// keepAlive heartbeats the progress every third of timeout, until stop,
// so that an attempt waiting on AWS (retries, its rate) is not taken for
// dead, and learns soon when the server gave its account to another
// attempt: the heartbeat then cancels ctx.
func (r *accountRun[C, T]) keepAlive(ctx context.Context, timeout time.Duration) (stop func()) {
	if timeout <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(timeout / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.mu.Lock()
				if time.Since(r.beat) >= timeout/3 {
					_ = r.heartbeatLocked(ctx) // a region's op reports the error
				}
				r.mu.Unlock()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// heartbeatLocked records the progress of every region of the attempt.
// It encodes the progress first, to check its size against the
// worker's HeartbeatLimit, since the server fails the account's activity
// for good on a heartbeat above its blob size limit; a progress that
// cannot be encoded (an item type that JSON cannot hold) is an error
// too, and so is a panic of RecordHeartbeat, so that a region's op fails
// with it and keepAlive's goroutine does not end the process.
func (r *accountRun[C, T]) heartbeatLocked(ctx context.Context) (err error) {
	r.beat = time.Now()
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("fanout/temporal: heartbeat of account %s: %v", r.in.Account, v)
		}
	}()
	payloads, err := converter.GetDefaultDataConverter().ToPayloads(r.prog)
	if err != nil {
		return fmt.Errorf("fanout/temporal: heartbeat of account %s: %w", r.in.Account, err)
	}
	if n := payloads.Size(); n > r.w.beatLimit {
		return &heartbeatTooLarge{account: r.in.Account, size: n, limit: r.w.beatLimit}
	}
	activity.RecordHeartbeat(ctx, r.prog)
	return nil
}

// heartbeatTooLarge is a heartbeat above WorkerOptions.HeartbeatLimit.
type heartbeatTooLarge struct {
	account     string
	size, limit int
}

func (e *heartbeatTooLarge) Error() string {
	return fmt.Sprintf("fanout/temporal: heartbeat of account %s: the progress takes %d bytes, above WorkerOptions.HeartbeatLimit %d; keep the items small",
		e.account, e.size, e.limit)
}

func (r *accountRun[C, T]) summary() AccountSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := AccountSummary{Account: r.in.Account, Failed: map[string]string{}}
	for _, region := range slices.Sorted(maps.Keys(r.prog.Regions)) {
		switch p := r.prog.Regions[region]; {
		case !p.Done:
			a.Lost = append(a.Lost, region)
			a.Err = "fanout/temporal: the scan ended before the region's"
		case p.Err != "":
			a.Failed[region] = p.Err
		default:
			a.Delivered = append(a.Delivered, region)
		}
	}
	return a
}

// guard calls fn; its panic is its error.
func guard(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("fanout/temporal: panic: %v", v)
		}
	}()
	return fn()
}

func workflowOpts(name string) workflow.RegisterOptions {
	return workflow.RegisterOptions{Name: name}
}

// HeartbeatThrottle is the MaxHeartbeatThrottleInterval that TuneWorker
// sets: Temporal's worker batches the heartbeats it is given within that
// interval and sends the last, so the progress a lost worker takes with
// it is at most what its activities did in that time.
const HeartbeatThrottle = time.Millisecond

// TuneWorker returns o with what the scan's workers need: a
// MaxHeartbeatThrottleInterval of HeartbeatThrottle, unless o has one,
// so that each page's heartbeat is sent as it is recorded (one request
// to the server per page; the default batches them for up to 80% of the
// heartbeat timeout, and a lost worker then makes the next attempt ask
// again for every page of that time).
func TuneWorker(o worker.Options) worker.Options {
	if o.MaxHeartbeatThrottleInterval == 0 {
		o.MaxHeartbeatThrottleInterval = HeartbeatThrottle
	}
	return o
}
