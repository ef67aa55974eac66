package fanout

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
)

type regionInfo struct {
	name  string
	optIn string
}

// EnabledRegions returns the regions enabled for cfg's account, in cfg's
// partition, sorted, from ec2 DescribeRegions: those whose opt-in status is
// opt-in-not-required or opted-in. patterns filter them: a pattern keeps
// the regions it matches (path.Match globs, "eu-*"), and one that starts
// with "!" drops them ("!us-gov-*"); with no keeping pattern, every region
// is kept before the drops.
//
// ClientPool.EnabledRegions does the same and remembers the answer.
func EnabledRegions(ctx context.Context, cfg aws.Config, patterns ...string) ([]string, error) {
	infos, err := describeRegions(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return filterRegions(infos, partitionOf(cfg.Region), patterns)
}

// EnabledRegions is the package's EnabledRegions for the pool's config; it
// remembers DescribeRegions' first successful answer and filters that on
// later calls. A failure is not remembered: the next call asks again.
func (p *ClientPool[C]) EnabledRegions(ctx context.Context, patterns ...string) ([]string, error) {
	p.mu.Lock()
	infos := p.regions
	p.mu.Unlock()
	if infos == nil {
		var err error
		if infos, err = describeRegions(ctx, p.base); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.regions = infos
		p.mu.Unlock()
	}
	return filterRegions(infos, partitionOf(p.base.Region), patterns)
}

func describeRegions(ctx context.Context, cfg aws.Config) ([]regionInfo, error) {
	if cfg.Region == "" {
		return nil, errors.New("fanout: EnabledRegions: the config has no Region; set one in the partition to list")
	}
	out, err := ec2.NewFromConfig(cfg).DescribeRegions(ctx, &ec2.DescribeRegionsInput{
		Filters: []ec2types.Filter{{Name: aws.String("opt-in-status"), Values: []string{"opt-in-not-required", "opted-in"}}},
	})
	if err != nil {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "UnauthorizedOperation" || apiErr.ErrorCode() == "AccessDenied" || apiErr.ErrorCode() == "AccessDeniedException") {
			return nil, fmt.Errorf("fanout: EnabledRegions: ec2:DescribeRegions was denied; grant it, or pass the regions explicitly (fanout.Regions(ctx, f, pool, []string{\"us-east-1\", ...}, op)): %w", err)
		}
		return nil, fmt.Errorf("fanout: EnabledRegions: %w", err)
	}
	infos := make([]regionInfo, 0, len(out.Regions))
	for _, r := range out.Regions {
		infos = append(infos, regionInfo{name: aws.ToString(r.RegionName), optIn: aws.ToString(r.OptInStatus)})
	}
	return infos, nil
}

