package temporal

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// The names under which Register and RegisterControl register the
// workflows and activities.
const (
	ScanWorkflowName     = "fanout.Scan"
	AccountWorkflowName  = "fanout.ScanAccount"
	ListAccountsActivity = "fanout.ListAccounts"
	ScanAccountActivity  = "fanout.ScanAccountRegions"
)

// The defaults of ScanOptions.
const (
	DefaultScanQueue        = "fanout-scan"
	DefaultControlQueue     = "fanout-control"
	DefaultAccountsInFlight = 50
	DefaultAccountsPerRun   = 500
	DefaultHeartbeatTimeout = 10 * time.Second
	DefaultAttemptTimeout   = 30 * time.Minute
	DefaultMaxAttempts      = 5
	DefaultRetryInterval    = 2 * time.Second
	DefaultMaxFailures      = 100
)

// ScanOptions configures a scan. The zero value of each field means its
// default; NewScan applies the defaults, then its option functions in
// order.
type ScanOptions struct {
	// ScanQueue is the task queue of the account workflows and their
	// activities: the workers that run Register poll it. Default:
	// DefaultScanQueue.
	ScanQueue string

	// ControlQueue is the task queue of the Organizations listing, with
	// a queue-wide rate of its own (see ConfigureQueues). Default:
	// DefaultControlQueue.
	ControlQueue string

	// AccountsInFlight bounds the accounts scanned at once, across every
	// worker. Default: DefaultAccountsInFlight.
	AccountsInFlight int

	// AccountsPerRun is how many accounts one run of the scan workflow
	// starts before it continues as new, so that its history holds about
	// six events per account of the run, never per account of the
	// organization. Default: DefaultAccountsPerRun.
	AccountsPerRun int

	// HeartbeatTimeout is how long the server waits for an account
	// activity's heartbeat before it gives the account to another
	// worker: the time a dead worker's accounts wait. Default:
	// DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration

	// AttemptTimeout bounds one attempt at an account's regions.
	// Default: DefaultAttemptTimeout.
	AttemptTimeout time.Duration

	// MaxAttempts is how many attempts an account gets; the regions still
	// failing on the last are delivered to the sink with their error.
	// Default: DefaultMaxAttempts.
	MaxAttempts int32

	// RetryInterval is the wait before an account's second attempt, and
	// the least between two: at least a second, so that the attempt
	// before it has left the account's one-second window (see
	// WorkerOptions.AccountRate). Default: DefaultRetryInterval.
	RetryInterval time.Duration

	// MaxFailures bounds the failures a ScanSummary lists; it counts them
	// all. Default: DefaultMaxFailures.
	MaxFailures int
}

// Scan is the input of the scan workflow: what to scan and how. Make it
// with NewScan.
type Scan struct {
	// ID starts every result's Key. Default: the scan workflow's ID.
	ID string

	// Accounts to scan; nil lists the organization's accounts, once, on
	// the control queue.
	Accounts []string

	// Regions to scan in every account.
	Regions []string

	Options ScanOptions

	// Next and Summary carry the scan from one run of the workflow to
	// the next (continue-as-new): the accounts before Next are done.
	Next    int
	Summary ScanSummary
}

// ScanSummary is what a scan did: it counts every account-region, and
// lists up to ScanOptions.MaxFailures of those that failed.
type ScanSummary struct {
	Accounts  int       // accounts whose scan ended
	Delivered int       // account-regions delivered to the sink without an error
	Failed    int       // account-regions delivered with an error, or lost (see Failure)
	Failures  []Failure // the first MaxFailures of them
	Runs      int       // runs of the scan workflow, continue-as-new included
}

// Failure is an account-region delivered to the sink with an error
// (Lost false: the sink holds the region, with Err as its Result.Err),
// or one the sink holds nothing of that the scan knows of (Lost true):
// either the sink refused its delivery on the account's last attempt
// (Err is the sink's error), or it was never delivered, since the
// account's last attempt ended before it got to the region (Err is why
// the attempt ended: a timeout, a worker lost, an error of another
// region, a heartbeat the server refused).
type Failure struct {
	Account, Region, Err string
	Lost                 bool // the sink holds nothing of the region: scan it again
}

// AccountScan is the input of an account's workflow and activity.
type AccountScan struct {
	ScanID  string
	Account string
	Regions []string
	Options ScanOptions
}

// AccountSummary is what an account's scan did, over all its attempts.
type AccountSummary struct {
	Account   string
	Delivered []string          // regions delivered without an error
	Failed    map[string]string // regions delivered with an error, and the error
	Refused   map[string]string // regions the sink refused on the last attempt, and the sink's error
	Lost      []string          // regions never delivered: the last attempt ended before it delivered them
	Err       string            // why, when Lost is not empty
}

