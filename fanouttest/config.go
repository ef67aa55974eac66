package fanouttest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/awsfanout/fanout/internal/partition"
)

// DefaultAccount is the account ID the built-in responder reports when
// Config.Account is empty.
const DefaultAccount = "123456789012"

// Config describes what a Server does. The zero value answers at once,
// never throttles and injects no fault.
type Config struct {
	// Upstream, when not empty, is an endpoint (moto_server, LocalStack,
	// anything HTTP) to which the Server forwards every request that no
	// fault or throttle answers. Empty means the built-in responder.
	Upstream string

	// Account is the account of the config's own credentials, and the
	// organization's management account. "" means DefaultAccount. With an
	// Upstream, it must be the account the upstream gives those
	// credentials (moto's is DefaultAccount).
	Account string

	// Accounts are the organization's member accounts, which the built-in
	// organizations ListAccounts lists after Account. When there are any,
	// the built-in sts AssumeRole refuses roles in accounts outside the
	// organization, as IAM refuses a role that does not exist.
	Accounts []string

	// Regions are the regions the Server knows: the built-in
	// DescribeRegions lists them, and rules and the per-region settings
	// may name only them, so that a typo is an error rather than a rule
	// that never fires. nil means DefaultRegions; an empty list, none.
	Regions []string

	// AccountRegions, for an account it names (Account, or one of
	// Accounts), are the only regions enabled in that account, of
	// Regions: the built-in DescribeRegions (with the account's
	// credentials) and account ListRegions (for the account) list the
	// others as not enabled, and every call into them, but to the global
	// services (IAM, Organizations, account), is answered as a region
	// that is not enabled (see Disabled). An account it does not name
	// has every region enabled.
	AccountRegions map[string][]string

	// Instances is how many instances the built-in DescribeInstances has in
	// each account and region; RegionInstances overrides it by region.
	Instances       int
	RegionInstances map[string]int

	// Latency delays every answer; rules add to it.
	Latency Latency

	// Throttle sizes token buckets like EC2's API throttling (see
	// Buckets): requests beyond them are answered as the service answers a
	// throttled call. The zero Buckets throttles nothing; EC2Buckets has
	// EC2's defaults. RegionThrottle overrides it by region; a zero
	// Buckets there does not throttle the region.
	Throttle       Buckets
	RegionThrottle map[string]Buckets

	// Faults are the rules that inject latency and faults, tried in order
	// for every request; see Rule.
	Faults []Rule

	// Seed seeds the draws of the rules' Fractions.
	Seed uint64

	// Clock, when not nil, is the Server's time for the rules' From and
	// Until; a test advances it to start and end an outage without
	// waiting. The Server calls it from its handlers, concurrently. nil
	// means the wall clock.
	Clock func() time.Time
}

// A Rule injects latency, a fault or both into the requests it matches.
// Rules are tried in the order of Config.Faults; every rule that fires
// adds its Latency, and the first that fires with a Fault is the last
// tried. A request is then served in this order: on arrival, unless a
// rule fired with a fault, it takes a token from its throttle bucket or is
// to be answered as throttled; it waits out Config.Latency plus the
// latencies; answers with the fault, or as throttled, if any; and is
// answered by the upstream or the built-in responder (see the package
// doc).
//
// The fields of a Rule that are set must all hold for it to fire.
type Rule struct {
	// Region is the region of the request's SigV4 credential scope.
	Region string
	// Account is the account the request acts in: that of the access key
	// it is signed with (Config.Account's, or one that sts AssumeRole gave
	// through the Server). An sts AssumeRole request is in the account of
	// its RoleArn, so that a rule for an account also covers entering it.
	Account string
	// Service is the SigV4 signing name: ec2, sts, iam, s3, lambda,
	// dynamodb, organizations...
	Service string
	// Operation is the action a query or JSON protocol request names
	// (DescribeInstances, AssumeRole, ListTables), or S3's (the SDK names
	// most S3 calls in an x-id parameter: GetObject, PutObject), or, for
	// the REST protocols, which name none, a method and a path prefix,
	// without a query: "GET /2015-03-31/functions", "PUT /".
	Operation string

	// From and Until bound the time, since New, during which the rule
	// fires: an outage that starts and ends. Until 0 means no end.
	From, Until time.Duration
	// Attempts, when not 0, fires for each call's first Attempts attempts
	// only: the call succeeds on the next one. The SDK numbers a call's
	// attempts in its amz-sdk-request header; a request without it is an
	// attempt 1. So with the SDK's retries off, every call is a first
	// attempt and the rule fires every time: for "the first N requests",
	// use Times.
	Attempts int
	// Fraction, when not 0, fires for that fraction of the requests that
	// get this far, drawn from Config.Seed: the n-th such request fails or
	// not the same way in every run.
	Fraction float64
	// Times, when not 0, is how many times the rule fires at most.
	Times int

	// Latency delays the answer, on top of Config.Latency.
	Latency Latency
	// Fault is how the request is answered instead of by the service.
	Fault Fault
}

