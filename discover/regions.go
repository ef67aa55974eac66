package discover

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsaccount "github.com/aws/aws-sdk-go-v2/service/account"
	accounttypes "github.com/aws/aws-sdk-go-v2/service/account/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout"
	"github.com/awsfanout/fanout/internal/partition"
)

// EnabledRegions returns the regions enabled for cfg's account, as
// ListRegions finds them.
func EnabledRegions(ctx context.Context, cfg aws.Config, patterns ...string) ([]string, error) {
	l, err := ListRegions(ctx, cfg, patterns...)
	return l.Regions, err
}

// The calls that list an account's regions, as RegionList.From names them.
const (
	FromDescribeRegions = "ec2:DescribeRegions"
	FromListRegions     = "account:ListRegions"
)

// RegionList is the regions ListRegions found, and how.
type RegionList struct {
	Regions []string // enabled, in cfg's partition, matching the patterns, sorted

	// From names the call that listed them: FromDescribeRegions, or
	// FromListRegions when DescribeRegions was denied, and Denied is then
	// DescribeRegions' error.
	From   string
	Denied error
}

// ListRegions returns the regions enabled for cfg's account, in cfg's
// partition, sorted: from ec2 DescribeRegions those whose opt-in status
// is opt-in-not-required or opted-in, or, when DescribeRegions is denied
// (an SCP often denies it), from account ListRegions those ENABLED or
// ENABLED_BY_DEFAULT. patterns filter them: a pattern keeps the regions it
// matches (path.Match globs, "eu-*"), and one that starts with "!" drops
// them ("!us-gov-*"); with no keeping pattern, every region is kept
// before the drops. A pool's config (ClientPool.Config, or
// ClientPool.AccountConfig for another account) carries the pool's HTTP
// client, retryer and credentials.
//
// It fails, naming the problem, when cfg has no region, a pattern is not a
// glob, DescribeRegions fails otherwise than denied, both calls are
// denied (the error names both and says to pass the regions explicitly),
// or no region is left. When ctx has no deadline, DefaultTimeout bounds
// the call.
func ListRegions(ctx context.Context, cfg aws.Config, patterns ...string) (RegionList, error) {
	if ctx == nil {
		return RegionList{}, errors.New("discover: ListRegions: nil Context")
	}
	p, ok := partition.Of(cfg.Region)
	if !ok {
		return RegionList{}, fmt.Errorf("discover: ListRegions: the config's Region %q is not an AWS region name; set one in the partition to list", cfg.Region)
	}
	keep, drop, err := parsePatterns(patterns)
	if err != nil {
		return RegionList{}, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	l := RegionList{From: FromDescribeRegions}
	enabled, err := describeRegions(ctx, cfg)
	if denied(err) {
		l.From, l.Denied = FromListRegions, err
		enabled, err = listRegions(ctx, cfg)
		if denied(err) {
			return RegionList{}, fmt.Errorf("discover: ListRegions: ec2:DescribeRegions and account:ListRegions were both denied; grant one, or pass the regions explicitly (fanout.Regions(ctx, f, pool, []string{\"us-east-1\", ...}, op)): %w", errors.Join(l.Denied, err))
		}
	}
	if err != nil {
		return RegionList{}, fmt.Errorf("discover: ListRegions: %s: %w", l.From, timedOut(ctx, err))
	}
	for _, name := range enabled {
		if rp, ok := partition.Of(name); ok && rp.ID == p.ID && matchAny(keep, name, true) && !matchAny(drop, name, false) {
			l.Regions = append(l.Regions, name)
		}
	}
	slices.Sort(l.Regions)
	if len(l.Regions) == 0 {
		if len(patterns) == 0 {
			return RegionList{}, fmt.Errorf("discover: ListRegions: %s listed no enabled region of partition %s", l.From, p.ID)
		}
		return RegionList{}, fmt.Errorf("discover: ListRegions: no enabled region of partition %s matches %q (%s)", p.ID, patterns, l.From)
	}
	return l, nil
}

// denied reports whether err is an API's refusal of the call.
func denied(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException":
		return true
	}
	return false
}

// describeRegions lists the regions ec2 DescribeRegions says are enabled.
func describeRegions(ctx context.Context, cfg aws.Config) ([]string, error) {
	out, err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{
		Filters: []ec2types.Filter{{Name: aws.String("opt-in-status"), Values: []string{"opt-in-not-required", "opted-in"}}},
	})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range out.Regions {
		// The filter asked for these already; emulators may ignore it.
		if optIn := aws.ToString(r.OptInStatus); optIn == "opt-in-not-required" || optIn == "opted-in" {
			names = append(names, aws.ToString(r.RegionName))
		}
	}
	return names, nil
}

// listRegions lists the regions account ListRegions says are enabled.
func listRegions(ctx context.Context, cfg aws.Config) ([]string, error) {
	enabled := []accounttypes.RegionOptStatus{accounttypes.RegionOptStatusEnabled, accounttypes.RegionOptStatusEnabledByDefault}
	p := awsaccount.NewListRegionsPaginator(awsaccount.NewFromConfig(cfg), &awsaccount.ListRegionsInput{RegionOptStatusContains: enabled},
		func(o *awsaccount.ListRegionsPaginatorOptions) { o.StopOnDuplicateToken = true })
	regions, err := fanout.Collect(ctx, p, p.NextPage, func(out *awsaccount.ListRegionsOutput) []accounttypes.Region { return out.Regions })
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range regions {
		if slices.Contains(enabled, r.RegionOptStatus) { // as above
			names = append(names, aws.ToString(r.RegionName))
		}
	}
	return names, nil
}

// parsePatterns splits patterns into the globs that keep regions and those
// that drop them ("!"), and rejects one that is not a glob.
func parsePatterns(patterns []string) (keep, drop []string, err error) {
	for _, pat := range patterns {
		glob, neg := strings.CutPrefix(pat, "!")
		if _, err := path.Match(glob, ""); err != nil || glob == "" {
			return nil, nil, fmt.Errorf("discover: region pattern %q is not a valid glob", pat)
		}
		if neg {
			drop = append(drop, glob)
		} else {
			keep = append(keep, glob)
		}
	}
	return keep, drop, nil
}

func matchAny(patterns []string, name string, empty bool) bool {
	if len(patterns) == 0 {
		return empty
	}
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// EnabledRegionsOf is a fanout.RegionOptions.RegionsOf that gives each
// account the regions enabled in it, as ListRegions finds them with the
// account's own credentials, kept to patterns.
func EnabledRegionsOf(patterns ...string) func(ctx context.Context, account string, cfg aws.Config) ([]string, error) {
	return func(ctx context.Context, _ string, cfg aws.Config) ([]string, error) {
		return EnabledRegions(ctx, cfg, patterns...)
	}
}
