package fanouttest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"regexp"
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

	// Regions are the regions the built-in DescribeRegions lists. nil means
	// DefaultRegions.
	Regions []string

	// Instances is how many instances the built-in DescribeInstances has in
	// each region, unless RegionConfig says otherwise.
	Instances int

	// Account is the account ID the built-in responder reports for the
	// config's own credentials (sts AssumeRole gives credentials in the
	// role's account). "" means DefaultAccount.
	Account string

	// Latency delays every answer, unless RegionConfig says otherwise.
	Latency Latency

	// Throttle, when not nil, gives each region token buckets like EC2's
	// API throttling: requests beyond them are answered as AWS answers a
	// throttled call. EC2Buckets has the documented defaults.
	Throttle *Buckets

	// Region holds per-region settings and faults.
	Region map[string]RegionConfig
}

// RegionConfig overrides Config for one region.
type RegionConfig struct {
	Latency   *Latency // nil means Config.Latency
	Instances *int     // nil means Config.Instances
	Throttle  *Buckets // nil means Config.Throttle
	Fault     Fault
}

// Fault is what goes wrong in a region.
type Fault int

const (
	// NoFault answers normally.
	NoFault Fault = iota
	// Error500 answers every request with an internal error (HTTP 500).
	Error500
	// Reset closes the connection without an answer.
	Reset
	// Hang never answers; the request ends when the client gives up or
	// the Server closes, which drops its connection.
	Hang
	// Disabled answers as AWS answers a region the account has not
	// enabled: EC2 401 AuthFailure, STS 403 InvalidClientTokenId, JSON
	// protocols 400 UnrecognizedClientException.
	Disabled
)

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
// The zero Bucket does not limit.
type Bucket struct {
	Burst     int
	PerSecond float64
}

// Buckets are the token buckets of one region, by kind of action, as EC2
// meters its API.
type Buckets struct {
	NonMutating        Bucket // Describe*, List*, Get*
	UnfilteredDescribe Bucket // DescribeInstances with neither filters nor MaxResults
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

var accountRE = regexp.MustCompile(`^[0-9]{12}$`)

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
	if err := c.check("Config", c.Instances, c.Latency, c.Throttle); err != nil {
		return err
	}
	for _, region := range c.Regions {
		if _, ok := partition.Of(region); !ok {
			return fmt.Errorf("fanouttest: Config.Regions: %q is not an AWS region name", region)
		}
	}
	for region, rc := range c.Region {
		if _, ok := partition.Of(region); !ok { // a typo would leave its fault unused, silently
			return fmt.Errorf("fanouttest: Config.Region: %q is not an AWS region name", region)
		}
		n := c.Instances
		if rc.Instances != nil {
			n = *rc.Instances
		}
		l := c.Latency
		if rc.Latency != nil {
			l = *rc.Latency
		}
		if err := c.check(fmt.Sprintf("Config.Region[%q]", region), n, l, rc.Throttle); err != nil {
			return err
		}
		if rc.Fault < NoFault || rc.Fault > Disabled {
			return fmt.Errorf("fanouttest: Config.Region[%q].Fault is %d, not one of the Faults", region, rc.Fault)
		}
	}
	return nil
}

func (c *Config) check(where string, instances int, l Latency, b *Buckets) error {
	if instances < 0 {
		return fmt.Errorf("fanouttest: %s: Instances is %d; want 0 or more", where, instances)
	}
	if l.Fixed < 0 || l.Jitter < 0 {
		return fmt.Errorf("fanouttest: %s: Latency %+v has a negative part", where, l)
	}
	if b != nil {
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
	}
	return nil
}

// builtInOnly names a setting that only the built-in responder uses, set
// beside an Upstream that answers instead.
func (c *Config) builtInOnly() error {
	if c.Upstream == "" {
		return nil
	}
	used := c.Instances != 0 || c.Account != "" || c.Regions != nil
	for _, rc := range c.Region {
		used = used || rc.Instances != nil
	}
	if used {
		return errors.New("fanouttest: Config.Instances, Account, Regions and RegionConfig.Instances are the built-in responder's; with Upstream set, the upstream answers instead")
	}
	return nil
}