// Fault is how a request goes wrong.
type Fault int

const (
	// NoFault answers normally.
	NoFault Fault = iota
	// Error500 answers with the protocol's internal error (HTTP 500),
	// which the SDK retries.
	Error500
	// Reset closes the connection without an answer.
	Reset
	// Hang never answers; the request ends when the client gives up or
	// the Server closes, which drops its connection.
	Hang
	// Disabled answers as AWS answers in a region the account has not
	// enabled: EC2 401 AuthFailure, query protocols 403
	// InvalidClientTokenId, JSON protocols UnrecognizedClientException,
	// S3 403 InvalidAccessKeyId (InvalidToken with a session token).
	Disabled
	// Throttled answers as the service answers a throttled call: EC2 503
	// RequestLimitExceeded, S3 503 SlowDown, Lambda 429
	// TooManyRequestsException, others Throttling or ThrottlingException.
	Throttled
	// Denied answers as IAM denies a call: AccessDenied,
	// AccessDeniedException, or EC2's UnauthorizedOperation.
	Denied
)

var faultNames = [...]string{"NoFault", "Error500", "Reset", "Hang", "Disabled", "Throttled", "Denied"}

func (f Fault) String() string {
	if f < 0 || int(f) >= len(faultNames) {
		return fmt.Sprintf("Fault(%d)", int(f))
	}
	return faultNames[f]
}

// Latency is a delay drawn uniformly from [Fixed, Fixed+Jitter).
type Latency struct {
	Fixed  time.Duration
	Jitter time.Duration
}

func (l Latency) draw() time.Duration {
	if l.Jitter <= 0 {
		return l.Fixed
	}
	return l.Fixed + rand.N(l.Jitter)
}

// Bucket is a token bucket: Burst requests at once, refilled at PerSecond.
// It decides when a request arrives, as a service's front door does; the
// answer, served or throttled, then takes the latency, so that a
// latency's jitter does not reorder arrivals. The zero Bucket does not
// limit.
type Bucket struct {
	Burst     int
	PerSecond float64
}

// Buckets size the token buckets by kind of action, as EC2 meters its
// API. Each action of a service has buckets of its own in each account
// and region (each REST service one for its reads and one for its writes,
// since REST names no action): sts AssumeRole does not drain ec2
// DescribeInstances. A call is non-mutating when its action starts with
// Describe, List or Get, or, in the REST protocols, when its method is GET
// or HEAD.
type Buckets struct {
	NonMutating        Bucket // reads
	UnfilteredDescribe Bucket // ec2 DescribeInstances with neither filters nor MaxResults
	Mutating           Bucket // everything else
}

// EC2Buckets are EC2's documented API throttling defaults per account and
// region: non-mutating 100 burst / 20 per second, unfiltered and
// unpaginated DescribeInstances 50 / 10, mutating 50 / 5.
var EC2Buckets = Buckets{
	NonMutating:        Bucket{Burst: 100, PerSecond: 20},
	UnfilteredDescribe: Bucket{Burst: 50, PerSecond: 10},
	Mutating:           Bucket{Burst: 50, PerSecond: 5},
}

// DefaultRegions are the regions the built-in DescribeRegions lists when
// Config.Regions is nil: AWS's 34 commercial regions, GovCloud's 2 and
// China's 2. discover.EnabledRegions keeps those of its config's
// partition.
var DefaultRegions = []string{
	"af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
	"ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
	"ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1",
	"eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
	"il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2",
	"us-west-1", "us-west-2", "us-gov-east-1", "us-gov-west-1", "cn-north-1", "cn-northwest-1",
}

// optInRegions need opting in; the built-in responder reports them opted
// in, so that every region is enabled unless a fault says otherwise.
var optInRegions = map[string]bool{
	"af-south-1": true, "ap-east-1": true, "ap-east-2": true, "ap-south-2": true, "ap-southeast-3": true,
	"ap-southeast-4": true, "ap-southeast-5": true, "ap-southeast-6": true, "ap-southeast-7": true,
	"ca-west-1": true, "eu-central-2": true, "eu-south-1": true, "eu-south-2": true, "il-central-1": true,
	"me-central-1": true, "me-south-1": true, "mx-central-1": true,
}