func filterRegions(infos []regionInfo, partition string, patterns []string) ([]string, error) {
	var keep, drop []string
	for _, pat := range patterns {
		glob, neg := strings.CutPrefix(pat, "!")
		if _, err := path.Match(glob, ""); err != nil || glob == "" {
			return nil, fmt.Errorf("fanout: region pattern %q is not a valid glob", pat)
		}
		pat = glob
		if neg {
			drop = append(drop, pat)
		} else {
			keep = append(keep, pat)
		}
	}
	var regions []string
	for _, r := range infos {
		// The filter asked for these already; emulators may ignore it.
		enabled := r.optIn == "opt-in-not-required" || r.optIn == "opted-in"
		if enabled && partitionOf(r.name) == partition && matchAny(keep, r.name, true) && !matchAny(drop, r.name, false) {
			regions = append(regions, r.name)
		}
	}
	slices.Sort(regions)
	if len(regions) == 0 {
		return nil, fmt.Errorf("fanout: no enabled region of partition %s matches %q", partition, patterns)
	}
	return regions, nil
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

// partitionOf returns the partition a region belongs to.
func partitionOf(region string) string {
	for _, p := range []struct{ prefix, partition string }{
		{"cn-", "aws-cn"}, {"us-gov-", "aws-us-gov"}, {"us-isob-", "aws-iso-b"},
		{"us-isof-", "aws-iso-f"}, {"us-iso-", "aws-iso"}, {"eu-isoe-", "aws-iso-e"},
	} {
		if strings.HasPrefix(region, p.prefix) {
			return p.partition
		}
	}
	return "aws"
}

// Regions runs op once per region, each with the pool's client for that
// region, through f. Result.Key is the region; Result.Throttles counts the
// item's throttled attempts. Errors from a region that
// is not enabled classify as ErrRegionDisabled, throttling as ErrThrottled
// (see Classify); Options.SkipDisabled reports the former as skipped.
//
// The region list must be non-empty, without duplicates, and hold only
// region names; otherwise Regions runs nothing and returns an error that
// names the problem.
func Regions[C, T any](ctx context.Context, f *Fanout[T], pool *ClientPool[C], regions []string,
	op func(ctx context.Context, client C, region string) (T, error), optFns ...func(*Options)) (Results[T], error) {
	if err := checkTargets(f, pool, op == nil, regions); err != nil {
		return nil, err
	}
	return f.Run(ctx, regions, func(ctx context.Context, region string) (T, error) {
		return op(ctx, pool.Get(region), region)
	}, append([]func(*Options){countThrottles}, optFns...)...)
}

// AccountRegions runs op once per account and region, each with the pool's
// client for that account and region (the pool needs Accounts), through
// f. Result.Key is "account/region", account by account in the order
// given. Options.ScopeLimit bounds the accounts in flight inside the
// Limit.
//
// An account whose role cannot be assumed fails each of its items with an
// *AccountError naming the account and the role, after one attempt; the
// other accounts go on.
func AccountRegions[C, T any](ctx context.Context, f *Fanout[T], pool *ClientPool[C], accounts, regions []string,
	op func(ctx context.Context, client C, account, region string) (T, error), optFns ...func(*Options)) (Results[T], error) {
	if err := checkTargets(f, pool, op == nil, regions); err != nil {
		return nil, err
	}
	if pool.accounts == nil {
		return nil, errors.New("fanout: AccountRegions: the pool has no Accounts (PoolOptions.Accounts)")
	}
	if err := checkList("account", accounts, checkAccount); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(accounts)*len(regions))
	checks := make(map[string]*lazy[struct{}], len(accounts))
	for _, acct := range accounts {
		checks[acct] = new(lazy[struct{}])
		for _, region := range regions {
			keys = append(keys, acct+"/"+region)
		}
	}
	run := func(ctx context.Context, key string) (T, error) {
		var zero T
		acct, region, _ := strings.Cut(key, "/")
		if _, err := checks[acct].get(func() (struct{}, error) {
			return struct{}{}, pool.accounts.check(ctx, acct)
		}); err != nil {
			return zero, err
		}
		client, err := pool.Client(acct, region)
		if err != nil {
			return zero, err
		}
		return op(ctx, client, acct, region)
	}
	return f.Run(ctx, keys, run, append([]func(*Options){countThrottles, func(o *Options) { o.Scope = accountOf }}, optFns...)...)
}

func countThrottles(o *Options) { o.CountThrottles = true }

func accountOf(key string) string {
	acct, _, _ := strings.Cut(key, "/")
	return acct
}

func checkTargets[C, T any](f *Fanout[T], pool *ClientPool[C], nilOp bool, regions []string) error {
	switch {
	case nilOp:
		return errors.New("fanout: nil op")
	case f == nil:
		return errors.New("fanout: nil *Fanout")
	case pool == nil:
		return errors.New("fanout: nil *ClientPool")
	case pool.base.Credentials == nil:
		return errors.New("fanout: the pool's aws.Config has no Credentials (load it with config.LoadDefaultConfig)")
	}
	return checkList("region", regions, checkRegion)
}

// checkList rejects an empty list, a duplicate, or a malformed entry.
func checkList(what string, list []string, check func(string) error) error {
	if len(list) == 0 {
		return fmt.Errorf("fanout: the %s list is empty", what)
	}
	seen := make(map[string]bool, len(list))
	for _, s := range list {
		if err := check(s); err != nil {
			return err
		}
		if seen[s] {
			return fmt.Errorf("fanout: %s %q is listed twice", what, s)
		}
		seen[s] = true
	}
	return nil
}