// NewScan returns the scan of accounts (nil: the organization's) and
// regions, with the defaults and then optFns applied, or an error that
// names a value it cannot honour.
func NewScan(id string, accounts, regions []string, optFns ...func(*ScanOptions)) (Scan, error) {
	s := Scan{ID: id, Accounts: slices.Clone(accounts), Regions: slices.Clone(regions)}
	for _, fn := range optFns {
		fn(&s.Options)
	}
	s.Options = s.Options.withDefaults()
	return s, s.validate()
}

func (o ScanOptions) withDefaults() ScanOptions {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if o.ScanQueue == "" {
		o.ScanQueue = DefaultScanQueue
	}
	if o.ControlQueue == "" {
		o.ControlQueue = DefaultControlQueue
	}
	def(&o.AccountsInFlight, DefaultAccountsInFlight)
	def(&o.AccountsPerRun, DefaultAccountsPerRun)
	def(&o.MaxFailures, DefaultMaxFailures)
	defDur(&o.HeartbeatTimeout, DefaultHeartbeatTimeout)
	defDur(&o.AttemptTimeout, DefaultAttemptTimeout)
	defDur(&o.RetryInterval, DefaultRetryInterval)
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	return o
}

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	regionRE  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

func (s *Scan) validate() error {
	o := s.Options
	switch {
	case len(s.Regions) == 0:
		return errors.New("fanout/temporal: the scan has no regions")
	case o.AccountsInFlight < 1:
		return fmt.Errorf("fanout/temporal: ScanOptions.AccountsInFlight is %d; want 1 or more", o.AccountsInFlight)
	case o.AccountsPerRun < 1:
		return fmt.Errorf("fanout/temporal: ScanOptions.AccountsPerRun is %d; want 1 or more", o.AccountsPerRun)
	case o.HeartbeatTimeout < time.Second:
		return fmt.Errorf("fanout/temporal: ScanOptions.HeartbeatTimeout is %v; want 1s or more", o.HeartbeatTimeout)
	case o.AttemptTimeout <= o.HeartbeatTimeout:
		return fmt.Errorf("fanout/temporal: ScanOptions.AttemptTimeout %v is not above HeartbeatTimeout %v", o.AttemptTimeout, o.HeartbeatTimeout)
	case o.MaxAttempts < 1:
		return fmt.Errorf("fanout/temporal: ScanOptions.MaxAttempts is %d; want 1 or more", o.MaxAttempts)
	case o.RetryInterval < time.Second:
		return fmt.Errorf("fanout/temporal: ScanOptions.RetryInterval is %v; want 1s or more, the account's rate window", o.RetryInterval)
	case o.MaxFailures < 0:
		return fmt.Errorf("fanout/temporal: ScanOptions.MaxFailures is %d; want 0 or more", o.MaxFailures)
	}
	if err := checkList("region", s.Regions, regionRE); err != nil {
		return err
	}
	if s.Accounts != nil {
		return checkList("account", s.Accounts, accountRE)
	}
	return nil
}

func checkList(what string, list []string, re *regexp.Regexp) error {
	seen := make(map[string]bool, len(list))
	for _, v := range list {
		if !re.MatchString(v) {
			return fmt.Errorf("fanout/temporal: %q is not an AWS %s", v, what)
		}
		if seen[v] {
			return fmt.Errorf("fanout/temporal: %s %s is listed twice", what, v)
		}
		seen[v] = true
	}
	return nil
}

// Key is the key of an account-region's result in scan id: the same in
// every attempt, on every worker, so that a sink can drop a repeat.
func Key(scanID, account, region string) string {
	return scanID + "/" + account + "/" + region
}

// add counts one account's summary, or its failure, in s.
func (s *ScanSummary) add(o ScanOptions, a AccountSummary) {
	s.Accounts++
	s.Delivered += len(a.Delivered)
	for _, region := range sortedKeys(a.Failed) {
		s.Failed++
		s.fail(o, Failure{Account: a.Account, Region: region, Err: a.Failed[region]})
	}
	for _, region := range sortedKeys(a.Refused) {
		s.Failed++
		s.fail(o, Failure{Account: a.Account, Region: region, Err: a.Refused[region], Lost: true})
	}
	for _, region := range a.Lost {
		s.Failed++
		s.fail(o, Failure{Account: a.Account, Region: region, Err: a.Err, Lost: true})
	}
}

func (s *ScanSummary) fail(o ScanOptions, f Failure) {
	if len(s.Failures) < o.MaxFailures {
		s.Failures = append(s.Failures, f)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