var (
	accountRE   = regexp.MustCompile(`^[0-9]{12}$`)
	serviceRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	operationRE = regexp.MustCompile(`^([A-Z][A-Za-z0-9]*|(GET|HEAD|PUT|POST|DELETE|PATCH) /\S*)$`)
)

// validate names the first setting New cannot honour.
func (c *Config) validate() error {
	if c.Upstream != "" {
		u, err := url.Parse(c.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("fanouttest: Config.Upstream %q is not an http(s) URL like http://127.0.0.1:5000", c.Upstream)
		}
	}
	if !accountRE.MatchString(c.Account) {
		return fmt.Errorf("fanouttest: Config.Account %q is not an AWS account ID (12 digits)", c.Account)
	}
	seen := map[string]bool{c.Account: true}
	for _, a := range c.Accounts {
		if !accountRE.MatchString(a) {
			return fmt.Errorf("fanouttest: Config.Accounts: %q is not an AWS account ID (12 digits)", a)
		}
		if seen[a] {
			return fmt.Errorf("fanouttest: Config.Accounts: %s is listed twice, or is Config.Account", a)
		}
		seen[a] = true
	}
	known := make(map[string]bool, len(c.Regions))
	for _, region := range c.Regions {
		if _, ok := partition.Of(region); !ok {
			return fmt.Errorf("fanouttest: Config.Regions: %q is not an AWS region name", region)
		}
		known[region] = true
	}
	checkRegion := func(where, region string) error {
		if !known[region] {
			return fmt.Errorf("fanouttest: %s: %q is not one of Config.Regions (by default, DefaultRegions); add it there to use it", where, region)
		}
		return nil
	}
	for acct, regions := range c.AccountRegions {
		if !seen[acct] {
			return fmt.Errorf("fanouttest: Config.AccountRegions: %q is neither Config.Account nor one of Config.Accounts", acct)
		}
		for _, region := range regions {
			if err := checkRegion(fmt.Sprintf("Config.AccountRegions[%q]", acct), region); err != nil {
				return err
			}
		}
	}
	if c.Instances < 0 {
		return fmt.Errorf("fanouttest: Config.Instances is %d; want 0 or more", c.Instances)
	}
	for region, n := range c.RegionInstances {
		if err := checkRegion("Config.RegionInstances", region); err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("fanouttest: Config.RegionInstances[%q] is %d; want 0 or more", region, n)
		}
	}
	if err := checkLatency("Config.Latency", c.Latency); err != nil {
		return err
	}
	if err := checkBuckets("Config.Throttle", c.Throttle); err != nil {
		return err
	}
	for region, b := range c.RegionThrottle {
		if err := checkRegion("Config.RegionThrottle", region); err != nil {
			return err
		}
		if err := checkBuckets(fmt.Sprintf("Config.RegionThrottle[%q]", region), b); err != nil {
			return err
		}
	}
	for i, r := range c.Faults {
		where := fmt.Sprintf("Config.Faults[%d]", i)
		if r.Region != "" {
			if err := checkRegion(where+".Region", r.Region); err != nil { // a typo would leave the rule unused, silently
				return err
			}
		}
		if err := r.check(where); err != nil {
			return err
		}
		if i > 0 && c.Faults[i-1].always() {
			return fmt.Errorf("fanouttest: %s can never fire: Config.Faults[%d] before it answers every request with %v", where, i-1, c.Faults[i-1].Fault)
		}
	}
	return nil
}

// always reports whether r fires for every request with a fault, so that
// no rule after it is ever tried.
func (r *Rule) always() bool {
	return r.Fault != NoFault && r.Region == "" && r.Account == "" && r.Service == "" && r.Operation == "" &&
		r.From == 0 && r.Until == 0 && r.Attempts == 0 && (r.Fraction == 0 || r.Fraction == 1) && r.Times == 0
}

// restServices name no action on the wire (S3 does, in x-id); rpcServices
// always do. A rule naming one in the other's form could never fire.
var (
	restServices = map[string]bool{"lambda": true, "route53": true, "cloudfront": true, "apigateway": true}
	rpcServices  = map[string]bool{"ec2": true, "sts": true, "iam": true, "dynamodb": true, "organizations": true,
		"sqs": true, "sns": true, "kms": true, "ssm": true, "logs": true, "ecs": true, "cloudformation": true, "monitoring": true}
)

