package discover

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/awsfanout/fanout/internal/partition"
)

// EnabledRegions returns the regions enabled for cfg's account, in cfg's
// partition, sorted, from ec2 DescribeRegions: those whose opt-in status is
// opt-in-not-required or opted-in. patterns filter them: a pattern keeps
// the regions it matches (path.Match globs, "eu-*"), and one that starts
// with "!" drops them ("!us-gov-*"); with no keeping pattern, every region
// is kept before the drops. A pool's config (ClientPool.Config) carries
// the pool's HTTP client, retryer and credentials cache.
//
// It fails, naming the problem, when cfg has no region, a pattern is not a
// glob, DescribeRegions fails (when it is denied, the error says to pass
// the regions explicitly), or no region is left. When ctx has no
// deadline, DefaultTimeout bounds the call.
func EnabledRegions(ctx context.Context, cfg aws.Config, patterns ...string) ([]string, error) {
	if ctx == nil {
		return nil, errors.New("discover: EnabledRegions: nil Context")
	}
	p, ok := partition.Of(cfg.Region)
	if !ok {
		return nil, fmt.Errorf("discover: EnabledRegions: the config's Region %q is not an AWS region name; set one in the partition to list", cfg.Region)
	}
	keep, drop, err := parsePatterns(patterns)
	if err != nil {
		return nil, err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	out, err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{
		Filters: []ec2types.Filter{{Name: aws.String("opt-in-status"), Values: []string{"opt-in-not-required", "opted-in"}}},
	})
	if err != nil {
		err = timedOut(ctx, err)
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "UnauthorizedOperation" || apiErr.ErrorCode() == "AccessDenied" || apiErr.ErrorCode() == "AccessDeniedException") {
			return nil, fmt.Errorf("discover: EnabledRegions: ec2:DescribeRegions was denied; grant it, or pass the regions explicitly (fanout.Regions(ctx, f, pool, []string{\"us-east-1\", ...}, op)): %w", err)
		}
		return nil, fmt.Errorf("discover: EnabledRegions: %w", err)
	}
	var regions []string
	for _, r := range out.Regions {
		name := aws.ToString(r.RegionName)
		// The filter asked for these already; emulators may ignore it.
		optIn := aws.ToString(r.OptInStatus)
		enabled := optIn == "opt-in-not-required" || optIn == "opted-in"
		if rp, ok := partition.Of(name); enabled && ok && rp.ID == p.ID && matchAny(keep, name, true) && !matchAny(drop, name, false) {
			regions = append(regions, name)
		}
	}
	slices.Sort(regions)
	if len(regions) == 0 {
		if len(patterns) == 0 {
			return nil, fmt.Errorf("discover: EnabledRegions: DescribeRegions listed no enabled region of partition %s", p.ID)
		}
		return nil, fmt.Errorf("discover: EnabledRegions: no enabled region of partition %s matches %q", p.ID, patterns)
	}
	return regions, nil
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