func (r *Rule) checkOperation(where string) error {
	_, path, rest := strings.Cut(r.Operation, " ")
	switch {
	case rest && strings.Contains(path, "?"):
		return fmt.Errorf("fanouttest: %s.Operation %q: a REST rule matches a path, without its query", where, r.Operation)
	case rest && rpcServices[r.Service]:
		return fmt.Errorf("fanouttest: %s.Operation %q: %s names its actions; match one by name", where, r.Operation, r.Service)
	case !rest && restServices[r.Service]:
		return fmt.Errorf("fanouttest: %s.Operation %q: %s is a REST service and names no action; match a method and path like \"GET /\"", where, r.Operation, r.Service)
	}
	return nil
}

func (r *Rule) check(where string) error {
	switch {
	case r.Account != "" && !accountRE.MatchString(r.Account):
		return fmt.Errorf("fanouttest: %s.Account %q is not an AWS account ID (12 digits)", where, r.Account)
	case r.Service != "" && !serviceRE.MatchString(r.Service):
		return fmt.Errorf("fanouttest: %s.Service %q is not a SigV4 signing name like ec2 or s3", where, r.Service)
	case r.Operation != "" && !operationRE.MatchString(r.Operation):
		return fmt.Errorf("fanouttest: %s.Operation %q is neither an action name like DescribeInstances nor a method and path like \"GET /2015-03-31/functions\"", where, r.Operation)
	case r.From < 0 || r.Until < 0:
		return fmt.Errorf("fanouttest: %s: From %v or Until %v is negative", where, r.From, r.Until)
	case r.Until != 0 && r.Until <= r.From:
		return fmt.Errorf("fanouttest: %s: Until %v is not after From %v; the rule would never fire", where, r.Until, r.From)
	case r.Attempts < 0:
		return fmt.Errorf("fanouttest: %s.Attempts is %d; want 0 (every attempt) or more", where, r.Attempts)
	case r.Times < 0:
		return fmt.Errorf("fanouttest: %s.Times is %d; want 0 (no limit) or more", where, r.Times)
	case math.IsNaN(r.Fraction) || r.Fraction < 0 || r.Fraction > 1:
		return fmt.Errorf("fanouttest: %s.Fraction is %v; want a fraction from 0 to 1", where, r.Fraction)
	case r.Fault < NoFault || int(r.Fault) >= len(faultNames):
		return fmt.Errorf("fanouttest: %s.Fault is %d, not one of the Faults", where, r.Fault)
	}
	if err := checkLatency(where+".Latency", r.Latency); err != nil {
		return err
	}
	if r.Operation != "" {
		if err := r.checkOperation(where); err != nil {
			return err
		}
	}
	if r.Fault == NoFault && r.Latency == (Latency{}) {
		return fmt.Errorf("fanouttest: %s has neither a Fault nor a Latency; it would do nothing", where)
	}
	return nil
}

func checkLatency(where string, l Latency) error {
	switch {
	case l.Fixed < 0 || l.Jitter < 0:
		return fmt.Errorf("fanouttest: %s %+v has a negative part", where, l)
	case l.Fixed > math.MaxInt64-l.Jitter:
		return fmt.Errorf("fanouttest: %s %+v is longer than a time.Duration holds", where, l)
	}
	return nil
}

func checkBuckets(where string, b Buckets) error {
	for _, k := range []Bucket{b.NonMutating, b.UnfilteredDescribe, b.Mutating} {
		switch {
		case k.Burst < 0 || k.PerSecond < 0:
			return fmt.Errorf("fanouttest: %s: bucket %+v has a negative part", where, k)
		case math.IsNaN(k.PerSecond) || math.IsInf(k.PerSecond, 0):
			return fmt.Errorf("fanouttest: %s: bucket %+v: PerSecond is not a number of requests", where, k)
		case k.Burst == 0 && k.PerSecond > 0:
			return fmt.Errorf("fanouttest: %s: bucket %+v refills a Burst of 0; want a Burst of 1 or more", where, k)
		}
	}
	return nil
}

// builtInOnly names a setting that only the built-in responder uses, set
// beside an Upstream that answers instead.
func (c *Config) builtInOnly() error {
	if c.Upstream == "" {
		return nil
	}
	if c.Instances != 0 || c.RegionInstances != nil || c.Accounts != nil {
		return errors.New("fanouttest: Config.Instances, RegionInstances and Accounts are the built-in responder's; with Upstream set, the upstream answers instead")
	}
	return nil
}
